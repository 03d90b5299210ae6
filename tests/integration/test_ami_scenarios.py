"""Every recorded Asterisk scenario, end to end through real TCP, the adapter and the tracker.

The fake server replays each transcript with its recorded chunking (messages cut mid-line, as
Asterisk's TCP writes were received); the call events come off the runtime's bus.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.adapters.ami_replay_server import Chunk, FakeAmiServer, Transcript
from connector.app import Runtime, serve
from connector.config import settings_from_mapping
from connector.events.bus import Subscription
from connector.events.model import CallEnded, Direction, Outcome
from tests.integration.ami_harness import pbx_config, running, transcript

# scenario -> what the README's truth table says the call log must be
TRUTH: dict[str, dict[str, Any]] = {
    "inbound_answered": {
        "direction": Direction.INBOUND,
        "outcome": Outcome.ANSWERED,
        "rang": {"101"},
        "answered_by": "101",
        "caller": "+79161234567",
        "recording": "in-20261128-212111-1795900871.1.wav",
    },
    "inbound_missed": {
        "direction": Direction.INBOUND,
        "outcome": Outcome.NO_ANSWER,
        "rang": {"102"},
        "answered_by": "",
        "caller": "89161234567",
    },
    "inbound_busy": {
        "direction": Direction.INBOUND,
        "outcome": Outcome.BUSY,
        "rang": {"103"},
        "answered_by": "",
        "caller": "89161234567",
    },
    "caller_abandons": {
        "direction": Direction.INBOUND,
        "outcome": Outcome.ABANDONED,
        "rang": {"102"},
        "answered_by": "",
        "caller": "",
    },
    "click_to_call": {
        "direction": Direction.OUTBOUND,
        "outcome": Outcome.ANSWERED,
        "answered_by": "101",
        "callee": "89161234567",
        "recording": "out-20261128-212202-1795900920.16.wav",
    },
    "click_to_call_noanswer": {
        "direction": Direction.OUTBOUND,
        "answered_by": "",
        "failure": "agent_no_answer",
        "callee": "+79161234567",
    },
    "queue_call": {
        "direction": Direction.INBOUND,
        "outcome": Outcome.ANSWERED,
        "rang": {"201", "202"},
        "answered_by": "202",
        "caller": "74951234567",
        "caller_name": "ООО Ромашка",
        "recording": "q-20261128-212212-1795900932.21.wav",
    },
    "transfer": {
        "direction": Direction.INBOUND,
        "outcome": Outcome.ANSWERED,
        "rang": {"101", "104"},
        "answered_by": "101",
        "talked_last": "104",
        "transfers": (("101", "104"),),
        "recording": "in-20261128-212221-1795900941.27.wav",
    },
}


def check_truth(scenario: str, ended: CallEnded) -> None:
    """Assert a call.ended against the truth table."""
    truth = TRUTH[scenario]
    assert ended.direction == truth["direction"]
    if "outcome" in truth:
        assert ended.outcome == truth["outcome"]
    if "rang" in truth:
        assert set(ended.rang) == truth["rang"]
    assert ended.answered_by == truth["answered_by"]
    if "talked_last" in truth:
        assert ended.talked_last == truth["talked_last"]
    if "transfers" in truth:
        assert ended.transfers == truth["transfers"]
    if "caller" in truth:
        assert ended.caller.number == truth["caller"]
    if "caller_name" in truth:
        assert ended.caller.name == truth["caller_name"]
    if "callee" in truth:
        assert ended.callee.number == truth["callee"]
    if "recording" in truth:
        assert ended.recording.endswith(truth["recording"])
    else:
        assert ended.recording == ""
    assert ended.failure == truth.get("failure", "")


@pytest.mark.parametrize("scenario", sorted(TRUTH))
async def test_ami_scenario_end_to_end(tmp_path: Path, scenario: str) -> None:
    recorded = transcript(scenario)
    async with FakeAmiServer(playlist=[recorded]) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            (ended,) = await h.ended(1)
            check_truth(scenario, ended)
            assert ended.pbx == "main"
            status = h.runtime.pbx_status["main"]
            assert status["protocol_errors"] == 0
            assert status["messages_total"] >= len(recorded.messages())
            # exactly one call: nothing else ends once the replay is done and resync ran
            await h.adapters["main"].wait_until(lambda: status["resyncs"] >= 1)
            await pbx.wait_until(lambda: pbx.played >= 1)
            assert [e for e in h.seen if isinstance(e, CallEnded)] == [ended]


async def test_ami_scenario_with_recorded_timing(tmp_path: Path) -> None:
    """The same call replayed with its real timing (sped up 40x) still gives the truth."""
    async with FakeAmiServer(playlist=[transcript("inbound_answered")], speed=40) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            (ended,) = await h.ended(1)
            check_truth("inbound_answered", ended)
            # the call was live while we resynchronised: it was not ended by the resync
            assert h.runtime.pbx_status["main"]["resyncs"] >= 1


async def test_ami_every_scenario_back_to_back_on_one_connection(tmp_path: Path) -> None:
    names = sorted(TRUTH)
    async with FakeAmiServer(playlist=[transcript(n) for n in names]) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            ended = await h.ended(len(names))
            by_id = {e.conversation_id: e for e in ended}
            assert len(by_id) == len(names)
            for name, event in zip(names, ended, strict=True):
                check_truth(name, event)


async def test_ami_two_pbxs_at_once(tmp_path: Path) -> None:
    """Two PBXs, each its own connection; the same recorded ids stay two separate calls."""
    async with (
        FakeAmiServer(playlist=[transcript("queue_call"), transcript("inbound_answered")]) as a,
        FakeAmiServer(playlist=[transcript("inbound_answered")], secret="other-secret") as b,
    ):
        pbxs = [pbx_config("east", a.port), pbx_config("west", b.port, secret="other-secret")]
        async with running(tmp_path, pbxs) as h:
            ended = await h.ended(3)
            assert sorted((e.pbx, e.conversation_id) for e in ended) == [
                ("east", "1795900871.0"),
                ("east", "1795900932.20"),
                ("west", "1795900871.0"),
            ]
            for e in ended:
                check_truth("queue_call" if e.queue else "inbound_answered", e)
            assert set(h.runtime.controls) == {"east", "west"}
            assert h.runtime.pbx_status["east"]["connected"] is True
            assert h.runtime.pbx_status["west"]["connected"] is True


async def test_ami_loop_mode_never_repeats_ids(tmp_path: Path) -> None:
    """The demo's loop mode: each round is a new call with new ids."""
    recorded = transcript("inbound_answered")
    async with FakeAmiServer(playlist=[recorded], loop=True, loop_pause=0.05) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            ended = await h.ended(3)
            assert len({e.conversation_id for e in ended}) == 3
            for e in ended:
                check_truth("inbound_answered", e)


