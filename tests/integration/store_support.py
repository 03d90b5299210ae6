"""Shared set-up for the CRM store tests: a migrated SQLite file in the test's tmp_path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.db import migrate, open_engine


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
