"""Zadarma dynamic routing: NOTIFY_START answered with the manager's extension and the name.

Signed notifications are posted over real HTTP to the running connector (web app, inbox worker,
SQLite in ``tmp_path``); the slow-store case locks a table on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from connector.config import ConfigError
from crm_sync.contacts import create_company, create_contact
from tests.integration.calllog_support import add_user
from tests.integration.store_support import postgres_database
from tests.integration.webhook_env import (
    ACCOUNTS,
    make_settings,
    metric,
    webhook_env,
    zadarma_call,
)
from tests.integration.webhook_env import post_zadarma as post

PBX = "zadarma-main"
DID = {"called_did": "74951234567"}


def accounts(**zadarma: Any) -> list[dict[str, Any]]:
    """The test accounts, the Zadarma one with ``zadarma`` settings added."""
    return [{**a, **zadarma} if a["provider"] == "zadarma" else a for a in ACCOUNTS]


def start(call_id: str, caller: str) -> dict[str, str]:
    return zadarma_call("NOTIFY_START", call_id, caller_id=caller, **DID)


async def seed(env: Any) -> dict[str, int]:
    """anna (ext. 100 on the Zadarma PBX) manages Ivan; boris (ext. 101 only on another PBX)
    manages ООО Ромашка."""
    anna, _ = await add_user(env.runtime, "anna", "agent", "sales", ("100",), pbx=PBX)
    boris, _ = await add_user(env.runtime, "boris", "agent", "sales", ("101",), pbx="other")
    async with env.runtime.engine.begin() as conn:
        await create_contact(
            conn,
            {"name": "Ivan Petrov", "phones": ["+7 916 123-45-67"], "responsible_user_id": anna},
        )
        await create_company(
            conn,
            {"name": "ООО Ромашка", "phones": ["+7 495 765-43-21"], "responsible_user_id": boris},
        )
    return {"anna": anna, "boris": boris}


async def test_notify_start_is_answered_with_the_managers_extension(tmp_path: Path) -> None:
    async with webhook_env(tmp_path, accounts(route_calls=True, route_budget_ms=10_000)) as env:
        await seed(env)
        redirects = metric("connector_webhook_routes_total", provider="zadarma", result="redirect")
        failed = metric("connector_webhook_routes_total", provider="zadarma", result="failed")

        # a known caller, in Zadarma's spelling: to the manager's extension, with the name
        resp = await post(env, start("in_known", "79161234567"))
        assert resp.status == 200 and resp.content_type == "application/json"
        assert await resp.json() == {"redirect": "100", "caller_name": "Ivan Petrov"}
        assert (
            metric("connector_webhook_routes_total", provider="zadarma", result="redirect")
            == redirects + 1
        )
        # Zadarma sends it again: stored once, answered the same
        resp = await post(env, start("in_known", "79161234567"))
        assert await resp.json() == {"redirect": "100", "caller_name": "Ivan Petrov"}

        # the manager has no extension on this PBX: only the name
        resp = await post(env, start("in_company", "74957654321"))
        assert await resp.json() == {"caller_name": "ООО Ромашка"}

        # an unknown caller and a hidden one: the neutral empty answer
        for call_id, caller in (("in_unknown", "79035550000"), ("in_hidden", "")):
            resp = await post(env, start(call_id, caller))
            assert resp.status == 200 and await resp.text() == "", caller

        assert metric("connector_webhook_routes_total", provider="zadarma", result="failed") == (
            failed
        )

        # the other events of the call are answered as ever
        ringing = zadarma_call(
            "NOTIFY_INTERNAL", "in_known", caller_id="79161234567", internal="100", **DID
        )
        resp = await post(env, ringing)
        assert resp.status == 200 and await resp.text() == ""

        # every event is stored once and processed as without routing
        await env.settle()
        rows = await env.inbox_rows()
        assert [r.conversation_id for r in rows] == [
            "in_known",
            "in_company",
            "in_unknown",
            "in_hidden",
            "in_known",
        ]
        assert {r.status for r in rows} == {"done"}
        rang = await env.next_event("call.ringing", lambda e: e.conversation_id == "in_known")
        assert rang.extension == "100" and rang.caller.number == "79161234567"


async def test_routing_uses_the_fallback_chain(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        accounts(route_calls=True, route_budget_ms=10_000),
        calllog={"fallback_chain": ["responsible", "default_user"], "fallback_user": "duty"},
    )
    async with webhook_env(tmp_path, settings=settings) as env:
        await seed(env)
        await add_user(env.runtime, "duty", "agent", "desk", ("199",), pbx=PBX)
        resp = await post(env, start("in_company", "74957654321"))
        assert await resp.json() == {"redirect": "199", "caller_name": "ООО Ромашка"}
        resp = await post(env, start("in_unknown", "79035550000"))
        assert await resp.json() == {"redirect": "199"}


async def test_without_route_calls_notify_start_gets_the_empty_answer(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        await seed(env)
        resp = await post(env, start("in_known", "79161234567"))
        assert resp.status == 200 and await resp.text() == ""
        await env.settle()
        assert [r.status for r in await env.inbox_rows()] == ["done"]


@pytest.mark.postgres
async def test_a_slow_store_answers_without_routing_but_keeps_the_event(tmp_path: Path) -> None:
    async with postgres_database() as url:
        settings = make_settings(
            tmp_path,
            accounts(route_calls=True, route_budget_ms=200),
            storage={"database_url": url},
        )
        async with webhook_env(tmp_path, settings=settings) as env:
            await seed(env)
            late = metric("connector_webhook_routes_total", provider="zadarma", result="late")
            locker = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                # another session holds the phone numbers: the lookup waits, the inbox does not
                tx = locker.transaction()
                await tx.start()
                await locker.execute("LOCK TABLE phones IN ACCESS EXCLUSIVE MODE")
                resp = await asyncio.wait_for(post(env, start("in_slow", "79161234567")), 30)
                assert resp.status == 200 and await resp.text() == ""
                assert (
                    metric("connector_webhook_routes_total", provider="zadarma", result="late")
                    == late + 1
                )
                await tx.rollback()
            finally:
                await locker.close()
            await env.settle()
            assert [(r.conversation_id, r.status) for r in await env.inbox_rows()] == [
                ("in_slow", "done")
            ]
            # with the store responsive again the same call is routed
            resp = await post(env, start("in_slow", "79161234567"))
            assert await resp.json() == {"redirect": "100", "caller_name": "Ivan Petrov"}


def test_route_calls_is_checked_in_the_settings(tmp_path: Path) -> None:
    hook = {"account": "a", "secret": "s"}
    with pytest.raises(ConfigError) as info:
        make_settings(tmp_path, [{**hook, "provider": "mango", "route_calls": True}])
    assert str(info.value) == (
        "webhook[0].route_calls must be false unless provider is zadarma, got True"
    )
    with pytest.raises(ConfigError) as info:
        make_settings(tmp_path, [{**hook, "provider": "zadarma", "route_budget_ms": 0}])
    assert "webhook[0].route_budget_ms must be an integer 10..10000" in str(info.value)
    settings = make_settings(tmp_path, [{**hook, "provider": "zadarma", "route_calls": "yes"}])
    assert settings.webhook[0].route_calls and settings.webhook[0].route_budget_ms == 500
