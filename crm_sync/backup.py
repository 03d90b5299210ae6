"""Backup and restore of the SQLite database with SQLite's online backup API.

:func:`backup` copies a consistent snapshot while the daemon keeps writing (WAL readers never
block writers); :func:`restore` checks the source with ``PRAGMA integrity_check`` first and
refuses to overwrite a database that looks in use unless forced. Both are synchronous (the CLI
calls them directly; the daemon would use ``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crm_sync.errors import CrmError

logger = logging.getLogger(__name__)

__all__ = [
    "BackupError",
    "BackupInfo",
    "backup",
    "database_path",
    "integrity_check",
    "looks_in_use",
    "restore",
]


class BackupError(CrmError):
    """A backup or restore could not be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """Where a copy went and what it holds."""

    path: Path
    size_bytes: int
    tables: dict[str, int]  # row count per table


def database_path(url: str) -> Path:
    """The file behind a ``sqlite+aiosqlite:///...`` URL; raises BackupError for other databases."""
    if not url.startswith("sqlite"):
        raise BackupError(
            "backup and restore work on the embedded SQLite database only; "
            "for PostgreSQL use pg_dump and pg_restore"
        )
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        raise BackupError(f"{url} is not a database file")
    return Path(path)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    else:
        conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def integrity_check(path: Path) -> str:
    """``PRAGMA integrity_check`` of the database at ``path``: ``"ok"`` or the problems found."""
    try:
        conn = _connect(path, readonly=True)
    except sqlite3.Error as exc:
        return f"cannot open: {exc}"
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows) or "no answer"
    except sqlite3.Error as exc:
        return f"not a usable SQLite database: {exc}"
    finally:
        conn.close()


def _tables(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    # names come from sqlite_master itself, quoted as identifiers
    return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}


def _info(path: Path) -> BackupInfo:
    conn = _connect(path, readonly=True)
    try:
        tables = _tables(conn)
    finally:
        conn.close()
    return BackupInfo(path=path, size_bytes=path.stat().st_size, tables=tables)


def backup(src_db_path: Path, dest_path: Path, *, overwrite: bool = False) -> BackupInfo:
    """Copy the live database at ``src_db_path`` to ``dest_path`` (a file, or a directory to put
    a time-stamped file in). Raises BackupError if the source is missing or the destination
    exists (unless ``overwrite``)."""
    src_db_path = Path(src_db_path)
    dest_path = Path(dest_path)
    if not src_db_path.is_file():
        raise BackupError(f"there is no database at {src_db_path}")
    if dest_path.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        dest_path = dest_path / f"{src_db_path.stem}-{stamp}.db"
    if dest_path.exists() and not overwrite:
        raise BackupError(f"{dest_path} already exists (choose another name or overwrite it)")
    if dest_path.resolve() == src_db_path.resolve():
        raise BackupError("the backup cannot overwrite the database itself")
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest_path.with_name(dest_path.name + ".partial")
    tmp.unlink(missing_ok=True)
    src = _connect(src_db_path)
    try:
        dst = sqlite3.connect(tmp)
        try:
            # One step (pages=-1) copies a single read snapshot: WAL lets the daemon keep
            # writing meanwhile, and the copy is exactly some committed state.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
        finally:
            dst.close()
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"backup of {src_db_path} failed: {exc}") from exc
    finally:
        src.close()
    verdict = integrity_check(tmp)
    if verdict != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {verdict}")
    os.replace(tmp, dest_path)
    info = _info(dest_path)
    logger.info("backed up %s to %s (%d bytes)", src_db_path, dest_path, info.size_bytes)
    return info


def looks_in_use(db_path: Path) -> bool:
    """True while some connection has the database open (SQLite keeps ``-shm``/``-wal`` files
    beside a WAL database until the last connection closes)."""
    for suffix in ("-wal", "-shm"):
        if Path(str(db_path) + suffix).exists():
            return True
    return False


def restore(src: Path, db_path: Path, *, force: bool = False) -> BackupInfo:
    """Replace the database at ``db_path`` with the backup ``src``.

    The source must pass ``integrity_check``. If the database looks in use (its ``-wal`` or
    ``-shm`` file exists, i.e. a connection is open), refuse unless ``force``. The old database
    is kept next to it as ``<name>.before-restore``.
    """
    src = Path(src)
    db_path = Path(db_path)
    if not src.is_file():
        raise BackupError(f"there is no backup at {src}")
    verdict = integrity_check(src)
    if verdict != "ok":
        raise BackupError(f"{src} failed its integrity check, nothing was changed: {verdict}")
    if db_path.exists() and looks_in_use(db_path) and not force:
        raise BackupError(
            f"{db_path} looks in use (stop the connector first, or pass --force if it is not "
            "running and a crash left its -wal/-shm files behind)"
        )
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if db_path.exists():
        keep = db_path.with_name(db_path.name + ".before-restore")
        try:
            backup(db_path, keep, overwrite=True)
        except BackupError:
            # an unreadable current database is still kept byte for byte
            shutil.copyfile(db_path, keep)
        logger.info("kept the previous database as %s", keep)
    source = _connect(src, readonly=True)
    try:
        target = _connect(db_path)
        try:
            # The backup API writes through SQLite's own locking and journal, so the target's
            # WAL and shared memory stay consistent even if a reader has it open.
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"restore into {db_path} failed: {exc}") from exc
    finally:
        source.close()
    verdict = integrity_check(db_path)
    if verdict != "ok":
        raise BackupError(f"the restored database failed its integrity check: {verdict}")
    info = _info(db_path)
    logger.info("restored %s from %s", db_path, src)
    return info
