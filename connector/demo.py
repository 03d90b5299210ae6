"""Demo mode: a built-in PBX that replays real Asterisk calls in a loop, with demo people.

When ``[demo] enabled`` is true, :func:`demo_components` adds one component that

1. seeds the store once (only if it has no users): demo agents on extensions 101-104 and
   201-202, a supervisor and an admin, all with the password :data:`DEMO_PASSWORD`, and the
   contacts and companies whose numbers call in the transcripts (Ivan Petrov, ООО Ромашка,
   Petr Sidorov...) with a note and an open task so the cards have something to show;
2. starts the fake AMI server (:class:`connector.adapters.ami_replay_server.FakeAmiServer`) on
   ``[demo] port`` (0: any free port), looping over the real transcripts shipped in
   ``connector/demo/`` at ``[demo] speed`` with ``[demo] pause_seconds`` between calls, and
   answering ``Originate`` with the recorded click-to-call;
3. runs a normal AMI adapter (PBX name ``demo``) connected to it, so every call goes the real way:
   AMI bytes -> codec -> tracker -> bus -> hub, call log, tasks.

``connector demo`` runs all of this on a data directory (default ``./demo-data``) and prints the
URL and the demo logins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from connector.app import Component, Runtime
from connector.config import AmiPbxSettings, Secret, Settings, settings_from_mapping
from crm_sync.schema import users

logger = logging.getLogger(__name__)

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_PBX",
    "DEMO_PEOPLE",
    "DemoPbx",
    "add_parser",
    "demo_components",
    "demo_logins",
    "demo_settings",
    "seed_demo",
]

DEMO_PBX = "demo"
DEMO_PASSWORD = "demo-pass"
DEMO_SECRET = "demo-ami-secret"
TRANSCRIPTS_DIR = Path(__file__).resolve().parent / "demo"

#: The calls the demo PBX plays, in order (see tests/data/ami/README.md for what each one is).
PLAYLIST = (
    "inbound_answered",  # Ivan Petrov -> 101, answered
    "queue_call",  # ООО Ромашка -> queue: 201 and 202 ring, 202 answers
    "inbound_missed",  # Ivan's mobile as 8 916... -> 102, no answer: callback task
    "transfer",  # Petr Sidorov -> 101, transferred to 104
    "inbound_busy",  # 8 (916) 123-45-67 -> 103 busy
    "caller_abandons",  # anonymous -> 102, the caller hangs up
)
CLICK_TO_CALL = "click_to_call"


@dataclass(frozen=True, slots=True)
class DemoPerson:
    """A demo user."""

    login: str
    name: str
    role: str
    team: str
    extension: str | None
    description: str


DEMO_PEOPLE = (
    DemoPerson("agent101", "Anna Smirnova", "agent", "sales", "101", "agent, ext. 101"),
    DemoPerson("agent102", "Boris Volkov", "agent", "sales", "102", "agent, ext. 102"),
    DemoPerson("agent103", "Vera Orlova", "agent", "sales", "103", "agent, ext. 103"),
    DemoPerson("agent104", "Dmitry Lebedev", "agent", "sales", "104", "agent, ext. 104"),
    DemoPerson("agent201", "Elena Kuznetsova", "agent", "support", "201", "support, ext. 201"),
    DemoPerson("agent202", "Fedor Novikov", "agent", "support", "202", "support, ext. 202"),
    DemoPerson("supervisor", "Galina Sokolova", "supervisor", "sales", None, "sales supervisor"),
    DemoPerson("admin", "Demo Admin", "admin", "", None, "administrator"),
)


def demo_logins() -> list[dict[str, str]]:
    """The demo accounts as the login page lists them."""
    return [
        {"login": p.login, "password": DEMO_PASSWORD, "role": p.role, "description": p.description}
        for p in DEMO_PEOPLE
    ]


async def seed_demo(runtime: Runtime, now: datetime | None = None) -> bool:
    """Create the demo people, contacts, notes and tasks unless the store has users already.

    Returns True if it seeded. Uses the CRM core (``crm_sync.users``, ``crm_sync.contacts``...),
    so numbers are normalised exactly as for real data.
    """
    from crm_sync.activities import create_note
    from crm_sync.contacts import create_company, create_contact
    from crm_sync.tasks import create_task
    from crm_sync.users import create_user

    now = now or datetime.now(UTC)
    region = runtime.settings.storage.default_region
    async with runtime.engine.begin() as conn:
        count = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
        if count:
            return False
        ids: dict[str, int] = {}
        for p in DEMO_PEOPLE:
            user = await create_user(
                conn,
                {
                    "login": p.login,
                    "name": p.name,
                    "role": p.role,
                    "team": p.team,
                    "password": DEMO_PASSWORD,
                    "extensions": (
                        [{"pbx": DEMO_PBX, "extension": p.extension}] if p.extension else []
                    ),
                },
                now=now,
            )
            ids[p.login] = user.id
        romashka = await create_company(
            conn,
            {
                "name": "ООО Ромашка",
                "phones": [{"number": "+7 495 123-45-67", "label": "office"}],
                "responsible_user_id": ids["agent202"],
                "tags": ["key account", "support contract"],
                "emails": ["office@romashka.example"],
                "notes": "Support contract until December; 40 seats.",
            },
            region=region,
            now=now,
        )
        alfa = await create_company(
            conn,
            {"name": "Альфа Логистик", "responsible_user_id": ids["agent101"], "tags": ["lead"]},
            region=region,
            now=now,
        )
        ivan = await create_contact(
            conn,
            {
                "name": "Ivan Petrov",
                "company_id": alfa.id,
                "responsible_user_id": ids["agent101"],
                "phones": [{"number": "+7 916 123-45-67", "label": "mobile"}],
                "emails": ["ivan.petrov@alfa.example"],
                "tags": ["VIP", "wholesale"],
                "notes": "Prefers calls after 11:00.",
            },
            region=region,
            now=now,
        )
        petr = await create_contact(
            conn,
            {
                "name": "Petr Sidorov",
                "responsible_user_id": ids["agent104"],
                "phones": [{"number": "+7 903 111-22-33", "label": "mobile"}],
                "tags": ["returning customer"],
            },
            region=region,
            now=now,
        )
        await create_contact(
            conn,
            {
                "name": "Maria Ivanova",
                "company_id": romashka.id,
                "responsible_user_id": ids["agent201"],
                "phones": [{"number": "+7 495 123-45-67", "label": "office"}],
                "tags": ["purchasing"],
            },
            region=region,
            now=now,
        )
        await create_note(
            conn,
            {"body": "Asked for a quote on 200 units; send the price list.", "contact_id": ivan.id},
            user_id=ids["agent101"],
            now=now - timedelta(days=2),
        )
        await create_note(
            conn,
            {"body": "Renewal talk planned for next month.", "company_id": romashka.id},
            user_id=ids["agent202"],
            now=now - timedelta(days=5),
        )
        await create_task(
            conn,
            {
                "title": "Send the price list to Ivan Petrov",
                "assignee_id": ids["agent101"],
                "contact_id": ivan.id,
                "due_at": (now + timedelta(days=1)).isoformat(),
            },
            user_id=ids["agent101"],
            now=now,
        )
        await create_task(
            conn,
            {
                "title": "Confirm delivery date with Petr Sidorov",
                "assignee_id": ids["agent104"],
                "contact_id": petr.id,
                "due_at": (now + timedelta(hours=3)).isoformat(),
            },
            user_id=ids["agent104"],
            now=now,
        )
    await runtime.reload_directory()
    logger.info("demo data seeded: %d users, contacts and companies", len(DEMO_PEOPLE))
    return True


class DemoPbx:
    """The demo PBX (fake AMI server looping over real calls) and the adapter connected to it."""

    name = "demo-pbx"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: Any = None
        self.seeded = asyncio.Event()  # the demo people exist (they can log in)

    def _server(self) -> Any:
        from connector.adapters.ami_replay_server import FakeAmiServer, Transcript

        demo = self.runtime.settings.demo
        playlist = [Transcript.load(TRANSCRIPTS_DIR / f"{n}.ami").events_only() for n in PLAYLIST]
        return FakeAmiServer(
            playlist=playlist,
            host="127.0.0.1",
            port=demo.port,
            username="connector",
            secret=DEMO_SECRET,
            speed=demo.speed,
            loop=True,
            loop_pause=demo.pause_seconds,
            originate_transcript=Transcript.load(TRANSCRIPTS_DIR / f"{CLICK_TO_CALL}.ami"),
        )

    async def run(self) -> None:
        """Seed, start the fake PBX, and run the AMI adapter against it until cancelled."""
        from connector.adapters.ami import AmiAdapter

        await seed_demo(self.runtime)
        self.seeded.set()
        pipeline = self.runtime.extras.get("recordings")
        if pipeline is not None and hasattr(pipeline, "source_dirs"):
            # the demo PBX is not a configured [[pbx]]: tell the recordings where its files are
            pipeline.source_dirs[DEMO_PBX] = TRANSCRIPTS_DIR
        self.server = self._server()
        async with self.server:
            self.runtime.extras["demo_pbx"] = self.server
            pbx = AmiPbxSettings(
                name=DEMO_PBX,
                host="127.0.0.1",
                port=self.server.port,
                username="connector",
                secret=Secret(DEMO_SECRET),
                reconnect_min=0.2,
                reconnect_max=5.0,
                recordings_dir=TRANSCRIPTS_DIR,  # the real MixMonitor files of these calls
            )
            logger.info("demo PBX replaying %d real calls in a loop", len(PLAYLIST))
            await AmiAdapter(self.runtime, pbx).run()


def demo_components(runtime: Runtime) -> list[Component]:
    """The demo PBX when ``[demo] enabled``, else nothing."""
    if not runtime.settings.demo.enabled:
        return []
    runtime.extras["demo_logins"] = demo_logins()
    demo = runtime.extras["demo"] = DemoPbx(runtime)
    return [demo]


# ---------------------------------------------------------------------------- CLI


def demo_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Settings for ``connector demo``: defaults plus the command's options and the environment."""
    raw: dict[str, Any] = {
        "server": {"host": args.host, "port": args.port},
        "storage": {"data_dir": str(args.data_dir)},
        "hub": {"port": args.hub_port},
        "recordings": {"directory": str(Path(args.data_dir) / "recordings")},
        "demo": {"enabled": True, "speed": args.speed, "pause_seconds": args.pause},
    }
    return settings_from_mapping(
        raw, base_dir=Path.cwd(), environ=dict(os.environ) if environ is None else environ
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from connector.app import serve
    from connector.cli import setup_logging

    settings = demo_settings(args)
    setup_logging(settings.logging.level)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)

    def ready(_runtime: Runtime, url: str) -> None:
        table = Table(title="Demo logins (password for all: " + DEMO_PASSWORD + ")")
        table.add_column("login", style="bold")
        table.add_column("who")
        for p in DEMO_PEOPLE:
            table.add_row(p.login, f"{p.name}, {p.description}")
        console.print()
        console.print(f"[bold green]The demo connector is running.[/] Open [bold]{url}/[/]")
        console.print(
            "Sign in as [bold]agent101[/] and watch the caller cards pop up: the demo PBX "
            "replays real Asterisk calls in a loop (a call every few seconds)."
        )
        console.print(table)
        console.print(f"Data lives in {settings.storage.data_dir}. Stop with Ctrl+C.\n")

    async def main() -> None:
        # seed before the URL is printed, so the first sign-in never races the seeding
        from connector.app import build_runtime

        runtime = await build_runtime(settings)
        try:
            await seed_demo(runtime)
        finally:
            await runtime.engine.dispose()
        await serve(settings, on_ready=ready)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        logger.info("stopped")
    except OSError as exc:
        console.print(
            f"[bold red]Cannot start the demo:[/] {exc.strerror or exc}. Is another connector "
            f"running? Pick other ports, e.g. connector demo --port {args.port + 10} "
            f"--hub-port {args.hub_port + 10}"
        )
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """Register ``connector demo``."""
    p = sub.add_parser(
        "demo",
        help="run the connector with a built-in demo PBX and demo users",
        description=(
            "Run the connector with a demo PBX that replays real Asterisk calls in a loop, "
            "demo users and contacts. Open the printed URL and sign in as a demo agent."
        ),
    )
    p.add_argument("--data-dir", type=Path, default=Path("demo-data"), help="default ./demo-data")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="web console port (default 8080)")
    p.add_argument("--hub-port", type=int, default=8081, help="websocket hub port (default 8081)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1: real time)")
    p.add_argument("--pause", type=float, default=4.0, help="seconds between calls (default 4)")
    p.set_defaults(func=_cmd_demo)
