"""The agent console's pages and static files, and where the console finds the hub.

``GET /`` is the console and ``GET /login`` its login page (both public: the page itself asks
``/api/v1/me`` and goes to the login page without a valid session). ``GET /static/{file}`` serves
``connector/web/static`` (public, no directory listing, nothing outside that directory).
``GET /api/v1/console`` (public) tells the login page whether this is a demo and, only then, the
demo logins. ``GET /api/v1/hub`` (signed in) gives the websocket URL of the screen-pop hub.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from connector.web.auth import principal, public
from connector.web.keys import RUNTIME

logger = logging.getLogger(__name__)

__all__ = ["STATIC_DIR", "setup"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {
    **_NO_CACHE,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
}
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


def _file(name: str) -> web.FileResponse:
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR not in path.parents or not path.is_file():
        raise web.HTTPNotFound(reason=f"no such file: {name[:80]}")
    headers = dict(_PAGE_HEADERS if path.suffix == ".html" else _NO_CACHE)
    headers["Content-Type"] = _TYPES.get(path.suffix, "application/octet-stream")
    return web.FileResponse(path, headers=headers)


@public
async def console(request: web.Request) -> web.FileResponse:
    """The agent console (single page)."""
    return _file("index.html")


@public
async def login_page(request: web.Request) -> web.FileResponse:
    """The login page."""
    return _file("login.html")


@public
async def static(request: web.Request) -> web.FileResponse:
    """A file of the console (scripts, styles, icons)."""
    return _file(request.match_info["name"])


@public
async def console_info(request: web.Request) -> web.Response:
    """Public facts for the login page: product name, demo mode and the demo logins."""
    runtime = request.app[RUNTIME]
    info: dict[str, Any] = {"product": "VoIP connector", "demo": False}
    if runtime.settings.demo.enabled:
        info["demo"] = True
        info["demo_logins"] = runtime.extras.get("demo_logins", [])
    return web.json_response(info, headers=_NO_CACHE)


async def hub_info(request: web.Request) -> web.Response:
    """Where the console's websocket goes, and the hub's live numbers."""
    principal(request)
    runtime = request.app[RUNTIME]
    hub = runtime.extras.get("hub")
    if hub is None:
        return web.json_response(
            {"error": {"code": "unavailable", "message": "the hub is not running"}}, status=503
        )
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    return web.json_response(
        {
            "url": hub.public_url(request.host, secure),
            "heartbeat_seconds": runtime.settings.hub.heartbeat_seconds,
            "lookup_budget_ms": runtime.settings.hub.lookup_budget_ms,
            **hub.stats(),
        },
        headers=_NO_CACHE,
    )


def setup(app: web.Application) -> None:
    """Add the console routes."""
    app.router.add_get("/", console)
    app.router.add_get("/login", login_page)
    app.router.add_get("/static/{name:[A-Za-z0-9_.\\-/]+}", static)
    app.router.add_get("/api/v1/console", console_info)
    app.router.add_get("/api/v1/hub", hub_info)
