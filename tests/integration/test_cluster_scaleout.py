"""Scale-out: two connector nodes on one PostgreSQL database and one Redis.

Each node is a real runtime (``build_runtime``) running every component the daemon runs
(``_load_factories`` + ``cluster.arrange``, supervised as in ``serve``), with its own hub on a
free port. One fake AMI server (real TCP) stands for the PBX. Checked: only the lease holder
connects; an agent connected to the *other* node gets the pop; the call is logged once (by
the node that saw it); the other node takes the PBX over when the holder stops, and after the
lease expires when the holder is killed (a real ``connector run`` killed with SIGKILL); with
Redis unreachable both nodes run alone without failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from connector.adapters.ami import AmiAdapter
from connector.adapters.ami_replay_server import FakeAmiServer
from connector.app import Component, Runtime, _load_factories, _supervise, build_runtime
from connector.cluster import arrange
from connector.cluster_bus import ClusterBridge, Wake, decode_message, encode_message
from connector.cluster_lease import LeasedComponent, LeaseState, LeaseStore
from connector.config import ConfigError, settings_from_mapping
from connector.events.bus import EventBus
from connector.events.model import CallEnded
from connector.events.wire import WireFormatError
from connector.hub import Hub
from connector.web.app import create_app
from connector.web.health import pbx_health
from connector.webhooks_inbox import InboxWorker
from crm_sync.schema import activities
from tests.integration.ami_harness import SECRET, pbx_config, transcript
from tests.integration.hub_env import handshake, recv_type, ringing, seed_people
from tests.integration.store_support import postgres_database

REDIS = "redis://127.0.0.1:6379/0"
LEASE = 1.0  # seconds: short, so failover happens within the test's bounded waits


def node_raw(
    tmp_path: Path, node: str, db: str, ami_port: int, channel: str, redis: str = REDIS
) -> dict[str, Any]:
    """The settings of one node (as a TOML-shaped mapping)."""
    return {
        "storage": {"data_dir": str(tmp_path / node), "database_url": db},
        "server": {"port": 0},
        "hub": {"port": 0, "heartbeat_seconds": 5, "lookup_budget_ms": 0},
        "pbx": [pbx_config("pbx1", ami_port)],
        "cluster": {
            "redis_url": redis,
            "node_id": node,
            "lease_seconds": LEASE,
            "channel": channel,
        },
    }


@dataclass
class Node:
    """A running node: its runtime and its components by name."""

    runtime: Runtime
    components: dict[str, Component]
    tasks: list[asyncio.Task[None]]
    url: str = ""

    @property
    def pbx_lease(self) -> LeasedComponent:
        lease = self.components["ami:pbx1"]
        assert isinstance(lease, LeasedComponent)
        return lease

    @property
    def adapter(self) -> AmiAdapter:
        inner = self.pbx_lease.inner
        assert isinstance(inner, AmiAdapter)
        return inner

    @property
    def hub(self) -> Hub:
        hub = self.runtime.extras["hub"]
        assert isinstance(hub, Hub)
        return hub

    @property
    def bridge(self) -> ClusterBridge:
        bridge = self.runtime.extras["cluster_bus"]
        assert isinstance(bridge, ClusterBridge)
        return bridge

    def calllog_handled(self) -> int:
        return int(getattr(self.components["calllog"], "handled", 0))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    def alive(self) -> bool:
        return bool(self.tasks) and not any(t.done() for t in self.tasks)


@contextlib.asynccontextmanager
async def running_node(tmp_path: Path, raw: dict[str, Any]) -> AsyncIterator[Node]:
    """Every component of the daemon, arranged for the cluster, each under the supervisor."""
    settings = settings_from_mapping(raw, base_dir=tmp_path, environ={})
    runtime = await build_runtime(settings)
    runner = web.AppRunner(create_app(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    runtime.extras["url"] = url = f"http://127.0.0.1:{port}"
    components: list[Component] = []
    for factory in _load_factories():
        components.extend(factory(runtime))
    components = arrange(runtime, components)
    tasks = [asyncio.create_task(_supervise(c), name=c.name) for c in components]
    node = Node(runtime, {c.name: c for c in components}, tasks, url)
    try:
        async with asyncio.timeout(10):
            await node.hub.ready.wait()
        yield node
    finally:
        await node.stop()
        await runner.cleanup()
        await runtime.engine.dispose()


async def until(condition: Callable[[], bool], *events: Callable[[], asyncio.Event]) -> None:
    """Wait (bounded by the caller's timeout) until ``condition()``, re-checked whenever one of
    ``events`` (read afresh each time) is set."""
    while not condition():
        waits = [asyncio.create_task(e().wait()) for e in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


async def holding(node: Node, timeout: float = 10.0) -> None:
    """Wait until ``node`` holds pbx1's lease and its adapter is logged in."""
    async with asyncio.timeout(timeout):
        await until(
            lambda: node.pbx_lease.state is LeaseState.HOLDING, lambda: node.pbx_lease.changed
        )
    await node.adapter.wait_until(lambda: node.adapter.status["connected"] is True, timeout)


async def logged_calls(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(activities)) or 0)


