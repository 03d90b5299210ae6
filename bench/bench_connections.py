"""Connections: the daemon's memory with 10,000 idle websockets, and one event fanned out to all.

A ``connector run`` process (a fake AMI endpoint as its PBX) gets ``agents`` websocket
connections, one per user, all subscribed to ``scope=all`` (admins' wallboard view), so a single
call event must reach every one of them. Measured: the daemon's RSS before and after the
connections are up (idle for a few seconds), and for ``events`` ringing calls the time from the
``DialBegin`` bytes being written to the last of the ``agents`` frames received (this process
receives all of them too, so the time includes the client side's own work).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.agents import Agents
from bench.ami_load import AmiLoad, make_call
from bench.common import Measurement
from bench.daemon import (
    AMI_SECRET,
    AMI_USER,
    PBX,
    Daemon,
    agent_extension,
    contact_number,
    raise_nofile,
)


async def _run(n: int, events: int) -> dict[str, Any]:
    load = AmiLoad(AMI_USER, AMI_SECRET, answer_after=-1, hangup_after=2.0)
    ami_port = await load.start()
    daemon = Daemon(
        "connections",
        agents=n,
        contacts=1_000,
        role="admin",
        ami_port=ami_port,
        hub={"heartbeat_seconds": 30},
    )
    await asyncio.to_thread(daemon.configure)
    await asyncio.to_thread(daemon.start)
    agents = Agents()
    arrivals: dict[str, list[float]] = {}

    def on_frame(msg: dict[str, Any], now: float) -> None:
        if msg.get("type") == "call" and msg["event"]["type"] == "call.ringing":
            arrivals.setdefault(msg["conversation"], []).append(now)

    agents.on_frame = on_frame
    try:
        await load.wait_login()
        await asyncio.sleep(2)
        rss_before = daemon.rss_mb()
        connect_s = await agents.connect(
            [daemon.hub_url(i, "&scope=all") for i in range(n)], parallel=100
        )
        await asyncio.sleep(5)  # idle
        rss_idle = daemon.rss_mb()
        fanout: list[float] = []
        for k in range(events):
            call = make_call(k, agent_extension(k % n), contact_number(k % 1_000))
            load.write_calls([call])
            key = f"{PBX}/{call.linkedid}"
            await agents.wait(lambda key=key: len(arrivals.get(key, ())) >= n, 120)
            got = arrivals.get(key, [])
            if len(got) >= n:
                fanout.append(max(got) - load.written[call.linkedid])
            await asyncio.sleep(3)
        rss_after = daemon.rss_mb()
        return {
            "rss_before": rss_before,
            "rss_idle": rss_idle,
            "rss_after": rss_after,
            "connect_s": connect_s,
            "fanout": fanout,
            "connected": len(agents.sockets),
        }
    finally:
        await agents.close()
        await load.stop()
        await asyncio.to_thread(daemon.stop)


def run(agents: int = 10_000, events: int = 3) -> tuple[list[Measurement], dict[str, Any]]:
    """Connect ``agents`` websockets to a connector and fan ``events`` call events out."""
    raise_nofile()
    t0 = time.perf_counter()
    r = asyncio.run(_run(agents, events))
    per_conn = (r["rss_idle"] - r["rss_before"]) * 1000 / max(1, agents)
    fan = r["fanout"]
    out = [
        Measurement(
            "connections",
            f"daemon RSS, {agents:,} idle websockets",
            r["rss_idle"],
            None,
            "MB",
            "<= 500 MB",
            r["rss_idle"] <= 500,
            f"{r['connected']:,} connected in {r['connect_s']:.1f} s; RSS before "
            f"{r['rss_before']:.0f} MB, {per_conn:.0f} kB per connection; after the fan-outs "
            f"{r['rss_after']:.0f} MB",
        ),
        Measurement(
            "connections",
            f"fan-out of one event to {agents:,}",
            statistics.median(fan) * 1000 if fan else float("nan"),
            None,
            "ms",
            "–",
            None,
            f"DialBegin written -> the last of {agents:,} frames received (median of "
            f"{len(fan)}; all: {', '.join(f'{v * 1000:.0f}' for v in fan)} ms); the receiving "
            "clients run in one process",
        ),
    ]
    out[0].goal = 500
    return out, {
        "connections": {k: v for k, v in r.items()},
        "connections_seconds": round(time.perf_counter() - t0, 1),
    }
