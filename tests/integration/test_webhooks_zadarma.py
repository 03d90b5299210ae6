"""Zadarma NOTIFY_* webhooks posted, signed, to a running connector; call events checked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from connector.events.model import Direction, Outcome
from tests.integration.webhook_env import ZADARMA_SECRET as SECRET
from tests.integration.webhook_env import ZADARMA_URL as URL
from tests.integration.webhook_env import metric, seed_agents, webhook_env, zd_signature
from tests.integration.webhook_env import post_zadarma as post
from tests.integration.webhook_env import zadarma_call as call


async def test_inbound_answered_call_with_recording(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        await seed_agents(env.runtime, {"zadarma-main": ["100", "101"]})
        cid = "in_ae6b03b3b0765d127ec0b739209346bbc4f0d52d"
        base = {"caller_id": "79161234567", "called_did": "74951234567"}
        steps = [
            call("NOTIFY_START", cid, **base),
            call("NOTIFY_INTERNAL", cid, internal="100", **base),
            call("NOTIFY_INTERNAL", cid, internal="101", **base),
            call("NOTIFY_ANSWER", cid, caller_id="79161234567", destination="101", internal="101"),
            call(
                "NOTIFY_END",
                cid,
                internal="101",
                duration="37",
                disposition="answered",
                status_code="16",
                is_recorded="1",
                call_id_with_rec="1-1458313316.343456-101-2026-11-28-150000",
                **base,
            ),
        ]
        for fields in steps:
            resp = await post(env, fields)
            assert resp.status == 200, await resp.text()
        ringing = [await env.next_event("call.ringing") for _ in range(2)]
        assert {r.extension for r in ringing} == {"100", "101"}
        assert ringing[0].caller.number == "79161234567"
        assert ringing[0].user_id is not None
        answered = await env.next_event("call.answered")
        assert answered.extension == "101"
        claimed = await env.next_event("call.claimed")
        assert claimed.extension == "100"
        ended = await env.next_event("call.ended")
        assert ended.pbx == "zadarma-main"
        assert ended.conversation_id == cid
        assert ended.outcome is Outcome.ANSWERED
        assert ended.direction is Direction.INBOUND
        assert ended.answered_by == "101"
        assert set(ended.rang) == {"100", "101"}
        assert ended.did == "74951234567"
        assert ended.talk_seconds == 37.0
        # call_start is Moscow time (account timezone): 15:00 MSK is 12:00 UTC.
        assert ended.started_at.isoformat() == "2026-11-28T12:00:00+00:00"
        assert ended.recording == "zadarma:zd1:1-1458313316.343456-101-2026-11-28-150000"


async def test_missed_busy_and_outbound_calls(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        base = {"caller_id": "79160000001", "called_did": "74951234567"}
        for fields in [
            call("NOTIFY_START", "in_missed", **base),
            call("NOTIFY_INTERNAL", "in_missed", internal="100", **base),
            call(
                "NOTIFY_END",
                "in_missed",
                internal="100",
                duration="0",
                disposition="cancel",
                **base,
            ),
        ]:
            assert (await post(env, fields)).status == 200
        missed = await env.next_event("call.ended", lambda e: e.conversation_id == "in_missed")
        assert missed.outcome is Outcome.ABANDONED
        assert missed.direction is Direction.INBOUND
        assert missed.rang == ("100",)
        assert missed.answered_by == ""

        for fields in [
            call("NOTIFY_START", "in_busy", **base),
            call("NOTIFY_INTERNAL", "in_busy", internal="102", **base),
            call("NOTIFY_END", "in_busy", internal="102", duration="0", disposition="busy", **base),
        ]:
            assert (await post(env, fields)).status == 200
        busy = await env.next_event("call.ended", lambda e: e.conversation_id == "in_busy")
        assert busy.outcome is Outcome.BUSY

        out = {"internal": "101", "destination": "79169998877"}
        for fields in [
            call("NOTIFY_OUT_START", "out_1", **out),
            call(
                "NOTIFY_ANSWER", "out_1", caller_id="101", destination="79169998877", internal="101"
            ),
            call(
                "NOTIFY_OUT_END",
                "out_1",
                caller_id="101",
                duration="12",
                disposition="answered",
                is_recorded="0",
                **out,
            ),
        ]:
            assert (await post(env, fields)).status == 200
        outbound = await env.next_event("call.ended", lambda e: e.conversation_id == "out_1")
        assert outbound.direction is Direction.OUTBOUND
        assert outbound.outcome is Outcome.ANSWERED
        assert outbound.callee.number == "79169998877"
        assert outbound.answered_by == "101"
        assert outbound.talk_seconds == 12.0

        for fields in [
            call("NOTIFY_OUT_START", "out_2", **out),
            call(
                "NOTIFY_OUT_END", "out_2", caller_id="101", duration="0", disposition="busy", **out
            ),
        ]:
            assert (await post(env, fields)).status == 200
        out_busy = await env.next_event("call.ended", lambda e: e.conversation_id == "out_2")
        assert out_busy.outcome is Outcome.BUSY
        assert out_busy.direction is Direction.OUTBOUND


async def test_duplicates_are_acknowledged_and_processed_once(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        base = {"caller_id": "79160000002", "called_did": "74951234567"}
        ringing = call("NOTIFY_INTERNAL", "in_dup", internal="100", **base)
        before = metric("connector_webhook_requests_total", provider="zadarma", result="duplicate")
        for _ in range(3):
            assert (await post(env, ringing)).status == 200
        after = metric("connector_webhook_requests_total", provider="zadarma", result="duplicate")
        assert after - before == 2
        await env.settle()
        rows = await env.inbox_rows()
        assert len(rows) == 1 and rows[0].status == "done"
        end = call(
            "NOTIFY_END", "in_dup", internal="100", duration="0", disposition="no answer", **base
        )
        assert (await post(env, end)).status == 200
        seen = []
        while not seen or seen[-1].TYPE != "call.ended":
            seen.append(await asyncio.wait_for(env.events.get(), 10))
        assert [e.TYPE for e in seen] == ["call.ringing", "call.ended"]
        assert seen[-1].outcome is Outcome.NO_ANSWER
        # processed rows are kept a week for deduplication, then purged
        await env.settle()
        assert await env.worker.purge(datetime.now(UTC)) == 0
        assert await env.worker.purge(datetime.now(UTC) + timedelta(days=8)) == 2
        assert await env.inbox_rows() == []


async def test_bad_signature_garbage_echo_and_limits(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        fields = call("NOTIFY_START", "in_bad", caller_id="79160000003", called_did="749500")
        before = metric(
            "connector_webhook_requests_total", provider="zadarma", result="bad_signature"
        )
        resp = await post(env, fields, secret="not-the-secret")
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "bad_signature"
        resp = await env.client.post(URL, data=urlencode(fields).encode())
        assert resp.status == 401
        after = metric(
            "connector_webhook_requests_total", provider="zadarma", result="bad_signature"
        )
        assert after - before == 2

        resp = await env.client.post(
            URL,
            data=b"\xff\xfe\x00garbage",
            headers={"Signature": "x", "Content-Type": "text/plain"},
        )
        assert resp.status == 400
        assert "UTF-8" in (await resp.json())["error"]["message"]
        missing_time = {k: v for k, v in fields.items() if k != "call_start"} | {"call_start": "x"}
        resp = await post(env, missing_time)
        assert resp.status == 400
        assert "call_start" in (await resp.json())["error"]["message"]
        unknown = {"event": "NOTIFY_SOMETHING", "pbx_call_id": "x"}
        resp = await env.client.post(URL, data=unknown, headers={"Signature": "abc"})
        assert resp.status == 400

        resp = await env.client.get(URL, params={"zd_echo": "a1B2c3"})
        assert resp.status == 200
        assert await resp.text() == "a1B2c3"
        assert resp.headers["Content-Type"].startswith("text/plain")

        resp = await env.client.post("/webhooks/zadarma/nobody", data=fields)
        assert resp.status == 404
        resp = await env.client.post(
            URL, data=b"x" * (env.runtime.settings.server.max_body_bytes + 10)
        )
        assert resp.status == 413
        await env.settle()
        assert await env.inbox_rows() == []


async def test_multipart_body_with_mismatched_boundary(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        fields = call("NOTIFY_START", "in_mp", caller_id="79160000004", called_did="74951234567")
        boundary = "------------------------a1b2c3d4"
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            )
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        resp = await env.client.post(
            URL,
            data=body,
            headers={
                # the header names another boundary, as Zadarma has been seen doing
                "Content-Type": "multipart/form-data; boundary=somethingelse",
                "Signature": zd_signature(fields),
            },
        )
        assert resp.status == 200, await resp.text()
        await env.settle()
        rows = await env.inbox_rows()
        assert [r.status for r in rows] == ["done"]


async def test_source_ip_allow_list(tmp_path: Path) -> None:
    accounts = [
        {
            "provider": "zadarma",
            "account": "zd1",
            "secret": SECRET,
            "allow_ips": ["185.45.152.40/30"],
        }
    ]
    async with webhook_env(tmp_path, accounts) as env:
        fields = call("NOTIFY_START", "in_ip", caller_id="79160000005", called_did="7495")
        resp = await post(env, fields)
        assert resp.status == 403


async def test_a_lost_answer_notification_still_gives_an_answered_call(tmp_path: Path) -> None:
    async with webhook_env(tmp_path) as env:
        base = {"caller_id": "79160000006", "called_did": "74951234567"}
        for fields in [
            call("NOTIFY_INTERNAL", "in_lost", internal="100", **base),
            call(
                "NOTIFY_END",
                "in_lost",
                internal="100",
                duration="25",
                disposition="answered",
                **base,
            ),
        ]:
            assert (await post(env, fields)).status == 200
        ended = await env.next_event("call.ended", lambda e: e.conversation_id == "in_lost")
        assert ended.outcome is Outcome.ANSWERED
        assert ended.answered_by == "100"
        assert ended.talk_seconds == 25.0
