"""Shared set-up for the CRM store tests: a migrated SQLite file in the test's tmp_path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_sync.db import migrate, open_engine
from crm_sync.errors import ValidationError


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


@asynccontextmanager
async def migrated_engine(tmp_path: Path, name: str = "crm.db") -> AsyncIterator[AsyncEngine]:
    """An engine on a freshly migrated SQLite file, disposed at the end."""
    url = sqlite_url(tmp_path / name)
    await asyncio.to_thread(migrate, url)
    engine = open_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def rejected_field(
    tmp_path: Path,
    create: Callable[[AsyncConnection, Mapping[str, Any]], Awaitable[object]],
    data: Mapping[str, Any],
) -> str:
    """The field the ValidationError names when ``create`` is given ``data`` on a fresh store
    (fails the test if ``create`` accepts it)."""
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            with pytest.raises(ValidationError) as info:
                await create(conn, data)
    return info.value.field


POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def postgres_database(prefix: str = "crm") -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards; yields its URL.

    PostgreSQL at 127.0.0.1:5432 is part of the test environment (``.ci/run`` starts it): when
    it is not there the test fails, it is never skipped.
    """
    import uuid

    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
