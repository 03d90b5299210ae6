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

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from crm_sync.audit import record
from crm_sync.errors import NotFound, ValidationError
from crm_sync.fields import aware, check_known, opt_id, opt_text, req_text, str_list, utc_now
from crm_sync.paging import Page, check_page
from crm_sync.phones import (
    MAX_DIGITS,
    NormalizedPhone,
    digits_of,
    is_hidden,
    normalize,
    suffix_range,
    variants,
)
from crm_sync.schema import companies, contacts, phones, users
from crm_sync.schema import phones as phones_table

logger = logging.getLogger(__name__)

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
    "escape_like",
    "merge_contact",
    "parse_phones",
    "phone_key",
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


# ---------------------------------------------------------------------------- shared pieces

MAX_PHONES = 50
MAX_NAME = 300
MAX_NOTES = 20_000


def escape_like(text: str) -> str:
    """``text`` with LIKE wildcards escaped (use with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_phones(
    value: object, region: str, key: str = "phones"
) -> list[tuple[NormalizedPhone, str]]:
    """Check and normalise a ``phones`` value: a list of strings or ``{"number", "label"}``.

    Duplicates (same E.164, or same national number without one) are dropped. Raises
    ValidationError naming ``phones[i]``.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(key, f"{key} must be a list, got {type(value).__name__}")
    if len(value) > MAX_PHONES:
        raise ValidationError(key, f"{key} may hold at most {MAX_PHONES} numbers")
    out: list[tuple[NormalizedPhone, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        name = f"{key}[{i}]"
        label = ""
        if isinstance(item, Mapping):
            check_known(item, ("number", "label"), name, name)
            number = item.get("number")
            label = opt_text(item, "label", 40)
        else:
            number = item
        if not isinstance(number, str):
            raise ValidationError(name, f"{name} must be a phone number string, got {number!r}")
        number = number.strip()
        if len(number) > 64:
            raise ValidationError(name, f"{name} must be at most 64 characters")
        phone = normalize(number, region)
        if not phone.national:
            raise ValidationError(name, f"{name} is not a phone number: {number!r}")
        key_ = phone.e164 or "n" + phone.national
        if key_ in seen:
            continue
        seen.add(key_)
        out.append((phone, label))
    return out


def phone_key(e164: str | None, national: str) -> str:
    """What makes two stored numbers the same number."""
    return e164 or "n" + national


def _phone_match(number: str, region: str) -> ColumnElement[bool] | None:
    """Condition on ``phones`` for a phone search: a full number (one with an E.164 reading)
    matches its E.164 or national form exactly; a partial one matches numbers ending in its
    digits (at least 4, an indexed range on ``national_rev``). None: nothing can match."""
    v = variants(number, region)
    if v.e164:
        return or_(phones.c.e164.in_(v.e164), phones.c.national.in_(v.national))
    digits = digits_of(number)[:MAX_DIGITS]
    if not digits or is_hidden(number):
        return None
    conds: list[ColumnElement[bool]] = [phones.c.national == digits]
    if len(digits) >= 4:
        low, high = suffix_range(digits)
        rng = phones.c.national_rev >= low
        if high is not None:
            rng = rng & (phones.c.national_rev < high)
        conds.append(rng)
    return or_(*conds)


def _tag_match(column: Any, tag: str) -> ColumnElement[bool]:
    """Rows whose JSON tag list holds ``tag`` (portable: a LIKE on the JSON text)."""
    needle = escape_like(json.dumps(tag))
    return cast(column, Text).like(f"%{needle}%", escape="\\")


async def _check_user(conn: AsyncConnection, user_id: int | None, key: str) -> None:
    if user_id is None:
        return
    found = (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first()
    if found is None:
        raise ValidationError(key, f"{key}: user {user_id} does not exist")


async def _check_company(conn: AsyncConnection, company_id: int | None, key: str) -> None:
    if company_id is None:
        return
    found = (await conn.execute(select(companies.c.id).where(companies.c.id == company_id))).first()
    if found is None:
        raise ValidationError(key, f"{key}: company {company_id} does not exist")


def _phone_of(row: Any) -> Phone:
    return Phone(id=row.id, raw=row.raw, e164=row.e164, national=row.national, label=row.label)


async def _phones_of(
    conn: AsyncConnection, column: Any, ids: Sequence[int]
) -> dict[int, list[Phone]]:
    out: dict[int, list[Phone]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await conn.execute(select(phones).where(column.in_(list(ids))).order_by(phones.c.id))
    for row in rows:
        out[int(getattr(row, column.name))].append(_phone_of(row))
    return out


def _sql_now(value: Any) -> datetime:
    result = aware(value)
    assert result is not None
    return result


async def _parse_entity(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    allowed: frozenset[str],
    what: str,
    region: str,
    *,
    creating: bool,
) -> tuple[dict[str, Any], list[tuple[NormalizedPhone, str]] | None]:
    """Checked column values for the keys present in ``data`` and the parsed phones (None when
    ``phones`` is absent)."""
    check_known(data, allowed, what)
    values: dict[str, Any] = {}
    if creating or "name" in data:
        values["name"] = req_text(data, "name", MAX_NAME)
    if "company_id" in data and "company_id" in allowed:
        values["company_id"] = opt_id(data, "company_id")
        await _check_company(conn, values["company_id"], "company_id")
    if "responsible_user_id" in data:
        values["responsible_user_id"] = opt_id(data, "responsible_user_id")
        await _check_user(conn, values["responsible_user_id"], "responsible_user_id")
    if creating or "emails" in data:
        values["emails"] = str_list(data, "emails", max_len=254, email=True)
    if creating or "tags" in data:
        values["tags"] = str_list(data, "tags", max_items=100, max_len=100)
    if creating or "notes" in data:
        values["notes"] = opt_text(data, "notes", MAX_NOTES, multiline=True)
    parsed = parse_phones(data.get("phones"), region) if "phones" in data or creating else None
    return values, parsed


def _audit_view(
    values: Mapping[str, Any], parsed: list[tuple[NormalizedPhone, str]] | None
) -> dict[str, Any]:
    out = dict(values)
    out.pop("created_at", None)
    out.pop("updated_at", None)
    if parsed is not None:
        out["phones"] = [p.raw for p, _ in parsed]
    return out


def _merge_values(
    old_emails: Sequence[str],
    old_tags: Sequence[str],
    old_notes: str,
    emails: Iterable[str],
    tags: Iterable[str],
    notes: str,
) -> dict[str, Any]:
    """The union of e-mails and tags and the appended notes; only what changed."""
    out: dict[str, Any] = {}
    new_emails = list(old_emails)
    for e in emails:
        if e and e not in new_emails:
            new_emails.append(e)
    if new_emails != list(old_emails):
        out["emails"] = new_emails
    new_tags = list(old_tags)
    for t in tags:
        if t and t not in new_tags:
            new_tags.append(t)
    if new_tags != list(old_tags):
        out["tags"] = new_tags
    notes = notes.strip()
    if notes and notes not in old_notes:
        out["notes"] = f"{old_notes}\n{notes}".strip()
    return out


def _entity_fields(r: Any, nums: Mapping[int, list[Phone]]) -> dict[str, Any]:
    """The fields contacts and companies share, from a loaded row."""
    return {
        "id": int(r.id),
        "name": r.name,
        "responsible_user_id": r.responsible_user_id,
        "responsible_name": r.responsible_name,
        "phones": tuple(nums[int(r.id)]),
        "emails": tuple(r.emails or ()),
        "tags": tuple(r.tags or ()),
        "notes": r.notes,
        "created_at": _sql_now(r.created_at),
        "updated_at": _sql_now(r.updated_at),
    }


async def _load_contacts(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Contact]:
    if not ids:
        return {}
    q = (
        select(
            contacts,
            companies.c.name.label("company_name"),
            users.c.name.label("responsible_name"),
        )
        .select_from(
            contacts.outerjoin(companies, contacts.c.company_id == companies.c.id).outerjoin(
                users, contacts.c.responsible_user_id == users.c.id
            )
        )
        .where(contacts.c.id.in_(list(ids)))
    )
    rows = (await conn.execute(q)).all()
    nums = await _phones_of(conn, phones.c.contact_id, [int(r.id) for r in rows])
    return {
        int(r.id): Contact(
            **_entity_fields(r, nums), company_id=r.company_id, company_name=r.company_name
        )
        for r in rows
    }


async def _load_companies(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Company]:
    if not ids:
        return {}
    q = (
        select(companies, users.c.name.label("responsible_name"))
        .select_from(companies.outerjoin(users, companies.c.responsible_user_id == users.c.id))
        .where(companies.c.id.in_(list(ids)))
    )
    rows = (await conn.execute(q)).all()
    nums = await _phones_of(conn, phones.c.company_id, [int(r.id) for r in rows])
    return {int(r.id): Company(**_entity_fields(r, nums)) for r in rows}


E = TypeVar("E", Contact, Company)


@dataclass(frozen=True)
class _Kind(Generic[E]):
    """What tells contacts and companies apart; the CRUD below is written once for both."""

    entity: str
    """``contact`` or ``company``: the NotFound entity and the audit name."""
    table: Any
    owner: Any
    """The ``phones`` column that links a number to this kind of entity."""
    fields: frozenset[str]
    load: Callable[[AsyncConnection, Sequence[int]], Awaitable[dict[int, E]]]
    detach: tuple[Any, ...] = ()
    """Columns elsewhere that point at this entity; set to null when it is deleted."""


_CONTACTS = _Kind[Contact]("contact", contacts, phones.c.contact_id, CONTACT_FIELDS, _load_contacts)
_COMPANIES = _Kind[Company](
    "company",
    companies,
    phones.c.company_id,
    COMPANY_FIELDS,
    _load_companies,
    detach=(contacts.c.company_id,),
)


def _phone_values(
    parsed: Iterable[tuple[NormalizedPhone, str]], owner: Any, owner_id: int
) -> list[dict[str, Any]]:
    """``phones`` rows for ``parsed``, linked through the ``owner`` column to ``owner_id``."""
    link: dict[str, int | None] = {"contact_id": None, "company_id": None}
    link[owner.name] = owner_id
    return [
        {
            **link,
            "raw": p.raw,
            "e164": p.e164,
            "national": p.national,
            "national_rev": p.national_rev,
            "label": label,
        }
        for p, label in parsed
    ]


async def _require(conn: AsyncConnection, table: Any, entity_id: int, entity: str) -> Any:
    row = (await conn.execute(select(table).where(table.c.id == entity_id))).first()
    if row is None:
        raise NotFound(entity, entity_id)
    return row


async def _get(conn: AsyncConnection, kind: _Kind[E], entity_id: int) -> E:
    found = (await kind.load(conn, [entity_id])).get(entity_id)
    if found is None:
        raise NotFound(kind.entity, entity_id)
    return found


async def _store_phones_and_audit(
    conn: AsyncConnection,
    kind: _Kind[E],
    entity_id: int,
    action: str,
    values: Mapping[str, Any],
    parsed: list[tuple[NormalizedPhone, str]] | None,
    *,
    user_id: int | None,
    now: datetime,
) -> E:
    """Insert the ``parsed`` phones, audit ``<entity>.<action>`` and return the entity."""
    if parsed:
        await conn.execute(phones.insert(), _phone_values(parsed, kind.owner, entity_id))
    details = _audit_view(values, parsed)
    await record(conn, user_id, f"{kind.entity}.{action}", kind.entity, entity_id, details, now=now)
    return await _get(conn, kind, entity_id)


async def _create(
    conn: AsyncConnection,
    kind: _Kind[E],
    data: Mapping[str, Any],
    *,
    user_id: int | None,
    region: str,
    now: datetime | None,
) -> E:
    now = now or utc_now()
    table = kind.table
    values, parsed = await _parse_entity(
        conn, data, kind.fields, f"a {kind.entity}", region, creating=True
    )
    result = await conn.execute(
        table.insert().values(**values, created_at=now, updated_at=now).returning(table.c.id)
    )
    entity_id = int(result.scalar_one())
    return await _store_phones_and_audit(
        conn, kind, entity_id, "create", values, parsed, user_id=user_id, now=now
    )


async def _update(
    conn: AsyncConnection,
    kind: _Kind[E],
    entity_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None,
    region: str,
    now: datetime | None,
) -> E:
    now = now or utc_now()
    table = kind.table
    await _require(conn, table, entity_id, kind.entity)
    values, parsed = await _parse_entity(
        conn, changes, kind.fields, f"a {kind.entity}", region, creating=False
    )
    await conn.execute(
        update(table).where(table.c.id == entity_id).values(**values, updated_at=now)
    )
    if parsed is not None:
        await conn.execute(delete(phones).where(kind.owner == entity_id))
    return await _store_phones_and_audit(
        conn, kind, entity_id, "update", values, parsed, user_id=user_id, now=now
    )


async def _delete(
    conn: AsyncConnection,
    kind: _Kind[E],
    entity_id: int,
    *,
    user_id: int | None,
    now: datetime | None,
) -> None:
    table = kind.table
    row = await _require(conn, table, entity_id, kind.entity)
    await conn.execute(delete(phones).where(kind.owner == entity_id))
    for column in kind.detach:
        await conn.execute(
            update(column.table).where(column == entity_id).values({column.name: None})
        )
    await conn.execute(delete(table).where(table.c.id == entity_id))
    await record(
        conn, user_id, f"{kind.entity}.delete", kind.entity, entity_id, {"name": row.name}, now=now
    )


def _filters(
    table: Any,
    owner: Any,
    *,
    name: str | None,
    phone: str | None,
    tag: str | None,
    responsible_user_id: int | None,
    region: str,
) -> list[ColumnElement[bool]] | None:
    """WHERE conditions for a listing; None when a filter can match nothing."""
    conds: list[ColumnElement[bool]] = []
    if name is not None and name.strip():
        conds.append(table.c.name.ilike(f"%{escape_like(name.strip())}%", escape="\\"))
    if phone is not None and phone.strip():
        match = _phone_match(phone, region)
        if match is None:
            return None
        conds.append(table.c.id.in_(select(owner).where(match, owner.is_not(None))))
    if tag is not None and tag.strip():
        conds.append(_tag_match(table.c.tags, tag.strip()))
    if responsible_user_id is not None:
        conds.append(table.c.responsible_user_id == responsible_user_id)
    return conds


async def _page_ids(
    conn: AsyncConnection,
    table: Any,
    conds: list[ColumnElement[bool]] | None,
    limit: int,
    offset: int,
) -> tuple[list[int], int]:
    if conds is None:
        return [], 0
    total = (await conn.execute(select(func.count()).select_from(table).where(*conds))).scalar_one()
    ids = [
        int(r[0])
        for r in await conn.execute(
            select(table.c.id)
            .where(*conds)
            .order_by(table.c.name, table.c.id)
            .limit(limit)
            .offset(offset)
        )
    ]
    return ids, int(total)


async def _list(
    conn: AsyncConnection,
    kind: _Kind[E],
    *,
    name: str | None,
    phone: str | None,
    tag: str | None,
    responsible_user_id: int | None,
    region: str,
    limit: int,
    offset: int,
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page[E]:
    limit, offset = check_page(limit, offset)
    conds = _filters(
        kind.table,
        kind.owner,
        name=name,
        phone=phone,
        tag=tag,
        responsible_user_id=responsible_user_id,
        region=region,
    )
    if conds is not None:
        conds.extend(extra)
    ids, total = await _page_ids(conn, kind.table, conds, limit, offset)
    loaded = await kind.load(conn, ids)
    return Page(
        items=[loaded[i] for i in ids if i in loaded], total=total, limit=limit, offset=offset
    )


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
    return await _create(conn, _CONTACTS, data, user_id=user_id, region=region, now=now)


async def get_contact(conn: AsyncConnection, contact_id: int) -> Contact:
    """The contact with ``contact_id``; raises NotFound."""
    return await _get(conn, _CONTACTS, contact_id)


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
    return await _update(
        conn, _CONTACTS, contact_id, changes, user_id=user_id, region=region, now=now
    )


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
    now = now or utc_now()
    row = await _require(conn, contacts, contact_id, "contact")
    parsed = parse_phones(list(phones), region)
    clean_emails = str_list({"emails": list(emails)}, "emails", max_len=254, email=True)
    clean_tags = str_list({"tags": list(tags)}, "tags", max_items=100, max_len=100)
    values = _merge_values(
        row.emails or [], row.tags or [], row.notes or "", clean_emails, clean_tags, notes
    )
    existing = {
        phone_key(r.e164, r.national)
        for r in await conn.execute(
            select(phones_table.c.e164, phones_table.c.national).where(
                phones_table.c.contact_id == contact_id
            )
        )
    }
    new_phones = [
        (p, label) for p, label in parsed if phone_key(p.e164, p.national) not in existing
    ]
    if not values and not new_phones:
        return await get_contact(conn, contact_id)
    await conn.execute(
        update(contacts).where(contacts.c.id == contact_id).values(**values, updated_at=now)
    )
    if new_phones:
        await conn.execute(
            phones_table.insert(), _phone_values(new_phones, phones_table.c.contact_id, contact_id)
        )
    details = dict(values)
    if new_phones:
        details["phones_added"] = [p.raw for p, _ in new_phones]
    await record(conn, user_id, "contact.merge", "contact", contact_id, details, now=now)
    return await get_contact(conn, contact_id)


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
    await _delete(conn, _CONTACTS, contact_id, user_id=user_id, now=now)


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

    ``name``: case-insensitive substring; ``phone``: a full number in any format matches its
    E.164 or national form, a partial one (4+ digits) the numbers ending in it; ``tag``: exact
    tag. Raises ValidationError for bad paging.
    """
    return await _list(
        conn,
        _CONTACTS,
        name=name,
        phone=phone,
        tag=tag,
        responsible_user_id=responsible_user_id,
        region=region,
        limit=limit,
        offset=offset,
        extra=() if company_id is None else (contacts.c.company_id == company_id,),
    )


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
    return await _create(conn, _COMPANIES, data, user_id=user_id, region=region, now=now)


async def get_company(conn: AsyncConnection, company_id: int) -> Company:
    """The company with ``company_id``; raises NotFound."""
    return await _get(conn, _COMPANIES, company_id)


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
    return await _update(
        conn, _COMPANIES, company_id, changes, user_id=user_id, region=region, now=now
    )


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
    await _delete(conn, _COMPANIES, company_id, user_id=user_id, now=now)


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
    return await _list(
        conn,
        _COMPANIES,
        name=name,
        phone=phone,
        tag=tag,
        responsible_user_id=responsible_user_id,
        region=region,
        limit=limit,
        offset=offset,
    )


async def find_company_by_name(conn: AsyncConnection, name: str) -> Company | None:
    """The company named exactly ``name`` (the oldest if several), or None."""
    row = (
        await conn.execute(
            select(companies.c.id)
            .where(companies.c.name == name.strip())
            .order_by(companies.c.id)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return await get_company(conn, int(row[0]))
