"""Mango Office realtime events posted, signed, to a running connector; call events checked."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.events.model import Direction, Outcome
from connector.recordings import components as recording_components
from crm_sync.schema import recordings
from tests.integration.webhook_env import mango_form, metric, webhook_env

KEY = "mango-product-key"
SALT = "mango-salt"
BASE = "/webhooks/mango/mg1"


def mango_now(offset: int = 0) -> int:
    """Now on Mango's clock (Unix seconds shifted to UTC+3)."""
    return int(time.time()) + 3 * 3600 + offset


async def post(env: Any, path: str, payload: dict[str, Any], **kw: str) -> Any:
    return await env.client.post(BASE + path, data=mango_form(payload, **kw))


def leg(entry: str, call_id: str, seq: int, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "entry_id": entry,
        "call_id": call_id,
        "timestamp": str(mango_now()),
        "seq": str(seq),
        "call_state": state,
        "location": "abonent",
        "from": {"number": "74955404444"},
        "to": {"extension": "101", "number": "12345678", "line_number": "74951234567"},
        **extra,
    }


def summary(entry: str, result: int, direction: int = 1) -> dict[str, Any]:
    return {
        "entry_id": entry,
        "call_direction": direction,
        "from": {"number": "74955404444"},
        "to": {"extension": "101"},
        "create_time": mango_now(-60),
        "forward_time": mango_now(-50),
        "talk_time": mango_now(-40) if result else 0,
        "end_time": mango_now(),
        "entry_result": result,
        "disconnect_reason": 1110,
    }