async def test_ami_daemon_runs_one_adapter_per_configured_pbx(tmp_path: Path) -> None:
    """The real daemon (``serve``): the factory starts the adapters, /healthz shows them."""
    async with (
        FakeAmiServer(playlist=[transcript("inbound_answered")]) as a,
        FakeAmiServer(playlist=[transcript("inbound_busy")]) as b,
    ):
        settings = settings_from_mapping(
            {
                "server": {"port": 0},
                "hub": {"port": 0},
                "storage": {"data_dir": str(tmp_path / "data")},
                "pbx": [pbx_config("a", a.port), pbx_config("b", b.port, enabled=True)],
            },
            base_dir=tmp_path,
            environ={},
        )
        ready: asyncio.Future[tuple[Runtime, str, Subscription]] = (
            asyncio.get_running_loop().create_future()
        )

        def on_ready(runtime: Runtime, url: str) -> None:
            ready.set_result((runtime, url, runtime.bus.subscribe("daemon-test", {"call.ended"})))

        daemon = asyncio.create_task(serve(settings, on_ready=on_ready))
        try:
            async with asyncio.timeout(20):
                runtime, url, sub = await ready
                ended = [await sub.get(), await sub.get()]
            assert sorted((e.pbx, e.outcome) for e in ended if isinstance(e, CallEnded)) == [
                ("a", "answered"),
                ("b", "busy"),
            ]
            assert set(runtime.controls) >= {"a", "b"}
            async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
                health = await resp.json()
            assert set(health["pbx"]) >= {"a", "b"}
            async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
                metrics = await resp.text()
            assert 'connector_ami_connected{pbx="a"} 1.0' in metrics
            assert 'connector_ami_messages_total{pbx="b"}' in metrics
            assert 'connector_ami_auth_failed{pbx="a"} 0.0' in metrics
        finally:
            daemon.cancel()
            await asyncio.gather(daemon, return_exceptions=True)


async def test_ami_cyrillic_name_split_inside_characters(tmp_path: Path) -> None:
    """Every Cyrillic name cut in the middle of a character between two TCP writes."""
    recorded = transcript("queue_call")
    data = recorded.data
    name = "Ромашка".encode()
    cuts = set()
    pos = data.find(name)
    while pos >= 0:
        cuts.add(pos + 1)  # inside the two-byte "Р"
        pos = data.find(name, pos + 1)
    edges = sorted(cuts | {len(data)})
    chunks, start = [], 0
    for n, edge in enumerate(edges):
        chunks.append(Chunk(n * 0.001, data[start:edge]))
        start = edge
    split = Transcript(tuple(chunks))
    async with FakeAmiServer(playlist=[split], speed=1.0) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            (ended,) = await h.ended(1)
            check_truth("queue_call", ended)
            assert ended.caller.name == "ООО Ромашка"
            assert h.runtime.pbx_status["main"]["protocol_errors"] == 0


async def test_ami_twenty_calls_interleaved_at_once(tmp_path: Path) -> None:
    """Twenty recorded calls (fresh ids each) interleaved message by message, cut at random."""
    rng = random.Random(20)
    names = [sorted(TRUTH)[i % len(TRUTH)] for i in range(20)]
    recorded = {name: transcript(name) for name in TRUTH}
    calls = [recorded[name].with_round(i + 1).messages() for i, name in enumerate(names)]
    expected = {  # conversation id of each call -> its scenario
        recorded[name].round_ids(i + 1)[_recorded_id(recorded[name]).encode()].decode(): name
        for i, name in enumerate(names)
    }
    stream: list[bytes] = []
    while any(calls):
        live = [c for c in calls if c]
        stream.append(rng.choice(live).pop(0).to_bytes())
    data = b"".join(stream)
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, 3000)
        chunks.append(Chunk(0.0, data[pos : pos + size]))
        pos += size
    async with FakeAmiServer(playlist=[Transcript(tuple(chunks))]) as pbx:
        async with running(tmp_path, [pbx_config("main", pbx.port)]) as h:
            ended = await h.ended(20, timeout=30)
            assert len({e.conversation_id for e in ended}) == 20
            for event in ended:
                check_truth(expected[event.conversation_id], event)
            assert h.runtime.pbx_status["main"]["protocol_errors"] == 0


def _recorded_id(recorded: Transcript) -> str:
    """The conversation id the recorded scenario has (its first Linkedid)."""
    for msg in recorded.messages():
        if msg.get("Linkedid"):
            return msg.get("Linkedid")
    raise AssertionError(recorded.name)
