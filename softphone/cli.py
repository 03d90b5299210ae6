"""``connector softphone``: the agent's SIP phone in a terminal.

Registers with ``[softphone]`` from the configuration, shows the registration and the caller's
card (name, company, responsible manager from the connector's lookup), takes keys (see
:mod:`softphone.tui`), posts its calls to the connector and dials click-to-call requests.

Exit codes: 0 normal quit, 2 configuration error, 3 wrong username or password, 4 registrar
unreachable, 5 local SIP port in use, 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from connector.config import ConfigError, SoftphoneSettings
from softphone.errors import (
    AuthenticationFailed,
    LookupFailed,
    PortInUse,
    RegistrarUnreachable,
    SoftphoneError,
)
from softphone.link import ConnectorLink, run_commands, run_uplink
from softphone.phone import PhoneOptions, Softphone
from softphone.tui import Action, Screen

logger = logging.getLogger(__name__)

__all__ = ["add_parser", "run"]

EXIT_CODES: list[tuple[type[SoftphoneError], int, str]] = [
    (AuthenticationFailed, 3, "wrong username or password"),
    (RegistrarUnreachable, 4, "the registrar is unreachable"),
    (PortInUse, 5, "the local SIP port is already in use"),
]


def add_parser(subparsers: Any) -> None:
    """Register ``connector softphone``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "softphone",
        help="run the agent's SIP softphone in the terminal",
        description=(
            "A SIP phone for an agent: registers with the PBX ([softphone] in the "
            "configuration), shows the caller's card, answers, rejects, hangs up, dials, sends "
            "DTMF, and reports its calls to the connector (call log, pops, click-to-call)."
        ),
        epilog="Keys: a answer, r reject, h hang up, d dial, 0-9*# DTMF, t auto-answer, q quit.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="TOML configuration file (same as the global -c/--config)",
    )
    p.add_argument(
        "--device",
        action="store_true",
        help="use the system sound device (needs the 'audio' extra: pip install .[audio])",
    )
    p.add_argument(
        "--auto-answer", action="store_true", help="answer incoming calls at once (key t)"
    )
    p.set_defaults(func=run)


def check_settings(s: SoftphoneSettings) -> None:
    """Refuse settings a phone cannot work with, naming the key."""
    if not s.username:
        raise ConfigError("softphone.username is required (the SIP user / extension)")
    if not s.password:
        raise ConfigError("softphone.password is required")


def run(args: argparse.Namespace) -> int:
    """Run the softphone until 'q'; returns the exit code."""
    from connector.cli import load_cli_settings

    console = Console(stderr=True)
    try:
        settings = load_cli_settings(args).softphone
        check_settings(settings)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        return 2
    if getattr(args, "auto_answer", False):
        from dataclasses import replace

        settings = replace(settings, auto_answer=True)
    # No stream handler: while the screen is up, warnings go to its log panel (_ScreenLog).
    logging.getLogger().setLevel(logging.WARNING)
    phone = Softphone(settings, PhoneOptions(use_device=bool(getattr(args, "device", False))))
    try:
        return asyncio.run(_main(phone, console))
    except KeyboardInterrupt:
        return 0
    except SoftphoneError as exc:
        for kind, code, what in EXIT_CODES:
            if isinstance(exc, kind):
                console.print(f"[red]softphone: {what}:[/red] {exc}")
                return code
        console.print(f"[red]softphone:[/red] {exc}")
        return 1


class _ScreenLog(logging.Handler):
    """Shows warnings from the phone in the screen's log panel while the UI runs."""

    def __init__(self, screen: Screen) -> None:
        super().__init__(logging.WARNING)
        self.screen = screen

    def emit(self, record: logging.LogRecord) -> None:
        self.screen.note(f"{record.levelname.lower()}: {record.getMessage()}")


@contextlib.contextmanager
def _keys_mode(fd: int) -> Iterator[None]:
    """Single key presses without Enter on a terminal; nothing changes for a pipe."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _main(phone: Softphone, console: Console) -> int:
    s = phone.settings
    screen = Screen(username=s.username, server=f"{s.server}:{s.port}", auto_answer=s.auto_answer)
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    events = phone.listen()
    console.print(f"registering {s.username} at {s.server}:{s.port} ...")
    await phone.start()  # raises the clear errors the exit codes name
    handler = _ScreenLog(screen)
    logging.getLogger().addHandler(handler)
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def on_key() -> None:
        data = os.read(fd, 64)
        if not data:  # end of input: quit
            loop.remove_reader(fd)
            inbox.put_nowait(("key", "q"))
            return
        for char in data.decode("utf-8", "replace"):
            inbox.put_nowait(("key", char))

    async def forward_events() -> None:
        while True:
            inbox.put_nowait(("event", await events.get()))

    tasks: list[asyncio.Task[None]] = [asyncio.create_task(forward_events())]
    link: ConnectorLink | None = None
    uplink: asyncio.Task[None] | None = None
    if s.token:
        link = ConnectorLink(s.connector_url, s.token.get())
        await link.__aenter__()
        uplink = asyncio.create_task(run_uplink(phone, link, finish_on_stop=True))
        tasks.append(asyncio.create_task(run_commands(phone, link)))
    else:
        screen.note("no [softphone] token: calls are not reported to the connector")
    while not events.empty():
        screen.event(events.get_nowait())
    try:
        with _keys_mode(fd), Live(screen.render(), console=console, auto_refresh=False) as live:
            loop.add_reader(fd, on_key)
            try:
                while True:
                    kind, item = await inbox.get()
                    if kind == "key":
                        actions = screen.key(item)
                    elif kind == "card":
                        screen.card(*item)
                        actions = []
                    else:
                        actions = screen.event(item)
                    if any(a.kind == "quit" for a in actions):
                        break
                    for action in actions:
                        await _perform(phone, link, screen, inbox, action)
                    live.update(screen.render(), refresh=True)
            finally:
                loop.remove_reader(fd)
    finally:
        logging.getLogger().removeHandler(handler)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await phone.stop()  # ends calls: their last observations still go out
        if uplink is not None:
            try:
                await asyncio.wait_for(uplink, 10)
            except TimeoutError:
                logger.warning("the connector did not take the last observations in time")
        if link is not None:
            await link.__aexit__(None, None, None)
    return 0


async def _perform(
    phone: Softphone,
    link: ConnectorLink | None,
    screen: Screen,
    inbox: asyncio.Queue[tuple[str, Any]],
    action: Action,
) -> None:
    try:
        if action.kind == "answer":
            phone.answer(action.call_id)
        elif action.kind == "reject":
            phone.reject(action.call_id)
        elif action.kind == "hangup":
            phone.hangup(action.call_id)
        elif action.kind == "dtmf":
            phone.send_dtmf(action.call_id, action.value)
        elif action.kind == "auto":
            phone.auto_answer = action.value == "on"
        elif action.kind == "dial":
            await phone.dial(action.value)
        elif action.kind == "lookup" and link is not None and action.value:
            asyncio.create_task(_lookup(link, inbox, action.call_id, action.value))
    except (SoftphoneError, ValueError) as exc:
        screen.note(f"{action.kind} failed: {exc}")


async def _lookup(
    link: ConnectorLink, inbox: asyncio.Queue[tuple[str, Any]], call_id: str, number: str
) -> None:
    try:
        card = await link.lookup(number)
    except LookupFailed as exc:
        logger.warning("%s", exc)
        return
    inbox.put_nowait(("card", (call_id, card)))
