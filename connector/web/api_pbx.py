"""``GET /api/v1/pbx``: the connection status of every PBX (admins and supervisors).

Each entry is what the PBX's adapter reports in ``runtime.pbx_status`` (for Asterisk:
``state``, ``connected``, ``connected_since``, ``events_per_second``, ``messages_total``,
``protocol_errors``, ``reconnects``, ``resyncs``, ``auth_failed``, ``last_error``...), plus the
configured PBXs that have not reported yet (``state: "unknown"``). Secrets are never part of it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.web.auth import require_role
from connector.web.keys import RUNTIME

__all__ = ["list_pbx", "setup"]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


async def list_pbx(request: web.Request) -> web.StreamResponse:
    """Connection status of every PBX (admins and supervisors)."""
    require_role(request, "admin", "supervisor")
    runtime = request.app[RUNTIME]
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for pbx in runtime.settings.pbx:
        status = runtime.pbx_status.get(pbx.name)
        entry: dict[str, Any] = {
            "name": pbx.name,
            "type": pbx.type,
            "enabled": pbx.enabled,
            "host": pbx.host,
            "port": pbx.port,
            "state": "unknown" if pbx.enabled else "disabled",
            "connected": False,
        }
        if status:
            entry.update(_plain(dict(status)))
        items.append(entry)
        seen.add(pbx.name)
    for name, status in sorted(runtime.pbx_status.items()):
        if name not in seen:
            items.append({"name": name, **_plain(dict(status))})
    return web.json_response({"items": items})


def setup(app: web.Application) -> None:
    """Add ``GET /api/v1/pbx``."""
    app.router.add_get("/api/v1/pbx", list_pbx)
