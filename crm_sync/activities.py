"""Activities: notes written by people, and (read-only here) calls written by the call log.

Notes are created and edited through this module. Fields: ``body`` (required), ``contact_id``,
``company_id``. Call activities are written by :mod:`crm_sync.calllog`; here they are only
read, listed and deleted.

Visibility is the caller's business: :func:`list_activities` filters by ``user_ids``: an
activity belongs to a user when the user wrote it (``user_id``), answered it
(``answered_by_user_id``) or took part in it (``activity_participants``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.audit import record
from crm_sync.errors import NotFound, ValidationError
from crm_sync.fields import aware, check_known, opt_id, req_text, utc_now
from crm_sync.paging import Page, check_page
from crm_sync.schema import activities, activity_participants, companies, contacts

logger = logging.getLogger(__name__)

__all__ = [
    "ACTIVITY_KINDS",
    "NOTE_FIELDS",
    "Activity",
    "create_note",
    "delete_activity",
    "get_activity",
    "list_activities",
    "update_note",
]

ACTIVITY_KINDS = ("call", "note")
NOTE_FIELDS = frozenset({"body", "contact_id", "company_id"})


@dataclass(frozen=True, slots=True)
class Activity:
    """A note or a call; ``call`` holds the call columns (empty for notes)."""

    id: int
    kind: str
    contact_id: int | None
    company_id: int | None
    user_id: int | None
    body: str
    created_at: datetime
    call: dict[str, Any] = field(default_factory=dict)
    participant_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ``call`` as ISO 8601)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "contact_id": self.contact_id,
            "company_id": self.company_id,
            "user_id": self.user_id,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
            "call": {
                k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.call.items()
            }
            or None,
            "participant_ids": list(self.participant_ids),
        }


#: Columns that only calls fill; shown under ``call`` in :class:`Activity`.
CALL_COLUMNS = (
    "pbx",
    "conversation_id",
    "direction",
    "outcome",
    "caller_raw",
    "caller_e164",
    "caller_name",
    "callee_raw",
    "callee_e164",
    "did",
    "queue",
    "agents",
    "answered_by",
    "answered_by_user_id",
    "talked_last",
    "transfers",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "recording_ref",
    "recording_id",
    "responsible_user_id",
)
MAX_BODY = 20_000


def _activity_of(r: Any, participants: tuple[int, ...] = ()) -> Activity:
    created = aware(r.created_at)
    assert created is not None
    call: dict[str, Any] = {}
    if r.kind == "call":
        for col in CALL_COLUMNS:
            value = getattr(r, col)
            call[col] = aware(value) if isinstance(value, datetime) else value
    return Activity(
        id=int(r.id),
        kind=r.kind,
        contact_id=r.contact_id,
        company_id=r.company_id,
        user_id=r.user_id,
        body=r.body,
        created_at=created,
        call=call,
        participant_ids=participants,
    )


async def _participants(conn: AsyncConnection, ids: list[int]) -> dict[int, tuple[int, ...]]:
    out: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for r in await conn.execute(
            select(activity_participants.c.activity_id, activity_participants.c.user_id)
            .where(activity_participants.c.activity_id.in_(ids))
            .order_by(activity_participants.c.user_id)
        ):
            out[int(r.activity_id)].append(int(r.user_id))
    return {k: tuple(v) for k, v in out.items()}


async def _note_values(
    conn: AsyncConnection, data: Mapping[str, Any], *, creating: bool
) -> dict[str, Any]:
    check_known(data, NOTE_FIELDS, "a note")
    values: dict[str, Any] = {}
    if creating or "body" in data:
        values["body"] = req_text(data, "body", MAX_BODY)
    for key, table, what in (
        ("contact_id", contacts, "contact"),
        ("company_id", companies, "company"),
    ):
        if key in data:
            values[key] = opt_id(data, key)
            if values[key] is not None:
                found = (
                    await conn.execute(select(table.c.id).where(table.c.id == values[key]))
                ).first()
                if found is None:
                    raise ValidationError(key, f"{key}: {what} {values[key]} does not exist")
    return values


async def create_note(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Activity:
    """Write a note by ``user_id``. Audited. Raises ValidationError (also for a link to a
    contact or company that does not exist)."""
    now = now or utc_now()
    values = await _note_values(conn, data, creating=True)
    result = await conn.execute(
        activities.insert()
        .values(kind="note", user_id=user_id, created_at=now, **values)
        .returning(activities.c.id)
    )
    activity_id = int(result.scalar_one())
    details = {k: v for k, v in values.items() if k != "body"}
    await record(conn, user_id, "note.create", "activity", activity_id, details, now=now)
    return await get_activity(conn, activity_id)


async def get_activity(conn: AsyncConnection, activity_id: int) -> Activity:
    """The activity with ``activity_id``; raises NotFound."""
    row = (await conn.execute(select(activities).where(activities.c.id == activity_id))).first()
    if row is None:
        raise NotFound("activity", activity_id)
    parts = await _participants(conn, [activity_id])
    return _activity_of(row, parts[activity_id])


async def update_note(
    conn: AsyncConnection,
    activity_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Activity:
    """Edit a note. Audited. Raises NotFound, ValidationError (also when it is a call)."""
    old = await get_activity(conn, activity_id)
    if old.kind != "note":
        raise ValidationError("kind", f"activity {activity_id} is a {old.kind}, not a note")
    values = await _note_values(conn, changes, creating=False)
    if values:
        await conn.execute(
            update(activities).where(activities.c.id == activity_id).values(**values)
        )
    details = {k: v for k, v in values.items() if k != "body"}
    details["body_changed"] = "body" in values
    await record(conn, user_id, "note.update", "activity", activity_id, details, now=now)
    return await get_activity(conn, activity_id)


async def delete_activity(
    conn: AsyncConnection,
    activity_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete an activity. Audited. Raises NotFound."""
    old = await get_activity(conn, activity_id)
    await conn.execute(
        delete(activity_participants).where(activity_participants.c.activity_id == activity_id)
    )
    await conn.execute(delete(activities).where(activities.c.id == activity_id))
    await record(
        conn, user_id, "activity.delete", "activity", activity_id, {"kind": old.kind}, now=now
    )


