"""What the contact and company routes share: request shapes, handler bodies, the route table.

Contacts (:mod:`connector.web.api_contacts`) and companies (:mod:`connector.web.api_companies`)
are both "parties" a call or note can be linked to, with the same fields (a contact adds
``company_id``) and the same rules: every person reads, creates and edits; supervisors and
admins delete. Each module keeps its own documented handlers, which call the bodies here with
the matching :mod:`crm_sync.contacts` function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.web.api_access import json_ok, user_principal, visible_user_ids
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, Handler
from connector.web.validation import (
    PAGE_QUERY,
    Field,
    Schema,
    page_params,
    parse_query,
    path_id,
    read_json,
    require_any,
)
from crm_sync import activities, contacts

__all__ = [
    "HISTORY_QUERY",
    "PARTY_BODY",
    "SEARCH_QUERY",
    "create_party",
    "delete_party",
    "get_party",
    "list_parties",
    "party_history",
    "party_routes",
    "update_party",
]

#: Fields a contact and a company share; the CRM core checks the values themselves.
PARTY_BODY: dict[str, Field] = {
    "name": Field("str", required=True, max_length=300, min_length=1),
    "responsible_user_id": Field(
        "int", nullable=True, minimum=1, description="the responsible manager's user id"
    ),
    "phones": Field(
        "list",
        items=Field("any", description='"+7 916 123-45-67" or {"number": "...", "label": "..."}'),
        max_items=50,
        description="phone numbers in any format; a list given on update replaces the old one",
    ),
    "emails": Field("list", items=Field("str", max_length=200), max_items=50),
    "tags": Field("list", items=Field("str", max_length=200), max_items=50),
    "notes": Field("str", max_length=20_000, nullable=True),
}
SEARCH_QUERY: dict[str, Field] = {
    "q": Field("str", max_length=200, description="name contains (case-insensitive)"),
    "phone": Field("str", max_length=64, description="a phone number in any format"),
    "tag": Field("str", max_length=200, description="has this tag"),
    "responsible_id": Field("int", minimum=1, description="responsible user id"),
    **PAGE_QUERY,
}
HISTORY_QUERY: dict[str, Field] = {
    "kind": Field("str", choices=activities.ACTIVITY_KINDS, description="call or note"),
    **PAGE_QUERY,
}

#: A :mod:`crm_sync.contacts` function; each handler body below names the call it makes.
CoreCall = Callable[..., Awaitable[Any]]


def _region(request: web.Request) -> str:
    return request.app[RUNTIME].settings.storage.default_region


async def list_parties(
    request: web.Request, schema: Schema, lister: CoreCall, *filters: str
) -> web.Response:
    """Search with ``lister`` (``list_contacts``/``list_companies``), a page at a time.

    ``filters`` are query keys passed through under the same name (a contact's ``company_id``).
    """
    user_principal(request)
    query = parse_query(request, schema)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await lister(
            conn,
            name=query.get("q"),
            phone=query.get("phone"),
            tag=query.get("tag"),
            responsible_user_id=query.get("responsible_id"),
            region=_region(request),
            limit=limit,
            offset=offset,
            **{key: query.get(key) for key in filters},
        )
    return json_ok(page.to_dict())


async def create_party(request: web.Request, schema: Schema, creator: CoreCall) -> web.Response:
    """Create with ``creator`` (``create_contact``/``create_company``) from the JSON body."""
    who = user_principal(request)
    body = await read_json(request, schema)
    async with request.app[RUNTIME].engine.begin() as conn:
        party = await creator(conn, body, user_id=who.user_id, region=_region(request))
    return json_ok(party.to_dict(), status=201)


async def get_party(request: web.Request, getter: CoreCall) -> web.Response:
    """The one with the path's id, read with ``getter`` (``get_contact``/``get_company``)."""
    user_principal(request)
    party_id = path_id(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        party = await getter(conn, party_id)
    return json_ok(party.to_dict())


async def update_party(request: web.Request, schema: Schema, updater: CoreCall) -> web.Response:
    """Change the given fields with ``updater`` (``update_contact``/``update_company``)."""
    who = user_principal(request)
    party_id = path_id(request)
    body = await read_json(request, schema, partial=True)
    require_any(body)
    async with request.app[RUNTIME].engine.begin() as conn:
        party = await updater(conn, party_id, body, user_id=who.user_id, region=_region(request))
    return json_ok(party.to_dict())


async def delete_party(request: web.Request, deleter: CoreCall) -> web.Response:
    """Delete with ``deleter`` (``delete_contact``/``delete_company``); supervisors and admins."""
    who = user_principal(request, "supervisor", "admin")
    party_id = path_id(request)
    async with request.app[RUNTIME].engine.begin() as conn:
        await deleter(conn, party_id, user_id=who.user_id)
    return web.Response(status=204)


async def _require_party(conn: AsyncConnection, link: dict[str, Any]) -> None:
    if "contact_id" in link:
        await contacts.get_contact(conn, link["contact_id"])
    else:
        await contacts.get_company(conn, link["company_id"])


async def party_history(request: web.Request, **link: Any) -> web.Response:
    """A page of the activities linked to a contact or company that the caller may see.

    ``link`` is ``contact_id=...`` or ``company_id=...``; 404 when that does not exist.
    """
    who = user_principal(request)
    query = parse_query(request, HISTORY_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        await _require_party(conn, link)
        ids = await visible_user_ids(conn, who)
        page = await activities.list_activities(
            conn, user_ids=ids, kind=query.get("kind"), limit=limit, offset=offset, **link
        )
    return json_ok(page.to_dict())


def party_routes(
    one: str,
    many: str,
    *,
    body: Schema,
    query: Schema,
    handlers: tuple[Handler, Handler, Handler, Handler, Handler, Handler],
) -> list[ApiRoute]:
    """The route table for ``/api/v1/{many}``, ``one`` being the singular (``contact``).

    ``handlers``: list, create, get, update, delete, history.
    """
    list_h, create_h, get_h, update_h, delete_h, history_h = handlers
    base = f"/api/v1/{many}"
    return [
        ApiRoute("GET", base, list_h, f"Search {many}", many, query=query),
        ApiRoute("POST", base, create_h, f"Create a {one}", many, body=body, status=201),
        ApiRoute("GET", f"{base}/{{id}}", get_h, f"One {one}", many),
        ApiRoute(
            "PATCH", f"{base}/{{id}}", update_h, f"Change a {one}", many, body=body, partial=True
        ),
        ApiRoute(
            "DELETE",
            f"{base}/{{id}}",
            delete_h,
            f"Delete a {one}",
            many,
            roles=("supervisor", "admin"),
            status=204,
        ),
        ApiRoute(
            "GET",
            f"{base}/{{id}}/activities",
            history_h,
            f"The {one}'s calls and notes",
            many,
            query=HISTORY_QUERY,
        ),
    ]
