"""Click-to-call: place a call from an agent's extension and follow what becomes of it.

Pure parts (no I/O, tested without a loop):

* :func:`dial_number` turns what a person typed (``+7 (916) 123-45-67``) into what the PBX
  dials, with the PBX's ``dial_rules`` (first rule whose ``match`` matches wins: strip
  ``strip`` leading characters, then prepend ``prepend``);
* :func:`choose_line` picks the agent's extension on a PBX that can place calls;
* :func:`next_status` moves an origination's status along with the call events of its call.

:class:`ClickToCall` is the short I/O part: it stores each request in the ``originations``
table (``Idempotency-Key`` per user: the same key returns the same call and never places a
second one), asks the PBX's ``CallControl`` to originate with our call id (Asterisk
``ChannelId``: the agent leg's Uniqueid, hence the conversation id, is the call id), and runs
as a component that follows ``call.*`` events on the bus to keep the status current.

Statuses: ``requested`` -> ``agent_ringing`` -> ``agent_answered`` -> ``customer_answered``
-> ``completed``; or ``failed`` (with a reason such as "agent did not answer") once the call
ends without a conversation; ``rejected`` when the PBX refused or could not be asked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from connector.app import OriginateRequest
from connector.config import DialRule
from connector.events.model import CallAnswered, CallEnded, CallRinging, Event, Outcome

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "TERMINAL",
    "ClickToCall",
    "ClickToCallError",
    "InvalidNumber",
    "NoLine",
    "Origination",
    "choose_line",
    "clicktocall_components",
    "dial_number",
    "next_status",
]

MAX_NUMBER_DIGITS = 20
ACTIVE_HOURS = 6  # a click-to-call whose call never ends is no longer followed after this
_FORMATTING = re.compile(r"[\s\-().\u00a0]")

RANK = {
    "requested": 0,
    "agent_ringing": 1,
    "agent_answered": 2,
    "customer_answered": 3,
}
TERMINAL = frozenset({"completed", "failed", "rejected"})

FAILURE_REASONS = {
    "agent_no_answer": "agent did not answer",
    "agent_busy": "agent's phone is busy",
    "agent_failed": "agent's phone could not be reached",
}
OUTCOME_REASONS = {
    Outcome.NO_ANSWER: "customer did not answer",
    Outcome.BUSY: "customer is busy",
    Outcome.ABANDONED: "hung up before the customer answered",
    Outcome.FAILED: "the call could not be connected",
}


class ClickToCallError(Exception):
    """Base of click-to-call errors (the web layer maps them to HTTP statuses)."""


class InvalidNumber(ClickToCallError, ValueError):
    """The number to call is empty or not a phone number."""


class NoLine(ClickToCallError):
    """The user has no extension on a PBX that can place calls."""


# -------------------------------------------------------------------------------- pure


def dial_number(raw: str, rules: Sequence[DialRule] = ()) -> str:
    """What the PBX dials for ``raw``: formatting removed, then the first matching rule applied.

    Keeps a leading ``+``; accepts digits, ``*`` and ``#`` (feature codes). Raises
    :class:`InvalidNumber` with a message for people.
    """
    text = _FORMATTING.sub("", raw or "")
    if not text:
        raise InvalidNumber("the number to call is empty")
    body = text[1:] if text.startswith("+") else text
    if not body or not re.fullmatch(r"[0-9*#]+", body):
        raise InvalidNumber(f"{raw!r} is not a phone number (digits, optional leading +)")
    if len(body) > MAX_NUMBER_DIGITS:
        raise InvalidNumber(f"{raw!r} is too long for a phone number")
    for rule in rules:
        if re.match(rule.match, text):
            text = rule.prepend + text[rule.strip :]
            break
    if not text:
        raise InvalidNumber(f"the dial rules turned {raw!r} into nothing")
    return text


def choose_line(
    extensions: Sequence[tuple[str, str]], controllable: Sequence[str]
) -> tuple[str, str]:
    """The (pbx, extension) to call from: the first extension on a PBX that can originate.

    An extension registered for every PBX (``"*"``) is used on the only controllable PBX.
    Raises :class:`NoLine` naming what is missing.
    """
    if not extensions:
        raise NoLine("you have no extension; ask an admin to assign one")
    for pbx, ext in extensions:
        if pbx in controllable:
            return pbx, ext
    for pbx, ext in extensions:
        if pbx == "*" and len(controllable) == 1:
            return controllable[0], ext
    names = ", ".join(sorted({p for p, _ in extensions}))
    raise NoLine(f"none of your PBXs ({names}) is connected and able to place calls")


def next_status(current: str, event: Event, call_id: str) -> tuple[str, str] | None:
    """The new (status, reason) of origination ``call_id`` after ``event``, or None.

    Statuses only move forward; a finished origination never changes again.
    """
    if current in TERMINAL:
        return None
    new: str
    reason = ""
    if isinstance(event, CallEnded):
        if event.outcome == Outcome.ANSWERED and not event.failure:
            return "completed", ""
        if event.failure:
            return "failed", FAILURE_REASONS.get(event.failure, event.failure.replace("_", " "))
        if current == "requested" or (current == "agent_ringing" and not event.answered_by):
            return "failed", FAILURE_REASONS["agent_no_answer"]
        return "failed", OUTCOME_REASONS.get(event.outcome, "the call ended")
    if isinstance(event, CallAnswered):
        new = "customer_answered" if event.remote else "agent_answered"
    elif isinstance(event, CallRinging):
        if event.leg_id and event.leg_id != call_id:
            return None  # the customer's leg ringing; the agent already answered
        new = "agent_ringing"
    else:
        return None
    if RANK.get(new, 0) <= RANK.get(current, 0):
        return None
    return new, reason


def _belongs_to(event: Event, call_id: str) -> bool:
    if event.conversation_id == call_id or getattr(event, "leg_id", "") == call_id:
        return True
    return isinstance(event, CallEnded) and call_id in event.merged_ids


# -------------------------------------------------------------------------------- I/O


@dataclass(frozen=True, slots=True)
class Origination:
    """One click-to-call request as stored."""

    call_id: str
    user_id: int | None
    pbx: str
    extension: str
    to: str
    to_dial: str
    contact_id: int | None
    status: str
    reason: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "call_id": self.call_id,
            "status": self.status,
            "reason": self.reason,
            "pbx": self.pbx,
            "extension": self.extension,
            "to": self.to,
            "to_dial": self.to_dial,
            "contact_id": self.contact_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _row(row: Any) -> Origination:
    def aware(value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    return Origination(
        call_id=row.id,
        user_id=row.user_id,
        pbx=row.pbx,
        extension=row.extension,
        to=row.to_raw,
        to_dial=row.to_dial,
        contact_id=row.contact_id,
        status=row.status,
        reason=row.reason,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


class ClickToCall:
    """Places click-to-call requests and follows their calls (a runtime component)."""

    name = "clicktocall"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._active: dict[str, str] = {}  # call id -> status, for calls still in progress
        self._since: dict[str, float] = {}  # call id -> when it was placed (monotonic)
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._sub = runtime.bus.subscribe(
            "clicktocall", {"call.ringing", "call.answered", "call.ended"}
        )
        runtime.extras["clicktocall"] = self

    # -- requests ------------------------------------------------------------------------------

    def dial_rules(self, pbx: str) -> tuple[DialRule, ...]:
        """The dial rules of PBX ``pbx`` (none for PBXs without an Asterisk section)."""
        for p in self.runtime.settings.pbx:
            if p.name == pbx:
                return p.dial_rules
        return ()

    def originate_timeout(self, pbx: str) -> float:
        """Seconds the agent's phone rings before the PBX gives up."""
        for p in self.runtime.settings.pbx:
            if p.name == pbx:
                return p.originate_timeout
        return 30.0

    async def get(self, call_id: str) -> Origination | None:
        """The stored origination, or None."""
        from crm_sync.schema import originations

        async with self.runtime.engine.connect() as conn:
            row = (
                await conn.execute(select(originations).where(originations.c.id == call_id))
            ).first()
        return _row(row) if row is not None else None

    async def _by_key(self, user_id: int | None, key: str) -> Origination | None:
        from crm_sync.schema import originations

        async with self.runtime.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(originations).where(
                        originations.c.user_id == user_id,
                        originations.c.idempotency_key == key,
                    )
                )
            ).first()
        return _row(row) if row is not None else None

    async def place(
        self,
        *,
        user_id: int | None,
        extensions: Sequence[tuple[str, str]],
        to: str,
        idempotency_key: str,
        contact_id: int | None = None,
        caller_name: str = "",
    ) -> tuple[Origination, bool]:
        """Place a call (or find the one this key already placed); returns (it, created).

        Raises :class:`InvalidNumber` or :class:`NoLine`. A PBX that refuses gives an
        origination with status ``rejected`` and the reason.
        """
        from crm_sync.schema import originations

        async with self._lock:  # one request per key at a time, also across users
            existing = await self._by_key(user_id, idempotency_key)
            if existing is not None:
                return existing, False
            pbx, extension = choose_line(extensions, sorted(self.runtime.controls))
            number = dial_number(to, self.dial_rules(pbx))
            call_id = f"c2c-{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            try:
                async with self.runtime.engine.begin() as conn:
                    await conn.execute(
                        originations.insert().values(
                            id=call_id,
                            user_id=user_id,
                            idempotency_key=idempotency_key,
                            pbx=pbx,
                            extension=extension,
                            to_raw=to,
                            to_dial=number,
                            contact_id=contact_id,
                            status="requested",
                            reason="",
                            created_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:  # another process stored this key first
                again = await self._by_key(user_id, idempotency_key)
                if again is None:
                    raise
                return again, False
            self._active[call_id] = "requested"  # before originating: events may come at once
            self._since[call_id] = time.monotonic()
        control = self.runtime.controls.get(pbx)
        if control is None:
            result_ok, reason = False, f"PBX {pbx} is not connected"
        else:
            result = await control.originate(
                OriginateRequest(
                    call_id=call_id,
                    pbx=pbx,
                    extension=extension,
                    number=number,
                    caller_name=caller_name,
                    timeout=self.originate_timeout(pbx),
                )
            )
            result_ok, reason = result.accepted, result.reason
        if not result_ok:
            logger.warning(
                "click-to-call %s from %s/%s refused: %s", call_id, pbx, extension, reason
            )
            await self._set(call_id, "rejected", reason or "the PBX refused the call")
        else:
            logger.info("click-to-call %s: %s/%s -> %s", call_id, pbx, extension, number)
        stored = await self.get(call_id)
        assert stored is not None
        return stored, True

    async def _set(self, call_id: str, status: str, reason: str) -> None:
        from crm_sync.schema import originations

        async with self.runtime.engine.begin() as conn:
            await conn.execute(
                update(originations)
                .where(originations.c.id == call_id)
                .values(status=status, reason=reason, updated_at=datetime.now(UTC))
            )
        if status in TERMINAL:
            self._active.pop(call_id, None)
            self._since.pop(call_id, None)
        else:
            self._active[call_id] = status
        self._changed.set()

    async def wait_status(
        self, call_id: str, statuses: frozenset[str] | set[str], timeout: float = 10.0
    ) -> Origination:
        """Wait (bounded) until the origination has one of ``statuses``."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                current = await self.get(call_id)
                if current is not None and current.status in statuses:
                    return current
                await self._changed.wait()

    # -- following the calls ----------------------------------------------------------------

    async def apply(self, event: Event) -> None:
        """Update every active origination this event is about."""
        for call_id, status in list(self._active.items()):
            if not _belongs_to(event, call_id):
                continue
            change = next_status(status, event, call_id)
            if change is not None:
                logger.info("click-to-call %s: %s -> %s %s", call_id, status, *change)
                await self._set(call_id, *change)

    def _forget_stale(self) -> None:
        """Stop following calls whose end never came (no events for ``ACTIVE_HOURS``)."""
        limit = time.monotonic() - ACTIVE_HOURS * 3600
        for call_id, since in list(self._since.items()):
            if since < limit:
                self._since.pop(call_id, None)
                self._active.pop(call_id, None)

    async def _resume(self) -> None:
        """After a restart: follow again the originations of the last hours still in progress."""
        from crm_sync.schema import originations

        since = datetime.now(UTC) - timedelta(hours=ACTIVE_HOURS)
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(
                select(originations.c.id, originations.c.status).where(
                    originations.c.status.not_in(sorted(TERMINAL)),
                    originations.c.created_at >= since,
                )
            )
            for row in rows:
                self._active.setdefault(row.id, row.status)
                self._since.setdefault(row.id, time.monotonic())

    async def run(self) -> None:
        """Follow call events until cancelled."""
        try:
            await self._resume()
            while True:
                event = await self._sub.get()
                if not self._active:
                    continue
                self._forget_stale()
                try:
                    await self.apply(event)
                except Exception:
                    logger.exception("click-to-call status update failed for %s", event.key)
        finally:
            self.runtime.bus.unsubscribe(self._sub)


def clicktocall_components(runtime: Runtime) -> list[Component]:
    """The click-to-call service (also reachable as ``runtime.extras["clicktocall"]``)."""
    existing = runtime.extras.get("clicktocall")
    return [existing if isinstance(existing, ClickToCall) else ClickToCall(runtime)]
