"""A real ``connector run`` killed with SIGKILL mid-delivery loses no outgoing webhook; the
acknowledged inbox survives a restart too."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from connector import webhooks_inbox
from connector.app import build_runtime
from connector.webhooks_inbox import InboxWorker
from crm_sync.auth import issue_token
from crm_sync.db import open_engine
from crm_sync.schema import users
from tests.integration.test_outbox_delivery import SECRET, Receiver, receiver_server
from tests.integration.webhook_env import make_settings, webhook_env

HOOK_SECRET = "generic-shared-secret"
CONNECTOR = str(Path(sys.executable).with_name("connector"))


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
[storage]
data_dir = "{tmp_path / "data"}"
[hub]
port = 0
[recordings]
directory = "{tmp_path / "recordings"}"
[outgoing_webhooks]
backoff_base_seconds = 0.05
backoff_max_seconds = 0.2
max_attempts = 1000
[[webhook]]
provider = "generic"
account = "lab"
secret = "{HOOK_SECRET}"
"""
    )
    return path


@asynccontextmanager
async def connector_process(config: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        CONNECTOR,
        "-c",
        str(config),
        "run",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=str(config.parent),
    )
    assert proc.stderr is not None
    stderr = proc.stderr

    async def ready() -> str:
        while True:
            line = (await stderr.readline()).decode(errors="replace")
            if not line:
                raise RuntimeError("the connector exited before it was ready")
            m = re.search(r"Open (http://\S+?)/? in your browser", line)
            if m:
                return m.group(1).rstrip("/")

    async def drain() -> None:
        while await stderr.readline():
            pass

    try:
        url = await asyncio.wait_for(ready(), 60)
        drainer = asyncio.create_task(drain())
        yield proc, url
    finally:
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 30)
        with suppress(Exception):
            await asyncio.wait_for(drainer, 5)


def signed(doc: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(doc).encode()
    ts = str(int(time.time()))
    mac = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Connector-Timestamp": ts,
        "X-Connector-Signature": f"v1={mac}",
    }


def call_events(n: int) -> dict[str, Any]:
    at = int(time.time())
    c = f"call-{n}"
    return {
        "events": [
            {
                "id": f"{c}-1",
                "type": "call.started",
                "call_id": c,
                "at": at,
                "direction": "inbound",
                "from": "79161234567",
            },
            {
                "id": f"{c}-2",
                "type": "leg.ringing",
                "call_id": c,
                "leg_id": f"{c}/101",
                "extension": "101",
                "at": at,
            },
            {
                "id": f"{c}-3",
                "type": "leg.answered",
                "call_id": c,
                "leg_id": f"{c}/101",
                "extension": "101",
                "at": at + 2,
            },
            {"id": f"{c}-4", "type": "call.ended", "call_id": c, "at": at + 30},
        ]
    }


async def test_sigkill_mid_delivery_loses_no_outgoing_webhook(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recv = Receiver(always_fail=True)
    attempted: set[str] = set()
    original = recv.handle

    async def handle(request: Any) -> Any:
        attempted.add(request.headers["X-Connector-Event-Id"])
        recv.changed.set()
        return await original(request)

    recv.handle = handle  # type: ignore[method-assign]
    async with receiver_server(recv) as hook_url:
        async with connector_process(config) as (proc, url):
            engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'connector.db'}")
            now = datetime.now(UTC)
            async with engine.begin() as conn:
                res = await conn.execute(
                    users.insert().values(
                        login="root", name="Root", role="admin", created_at=now, updated_at=now
                    )
                )
                _, token = await issue_token(conn, int(res.inserted_primary_key[0]))
            await engine.dispose()
            async with aiohttp.ClientSession() as http:
                resp = await http.post(
                    url + "/api/v1/webhooks/subscriptions",
                    json={
                        "url": hook_url,
                        "event_types": ["call.ringing", "call.ended"],
                        "secret": SECRET,
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert resp.status == 201, await resp.text()
                for n in range(3):
                    body, headers = signed(call_events(n))
                    resp = await http.post(
                        url + "/webhooks/generic/lab", data=body, headers=headers
                    )
                    assert resp.status == 200, await resp.text()

            async def all_tried() -> None:
                while len(attempted) < 6:
                    recv.changed.clear()
                    await recv.changed.wait()

            await asyncio.wait_for(all_tried(), 30)
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 30)
            assert proc.returncode == -signal.SIGKILL
        assert recv.got == {}
        recv.always_fail = False
        async with connector_process(config):
            await recv.wait_for(6, timeout=30)
        assert len(recv.got) == 6
        assert {e["type"] for e in recv.got.values()} == {"call.ringing", "call.ended"}
        assert {e["event"]["conversation_id"] for e in recv.got.values()} == {
            "call-0",
            "call-1",
            "call-2",
        }


async def test_acknowledged_webhooks_are_processed_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    # First life: requests are acknowledged (stored) but no worker processes them.
    async with webhook_env(tmp_path, settings=settings, run_worker=False) as env:
        body, headers = signed(call_events(7))
        pending_before = len(await env.inbox_rows())
        resp = await env.client.post("/webhooks/generic/gen1", data=body, headers=headers)
        assert resp.status == 200
        assert [r.status for r in await env.inbox_rows()] == ["pending"]
    # Second life on the same database: the pending row is processed at start-up.
    runtime = await build_runtime(settings)
    webhooks_inbox.components(runtime)
    worker = InboxWorker(runtime, poll_interval=0.2)
    events = runtime.bus.subscribe("restart-test", {"call.ended"})
    task = asyncio.create_task(worker.run())
    try:
        ended = await asyncio.wait_for(events.get(), 15)
        assert ended.conversation_id == "call-7"
        assert ended.answered_by == "101"
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await runtime.engine.dispose()
    assert pending_before == 0
