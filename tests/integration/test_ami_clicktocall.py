"""Click-to-call through the REST API to the fake AMI server and back through the call events.

Real HTTP (aiohttp test server on loopback), real AMI over TCP, a real SQLite file: the
``Originate`` the server receives is checked header by header, and the server then replays the
recorded click-to-call (with our ``ChannelId``) so the status follows the real call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.adapters.ami import AmiActionError
from connector.adapters.ami_replay_server import FakeAmiServer, Transcript, channels_up
from connector.app import Runtime
from connector.clicktocall import ClickToCall
from connector.events.model import CallAnswered, CallEnded
from connector.web.app import create_app
from crm_sync.schema import contacts
from tests.integration.ami_harness import DATA, Harness, pbx_config, running, transcript
from tests.integration.calllog_support import add_user

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
# login -> (role, team, extensions on PBX "main")
PEOPLE = {
    "anna": ("agent", "sales", ["102"]),
    "boris": ("agent", "sales", ["101"]),
    "carl": ("agent", "support", []),
    "sue": ("supervisor", "sales", []),
    "olga": ("supervisor", "support", []),
}
DIAL_RULES = [{"match": r"^\+7", "strip": 2, "prepend": "8"}]


async def seed(runtime: Runtime) -> dict[str, str]:
    """Insert :data:`PEOPLE`; their API tokens by login."""
    tokens: dict[str, str] = {}
    for login, (role, team, exts) in PEOPLE.items():
        _, tokens[login] = await add_user(runtime, login, role, team, tuple(exts), pbx="main")
    return tokens


@dataclass
class Env:
    pbx: FakeAmiServer
    h: Harness
    client: TestClient  # type: ignore[type-arg]
    tokens: dict[str, str]
    calls: ClickToCall

    def auth(self, login: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[login]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers


@contextlib.asynccontextmanager
async def environment(tmp_path: Path, originate: str) -> AsyncIterator[Env]:
    recorded = Transcript.load(DATA / f"{originate}.ami")
    async with FakeAmiServer(originate_transcript=recorded) as pbx:
        cfg = pbx_config("main", pbx.port, dial_rules=DIAL_RULES)
        async with running(tmp_path, [cfg]) as h:
            tokens = await seed(h.runtime)
            calls = ClickToCall(h.runtime)
            follower = asyncio.create_task(calls.run())
            adapter = h.adapters["main"]
            await adapter.wait_until(lambda: adapter.status["connected"] is True)
            client = TestClient(TestServer(create_app(h.runtime)))
            await client.start_server()
            try:
                yield Env(pbx, h, client, tokens, calls)
            finally:
                await client.close()
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower


async def test_ami_click_to_call_agent_did_not_answer(tmp_path: Path) -> None:
    async with environment(tmp_path, "click_to_call_noanswer") as env:
        body = {"to": "+7 (916) 123-45-67", "contact_id": 7}
        resp = await env.client.post("/api/v1/calls", json=body, headers=env.auth("anna", "k-1"))
        assert resp.status == 202, await resp.text()
        placed = await resp.json()
        call_id = placed["call_id"]
        assert placed["to_dial"] == "89161234567"
        assert placed["extension"] == "102" and placed["pbx"] == "main"

        originate = await env.pbx.wait_for_action("Originate")
        assert originate.get("Channel") == "Local/102@agents"
        assert originate.get("Context") == "outbound"
        assert originate.get("Exten") == "89161234567"
        assert originate.get("ChannelId") == call_id
        assert originate.get("Async") == "true"

        done = await env.calls.wait_status(call_id, {"failed", "completed"})
        assert done.status == "failed"
        assert done.reason == "agent did not answer"
        ended = [e for e in await env.h.ended(1) if e.conversation_id == call_id]
        assert ended and ended[0].failure == "agent_no_answer"

        # a retry with the same key: same call, no second Originate
        again = await env.client.post("/api/v1/calls", json=body, headers=env.auth("anna", "k-1"))
        assert again.status == 202
        assert (await again.json())["call_id"] == call_id
        assert len(env.pbx.actions_named("Originate")) == 1

        resp = await env.client.get(f"/api/v1/calls/{call_id}", headers=env.auth("anna"))
        status = await resp.json()
        assert status["status"] == "failed"
        assert status["reason"] == "agent did not answer"
        assert status["contact_id"] == 7

        # who may see it: the team's supervisor yes; another agent or team no
        seen = await env.client.get(f"/api/v1/calls/{call_id}", headers=env.auth("sue"))
        assert seen.status == 200
        for login in ("boris", "olga"):
            hidden = await env.client.get(f"/api/v1/calls/{call_id}", headers=env.auth(login))
            assert hidden.status == 404


async def test_ami_click_to_call_answered_follows_the_call(tmp_path: Path) -> None:
    async with environment(tmp_path, "click_to_call") as env:
        async with env.h.runtime.engine.begin() as conn:
            result = await conn.execute(
                contacts.insert().values(
                    name="Ivan Petrov", emails=[], tags=[], created_at=T0, updated_at=T0
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
        body = {"to": "89161234567", "contact_id": int(pk[0])}
        resp = await env.client.post("/api/v1/calls", json=body, headers=env.auth("boris", "b-1"))
        assert resp.status == 202, await resp.text()
        call_id = (await resp.json())["call_id"]
        originate = await env.pbx.wait_for_action("Originate")
        assert originate.get("Channel") == "Local/101@agents"
        assert originate.get("ChannelId") == call_id
        assert originate.get("CallerID") == '"Ivan Petrov" <89161234567>'
        done = await env.calls.wait_status(call_id, {"failed", "completed"})
        assert done.status == "completed", done.reason
        (ended,) = await env.h.ended(1)
        assert isinstance(ended, CallEnded)
        assert ended.conversation_id == call_id  # every event of the call is ours
        assert ended.answered_by == "101"
        assert ended.callee.number == "89161234567"
        assert ended.recording.endswith("out-20261128-212202-1795900920.16.wav")  # real file


async def test_ami_click_to_call_bad_requests(tmp_path: Path) -> None:
    async with environment(tmp_path, "click_to_call_noanswer") as env:
        post = env.client.post
        no_key = await post("/api/v1/calls", json={"to": "123"}, headers=env.auth("anna"))
        assert no_key.status == 400
        bad = await post("/api/v1/calls", json={"to": "call me"}, headers=env.auth("anna", "x"))
        assert bad.status == 400
        assert (await bad.json())["error"]["field"] == "to"
        no_line = await post("/api/v1/calls", json={"to": "123"}, headers=env.auth("carl", "y"))
        assert no_line.status == 409
        first = await post("/api/v1/calls", json={"to": "101"}, headers=env.auth("anna", "z"))
        assert first.status == 202
        reused = await post("/api/v1/calls", json={"to": "102"}, headers=env.auth("anna", "z"))
        assert reused.status == 409
        anonymous = await post("/api/v1/calls", json={"to": "101"})
        assert anonymous.status == 401
        for raw in (b"", b"[1]", b'{"to": NaN}', b"[" * 100_000, b'{"to": "\xff"}'):
            broken = await post("/api/v1/calls", data=raw, headers=env.auth("anna", "b"))
            assert broken.status == 400, raw[:20]
        extra = await post("/api/v1/calls", json={"to": "1", "x": 1}, headers=env.auth("anna", "e"))
        assert extra.status == 400
        # a cross-site form carrying only the cookie cannot place a call
        form = await post(
            "/api/v1/calls",
            data="to=101",
            headers={
                "Idempotency-Key": "csrf",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            cookies={"vc_token": env.tokens["anna"]},
        )
        assert form.status == 400
        unknown = await env.client.get("/api/v1/calls/nope", headers=env.auth("anna"))
        assert unknown.status == 404
        assert len(env.pbx.actions_named("Originate")) == 1


async def test_ami_click_to_call_pbx_down_is_rejected_not_hung(tmp_path: Path) -> None:
    async with environment(tmp_path, "click_to_call_noanswer") as env:
        adapter = env.h.adapters["main"]
        await env.pbx.stop()  # the PBX goes away and refuses connections
        await adapter.wait_until(lambda: adapter.status["connected"] is False)
        resp = await env.client.post(
            "/api/v1/calls", json={"to": "101"}, headers=env.auth("anna", "down-1")
        )
        assert resp.status == 502
        error = (await resp.json())["error"]
        assert error["code"] == "originate_failed"
        assert "not connected" in error["message"]
        stored = await env.calls.get(error["call_id"])
        assert stored is not None and stored.status == "rejected"


async def test_ami_pbx_status_endpoint(tmp_path: Path) -> None:
    async with environment(tmp_path, "click_to_call") as env:
        resp = await env.client.get("/api/v1/pbx", headers=env.auth("sue"))
        assert resp.status == 200
        (item,) = (await resp.json())["items"]
        assert item["name"] == "main"
        assert item["connected"] is True
        assert item["state"] == "connected"
        assert item["connected_since"]
        for key in ("events_per_second", "messages_total", "protocol_errors", "reconnects"):
            assert key in item
        assert "secret" not in item
        forbidden = await env.client.get("/api/v1/pbx", headers=env.auth("anna"))
        assert forbidden.status == 403


async def test_ami_hangup_ends_every_live_channel_of_the_call(tmp_path: Path) -> None:
    async with environment(tmp_path, "click_to_call") as env:
        head, _ = transcript("inbound_answered").split_before(b"Event: Hangup\r\n")
        await env.pbx.play(head)
        while not isinstance(await env.h.next_event(), CallAnswered):
            pass
        control = env.h.runtime.controls["main"]
        await control.hangup("1795900871.0")
        hangups = env.pbx.actions_named("Hangup")
        assert sorted(a.get("Channel") for a in hangups) == sorted(
            ch["Channel"] for ch in channels_up(head)
        )
        with pytest.raises(AmiActionError):
            await control.hangup("no-such-call")


async def test_ami_click_to_call_silent_pbx_never_hangs(tmp_path: Path) -> None:
    """The Originate reaches a PBX that stopped answering: the request ends, rejected."""
    async with environment(tmp_path, "click_to_call_noanswer") as env:
        env.pbx.go_silent()
        resp = await env.client.post(
            "/api/v1/calls", json={"to": "101"}, headers=env.auth("anna", "silent-1")
        )
        assert resp.status == 502
        error = (await resp.json())["error"]
        assert error["code"] == "originate_failed"
        assert len(env.pbx.actions_named("Originate")) == 1
        stored = await env.calls.get(error["call_id"])
        assert stored is not None and stored.status == "rejected"
