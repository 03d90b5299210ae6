"""Online backup while another task keeps writing, and restore, on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from crm_sync import contacts as crm
from crm_sync.backup import BackupError, backup, integrity_check, looks_in_use, restore
from crm_sync.db import open_engine
from crm_sync.lookup import lookup
from tests.integration.store_support import migrated_engine, sqlite_url


def _counts(path: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        c = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
        p = conn.execute("SELECT count(*) FROM phones").fetchone()[0]
        a = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'contact.create'"
        ).fetchone()[0]
        return int(c), int(p), int(a)
    finally:
        conn.close()


async def test_backup_while_writing_restores_a_consistent_prefix(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    async with migrated_engine(tmp_path) as engine:
        committed = 0
        enough = asyncio.Event()
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal committed
            while not stop.is_set() and committed < 20_000:
                # each transaction writes a contact, its phone and an audit entry together
                async with engine.begin() as conn:
                    await crm.create_contact(
                        conn, {"name": f"W {committed}", "phones": [f"+7 916 {committed:07d}"]}
                    )
                committed += 1
                if committed == 200:
                    enough.set()

        (tmp_path / "backups").mkdir()
        task = asyncio.create_task(writer())
        await asyncio.wait_for(enough.wait(), timeout=60)
        at_start = committed
        info = await asyncio.to_thread(backup, db, tmp_path / "backups")
        at_end = committed
        stop.set()
        await asyncio.wait_for(task, timeout=60)
        final = committed

    assert info.path.parent == tmp_path / "backups" and info.path.suffix == ".db"
    assert integrity_check(info.path) == "ok"
    contacts_n, phones_n, audit_n = _counts(info.path)
    # a committed prefix: every contact has its phone and audit entry, none half-written
    assert contacts_n == phones_n == audit_n
    assert at_start <= contacts_n <= at_end <= final
    assert info.tables["contacts"] == contacts_n

    restored = tmp_path / "restored" / "crm.db"
    rinfo = await asyncio.to_thread(restore, info.path, restored)
    assert integrity_check(restored) == "ok"
    assert _counts(restored) == (contacts_n, phones_n, audit_n)
    assert rinfo.tables["phones"] == phones_n
    engine2 = open_engine(sqlite_url(restored))
    try:
        async with engine2.connect() as conn:
            result = await lookup(conn, "8 916 000-00-05", "RU")
            assert [m.name for m in result.matches] == ["W 5"]
    finally:
        await engine2.dispose()


async def test_restore_refuses_a_database_in_use_unless_forced(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await crm.create_contact(conn, {"name": "Before backup"})
        snapshot = await asyncio.to_thread(backup, db, tmp_path / "snap.db")
        async with engine.begin() as conn:
            await crm.create_contact(conn, {"name": "After backup"})
        assert looks_in_use(db)
        with pytest.raises(BackupError, match="looks in use"):
            restore(snapshot.path, db)
        with pytest.raises(BackupError, match="already exists"):
            backup(db, snapshot.path)
    assert not looks_in_use(db)  # every connection closed
    info = restore(snapshot.path, db)
    assert info.tables["contacts"] == 1
    assert (tmp_path / "crm.db.before-restore").exists()
    assert _counts(tmp_path / "crm.db.before-restore")[0] == 2
    async with migrated_engine(tmp_path) as engine:  # migrations are a no-op on a restore
        async with engine.connect() as conn:
            names = [c.name for c in (await crm.list_contacts(conn)).items]
    assert names == ["Before backup"]


def test_restore_checks_the_source_first(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    sqlite3.connect(db).close()
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(BackupError, match="integrity check"):
        restore(bad, db)
    with pytest.raises(BackupError, match="no backup"):
        restore(tmp_path / "missing.db", db)
    with pytest.raises(BackupError, match="no database"):
        backup(tmp_path / "missing.db", tmp_path / "x.db")


def test_force_restore_over_leftover_wal_files(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    db = tmp_path / "crm.db"
    sqlite3.connect(db).close()
    Path(str(db) + "-shm").write_bytes(b"")  # what a crashed daemon leaves behind
    with pytest.raises(BackupError, match="--force"):
        restore(src, db)
    info = restore(src, db, force=True)
    assert info.tables == {"t": 1}