@pytest.mark.postgres
async def test_two_nodes_one_pbx_connection_pops_everywhere_logged_once(tmp_path: Path) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    async with postgres_database("cluster") as db, FakeAmiServer(secret=SECRET) as ami:
        async with running_node(tmp_path, node_raw(tmp_path, "a", db, ami.port, channel)) as a:
            _ids, tokens, _ = await seed_people(a.runtime)
            await holding(a)
            async with running_node(tmp_path, node_raw(tmp_path, "b", db, ami.port, channel)) as b:
                # b stands by and knows who holds the PBX; only one connection reaches the PBX
                async with asyncio.timeout(10):
                    await until(
                        lambda: (
                            b.pbx_lease.state is LeaseState.STANDBY
                            and b.runtime.pbx_status["pbx1"]["lease_holder"] == "a"
                        ),
                        lambda: b.pbx_lease.changed,
                    )
                    await until(lambda: a.bridge.connected, lambda: a.bridge._changed)
                    await until(lambda: b.bridge.connected, lambda: b.bridge._changed)
                assert ami.logins == 1 and ami.sessions == 1
                assert b.adapter.status["connected"] is False
                health_b = pbx_health(["pbx1"], b.runtime.pbx_status)["pbx1"]
                assert health_b["lease_holder"] == "a" and health_b["node"] == "b"
                assert health_b["up"] is True  # standby behind a live holder is healthy
                assert a.runtime.pbx_status["pbx1"]["lease"] == "holding"
                # the cluster-wide workers (here: the outgoing webhook sender) run on a only
                lead_a, lead_b = (n.runtime.extras["leases"]["outbox"] for n in (a, b))
                async with asyncio.timeout(10):
                    await until(lambda: lead_b.state is LeaseState.STANDBY, lambda: lead_b.changed)
                assert lead_a.state is LeaseState.HOLDING

                # anna's browser is connected to b; the call arrives on a's AMI connection
                url = f"ws://127.0.0.1:{b.hub.bound_port}/ws?token={tokens['anna']}"
                from websockets.asyncio.client import connect

                async with connect(url, proxy=None, open_timeout=5, close_timeout=2) as ws:
                    await handshake(ws)
                    await ami.play(transcript("inbound_answered"))
                    pop = await recv_type(ws, "call", timeout=10)
                    assert pop["event"]["type"] == "call.ringing"
                    assert pop["event"]["extension"] == "101"
                    assert pop["event"]["pbx"] == "pbx1"

                    # logged once, by a (the node that made call.ended); b's log saw nothing
                    writer = a.components["calllog"]
                    await writer.wait_handled(1, timeout=10)  # type: ignore[attr-defined]
                    assert await logged_calls(a.runtime) == 1
                    assert b.calllog_handled() == 0
                    assert b.bridge.received > 0 and a.bridge.sent > 0
                    assert a.bridge.received == 0  # b made nothing to send

                # a stops (a clean shutdown releases the lease): b takes pbx1 over
                await a.stop()
                await holding(b)
                assert ami.logins == 2
                assert b.runtime.pbx_status["pbx1"]["lease_holder"] == "b"
                assert b.alive()
                assert await logged_calls(b.runtime) == 1


