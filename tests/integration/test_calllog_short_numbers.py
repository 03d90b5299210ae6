"""Missed-call tasks for numbers without an E.164 form (short service numbers, odd formats).

Call events go over the runtime's bus to the real call log writer on SQLite; the tasks it
writes are read back from the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.app import Runtime
from connector.events.model import CallEnded, Direction, Outcome, Party
from crm_sync.schema import tasks
from tests.integration.calllog_support import add_user, open_runtime, writer_running

START = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


def ended(
    n: int,
    number: str,
    outcome: Outcome,
    direction: Direction = Direction.INBOUND,
    *,
    answered_by: str = "",
) -> CallEnded:
    """The end of call ``n`` (a minute after the previous one) with ``number`` outside."""
    at = START + timedelta(minutes=n)
    outside, agent = Party(number), Party("101")
    return CallEnded(
        key=f"short-{n}",
        pbx="pbx1",
        conversation_id=f"short-{n}",
        occurred_at=at,
        observed_at=at,
        direction=direction,
        outcome=outcome,
        caller=outside if direction is Direction.INBOUND else agent,
        callee=agent if direction is Direction.INBOUND else outside,
        rang=("101",),
        answered_by=answered_by,
        started_at=at - timedelta(seconds=30),
        answered_at=at - timedelta(seconds=20) if answered_by else None,
        ended_at=at,
    )


async def log_calls(runtime: Runtime, events: list[CallEnded]) -> list[Any]:
    """Publish the calls, wait until the writer handled them all; every task, by id."""
    async with writer_running(runtime) as writer:
        for event in events:
            runtime.bus.publish(event)
        await writer.wait_handled(len(events), timeout=30)
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(select(tasks).order_by(tasks.c.id))).all())


async def test_repeated_missed_short_number_folds_and_closes_when_answered(
    tmp_path: Path,
) -> None:
    async with open_runtime(tmp_path, pbx=[{"name": "pbx1"}]) as runtime:
        anna, _ = await add_user(runtime, "anna", "agent", "sales", ("101",))
        found = await log_calls(
            runtime,
            [
                ended(0, "0611", Outcome.NO_ANSWER),
                ended(1, "*06-11", Outcome.BUSY),  # the same short number, written otherwise
                ended(2, "900", Outcome.ABANDONED),  # another one: a task of its own
            ],
        )
        assert [(t.number_e164, t.attempts, t.status) for t in found] == [
            ("0611", 2, "open"),
            ("900", 1, "open"),
        ]
        assert found[0].title == "Call back 0611" and found[0].assignee_id == anna
        assert found[0].description.count("missed call on") == 2

        # agent 101 calls 0611 back and gets through: that task closes, the other stays
        found = await log_calls(
            runtime, [ended(3, "0611", Outcome.ANSWERED, Direction.OUTBOUND, answered_by="101")]
        )
        assert [(t.number_e164, t.status) for t in found] == [("0611", "done"), ("900", "open")]
        assert "Called back by Anna (ext. 101)" in found[0].closed_note

        # the customer behind 900 calls again and is answered: closed too
        found = await log_calls(runtime, [ended(4, "900", Outcome.ANSWERED, answered_by="101")])
        assert [t.status for t in found] == ["done", "done"]
        assert "called again and was answered by Anna" in found[1].closed_note

        # a new miss from 0611 after the close opens a fresh task
        found = await log_calls(runtime, [ended(5, "0611", Outcome.NO_ANSWER)])
        assert [(t.number_e164, t.status) for t in found][2:] == [("0611", "open")]


async def test_hidden_numbers_get_no_task_and_garbage_is_not_folded(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, pbx=[{"name": "pbx1"}]) as runtime:
        await add_user(runtime, "anna", "agent", "sales", ("101",))
        garbage = "1" * 40  # too many digits to be a phone number: a task, but no key
        found = await log_calls(
            runtime,
            [
                ended(0, "anonymous", Outcome.NO_ANSWER),
                ended(1, "", Outcome.BUSY),
                ended(2, garbage, Outcome.NO_ANSWER),
                ended(3, garbage, Outcome.NO_ANSWER),
            ],
        )
        assert [(t.number_e164, t.attempts) for t in found] == [(None, 1), (None, 1)]
