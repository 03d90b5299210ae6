"""The call log: one ``call`` activity per conversation, written on ``call.ended``.

:func:`call_columns` is the pure core: it turns a :class:`~connector.events.model.CallEnded`
into the activity's columns (direction, both numbers raw and E.164, DID, every agent who rang,
who answered and talked last, transfers, queue, times, durations, outcome, recording reference).
:func:`log_call` adds what needs the database: the matched contact or company and its
responsible manager at that moment (:func:`crm_sync.lookup.lookup`), an automatically created
contact for an unknown number when ``[calllog]`` says so, the participants (every user on the
call), the link to an already stored recording, and then the missed-call task logic of
:mod:`crm_sync.callbacks`, all in one transaction.

Idempotency: ``activities`` is unique on (pbx, conversation_id). A conversation seen twice, or
again after a restart, finds its activity and changes nothing (no second task either).

Automatic contacts: ``create_contacts_inbound`` / ``create_contacts_outbound`` switch it on per
direction; ``create_contacts_lines``, when not empty, limits it to calls on those lines (DIDs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.config import CallLogSettings
from connector.events.model import CallEnded, Direction, Event, Outcome
from crm_sync.errors import CrmError
from crm_sync.phones import is_hidden, normalize
from crm_sync.schema import activities, activity_participants, recordings

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "CallLogWriter",
    "LoggedCall",
    "call_columns",
    "components",
    "creates_contact",
    "customer_number",
    "log_call",
    "participant_ids",
]

LOGGED = Counter("connector_calllog_written_total", "Call activities written", ["outcome"])
DUPLICATES = Counter("connector_calllog_duplicates_total", "call.ended seen again, ignored")
FAILURES = Counter(
    "connector_calllog_failures_total",
    "Failures while logging calls (call: not logged; contact, task: logged without it)",
    ["what"],
)

UserOf = Callable[[str, str], int | None]


def customer_number(event: CallEnded) -> str:
    """The outside party's number: the caller of an inbound call, the callee of an outbound one."""
    if event.direction == Direction.OUTBOUND:
        return event.callee.number
    if event.direction == Direction.INBOUND:
        return event.caller.number
    return ""


def _e164(raw: str, region: str) -> str | None:
    if not raw or is_hidden(raw):
        return None
    return normalize(raw, region).e164


def _seconds(value: float) -> float:
    return round(max(0.0, float(value)), 3)


def participant_ids(event: CallEnded, user_of: UserOf) -> list[int]:
    """Every user on the call: who rang, answered, talked last, took a transfer, or dialled out."""
    exts: list[str] = [*event.rang, event.answered_by, event.talked_last]
    for src, dst in event.transfers:
        exts.extend((src, dst))
    if event.direction in (Direction.OUTBOUND, Direction.INTERNAL):
        exts.append(event.caller.number)
    if event.direction == Direction.INTERNAL:
        exts.append(event.callee.number)
    out: list[int] = []
    for ext in exts:
        uid = user_of(event.pbx, ext) if ext else None
        if uid is not None and uid not in out:
            out.append(uid)
    return out


def call_columns(
    event: CallEnded, *, region: str, user_of: UserOf, now: datetime
) -> dict[str, Any]:
    """The activity columns for an ended call (no contact, responsible or recording id yet)."""
    answered_uid = user_of(event.pbx, event.answered_by) if event.answered_by else None
    owner = answered_uid
    if owner is None and event.direction in (Direction.OUTBOUND, Direction.INTERNAL):
        owner = user_of(event.pbx, event.caller.number) if event.caller.number else None
    if owner is None and event.rang:
        owner = user_of(event.pbx, event.rang[-1])
    caller_raw = event.caller.number
    callee_raw = event.callee.number
    return {
        "kind": "call",
        "user_id": owner,
        "body": summary(event),
        "pbx": event.pbx,
        "conversation_id": event.conversation_id,
        "direction": str(event.direction),
        "outcome": str(event.outcome),
        "caller_raw": caller_raw[:64],
        "caller_e164": _e164(caller_raw, region),
        "caller_name": event.caller.name[:200] or None,
        "callee_raw": callee_raw[:64],
        "callee_e164": _e164(callee_raw, region),
        "did": event.did[:64] or None,
        "queue": event.queue[:100] or None,
        "agents": list(event.rang),
        "answered_by": event.answered_by or None,
        "answered_by_user_id": answered_uid,
        "talked_last": event.talked_last or None,
        "transfers": [[a, b] for a, b in event.transfers],
        "started_at": event.started_at or event.occurred_at,
        "answered_at": event.answered_at,
        "ended_at": event.ended_at or event.occurred_at,
        "ring_seconds": _seconds(event.ring_seconds),
        "talk_seconds": _seconds(event.talk_seconds),
        "recording_ref": event.recording[:500] or None,
        "created_at": now,
    }


