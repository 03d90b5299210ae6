"""MegaFon (ITooLabs CRM API) commands posted to a running connector; call events checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.events.model import Direction, Outcome
from crm_sync.contacts import create_contact
from tests.integration.webhook_env import metric, seed_agents, webhook_env

TOKEN = "megafon-crm-token"
URL = "/webhooks/megafon/mf1"


async def post(env: Any, token: str = TOKEN, **fields: str) -> Any:
    return await env.client.post(URL, data={**fields, "crm_token": token})


def event(type_: str, callid: str, ext: str, **extra: str) -> dict[str, str]:
    return {
        "cmd": "event",
        "type": type_,
        "phone": "79161112233",
        "diversion": "74957778899",
        "user": f"user{ext}",
        "ext": ext,
        "callid": callid,
        **extra,
    }


def history(callid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "cmd": "history",
        "type": "in",
        "user": "user101",
        "ext": "101",
        "phone": "79161112233",
        "diversion": "74957778899",
        "start": "20261128T101500Z",
        "duration": "50",
        "callid": callid,
        "status": status,
        **extra,
    }


async def test_inbound_answered_with_recording_link(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        for fields in [
            event("INCOMING", "43294397431", "101"),
            event("INCOMING", "43294397431", "102"),
            event("ACCEPTED", "43294397431", "101"),
            event("CANCELLED", "43294397431", "102"),
            event("COMPLETED", "43294397431", "101"),
            history("43294397431", "Success", link="https://records.example/test.mp3"),
        ]:
            resp = await post(env, **fields)
            assert resp.status == 200, await resp.text()
        ringing = [await env.next_event("call.ringing") for _ in range(2)]
        assert [r.extension for r in ringing] == ["101", "102"]
        assert ringing[0].caller.number == "79161112233"
        assert ringing[0].did == "74957778899"
        ended = await env.next_event("call.ended")
        assert ended.pbx == "megafon-main"
        assert ended.outcome is Outcome.ANSWERED
        assert ended.direction is Direction.INBOUND
        assert ended.answered_by == "101"
        assert ended.rang == ("101", "102")
        assert ended.recording == "https://records.example/test.mp3"
        # history.start is UTC; the end is start + duration
        assert ended.ended_at.isoformat() == "2026-11-28T10:15:50+00:00"


async def test_missed_busy_outbound(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        for fields in [
            event("INCOMING", "m1", "101"),
            event("CANCELLED", "m1", "101"),
            history("m1", "missed"),
        ]:
            assert (await post(env, **fields)).status == 200
        missed = await env.next_event("call.ended", lambda e: e.conversation_id == "m1")
        assert missed.outcome is Outcome.ABANDONED
        assert missed.rang == ("101",)

        for fields in [history("b1", "Busy")]:
            assert (await post(env, **fields)).status == 200
        busy = await env.next_event("call.ended", lambda e: e.conversation_id == "b1")
        assert busy.outcome is Outcome.BUSY

        for fields in [
            event("OUTGOING", "o1", "101", direction="out"),
            event("ACCEPTED", "o1", "101", direction="out"),
            event("COMPLETED", "o1", "101", direction="out"),
            history("o1", "Success", type="out"),
        ]:
            assert (await post(env, **fields)).status == 200
        out = await env.next_event("call.ended", lambda e: e.conversation_id == "o1")
        assert out.direction is Direction.OUTBOUND
        assert out.outcome is Outcome.ANSWERED
        assert out.callee.number == "79161112233"
        assert out.answered_by == "101"


async def test_contact_lookup_answers_with_name_and_responsible(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        ids = await seed_agents(env.runtime, {"megafon-main": ["101"]})
        async with env.runtime.engine.begin() as conn:
            await create_contact(
                conn,
                {
                    "name": "Ivan Petrov",
                    "phones": ["+7 916 111-22-33"],
                    "responsible_user_id": ids["agent101"],
                },
            )
        resp = await post(env, cmd="contact", phone="89161112233", callid="c1", diversion="7495")
        assert resp.status == 200
        assert await resp.json() == {"contact_name": "Ivan Petrov", "responsible": "agent101"}
        resp = await post(env, cmd="contact", phone="79990000000", callid="c2")
        assert await resp.json() == {"contact_name": ""}
        resp = await post(env, token="wrong", cmd="contact", phone="89161112233", callid="c3")
        assert resp.status == 401


async def test_bad_token_and_garbage(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        before = metric(
            "connector_webhook_requests_total", provider="megafon", result="bad_signature"
        )
        assert (await post(env, token="nope", **event("INCOMING", "x", "101"))).status == 401
        resp = await env.client.post(URL, data=event("INCOMING", "x", "101"))
        assert resp.status == 401
        after = metric(
            "connector_webhook_requests_total", provider="megafon", result="bad_signature"
        )
        assert after - before == 2
        resp = await post(env, **event("RINGING_SIDEWAYS", "x", "101"))
        assert resp.status == 400
        resp = await post(env, **history("x", "Success", start="yesterday"))
        assert resp.status == 400
        assert "start" in (await resp.json())["error"]["message"]
        resp = await post(env, cmd="teleport", callid="x")
        assert resp.status == 400
        await env.settle()
        assert await env.inbox_rows() == []
