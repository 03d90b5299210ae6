"""Call log writes: ``call.ended`` on the bus -> stored call activity (and missed-call task).

Measured: the real call-log writer of a runtime on a fresh SQLite file (WAL), fed a sustained
stream of ``call.ended`` events (a mix of answered and missed inbound calls from many numbers,
against a store of 10,000 contacts). Floor: a raw ``INSERT`` of the same rows through sqlite3.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from bench.common import RESULTS, Measurement
from connector.events.model import CallEnded, Direction, Outcome, Party

TMP = RESULTS / "tmp" / "calllog"


def _events(n: int) -> list[CallEnded]:
    t = datetime(2026, 11, 28, 9, tzinfo=UTC)
    out = []
    for i in range(n):
        answered = i % 4 != 0
        start = t + timedelta(seconds=i)
        out.append(
            CallEnded(
                key=f"bench:{i}:call.ended",
                pbx="bench",
                conversation_id=f"conv-{i}",
                occurred_at=start + timedelta(seconds=40),
                observed_at=start + timedelta(seconds=40),
                direction=Direction.INBOUND,
                outcome=Outcome.ANSWERED if answered else Outcome.NO_ANSWER,
                caller=Party(f"+7916{i % 20_000:07d}", f"Caller {i}"),
                callee=Party("74951234500", ""),
                did="74951234500",
                rang=("101",),
                answered_by="101" if answered else "",
                talked_last="101" if answered else "",
                started_at=start,
                answered_at=start + timedelta(seconds=5) if answered else None,
                ended_at=start + timedelta(seconds=40),
                ring_seconds=5.0,
                talk_seconds=35.0 if answered else 0.0,
            )
        )
    return out


async def _connector(events: list[CallEnded]) -> float:
    from connector.app import build_runtime
    from connector.config import settings_from_mapping
    from crm_sync.calllog import CallLogWriter

    shutil.rmtree(TMP, ignore_errors=True)
    settings = settings_from_mapping({"storage": {"data_dir": str(TMP)}}, environ={})
    runtime = await build_runtime(settings)
    try:
        _seed(TMP / "connector.db")
        writer = CallLogWriter(runtime)
        task = asyncio.create_task(writer.run())
        t0 = time.perf_counter()
        for e in events:
            runtime.bus.publish(e)
            if writer.subscription.queue.qsize() > 5000:
                await asyncio.sleep(0)
                while writer.subscription.queue.qsize() > 1000:
                    await writer.wait_handled(writer.handled + 1, 60)
        await writer.wait_handled(len(events), 600)
        elapsed = time.perf_counter() - t0
        task.cancel()
    finally:
        await runtime.engine.dispose()
    db = sqlite3.connect(TMP / "connector.db")
    stored = db.execute("SELECT count(*) FROM activities WHERE kind='call'").fetchone()[0]
    db.close()
    if stored != len(events):
        raise RuntimeError(f"stored {stored} activities for {len(events)} calls")
    return elapsed


def _seed(path: object) -> None:
    db = sqlite3.connect(str(path))
    now = datetime.now(UTC).isoformat(sep=" ")
    db.execute(
        "INSERT INTO users (id, login, name, role, team, active, created_at, updated_at) "
        "VALUES (1, 'a101', 'Agent 101', 'agent', 'sales', 1, ?, ?)",
        (now, now),
    )
    db.execute("INSERT INTO extensions (user_id, pbx, extension) VALUES (1, 'bench', '101')")
    db.executemany(
        "INSERT INTO contacts (id, name, responsible_user_id, emails, tags, notes, created_at,"
        " updated_at) VALUES (?, ?, 1, '[]', '[]', '', ?, ?)",
        [(i + 1, f"Contact {i}", now, now) for i in range(10_000)],
    )
    db.executemany(
        "INSERT INTO phones (contact_id, raw, e164, national, national_rev, label) "
        "VALUES (?, ?, ?, ?, ?, '')",
        [
            (i + 1, f"+7916{i:07d}", f"+7916{i:07d}", f"916{i:07d}", f"916{i:07d}"[::-1])
            for i in range(10_000)
        ],
    )
    db.commit()
    db.close()


def _floor(events: list[CallEnded]) -> float:
    path = TMP / "floor.db"
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE activities (id INTEGER PRIMARY KEY, kind TEXT, pbx TEXT, "
        "conversation_id TEXT, direction TEXT, outcome TEXT, caller_raw TEXT, started_at TEXT, "
        "ended_at TEXT, ring_seconds REAL, talk_seconds REAL, created_at TEXT, "
        "UNIQUE (pbx, conversation_id))"
    )
    t0 = time.perf_counter()
    for e in events:
        db.execute(
            "INSERT INTO activities (kind, pbx, conversation_id, direction, outcome, caller_raw,"
            " started_at, ended_at, ring_seconds, talk_seconds, created_at) VALUES "
            "('call', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.pbx,
                e.conversation_id,
                str(e.direction),
                str(e.outcome),
                e.caller.number,
                str(e.started_at),
                str(e.ended_at),
                e.ring_seconds,
                e.talk_seconds,
                str(e.observed_at),
            ),
        )
        db.commit()
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


def run(n: int = 5_000) -> tuple[list[Measurement], dict[str, object]]:
    """Write ``n`` calls through the connector and through the floor."""
    events = _events(n)
    ours = asyncio.run(_connector(events))
    floor = _floor(events)
    rate, floor_rate = n / ours, n / floor
    return [
        Measurement(
            "call log writes",
            "call.ended -> stored activity",
            rate,
            floor_rate,
            "calls/s",
            ">= 2,000 calls/s",
            rate >= 2000,
            f"{n:,} calls (1 in 4 missed -> callback task), lookup against 10,000 contacts; "
            "floor commits each INSERT like the connector commits each call",
            goal=2000,
            higher=True,
        )
    ], {"calllog_rate": rate, "calllog_floor_rate": floor_rate}
