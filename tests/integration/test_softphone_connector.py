"""End to end: a softphone call (sipp caller) reaches the connector's call log.

A real connector web app on 127.0.0.1 (SQLite file in tmp_path, real call tracker and call-log
writer), a user whose extension on the softphone PBX is the phone's username, with a token; the
softphone registers at sipp, looks the caller up through the connector, answers, and its
observations are posted over HTTP. The call lands as an activity.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.app import OriginateRequest
from connector.clicktocall import ClickToCall
from connector.config import Secret
from connector.events.model import CallEnded, Direction, Outcome, Party, RecordingReady
from connector.events.wire import event_to_dict
from connector.web.softphone_api import CONTROL
from crm_sync.contacts import create_company, create_contact
from crm_sync.schema import activities
from softphone import events as ev
from softphone.link import ConnectorLink, run_commands, run_uplink
from softphone.observations import ObservationMapper
from softphone.phone import Softphone
from tests.data.sip.pcap import tone_ulaw, write_rtp_pcap
from tests.integration.calllog_support import add_user, open_runtime, web_client, writer_running
from tests.integration.softphone_sipp import Sipp, free_udp_port, phone_settings

pytestmark = pytest.mark.sip

WAIT = 15.0


async def next_of(queue: asyncio.Queue[ev.PhoneEvent], kind: type, **match: Any) -> Any:
    async def find() -> Any:
        while True:
            event = await queue.get()
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in match.items()):
                return event

    return await asyncio.wait_for(find(), WAIT)


async def test_softphone_call_lands_in_the_call_log(tmp_path: Path) -> None:
    write_rtp_pcap(tmp_path / "call.pcap", tone_ulaw(0.5))
    async with open_runtime(tmp_path) as runtime, writer_running(runtime) as writer:
        uid, token = await add_user(runtime, "alice", exts=("alice",), pbx="softphone")
        async with runtime.engine.begin() as conn:
            company = await create_company(conn, {"name": "Roga i Kopyta"})
            await create_contact(
                conn,
                {
                    "name": "Ivan Petrov",
                    "company_id": company.id,
                    "responsible_user_id": uid,
                    "phones": ["+7 916 123-45-67"],
                },
            )
        ended_sub = runtime.bus.subscribe("test", {CallEnded.TYPE})
        ready_sub = runtime.bus.subscribe("test-recordings", {RecordingReady.TYPE})
        async with web_client(runtime) as client:
            base = str(client.make_url("")).rstrip("/")
            sipp = Sipp("registrar_caller", free_udp_port(), tmp_path).start()
            settings = dataclasses.replace(
                phone_settings(sipp.port, tmp_path), connector_url=base, token=Secret(token)
            )
            phone = Softphone(settings)
            queue = phone.listen()
            try:
                async with ConnectorLink(base, token) as link:
                    await phone.start()
                    uplink = asyncio.create_task(run_uplink(phone, link, retry_delay=0.2))
                    try:
                        ringing = await next_of(queue, ev.CallRinging)
                        card = await link.lookup(ringing.remote.number)
                        assert card is not None
                        assert card.name == "Ivan Petrov"
                        assert card.company == "Roga i Kopyta"
                        assert card.responsible == "Alice"
                        phone.answer(ringing.call_id)
                        await next_of(queue, ev.CallEnded, call_id=ringing.call_id)

                        ended = await asyncio.wait_for(ended_sub.get(), WAIT)
                        assert isinstance(ended, CallEnded)
                        assert ended.pbx == "softphone"
                        assert ended.conversation_id == ringing.call_id
                        assert ended.outcome == Outcome.ANSWERED
                        assert ended.direction == Direction.INBOUND
                        assert ended.answered_by == "alice"
                        await writer.wait_handled(1, timeout=WAIT)
                        # The phone's WAV is uploaded, transcoded and stored with the call.
                        ready = await asyncio.wait_for(ready_sub.get(), WAIT)
                        assert isinstance(ready, RecordingReady)
                        assert ready.conversation_id == ringing.call_id
                        assert ready.duration_seconds > 0.3
                    finally:
                        uplink.cancel()
                        await asyncio.gather(uplink, return_exceptions=True)
            finally:
                await phone.stop()
                sipp.stop()
        async with runtime.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(activities).where(activities.c.conversation_id == ringing.call_id)
                )
            ).one()
        assert row.kind == "call" and row.pbx == "softphone"
        assert row.outcome == "answered" and row.answered_by_user_id == uid
        assert row.caller_raw == "79161234567"
        assert row.recording_id == ready.recording_id


async def test_observations_endpoint_checks_owner_and_input(tmp_path: Path) -> None:
    async with open_runtime(tmp_path) as runtime:
        _, alice = await add_user(runtime, "alice", exts=("alice",), pbx="softphone")
        _, bob = await add_user(runtime, "bob", exts=("bob",), pbx="softphone")
        mapper = ObservationMapper(pbx="softphone", extension="alice")
        ring = ev.CallRinging(
            "c-1",
            Direction.INBOUND,
            Party("alice"),
            Party("79160000000"),
            datetime.now(UTC),
        )
        body = {"observations": [event_to_dict(o) for o in mapper.handle(ring)]}
        async with web_client(runtime) as client:

            async def post(token: str, data: Any) -> tuple[int, Any]:
                resp = await client.post(
                    "/api/v1/softphone/observations",
                    json=data,
                    headers={"Authorization": f"Bearer {token}"},
                )
                return resp.status, await resp.json()

            status, data = await post(bob, body)
            assert status == 403 and "not yours" in data["error"]["message"]
            status, data = await post(alice, body)
            assert status == 200 and data["accepted"] == 2 and data["events"] == ["call.ringing"]
            # Bob may not end Alice's conversation.
            end = event_to_dict(
                mapper.handle(ev.CallEnded("c-1", ev.EndReason.CANCELLED, ring.at))[1]
            )
            status, data = await post(bob, {"observations": [end]})
            assert status == 403 and "another user's" in data["error"]["message"]
            # Wrong PBX, unknown type, a call event, malformed values: 400 with a message.
            wrong_pbx = dict(end, pbx="asterisk")
            for bad in (
                [wrong_pbx],
                [{"type": "obs.nope"}],
                [{"type": "call.ended"}],
                [dict(end, at="yesterday")],
                "not a list",
            ):
                status, data = await post(alice, {"observations": bad})
                assert status == 400, (bad, data)
            status, _ = await post("bogus-token", body)
            assert status == 401

            # Recordings: only the owner of the call, only WAV.
            async def put(token: str, conversation: str, data: bytes) -> tuple[int, Any]:
                resp = await client.put(
                    f"/api/v1/softphone/recordings/{conversation}",
                    data=data,
                    headers={"Authorization": f"Bearer {token}"},
                )
                return resp.status, await resp.json()

            status, data = await put(bob, "c-1", b"RIFF\0\0\0\0WAVEfmt ")
            assert status == 404 and "no softphone call" in data["error"]["message"]
            status, data = await put(alice, "c-1", b"not a wav at all")
            assert status == 400 and "WAV" in data["error"]["message"]


async def test_click_to_call_dials_from_the_softphone(tmp_path: Path) -> None:
    async with open_runtime(tmp_path) as runtime:
        _, token = await add_user(runtime, "alice", exts=("alice",), pbx="softphone")
        auth = {"Authorization": f"Bearer {token}"}
        async with web_client(runtime) as client:
            base = str(client.make_url("")).rstrip("/")
            control = client.server.app[CONTROL]
            assert "softphone" not in runtime.controls  # no phone has shown up yet
            direct = await control.originate(
                OriginateRequest(call_id="x", pbx="softphone", extension="alice", number="1")
            )
            assert not direct.accepted and "no softphone is connected" in direct.reason

            sipp = Sipp("registrar_callee", free_udp_port(), tmp_path, rtpport=free_udp_port())
            sipp.start()
            phone = Softphone(phone_settings(sipp.port, tmp_path))
            queue = phone.listen()
            try:
                async with ConnectorLink(base, token) as link:
                    await phone.start()
                    clicktocall = ClickToCall(runtime)  # the service behind /api/v1/calls
                    tasks = [
                        asyncio.create_task(run_commands(phone, link)),
                        asyncio.create_task(run_uplink(phone, link)),
                        asyncio.create_task(clicktocall.run()),
                    ]
                    try:
                        user_id = runtime.directory.user_of("softphone", "alice")
                        assert user_id is not None
                        assert await control.wait_connected(user_id, WAIT)
                        assert runtime.controls["softphone"] is control

                        # The agent clicks a number: the REST API places the call.
                        resp = await client.post(
                            "/api/v1/calls",
                            json={"to": "+7 916 123-45-67"},
                            headers={**auth, "Idempotency-Key": "click-1"},
                        )
                        placed = await resp.json()
                        assert resp.status == 202, placed
                        assert placed["pbx"] == "softphone" and placed["extension"] == "alice"

                        ringing = await next_of(queue, ev.CallRinging)
                        assert ringing.call_id == placed["call_id"]  # the SIP Call-ID
                        assert ringing.direction == Direction.OUTBOUND
                        assert ringing.remote.number == "+79161234567"
                        await next_of(queue, ev.CallAnswered, call_id=ringing.call_id)
                        phone.hangup(ringing.call_id)
                        await next_of(queue, ev.CallEnded, call_id=ringing.call_id)
                        # The softphone's observations carry the id: the origination completes.
                        done = await clicktocall.wait_status(
                            placed["call_id"], {"completed", "failed"}, WAIT
                        )
                        assert done.status == "completed", done.reason
                    finally:
                        for task in tasks:
                            task.cancel()
                        await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                await phone.stop()
                sipp.stop()


async def test_stopping_during_a_call_still_reports_its_end(tmp_path: Path) -> None:
    write_rtp_pcap(tmp_path / "call.pcap", tone_ulaw(0.5))
    async with open_runtime(tmp_path) as runtime:
        _, token = await add_user(runtime, "alice", exts=("alice",), pbx="softphone")
        ended_sub = runtime.bus.subscribe("test", {CallEnded.TYPE})
        async with web_client(runtime) as client:
            base = str(client.make_url("")).rstrip("/")
            sipp = Sipp("registrar_caller", free_udp_port(), tmp_path).start()
            phone = Softphone(phone_settings(sipp.port, tmp_path))
            queue = phone.listen()
            try:
                async with ConnectorLink(base, token) as link:
                    await phone.start()
                    uplink = asyncio.create_task(run_uplink(phone, link, finish_on_stop=True))
                    ringing = await next_of(queue, ev.CallRinging)
                    phone.answer(ringing.call_id)
                    await next_of(queue, ev.CallAnswered, call_id=ringing.call_id)
                    await phone.stop()  # hangs up the call in progress
                    await asyncio.wait_for(uplink, WAIT)  # and the uplink delivers, then ends
            finally:
                await phone.stop()
                sipp.stop()
            ended = await asyncio.wait_for(ended_sub.get(), WAIT)
            assert isinstance(ended, CallEnded)
            assert ended.conversation_id == ringing.call_id
            assert ended.outcome == Outcome.ANSWERED