async def test_inbound_answered_queue_call_and_late_recording(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        recording_components(env.runtime)
        e = "MToxMDE1NjQwMzoxMDE6"
        to102 = {"extension": "102", "number": "sip:b@x.mangosip.ru", "line_number": "74951234567"}
        steps = [
            leg(e, "ivr:1", 1, "Appeared", location="ivr", to={"line_number": "74951234567"}),
            leg(e, "ivr:1", 2, "Disconnected", location="ivr", to={"line_number": "74951234567"}),
            leg(e, "200:514", 3, "Appeared"),
            leg(e, "201:515", 4, "Appeared", to=to102),
            leg(e, "200:514", 5, "Connected"),
            leg(e, "201:515", 6, "Disconnected", to=to102, disconnect_reason="1110"),
            leg(e, "200:514", 7, "Disconnected", disconnect_reason="1110"),
        ]
        for payload in steps:
            resp = await post(env, "/events/call", payload)
            assert resp.status == 200, await resp.text()
        assert (await post(env, "/events/summary", summary(e, 1))).status == 200
        ringing = [await env.next_event("call.ringing") for _ in range(2)]
        assert [r.extension for r in ringing] == ["101", "102"]
        assert ringing[0].caller.number == "74955404444"
        assert ringing[0].did == "74951234567"
        ended = await env.next_event("call.ended")
        assert ended.conversation_id == e
        assert ended.pbx == "mango-main"
        assert ended.outcome is Outcome.ANSWERED
        assert ended.direction is Direction.INBOUND
        assert ended.answered_by == "101"
        assert ended.rang == ("101", "102")

        rec = {"entry_id": e, "recording_id": "MToxMDE1NjQwMzo0", "timestamp": mango_now()}
        assert (await post(env, "/events/record/added", rec)).status == 200
        await env.settle()
        async with env.runtime.engine.connect() as conn:
            # the ended call is enriched: the pipeline got the recording of that conversation
            for _ in range(50):
                row = (
                    await conn.execute(select(recordings).where(recordings.c.conversation_id == e))
                ).first()
                if row is not None:
                    break
                await env.worker.wait_idle(0.1)
        assert row is not None
        assert row.source == "mango:mg1:MToxMDE1NjQwMzo0"


async def test_missed_and_outbound_calls(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        steps = [
            leg("missed1", "300:1", 1, "Appeared"),
            leg("missed1", "300:1", 2, "Disconnected", disconnect_reason="1110"),
        ]
        for payload in steps:
            assert (await post(env, "/events/call", payload)).status == 200
        assert (await post(env, "/events/summary", summary("missed1", 0))).status == 200
        missed = await env.next_event("call.ended", lambda x: x.conversation_id == "missed1")
        assert missed.outcome is Outcome.ABANDONED
        assert missed.direction is Direction.INBOUND
        assert missed.rang == ("101",)

        out_from = {"extension": "101", "number": "sip:a@x.mangosip.ru"}
        out_to = {"number": "79169998877"}
        for payload in [
            leg("out1", "400:1", 1, "Appeared", **{"from": out_from, "to": out_to}),
            leg("out1", "400:1", 2, "Connected", **{"from": out_from, "to": out_to}),
            leg("out1", "400:1", 3, "Disconnected", **{"from": out_from, "to": out_to}),
        ]:
            assert (await post(env, "/events/call", payload)).status == 200
        assert (await post(env, "/events/summary", summary("out1", 1, direction=2))).status == 200
        out = await env.next_event("call.ended", lambda x: x.conversation_id == "out1")
        assert out.direction is Direction.OUTBOUND
        assert out.outcome is Outcome.ANSWERED
        assert out.callee.number == "79169998877"
        assert out.answered_by == "101"


async def test_out_of_order_events_are_applied_in_seq_order(tmp_path: Path) -> None:
    async with webhook_env(tmp_path, reorder_window=10.0) as env:
        e = "reordered"
        ring = leg(e, "500:1", 1, "Appeared")
        answer = leg(e, "500:1", 2, "Connected")
        hangup = leg(e, "500:1", 3, "Disconnected")
        # the summary and the later legs arrive before the first event
        assert (await post(env, "/events/call", answer)).status == 200
        assert (await post(env, "/events/call", hangup)).status == 200
        assert (await post(env, "/events/summary", summary(e, 1))).status == 200
        assert (await post(env, "/events/call", answer)).status == 200  # a duplicate too
        assert (await post(env, "/events/call", ring)).status == 200
        types = []
        while not types or types[-1] != "call.ended":
            types.append((await _next_any(env)).TYPE)
        assert types == ["call.ringing", "call.answered", "call.ended"]
        await env.settle()
        rows = await env.inbox_rows()
        assert len(rows) == 4
        assert {r.status for r in rows} == {"done"}


async def _next_any(env: Any) -> Any:
    return await asyncio.wait_for(env.events.get(), 15)


async def test_signatures_replays_and_garbage(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        payload = leg("bad1", "1:1", 1, "Appeared")
        before = metric(
            "connector_webhook_requests_total", provider="mango", result="bad_signature"
        )
        assert (await post(env, "/events/call", payload, salt="wrong")).status == 401
        assert (await post(env, "/events/call", payload, key="other-key")).status == 401
        tampered = mango_form(payload)
        tampered["json"] = tampered["json"].replace("74955404444", "70000000000")
        assert (await env.client.post(BASE + "/events/call", data=tampered)).status == 401
        after = metric("connector_webhook_requests_total", provider="mango", result="bad_signature")
        assert after - before == 3

        old = leg("old1", "1:1", 1, "Appeared", timestamp=str(mango_now(-3600)))
        resp = await post(env, "/events/call", old)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "replayed"

        signed_garbage = {"vpbx_api_key": KEY, "json": "{not json"}
        signed_garbage["sign"] = hashlib.sha256((KEY + "{not json" + SALT).encode()).hexdigest()
        resp = await env.client.post(BASE + "/events/call", data=signed_garbage)
        assert resp.status == 400
        assert "not JSON" in (await resp.json())["error"]["message"]
        resp = await env.client.post(BASE + "/events/call", data={"json": "{}"})
        assert resp.status == 400
        no_state = {k: v for k, v in payload.items() if k != "call_state"}
        resp = await post(env, "/events/call", no_state)
        assert resp.status == 400
        assert "call_state" in (await resp.json())["error"]["message"]
        resp = await post(env, "/events/unheard-of", {"entry_id": "x"})
        assert resp.status == 400
        assert (await post(env, "/events/dtmf", {"entry_id": "x", "dtmf": "1"})).status == 200
        await env.settle()
        rows = await env.inbox_rows()
        assert len(rows) == 1 and rows[0].status == "done"
