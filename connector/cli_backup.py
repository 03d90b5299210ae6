"""``connector backup DEST`` and ``connector restore SRC``: the embedded SQLite database."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from connector.cli_store import fail, settings_of, stdout
from crm_sync.errors import CrmError

__all__ = ["add_parser"]


def _cmd_backup(args: argparse.Namespace) -> int:
    from crm_sync.backup import backup, database_path

    settings = settings_of(args)
    dest = Path(args.dest_text)
    if args.dest_text.endswith(("/", os.sep)):
        dest.mkdir(parents=True, exist_ok=True)
    try:
        src = database_path(settings.storage.effective_database_url)
        info = backup(src, dest, overwrite=args.overwrite)
    except CrmError as exc:
        return fail(exc)
    rows = sum(info.tables.values())
    stdout().print(
        f"Backed up [bold]{src}[/bold] to [bold]{info.path}[/bold] "
        f"({info.size_bytes} bytes, {rows} rows in {len(info.tables)} tables; integrity ok)."
    )
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from crm_sync.backup import database_path, restore

    settings = settings_of(args)
    try:
        db = database_path(settings.storage.effective_database_url)
        info = restore(args.src, db, force=args.force)
    except CrmError as exc:
        return fail(exc)
    out = stdout()
    out.print(
        f"Restored [bold]{db}[/bold] from [bold]{args.src}[/bold] "
        f"({info.tables.get('contacts', 0)} contacts, {info.tables.get('users', 0)} users)."
    )
    if Path(str(db) + ".before-restore").exists():
        out.print(f"The previous database is kept as {db}.before-restore.")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``connector backup`` and ``connector restore``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "backup",
        help="copy the database while the connector runs",
        description=(
            "Copy the SQLite database with SQLite's online backup: safe while the connector "
            "is running, the copy is a consistent snapshot and is integrity-checked. DEST is "
            "a file, or a directory (existing, or written with a trailing /) to put a "
            "time-stamped copy in. For PostgreSQL use pg_dump."
        ),
    )
    p.add_argument(
        "dest_text", metavar="DEST", help="backup file, or directory for a time-stamped one"
    )
    p.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    p.set_defaults(func=_cmd_backup)

    r: argparse.ArgumentParser = subparsers.add_parser(
        "restore",
        help="replace the database with a backup",
        description=(
            "Replace the SQLite database with the backup SRC, after checking SRC's integrity. "
            "Stop the connector first: a database that looks in use is not replaced unless "
            "--force is given. The previous database is kept as <name>.before-restore."
        ),
    )
    r.add_argument("src", type=Path, metavar="SRC", help="the backup file to restore")
    r.add_argument(
        "--force",
        action="store_true",
        help="restore even if the database looks in use (only when you know the connector "
        "is stopped and a crash left its -wal/-shm files behind)",
    )
    r.set_defaults(func=_cmd_restore)
