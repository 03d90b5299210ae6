"""Companies: CRUD, search and paging (``/api/v1/companies``), and a company's history.

The same rules as contacts: everyone reads, creates and edits; supervisors and admins delete.
The handler bodies are shared with contacts (:mod:`connector.web.party_routes`).
"""

from __future__ import annotations

from aiohttp import web

from connector.web import party_routes as party
from connector.web.openapi import add_routes
from connector.web.validation import path_id
from crm_sync import contacts

__all__ = ["setup"]

COMPANY_BODY = party.PARTY_BODY
COMPANY_QUERY = party.SEARCH_QUERY


async def list_companies(request: web.Request) -> web.Response:
    """Search companies by name, phone, tag or responsible user, a page at a time."""
    return await party.list_parties(request, COMPANY_QUERY, contacts.list_companies)


async def create_company(request: web.Request) -> web.Response:
    """Create a company."""
    return await party.create_party(request, COMPANY_BODY, contacts.create_company)


async def get_company(request: web.Request) -> web.Response:
    """One company with its phones."""
    return await party.get_party(request, contacts.get_company)


async def update_company(request: web.Request) -> web.Response:
    """Change the given fields of a company."""
    return await party.update_party(request, COMPANY_BODY, contacts.update_company)


async def delete_company(request: web.Request) -> web.Response:
    """Delete a company (its contacts stay, without a company)."""
    return await party.delete_party(request, contacts.delete_company)


async def company_activities(request: web.Request) -> web.Response:
    """The company's calls and notes, newest first (those the caller may see)."""
    return await party.party_history(request, company_id=path_id(request))


ROUTES = party.party_routes(
    "company",
    "companies",
    body=COMPANY_BODY,
    query=COMPANY_QUERY,
    handlers=(
        list_companies,
        create_company,
        get_company,
        update_company,
        delete_company,
        company_activities,
    ),
)


def setup(app: web.Application) -> None:
    """Add the company routes."""
    add_routes(app, ROUTES)
