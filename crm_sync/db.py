"""Database engine and migrations: SQLite in WAL mode by default, PostgreSQL when configured.

``open_engine(url)`` gives an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` with SQLite tuned for a
daemon (WAL, foreign keys, a busy timeout); ``migrate(url)`` brings the schema to the newest
Alembic revision and runs at every start-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

logger = logging.getLogger(__name__)

__all__ = ["alembic_config", "migrate", "migrate_async", "open_engine", "sync_url"]

MIGRATIONS = Path(__file__).with_name("migrations")


def sync_url(url: str) -> str:
    """The synchronous driver URL for the same database (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://").replace(
        "postgresql+asyncpg://", "postgresql+psycopg2://"
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    # SQLite's own lower() folds ASCII only; case-insensitive search (ILIKE renders as
    # lower(x) LIKE lower(y)) must work for Cyrillic names too, as it does on PostgreSQL.
    dbapi_conn.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def open_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine; for SQLite the parent directory is created and WAL switched on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at our migrations and at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def _upgrade(sync_conn: Any, url: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def migrate_async(url: str) -> None:
    """Upgrade the database at ``url`` through its async driver (Alembic runs in ``run_sync``).

    This is how PostgreSQL is migrated: asyncpg is all it needs, no synchronous driver.
    """
    engine = open_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, url)
    finally:
        await engine.dispose()
    logger.debug("database schema is at the newest revision")


def _run_in_own_loop(url: str) -> None:
    """Run :func:`migrate_async` on a fresh event loop in a thread of its own, so that
    :func:`migrate` works both from plain code and from a thread whose loop is running."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(migrate_async(url))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=target, name="migrate", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema (synchronous; call at start-up)."""
    from sqlalchemy import create_engine

    if not url.startswith("sqlite"):
        _run_in_own_loop(url)
        return
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    sync_engine: Engine = create_engine(sync_url(url))
    if url.startswith("sqlite"):
        event.listen(sync_engine, "connect", _sqlite_pragmas)
    try:
        with sync_engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        sync_engine.dispose()
    logger.debug("database schema is at the newest revision")
