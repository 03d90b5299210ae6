"""Backup and restore of the SQLite database with SQLite's online backup API.

:func:`backup` copies a consistent snapshot while the daemon keeps writing (WAL readers never
block writers); :func:`restore` checks the source with ``PRAGMA integrity_check`` first and
refuses to overwrite a database that looks in use unless forced. Both are synchronous (the CLI
calls them directly; the daemon would use ``asyncio.to_thread``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crm_sync.errors import CrmError

__all__ = ["BackupError", "BackupInfo", "backup", "database_path", "integrity_check", "restore"]


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
    raise NotImplementedError


def integrity_check(path: Path) -> str:
    """``PRAGMA integrity_check`` of the database at ``path``: ``"ok"`` or the problems found."""
    raise NotImplementedError


def backup(src_db_path: Path, dest_path: Path, *, overwrite: bool = False) -> BackupInfo:
    """Copy the live database at ``src_db_path`` to ``dest_path`` (a file, or a directory to put
    a time-stamped file in). Raises BackupError if the source is missing or the destination
    exists (unless ``overwrite``)."""
    raise NotImplementedError


def restore(src: Path, db_path: Path, *, force: bool = False) -> BackupInfo:
    """Replace the database at ``db_path`` with the backup ``src``.

    The source must pass ``integrity_check``. If the database looks in use (its ``-wal`` or
    ``-shm`` file exists, i.e. a connection is open), refuse unless ``force``. The old database
    is kept next to it as ``<name>.before-restore``.
    """
    raise NotImplementedError
