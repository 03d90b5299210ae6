"""The connector's own JSON webhook, signed with HMAC-SHA256 over timestamp and body."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from connector.events.model import Direction, Outcome
from tests.integration.webhook_env import webhook_env

SECRET = "generic-shared-secret"
URL = "/webhooks/generic/gen1"


def signed(body: bytes, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Connector-Timestamp": str(ts),
        "X-Connector-Signature": f"v1={mac}",
    }


async def post(env: Any, doc: Any, **kw: Any) -> Any:
    body = json.dumps(doc).encode()
    return await env.client.post(URL, data=body, headers=signed(body, **kw))


def ev(id_: str, type_: str, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "type": type_, "call_id": "g1", "at": "2026-11-28T10:00:00Z", **fields}


async def test_answered_call_one_by_one_and_in_a_batch(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        events = [
            ev("e1", "call.started", direction="inbound", to="74951234567", did="74951234567")
            | {"from": "79161234567"},
            ev("e2", "leg.ringing", leg_id="L1", extension="101"),
            ev("e3", "leg.answered", leg_id="L1", extension="101", at="2026-11-28T10:00:05Z"),
            ev("e4", "leg.hungup", leg_id="L1", at="2026-11-28T10:01:05Z"),
            ev("e5", "recording.found", recording_url="https://pbx.example/r/g1.wav"),
            ev("e6", "call.ended", outcome="answered", at="2026-11-28T10:01:05Z"),
        ]
        for doc in events[:3]:
            resp = await post(env, doc)
            assert resp.status == 200, await resp.text()
            assert await resp.json() == {"accepted": True, "duplicate": False}
        resp = await post(env, events[2])
        assert await resp.json() == {"accepted": True, "duplicate": True}
        assert (await post(env, {"events": events[3:]})).status == 200
        ended = await env.next_event("call.ended")
        assert ended.pbx == "generic-main"
        assert ended.outcome is Outcome.ANSWERED
        assert ended.direction is Direction.INBOUND
        assert ended.caller.number == "79161234567"
        assert ended.answered_by == "101"
        assert ended.ring_seconds == 5.0
        assert ended.talk_seconds == 60.0
        assert ended.recording == "https://pbx.example/r/g1.wav"


async def test_missed_call(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        batch = [
            ev("m1", "call.started", direction="inbound", call_id="g2"),
            ev("m2", "leg.ringing", leg_id="L2", extension="101", call_id="g2"),
            ev("m3", "leg.ended", leg_id="L2", status="no_answer", call_id="g2"),
            ev("m4", "call.ended", call_id="g2"),
        ]
        assert (await post(env, {"events": batch})).status == 200
        ended = await env.next_event("call.ended")
        assert ended.outcome is Outcome.NO_ANSWER
        assert ended.rang == ("101",)


async def test_signature_replay_and_schema_errors(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        doc = ev("x1", "call.started")
        assert (await post(env, doc, secret="wrong")).status == 401
        resp = await post(env, doc, ts=int(time.time()) - 3600)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "replayed"
        body = json.dumps(doc).encode()
        headers = signed(body)
        resp = await env.client.post(URL, data=body + b" ", headers=headers)
        assert resp.status == 401  # the signature covers the raw bytes
        resp = await env.client.post(URL, data=b"{oops", headers=signed(b"{oops"))
        assert resp.status == 400
        resp = await post(env, ev("x2", "leg.ringing"))
        assert resp.status == 400
        assert "leg_id" in (await resp.json())["error"]["message"]
        resp = await post(env, ev("x3", "call.exploded"))
        assert resp.status == 400
        resp = await post(env, ev("x4", "call.ended", outcome="meh"))
        assert resp.status == 400
        resp = await post(env, [1, 2])
        assert resp.status == 400
        await env.settle()
        assert await env.inbox_rows() == []


async def test_admins_see_the_inbox(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from crm_sync.auth import issue_token
    from crm_sync.schema import users

    async with webhook_env(tmp_path) as env:
        now = datetime.now(UTC)
        async with env.runtime.engine.begin() as conn:
            res = await conn.execute(
                users.insert().values(
                    login="root", name="Root", role="admin", created_at=now, updated_at=now
                )
            )
            _, token = await issue_token(conn, int(res.inserted_primary_key[0]))
        assert (await post(env, ev("i1", "call.started", call_id="g9"))).status == 200
        await env.settle()
        auth = {"Authorization": f"Bearer {token}"}
        resp = await env.client.get("/api/v1/webhooks/inbox?provider=generic", headers=auth)
        assert resp.status == 200
        (item,) = (await resp.json())["items"]
        assert (item["event_key"], item["conversation_id"], item["status"]) == ("i1", "g9", "done")
        assert (await env.client.get("/api/v1/webhooks/inbox")).status == 401
