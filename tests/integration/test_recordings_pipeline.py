"""Recording pipeline against real MixMonitor WAVs, real ffmpeg, real HTTP downloads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from connector.config import RecordingSettings
from connector.events.bus import EventBus
from connector.events.model import CallEnded, Direction, Outcome, RecordingReady
from connector.recordings import (
    RecordingDownloadError,
    RecordingPipeline,
    RecordingTooLarge,
    download,
    purge_expired,
)
from crm_sync.schema import recordings
from tests.integration.calllog_support import WAVS, open_runtime, spool_pipeline

ANSWERED = "in-20261128-212111-1795900871.1.wav"
EMPTY = "in-20261128-212134-1795900894.5.wav"
DAY = datetime(2026, 11, 28, 21, 21, 11, tzinfo=UTC)


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


def pipeline_for(runtime, spool: Path, bus: EventBus, **kw) -> RecordingPipeline:  # type: ignore[no-untyped-def]
    return spool_pipeline(
        runtime, spool, bus.publish, appear_timeout=2.0, download_backoff=0.01, **kw
    )


def spool_copy(tmp_path: Path, *names: str) -> Path:
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(WAVS / name, spool / name)
    return spool


def ended(conv: str, recording: str, outcome: Outcome = Outcome.ANSWERED) -> CallEnded:
    return CallEnded(
        key=f"call.ended:pbx1:{conv}",
        pbx="pbx1",
        conversation_id=conv,
        occurred_at=DAY,
        observed_at=DAY,
        direction=Direction.INBOUND,
        outcome=outcome,
        started_at=DAY,
        recording=recording,
    )


@pytest.mark.parametrize(
    ("name", "seconds"),
    [
        ("in-20261128-212111-1795900871.1.wav", 3.0),
        ("out-20261128-212202-1795900920.16.wav", 4.0),
        ("q-20261128-212212-1795900932.21.wav", 3.0),
        ("in-20261128-212221-1795900941.27.wav", 10.96),
    ],
)
async def test_recordings_real_mixmonitor_wavs_become_mp3(
    tmp_path: Path, name: str, seconds: float
) -> None:
    spool = spool_copy(tmp_path, name)
    async with open_runtime(tmp_path) as runtime:
        bus = EventBus()
        sub = bus.subscribe("test")
        pipe = pipeline_for(runtime, spool, bus)
        rec_id = await pipe.collect_call(ended("1795900871.0", f"/srv/pbx/recordings/{name}"))
        assert rec_id is not None
        async with runtime.engine.connect() as conn:
            row = (await conn.execute(select(recordings).where(recordings.c.id == rec_id))).one()
        assert row.status == "ready", row.error
        assert row.path == f"2026/11/28/{rec_id}.mp3"
        assert row.format == "mp3" and row.content_type == "audio/mpeg"
        assert row.duration_seconds == pytest.approx(seconds, abs=0.01)
        stored = runtime.settings.recordings.directory / row.path
        assert stored.read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xe3")
        assert row.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
        assert row.size_bytes == stored.stat().st_size
        # the encoder pads a frame or two; the decoded length is the source's
        assert ffprobe_duration(stored) == pytest.approx(seconds, abs=0.25)
        event = sub.get_nowait()
        assert isinstance(event, RecordingReady)
        assert event.recording_id == rec_id and event.conversation_id == "1795900871.0"
        assert (spool / name).exists()  # remove_original is off by default


async def test_recordings_header_only_wav_is_empty_and_not_announced(tmp_path: Path) -> None:
    spool = spool_copy(tmp_path, EMPTY)
    async with open_runtime(tmp_path) as runtime:
        bus = EventBus()
        sub = bus.subscribe("test")
        pipe = pipeline_for(runtime, spool, bus)
        rec_id = await pipe.collect_call(ended("c2", EMPTY, Outcome.NO_ANSWER))
        async with runtime.engine.connect() as conn:
            row = (await conn.execute(select(recordings).where(recordings.c.id == rec_id))).one()
        assert row.status == "empty" and row.path is None
        assert sub.get_nowait() is None
        # an unanswered call whose file never appeared is empty too, without waiting for it
        rec2 = await pipe.collect_call(ended("c3", "nothing-here.wav", Outcome.ABANDONED))
        async with runtime.engine.connect() as conn:
            st = await conn.execute(select(recordings.c.status).where(recordings.c.id == rec2))
            assert st.scalar_one() == "empty"


async def test_recordings_collected_once_and_original_removed_when_configured(
    tmp_path: Path,
) -> None:
    spool = spool_copy(tmp_path, ANSWERED)
    async with open_runtime(
        tmp_path, recordings={"format": "opus", "bitrate": "24k", "remove_original": True}
    ) as runtime:
        bus = EventBus()
        sub = bus.subscribe("test")
        pipe = pipeline_for(runtime, spool, bus)
        first = await pipe.collect_call(ended("c1", ANSWERED))
        assert not (spool / ANSWERED).exists()
        second = await pipe.collect_call(ended("c1", ANSWERED))
        assert first == second
        async with runtime.engine.connect() as conn:
            rows = (await conn.execute(select(recordings))).all()
        assert len(rows) == 1
        assert rows[0].format == "opus" and rows[0].content_type == "audio/ogg"
        stored = runtime.settings.recordings.directory / rows[0].path
        assert stored.read_bytes()[:4] == b"OggS"
        assert rows[0].duration_seconds == pytest.approx(3.0, abs=0.01)
        assert isinstance(sub.get_nowait(), RecordingReady)
        assert sub.get_nowait() is None


async def test_recordings_bad_source_names_fail_cleanly(tmp_path: Path) -> None:
    spool = spool_copy(tmp_path, ANSWERED)
    (tmp_path / "secret.wav").write_bytes((WAVS / ANSWERED).read_bytes())
    async with open_runtime(tmp_path) as runtime:
        pipe = pipeline_for(runtime, spool, EventBus())
        # only the base name is used: a path never escapes the spool directory
        rid = await pipe.collect(
            pbx="pbx1", conversation_id="x", source="../secret.wav", day=DAY, answered=True
        )
        other = await pipe.collect(
            pbx="nopbx", conversation_id="y", source=ANSWERED, day=DAY, answered=True
        )
        async with runtime.engine.connect() as conn:
            rows = {
                r.id: r for r in await conn.execute(select(recordings).order_by(recordings.c.id))
            }
        assert rows[rid].status == "failed" and "did not appear" in rows[rid].error
        assert rows[other].status == "failed" and "recordings_dir" in rows[other].error


# ---------------------------------------------------------------------------- provider URLs


class Provider:
    """A local HTTP server playing a cloud PBX's recording storage."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.never = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{name}", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        body = (WAVS / ANSWERED).read_bytes()
        if name == "flaky" and self.hits[name] <= 2:
            return web.Response(status=503)
        if name == "gone":
            return web.Response(status=404)
        if name == "slow":
            await self.never.wait()
        if name == "big":  # chunked, no Content-Length: the limit must count bytes
            resp = web.StreamResponse()
            await resp.prepare(request)
            for _ in range(20):
                await resp.write(b"\0" * 4096)
            await resp.write_eof()
            return resp
        return web.Response(body=body, content_type="audio/wav")

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))


