"""The OpenAPI document matches the router; /healthz and /metrics over real HTTP."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from connector.web.openapi import API_ROUTES
from tests.integration.api_harness import api_world

EXPECTED_API = {
    ("/api/v1/auth/login", "POST"),
    ("/api/v1/auth/logout", "POST"),
    ("/api/v1/me", "GET"),
    ("/api/v1/tokens", "GET"),
    ("/api/v1/tokens", "POST"),
    ("/api/v1/tokens/{id}", "DELETE"),
    ("/api/v1/users", "GET"),
    ("/api/v1/users", "POST"),
    ("/api/v1/users/{id}", "GET"),
    ("/api/v1/users/{id}", "PATCH"),
    ("/api/v1/users/{id}", "DELETE"),
    ("/api/v1/users/{id}/extensions", "POST"),
    ("/api/v1/users/{id}/extensions/{pbx}/{extension}", "DELETE"),
    ("/api/v1/contacts", "GET"),
    ("/api/v1/contacts", "POST"),
    ("/api/v1/contacts/{id}", "GET"),
    ("/api/v1/contacts/{id}", "PATCH"),
    ("/api/v1/contacts/{id}", "DELETE"),
    ("/api/v1/contacts/{id}/activities", "GET"),
    ("/api/v1/companies", "GET"),
    ("/api/v1/companies", "POST"),
    ("/api/v1/companies/{id}", "GET"),
    ("/api/v1/companies/{id}", "PATCH"),
    ("/api/v1/companies/{id}", "DELETE"),
    ("/api/v1/companies/{id}/activities", "GET"),
    ("/api/v1/activities", "GET"),
    ("/api/v1/activities", "POST"),
    ("/api/v1/activities/{id}", "GET"),
    ("/api/v1/activities/{id}", "PATCH"),
    ("/api/v1/activities/{id}", "DELETE"),
    ("/api/v1/tasks", "GET"),
    ("/api/v1/tasks", "POST"),
    ("/api/v1/tasks/{id}", "GET"),
    ("/api/v1/tasks/{id}", "PATCH"),
    ("/api/v1/tasks/{id}", "DELETE"),
    ("/api/v1/tasks/{id}/close", "POST"),
    ("/api/v1/lookup", "GET"),
    ("/api/v1/openapi.json", "GET"),
    ("/healthz", "GET"),
    ("/metrics", "GET"),
}


async def test_openapi_document_matches_the_router(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        resp = await w.client.get("/api/v1/openapi.json")  # public: no token
        assert resp.status == 200
        doc = await resp.json()
        assert doc["openapi"].startswith("3.")
        documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
        app = w.client.server.app
        routed = set()
        for route in app.router.routes():
            path = route.resource.canonical if route.resource is not None else ""
            if route.method in ("HEAD", "OPTIONS", "*"):
                continue
            if path.startswith("/api/") or path in ("/healthz", "/metrics"):
                routed.add((path, route.method))
        assert documented == routed
        assert EXPECTED_API <= documented
        op_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
        assert len(op_ids) == len(set(op_ids))
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                assert op["summary"], (method, path)
                assert op["responses"], (method, path)
                for name in [s[1:-1] for s in path.split("/") if s.startswith("{")]:
                    params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                    assert name in params, (method, path, name)
        # every endpoint of the table is described with its request shapes
        table = {(r.path, r.method): r for r in app[API_ROUTES]}
        assert EXPECTED_API <= set(table)
        create = doc["paths"]["/api/v1/contacts"]["post"]
        shape = create["requestBody"]["content"]["application/json"]["schema"]
        assert shape["additionalProperties"] is False and shape["required"] == ["name"]
        listing = doc["paths"]["/api/v1/contacts"]["get"]
        assert {p["name"] for p in listing["parameters"]} >= {"q", "phone", "limit", "offset"}
        assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
        assert doc["paths"]["/api/v1/users"]["post"]["x-roles"] == ["admin"]


async def test_healthz_reports_database_and_each_pbx(tmp_path: Path) -> None:
    pbx = [{"name": "main", "secret": "s"}, {"name": "branch", "secret": "s"}]
    async with api_world(tmp_path, pbx=pbx) as w:
        status, data = await w.call(None, "GET", "/healthz")
        assert status == 200 and data["database"]["ok"] is True
        assert data["status"] == "degraded"  # configured PBXs have reported nothing yet
        assert data["pbx"]["main"]["state"] == "unknown" and data["pbx"]["main"]["up"] is False
        w.runtime.pbx_status["main"] = {
            "state": "connected",
            "connected_since": "2026-11-28T12:00:00+00:00",
        }
        w.runtime.pbx_status["branch"] = {
            "state": "auth_failed",
            "last_error": "Authentication failed for user connector",
            "reconnects": 3,
        }
        status, data = await w.call(None, "GET", "/healthz")
        assert status == 200 and data["status"] == "degraded"
        assert data["pbx"]["main"]["up"] is True
        branch = data["pbx"]["branch"]
        assert branch["up"] is False and branch["state"] == "auth_failed"
        assert "Authentication failed" in branch["last_error"]
        status, data = await w.call(None, "GET", "/healthz?strict=1")
        assert status == 503 and data["status"] == "degraded"
        w.runtime.pbx_status["branch"] = {"state": "connected"}
        status, data = await w.call(None, "GET", "/healthz?strict=true")
        assert status == 200 and data["status"] == "ok"
        status, data = await w.call(None, "GET", "/healthz?strict=perhaps")
        assert status == 400 and data["error"]["field"] == "strict"


async def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        assert (await w.call(None, "GET", "/healthz"))[0] == 200
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a file where a directory should be")
        good = w.runtime.engine
        w.runtime.engine = create_async_engine(f"sqlite+aiosqlite:///{blocker}/db.sqlite")
        try:
            status, data = await w.call(None, "GET", "/healthz")
            assert status == 503 and data["status"] == "unavailable"
            assert data["database"]["ok"] is False and data["database"]["error"]
            # the API says so cleanly too, without a token check crashing
            status, data = await w.call("admin", "GET", "/api/v1/me")
            assert status == 503 and data["error"]["code"] == "unavailable"
        finally:
            await w.runtime.engine.dispose()
            w.runtime.engine = good


async def test_metrics_public_by_default(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        await w.call("agent_a", "GET", "/api/v1/contacts?limit=abc")
        resp = await w.client.get("/metrics")
        assert resp.status == 200
        assert resp.content_type.startswith("text/plain")
        text = await resp.text()
        assert "connector_http_responses_total{" in text
        assert 'route="/api/v1/contacts",status="400"' in text


async def test_metrics_need_an_admin_when_not_public(tmp_path: Path) -> None:
    async with api_world(tmp_path, server={"metrics_public": False}) as w:
        assert (await w.call(None, "GET", "/metrics"))[0] == 401
        assert (await w.call(None, "GET", "/metrics", headers={"Authorization": "Bearer vc_x"}))[
            0
        ] == 401
        assert (await w.call("agent_a", "GET", "/metrics"))[0] == 403
        status, text = await w.call("admin", "GET", "/metrics")
        assert status == 200 and "connector_http_responses_total" in text


async def test_head_requests_are_answered(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        async with w.client.head("/healthz") as resp:
            assert resp.status == 200
        async with w.client.head("/api/v1/contacts", headers=w.auth("agent_a")) as resp:
            assert resp.status == 200
        async with w.client.head("/api/v1/contacts") as resp:
            assert resp.status == 401
