"""Serving recordings: HTTP Range, who may listen, path traversal, audit."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.app import Runtime
from crm_sync.auth import issue_token
from crm_sync.schema import audit_log, recordings
from tests.integration.calllog_support import (
    WAVS,
    add_user,
    open_runtime,
    replay_into,
    spool_pipeline,
    web_client,
    writer_running,
)

START = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
WAV = "in-20261128-212111-1795900871.1.wav"


async def answered_call_with_recording(tmp_path: Path, runtime: Runtime) -> tuple[int, bytes]:
    """Replay inbound_answered (agent 101), log it and collect its MixMonitor file."""
    spool = runtime.settings.pbx[0].recordings_dir
    assert spool is not None
    spool.mkdir(parents=True, exist_ok=True)
    shutil.copy(WAVS / WAV, spool / WAV)
    pipe = spool_pipeline(runtime, spool, appear_timeout=2)
    async with writer_running(runtime) as writer:
        ended = await replay_into(runtime, writer, ["inbound_answered"], START)
    rec_id = await pipe.collect_call(ended[0])
    assert rec_id is not None
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(recordings).where(recordings.c.id == rec_id))).one()
    assert row.status == "ready"
    return rec_id, (runtime.settings.recordings.directory / row.path).read_bytes()


async def raw_status(port: int, target: str, token: str) -> int:
    """Send a request line exactly as written (no client-side normalisation); return the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


SECTIONS: dict[str, Any] = {"pbx": [{"name": "pbx1", "recordings_dir": "spool"}]}


async def test_recordings_http_range_permissions_traversal_and_audit(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        anna, anna_t = await add_user(runtime, "anna", "agent", "sales", ("101",))
        _boris, boris_t = await add_user(runtime, "boris", "agent", "sales", ("102",))
        boss, boss_t = await add_user(runtime, "boss", "supervisor", "sales")
        _other, other_t = await add_user(runtime, "other", "supervisor", "support")
        admin, admin_t = await add_user(runtime, "root", "admin")
        async with runtime.engine.begin() as conn:
            _tid, pbx_t = await issue_token(conn, None, scope="pbx", pbx="pbx1")
        rec_id, data = await answered_call_with_recording(tmp_path, runtime)
        size = len(data)
        url = f"/api/v1/recordings/{rec_id}"

        async with web_client(runtime) as client:

            def auth(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            r = await client.get(url, headers=auth(anna_t))
            assert r.status == 200 and await r.read() == data
            assert r.headers["Content-Type"] == "audio/mpeg"
            assert r.headers["Accept-Ranges"] == "bytes"

            r = await client.get(url, headers={**auth(anna_t), "Range": "bytes=100-1099"})
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 100-1099/{size}"
            assert await r.read() == data[100:1100]

            r = await client.get(url, headers={**auth(boss_t), "Range": "bytes=-500"})
            assert r.status == 206 and await r.read() == data[-500:]
            assert r.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"

            r = await client.get(url, headers={**auth(admin_t), "Range": f"bytes={size}-"})
            assert r.status == 416
            assert r.headers["Content-Range"] == f"bytes */{size}"
            for bad in ("bytes=abc", "bytes=50-10", "pages=1-2", f"bytes={size + 5}-{size + 9}"):
                r = await client.get(url, headers={**auth(admin_t), "Range": bad})
                assert r.status == 416, bad
                assert r.headers["Content-Range"] == f"bytes */{size}"
            r = await client.get(url, headers=auth(admin_t))
            assert r.status == 200 and await r.read() == data

            # the browser's ways of carrying the token: query parameter and cookie
            r = await client.get(f"{url}?access_token={boss_t}", headers={"Range": "bytes=0-9"})
            assert r.status == 206 and await r.read() == data[:10]
            r = await client.get(url, cookies={"vc_token": anna_t})
            assert r.status == 200

            # not on the call, another team's supervisor, a PBX token, nobody: refused
            for token in (boris_t, other_t, pbx_t):
                r = await client.get(url, headers=auth(token))
                assert r.status == 403, token
                assert (await r.json())["error"]["code"] == "forbidden"
            assert (await client.get(url)).status == 401

            info = await client.get(f"{url}/info", headers=auth(boss_t))
            body = await info.json()
            assert body["duration_seconds"] == 3.0 and len(body["sha256"]) == 64
            assert (await client.get(f"{url}/info", headers=auth(boris_t))).status == 403

            assert (
                await client.get("/api/v1/recordings/999999", headers=auth(admin_t))
            ).status == 404

            port = client.port
            assert port is not None
            for target in (
                "/api/v1/recordings/../../etc/passwd",
                "/api/v1/recordings/..%2f..%2fetc%2fpasswd",
                "/api/v1/recordings/%2e%2e",
                "/api/v1/recordings/%2e%2e%2f%2e%2e%2fconnector.db",
                "/api/v1/recordings//etc/passwd",
                "/api/v1/recordings/%2Fetc%2Fpasswd",
                "/api/v1/recordings/abc",
                "/api/v1/recordings/-1",
                "/api/v1/recordings/1.0",
                "/api/v1/recordings/1%00",
                "/api/v1/recordings/%31%2f..",
                "/api/v1/recordings/１",
            ):
                status = await raw_status(port, target, admin_t)
                assert status in (400, 404), (target, status)

            # a stored path that points outside the directory is never served
            secret = tmp_path / "outside.mp3"
            secret.write_bytes(b"secret")
            async with runtime.engine.begin() as conn:
                res = await conn.execute(
                    recordings.insert().values(
                        pbx="pbx1",
                        conversation_id="evil",
                        source="evil.wav",
                        path="../../outside.mp3",
                        status="ready",
                        format="mp3",
                        content_type="audio/mpeg",
                        created_at=datetime.now(UTC),
                    )
                )
                evil = res.inserted_primary_key[0]  # type: ignore[index]
            r = await client.get(f"/api/v1/recordings/{evil}", headers=auth(admin_t))
            assert r.status == 404 and b"secret" not in await r.read()

        async with runtime.engine.connect() as conn:
            plays = (
                await conn.execute(select(audit_log).where(audit_log.c.action == "recording.play"))
            ).all()
        # every request that sends audio is audited (refused ranges send none)
        who = [p.user_id for p in plays]
        assert all(p.entity == "recording" and p.entity_id == str(rec_id) for p in plays)
        assert who.count(anna) == 3 and who.count(boss) == 2
        assert any(p.details.get("range") == "bytes=100-1099" for p in plays)
        assert who.count(admin) == 1