async def test_recordings_download_retries_limits_and_timeouts(tmp_path: Path) -> None:
    provider = Provider()
    await provider.server.start_server()
    try:
        dest = tmp_path / "dl" / "file"
        async with aiohttp.ClientSession() as session:

            async def fetch(name: str, **limits: Any) -> int:
                """Download the provider's ``name`` into ``dest`` (5 s, 3 retries, 1 MB)."""
                options: dict[str, Any] = {"timeout": 5, "retries": 3, "max_bytes": 10**6}
                options.update(limits)
                return await download(session, provider.url(name), dest, backoff=0.01, **options)

            n = await fetch("flaky")
            assert n == (WAVS / ANSWERED).stat().st_size and provider.hits["flaky"] == 3
            assert dest.read_bytes() == (WAVS / ANSWERED).read_bytes()

            with pytest.raises(RecordingDownloadError, match="HTTP 404"):
                await fetch("gone")
            assert provider.hits["gone"] == 1  # a 4xx is not retried

            with pytest.raises(RecordingTooLarge):
                await fetch("big", max_bytes=50_000)
            assert provider.hits["big"] == 1 and not dest.exists()
            with pytest.raises(RecordingTooLarge):  # announced by Content-Length
                await fetch("ok", retries=0, max_bytes=2000)

            with pytest.raises(RecordingDownloadError, match="after 2 attempt"):
                await fetch("slow", timeout=0.2, retries=1)
            assert provider.hits["slow"] == 2
    finally:
        provider.never.set()
        await provider.server.close()


