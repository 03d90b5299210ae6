"""Missed-call callback tasks: create, fold repeats, close when someone gets through.

Rules, applied by :func:`after_call` inside the call log's transaction:

* An **inbound call that was not answered** (no answer, busy, abandoned, failed) from a number
  that is not hidden gets a ``callback`` task, assigned through the fallback chain
  (:func:`crm_sync.routing.assignee_for`: responsible manager, last agent who rang, the fallback
  team, the default user), due ``[calllog] missed_task_due_minutes`` after the call ended.
* A **repeated missed call** from a number that already has an open callback task updates that
  task (``attempts`` + 1, a line in the description) instead of creating another.
* A **later answered call with the same number**, in either direction, closes the open callback
  tasks of that number, noting who called back (or whom the customer reached) and when.

Numbers are keyed by :func:`number_key` (stored in ``tasks.number_e164``): the E.164 form, or
for a number without one (a short service number, an odd format) its digits, so repeats of those
fold and close too. Hidden numbers get no key and no task. Each created or updated task yields a
``task.created`` event for the bus.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.config import CallLogSettings
from connector.events.model import CallEnded, Direction, Outcome, TaskCreated
from crm_sync.phones import digits_of, is_hidden
from crm_sync.schema import tasks, users

if TYPE_CHECKING:
    from crm_sync.calllog import LoggedCall

logger = logging.getLogger(__name__)

__all__ = ["MAX_KEY_DIGITS", "after_call", "number_key"]

UserOf = Callable[[str, str], int | None]

_OUTCOME_TEXT = {
    Outcome.NO_ANSWER: "no answer",
    Outcome.BUSY: "busy",
    Outcome.ABANDONED: "the caller hung up while it rang",
    Outcome.FAILED: "failed",
}


#: The longest digit string used as a key for a number without an E.164 form; anything longer
#: is garbage from the PBX (its missed call still gets a task, but it is not folded or closed).
MAX_KEY_DIGITS = 20


def number_key(raw: str, e164: str | None) -> str | None:
    """The key callback tasks use for a number: its E.164 form (``+79161234567``), else its
    digits (``0611`` for ``*06-11``, never starting with ``+`` so the two cannot collide);
    None if the number is hidden or its digits are too many to be a phone number."""
    if not raw or is_hidden(raw):
        return None
    if e164:
        return e164
    digits = digits_of(raw)
    return digits if 0 < len(digits) <= MAX_KEY_DIGITS else None


def printable(text: str) -> str:
    """``text`` without control characters (caller names come from the PBX as they are)."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _CONTROL)


_CONTROL = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


async def _user_label(conn: AsyncConnection, user_id: int | None, ext: str) -> str:
    name = ""
    if user_id is not None:
        row = (await conn.execute(select(users.c.name).where(users.c.id == user_id))).first()
        name = row.name if row else ""
    if name and ext:
        return f"{name} (ext. {ext})"
    return name or (f"ext. {ext}" if ext else "an agent")


def _event(
    task_id: int,
    attempts: int,
    event: CallEnded,
    assignee: int | None,
    title: str,
    number: str,
    now: datetime,
) -> TaskCreated:
    return TaskCreated(
        key=f"task.created:{task_id}:{attempts}",
        pbx=event.pbx,
        conversation_id=event.conversation_id,
        occurred_at=now,
        observed_at=now,
        task_id=task_id,
        assignee_id=assignee,
        title=title,
        number=number,
    )


async def _close_open(
    conn: AsyncConnection, key: str, event: CallEnded, cols: Mapping[str, Any], now: datetime
) -> None:
    from crm_sync.tasks import update_task

    open_ids = [
        int(r.id)
        for r in await conn.execute(
            select(tasks.c.id).where(
                tasks.c.kind == "callback", tasks.c.status == "open", tasks.c.number_e164 == key
            )
        )
    ]
    if not open_ids:
        return
    when = (event.answered_at or event.ended_at or event.occurred_at).strftime("%Y-%m-%d %H:%M UTC")
    if event.direction == Direction.OUTBOUND:
        ext = event.caller.number or event.answered_by
        uid = cols.get("user_id")
        who = await _user_label(conn, uid if isinstance(uid, int) else None, ext)
        note = f"Called back by {who} at {when}."
    else:
        ext = event.answered_by
        uid = cols.get("answered_by_user_id")
        who = await _user_label(conn, uid if isinstance(uid, int) else None, ext)
        note = f"The customer called again and was answered by {who} at {when}."
    for task_id in open_ids:
        await update_task(conn, task_id, {"status": "done", "closed_note": note}, now=now)
        logger.info("callback task %s for %s closed: %s", task_id, key, note)