def summary(event: CallEnded) -> str:
    """One line for people: "Inbound call from +7..., answered by 101, 3 s"."""
    who = customer_number(event) or "hidden number"
    way = {
        Direction.INBOUND: f"Inbound call from {who}",
        Direction.OUTBOUND: f"Outbound call to {who}",
        Direction.INTERNAL: "Internal call",
    }.get(event.direction, "Call")
    if event.outcome == Outcome.ANSWERED:
        text = f"{way}, answered by {event.answered_by or '?'}, {event.talk_seconds:.0f} s"
        if event.talked_last and event.talked_last != event.answered_by:
            text += f", transferred to {event.talked_last}"
        return text
    label = {
        Outcome.NO_ANSWER: "not answered",
        Outcome.BUSY: "busy",
        Outcome.ABANDONED: "caller hung up while ringing",
        Outcome.FAILED: "failed",
    }[event.outcome]
    return f"{way}, {label}"


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """The result of :func:`log_call`: the activity and whether this call wrote it."""

    activity_id: int
    created: bool
    contact_id: int | None = None
    company_id: int | None = None
    responsible_user_id: int | None = None
    contact_created: bool = False
    events: tuple[Event, ...] = field(default_factory=tuple)


def creates_contact(settings: CallLogSettings, event: CallEnded) -> bool:
    """True if an unknown number on this call should become a contact (see module docstring)."""
    if event.direction == Direction.INBOUND:
        on = settings.create_contacts_inbound
    elif event.direction == Direction.OUTBOUND:
        on = settings.create_contacts_outbound
    else:
        return False
    if not on:
        return False
    return not settings.create_contacts_lines or event.did in settings.create_contacts_lines


async def _existing(conn: AsyncConnection, pbx: str, conversation_id: str) -> Any:
    return (
        await conn.execute(
            select(
                activities.c.id,
                activities.c.contact_id,
                activities.c.company_id,
                activities.c.responsible_user_id,
            ).where(activities.c.pbx == pbx, activities.c.conversation_id == conversation_id)
        )
    ).first()


async def _write(
    conn: AsyncConnection,
    event: CallEnded,
    *,
    settings: CallLogSettings,
    region: str,
    user_of: UserOf,
    now: datetime,
) -> LoggedCall:
    from crm_sync.callbacks import after_call, printable
    from crm_sync.contacts import create_contact
    from crm_sync.lookup import lookup

    cols = call_columns(event, region=region, user_of=user_of, now=now)
    number = customer_number(event)
    contact_id = company_id = responsible = None
    contact_created = False
    if number and not is_hidden(number):
        found = await lookup(conn, number, region, limit=1)
        best = found.best
        if best is not None:
            responsible = best.responsible_user_id
            if best.kind == "contact":
                contact_id, company_id = best.id, best.company_id
            else:
                company_id = best.id
        elif creates_contact(settings, event):
            party = event.caller if event.direction == Direction.INBOUND else event.callee
            clean = " ".join(printable(party.name).split())
            name = clean if clean and clean != number else ""
            try:
                contact = await create_contact(
                    conn,
                    {
                        "name": (name or f"Unknown {number}")[:300],
                        "phones": [number],
                        "responsible_user_id": cols["user_id"],
                        "tags": ["auto-created"],
                        "notes": f"Created from a call on {event.did or event.pbx}",
                    },
                    region=region,
                    now=now,
                )
            except CrmError as exc:  # refused before writing: the call is logged without it
                FAILURES.labels("contact").inc()
                logger.warning("no contact created for %s: %s", number, exc.message)
            else:
                contact_id, company_id = contact.id, contact.company_id
                responsible = contact.responsible_user_id
                contact_created = True
    cols.update(contact_id=contact_id, company_id=company_id, responsible_user_id=responsible)
    rec = (
        await conn.execute(
            select(recordings.c.id).where(
                recordings.c.pbx == event.pbx,
                recordings.c.conversation_id == event.conversation_id,
                recordings.c.status == "ready",
            )
        )
    ).first()
    if rec is not None:
        cols["recording_id"] = int(rec.id)
    result = await conn.execute(activities.insert().values(**cols))
    pk = result.inserted_primary_key
    assert pk is not None
    activity_id = int(pk[0])
    people = participant_ids(event, user_of)
    if people:
        await conn.execute(
            activity_participants.insert(),
            [{"activity_id": activity_id, "user_id": uid} for uid in people],
        )
    logged = LoggedCall(
        activity_id=activity_id,
        created=True,
        contact_id=contact_id,
        company_id=company_id,
        responsible_user_id=responsible,
        contact_created=contact_created,
    )
    try:
        events = await after_call(
            conn, event, logged, cols, settings=settings, user_of=user_of, now=now
        )
    except CrmError as exc:  # refused before writing: keep the call, report the task
        FAILURES.labels("task").inc()
        logger.error(
            "callback task for %s/%s refused: %s", event.pbx, event.conversation_id, exc.message
        )
        events = []
    return replace(logged, events=tuple(events))