CONNECTOR = str(Path(sys.executable).with_name("connector"))


@contextlib.asynccontextmanager
async def connector_process(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real ``connector run`` in its own process group (killed at the end if still up)."""
    proc = await asyncio.create_subprocess_exec(
        CONNECTOR,
        "-c",
        str(config),
        "run",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(config.parent),
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 30)


def toml_of(raw: dict[str, Any]) -> str:
    """The little TOML the node settings need (strings, numbers, one [[pbx]])."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    lines: list[str] = []
    for section, table in raw.items():
        tables = table if isinstance(table, list) else [table]
        for t in tables:
            lines.append(f"[[{section}]]" if isinstance(table, list) else f"[{section}]")
            lines += [f"{k} = {value(v)}" for k, v in t.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.postgres
async def test_killed_holder_is_replaced_after_the_lease_expires(tmp_path: Path) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    async with postgres_database("cluster") as db, FakeAmiServer(secret=SECRET) as ami:
        config = tmp_path / "a.toml"
        raw_a = node_raw(tmp_path, "a", db, ami.port, channel)
        raw_a["hub"] = {"port": 0}
        config.write_text(toml_of(raw_a), encoding="utf-8")
        async with connector_process(config) as proc:
            await ami.wait_until(lambda: ami.logins == 1 and ami.sessions == 1, timeout=60)
            async with running_node(tmp_path, node_raw(tmp_path, "b", db, ami.port, channel)) as b:
                async with asyncio.timeout(10):
                    await until(
                        lambda: b.runtime.pbx_status["pbx1"]["lease_holder"] == "a",
                        lambda: b.pbx_lease.changed,
                    )
                assert b.pbx_lease.state is LeaseState.STANDBY and ami.logins == 1
                os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown: the lease stays
                await asyncio.wait_for(proc.wait(), 30)
                await holding(b, timeout=15)
                assert ami.logins == 2
                holders = await LeaseStore(b.runtime.engine).holders()
                assert holders["pbx1"].holder == "b"


@pytest.mark.postgres
async def test_redis_unreachable_nodes_run_alone(tmp_path: Path) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    nowhere = "redis://127.0.0.1:1/0"
    async with postgres_database("cluster") as db, FakeAmiServer(secret=SECRET) as ami:
        raw_a = node_raw(tmp_path, "a", db, ami.port, channel, redis=nowhere)
        async with running_node(tmp_path, raw_a) as a:
            _ids, tokens, _ = await seed_people(a.runtime)
            await holding(a)
            raw_b = node_raw(tmp_path, "b", db, ami.port, channel, redis=nowhere)
            async with running_node(tmp_path, raw_b) as b:
                async with asyncio.timeout(10):
                    await until(
                        lambda: b.pbx_lease.state is LeaseState.STANDBY,
                        lambda: b.pbx_lease.changed,
                    )
                url = f"ws://127.0.0.1:{a.hub.bound_port}/ws?token={tokens['anna']}"
                from websockets.asyncio.client import connect

                async with connect(url, proxy=None, open_timeout=5, close_timeout=2) as ws:
                    await handshake(ws)
                    await ami.play(transcript("inbound_answered"))
                    pop = await recv_type(ws, "call", timeout=10)
                    assert pop["event"]["type"] == "call.ringing"
                    await a.components["calllog"].wait_handled(1, timeout=10)  # type: ignore[attr-defined]
                assert await logged_calls(a.runtime) == 1
                assert not a.bridge.connected and not b.bridge.connected
                assert a.bridge.sent == 0 and a.bridge.dropped > 0
                assert ami.logins == 1
                assert a.alive() and b.alive()


# ------------------------------------------------------------------ small contracts, no peers


def test_channel_message_round_trip_and_bad_input() -> None:
    event = ringing("c1", "101")
    assert decode_message(encode_message("a", event)) == ("a", event)
    assert decode_message(encode_message("b", Wake("outbox"))) == ("b", Wake("outbox"))
    for bad in (b"not json", b"[]", b'{"node": 1}', b'{"node": "a", "event": {"type": "x"}}'):
        with pytest.raises(WireFormatError):
            decode_message(bad)
    with pytest.raises(WireFormatError):
        decode_message(b'{"node": "a", "wake": 3}')
    obs = b'{"node": "a", "event": {"type": "obs.leg_ringing"}}'
    with pytest.raises(WireFormatError):
        decode_message(obs)


async def test_remote_events_reach_only_subscribers_that_ask() -> None:
    bus = EventBus()
    bus.remote_subscribers.add("hub")
    hub = bus.subscribe("hub")
    log = bus.subscribe("calllog", {CallEnded.TYPE, "call.ringing"})
    explicit = bus.subscribe("other", include_remote=True)
    event = ringing("c1", "101")
    bus.publish(event, remote=True)
    assert hub.get_nowait() == event and explicit.get_nowait() == event
    assert log.get_nowait() is None
    bus.publish(event)
    assert log.get_nowait() == event and hub.get_nowait() == event


def test_cluster_settings_are_validated(tmp_path: Path) -> None:
    off = settings_from_mapping({}, base_dir=tmp_path, environ={})
    assert not off.cluster.enabled and off.cluster.effective_node_id.endswith(f"-{os.getpid()}")
    on = settings_from_mapping(
        {"cluster": {"redis_url": REDIS, "node_id": "n1"}}, base_dir=tmp_path, environ={}
    )
    assert on.cluster.enabled and on.cluster.effective_node_id == "n1"
    for bad, message in (
        ({"redis_url": "http://x"}, "cluster.redis_url must be"),
        ({"node_id": "a b"}, "cluster.node_id must be"),
        ({"lease_seconds": 0}, "cluster.lease_seconds must be"),
        ({"channel": ""}, "cluster.channel must be"),
        ({"colour": "red"}, "cluster.colour is not a known setting"),
    ):
        with pytest.raises(ConfigError, match=message):
            settings_from_mapping({"cluster": bad}, base_dir=tmp_path, environ={})


@pytest.mark.postgres
async def test_a_holder_that_cannot_renew_stops_its_adapter_at_once(tmp_path: Path) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    async with postgres_database("cluster") as db, FakeAmiServer(secret=SECRET) as ami:
        async with running_node(tmp_path, node_raw(tmp_path, "a", db, ami.port, channel)) as a:
            await holding(a)
            leader = a.runtime.extras["leases"]["outbox"]
            assert isinstance(leader, LeasedComponent)
            async with asyncio.timeout(10):
                await until(lambda: leader.state is LeaseState.HOLDING, lambda: leader.changed)
            # another process takes pbx1's lease (as after a pause longer than the lease)
            from crm_sync.schema import pbx_leases

            far = datetime.now(UTC) + timedelta(hours=1)
            async with a.runtime.engine.begin() as conn:
                await conn.execute(
                    pbx_leases.update()
                    .where(pbx_leases.c.pbx == "pbx1")
                    .values(holder="intruder", expires_at=far)
                )
            async with asyncio.timeout(10):
                await until(
                    lambda: (
                        a.pbx_lease.state is LeaseState.STANDBY
                        and a.runtime.pbx_status["pbx1"]["lease_holder"] == "intruder"
                    ),
                    lambda: a.pbx_lease.changed,
                )
            await ami.wait_until(lambda: ami.sessions == 0, timeout=10)
            assert a.adapter.status["connected"] is False
            assert "pbx1" not in a.runtime.controls  # click-to-call no longer goes through it
            assert leader.state is LeaseState.HOLDING  # the other leases are untouched
            assert a.alive()


class TcpRelay:
    """A TCP relay on a free loopback port to ``target``, which the test can cut and restore
    (Redis going away and coming back, without touching the shared Redis)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and reset every relayed connection."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@pytest.mark.postgres
async def test_redis_outage_degrades_then_recovers(tmp_path: Path) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    relay = TcpRelay(6379)
    await relay.start()
    via_relay = f"redis://127.0.0.1:{relay.port}/0"
    async with postgres_database("cluster") as db, FakeAmiServer(secret=SECRET) as ami:
        raw_a = node_raw(tmp_path, "a", db, ami.port, channel, redis=via_relay)
        async with running_node(tmp_path, raw_a) as a:
            await holding(a)
            async with running_node(tmp_path, node_raw(tmp_path, "b", db, ami.port, channel)) as b:
                async with asyncio.timeout(10):
                    await until(lambda: a.bridge.connected, lambda: a.bridge._changed)
                    await until(lambda: b.bridge.connected, lambda: b.bridge._changed)
                await relay.cut()  # a loses Redis
                async with asyncio.timeout(10):
                    await until(lambda: not a.bridge.connected, lambda: a.bridge._changed)
                a.runtime.publish(ringing("c-down", "101"))  # stays local, counted as dropped
                async with asyncio.timeout(10):
                    await until(lambda: a.bridge.dropped >= 1, lambda: a.bridge._changed)
                assert a.alive() and a.pbx_lease.state is LeaseState.HOLDING
                await relay.start()  # Redis is back (same port): a reconnects by itself
                async with asyncio.timeout(30):
                    await until(lambda: a.bridge.connected, lambda: a.bridge._changed)
                received = b.bridge.received
                a.runtime.publish(ringing("c-up", "101"))
                async with asyncio.timeout(10):
                    await until(lambda: b.bridge.received > received, lambda: b.bridge._changed)
                await relay.cut()


async def test_single_process_is_unchanged(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"storage": {"data_dir": str(tmp_path)}, "pbx": [pbx_config("pbx1", 5038)]},
        base_dir=tmp_path,
        environ={},
    )
    runtime = await build_runtime(settings)
    try:
        components: list[Component] = []
        for factory in _load_factories():
            components.extend(factory(runtime))
        assert arrange(runtime, components) == components
        assert runtime.bus.remote_subscribers == set()
        assert "cluster_bus" not in runtime.extras
        assert not any(isinstance(c, ClusterBridge) for c in components)
    finally:
        await runtime.engine.dispose()


HOOK_SECRET = "generic-shared-secret"


def signed(doc: Any) -> tuple[bytes, dict[str, str]]:
    """A generic webhook body and its signature headers."""
    body = json.dumps(doc).encode()
    ts = str(int(time.time()))
    mac = hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Connector-Timestamp": ts,
        "X-Connector-Signature": f"v1={mac}",
    }


@pytest.mark.postgres
async def test_webhook_stored_by_a_standby_node_is_processed_by_the_leader(
    tmp_path: Path,
) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    hook = {"provider": "generic", "account": "lab", "pbx": "pbx1", "secret": HOOK_SECRET}
    async with postgres_database("cluster") as db, FakeAmiServer(secret=SECRET) as ami:
        raw_a = {**node_raw(tmp_path, "a", db, ami.port, channel), "webhook": [hook]}
        async with running_node(tmp_path, raw_a) as a:
            _ids, tokens, _ = await seed_people(a.runtime)
            await holding(a)
            raw_b = {**node_raw(tmp_path, "b", db, ami.port, channel), "webhook": [hook]}
            async with running_node(tmp_path, raw_b) as b:
                lead_b = b.runtime.extras["leases"]["webhook-inbox"]
                async with asyncio.timeout(10):
                    await until(lambda: lead_b.state is LeaseState.STANDBY, lambda: lead_b.changed)
                    await until(lambda: a.bridge.connected, lambda: a.bridge._changed)
                    await until(lambda: b.bridge.connected, lambda: b.bridge._changed)
                worker_a = a.components["webhook-inbox"]
                worker_b = b.components["webhook-inbox"]
                assert isinstance(worker_a, LeasedComponent)
                assert isinstance(worker_b, LeasedComponent)
                inbox_a, inbox_b = worker_a.inner, worker_b.inner
                assert isinstance(inbox_a, InboxWorker) and isinstance(inbox_b, InboxWorker)
                from websockets.asyncio.client import connect

                ws_url = f"ws://127.0.0.1:{b.hub.bound_port}/ws?token={tokens['anna']}"
                async with connect(ws_url, proxy=None, open_timeout=5, close_timeout=2) as ws:
                    await handshake(ws)
                    at = int(time.time())
                    doc = {
                        "events": [
                            {
                                "id": "w1-1",
                                "type": "call.started",
                                "call_id": "w1",
                                "at": at,
                                "direction": "inbound",
                                "from": "79161234567",
                            },
                            {
                                "id": "w1-2",
                                "type": "leg.ringing",
                                "call_id": "w1",
                                "leg_id": "w1/101",
                                "extension": "101",
                                "at": at,
                            },
                        ]
                    }
                    body, headers = signed(doc)
                    async with aiohttp.ClientSession() as http:
                        async with http.post(
                            f"{b.url}/webhooks/generic/lab", data=body, headers=headers
                        ) as resp:
                            assert resp.status == 200, await resp.text()
                    # stored by b, processed by the leader a (woken over Redis), popped on b
                    pop = await recv_type(ws, "call", timeout=10)
                    assert pop["event"]["type"] == "call.ringing"
                    assert pop["event"]["extension"] == "101"
                assert inbox_a.processed >= 1 and inbox_b.processed == 0
                assert a.bridge.wakes_received >= 1


@pytest.mark.postgres
async def test_lease_store_is_exclusive_under_contention() -> None:
    from crm_sync.db import migrate, open_engine

    async with postgres_database("cluster") as db:
        await asyncio.to_thread(migrate, db)
        engines = [open_engine(db) for _ in range(4)]
        try:
            stores = [LeaseStore(e) for e in engines]
            now = datetime.now(UTC)
            for round_ in range(3):  # free, then expired twice: exactly one taker each time
                at = now + timedelta(seconds=10 * round_)
                won = await asyncio.gather(
                    *(s.acquire("pbx1", f"n{i}", at, 5.0) for i, s in enumerate(stores))
                )
                assert sum(won) == 1, won
                winner = f"n{won.index(True)}"
                holders = await stores[0].holders()
                assert holders["pbx1"].holder == winner
                assert holders["pbx1"].expires_at == at + timedelta(seconds=5)
                # the holder renews; nobody else takes a live lease
                assert await stores[0].acquire("pbx1", winner, at + timedelta(seconds=1), 5.0)
                others = [f"n{i}" for i in range(4) if f"n{i}" != winner]
                for other in others:
                    assert not await stores[1].acquire("pbx1", other, at + timedelta(seconds=2), 5)
            await stores[0].release("pbx1", "nobody")  # not the holder: nothing happens
            assert "pbx1" in await stores[0].holders()
            await stores[0].release("pbx1", winner)
            assert "pbx1" not in await stores[0].holders()
        finally:
            for engine in engines:
                await engine.dispose()
