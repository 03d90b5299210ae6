"""Composition root: build everything from :class:`Settings` and run it under one TaskGroup.

How the pieces plug in:

* A **component** is anything with ``name`` and ``async run()`` that runs until cancelled (an
  AMI connection, the webhook inbox worker, the call-log writer, the outbox sender...). Factories
  in :data:`COMPONENT_FACTORIES` turn the runtime into components; ``serve()`` runs each under a
  supervisor that logs and restarts it if it fails, so one broken part never stops the daemon.
* **Observations** from any adapter go through :meth:`Runtime.ingest`, which feeds the call
  tracker and publishes the resulting call events on the bus.
* **Click-to-call**: adapters that can place calls register a :class:`CallControl` under their
  PBX name in ``runtime.controls``.
* **Routes**: see :mod:`connector.web.app`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.config import Settings
from connector.events.bus import EventBus
from connector.events.model import Event, Observation

if TYPE_CHECKING:
    from aiohttp import web

logger = logging.getLogger(__name__)

__all__ = [
    "COMPONENT_FACTORIES",
    "CallControl",
    "Component",
    "Directory",
    "OriginateRequest",
    "OriginateResult",
    "Runtime",
    "serve",
]


class Component(Protocol):
    """A long-running part of the daemon."""

    name: str

    async def run(self) -> None:
        """Run until cancelled; reconnect/retry loops live inside."""


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """Place a call from an agent's extension to a number (click-to-call)."""

    call_id: str  # ours; AMI passes it as ChannelId so every event of the call is ours
    pbx: str
    extension: str
    number: str  # already normalised to what the PBX dials
    caller_name: str = ""
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """What the PBX said to an origination request (the call's fate arrives as call events)."""

    accepted: bool
    reason: str = ""