async def log_call(
    engine: AsyncEngine,
    event: CallEnded,
    *,
    settings: CallLogSettings,
    region: str,
    user_of: UserOf,
    now: datetime | None = None,
) -> LoggedCall:
    """Write the call activity for ``event`` (and its missed-call task), once.

    Everything happens in one transaction; if the conversation is already logged (a repeat, a
    replay after restart, or a concurrent writer) nothing is written and ``created`` is False.
    The returned ``events`` (``task.created``) are for the caller to publish after the commit.
    """
    now = now or datetime.now(UTC)
    async with engine.connect() as conn:
        row = await _existing(conn, event.pbx, event.conversation_id)
    if row is None:
        try:
            async with engine.begin() as conn:
                return await _write(
                    conn, event, settings=settings, region=region, user_of=user_of, now=now
                )
        except IntegrityError:
            async with engine.connect() as conn:
                row = await _existing(conn, event.pbx, event.conversation_id)
            if row is None:
                raise
    DUPLICATES.inc()
    return LoggedCall(
        activity_id=int(row.id),
        created=False,
        contact_id=row.contact_id,
        company_id=row.company_id,
        responsible_user_id=row.responsible_user_id,
    )


class CallLogWriter:
    """Component: writes the call log from ``call.ended``, one event at a time, in order."""

    name = "calllog"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.subscription = runtime.bus.subscribe(self.name, {CallEnded.TYPE})
        self.handled = 0
        self._progress = asyncio.Condition()

    async def handle(self, event: CallEnded) -> LoggedCall | None:
        """Log one call and publish what it caused; errors are logged and counted."""
        rt = self.runtime
        try:
            logged = await log_call(
                rt.engine,
                event,
                settings=rt.settings.calllog,
                region=rt.settings.storage.default_region,
                user_of=lambda pbx, ext: rt.directory.user_of(pbx, ext),
            )
        except Exception:
            FAILURES.labels("call").inc()
            logger.exception("call %s/%s could not be logged", event.pbx, event.conversation_id)
            return None
        if logged.created:
            LOGGED.labels(str(event.outcome)).inc()
            logger.info(
                "call %s/%s logged as activity %s (%s, %s)",
                event.pbx,
                event.conversation_id,
                logged.activity_id,
                event.direction,
                event.outcome,
            )
        for out in logged.events:
            rt.publish(out)
        return logged

    async def run(self) -> None:
        """Consume ``call.ended`` until cancelled."""
        while True:
            event = await self.subscription.get()
            if isinstance(event, CallEnded):
                await self.handle(event)
            async with self._progress:
                self.handled += 1
                self._progress.notify_all()

    async def wait_handled(self, count: int, timeout: float) -> None:
        """Wait until ``count`` events in total have been consumed (status pages, tests)."""
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self.handled >= count)


def components(runtime: Runtime) -> list[Component]:
    """The call log writer (it subscribes at construction so no call.ended is missed)."""
    return [CallLogWriter(runtime)]
