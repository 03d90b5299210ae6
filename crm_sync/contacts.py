"""Contacts and companies with their phones, e-mails, tags and notes.

Create and update take a plain mapping (parsed JSON is fine) and check it: unknown keys, wrong
types and bad values raise :class:`~crm_sync.errors.ValidationError` naming the field.

Fields of a contact: ``name`` (required on create), ``company_id``, ``responsible_user_id``,
``phones``, ``emails``, ``tags``, ``notes``. A company has the same fields except
``company_id``. ``phones`` is a list whose items are a string (``"+7 916 123-45-67"``) or an
object ``{"number": "...", "label": "mobile"}``; each is stored raw, as E.164, as national
number and reversed national number (see :mod:`crm_sync.phones`). On update, a given
``phones``/``emails``/``tags`` list replaces the old one; :func:`merge_contact` unions instead.

Every change is written to the audit log in the caller's transaction. Searches use bound
parameters only; the ``name`` filter escapes ``%``, ``_`` and ``\\`` so they match literally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.paging import Page

__all__ = [
    "CONTACT_FIELDS",
    "COMPANY_FIELDS",
    "Company",
    "Contact",
    "Phone",
    "create_company",
    "create_contact",
    "delete_company",
    "delete_contact",
    "find_company_by_name",
    "get_company",
    "get_contact",
    "list_companies",
    "list_contacts",
    "merge_contact",
    "update_company",
    "update_contact",
]

CONTACT_FIELDS = frozenset(
    {"name", "company_id", "responsible_user_id", "phones", "emails", "tags", "notes"}
)
COMPANY_FIELDS = frozenset({"name", "responsible_user_id", "phones", "emails", "tags", "notes"})


@dataclass(frozen=True, slots=True)
class Phone:
    """A stored phone number."""

    id: int
    raw: str
    e164: str | None
    national: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "raw": self.raw,
            "e164": self.e164,
            "national": self.national,
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class Contact:
    """A person, with the names of the company and responsible user resolved."""

    id: int
    name: str
    company_id: int | None
    company_name: str | None
    responsible_user_id: int | None
    responsible_name: str | None
    phones: tuple[Phone, ...]
    emails: tuple[str, ...]
    tags: tuple[str, ...]
    notes: str
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "company_id": self.company_id,
            "company_name": self.company_name,
            "responsible_user_id": self.responsible_user_id,
            "responsible_name": self.responsible_name,
            "phones": [p.to_dict() for p in self.phones],
            "emails": list(self.emails),
            "tags": list(self.tags),
            "notes": self.notes,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Company:
    """An organisation, with the responsible user's name resolved."""

    id: int
    name: str
    responsible_user_id: int | None
    responsible_name: str | None
    phones: tuple[Phone, ...]
    emails: tuple[str, ...]
    tags: tuple[str, ...]
    notes: str
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "responsible_user_id": self.responsible_user_id,
            "responsible_name": self.responsible_name,
            "phones": [p.to_dict() for p in self.phones],
            "emails": list(self.emails),
            "tags": list(self.tags),
            "notes": self.notes,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# ---------------------------------------------------------------------------- contacts


async def create_contact(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
    region: str = "RU",
    now: datetime | None = None,
) -> Contact:
    """Create a contact from ``data`` (see the module docstring); audited as ``contact.create``.

    Raises ValidationError (bad field, unknown company or responsible user).
    """
    raise NotImplementedError


async def get_contact(conn: AsyncConnection, contact_id: int) -> Contact:
    """The contact with ``contact_id``; raises NotFound."""
    raise NotImplementedError


async def update_contact(
    conn: AsyncConnection,
    contact_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    region: str = "RU",
    now: datetime | None = None,
) -> Contact:
    """Change the given fields only; lists given replace the old ones. Audited.

    Raises NotFound, ValidationError.
    """
    raise NotImplementedError


async def merge_contact(
    conn: AsyncConnection,
    contact_id: int,
    *,
    phones: Sequence[str] = (),
    emails: Sequence[str] = (),
    tags: Sequence[str] = (),
    notes: str = "",
    user_id: int | None = None,
    region: str = "RU",
    now: datetime | None = None,
) -> Contact:
    """Add phones, e-mails and tags the contact lacks (union) and append ``notes``. Audited.

    A phone counts as present when its E.164 (or, without one, its national number) is.
    Raises NotFound, ValidationError.
    """
    raise NotImplementedError


async def delete_contact(
    conn: AsyncConnection,
    contact_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a contact and its phones (activities and tasks keep a null link). Audited.

    Raises NotFound.
    """
    raise NotImplementedError


async def list_contacts(
    conn: AsyncConnection,
    *,
    name: str | None = None,
    phone: str | None = None,
    tag: str | None = None,
    company_id: int | None = None,
    responsible_user_id: int | None = None,
    region: str = "RU",
    limit: int = 50,
    offset: int = 0,
) -> Page[Contact]:
    """Contacts matching every given filter, by name then id, with the total count.

    ``name``: case-insensitive substring; ``phone``: any format, matched like a lookup (E.164,
    national or the last 7 digits); ``tag``: exact tag. Raises ValidationError for bad paging.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------- companies


async def create_company(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
    region: str = "RU",
    now: datetime | None = None,
) -> Company:
    """Create a company; audited as ``company.create``. Raises ValidationError."""
    raise NotImplementedError


async def get_company(conn: AsyncConnection, company_id: int) -> Company:
    """The company with ``company_id``; raises NotFound."""
    raise NotImplementedError


async def update_company(
    conn: AsyncConnection,
    company_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    region: str = "RU",
    now: datetime | None = None,
) -> Company:
    """Change the given fields only; lists given replace the old ones. Audited.

    Raises NotFound, ValidationError.
    """
    raise NotImplementedError


async def delete_company(
    conn: AsyncConnection,
    company_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a company and its phones; its contacts stay, without a company. Audited.

    Raises NotFound.
    """
    raise NotImplementedError


async def list_companies(
    conn: AsyncConnection,
    *,
    name: str | None = None,
    phone: str | None = None,
    tag: str | None = None,
    responsible_user_id: int | None = None,
    region: str = "RU",
    limit: int = 50,
    offset: int = 0,
) -> Page[Company]:
    """Companies matching every given filter, by name then id, with the total count."""
    raise NotImplementedError


async def find_company_by_name(conn: AsyncConnection, name: str) -> Company | None:
    """The company named exactly ``name`` (the oldest if several), or None."""
    raise NotImplementedError
