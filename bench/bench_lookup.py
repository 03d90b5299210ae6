"""Caller lookup on 1,000,000 contacts with 2,000,000 numbers.

The database is built once (cached under bench/results/tmp/) through the real migrations, then
filled with plain INSERTs. Lookups mix formats (+7 916 ..., 8 (916) ..., 916..., 0049...), hits
and misses. Measured: ``crm_sync.lookup.lookup`` in-process (what the hub calls for each pop)
and ``GET /api/v1/lookup`` on a running ``connector run`` process over loopback. Floor: one
indexed ``SELECT`` through the standard ``sqlite3`` module on the same file.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import RESULTS, Measurement, free_port, summary_ms, wait_port

CONTACTS = 1_000_000
TMP = RESULTS / "tmp"


def _national(i: int) -> str:
    """The i-th synthetic Russian mobile number (national significant number, 10 digits)."""
    return f"9{(i * 7919 + 1_000_000) % 1_000_000_000:09d}"


def build_db(path: Path, contacts: int = CONTACTS) -> None:
    """Create and fill the benchmark database unless it already exists with the right size."""
    from crm_sync.db import migrate

    marker = path.with_suffix(".done")
    if path.exists() and marker.exists() and marker.read_text() == str(contacts):
        return
    for p in (path, marker, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    migrate(f"sqlite+aiosqlite:///{path}")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).isoformat(sep=" ")
    batch = 50_000
    t0 = time.perf_counter()
    for start in range(0, contacts, batch):
        rng = range(start, min(start + batch, contacts))
        db.executemany(
            "INSERT INTO contacts (id, name, emails, tags, notes, created_at, updated_at) "
            "VALUES (?, ?, '[]', '[]', '', ?, ?)",
            [(i + 1, f"Contact {i}", now, now) for i in rng],
        )
        rows = []
        for i in rng:
            for k in (0, 1):
                nat = _national(2 * i + k)
                rows.append((i + 1, f"+7{nat}", f"+7{nat}", nat, nat[::-1]))
        db.executemany(
            "INSERT INTO phones (contact_id, raw, e164, national, national_rev, label) "
            "VALUES (?, ?, ?, ?, ?, '')",
            rows,
        )
        db.commit()
        done = min(start + batch, contacts)
        sys.stderr.write(f"\r  building lookup database: {done:,}/{contacts:,} contacts")
    db.execute("ANALYZE")
    db.commit()
    db.close()
    sys.stderr.write(f" ({time.perf_counter() - t0:.0f} s)\n")
    marker.write_text(str(contacts))


def queries(n: int, contacts: int = CONTACTS, seed: int = 7) -> list[tuple[str, str | None]]:
    """(number as dialled, expected national or None for a miss) in mixed formats."""
    rnd = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    for q in range(n):
        kind = q % 6
        if kind == 5:
            out.append((f"+49 30 {rnd.randrange(10**7, 10**8)}", None))
            continue
        nat = _national(rnd.randrange(0, 2 * contacts))
        if kind == 4:  # a miss in the same format as hits
            nat = "8" + nat[1:]
            out.append((f"+7 {nat[:3]} {nat[3:6]}-{nat[6:8]}-{nat[8:]}", None))
            continue
        forms = [
            f"+7 {nat[:3]} {nat[3:6]}-{nat[6:8]}-{nat[8:]}",
            f"8 ({nat[:3]}) {nat[3:]}",
            f"8{nat}",
            nat,
        ]
        out.append((forms[kind], nat))
    return out


async def _library(path: Path, qs: list[tuple[str, str | None]]) -> tuple[list[float], int]:
    from crm_sync.db import open_engine
    from crm_sync.lookup import lookup

    engine = open_engine(f"sqlite+aiosqlite:///{path}")
    lat: list[float] = []
    wrong = 0
    try:
        async with engine.connect() as conn:
            for number, _ in qs[:200]:  # warm-up
                await lookup(conn, number, "RU")
            for number, expected in qs:
                t0 = time.perf_counter()
                res = await lookup(conn, number, "RU")
                lat.append(time.perf_counter() - t0)
                exact = [m for m in res.matches if m.match_type in ("e164", "national")]
                if (expected is None) != (not exact):
                    wrong += 1
    finally:
        await engine.dispose()
    return lat, wrong


def _warm(path: Path) -> None:
    """Read the database file once so it sits in the OS page cache."""
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def _floor(path: Path, qs: list[tuple[str, str | None]]) -> list[float]:
    db = sqlite3.connect(path)
    lat: list[float] = []
    sql = "SELECT contact_id FROM phones WHERE e164 = ?"
    for number, _ in qs[:200]:
        db.execute(sql, ("+7" + "".join(c for c in number if c.isdigit())[-10:],)).fetchall()
    for number, _ in qs:
        digits = "".join(c for c in number if c.isdigit())
        t0 = time.perf_counter()
        db.execute(sql, ("+7" + digits[-10:],)).fetchall()
        lat.append(time.perf_counter() - t0)
    db.close()
    return lat


def _http(path: Path, qs: list[tuple[str, str | None]]) -> list[float]:
    """Lookups over HTTP against a real ``connector run`` process on the same database."""
    import urllib.parse

    work = TMP / "lookup-daemon"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = work / "connector.toml"
    cfg.write_text(
        f'[server]\nport = {port}\n[storage]\ndata_dir = "{work}"\n'
        f'database_url = "sqlite+aiosqlite:///{path}"\n'
    )
    exe = Path(sys.executable).with_name("connector")
    env = {**os.environ, "CONNECTOR_LOGGING__LEVEL": "WARNING"}
    token = _bench_token(path)
    proc = subprocess.Popen(
        [str(exe), "--config", str(cfg), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lat: list[float] = []
    try:
        wait_port(port, 60)
        import urllib.request

        opener = urllib.request.build_opener()
        headers = {"Authorization": f"Bearer {token}"}
        for number, _ in qs[:2000]:
            url = f"http://127.0.0.1:{port}/api/v1/lookup?number={urllib.parse.quote(number)}"
            req = urllib.request.Request(url, headers=headers)
            t0 = time.perf_counter()
            with opener.open(req, timeout=10) as resp:
                json.loads(resp.read())
            lat.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return lat


def _bench_token(path: Path) -> str:
    """An admin token in the benchmark database (created once)."""
    from crm_sync.auth import hash_token

    token = "vc_benchmark_token_0000000000000000000000000000"
    db = sqlite3.connect(path)
    now = datetime.now(UTC).isoformat(sep=" ")
    if not db.execute("SELECT 1 FROM users WHERE login='bench'").fetchone():
        db.execute(
            "INSERT INTO users (login, name, role, team, active, created_at, updated_at) "
            "VALUES ('bench', 'Bench', 'admin', '', 1, ?, ?)",
            (now, now),
        )
        uid = db.execute("SELECT id FROM users WHERE login='bench'").fetchone()[0]
        db.execute(
            "INSERT INTO api_tokens (user_id, token_hash, prefix, name, scope, created_at) "
            "VALUES (?, ?, 'vc_bench', 'bench', 'user', ?)",
            (uid, hash_token(token), now),
        )
        db.commit()
    db.close()
    return token


def run(contacts: int = CONTACTS, n: int = 20_000) -> tuple[list[Measurement], dict[str, object]]:
    """Build (or reuse) the database and measure lookups."""
    path = TMP / f"lookup-{contacts}.db"
    build_db(path, contacts)
    qs = queries(n, contacts)
    _warm(path)  # the first reader must not pay for the disk alone: all start from the page cache
    lib, wrong = asyncio.run(_library(path, qs))
    floor = _floor(path, qs)
    http = _http(path, qs)
    s_lib, s_floor, s_http = summary_ms(lib), summary_ms(floor), summary_ms(http)
    ok = s_lib["p99"] <= 1.0 and s_lib["p99"] <= 3 * s_floor["p99"]
    out = [
        Measurement(
            "caller lookup",
            "p99, in-process lookup()",
            s_lib["p99"],
            s_floor["p99"],
            "ms",
            "p99 <= 1 ms and <= 3x floor",
            ok,
            f"{contacts:,} contacts, {2 * contacts:,} numbers, {len(qs):,} lookups "
            f"(1/3 misses, 6 formats; suffix-only matches count as misses); "
            f"p50 {s_lib['p50']:.3f} ms; wrong answers: {wrong}",
            samples=lib,
        ),
        Measurement(
            "caller lookup",
            "p99, GET /api/v1/lookup",
            s_http["p99"],
            s_floor["p99"],
            "ms",
            "–",
            None,
            f"{len(http):,} sequential HTTP requests to a connector process; "
            f"p50 {s_http['p50']:.3f} ms",
            samples=http,
        ),
    ]
    out[0].goal = 1.0
    return out, {
        "lookup_library_ms": s_lib,
        "lookup_floor_ms": s_floor,
        "lookup_http_ms": s_http,
        "samples": {"lookup": lib, "lookup_floor": floor},
    }
