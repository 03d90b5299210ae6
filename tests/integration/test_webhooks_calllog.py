"""Provider webhooks end in the same call log as Asterisk: activities and missed-call tasks."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from pathlib import Path

from sqlalchemy import select

from crm_sync import calllog
from crm_sync.contacts import create_contact
from crm_sync.schema import activities, tasks
from tests.integration.webhook_env import (
    mango_form,
    post_zadarma,
    seed_agents,
    webhook_env,
    zadarma_answered,
)


async def test_answered_and_missed_calls_reach_the_call_log(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        ids = await seed_agents(env.runtime, {"*": ["101", "102"]})
        async with env.runtime.engine.begin() as conn:
            contact = await create_contact(
                conn,
                {
                    "name": "Olga Smirnova",
                    "phones": ["+7 916 555-44-33"],
                    "responsible_user_id": ids["agent102"],
                },
            )
        (writer,) = calllog.components(env.runtime)
        task = asyncio.create_task(writer.run())
        try:
            # Zadarma: answered by 101, recorded
            for fields in zadarma_answered(
                "in_log1", "79165554433", "74951234567", "101", duration="20", rec="rec-1"
            ):
                assert (await post_zadarma(env, fields)).status == 200
            # Mango: the same customer calls again, nobody answers
            ts = int(time.time()) + 3 * 3600
            legs = [
                {"seq": 1, "call_state": "Appeared"},
                {"seq": 2, "call_state": "Disconnected", "disconnect_reason": 1110},
            ]
            for leg in legs:
                payload = {
                    "entry_id": "mg-missed",
                    "call_id": "m:1",
                    "timestamp": ts,
                    "location": "abonent",
                    "from": {"number": "79165554433"},
                    "to": {"extension": "101", "line_number": "74951234567"},
                    **leg,
                }
                resp = await env.client.post(
                    "/webhooks/mango/mg1/events/call", data=mango_form(payload)
                )
                assert resp.status == 200
            summary = {
                "entry_id": "mg-missed",
                "call_direction": 1,
                "entry_result": 0,
                "create_time": ts - 20,
                "end_time": ts,
                "from": {"number": "79165554433"},
            }
            resp = await env.client.post(
                "/webhooks/mango/mg1/events/summary", data=mango_form(summary)
            )
            assert resp.status == 200
            created = await env.next_event("task.created")
            assert created.assignee_id == ids["agent102"]
            await writer.wait_handled(2, 10)
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        async with env.runtime.engine.connect() as conn:
            rows = {
                r.conversation_id: r
                for r in await conn.execute(select(activities).where(activities.c.kind == "call"))
            }
            open_tasks = list(await conn.execute(select(tasks)))
        answered = rows["in_log1"]
        assert answered.pbx == "zadarma-main"
        assert answered.contact_id == contact.id
        assert answered.outcome == "answered"
        assert answered.answered_by == "101"
        assert answered.answered_by_user_id == ids["agent101"]
        assert answered.talk_seconds == 20.0
        assert answered.recording_ref == "zadarma:zd1:rec-1"
        missed = rows["mg-missed"]
        assert missed.pbx == "mango-main"
        assert missed.contact_id == contact.id
        assert missed.direction == "inbound"
        assert missed.outcome != "answered"
        assert [t.assignee_id for t in open_tasks] == [ids["agent102"]]
        assert open_tasks[0].kind == "callback"
