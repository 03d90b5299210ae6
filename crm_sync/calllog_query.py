"""Reading the call log for supervisors: filters, per-agent statistics, missed calls, CSV.

Visibility is passed in as ``visible_user_ids``: None for admins (everything), a supervisor's
team member ids, or an agent's own id; a call is visible when one of those users took part.
:func:`agent_stats` and :func:`hourly` are pure: rows in, numbers out.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.fields import aware
from crm_sync.phones import digits_of
from crm_sync.schema import activities, activity_participants, recordings, tasks, users

__all__ = [
    "CSV_COLUMNS",
    "CallFilter",
    "agent_stats",
    "hourly",
    "missed_not_called_back",
    "query_calls",
    "to_csv",
]

DIRECTIONS = ("inbound", "outbound", "internal", "unknown")
OUTCOMES = ("answered", "no_answer", "busy", "abandoned", "failed")
MISSED = ("no_answer", "busy", "abandoned", "failed")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What the supervisor asked for; every field optional."""

    since: datetime | None = None
    until: datetime | None = None
    agent_id: int | None = None
    team: str | None = None
    direction: str | None = None
    outcome: str | None = None
    number: str | None = None
    has_recording: bool | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(f: CallFilter, visible_user_ids: Sequence[int] | None) -> list[Any]:
    conds: list[Any] = [activities.c.kind == "call"]
    part = activity_participants.c
    if visible_user_ids is not None:
        conds.append(
            exists().where(
                part.activity_id == activities.c.id, part.user_id.in_(list(visible_user_ids))
            )
        )
    if f.since is not None:
        conds.append(activities.c.started_at >= f.since)
    if f.until is not None:
        conds.append(activities.c.started_at < f.until)
    if f.agent_id is not None:
        conds.append(
            or_(
                activities.c.user_id == f.agent_id,
                exists().where(part.activity_id == activities.c.id, part.user_id == f.agent_id),
            )
        )
    if f.team:
        conds.append(
            exists().where(
                part.activity_id == activities.c.id,
                part.user_id == users.c.id,
                users.c.team == f.team,
            )
        )
    if f.direction:
        conds.append(activities.c.direction == f.direction)
    if f.outcome == "missed":  # an inbound call nobody answered
        conds.append(activities.c.outcome.in_(MISSED))
        conds.append(activities.c.direction == "inbound")
    elif f.outcome:
        conds.append(activities.c.outcome == f.outcome)
    if f.number:
        digits = digits_of(f.number)
        if digits:
            pattern = f"%{_like_escape(digits)}%"
            conds.append(
                or_(
                    *(
                        col.like(pattern, escape="\\")
                        for col in (
                            activities.c.caller_raw,
                            activities.c.callee_raw,
                            activities.c.caller_e164,
                            activities.c.callee_e164,
                        )
                    )
                )
            )
    if f.has_recording is True:
        conds.append(recordings.c.status == "ready")
    elif f.has_recording is False:
        conds.append(or_(recordings.c.id.is_(None), recordings.c.status != "ready"))
    return conds


def _row(r: Any, names: dict[int, str]) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        v = aware(v)
        return v.isoformat() if v else None

    has_audio = r.rec_status == "ready"
    return {
        "id": r.id,
        "pbx": r.pbx,
        "conversation_id": r.conversation_id,
        "direction": r.direction,
        "outcome": r.outcome,
        "caller": r.caller_raw,
        "caller_e164": r.caller_e164,
        "caller_name": r.caller_name,
        "callee": r.callee_raw,
        "callee_e164": r.callee_e164,
        "did": r.did,
        "queue": r.queue,
        "agents": list(r.agents or []),
        "answered_by": r.answered_by,
        "answered_by_user_id": r.answered_by_user_id,
        "answered_by_name": names.get(r.answered_by_user_id or 0, ""),
        "user_id": r.user_id,
        "agent_name": names.get(r.user_id or 0, ""),
        "talked_last": r.talked_last,
        "transfers": [list(t) for t in (r.transfers or [])],
        "started_at": iso(r.started_at),
        "answered_at": iso(r.answered_at),
        "ended_at": iso(r.ended_at),
        "ring_seconds": r.ring_seconds,
        "talk_seconds": r.talk_seconds,
        "contact_id": r.contact_id,
        "company_id": r.company_id,
        "responsible_user_id": r.responsible_user_id,
        "recording_id": r.rec_id if has_audio else None,
        "recording_status": r.rec_status,
        "recording_seconds": r.rec_duration if has_audio else None,
        "recording_url": f"/api/v1/recordings/{r.rec_id}" if has_audio else None,
    }


