"""Shared set-up for tests on a real runtime (SQLite): users with extensions, the call log
writer, transcript replays, the recording pipeline, an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connector.app import Runtime, build_runtime
from connector.config import settings_from_mapping
from connector.events.model import CallEnded
from connector.recordings import RecordingPipeline
from connector.replay import load_chunks, replay_steps
from crm_sync.auth import issue_token
from crm_sync.calllog import CallLogWriter
from crm_sync.schema import extensions, users

DATA = Path(__file__).resolve().parent.parent / "data"
AMI = DATA / "ami"
WAVS = DATA / "recordings"

#: The AMI transcripts the call log tests replay, in this order (a minute apart).
SCENARIOS = [
    "inbound_answered",
    "inbound_missed",
    "inbound_busy",
    "caller_abandons",
    "click_to_call",
    "click_to_call_noanswer",
    "queue_call",
    "transfer",
]
#: The agents those transcripts ring, as (login, team, extension on pbx1).
AGENTS = [
    ("anna", "sales", "101"),
    ("boris", "sales", "102"),
    ("vera", "sales", "103"),
    ("gleb", "sales", "104"),
    ("dina", "support", "201"),
    ("egor", "support", "202"),
]


def make_settings(tmp_path: Path, **sections: Any) -> Any:
    """Settings for a runtime whose data lives in ``tmp_path``."""
    raw: dict[str, Any] = {"storage": {"data_dir": str(tmp_path / "data")}}
    raw.update(sections)
    return settings_from_mapping(raw, base_dir=tmp_path, environ={})


@asynccontextmanager
async def open_runtime(tmp_path: Path, **sections: Any) -> AsyncIterator[Runtime]:
    """A migrated runtime (SQLite file in ``tmp_path``), disposed at the end."""
    runtime = await build_runtime(make_settings(tmp_path, **sections))
    try:
        yield runtime
    finally:
        await runtime.engine.dispose()


async def add_user(
    runtime: Runtime,
    login: str,
    role: str = "agent",
    team: str = "",
    exts: tuple[str, ...] = (),
    pbx: str = "pbx1",
) -> tuple[int, str]:
    """Create a user with extensions on ``pbx``; returns (user id, API token)."""
    now = datetime.now(UTC)
    async with runtime.engine.begin() as conn:
        result = await conn.execute(
            users.insert().values(
                login=login,
                name=login.title(),
                role=role,
                team=team,
                created_at=now,
                updated_at=now,
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        uid = int(pk[0])
        for ext in exts:
            await conn.execute(extensions.insert().values(user_id=uid, pbx=pbx, extension=ext))
        _tid, token = await issue_token(conn, uid, "test")
    await runtime.reload_directory()
    return uid, token


async def add_agents(runtime: Runtime) -> dict[str, tuple[int, str]]:
    """Create the :data:`AGENTS` in order; (user id, API token) by extension."""
    return {
        ext: await add_user(runtime, login, "agent", team, (ext,)) for login, team, ext in AGENTS
    }


def spool_pipeline(
    runtime: Runtime,
    spool: Path,
    publish: Callable[[Any], object] | None = None,
    **options: Any,
) -> RecordingPipeline:
    """A recording pipeline that finds pbx1's files in ``spool`` and publishes with ``publish``
    (default: on the runtime's bus)."""
    return RecordingPipeline(
        runtime.engine,
        runtime.settings.recordings,
        {"pbx1": spool},
        publish or runtime.publish,
        stable_interval=0.01,
        **options,
    )


@asynccontextmanager
async def running(work: Coroutine[Any, Any, object]) -> AsyncIterator[asyncio.Task[object]]:
    """``work`` running as a task for the block; cancelled and awaited at the end."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def web_client(runtime: Runtime) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A real HTTP client against the runtime's web app on 127.0.0.1, port 0."""
    from connector.web.app import create_app

    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(create_app(runtime), host="127.0.0.1", port=0)
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def next_event(sub: Any, timeout: float = 10.0) -> Any:
    """The next event of a bus subscription, or fail after ``timeout`` seconds."""
    return await asyncio.wait_for(sub.get(), timeout)


@asynccontextmanager
async def writer_running(runtime: Runtime) -> AsyncIterator[CallLogWriter]:
    writer = CallLogWriter(runtime)
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        runtime.bus.unsubscribe(writer.subscription)


async def replay_into(
    runtime: Runtime, writer: CallLogWriter, names: list[str], start: datetime
) -> list[CallEnded]:
    """Replay transcripts one after another (a minute apart) and wait until all are logged."""
    ended: list[CallEnded] = []
    pbx = runtime.settings.pbx[0]
    for i, name in enumerate(names):
        chunks = load_chunks(AMI / f"{name}.ami")
        at = start + timedelta(minutes=i)
        for _t, events in replay_steps(chunks, pbx, at, tracker=runtime.tracker):  # type: ignore[arg-type]
            for event in events:
                runtime.bus.publish(event)
                if isinstance(event, CallEnded):
                    ended.append(event)
    await writer.wait_handled(writer.handled + len(ended), timeout=30)
    return ended
