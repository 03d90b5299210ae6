"""The AMI adapter against a misbehaving PBX: restarts, half-open sockets, bad logins, garbage.

Every wait is on a condition (server or adapter state) with a bound; assertions are on counts
(reconnects, protocol errors), never on elapsed time.
"""

from __future__ import annotations

import random
from pathlib import Path

from connector.adapters.ami_replay_server import FakeAmiServer, Transcript, channels_up
from connector.events.model import CallAnswered, CallEnded, Outcome
from tests.integration.ami_harness import pbx_config, running, transcript


def answered_call_halves() -> tuple[Transcript, Transcript]:
    """inbound_answered cut while 101 talks to the caller (before the first Hangup)."""
    return transcript("inbound_answered").split_before(b"Event: Hangup\r\n")


async def test_ami_connection_lost_mid_call_call_is_adopted_and_ends_later(
    tmp_path: Path,
) -> None:
    head, tail = answered_call_halves()
    async with FakeAmiServer(playlist=[head]) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            while not isinstance(await h.next_event(), CallAnswered):
                pass
            await pbx.wait_until(lambda: pbx.played >= 1)
            await adapter.wait_until(lambda: adapter.status["resyncs"] >= 1)
            pbx.drop()  # the network fails; the PBX keeps the call up
            await adapter.wait_until(lambda: adapter.status["reconnects"] >= 1)
            await adapter.wait_until(lambda: adapter.status["resyncs"] >= 2)
            assert len(pbx.actions_named("CoreShowChannels")) >= 2
            assert not [e for e in h.seen if isinstance(e, CallEnded)]  # still up: adopted
            await pbx.play(tail)
            (ended,) = await h.ended(1)
            assert ended.conversation_id == "1795900871.0"
            assert ended.outcome == Outcome.ANSWERED
            assert ended.answered_by == "101"


async def test_ami_pbx_restart_mid_call_ends_the_vanished_call(tmp_path: Path) -> None:
    head, _tail = answered_call_halves()
    async with FakeAmiServer(playlist=[head]) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            while not isinstance(await h.next_event(), CallAnswered):
                pass
            await pbx.wait_until(lambda: pbx.played >= 1)
            await pbx.restart(down_for=0.1)  # Shutdown, EOF, refused, back with Uptime 0
            (ended,) = await h.ended(1)
            assert ended.conversation_id == "1795900871.0"
            assert ended.outcome == Outcome.ANSWERED  # from what was known: 101 answered
            assert ended.answered_by == "101"
            await adapter.wait_until(lambda: adapter.status["connected"] is True)
            assert adapter.status["reconnects"] >= 1
            assert len(pbx.actions_named("Login")) >= 2


async def test_ami_recorded_restart_transcript_reconnects(tmp_path: Path) -> None:
    """The real capture of ``core restart now``: Shutdown then EOF; the adapter comes back."""
    async with FakeAmiServer(playlist=[transcript("reconnect")]) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            await adapter.wait_until(lambda: adapter.status["reconnects"] >= 1)
            await adapter.wait_until(lambda: adapter.status["connected"] is True)
            assert pbx.logins >= 2


async def test_ami_fresh_connector_adopts_calls_already_up(tmp_path: Path) -> None:
    """The connector (re)starts during a call: CoreShowChannels makes it known, then it ends."""
    head, tail = answered_call_halves()
    async with FakeAmiServer(live_channels=channels_up(head)) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            await adapter.wait_until(lambda: adapter.status["resyncs"] >= 1)
            pbx.live_channels = None
            await pbx.play(tail)
            (ended,) = await h.ended(1)
            assert ended.conversation_id == "1795900871.0"
            assert ended.outcome == Outcome.ANSWERED


