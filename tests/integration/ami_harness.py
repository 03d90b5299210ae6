"""Shared set-up of the AMI integration tests: a real runtime with real AMI adapters.

The adapters connect over real TCP on 127.0.0.1 to :class:`FakeAmiServer` instances; the
runtime is built with ``build_runtime`` on a SQLite file in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.adapters.ami import AmiAdapter
from connector.adapters.ami_replay_server import Transcript
from connector.app import Runtime, build_runtime
from connector.config import settings_from_mapping
from connector.events.bus import Subscription
from connector.events.model import CallEnded, Event

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"
SECRET = "connector-secret"


def transcript(name: str) -> Transcript:
    """A recorded scenario as the server sends it after login (events only, real chunking)."""
    return Transcript.load(DATA / f"{name}.ami").events_only()


def pbx_config(name: str, port: int, **overrides: Any) -> dict[str, Any]:
    """A ``[[pbx]]`` table with small timers, pointing at a fake server."""
    cfg: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "username": "connector",
        "secret": SECRET,
        "ping_interval": 0.2,
        "ping_timeout": 0.3,
        "connect_timeout": 2.0,
        "reconnect_min": 0.02,
        "reconnect_max": 0.2,
        "originate_channel": "Local/{extension}@agents",
        "originate_context": "outbound",
    }
    cfg.update(overrides)
    return cfg


@dataclass
class Harness:
    """A running runtime, its adapters by PBX name, and a bus subscription to everything."""

    runtime: Runtime
    adapters: dict[str, AmiAdapter]
    events: Subscription
    seen: list[Event] = field(default_factory=list)

    async def next_event(self, timeout: float = 10.0) -> Event:
        """The next event on the bus (bounded wait)."""
        async with asyncio.timeout(timeout):
            event = await self.events.get()
        self.seen.append(event)
        return event

    async def ended(self, count: int = 1, timeout: float = 10.0) -> list[CallEnded]:
        """Wait for ``count`` more call.ended events; return them."""
        out: list[CallEnded] = []
        async with asyncio.timeout(timeout):
            while len(out) < count:
                event = await self.next_event(timeout)
                if isinstance(event, CallEnded):
                    out.append(event)
        return out


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, pbxs: list[dict[str, Any]], **sections: Any
) -> AsyncIterator[Harness]:
    """Build the runtime from ``pbxs`` (and other settings sections), run one adapter each."""
    raw: dict[str, Any] = {"storage": {"data_dir": str(tmp_path / "data")}, "pbx": pbxs}
    raw.update(sections)
    settings = settings_from_mapping(raw, base_dir=tmp_path, environ={})
    runtime = await build_runtime(settings)
    sub = runtime.bus.subscribe("ami-tests")
    adapters = {p.name: AmiAdapter(runtime, p) for p in settings.pbx}
    tasks = [asyncio.create_task(a.run(), name=a.name) for a in adapters.values()]
    try:
        yield Harness(runtime, adapters, sub)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.engine.dispose()
        for result in results:
            if isinstance(result, Exception):
                raise result
