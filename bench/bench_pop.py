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
from collections.abc import Awaitable, Callable
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


Settle = Callable[[int], Awaitable[float]]


async def _phase(
    load: AmiLoad,
    agents: Agents,
    make: Callable[[int], Any],
    rate: float,
    seconds: float,
    first: int,
) -> tuple[list[str], int]:
    n = await load.paced(make, rate, seconds, first=first)
    ids = [make(k).linkedid for k in range(first, first + n)]
    await agents.wait(lambda: all(f"{PBX}/{i}" in agents.pops for i in ids[-50:]), 120)
    return ids, first + n


async def _drive(
    load: AmiLoad,
    agents: Agents,
    n_agents: int,
    rate: float,
    seconds: float,
    burst: int,
    low_rate: float,
    settle: Settle,
) -> dict[str, Any]:
    def make(k: int) -> Any:
        return make_call(k, agent_extension(k % n_agents), contact_number(k % CONTACTS))

    _, k = await _phase(load, agents, make, low_rate, 1.0, 0)  # warm-up, not counted
    await asyncio.sleep(load.hangup_after + 1)
    settled = [await settle(k)]
    low_ids, k = await _phase(load, agents, make, low_rate, seconds / 2, k)
    await asyncio.sleep(load.hangup_after + 1)
    settled.append(await settle(k))
    ids, k = await _phase(load, agents, make, rate, seconds, k)
    await asyncio.sleep(load.hangup_after + 1)
    settled.append(await settle(k))  # the work the sustained calls left behind is done
    calls = [make(j) for j in range(k, k + burst)]
    load.write_calls(calls)
    b_ids = [c.linkedid for c in calls]
    await agents.wait(lambda: all(f"{PBX}/{i}" in agents.pops for i in b_ids), 120)
    s_lat, s_missing = _latencies(load, agents.pops, ids)
    l_lat, _ = _latencies(load, agents.pops, low_ids)
    b_lat, b_missing = _latencies(load, agents.pops, b_ids)
    c_lat, _ = _latencies(load, agents.cards, ids)
    cl_lat, _ = _latencies(load, agents.cards, low_ids)
    return {
        "sustained": s_lat,
        "sustained_missing": s_missing,
        "low": l_lat,
        "burst": b_lat,
        "burst_missing": b_missing,
        "cards": c_lat,
        "cards_low": cl_lat,
        "settle_s": settled,
    }


async def _connector(
    n_agents: int, rate: float, seconds: float, burst: int, low_rate: float
) -> dict[str, Any]:
    load = AmiLoad(AMI_USER, AMI_SECRET)
    ami_port = await load.start()
    daemon = Daemon("pop", agents=n_agents, contacts=CONTACTS, ami_port=ami_port)
    await asyncio.to_thread(daemon.configure)
    await asyncio.to_thread(daemon.start)
    agents = Agents()
    try:
        await load.wait_login()
        connect_s = await agents.connect([daemon.hub_url(i) for i in range(n_agents)])

        async def settle(ended: int) -> float:
            """Wait (bounded) until every call ended so far is in the call log."""
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 300:
                written = await asyncio.to_thread(daemon.metric, "connector_calllog_written_total")
                if sum(written.values()) >= ended:
                    break
                await asyncio.sleep(0.5)
            return time.perf_counter() - t0

        out = await _drive(load, agents, n_agents, rate, seconds, burst, low_rate, settle)
        out["connect_s"] = connect_s
        out["rss_mb"] = daemon.rss_mb()
        return out
    finally:
        await agents.close()
        await load.stop()
        await asyncio.to_thread(daemon.stop)


async def _floor(
    n_agents: int, rate: float, seconds: float, burst: int, low_rate: float
) -> dict[str, Any]:
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

        async def settle(ended: int) -> float:
            return 0.0

        return await _drive(load, agents, n_agents, rate, seconds, burst, low_rate, settle)
    finally:
        await agents.close()
        await load.stop()
        proc.terminate()
        proc.wait(timeout=10)


