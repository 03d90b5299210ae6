"""Contacts: CRUD, search and paging (``/api/v1/contacts``), and a contact's history.

Every person (agent, supervisor, admin) may read, create and edit contacts; deleting one needs
a supervisor or an admin. The history (``/api/v1/contacts/{id}/activities``) lists the calls
and notes the caller may see (see :mod:`connector.web.api_activities`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.web.api_access import json_ok, user_principal, visible_user_ids
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import (
    PAGE_QUERY,
    Field,
    page_params,
    parse_query,
    path_id,
    read_json,
    require_any,
)
from crm_sync import activities, contacts

__all__ = ["PARTY_BODY", "setup"]

_ID = Field("int", nullable=True, minimum=1)
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
CONTACT_BODY: dict[str, Field] = {
    **PARTY_BODY,
    "company_id": Field("int", nullable=True, minimum=1, description="the contact's company"),
}
SEARCH_QUERY: dict[str, Field] = {
    "q": Field("str", max_length=200, description="name contains (case-insensitive)"),
    "phone": Field("str", max_length=64, description="a phone number in any format"),
    "tag": Field("str", max_length=200, description="has this tag"),
    "responsible_id": Field("int", minimum=1, description="responsible user id"),
    **PAGE_QUERY,
}
CONTACT_QUERY: dict[str, Field] = {
    **SEARCH_QUERY,
    "company_id": Field("int", minimum=1, description="works for this company"),
}
HISTORY_QUERY: dict[str, Field] = {
    "kind": Field("str", choices=activities.ACTIVITY_KINDS, description="call or note"),
    **PAGE_QUERY,
}


def _region(request: web.Request) -> str:
    return request.app[RUNTIME].settings.storage.default_region


async def list_contacts(request: web.Request) -> web.Response:
    """Search contacts by name, phone, tag, company or responsible user, a page at a time."""
    user_principal(request)
    query = parse_query(request, CONTACT_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await contacts.list_contacts(
            conn,
            name=query.get("q"),
            phone=query.get("phone"),
            tag=query.get("tag"),
            company_id=query.get("company_id"),
            responsible_user_id=query.get("responsible_id"),
            region=_region(request),
            limit=limit,
            offset=offset,
        )
    return json_ok(page.to_dict())


async def create_contact(request: web.Request) -> web.Response:
    """Create a contact."""
    who = user_principal(request)
    body = await read_json(request, CONTACT_BODY)
    async with request.app[RUNTIME].engine.begin() as conn:
        contact = await contacts.create_contact(
            conn, body, user_id=who.user_id, region=_region(request)
        )
    return json_ok(contact.to_dict(), status=201)


async def get_contact(request: web.Request) -> web.Response:
    """One contact with its phones."""
    user_principal(request)
    contact_id = path_id(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        contact = await contacts.get_contact(conn, contact_id)
    return json_ok(contact.to_dict())


async def update_contact(request: web.Request) -> web.Response:
    """Change the given fields of a contact (lists given replace the old ones)."""
    who = user_principal(request)
    contact_id = path_id(request)
    body = await read_json(request, CONTACT_BODY, partial=True)
    require_any(body)
    async with request.app[RUNTIME].engine.begin() as conn:
        contact = await contacts.update_contact(
            conn, contact_id, body, user_id=who.user_id, region=_region(request)
        )
    return json_ok(contact.to_dict())


async def delete_contact(request: web.Request) -> web.Response:
    """Delete a contact (its calls and tasks stay, unlinked)."""
    who = user_principal(request, "supervisor", "admin")
    contact_id = path_id(request)
    async with request.app[RUNTIME].engine.begin() as conn:
        await contacts.delete_contact(conn, contact_id, user_id=who.user_id)
    return web.Response(status=204)


async def party_history(request: web.Request, **link: Any) -> web.Response:
    """A page of the activities linked to a contact or company that the caller may see.

    ``link`` is ``contact_id=...`` or ``company_id=...``; 404 when that does not exist.
    """
    who = user_principal(request)
    query = parse_query(request, HISTORY_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        if "contact_id" in link:
            await contacts.get_contact(conn, link["contact_id"])
        else:
            await contacts.get_company(conn, link["company_id"])
        ids = await visible_user_ids(conn, who)
        page = await activities.list_activities(
            conn, user_ids=ids, kind=query.get("kind"), limit=limit, offset=offset, **link
        )
    return json_ok(page.to_dict())


async def contact_activities(request: web.Request) -> web.Response:
    """The contact's history: calls and notes, newest first (those the caller may see)."""
    return await party_history(request, contact_id=path_id(request))


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/contacts",
        list_contacts,
        "Search contacts",
        "contacts",
        query=CONTACT_QUERY,
    ),
    ApiRoute(
        "POST",
        "/api/v1/contacts",
        create_contact,
        "Create a contact",
        "contacts",
        body=CONTACT_BODY,
        status=201,
    ),
    ApiRoute("GET", "/api/v1/contacts/{id}", get_contact, "One contact", "contacts"),
    ApiRoute(
        "PATCH",
        "/api/v1/contacts/{id}",
        update_contact,
        "Change a contact",
        "contacts",
        body=CONTACT_BODY,
        partial=True,
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/contacts/{id}",
        delete_contact,
        "Delete a contact",
        "contacts",
        roles=("supervisor", "admin"),
        status=204,
    ),
    ApiRoute(
        "GET",
        "/api/v1/contacts/{id}/activities",
        contact_activities,
        "The contact's calls and notes",
        "contacts",
        query=HISTORY_QUERY,
    ),
]


def setup(app: web.Application) -> None:
    """Add the contact routes."""
    add_routes(app, ROUTES)