async def query_calls(
    conn: AsyncConnection,
    f: CallFilter,
    visible_user_ids: Sequence[int] | None,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Calls matching ``f``, newest first, and how many there are in total."""
    joined = activities.outerjoin(recordings, recordings.c.id == activities.c.recording_id)
    conds = _conditions(f, visible_user_ids)
    total = (
        await conn.execute(select(func.count()).select_from(joined).where(and_(*conds)))
    ).scalar_one()
    rows = (
        await conn.execute(
            select(
                activities,
                recordings.c.id.label("rec_id"),
                recordings.c.status.label("rec_status"),
                recordings.c.duration_seconds.label("rec_duration"),
            )
            .select_from(joined)
            .where(and_(*conds))
            .order_by(activities.c.started_at.desc(), activities.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    names = dict((await conn.execute(select(users.c.id, users.c.name))).all())
    return [_row(r, names) for r in rows], int(total)


async def missed_not_called_back(
    conn: AsyncConnection, visible_user_ids: Sequence[int] | None, limit: int = 200
) -> list[dict[str, Any]]:
    """Open callback tasks (oldest due first) with the missed call that caused them."""
    conds: list[Any] = [tasks.c.kind == "callback", tasks.c.status == "open"]
    if visible_user_ids is not None:
        conds.append(tasks.c.assignee_id.in_(list(visible_user_ids)))
    rows = await conn.execute(
        select(
            tasks.c.id,
            tasks.c.title,
            tasks.c.number_e164,
            tasks.c.attempts,
            tasks.c.due_at,
            tasks.c.assignee_id,
            tasks.c.contact_id,
            tasks.c.created_at,
            users.c.name.label("assignee_name"),
            activities.c.started_at,
            activities.c.did,
            activities.c.outcome,
        )
        .select_from(
            tasks.outerjoin(users, users.c.id == tasks.c.assignee_id).outerjoin(
                activities, activities.c.id == tasks.c.activity_id
            )
        )
        .where(*conds)
        .order_by(tasks.c.due_at, tasks.c.id)
        .limit(limit)
    )
    out = []
    for r in rows:
        due, started = aware(r.due_at), aware(r.started_at)
        out.append(
            {
                "task_id": r.id,
                "title": r.title,
                "number": r.number_e164,
                "attempts": r.attempts,
                "due_at": due.isoformat() if due else None,
                "assignee_id": r.assignee_id,
                "assignee_name": r.assignee_name or "",
                "contact_id": r.contact_id,
                "missed_at": started.isoformat() if started else None,
                "did": r.did,
                "outcome": r.outcome,
            }
        )
    return out


def agent_stats(
    calls: Iterable[dict[str, Any]],
    callbacks: Iterable[tuple[int | None, str]],
    agents: dict[int, str],
) -> list[dict[str, Any]]:
    """Per-agent numbers for the given calls (rows of :func:`query_calls`).

    ``callbacks`` are (assignee id, status) of callback tasks; ``agents`` maps the ids to report
    to their names. Missed and abandoned count inbound calls that rang the agent and that nobody
    answered; average ring time is over inbound calls that rang the agent, talk time over the
    calls the agent answered or placed.
    """
    acc: dict[int, dict[str, Any]] = {
        uid: {
            "user_id": uid,
            "name": name,
            "calls_in": 0,
            "calls_out": 0,
            "answered": 0,
            "missed": 0,
            "abandoned": 0,
            "_ring": [],
            "_talk": [],
            "callbacks_pending": 0,
            "callbacks_done": 0,
        }
        for uid, name in agents.items()
    }
    for c in calls:
        for uid in set(c.get("participant_ids", [])) & set(acc):
            a = acc[uid]
            if c["direction"] == "inbound":
                a["calls_in"] += 1
                a["_ring"].append(c["ring_seconds"] or 0.0)
                if c["answered_by_user_id"] == uid:
                    a["answered"] += 1
                    a["_talk"].append(c["talk_seconds"] or 0.0)
                elif c["outcome"] == "abandoned":
                    a["abandoned"] += 1
                elif c["outcome"] in MISSED:
                    a["missed"] += 1
            elif c["direction"] == "outbound" and c["user_id"] == uid:
                a["calls_out"] += 1
                if c["outcome"] == "answered":
                    a["answered"] += 1
                    a["_talk"].append(c["talk_seconds"] or 0.0)
    for assignee, status in callbacks:
        if assignee in acc:
            if status == "open":
                acc[assignee]["callbacks_pending"] += 1
            elif status == "done":
                acc[assignee]["callbacks_done"] += 1
    out = []
    for a in acc.values():
        ring, talk = a.pop("_ring"), a.pop("_talk")
        a["avg_ring_seconds"] = round(sum(ring) / len(ring), 1) if ring else 0.0
        a["avg_talk_seconds"] = round(sum(talk) / len(talk), 1) if talk else 0.0
        out.append(a)
    return sorted(out, key=lambda a: str(a["name"]))


def hourly(calls: Iterable[dict[str, Any]], offset_minutes: int = 0) -> list[dict[str, int]]:
    """Inbound answered and missed calls per hour of the day (local time = UTC + offset)."""
    buckets = [{"hour": h, "answered": 0, "missed": 0, "outbound": 0} for h in range(24)]
    for c in calls:
        if not c.get("started_at"):
            continue
        at = datetime.fromisoformat(c["started_at"]) + timedelta(minutes=offset_minutes)
        b = buckets[at.hour]
        if c["direction"] == "outbound":
            b["outbound"] += 1
        elif c["outcome"] == "answered":
            b["answered"] += 1
        elif c["outcome"] in MISSED:
            b["missed"] += 1
    return buckets


CSV_COLUMNS = (
    "id",
    "started_at",
    "direction",
    "outcome",
    "caller",
    "caller_name",
    "callee",
    "did",
    "queue",
    "agents",
    "answered_by",
    "agent_name",
    "talked_last",
    "ring_seconds",
    "talk_seconds",
    "recording_id",
    "pbx",
    "conversation_id",
)


def to_csv(calls: Iterable[dict[str, Any]]) -> str:
    """The calls as CSV (header first); cells that a spreadsheet would run as formulas are
    prefixed with an apostrophe."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for c in calls:
        row = []
        for col in CSV_COLUMNS:
            v = c.get(col)
            if isinstance(v, list):
                v = " ".join(str(x) for x in v)
            text = "" if v is None else str(v)
            if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PLAIN_NUMBER.fullmatch(text):
                text = "'" + text
            row.append(text)
        w.writerow(row)
    return buf.getvalue()


async def participants_of(
    conn: AsyncConnection, activity_ids: Sequence[int]
) -> dict[int, list[int]]:
    """Participant user ids per activity id."""
    out: dict[int, list[int]] = {}
    if not activity_ids:
        return out
    rows = await conn.execute(
        select(activity_participants.c.activity_id, activity_participants.c.user_id).where(
            activity_participants.c.activity_id.in_(list(activity_ids))
        )
    )
    for r in rows:
        out.setdefault(int(r.activity_id), []).append(int(r.user_id))
    return out
