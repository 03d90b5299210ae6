"""``GET /api/v1/route``: responsible manager's extension, fallback chain, PBX tokens, CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.app import Runtime
from crm_sync.auth import issue_token, resolve_token
from crm_sync.contacts import create_contact
from crm_sync.db import open_engine
from crm_sync.schema import extensions
from tests.integration.calllog_support import (
    add_user,
    open_runtime,
    replay_into,
    web_client,
    writer_running,
)

SECTIONS: dict[str, Any] = {
    "pbx": [{"name": "pbx1"}, {"name": "pbx2"}],
    "calllog": {"fallback_team": "sales", "fallback_user": "duty"},
}


async def pbx_token(runtime: Runtime, pbx: str) -> str:
    async with runtime.engine.begin() as conn:
        _id, token = await issue_token(conn, None, scope="pbx", pbx=pbx)
    return token


async def test_routing_responsible_fallbacks_and_formats(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        anna, agent_t = await add_user(runtime, "anna", "agent", "sales", ("101",))
        vera, _ = await add_user(runtime, "vera", "agent", "sales", ("103",), pbx="pbx2")
        boss, _ = await add_user(runtime, "boss", "supervisor", "sales", ("150",))
        _admin, admin_t = await add_user(runtime, "root", "admin")
        async with runtime.engine.begin() as conn:
            await create_contact(
                conn,
                {"name": "Ivan Petrov", "phones": ["+79161234567"], "responsible_user_id": anna},
            )
            await create_contact(
                conn, {"name": "Olga", "phones": ["+79031112233"], "responsible_user_id": vera}
            )
        token = await pbx_token(runtime, "pbx1")
        token2 = await pbx_token(runtime, "pbx2")
        h = {"Authorization": f"Bearer {token}"}
        async with web_client(runtime) as client:
            # any spelling of Ivan's number reaches his manager's extension on this PBX
            for number in ("89161234567", "+7 (916) 123-45-67", "9161234567"):
                r = await client.get(
                    "/api/v1/route",
                    params={"number": number, "did": "74951234500", "format": "text"},
                    headers=h,
                )
                assert r.status == 200 and r.content_type == "text/plain"
                assert await r.text() == "101"
            r = await client.get("/api/v1/route", params={"number": "89161234567"}, headers=h)
            body = await r.json()
            assert body["extension"] == "101" and body["step"] == "responsible"
            assert body["user_id"] == anna and body["name"] == "Ivan Petrov"
            assert body["pbx"] == "pbx1"

            # Olga's manager has no extension on pbx1: the team's supervisor gets her
            r = await client.get("/api/v1/route", params={"number": "+79031112233"}, headers=h)
            body = await r.json()
            assert body["extension"] == "150" and body["user_id"] == boss
            assert body["step"] == "team" and "no extension on pbx1" in body["reason"]
            # ... while pbx2 reaches her manager directly
            r = await client.get(
                "/api/v1/route",
                params={"number": "+79031112233", "format": "text"},
                headers={"Authorization": f"Bearer {token2}"},
            )
            assert await r.text() == "103"

            # nobody fits anywhere: an empty answer, with the reason in JSON
            r = await client.get(
                "/api/v1/route",
                params={"number": "+79031112233", "format": "text"},
                headers={"Authorization": f"Bearer {await pbx_token(runtime, 'pbx3')}"},
            )
            assert r.status == 200 and await r.text() == ""

            # hidden caller: no contact, the chain still answers
            r = await client.get("/api/v1/route", params={"number": "anonymous"}, headers=h)
            assert (await r.json())["step"] == "team"

            # admins may ask for a named PBX; agents may not ask at all
            r = await client.get(
                "/api/v1/route",
                params={"number": "89161234567", "pbx": "pbx1"},
                headers={"Authorization": f"Bearer {admin_t}"},
            )
            assert (await r.json())["extension"] == "101"
            bad = [
                ({"number": "1"}, {"Authorization": f"Bearer {agent_t}"}, 403),
                ({"number": "1"}, {}, 401),
                ({"number": "1"}, {"Authorization": f"Bearer {admin_t}"}, 400),
                ({"number": "1", "pbx": "pbx2"}, h, 403),
                ({}, h, 400),
                ({"number": "1" * 100}, h, 400),
                ({"number": "1", "format": "xml"}, h, 400),
                ({"number": "1", "evil": "1"}, h, 400),
            ]
            for params, headers, status in bad:
                r = await client.get("/api/v1/route", params=params, headers=headers)
                assert r.status == status, (params, await r.text())


async def test_routing_last_agent_and_default_user(tmp_path: Path) -> None:
    async with open_runtime(
        tmp_path,
        pbx=[{"name": "pbx1"}],
        calllog={"fallback_chain": ["last_agent", "default_user"], "fallback_user": "duty"},
    ) as runtime:
        await add_user(runtime, "anna", "agent", "sales", ("101",))
        duty, _ = await add_user(runtime, "duty", "agent", "desk")
        async with runtime.engine.begin() as conn:  # an extension valid on every PBX
            await conn.execute(extensions.insert().values(user_id=duty, pbx="*", extension="199"))
        await runtime.reload_directory()
        async with writer_running(runtime) as writer:
            await replay_into(
                runtime, writer, ["inbound_answered"], datetime(2026, 11, 28, 21, tzinfo=UTC)
            )
        h = {"Authorization": f"Bearer {await pbx_token(runtime, 'pbx1')}"}
        async with web_client(runtime) as client:
            r = await client.get("/api/v1/route", params={"number": "89161234567"}, headers=h)
            body = await r.json()
            assert (body["extension"], body["step"]) == ("101", "last_agent")
            r = await client.get("/api/v1/route", params={"number": "+74951112233"}, headers=h)
            body = await r.json()
            assert (body["extension"], body["step"]) == ("199", "default_user")


def test_routing_cli_prints_a_pbx_token(tmp_path: Path) -> None:
    config = tmp_path / "connector.toml"
    config.write_text('[storage]\ndata_dir = "data"\n\n[[pbx]]\nname = "pbx1"\n')
    run = [sys.executable, "-m", "connector.cli", "--config", str(config), "pbx-token"]
    out = subprocess.run([*run, "pbx1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("vc_") and "\n" not in token
    refused = subprocess.run([*run, "nope"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "no PBX named 'nope'" in refused.stderr

    async def check() -> None:
        engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'connector.db'}")
        try:
            async with engine.connect() as conn:
                who = await resolve_token(conn, token)
        finally:
            await engine.dispose()
        assert who is not None and who.role == "pbx" and who.pbx == "pbx1"

    asyncio.run(check())
