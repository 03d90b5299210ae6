"""Webhooks: signed Zadarma events accepted durably per second, and their latency.

A ``connector run`` process with one ``[[webhook]]`` Zadarma account gets ``requests`` signed
``NOTIFY_*`` posts (calls of three events each: START, INTERNAL to a known agent, END; the
calls run concurrently, each call's events in order) from a client in another process
(``multiprocessing``; an aiohttp ``ClientSession`` with ``concurrency`` requests in flight).
A ``200`` means the event is in the inbox (committed). Latency is per request, as the client
sees it. Floor, same run, same client: the same aiohttp app answering ``200`` without work
(``bench.webhook_floor``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import multiprocessing
import sqlite3
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

from bench.common import Measurement, free_port, summary_ms, wait_port
from bench.daemon import Daemon, agent_extension, contact_number

SECRET = "bench-zadarma-secret"
ACCOUNT = {
    "provider": "zadarma",
    "account": "zd1",
    "pbx": "bench",
    "key": "bench-key",
    "secret": SECRET,
    "timezone": "Europe/Moscow",
}
SIGNED = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
}


def _signed(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    data = "".join(fields[n] for n in SIGNED[fields["event"]])
    digest = hmac.new(SECRET.encode(), data.encode(), hashlib.sha1).hexdigest()
    return urlencode(fields).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Signature": base64.b64encode(digest.encode()).decode(),
    }


def _call(i: int, agents: int) -> list[tuple[bytes, dict[str, str]]]:
    cid = f"in_bench{i:012d}"
    base = {
        "pbx_call_id": cid,
        "caller_id": contact_number(i % 1_000).lstrip("+"),
        "called_did": "74951234500",
        "call_start": "2026-11-28 15:00:00",
    }
    ext = agent_extension(i % agents)[-3:]  # Zadarma extensions are 2-5 digits
    return [
        _signed({"event": "NOTIFY_START", **base}),
        _signed({"event": "NOTIFY_INTERNAL", "internal": ext, **base}),
        _signed(
            {
                "event": "NOTIFY_END",
                "internal": ext,
                "duration": "30",
                "disposition": "answered",
                "status_code": "16",
                "is_recorded": "0",
                **base,
            }
        ),
    ]


async def _client(url: str, calls: int, agents: int, concurrency: int) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    statuses: dict[int, int] = {}
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_call(i: int) -> None:
            for body, headers in _call(i, agents):
                async with sem:
                    t0 = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                    lat.append(time.perf_counter() - t0)
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

        await asyncio.gather(*(one_call(i) for i in range(min(calls, 50))))  # warm-up
        lat.clear()
        statuses.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one_call(i) for i in range(50, 50 + calls)))
        elapsed = time.perf_counter() - t0
    return {"lat": lat, "elapsed": elapsed, "statuses": statuses}


def _client_process(url: str, calls: int, agents: int, concurrency: int, out: Any) -> None:
    out.put(asyncio.run(_client(url, calls, agents, concurrency)))


def _drive(url: str, calls: int, agents: int, concurrency: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_client_process, args=(url, calls, agents, concurrency, queue))
    proc.start()
    result: dict[str, Any] = queue.get(timeout=900)
    proc.join(timeout=30)
    return result


def run(
    requests: int = 15_000, concurrency: int = 32, agents: int = 200
) -> tuple[list[Measurement], dict[str, Any]]:
    """Post ``requests`` signed events to the connector, then to the floor."""
    calls = max(1, requests // 3)
    daemon = Daemon("webhooks", agents=agents, contacts=1_000, webhook=ACCOUNT)
    daemon.configure()
    _zadarma_extensions(daemon, agents)
    daemon.start()
    try:
        ours = _drive(
            f"http://127.0.0.1:{daemon.port}/webhooks/zadarma/zd1", calls, agents, concurrency
        )
        db = sqlite3.connect(daemon.work / "connector.db")
        stored = db.execute("SELECT count(*) FROM webhook_inbox").fetchone()[0]
        db.close()
    finally:
        daemon.stop()
    port = free_port()
    floor_proc = subprocess.Popen([sys.executable, "-m", "bench.webhook_floor", str(port)])
    try:
        wait_port(port, 30)
        floor = _drive(f"http://127.0.0.1:{port}/webhooks/zadarma/zd1", calls, agents, concurrency)
    finally:
        floor_proc.terminate()
        floor_proc.wait(timeout=10)
    n = len(ours["lat"])
    rate, floor_rate = n / ours["elapsed"], len(floor["lat"]) / floor["elapsed"]
    s, fs = summary_ms(ours["lat"]), summary_ms(floor["lat"])
    ok_status = ours["statuses"].get(200, 0)
    return [
        Measurement(
            "webhooks",
            "signed Zadarma events accepted",
            rate,
            floor_rate,
            "req/s",
            ">= 1,000 req/s",
            rate >= 1000,
            f"{n:,} requests, {concurrency} in flight, {ok_status:,} answered 200 "
            f"(statuses {ours['statuses']}); {stored:,} rows in the inbox",
            goal=1000,
            higher=True,
        ),
        Measurement(
            "webhooks",
            "p99 latency",
            s["p99"],
            fs["p99"],
            "ms",
            "p99 <= 20 ms",
            s["p99"] <= 20,
            f"p50 {s['p50']:.1f} ms (floor {fs['p50']:.1f} ms); client in another process",
            samples=ours["lat"],
            goal=20,
        ),
    ], {
        "webhooks_ms": s,
        "webhooks_floor_ms": fs,
        "samples": {"webhooks": ours["lat"], "webhooks_floor": floor["lat"]},
    }


def _zadarma_extensions(daemon: Daemon, agents: int) -> None:
    """Zadarma extensions are 2-5 digits: give each agent its last three digits on this PBX."""
    db = sqlite3.connect(daemon.work / "connector.db")
    db.execute("DELETE FROM extensions")
    db.executemany(
        "INSERT OR IGNORE INTO extensions (user_id, pbx, extension) VALUES (?, 'bench', ?)",
        [(i + 2, agent_extension(i)[-3:]) for i in range(agents)],
    )
    db.commit()
    db.close()
