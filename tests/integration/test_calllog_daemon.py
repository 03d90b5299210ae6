"""The whole daemon: a fake Asterisk replays real calls over AMI/TCP; the call log, the callback
task and the transcoded recordings appear and are served over HTTP, as in production."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from connector.adapters.ami_replay_server import FakeAmiServer, Transcript
from connector.app import Runtime, serve
from connector.config import settings_from_mapping
from connector.events.bus import Subscription
from connector.events.model import RecordingReady, TaskCreated
from crm_sync.auth import issue_token
from crm_sync.db import migrate, open_engine
from crm_sync.schema import extensions, users
from tests.integration.calllog_support import AMI, WAVS

SCENARIOS = ["inbound_answered", "inbound_missed", "transfer"]
WAV_FILES = ["in-20261128-212111-1795900871.1.wav", "in-20261128-212221-1795900941.27.wav"]


async def seed(url: str) -> str:
    """Agents 101, 102, 104 and an admin in a fresh database; returns the admin's token."""
    await asyncio.to_thread(migrate, url)
    engine = open_engine(url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            for login, role, ext in [
                ("anna", "agent", "101"),
                ("boris", "agent", "102"),
                ("gleb", "agent", "104"),
                ("root", "admin", ""),
            ]:
                res = await conn.execute(
                    users.insert().values(
                        login=login,
                        name=login.title(),
                        role=role,
                        team="sales",
                        created_at=now,
                        updated_at=now,
                    )
                )
                uid = res.inserted_primary_key[0]  # type: ignore[index]
                if ext:
                    await conn.execute(
                        extensions.insert().values(user_id=uid, pbx="office", extension=ext)
                    )
            _tid, token = await issue_token(conn, uid, "test")
    finally:
        await engine.dispose()
    return token


async def test_calllog_daemon_end_to_end_over_ami(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    for name in WAV_FILES:
        shutil.copy(WAVS / name, spool / name)
    ami = FakeAmiServer(
        playlist=[Transcript.load(AMI / f"{n}.ami").events_only() for n in SCENARIOS]
    )
    await ami.start()
    raw: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"data_dir": str(tmp_path / "data")},
        "pbx": [
            {
                "name": "office",
                "port": ami.port,
                "secret": "connector-secret",
                "recordings_dir": str(spool),
                "reconnect_min": 0.05,
                "reconnect_max": 0.2,
            }
        ],
    }
    settings = settings_from_mapping(raw, base_dir=tmp_path, environ={})
    token = await seed(settings.storage.effective_database_url)
    ready: asyncio.Future[tuple[Runtime, str, Subscription]] = (
        asyncio.get_running_loop().create_future()
    )

    def on_ready(runtime: Runtime, url: str) -> None:
        # subscribed before any component runs: nothing published can be missed
        sub = runtime.bus.subscribe("e2e", {RecordingReady.TYPE, TaskCreated.TYPE})
        ready.set_result((runtime, url, sub))

    daemon = asyncio.create_task(serve(settings, on_ready=on_ready))
    try:
        runtime, url, sub = await asyncio.wait_for(ready, 20)
        got: list[Any] = []
        async with asyncio.timeout(60):
            while sum(isinstance(e, RecordingReady) for e in got) < 2 or not any(
                isinstance(e, TaskCreated) for e in got
            ):
                got.append(await sub.get())
        h = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/v1/calllog", headers=h) as r:
                body = await r.json()
            assert body["total"] == 3
            calls = {c["caller"]: c for c in body["items"]}
            assert calls["+79161234567"]["outcome"] == "answered"
            assert calls["+79161234567"]["answered_by_name"] == "Anna"
            assert calls["89161234567"]["outcome"] == "no_answer"
            assert calls["+79031112233"]["talked_last"] == "104"
            for caller in ("+79161234567", "+79031112233"):
                rec_url = calls[caller]["recording_url"]
                assert rec_url
                async with http.get(f"{url}{rec_url}", headers={**h, "Range": "bytes=0-3"}) as r:
                    assert r.status == 206 and r.headers["Content-Type"] == "audio/mpeg"
            assert calls["89161234567"]["recording_url"] is None  # never answered: no audio
            async with http.get(f"{url}/api/v1/calllog/missed", headers=h) as r:
                missed = (await r.json())["items"]
            assert [m["number"] for m in missed] == ["+79161234567"]
            assert missed[0]["assignee_name"] == "Boris"  # the agent who rang
    finally:
        daemon.cancel()
        await asyncio.gather(daemon, return_exceptions=True)
        await ami.stop()
