"""The call log written from the real AMI transcripts, checked against the truth table.

The transcripts go through the real framer, translator and the runtime's call tracker
(:func:`connector.replay.replay_steps`); the call events are published on the runtime's bus and
the :class:`~crm_sync.calllog.CallLogWriter` component consumes them as in the daemon.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.app import Runtime
from connector.events.model import TaskCreated
from crm_sync.contacts import create_company, create_contact
from crm_sync.schema import activities, activity_participants, contacts, tasks
from tests.integration.calllog_support import (
    SCENARIOS,
    add_agents,
    add_user,
    open_runtime,
    replay_into,
    writer_running,
)

ALL = SCENARIOS
START = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
SECTIONS: dict[str, Any] = {
    "pbx": [{"name": "pbx1"}],
    "calllog": {"create_contacts_inbound": True, "missed_task_due_minutes": 45},
}


async def seed(runtime: Runtime) -> dict[str, int]:
    """Agents on extensions 101-104, 201, 202; Ivan Petrov (manager: 103) and ООО Ромашка."""
    ids = {ext: uid for ext, (uid, _token) in (await add_agents(runtime)).items()}
    async with runtime.engine.begin() as conn:
        ivan = await create_contact(
            conn,
            {
                "name": "Ivan Petrov",
                "phones": ["+7 916 123-45-67"],
                "responsible_user_id": ids["103"],
            },
        )
        romashka = await create_company(
            conn,
            {
                "name": "ООО Ромашка",
                "phones": ["+7 495 123-45-67"],
                "responsible_user_id": ids["201"],
            },
        )
    ids["ivan"], ids["romashka"] = ivan.id, romashka.id
    return ids


async def call_log(runtime: Runtime) -> dict[str, Any]:
    """Activities by conversation id, with participant ids."""
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(activities).order_by(activities.c.id))).all()
        parts = (await conn.execute(select(activity_participants))).all()
    out: dict[str, Any] = {}
    for row in rows:
        d = row._asdict()
        d["participants"] = sorted(p.user_id for p in parts if p.activity_id == row.id)
        out[row.conversation_id] = d
    return out


async def all_tasks(runtime: Runtime) -> list[Any]:
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(select(tasks).order_by(tasks.c.id))).all())


async def test_calllog_matches_truth_table_and_is_written_once(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        ids = await seed(runtime)
        published = runtime.bus.subscribe("test", {TaskCreated.TYPE})
        async with writer_running(runtime) as writer:
            ended = await replay_into(runtime, writer, ALL, START)
            assert len(ended) == len(ALL)
            log = await call_log(runtime)
            assert len(log) == len(ALL)
            by_scenario = dict(zip(ALL, (log[e.conversation_id] for e in ended), strict=True))

            a = by_scenario["inbound_answered"]
            assert (a["direction"], a["outcome"]) == ("inbound", "answered")
            assert a["caller_raw"] == "+79161234567" and a["caller_e164"] == "+79161234567"
            assert a["caller_name"] == "Ivan Petrov" and a["did"] == "74951234500"
            assert a["agents"] == ["101"] and a["answered_by"] == "101"
            assert a["answered_by_user_id"] == ids["101"] and a["talked_last"] == "101"
            assert a["contact_id"] == ids["ivan"] and a["responsible_user_id"] == ids["103"]
            assert round(a["ring_seconds"]) == 2 and round(a["talk_seconds"]) == 3
            assert a["recording_ref"].endswith("in-20261128-212111-1795900871.1.wav")
            assert a["started_at"] < a["answered_at"] < a["ended_at"]
            assert a["participants"] == [ids["101"]]

            m = by_scenario["inbound_missed"]
            assert (m["direction"], m["outcome"]) == ("inbound", "no_answer")
            assert m["caller_raw"] == "89161234567" and m["caller_e164"] == "+79161234567"
            assert m["agents"] == ["102"] and m["answered_by"] is None
            assert m["contact_id"] == ids["ivan"] and m["participants"] == [ids["102"]]

            b = by_scenario["inbound_busy"]
            assert (b["direction"], b["outcome"], b["agents"]) == ("inbound", "busy", ["103"])
            assert b["caller_e164"] == "+79161234567"

            ab = by_scenario["caller_abandons"]
            assert (ab["direction"], ab["outcome"], ab["agents"]) == (
                "inbound",
                "abandoned",
                ["102"],
            )
            assert ab["caller_e164"] is None and ab["contact_id"] is None

            c = by_scenario["click_to_call"]
            assert (c["direction"], c["outcome"], c["answered_by"]) == (
                "outbound",
                "answered",
                "101",
            )
            assert c["callee_raw"] == "89161234567" and c["callee_e164"] == "+79161234567"
            assert c["user_id"] == ids["101"] and c["contact_id"] == ids["ivan"]
            assert c["recording_ref"].endswith("out-20261128-212202-1795900920.16.wav")

            n = by_scenario["click_to_call_noanswer"]
            assert n["direction"] == "outbound" and n["outcome"] != "answered"
            assert n["user_id"] == ids["102"]

            q = by_scenario["queue_call"]
            assert (q["outcome"], q["queue"], q["answered_by"]) == ("answered", "support", "202")
            assert q["agents"] == ["201", "202"] and q["caller_name"] == "ООО Ромашка"
            assert q["company_id"] == ids["romashka"] and q["responsible_user_id"] == ids["201"]
            assert q["participants"] == sorted([ids["201"], ids["202"]])

            t = by_scenario["transfer"]
            assert (t["outcome"], t["answered_by"], t["talked_last"]) == ("answered", "101", "104")
            assert t["transfers"] == [["101", "104"]]
            assert t["participants"] == sorted([ids["101"], ids["104"]])
            async with runtime.engine.connect() as conn:
                petr = (
                    await conn.execute(select(contacts).where(contacts.c.id == t["contact_id"]))
                ).one()
            assert petr.name == "Petr Sidorov"  # unknown number: contact created (inbound on)

            # missed calls: one callback task for the number, folded, closed by the call back
            found = await all_tasks(runtime)
            assert len(found) == 1
            task = found[0]
            assert task.kind == "callback" and task.number_e164 == "+79161234567"
            assert task.assignee_id == ids["103"]  # the responsible manager
            assert task.attempts == 2  # inbound_missed, then inbound_busy
            assert "74951234501" in task.description and "74951234502" in task.description
            assert task.activity_id == m["id"] and task.contact_id == ids["ivan"]
            assert task.status == "done" and "Called back by Anna (ext. 101)" in task.closed_note
            events = [published.get_nowait() for _ in range(2)]
            assert all(isinstance(e, TaskCreated) and e.task_id == task.id for e in events)
            assert published.get_nowait() is None

            # the same calls again: nothing new
            await replay_into(runtime, writer, ALL, START + timedelta(hours=1))
            assert len(await call_log(runtime)) == len(ALL)
            assert len(await all_tasks(runtime)) == 1

    # after a restart, on the same database: still nothing new
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        async with writer_running(runtime) as writer:
            await replay_into(runtime, writer, ALL, START)
            assert len(await call_log(runtime)) == len(ALL)
            assert len(await all_tasks(runtime)) == 1


async def test_calllog_missed_call_task_chain_and_inbound_close(tmp_path: Path) -> None:
    async with open_runtime(
        tmp_path, pbx=[{"name": "pbx1"}], calllog={"fallback_team": "sales"}
    ) as runtime:
        boss, _ = await add_user(runtime, "boss", "supervisor", "sales")
        ids = {
            ext: (await add_user(runtime, f"agent{ext}", "agent", "sales", (ext,)))[0]
            for ext in ("101", "102", "103")
        }
        published = runtime.bus.subscribe("test", {TaskCreated.TYPE})
        async with writer_running(runtime) as writer:
            # unknown caller, no responsible manager: the last agent who rang (102) gets it
            await replay_into(runtime, writer, ["inbound_missed", "caller_abandons"], START)
            found = await all_tasks(runtime)
            assert len(found) == 1 and found[0].assignee_id == ids["102"]
            assert found[0].status == "open" and found[0].attempts == 1
            assert found[0].due_at is not None
            ev = published.get_nowait()
            assert isinstance(ev, TaskCreated) and ev.assignee_id == ids["102"]
            assert ev.number == "+79161234567"
            # the customer calls again and gets through: the task closes itself
            await replay_into(runtime, writer, ["inbound_answered"], START + timedelta(minutes=10))
            closed = (await all_tasks(runtime))[0]
            assert closed.status == "done" and closed.closed_at is not None
            assert "called again and was answered by Agent101 (ext. 101)" in closed.closed_note
    assert boss


async def test_calllog_fallback_to_team_supervisor(tmp_path: Path) -> None:
    async with open_runtime(
        tmp_path,
        pbx=[{"name": "pbx1"}],
        calllog={
            "fallback_chain": ["responsible", "team", "default_user"],
            "fallback_team": "sales",
        },
    ) as runtime:
        await add_user(runtime, "first", "agent", "sales", ("102",))
        boss, _ = await add_user(runtime, "boss", "supervisor", "sales")
        async with writer_running(runtime) as writer:
            await replay_into(runtime, writer, ["inbound_busy"], START)
        found = await all_tasks(runtime)
        assert len(found) == 1 and found[0].assignee_id == boss
        assert "team (sales)" in found[0].description


async def test_calllog_odd_calls_are_logged_not_crashed(tmp_path: Path) -> None:
    from connector.events.model import CallEnded, Direction, Outcome, Party

    async with open_runtime(
        tmp_path, pbx=[{"name": "pbx1"}], calllog={"create_contacts_inbound": True}
    ) as runtime:
        await add_user(runtime, "anna", "agent", "sales", ("101",))
        odd = [
            CallEnded(
                key=f"k{i}",
                pbx="pbx1",
                conversation_id=f"odd-{i}",
                occurred_at=START,
                observed_at=START,
                direction=direction,
                outcome=outcome,
                caller=Party(number, name),
                callee=Party("74951234500"),
                rang=rang,
            )
            for i, (direction, outcome, number, name, rang) in enumerate(
                [
                    (Direction.INBOUND, Outcome.NO_ANSWER, "+7916" + "9" * 200, "x" * 500, ()),
                    (Direction.INBOUND, Outcome.BUSY, "+79165550101", "Bell\x07\x00Name", ("101",)),
                    (Direction.UNKNOWN, Outcome.FAILED, "", "", ("999",)),
                    (Direction.INBOUND, Outcome.ANSWERED, "😀", "🙂" * 300, ("101",)),
                    (Direction.INTERNAL, Outcome.ANSWERED, "101", "", ("102",)),
                ]
            )
        ]
        async with writer_running(runtime) as writer:
            for event in odd:
                runtime.bus.publish(event)
            await writer.wait_handled(len(odd), timeout=30)
        log = await call_log(runtime)
        assert sorted(log) == [f"odd-{i}" for i in range(len(odd))]
        assert log["odd-0"]["caller_e164"] is None and len(log["odd-0"]["caller_raw"]) == 64
        assert log["odd-1"]["caller_e164"] == "+79165550101"
        # missed calls get their tasks, whatever the number and name look like
        found = await all_tasks(runtime)
        assert [t.number_e164 for t in found] == [None, "+79165550101"]
        assert found[1].title == "Call back BellName +79165550101"
        assert found[0].title.startswith("Call back xxx") and len(found[0].title) <= 300
        async with runtime.engine.connect() as conn:
            names = [r.name for r in await conn.execute(select(contacts.c.name))]
        assert names == ["BellName"]  # the emoji "number" has no digits: hidden