async def list_activities(
    conn: AsyncConnection,
    *,
    user_ids: Sequence[int] | None = None,
    kind: str | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Activity]:
    """Activities newest first matching every given filter.

    ``user_ids=None`` means anyone's (admins); an empty list matches nothing.
    """
    limit, offset = check_page(limit, offset)
    if user_ids is not None and not user_ids:
        return Page(items=[], total=0, limit=limit, offset=offset)
    conds: list[Any] = []
    if user_ids is not None:
        ids = list(user_ids)
        conds.append(
            or_(
                activities.c.user_id.in_(ids),
                activities.c.answered_by_user_id.in_(ids),
                activities.c.id.in_(
                    select(activity_participants.c.activity_id).where(
                        activity_participants.c.user_id.in_(ids)
                    )
                ),
            )
        )
    if kind is not None:
        if kind not in ACTIVITY_KINDS:
            raise ValidationError(
                "kind", f"kind must be one of {', '.join(ACTIVITY_KINDS)}, got {kind!r}"
            )
        conds.append(activities.c.kind == kind)
    if contact_id is not None:
        conds.append(activities.c.contact_id == contact_id)
    if company_id is not None:
        conds.append(activities.c.company_id == company_id)
    if since is not None:
        conds.append(activities.c.created_at >= aware(since))
    if until is not None:
        conds.append(activities.c.created_at < aware(until))
    total = (
        await conn.execute(select(func.count()).select_from(activities).where(*conds))
    ).scalar_one()
    rows = (
        await conn.execute(
            select(activities)
            .where(*conds)
            .order_by(activities.c.created_at.desc(), activities.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    parts = await _participants(conn, [int(r.id) for r in rows])
    return Page(
        items=[_activity_of(r, parts[int(r.id)]) for r in rows],
        total=int(total),
        limit=limit,
        offset=offset,
    )
