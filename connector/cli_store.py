"""What the store-related commands share: opening the migrated database and reporting errors.

Commands run one coroutine against the database of the configured connector (migrations run
first, as at start-up) and turn CRM errors into a message on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.config import Settings
from crm_sync.errors import CrmError, ValidationError

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "fail", "run_with_engine", "settings_of", "stdout"]

T = TypeVar("T")

#: A request that could not be done (not found, conflict, refused restore).
EXIT_ERROR = 1
#: Bad input on the command line or in a file.
EXIT_USAGE = 2


def settings_of(args: argparse.Namespace) -> Settings:
    """The connector's settings as ``connector --config`` (or ./connector.toml) gives them."""
    from connector.cli import load_cli_settings

    return load_cli_settings(args)


async def _run(url: str, fn: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from crm_sync.db import migrate, open_engine

    await asyncio.to_thread(migrate, url)
    engine = open_engine(url)
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


def run_with_engine(settings: Settings, fn: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``fn(engine)`` on the configured (and migrated) database, then close it."""
    return asyncio.run(_run(settings.storage.effective_database_url, fn))


def fail(exc: CrmError) -> int:
    """Print a CRM error for people and return the exit code it deserves."""
    Console(stderr=True, highlight=False).print(f"[red]connector:[/red] {exc.message}")
    return EXIT_USAGE if isinstance(exc, ValidationError) else EXIT_ERROR


def stdout() -> Console:
    """A console on stdout (made per call, so redirections and test capture see it)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)
