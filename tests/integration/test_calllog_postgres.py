"""The call log, callback tasks, routing and the supervisor's queries on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_sync.calllog_query import CallFilter, query_calls
from crm_sync.contacts import create_contact
from crm_sync.routing import route
from crm_sync.schema import activities, tasks
from tests.integration.calllog_support import (
    SCENARIOS,
    add_agents,
    open_runtime,
    replay_into,
    writer_running,
)
from tests.integration.store_support import postgres_database

pytestmark = pytest.mark.postgres

ALL = [name for name in SCENARIOS if name != "click_to_call_noanswer"]
START = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


async def test_calllog_on_postgres(tmp_path: Path) -> None:
    async with (
        postgres_database() as url,
        open_runtime(tmp_path, storage={"database_url": url}, pbx=[{"name": "pbx1"}]) as runtime,
    ):
        ids = {ext: uid for ext, (uid, _token) in (await add_agents(runtime)).items()}
        async with runtime.engine.begin() as conn:
            await create_contact(
                conn,
                {"name": "Ivan", "phones": ["+79161234567"], "responsible_user_id": ids["103"]},
            )
        async with writer_running(runtime) as writer:
            await replay_into(runtime, writer, ALL, START)
            await replay_into(runtime, writer, ALL, START)  # again: nothing new
        async with runtime.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(activities))).scalar()
            assert count == len(ALL)
            task = (await conn.execute(select(tasks))).one()
            assert (task.attempts, task.status, task.assignee_id) == (2, "done", ids["103"])
            sales = [ids[e] for e in ("101", "102", "103", "104")]
            items, total = await query_calls(conn, CallFilter(team="sales"), None)
            assert total == 6
            items, total = await query_calls(
                conn, CallFilter(number="9161234567", has_recording=False), sales
            )
            assert total == 4
            items, total = await query_calls(conn, CallFilter(outcome="missed"), None)
            assert sorted(i["outcome"] for i in items) == ["abandoned", "busy", "no_answer"]
            decision = await route(
                conn,
                number="89161234567",
                pbx="pbx1",
                region="RU",
                chain=("responsible", "last_agent"),
            )
            assert (decision.extension, decision.step) == ("103", "responsible")
