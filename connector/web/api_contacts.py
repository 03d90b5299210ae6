"""Contacts: CRUD, search and paging (``/api/v1/contacts``), and a contact's history.

Every person (agent, supervisor, admin) may read, create and edit contacts; deleting one needs
a supervisor or an admin. The history (``/api/v1/contacts/{id}/activities``) lists the calls
and notes the caller may see (see :mod:`connector.web.api_activities`). The handler bodies are
shared with companies (:mod:`connector.web.party_routes`).
"""

from __future__ import annotations

from aiohttp import web

from connector.web import party_routes as party
from connector.web.openapi import add_routes
from connector.web.validation import Field, path_id
from crm_sync import contacts

__all__ = ["setup"]

CONTACT_BODY: dict[str, Field] = {
    **party.PARTY_BODY,
    "company_id": Field("int", nullable=True, minimum=1, description="the contact's company"),
}
CONTACT_QUERY: dict[str, Field] = {
    **party.SEARCH_QUERY,
    "company_id": Field("int", minimum=1, description="works for this company"),
}


async def list_contacts(request: web.Request) -> web.Response:
    """Search contacts by name, phone, tag, company or responsible user, a page at a time."""
    return await party.list_parties(request, CONTACT_QUERY, contacts.list_contacts, "company_id")


async def create_contact(request: web.Request) -> web.Response:
    """Create a contact."""
    return await party.create_party(request, CONTACT_BODY, contacts.create_contact)


async def get_contact(request: web.Request) -> web.Response:
    """One contact with its phones."""
    return await party.get_party(request, contacts.get_contact)


async def update_contact(request: web.Request) -> web.Response:
    """Change the given fields of a contact (lists given replace the old ones)."""
    return await party.update_party(request, CONTACT_BODY, contacts.update_contact)


async def delete_contact(request: web.Request) -> web.Response:
    """Delete a contact (its calls and tasks stay, unlinked)."""
    return await party.delete_party(request, contacts.delete_contact)


async def contact_activities(request: web.Request) -> web.Response:
    """The contact's history: calls and notes, newest first (those the caller may see)."""
    return await party.party_history(request, contact_id=path_id(request))


ROUTES = party.party_routes(
    "contact",
    "contacts",
    body=CONTACT_BODY,
    query=CONTACT_QUERY,
    handlers=(
        list_contacts,
        create_contact,
        get_contact,
        update_contact,
        delete_contact,
        contact_activities,
    ),
)


def setup(app: web.Application) -> None:
    """Add the contact routes."""
    add_routes(app, ROUTES)
