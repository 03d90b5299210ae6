"""``connector pbx-token PBX``: issue a token a PBX uses to ask ``/api/v1/route``.

The token is printed once (only its hash is stored); revoke it like any other token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

__all__ = ["add_parser", "issue"]


async def issue(database_url: str, pbx: str, name: str = "") -> str:
    """Create a PBX-scoped token for ``pbx`` in the database at ``database_url``."""
    from crm_sync.auth import issue_token
    from crm_sync.db import migrate, open_engine

    await asyncio.to_thread(migrate, database_url)
    engine = open_engine(database_url)
    try:
        async with engine.begin() as conn:
            _id, token = await issue_token(
                conn, None, name or f"pbx {pbx} routing", scope="pbx", pbx=pbx
            )
    finally:
        await engine.dispose()
    return token


def _run(args: argparse.Namespace) -> int:
    from connector.cli import load_cli_settings

    settings = load_cli_settings(args)
    known = {p.name for p in settings.pbx} | {w.pbx_name for w in settings.webhook}
    if known and args.pbx not in known and not args.force:
        sys.stderr.write(
            f"connector: no PBX named {args.pbx!r} is configured (known: "
            f"{', '.join(sorted(known))}); use --force to issue it anyway\n"
        )
        return 2
    token = asyncio.run(issue(settings.storage.effective_database_url, args.pbx, args.name))
    sys.stdout.write(token + "\n")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``connector pbx-token``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pbx-token",
        help="issue a token for a PBX to ask /api/v1/route",
        description="Print a new PBX-scoped API token (shown once) for the routing endpoint, "
        "e.g. for the Asterisk dialplan's CURL().",
    )
    p.add_argument("pbx", help="the PBX name ([[pbx]] name or webhook provider:account)")
    p.add_argument("--name", default="", help="a label to tell tokens apart")
    p.add_argument("--force", action="store_true", help="issue even if no such PBX is configured")
    p.set_defaults(func=_run)
