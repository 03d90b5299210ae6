"""Caller lookup over HTTP: ``GET /api/v1/lookup?number=...``.

Who owns a number written any way (``+7 916 123-45-67``, ``8 (916) 1234567``, ``9161234567``,
``0049...``), ranked, with the explanation (variants tried, what each step found, why nothing
matched). People of every role and PBX-scoped tokens (a dialplan asking "who is this?") may ask.
"""

from __future__ import annotations

from aiohttp import web

from connector.web.api_access import ALL_ROLES, json_ok
from connector.web.auth import require_role
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, parse_query
from crm_sync.lookup import lookup as find_owner

__all__ = ["setup"]

LOOKUP_QUERY = {
    "number": Field("str", required=True, max_length=64, description="the number, in any format"),
    "region": Field(
        "str",
        max_length=2,
        min_length=2,
        description="default country for national numbers (default: storage.default_region)",
    ),
    "limit": Field("int", minimum=1, maximum=100, description="most matches returned (10)"),
}


async def lookup(request: web.Request) -> web.Response:
    """Who owns a number: contacts and companies ranked, with the explanation."""
    require_role(request, *ALL_ROLES)
    query = parse_query(request, LOOKUP_QUERY)
    runtime = request.app[RUNTIME]
    region = (query.get("region") or runtime.settings.storage.default_region).upper()
    async with runtime.engine.connect() as conn:
        result = await find_owner(conn, query["number"], region, query.get("limit") or 10)
    return json_ok(result.to_dict())


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/lookup",
        lookup,
        "Who owns a phone number (ranked, with the explanation)",
        "lookup",
        query=LOOKUP_QUERY,
        roles=ALL_ROLES,
    ),
]


def setup(app: web.Application) -> None:
    """Add the lookup route."""
    add_routes(app, ROUTES)