def run(
    agents: int = 2_000,
    rate: float = 200,
    seconds: float = 20,
    burst: int = 1_000,
    low_rate: float = 50,
) -> tuple[list[Measurement], dict[str, Any]]:
    """Measure the connector, then the floor, under the same load: ``low_rate`` calls/s for
    ``seconds / 2``, then ``rate`` calls/s for ``seconds``, then a burst of ``burst`` calls
    (after each phase the benchmark waits until the connector's call log has caught up)."""
    from bench.daemon import raise_nofile

    raise_nofile()
    t0 = time.perf_counter()
    ours = asyncio.run(_connector(agents, rate, seconds, burst, low_rate))
    floor = asyncio.run(_floor(agents, rate, seconds, burst, low_rate))
    s, fs = summary_ms(ours["sustained"]), summary_ms(floor["sustained"])
    lo, flo = summary_ms(ours["low"]), summary_ms(floor["low"])
    b, fb = summary_ms(ours["burst"]), summary_ms(floor["burst"])
    c, cl = summary_ms(ours["cards"]), summary_ms(ours["cards_low"])
    settle = ours["settle_s"]

    def met(ours_p99: float, floor_p99: float) -> bool:
        return ours_p99 <= 10 and ours_p99 <= 3 * floor_p99

    common = f"{agents:,} agents connected in {ours['connect_s']:.1f} s"
    out = [
        Measurement(
            "pop latency",
            f"p99, {rate:g} calls/s, {agents:,} agents",
            s["p99"],
            fs["p99"],
            "ms",
            "p99 <= 10 ms and <= 3x floor",
            met(s["p99"], fs["p99"]),
            f"{len(ours['sustained']):,} calls over {seconds:g} s; p50 {s['p50']:.1f} ms (floor "
            f"{fs['p50']:.2f}); the card (in the pop or after it) p99 {c['p99']:.0f} ms; lost "
            f"{ours['sustained_missing']} (floor {floor['sustained_missing']}); the call log "
            f"needed {settle[2]:.0f} s more to catch up after the phase; {common}; daemon RSS "
            f"{ours['rss_mb']:.0f} MB",
            samples=ours["sustained"],
        ),
        Measurement(
            "pop latency",
            f"p99, {low_rate:g} calls/s, {agents:,} agents",
            lo["p99"],
            flo["p99"],
            "ms",
            "p99 <= 10 ms and <= 3x floor",
            met(lo["p99"], flo["p99"]),
            f"{len(ours['low']):,} calls over {seconds / 2:g} s; p50 {lo['p50']:.1f} ms (floor "
            f"{flo['p50']:.2f}); card p99 {cl['p99']:.0f} ms; call log caught up "
            f"{settle[1]:.0f} s after the phase",
            samples=ours["low"],
        ),
        Measurement(
            "pop latency",
            f"burst of {burst:,} calls, p99",
            b["p99"],
            fb["p99"],
            "ms",
            "–",
            None,
            f"{burst:,} DialBegins in one write; p50 {b['p50']:.0f} ms (floor {fb['p50']:.0f}); "
            f"lost {ours['burst_missing']} (floor {floor['burst_missing']})",
            samples=ours["burst"],
        ),
    ]
    out[0].goal = out[1].goal = 10.0
    extra = {
        "pop_sustained_ms": s,
        "pop_sustained_floor_ms": fs,
        "pop_low_ms": lo,
        "pop_low_floor_ms": flo,
        "pop_burst_ms": b,
        "pop_burst_floor_ms": fb,
        "pop_card_ms": c,
        "pop_card_low_ms": cl,
        "pop_calllog_settle_s": settle,
        "pop_seconds": round(time.perf_counter() - t0, 1),
        "samples": {
            "pop": ours["sustained"],
            "pop_floor": floor["sustained"],
            "pop_low": ours["low"],
            "pop_low_floor": floor["low"],
            "burst": ours["burst"],
            "burst_floor": floor["burst"],
        },
    }
    return out, extra