async def test_ami_half_open_connection_is_detected_by_ping_timeout(tmp_path: Path) -> None:
    async with FakeAmiServer() as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            await adapter.wait_until(lambda: adapter.status["connected"] is True)
            await pbx.wait_for_action("Ping")
            pbx.go_silent()  # socket stays open, nothing is answered any more
            await adapter.wait_until(lambda: adapter.status["reconnects"] >= 1)
            assert adapter.status["ping_timeouts"] >= 1
            assert "half-open" in adapter.status["last_error"]
            await adapter.wait_until(lambda: adapter.status["connected"] is True)
            assert pbx.logins >= 2
            # the new connection works: a call is tracked
            await pbx.play(transcript("inbound_busy"))
            (ended,) = await h.ended(1)
            assert ended.outcome == Outcome.BUSY


async def test_ami_wrong_password_is_reported_and_retried(tmp_path: Path) -> None:
    async with FakeAmiServer(secret="the-right-one", auth_delay=0.01) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            status = h.runtime.pbx_status["main"]
            await adapter.wait_until(lambda: status["auth_failures"] >= 3)
            assert status["auth_failed"] is True
            assert status["state"] == "auth_failed"
            assert status["connected"] is False
            assert "authentication failed" in status["last_error"].lower()
            assert pbx.failed_logins >= 3 and pbx.logins == 0
            # the operator fixes manager.conf: the next retry gets in
            pbx.secret = "connector-secret"
            await adapter.wait_until(lambda: status["connected"] is True)
            assert status["auth_failed"] is False


async def test_ami_recorded_auth_failure_exchange(tmp_path: Path) -> None:
    """The real failure: Error reply after a delay, then the socket closes."""
    async with FakeAmiServer(secret="not-ours", auth_delay=0.05) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            await adapter.wait_until(lambda: adapter.status["auth_failures"] >= 1)
            login = pbx.actions_named("Login")[0]
            assert login.get("Username") == "connector"
            assert adapter.status["auth_failed"] is True


async def test_ami_garbage_on_the_socket_is_counted_and_survived(tmp_path: Path) -> None:
    rng = random.Random(42)
    async with FakeAmiServer() as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            status = adapter.status
            await adapter.wait_until(lambda: status["resyncs"] >= 1)
            pbx.send_raw(bytes(rng.randrange(256) for _ in range(4096)) + b"\r\n\r\n")
            pbx.send_raw(b"Event: Newchannel\r\nCallerIDName: " + b"x" * (10 << 20) + b"\r\n\r\n")
            pbx.send_raw(b"Event: Newchannel\r\nCallerIDName: \xd0\x9e\xff\xfe\r\n\r\n")
            pbx.send_raw(b"Event: Hangup\r\nChannel: PJSIP/101-1\r\nEvent: Newstate\r\n\r\n")
            pbx.send_raw(b"no colon on this line\r\n\r\n")
            await adapter.wait_until(lambda: status["protocol_errors"] >= 4)
            assert status["reconnects"] == 0  # survived without losing the connection
            await pbx.play(transcript("queue_call"))  # Cyrillic name, cut across reads
            (ended,) = await h.ended(1)
            assert ended.caller.name == "ООО Ромашка"
            assert ended.answered_by == "202"
            # a message cut off by the connection closing is counted too; we reconnect
            errors = status["protocol_errors"]
            pbx.send_raw(b"Event: Newchannel\r\nChannel: PJSIP/trunk-0001\r\nUniq")
            pbx.hang_up()
            await adapter.wait_until(lambda: status["reconnects"] >= 1)
            assert status["protocol_errors"] > errors
            await adapter.wait_until(lambda: status["connected"] is True)
            await pbx.play(transcript("inbound_answered"))
            (ended,) = await h.ended(1)
            assert ended.answered_by == "101"


async def test_ami_stopping_logs_off(tmp_path: Path) -> None:
    async with FakeAmiServer() as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            adapter = h.adapters["main"]
            await adapter.wait_until(lambda: adapter.status["resyncs"] >= 1)
        await pbx.wait_for_action("Logoff")
        assert h.runtime.pbx_status["main"]["state"] == "stopped"
        assert "main" not in h.runtime.controls
