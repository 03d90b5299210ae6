"""Companies: CRUD, search and paging (``/api/v1/companies``), and a company's history.

The same rules as contacts: everyone reads, creates and edits; supervisors and admins delete.
"""

from __future__ import annotations

from aiohttp import web

from connector.web.api_access import json_ok, user_principal
from connector.web.api_contacts import HISTORY_QUERY, PARTY_BODY, SEARCH_QUERY, party_history
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import page_params, parse_query, path_id, read_json, require_any
from crm_sync import contacts

__all__ = ["setup"]

COMPANY_BODY = PARTY_BODY
COMPANY_QUERY = SEARCH_QUERY


def _region(request: web.Request) -> str:
    return request.app[RUNTIME].settings.storage.default_region


async def list_companies(request: web.Request) -> web.Response:
    """Search companies by name, phone, tag or responsible user, a page at a time."""
    user_principal(request)
    query = parse_query(request, COMPANY_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await contacts.list_companies(
            conn,
            name=query.get("q"),
            phone=query.get("phone"),
            tag=query.get("tag"),
            responsible_user_id=query.get("responsible_id"),
            region=_region(request),
            limit=limit,
            offset=offset,
        )
    return json_ok(page.to_dict())


async def create_company(request: web.Request) -> web.Response:
    """Create a company."""
    who = user_principal(request)
    body = await read_json(request, COMPANY_BODY)
    async with request.app[RUNTIME].engine.begin() as conn:
        company = await contacts.create_company(
            conn, body, user_id=who.user_id, region=_region(request)
        )
    return json_ok(company.to_dict(), status=201)


async def get_company(request: web.Request) -> web.Response:
    """One company with its phones."""
    user_principal(request)
    company_id = path_id(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        company = await contacts.get_company(conn, company_id)
    return json_ok(company.to_dict())


async def update_company(request: web.Request) -> web.Response:
    """Change the given fields of a company."""
    who = user_principal(request)
    company_id = path_id(request)
    body = await read_json(request, COMPANY_BODY, partial=True)
    require_any(body)
    async with request.app[RUNTIME].engine.begin() as conn:
        company = await contacts.update_company(
            conn, company_id, body, user_id=who.user_id, region=_region(request)
        )
    return json_ok(company.to_dict())


async def delete_company(request: web.Request) -> web.Response:
    """Delete a company (its contacts stay, without a company)."""
    who = user_principal(request, "supervisor", "admin")
    company_id = path_id(request)
    async with request.app[RUNTIME].engine.begin() as conn:
        await contacts.delete_company(conn, company_id, user_id=who.user_id)
    return web.Response(status=204)


async def company_activities(request: web.Request) -> web.Response:
    """The company's calls and notes, newest first (those the caller may see)."""
    return await party_history(request, company_id=path_id(request))


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/companies",
        list_companies,
        "Search companies",
        "companies",
        query=COMPANY_QUERY,
    ),
    ApiRoute(
        "POST",
        "/api/v1/companies",
        create_company,
        "Create a company",
        "companies",
        body=COMPANY_BODY,
        status=201,
    ),
    ApiRoute("GET", "/api/v1/companies/{id}", get_company, "One company", "companies"),
    ApiRoute(
        "PATCH",
        "/api/v1/companies/{id}",
        update_company,
        "Change a company",
        "companies",
        body=COMPANY_BODY,
        partial=True,
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/companies/{id}",
        delete_company,
        "Delete a company",
        "companies",
        roles=("supervisor", "admin"),
        status=204,
    ),
    ApiRoute(
        "GET",
        "/api/v1/companies/{id}/activities",
        company_activities,
        "The company's calls and notes",
        "companies",
        query=HISTORY_QUERY,
    ),
]


def setup(app: web.Application) -> None:
    """Add the company routes."""
    add_routes(app, ROUTES)
