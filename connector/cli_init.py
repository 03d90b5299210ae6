"""``connector init``: a configuration file, the data directory, the database and a first admin.

The admin's password and API token are printed once; only their hashes are stored.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from connector.cli_store import EXIT_ERROR, fail, run_with_engine, stdout
from crm_sync.errors import CrmError

__all__ = ["EXAMPLE_CONFIG", "add_parser", "config_text", "initialise"]

#: The commented example configuration shipped with the project.
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "connector.example.toml"

_FALLBACK_CONFIG = """\
# Connector configuration. Every setting is described in config/connector.example.toml
# of the connector's source; this file keeps the defaults.

[storage]
#data_dir = "data"
"""


def config_text(data_dir: Path | None) -> str:
    """The text of a new connector.toml: the commented example, with ``data_dir`` set if given."""
    try:
        text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    except OSError:
        text = _FALLBACK_CONFIG
    if data_dir is not None:
        # a JSON string is a valid TOML basic string
        line = f"data_dir = {json.dumps(str(data_dir))}"
        text = text.replace('#data_dir = "data"', line, 1)
    return text


async def initialise(
    engine: AsyncEngine, login: str, *, force: bool
) -> tuple[str, str, str] | None:
    """Create the admin ``login`` (or, with ``force``, reset an existing one).

    Returns (what happened, password, token), or None if the admin exists and not ``force``.
    """
    from crm_sync import users

    password = secrets.token_urlsafe(12)
    async with engine.begin() as conn:
        try:
            user = await users.get_user_by_login(conn, login)
        except CrmError:
            user = None
        if user is not None and not force:
            return None
        if user is None:
            user = await users.create_user(
                conn,
                {"login": login, "name": "Administrator", "role": "admin", "password": password},
            )
            what = "created"
        else:
            user = await users.update_user(
                conn, user.id, {"role": "admin", "active": True, "password": password}
            )
            what = "reset"
        issued = await users.issue_token(conn, user.id, "connector init")
    return what, password, issued.token


def _run(args: argparse.Namespace) -> int:
    from connector.config import load_settings

    out = stdout()
    config_path: Path = args.config or Path("connector.toml")
    if config_path.exists() and not args.force:
        out.print(f"Keeping the existing configuration [bold]{config_path}[/bold].")
        if args.data_dir is not None:
            out.print("[yellow]--data-dir is ignored: the existing file says where data lives.[/]")
    else:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        data_dir = args.data_dir
        if data_dir is not None and not data_dir.is_absolute():
            # relative paths in the file are relative to the file's directory
            data_dir = Path.cwd().joinpath(data_dir).resolve()
        config_path.write_text(config_text(data_dir), encoding="utf-8")
        out.print(f"Wrote the configuration [bold]{config_path}[/bold] (every setting commented).")
    settings = load_settings(config_path)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = run_with_engine(
            settings, lambda engine: initialise(engine, args.admin_login, force=args.force)
        )
    except CrmError as exc:
        return fail(exc)
    out.print(f"Data directory: [bold]{settings.storage.data_dir}[/bold]")
    out.print(f"Database: [bold]{_shown_url(settings.storage.effective_database_url)}[/bold]")
    if result is None:
        out.print(
            f"[yellow]Already initialised:[/] the admin [bold]{args.admin_login}[/bold] exists. "
            f"Get a new token with 'connector users token {args.admin_login}', or run "
            "'connector init --force' to reset its password."
        )
        return EXIT_ERROR
    what, password, token = result
    out.print(f"Admin [bold]{args.admin_login}[/bold] {what}. Shown once, keep them safe:")
    out.print(f"  password: [bold]{password}[/bold]")
    out.print(f"  API token: [bold]{token}[/bold]")
    out.print("Start the connector with: [bold]connector run[/bold]")
    return 0


def _shown_url(url: str) -> str:
    """The database URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def add_parser(subparsers: Any) -> None:
    """Register ``connector init``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "init",
        help="create the configuration, data directory, database and first admin",
        description=(
            "Set up a new connector: write a commented connector.toml (unless one exists), "
            "create the data directory and the database, and create the first admin user. "
            "The admin's password and API token are printed once."
        ),
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the database and recordings live (default: ./data next to connector.toml)",
    )
    p.add_argument(
        "--admin-login", default="admin", metavar="LOGIN", help="login of the first admin (admin)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing connector.toml and reset the admin's password "
        "(a new token is issued; old tokens keep working until revoked)",
    )
    p.set_defaults(func=_run)
