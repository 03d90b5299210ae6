"""Soak: memory stays flat over a long run at moderate load.

A ``connector run`` process with ``agents`` agents connected gets ``rate`` calls per second
through the AMI path (every fourth call missed, so callback tasks are created too) for
``minutes`` minutes. Every ``every`` seconds the benchmark samples the daemon's RSS (psutil),
the call tracker's tables (``connector_tracker_entries`` on /metrics), the hub's calls in
memory (``GET /api/v1/hub``) and the pop latency of the calls of that interval. Growth is the
last fifth of the run against the first fifth after a warm-up of 10 % of the run.

``python -m bench soak --minutes 30`` runs it on its own and stores the result in
bench/results/soak.json, which later full runs include in the table.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.agents import Agents
from bench.ami_load import AmiLoad, make_call
from bench.common import Measurement, percentile
from bench.daemon import AMI_SECRET, AMI_USER, PBX, Daemon, agent_extension, contact_number

CONTACTS = 10_000


def soak_file(replay_buffer: int | None = None) -> Path:
    """Where the last soak is stored (one file per hub replay buffer size tried)."""
    if replay_buffer is None:
        return common.RESULTS / "soak.json"
    return common.RESULTS / f"soak-replay{replay_buffer}.json"


def _sample(daemon: Daemon) -> dict[str, float]:
    tracker = daemon.metric("connector_tracker_entries")
    hub = json.loads(daemon.get("/api/v1/hub"))
    return {
        "rss_mb": daemon.rss_mb(),
        "tracker_conversations": tracker.get('{table="conversations"}', -1),
        "tracker_legs": tracker.get('{table="legs"}', -1),
        "tracker_leg_index": tracker.get('{table="leg_index"}', -1),
        "tracker_tombstones": tracker.get('{table="tombstones"}', -1),
        "hub_calls": float(hub.get("active_calls", -1)),
        "hub_connections": float(hub.get("connections", -1)),
    }


async def _soak(
    agents_n: int, rate: float, minutes: float, every: float, replay_buffer: int | None
) -> dict[str, Any]:
    load = AmiLoad(AMI_USER, AMI_SECRET)
    ami_port = await load.start()
    hub = {} if replay_buffer is None else {"replay_buffer": replay_buffer}
    name = "soak" if replay_buffer is None else f"soak-replay{replay_buffer}"
    daemon = Daemon(name, agents=agents_n, contacts=CONTACTS, ami_port=ami_port, hub=hub)
    await asyncio.to_thread(daemon.configure)
    await asyncio.to_thread(daemon.start)
    agents = Agents()
    samples: list[dict[str, float]] = []
    try:
        await load.wait_login()
        await agents.connect([daemon.hub_url(i) for i in range(agents_n)])

        def make(k: int) -> Any:
            return make_call(
                k, agent_extension(k % agents_n), contact_number(k % CONTACTS), answered=k % 4 != 0
            )

        total = minutes * 60
        t0 = time.perf_counter()
        first = 0
        while time.perf_counter() - t0 < total:
            written = await load.paced(make, rate, every, first=first)
            ids = [make(k).linkedid for k in range(first, first + written)]
            first += written
            s = await asyncio.to_thread(_sample, daemon)
            lat = [
                agents.pops[f"{PBX}/{i}"] - load.written[i]
                for i in ids
                if f"{PBX}/{i}" in agents.pops
            ]
            s["t_s"] = round(time.perf_counter() - t0, 1)
            s["calls"] = float(first)
            s["pop_p99_ms"] = percentile(lat, 99) * 1000
            s["pops_missing"] = float(len(ids) - len(lat))
            samples.append(s)
            for i in ids:  # keep the generator's own memory flat too
                load.written.pop(i, None)
        await asyncio.sleep(5)
        samples.append(
            {
                **await asyncio.to_thread(_sample, daemon),
                "t_s": round(time.perf_counter() - t0, 1),
                "calls": float(first),
                "pop_p99_ms": 0.0,
                "pops_missing": 0.0,
            }
        )
    finally:
        await agents.close()
        await load.stop()
        await asyncio.to_thread(daemon.stop)
    return {
        "samples": samples,
        "agents": agents_n,
        "rate": rate,
        "minutes": minutes,
        "replay_buffer": replay_buffer,
    }


def summarise(data: dict[str, Any]) -> tuple[list[Measurement], dict[str, Any]]:
    """The soak's measurements from its samples."""
    samples = data["samples"][:-1] or data["samples"]
    n = len(samples)
    warm = max(1, n // 10)
    fifth = max(1, (n - warm) // 5)
    head, tail = samples[warm : warm + fifth], samples[-fifth:]
    rss0 = statistics.fmean(s["rss_mb"] for s in head)
    rss1 = statistics.fmean(s["rss_mb"] for s in tail)
    growth = rss1 - rss0
    conv0 = statistics.fmean(s["tracker_conversations"] for s in head)
    conv1 = statistics.fmean(s["tracker_conversations"] for s in tail)
    after = data["samples"][-1]
    calls = int(samples[-1]["calls"])
    flat = growth <= max(10.0, 0.05 * rss0) and conv1 <= conv0 * 1.5 + 10
    half = samples[len(samples) // 2 :]
    second_half = f"{half[0]['rss_mb']:.0f} -> {half[-1]['rss_mb']:.0f} MB"
    worst = max(s["pop_p99_ms"] for s in samples)
    missing = sum(s["pops_missing"] for s in samples)
    out = [
        Measurement(
            "soak",
            f"RSS growth over {data['minutes']:g} min"
            + (
                f", [hub] replay_buffer = {data['replay_buffer']}"
                if data.get("replay_buffer")
                else ""
            ),
            growth,
            None,
            "MB",
            "flat (<= max(10 MB, 5 %))",
            flat,
            f"{calls:,} calls at {data['rate']:g}/s, {data['agents']} agents; RSS "
            f"{rss0:.0f} -> {rss1:.0f} MB (first vs last fifth after warm-up), second half "
            f"of the run {second_half}; tracker "
            f"conversations {conv0:.0f} -> {conv1:.0f}, after the last call ended: "
            f"{after['tracker_conversations']:.0f} conversations, "
            f"{after['tracker_leg_index']:.0f} leg index entries, hub calls "
            f"{after['hub_calls']:.0f}; worst per-interval pop p99 {worst:.1f} ms (other "
            f"benchmarks ran on the machine meanwhile); pops not yet received when sampled "
            f"{missing:.0f}",
        )
    ]
    return out, {"soak": data}


def run(
    minutes: float = 30,
    agents: int = 200,
    rate: float = 20,
    every: float = 10,
    replay_buffer: int | None = None,
) -> tuple[list[Measurement], dict[str, Any]]:
    """Run the soak and store it in bench/results/soak.json (soak-replayN.json when the hub's
    replay buffer is set to N instead of the configured default)."""
    from bench.daemon import raise_nofile

    raise_nofile()
    data = asyncio.run(_soak(agents, rate, minutes, every, replay_buffer))
    data["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    path = soak_file(replay_buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return summarise(data)


def stored() -> tuple[list[Measurement], dict[str, Any]] | None:
    """The stored soaks, if any (a full run does not repeat a 30-minute soak)."""
    files = sorted(common.RESULTS.glob("soak*.json"), key=lambda p: (p.name != "soak.json", p.name))
    if not files:
        return None
    out: list[Measurement] = []
    extra: dict[str, Any] = {}
    for path in files:
        data = json.loads(path.read_text())
        got, info = summarise(data)
        for m in got:
            m.note += f" (soak run of {data.get('date', '?')})"
        out += got
        if path.name == "soak.json":
            extra.update(info)
        else:
            extra[path.stem.replace("-", "_")] = info["soak"]
    return out, extra