async def after_call(
    conn: AsyncConnection,
    event: CallEnded,
    logged: LoggedCall,
    cols: Mapping[str, Any],
    *,
    settings: CallLogSettings,
    user_of: UserOf,
    now: datetime,
) -> list[TaskCreated]:
    """Apply the callback rules to a freshly logged call; returns the task events to publish."""
    from crm_sync.audit import record
    from crm_sync.routing import assignee_for
    from crm_sync.tasks import create_task

    if event.direction == Direction.INBOUND:
        raw, key = event.caller.number, number_key(event.caller.number, cols.get("caller_e164"))
    elif event.direction == Direction.OUTBOUND:
        raw, key = event.callee.number, number_key(event.callee.number, cols.get("callee_e164"))
    else:
        return []
    if not raw or is_hidden(raw):
        return []
    if event.outcome == Outcome.ANSWERED:
        if key is not None:
            await _close_open(conn, key, event, cols, now)
        return []
    if event.direction != Direction.INBOUND:
        return []
    shown = key or digits_of(raw)[:32]
    ended = event.ended_at or event.occurred_at
    line = printable(
        f"{ended:%Y-%m-%d %H:%M:%S} UTC: missed call on {event.did or event.pbx} "
        f"({_OUTCOME_TEXT[event.outcome]}); rang: {', '.join(event.rang) or 'nobody'}"
    )
    existing = (
        None
        if key is None
        else (
            await conn.execute(
                select(
                    tasks.c.id,
                    tasks.c.attempts,
                    tasks.c.description,
                    tasks.c.assignee_id,
                    tasks.c.title,
                )
                .where(
                    tasks.c.kind == "callback", tasks.c.status == "open", tasks.c.number_e164 == key
                )
                .order_by(tasks.c.id)
                .limit(1)
            )
        ).first()
    )
    if existing is not None:
        attempts = int(existing.attempts) + 1
        await conn.execute(
            update(tasks)
            .where(tasks.c.id == existing.id)
            .values(
                attempts=attempts,
                description=(existing.description + "\n" + line).strip()[-20000:],
                updated_at=now,
            )
        )
        await record(
            conn,
            None,
            "task.update",
            "task",
            existing.id,
            {"attempts": attempts, "activity_id": logged.activity_id},
            now=now,
        )
        logger.info("callback task %s for %s: missed call number %d", existing.id, key, attempts)
        return [
            _event(
                int(existing.id), attempts, event, existing.assignee_id, existing.title, shown, now
            )
        ]
    last_agent = None
    for ext in reversed(event.rang):
        last_agent = user_of(event.pbx, ext)
        if last_agent is not None:
            break
    choice = await assignee_for(
        conn,
        chain=settings.fallback_chain,
        responsible_user_id=logged.responsible_user_id,
        last_agent_user_id=last_agent,
        fallback_team=settings.fallback_team,
        fallback_user=settings.fallback_user,
    )
    caller_name = " ".join(printable(event.caller.name).split())[:200]
    title = f"Call back {caller_name} {shown}" if caller_name else f"Call back {shown}"
    task = await create_task(
        conn,
        {
            "title": title[:300],
            "description": f"{line}\nAssigned to: {choice.reason}",
            "kind": "callback",
            "due_at": (ended + timedelta(minutes=settings.missed_task_due_minutes)).isoformat(),
            "assignee_id": choice.user_id,
            "contact_id": logged.contact_id,
            "company_id": logged.company_id,
            "activity_id": logged.activity_id,
            "number_e164": key,
        },
        now=now,
    )
    logger.info(
        "callback task %s for %s assigned to %s (%s)", task.id, shown, choice.user_id, choice.reason
    )
    return [_event(task.id, 1, event, task.assignee_id, task.title, shown, now)]
