"""The ``connector`` command line.

Each command lives in its own module exposing ``add_parser(subparsers)``, which registers a
sub-parser and sets ``func`` (``(args) -> int``) as its default; :data:`COMMAND_MODULES` lists
them in the order ``--help`` shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

from connector.config import ConfigError, Settings, load_settings

__all__ = ["build_parser", "load_cli_settings", "main", "setup_logging"]

logger = logging.getLogger(__name__)

#: Modules with an ``add_parser(subparsers)`` function, in --help order.
COMMAND_MODULES: list[str] = [
    "connector.cli_init",
    "connector.cli_users",
    "connector.cli_contacts",
    "connector.cli_backup",
    "connector.replay",
    "connector.pbx_token",
    "connector.demo",
    "softphone.cli",
]

DEFAULT_CONFIG = Path("connector.toml")


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; quiet the chatty libraries."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiohttp.access", "websockets.server", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_cli_settings(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` (or ./connector.toml if it exists, else built-in defaults)."""
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_settings(path)


def _cmd_run(args: argparse.Namespace) -> int:
    from connector.app import serve
    from connector.config import redacted

    settings = load_cli_settings(args)
    setup_logging(settings.logging.level)
    logger.debug("settings: %s", redacted(settings))

    def ready(_runtime: object, url: str) -> None:
        sys.stderr.write(f"\n  Connector is running. Open {url}/ in your browser.\n\n")

    try:
        asyncio.run(serve(settings, on_ready=ready))
    except KeyboardInterrupt:
        logger.info("stopped")
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    where = settings.config_path or "built-in defaults"
    print(
        f"configuration OK ({where}): {len(settings.pbx)} Asterisk PBX(s), "
        f"{len(settings.webhook)} webhook account(s), data in {settings.storage.data_dir}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="connector",
        description=(
            "Telephony integration server for CRMs: connects Asterisk (AMI), cloud PBXs "
            "(webhooks) and a SIP softphone to a lightweight CRM, pops caller cards in the "
            "agent's browser, logs every call and keeps recordings."
        ),
        epilog="Run 'connector COMMAND --help' for the options of a command.",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(os.environ["CONNECTOR_CONFIG"])
        if os.environ.get("CONNECTOR_CONFIG")
        else None,
        help="TOML configuration file (default: ./connector.toml if present, "
        "else built-in defaults; env CONNECTOR_CONFIG)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser(
        "run",
        help="run the connector daemon",
        description="Run the connector: web console, API, hub and PBX adapters.",
    )
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser(
        "check-config",
        help="validate the configuration and exit",
        description="Load and validate the configuration; exit 0 if it is good.",
    )
    p.set_defaults(func=_cmd_check_config)
    for name in COMMAND_MODULES:
        import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``connector`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        sys.stderr.write(f"connector: configuration error: {exc}\n")
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
