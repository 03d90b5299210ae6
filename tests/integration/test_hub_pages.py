"""The console's pages and static files over real HTTP, and the hub URL the console asks for."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from connector.web.app import create_app
from tests.integration.hub_env import quick_card, running_hub


async def test_pages_static_files_and_hub_info(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with TestClient(TestServer(create_app(env.runtime))) as client:
            res = await client.get("/")
            assert res.status == 200 and "text/html" in res.headers["Content-Type"]
            assert "script-src 'self'" in res.headers["Content-Security-Policy"]
            assert 'src="/static/app.js"' in await res.text()
            res = await client.get("/login")
            assert res.status == 200 and "login-form" in await res.text()
            files = [("app.js", "javascript"), ("app.css", "css"), ("favicon.svg", "svg")]
            for name, kind in files:
                res = await client.get(f"/static/{name}")
                assert res.status == 200 and kind in res.headers["Content-Type"], name
            for bad in ("/static/../pages.py", "/static/nope.js", "/static/%2e%2e/pages.py"):
                res = await client.get(bad)
                assert res.status == 404, bad
            res = await client.get("/api/v1/console")
            assert await res.json() == {"product": "VoIP connector", "demo": False}

            res = await client.get("/api/v1/hub")
            assert res.status == 401
            res = await client.get(
                "/api/v1/hub", headers={"Authorization": f"Bearer {env.tokens['anna']}"}
            )
            info = await res.json()
            assert info["url"] == f"ws://127.0.0.1:{env.hub.bound_port}/ws"
            assert info["listening"] and info["connections"] == 0
            assert info["lookup_budget_ms"] == 150
