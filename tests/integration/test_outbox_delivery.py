"""Outgoing webhooks: subscriptions through the API, signed deliveries to a real receiver,
retries with backoff, dead letters, and no loss across a restart on the same SQLite file."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connector.app import Runtime, build_runtime
from connector.events.model import CallEnded, CallRinging, Outcome, Party, TaskCreated
from connector.events.wire import event_from_dict
from connector.outbox import OutboxWorker
from crm_sync.auth import issue_token
from crm_sync.schema import users
from tests.integration.calllog_support import running, web_client
from tests.integration.webhook_env import make_settings

SECRET = "receiver-shared-secret-0123456789"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A webhook consumer on loopback that fails the first ``fail_first`` requests."""

    fail_first: int = 0
    always_fail: bool = False
    requests: int = 0
    bad_signatures: int = 0
    got: dict[str, dict[str, Any]] = field(default_factory=dict)  # deduplicated by event id
    deliveries: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        ts = request.headers["X-Connector-Timestamp"]
        expected = (
            "v1=" + hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(expected, request.headers["X-Connector-Signature"]):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.always_fail or self.requests <= self.fail_first:
            return web.Response(status=500, text="not today")
        event_id = request.headers["X-Connector-Event-Id"]
        self.deliveries.append(event_id)
        self.got.setdefault(event_id, json.loads(body))
        self.changed.set()
        return web.Response(status=204)

    async def wait_for(self, count: int, timeout: float = 15.0) -> None:
        async def until() -> None:
            while len(self.got) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)


@asynccontextmanager
async def receiver_server(recv: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/hook"))
    finally:
        await server.close()


@asynccontextmanager
async def daemon(
    settings: Any,
) -> AsyncIterator[tuple[Runtime, TestClient[Any, Any], OutboxWorker]]:
    """The runtime, its API on loopback and the outbox worker running."""
    runtime = await build_runtime(settings)
    try:
        async with web_client(runtime) as client:
            worker = OutboxWorker(runtime, poll_interval=0.2)
            runtime.extras["outbox"] = worker
            async with running(worker.run()):
                yield runtime, client, worker
    finally:
        await runtime.engine.dispose()


async def admin_token(runtime: Runtime) -> dict[str, str]:
    async with runtime.engine.begin() as conn:
        res = await conn.execute(
            users.insert().values(
                login="root", name="Root", role="admin", created_at=T0, updated_at=T0
            )
        )
        _, token = await issue_token(conn, int(res.inserted_primary_key[0]))
    return {"Authorization": f"Bearer {token}"}


def ended(n: int) -> CallEnded:
    return CallEnded(
        key=f"pbx:c{n}:call.ended:end",
        pbx="pbx",
        conversation_id=f"c{n}",
        occurred_at=T0 + timedelta(seconds=n),
        observed_at=T0 + timedelta(seconds=n),
        outcome=Outcome.ANSWERED,
        caller=Party("79161234567"),
        answered_by="101",
    )


def settings_for(tmp_path: Path, **outgoing: Any) -> Any:
    defaults = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "max_attempts": 10}
    return make_settings(tmp_path, accounts=[], outgoing_webhooks={**defaults, **outgoing})


async def test_receiver_failing_first_deliveries_gets_every_event_once(tmp_path: Path) -> None:
    recv = Receiver(fail_first=4)
    async with receiver_server(recv) as url, daemon(settings_for(tmp_path)) as (rt, client, _):
        auth = await admin_token(rt)
        resp = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={"url": url, "event_types": ["call.ended", "task.created"], "secret": SECRET},
            headers=auth,
        )
        assert resp.status == 201, await resp.text()
        sub = await resp.json()
        events: list[Any] = [ended(n) for n in range(5)]
        events.append(
            TaskCreated(
                key="task:1",
                pbx="pbx",
                conversation_id="c9",
                occurred_at=T0,
                observed_at=T0,
                task_id=1,
                title="Call back",
            )
        )
        for event in events:
            rt.publish(event)
        rt.publish(ended(0))  # the same fact again: not delivered twice
        rt.publish(
            CallRinging(key="r1", pbx="pbx", conversation_id="c1", occurred_at=T0, observed_at=T0)
        )  # not subscribed
        await recv.wait_for(len(events))
        assert set(recv.got) == {e.key for e in events}
        assert recv.bad_signatures == 0
        first = recv.got["pbx:c3:call.ended:end"]
        assert first["type"] == "call.ended"
        assert event_from_dict(first["event"]) == ended(3)  # the wire format round-trips

        log = await (
            await client.get(f"/api/v1/webhooks/subscriptions/{sub['id']}/deliveries", headers=auth)
        ).json()
        assert log["total"] == len(events)
        assert {d["status"] for d in log["items"]} == {"delivered"}
        assert sum(d["attempts"] for d in log["items"]) == len(events) + 4
        listed = await (await client.get("/api/v1/webhooks/subscriptions", headers=auth)).json()
        assert listed["items"][0]["deliveries"]["delivered"] == len(events)


async def test_dead_letters_are_visible_and_retriable(tmp_path: Path) -> None:
    recv = Receiver(always_fail=True)
    settings = settings_for(tmp_path, max_attempts=3)
    async with receiver_server(recv) as url, daemon(settings) as (rt, client, worker):
        auth = await admin_token(rt)
        resp = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={"url": url, "event_types": ["*"], "secret": SECRET},
            headers=auth,
        )
        sub_id = (await resp.json())["id"]
        rt.publish(ended(1))
        await worker.wait_until(lambda: worker.dead >= 1, 15)
        path = f"/api/v1/webhooks/subscriptions/{sub_id}/deliveries?status=dead"
        dead = await (await client.get(path, headers=auth)).json()
        assert dead["total"] == 1
        item = dead["items"][0]
        assert item["attempts"] == 3 and item["last_status"] == 500
        assert "not today" in item["last_error"]
        assert recv.requests == 3

        recv.always_fail = False
        resp = await client.post(f"/api/v1/webhooks/deliveries/{item['id']}/retry", headers=auth)
        assert resp.status == 200
        await recv.wait_for(1)
        assert list(recv.got) == ["pbx:c1:call.ended:end"]

        resp = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={"url": "ftp://nope", "event_types": ["call.ended"]},
            headers=auth,
        )
        assert resp.status == 400
        resp = await client.post(
            "/api/v1/webhooks/subscriptions",
            json={"url": url, "event_types": ["call.exploded"]},
            headers=auth,
        )
        assert resp.status == 400
        assert (await client.get("/api/v1/webhooks/subscriptions")).status == 401


async def test_restart_loses_no_pending_delivery(tmp_path: Path) -> None:
    recv = Receiver(always_fail=True)
    settings = settings_for(tmp_path, backoff_base_seconds=0.05, backoff_max_seconds=0.2)
    async with receiver_server(recv) as url:
        async with daemon(settings) as (rt, client, worker):
            auth = await admin_token(rt)
            await client.post(
                "/api/v1/webhooks/subscriptions",
                json={"url": url, "event_types": ["call.ended"], "secret": SECRET},
                headers=auth,
            )
            for n in range(6):
                rt.publish(ended(n))
            # every event was tried at least once, so every one is queued durably
            await worker.wait_until(lambda: worker.attempted >= 6, 15)
            assert recv.requests >= 6
        # the daemon is gone with 6 deliveries pending; the receiver comes back
        recv.always_fail = False
        async with daemon(settings):
            await recv.wait_for(6)
        assert set(recv.got) == {ended(n).key for n in range(6)}