async def test_recordings_provider_url_is_fetched_and_transcoded(tmp_path: Path) -> None:
    provider = Provider()
    await provider.server.start_server()
    try:
        async with open_runtime(tmp_path) as runtime:
            bus = EventBus()
            sub = bus.subscribe("test")
            pipe = pipeline_for(runtime, tmp_path, bus)
            rec_id = await pipe.collect(
                pbx="zadarma:acc", conversation_id="p1", source=provider.url("flaky"), day=DAY
            )
            bad = await pipe.collect(
                pbx="zadarma:acc", conversation_id="p2", source=provider.url("gone"), day=DAY
            )
            # a provider reference of an account that is not configured: no link, failed
            unknown = await pipe.collect(
                pbx="zadarma:acc", conversation_id="p3", source="zadarma:nope:42", day=DAY
            )
            async with runtime.engine.connect() as conn:
                rows = {r.id: r for r in await conn.execute(select(recordings))}
            assert rows[unknown].status == "failed"
            assert "no download link" in rows[unknown].error
            assert rows[rec_id].status == "ready"
            assert rows[rec_id].duration_seconds == pytest.approx(3.0, abs=0.01)
            assert rows[bad].status == "failed" and "404" in rows[bad].error
            assert isinstance(sub.get_nowait(), RecordingReady)
            staging = runtime.settings.recordings.directory / ".incoming"
            assert not staging.exists() or not any(staging.iterdir())
    finally:
        await provider.server.close()


# ---------------------------------------------------------------------------- retention


async def test_recordings_retention_deletes_old_files_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spool_copy(tmp_path, ANSWERED, "q-20261128-212212-1795900932.21.wav")
    async with open_runtime(tmp_path) as runtime:
        pipe = pipeline_for(runtime, spool, EventBus())
        old = await pipe.collect_call(ended("old", ANSWERED))
        new = await pipe.collect_call(ended("new", "q-20261128-212212-1795900932.21.wav"))
        now = datetime.now(UTC)
        async with runtime.engine.begin() as conn:
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == old)
                .values(created_at=now - timedelta(days=40))
            )
            paths = {
                r.id: r.path for r in await conn.execute(select(recordings.c.id, recordings.c.path))
            }
        directory = runtime.settings.recordings.directory
        assert await purge_expired(runtime.engine, directory, 0, now) == 0  # 0 keeps all
        caplog.set_level("INFO", logger="connector.recordings")
        assert await purge_expired(runtime.engine, directory, 30, now) == 1
        assert not (directory / paths[old]).exists()
        assert (directory / paths[new]).exists()
        async with runtime.engine.connect() as conn:
            status = dict((await conn.execute(select(recordings.c.id, recordings.c.status))).all())
        assert status == {old: "deleted", new: "ready"}
        assert any("retention: deleted recording" in r.message for r in caplog.records)
        assert await purge_expired(runtime.engine, directory, 30, now) == 0


def test_recordings_settings_defaults_are_sane() -> None:
    s = RecordingSettings()
    assert s.format in ("mp3", "opus") and s.max_download_bytes > 0
