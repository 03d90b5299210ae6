"""``GET /api/v1/route?number=...&did=...``: which extension should get this caller.

Asked by a PBX dialplan (Asterisk ``CURL()``) or a cloud PBX before it rings anybody. The answer
is the responsible manager's extension on the asking PBX, or the next step of the fallback chain
(see :mod:`crm_sync.routing`), with the reason. ``format=text`` answers only the extension as
plain text (empty when nobody fits), which is what a dialplan wants; JSON otherwise.

Authentication: a PBX-scoped token (``connector pbx-token PBX``), whose PBX decides which
extensions count. Admins may ask too, naming the PBX with ``pbx=``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from connector.web.auth import principal
from connector.web.errors import bad_request, forbidden
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, parse_query
from crm_sync.routing import route

logger = logging.getLogger(__name__)

__all__ = ["setup"]

QUERY = {
    "number": Field("str", required=True, max_length=64, description="the caller's number"),
    "did": Field("str", max_length=64, description="the number the caller dialled"),
    "format": Field("str", choices=("json", "text"), description="text: only the extension"),
    "pbx": Field("str", max_length=100, description="admins only: which PBX asks"),
}


async def get_route(request: web.Request) -> web.Response:
    """Answer the extension for a caller."""
    who = principal(request)
    query = parse_query(request, QUERY)
    if who.role == "pbx":
        pbx = who.pbx or ""
        if query.get("pbx") and query["pbx"] != pbx:
            raise forbidden(f"this token belongs to PBX {pbx}")
    elif who.role == "admin":
        pbx = query.get("pbx") or ""
        if not pbx:
            raise bad_request("admins must name the PBX with pbx=", "pbx")
    else:
        raise forbidden("routing needs a PBX token (connector pbx-token PBX)")
    runtime = request.app[RUNTIME]
    cfg = runtime.settings.calllog
    async with runtime.engine.connect() as conn:
        decision = await route(
            conn,
            number=query["number"],
            pbx=pbx,
            region=runtime.settings.storage.default_region,
            chain=cfg.fallback_chain,
            fallback_team=cfg.fallback_team,
            fallback_user=cfg.fallback_user,
        )
    logger.info(
        "route %s (did %s) on %s -> %r: %s",
        query["number"],
        query.get("did", ""),
        pbx,
        decision.extension,
        decision.reason,
    )
    if query.get("format") == "text":
        return web.Response(text=decision.extension, content_type="text/plain")
    body = decision.to_dict()
    body.update(number=query["number"], did=query.get("did", ""), pbx=pbx)
    return web.json_response(body)


def setup(app: web.Application) -> None:
    """Add the routing endpoint."""
    add_routes(
        app,
        [
            ApiRoute(
                "GET",
                "/api/v1/route",
                get_route,
                "Which extension should get this caller (responsible manager, fallback chain)",
                "routing",
                query=QUERY,
                roles=("pbx", "admin"),
                description=__doc__ or "",
            )
        ],
    )
