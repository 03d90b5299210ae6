"""Pop latency: AMI bytes of a ringing call -> the pop frame on the agent's websocket.

A load generator (this process) is the PBX: a fake AMI endpoint the connector logs in to as a
``[[pbx]]``. ``agents`` agents (one extension each) are connected to the connector's hub. Calls
go round-robin to the agents, from the numbers of seeded contacts (so every pop has a card to
look up): first ``rate`` new calls per second for ``seconds`` (each answered after 1 s and hung
up after 3 s, so the call log writer and the tracker work too), then a burst of ``burst`` calls
written at once. Latency is from the moment the ``DialBegin`` bytes are written to the moment
the agent's client has the ``call.ringing`` frame (the same clock, ``time.perf_counter``).

Floor, same run, same load: ``bench.relay`` (read AMI from TCP, write a JSON frame to the
matching websocket; the same asyncio and websockets libraries, no logic).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from bench.agents import Agents
from bench.ami_load import AmiLoad, make_call
from bench.common import Measurement, free_port, summary_ms, wait_port
from bench.daemon import AMI_SECRET, AMI_USER, PBX, Daemon, agent_extension, contact_number

CONTACTS = 10_000


def _latencies(load: AmiLoad, seen: dict[str, float], ids: list[str]) -> tuple[list[float], int]:
    out = []
    missing = 0
    for linked in ids:
        at = seen.get(f"{PBX}/{linked}")
        if at is None:
            missing += 1
        else:
            out.append(at - load.written[linked])
    return out, missing


async def _drive(
    load: AmiLoad, agents: Agents, n_agents: int, rate: float, seconds: float, burst: int
) -> dict[str, Any]:
    def make(k: int) -> Any:
        return make_call(k, agent_extension(k % n_agents), contact_number(k % CONTACTS))

    # warm-up: a second of calls not counted
    warm = await load.paced(make, rate, 1.0, first=0)
    await agents.wait(lambda: len(agents.pops) >= warm, 30)
    first = warm
    sustained = await load.paced(make, rate, seconds, first=first)
    ids = [make(k).linkedid for k in range(first, first + sustained)]
    await agents.wait(lambda: len(agents.pops) >= warm + sustained, 60)
    await asyncio.sleep(4)  # let the sustained calls end before the burst
    b_first = first + sustained
    calls = [make(k) for k in range(b_first, b_first + burst)]
    load.write_calls(calls)
    b_ids = [c.linkedid for c in calls]
    await agents.wait(lambda: len(agents.pops) >= warm + sustained + burst, 120)
    s_lat, s_missing = _latencies(load, agents.pops, ids)
    b_lat, b_missing = _latencies(load, agents.pops, b_ids)
    c_lat, _ = _latencies(load, agents.cards, ids)
    return {
        "sustained": s_lat,
        "sustained_missing": s_missing,
        "burst": b_lat,
        "burst_missing": b_missing,
        "cards": c_lat,
    }


async def _connector(n_agents: int, rate: float, seconds: float, burst: int) -> dict[str, Any]:
    load = AmiLoad(AMI_USER, AMI_SECRET)
    ami_port = await load.start()
    daemon = Daemon("pop", agents=n_agents, contacts=CONTACTS, ami_port=ami_port)
    await asyncio.to_thread(daemon.configure)
    await asyncio.to_thread(daemon.start)
    agents = Agents()
    try:
        await load.wait_login()
        connect_s = await agents.connect([daemon.hub_url(i) for i in range(n_agents)])
        out = await _drive(load, agents, n_agents, rate, seconds, burst)
        out["connect_s"] = connect_s
        out["rss_mb"] = daemon.rss_mb()
        return out
    finally:
        await agents.close()
        await load.stop()
        await asyncio.to_thread(daemon.stop)


async def _floor(n_agents: int, rate: float, seconds: float, burst: int) -> dict[str, Any]:
    load = AmiLoad(AMI_USER, AMI_SECRET)
    ami_port = await load.start()
    ws_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.relay", str(ami_port), str(ws_port)])
    agents = Agents()
    try:
        await asyncio.to_thread(wait_port, ws_port, 30)
        await load.wait_login()
        await agents.connect(
            [f"ws://127.0.0.1:{ws_port}/?ext={agent_extension(i)}" for i in range(n_agents)],
            first_frame=False,
        )
        return await _drive(load, agents, n_agents, rate, seconds, burst)
    finally:
        await agents.close()
        await load.stop()
        proc.terminate()
        proc.wait(timeout=10)


def run(
    agents: int = 2_000, rate: float = 200, seconds: float = 20, burst: int = 1_000
) -> tuple[list[Measurement], dict[str, Any]]:
    """Measure the connector, then the floor, under the same load."""
    from bench.daemon import raise_nofile

    raise_nofile()
    t0 = time.perf_counter()
    ours = asyncio.run(_connector(agents, rate, seconds, burst))
    floor = asyncio.run(_floor(agents, rate, seconds, burst))
    s, fs = summary_ms(ours["sustained"]), summary_ms(floor["sustained"])
    b, fb = summary_ms(ours["burst"]), summary_ms(floor["burst"])
    c = summary_ms(ours["cards"])
    ok = s["p99"] <= 10 and s["p99"] <= 3 * fs["p99"]
    n = int(rate * seconds)
    out = [
        Measurement(
            "pop latency",
            f"p99, {rate:g} calls/s, {agents:,} agents",
            s["p99"],
            fs["p99"],
            "ms",
            "p99 <= 10 ms and <= 3x floor",
            ok,
            f"{n:,} calls; p50 {s['p50']:.2f} ms (floor {fs['p50']:.2f}); card in the pop or "
            f"after it: p99 {c['p99']:.2f} ms; lost: {ours['sustained_missing']} "
            f"(floor {floor['sustained_missing']}); {agents:,} agents connected in "
            f"{ours['connect_s']:.1f} s; daemon RSS {ours['rss_mb']:.0f} MB",
            samples=ours["sustained"],
        ),
        Measurement(
            "pop latency",
            f"burst of {burst:,} calls, p99",
            b["p99"],
            fb["p99"],
            "ms",
            "–",
            None,
            f"{burst:,} DialBegins in one write; p50 {b['p50']:.1f} ms (floor {fb['p50']:.1f}); "
            f"lost: {ours['burst_missing']} (floor {floor['burst_missing']})",
            samples=ours["burst"],
        ),
    ]
    extra = {
        "pop_sustained_ms": s,
        "pop_sustained_floor_ms": fs,
        "pop_burst_ms": b,
        "pop_burst_floor_ms": fb,
        "pop_card_ms": c,
        "pop_seconds": round(time.perf_counter() - t0, 1),
        "samples": {
            "pop": ours["sustained"],
            "pop_floor": floor["sustained"],
            "burst": ours["burst"],
            "burst_floor": floor["burst"],
        },
    }
    return out, extra
