"""``GET /healthz`` and ``GET /metrics``.

``/healthz`` is public (load balancers and monitoring call it without a token) and reports:

* ``database``: reachable or not (a ``SELECT 1`` with a time limit);
* ``pbx``: one entry per configured or reporting PBX, from ``runtime.pbx_status`` (what each
  adapter publishes: ``state`` such as ``connected``, ``connecting``, ``auth_failed``,
  ``disconnected``, plus details like ``last_error``), with ``up`` derived from it. A PBX that
  is configured but has reported nothing yet shows ``state: "unknown"``.

The answer is ``status: "ok"`` (200) when the database answers and every PBX is up,
``"degraded"`` (still 200: the API works, a PBX does not) when some PBX is down or failed to
log in, and ``"unavailable"`` (503) when the database does not answer. ``?strict=1`` makes
``degraded`` a 503 too, for monitors that should page on a lost PBX.

``/metrics`` is the Prometheus text exposition of the process registry. It is public by
default (scrapers rarely carry tokens, and it holds counts, not data); with
``[server] metrics_public = false`` it needs an admin's API token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy import text

from connector.web.auth import public, token_from_request
from connector.web.errors import forbidden, unauthorized
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, parse_query
from crm_sync.auth import resolve_token

logger = logging.getLogger(__name__)

__all__ = ["HTTP_RESPONSES", "healthz", "metrics", "pbx_health", "setup"]

HTTP_RESPONSES = Counter(
    "connector_http_responses_total",
    "HTTP responses sent, by method, route pattern and status",
    ["method", "route", "status"],
)

#: States an adapter may report that mean "connected and logged in".
UP_STATES = frozenset({"connected", "up", "ok", "ready", "logged_in"})
DB_TIMEOUT_SECONDS = 5.0
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a status value (times as ISO 8601, unknown objects as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def pbx_health(configured: list[str], status: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-PBX health from the adapters' status dicts; ``up`` is derived from ``state``."""
    out: dict[str, Any] = {}
    for name in [*configured, *(n for n in status if n not in configured)]:
        entry = _plain(dict(status.get(name) or {}))
        state = str(entry.get("state") or ("connected" if entry.get("connected") else "unknown"))
        entry["state"] = state
        entry["up"] = state in UP_STATES or entry.get("connected") is True
        if entry.get("lease") == "standby" and entry.get("lease_holder"):
            # several processes: another node holds this PBX; this one is healthy on standby
            entry["up"] = True
        out[name] = entry
    return out


async def _database_ok(request: web.Request) -> tuple[bool, str]:
    runtime = request.app[RUNTIME]

    async def ping() -> None:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), DB_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not reachable"; say which
        logger.warning("health check: database is not reachable: %s", exc)
        return False, f"{type(exc).__name__}: {exc!s:.200}"
    return True, ""


HEALTH_QUERY = {
    "strict": Field("bool", description="answer 503 also when a PBX is down (default false)")
}


@public
async def healthz(request: web.Request) -> web.Response:
    """Is the connector healthy: database reachable, and how each PBX connection is."""
    strict = bool(parse_query(request, HEALTH_QUERY).get("strict"))
    runtime = request.app[RUNTIME]
    db_ok, db_error = await _database_ok(request)
    configured = [p.name for p in runtime.settings.pbx if p.enabled]
    pbx = pbx_health(configured, runtime.pbx_status)
    all_up = all(p["up"] for p in pbx.values())
    if not db_ok:
        status, code = "unavailable", 503
    elif not all_up:
        status, code = "degraded", 503 if strict else 200
    else:
        status, code = "ok", 200
    body = {
        "status": status,
        "database": {"ok": db_ok, "error": db_error or None},
        "pbx": pbx,
        "uptime_seconds": round(time.time() - runtime.started_at, 1),
    }
    return web.json_response(body, status=code)


@public
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics in the text exposition format."""
    runtime = request.app[RUNTIME]
    if not runtime.settings.server.metrics_public:
        token = token_from_request(request)
        if token is None:
            raise unauthorized("metrics need an admin token: Authorization: Bearer <token>")
        async with runtime.engine.connect() as conn:
            who = await resolve_token(conn, token)
        if who is None:
            raise unauthorized("the token is unknown or revoked")
        if not who.is_admin:
            raise forbidden("metrics need the role admin")
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _count_response(request: web.Request, response: web.StreamResponse) -> None:
    """Count every response by route pattern (not raw path: the label set stays small), and
    log refused input (400, 409, 413, 429 at INFO; other 4xx at DEBUG)."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    pattern = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in STANDARD_METHODS else "OTHER"
    HTTP_RESPONSES.labels(method, pattern, str(response.status)).inc()
    if 400 <= response.status < 500:
        level = logging.INFO if response.status in (400, 409, 413, 429) else logging.DEBUG
        logger.log(level, "%s %s -> %d from %s", method, pattern, response.status, request.remote)


ROUTES = [
    ApiRoute(
        "GET",
        "/healthz",
        healthz,
        "Health: database reachable, per-PBX connection state (200 ok/degraded, 503)",
        "meta",
        query=HEALTH_QUERY,
        public=True,
        responses={503: "the database is not reachable (or, with strict=1, a PBX is down)"},
    ),
    ApiRoute(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (public unless server.metrics_public = false)",
        "meta",
        public=True,
    ),
]


def setup(app: web.Application) -> None:
    """Add /healthz, /metrics and the response counter."""
    add_routes(app, ROUTES)
    app.on_response_prepare.append(_count_response)