class CallControl(Protocol):
    """An adapter that can place and end calls."""

    pbx: str

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Ask the PBX to ring the agent and then dial the number."""

    async def hangup(self, conversation_id: str) -> None:
        """End a call."""


class Tracker(Protocol):
    """The call tracker as the runtime uses it (see connector.calls.CallTracker)."""

    def handle(self, observation: Any, now: datetime) -> list[Any]:
        """Feed one observation, drain the call events it causes."""


@dataclass
class Directory:
    """Who owns which extension, kept in memory so the pure tracker can ask synchronously."""

    by_extension: dict[tuple[str, str], int] = field(default_factory=dict)
    team_of: dict[int, str] = field(default_factory=dict)
    login_of: dict[int, str] = field(default_factory=dict)
    name_of: dict[int, str] = field(default_factory=dict)

    def user_of(self, pbx: str, extension: str) -> int | None:
        """The user id owning ``extension`` on ``pbx`` (an extension on '*' matches any PBX)."""
        if not extension:
            return None
        return self.by_extension.get((pbx, extension)) or self.by_extension.get(("*", extension))

    def extensions_of(self, user_id: int) -> list[tuple[str, str]]:
        """Every (pbx, extension) of a user."""
        return [k for k, v in self.by_extension.items() if v == user_id]


@dataclass
class Runtime:
    """Everything the running daemon shares: settings, database, bus, tracker, adapters."""

    settings: Settings
    engine: AsyncEngine
    bus: EventBus
    tracker: Tracker
    directory: Directory = field(default_factory=Directory)
    controls: dict[str, CallControl] = field(default_factory=dict)
    pbx_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)

    def ingest(self, observations: Iterable[Observation], now: datetime | None = None) -> list[Any]:
        """Feed observations to the tracker and publish the call events it produces.

        Never raises because of one bad observation: the error is logged and the rest go on.
        """
        produced: list[Any] = []
        for obs in observations:
            at = now or datetime.now(UTC)
            try:
                events = self.tracker.handle(obs, at)
            except Exception:
                logger.exception("call tracker failed on %r; observation skipped", obs)
                continue
            produced.extend(events)
        for event in produced:
            self.bus.publish(event)
        return produced

    def publish(self, event: Event) -> None:
        """Publish an event that did not come from the tracker (task.created, recording.ready)."""
        self.bus.publish(event)

    async def reload_directory(self) -> None:
        """Re-read users and extensions (call after any change to them)."""
        from crm_sync.schema import extensions, users

        d = Directory()
        async with self.engine.connect() as conn:
            for row in await conn.execute(
                select(users.c.id, users.c.login, users.c.name, users.c.team, users.c.active)
            ):
                d.team_of[row.id] = row.team
                d.login_of[row.id] = row.login
                d.name_of[row.id] = row.name
            for ext in await conn.execute(
                select(extensions.c.user_id, extensions.c.pbx, extensions.c.extension)
            ):
                d.by_extension[(ext.pbx, ext.extension)] = ext.user_id
        self.directory = d


ComponentFactory = Callable[[Runtime], list[Component]]

#: Each feature appends a factory here (by importing its module in ``_load_factories``).
COMPONENT_FACTORIES: list[ComponentFactory] = []


class TrackerSweeper:
    """Component: now and then, end calls whose last Hangup was lost (see CallTracker.sweep)."""

    name = "tracker-sweeper"

    def __init__(self, runtime: Runtime, period: float = 60.0) -> None:
        self.runtime = runtime
        self.period = period

    async def run(self) -> None:
        """Sweep every ``period`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            sweep = getattr(self.runtime.tracker, "sweep", None)
            if sweep is None:
                return
            events = sweep(datetime.now(UTC))
            for event in events:
                self.runtime.bus.publish(event)


def _sweeper_components(runtime: Runtime) -> list[Component]:
    return [TrackerSweeper(runtime)]


def _load_factories() -> list[ComponentFactory]:
    """The component factories of every feature, in start order."""
    from connector.cluster import cluster_components

    factories: list[ComponentFactory] = [
        cluster_components,  # first: it tells the bus who gets other processes' events
        *COMPONENT_FACTORIES,
        _sweeper_components,
    ]
    from connector.adapters.ami import ami_components

    factories.append(ami_components)
    from connector.clicktocall import clicktocall_components

    factories.append(clicktocall_components)
    from connector.hub import hub_components

    factories.append(hub_components)
    from connector.demo import demo_components

    factories.append(demo_components)
    from connector import webhooks_inbox

    factories.append(webhooks_inbox.components)
    from connector import outbox

    factories.append(outbox.components)
    from connector import recordings
    from crm_sync import calllog

    factories.append(calllog.components)
    factories.append(recordings.components)
    return factories


def make_tracker(directory_ref: Callable[[], Directory]) -> Tracker:
    """The call tracker, asking the current directory who owns an extension."""
    from connector.calls import CallTracker

    return CallTracker(user_of=lambda pbx, ext: directory_ref().user_of(pbx, ext))


def expose_tracker(tracker: Tracker) -> None:
    """Publish the sizes of the tracker's tables on /metrics (``connector_tracker_entries``),
    read at scrape time, so a leak in the call state shows up in monitoring."""
    from prometheus_client import Gauge

    stats = getattr(tracker, "stats", None)
    if stats is None:
        return
    global _TRACKER_ENTRIES
    if _TRACKER_ENTRIES is None:
        _TRACKER_ENTRIES = Gauge(
            "connector_tracker_entries", "Entries in the call tracker's tables", ["table"]
        )
    for table in stats():
        if table != "ignored":
            _TRACKER_ENTRIES.labels(table).set_function(lambda t=table: float(stats().get(t, 0)))


_TRACKER_ENTRIES: Any = None


async def build_runtime(settings: Settings) -> Runtime:
    """Migrate the database, open it, and assemble the runtime (nothing is started yet)."""
    from crm_sync.db import migrate, open_engine

    url = settings.storage.effective_database_url
    await asyncio.to_thread(migrate, url)
    engine = open_engine(url)
    holder: list[Runtime] = []
    tracker = make_tracker(lambda: holder[0].directory)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        bus=EventBus(),
        tracker=tracker,
    )
    holder.append(runtime)
    expose_tracker(tracker)
    await runtime.reload_directory()
    return runtime


async def _supervise(component: Component) -> None:
    """Run a component forever: log and restart it (with a pause) if it fails."""
    delay = 1.0
    while True:
        try:
            await component.run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("component %s failed; restarting in %.0f s", component.name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


async def serve(
    settings: Settings,
    *,
    on_ready: Callable[[Runtime, str], None] | None = None,
    extra_components: Iterable[Component] = (),
) -> None:
    """Run the daemon until cancelled: web server, hub, adapters and workers.

    ``on_ready(runtime, url)`` is called once everything listens (the CLI prints where to
    point the browser; tests learn the port).
    """
    from aiohttp import web

    from connector.web.app import create_app

    runtime = await build_runtime(settings)
    app: web.Application = create_app(runtime)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    try:
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else settings.server.port
        runtime.extras["http_port"] = port
        url = settings.server.public_url or f"http://{settings.server.host}:{port}"
        runtime.extras["url"] = url
        components: list[Component] = [*extra_components]
        for factory in _load_factories():
            components.extend(factory(runtime))
        from connector.cluster import arrange

        components = arrange(runtime, components)  # leases, when several processes share work
        async with asyncio.TaskGroup() as tg:
            for component in components:
                logger.info("starting %s", component.name)
                tg.create_task(_supervise(component), name=component.name)
            logger.info("connector is ready at %s", url)
            if on_ready is not None:
                on_ready(runtime, url)
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await runtime.engine.dispose()
