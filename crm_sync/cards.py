"""Caller cards: what an agent sees while the phone rings.

:func:`build_card` asks :func:`crm_sync.lookup.lookup` who owns the number and gathers, for the
matched contacts and companies (or for the number itself when nobody matches): the last calls
and notes, the open tasks, the responsible manager and tags. The result is a JSON-ready dict:

``number``        ``{"raw", "e164", "display", "hidden"}``
``status``        ``known`` (one match), ``multiple`` (several, ranked), ``unknown``, ``hidden``,
                  ``possible`` (only numbers with the same last digits: listed, not taken as
                  the caller)
``matches``       every match, best first (see :class:`crm_sync.lookup.Match`), with phones;
                  suffix-only matches are left out when the number matched exactly
``primary``       the best match or None; ``company`` its company, ``responsible`` its manager
``tags``          the tags of the best match (and its company)
``recent_calls``  the last five calls with this number or these contacts, newest first
``notes``         the last five notes on these contacts and companies
``open_tasks``    open tasks for these contacts, companies or this number
``create_contact`` when nobody owns the number: ``{"phone": ...}`` to prefill a new contact
``explanation``   how the lookup went (variants tried, why nothing matched)

A card costs two or three statements: the lookup, one UNION ALL for the phones, last calls,
last notes and open tasks (each part ordered and limited on its own), and the best match's
company when it has one.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import (
    Float,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from crm_sync.callbacks import number_key
from crm_sync.lookup import lookup
from crm_sync.phones import is_hidden, normalize
from crm_sync.schema import ID, TS, activities, companies, phones, tasks, users

__all__ = ["build_card", "display_number"]

RECENT_LIMIT = 5
TASK_LIMIT = 10


def display_number(raw: str, region: str) -> dict[str, Any]:
    """A number as dialed, in E.164, and formatted for people (``+7 916 123-45-67``)."""
    if is_hidden(raw):
        return {"raw": raw, "e164": None, "display": "Hidden number", "hidden": True}
    norm = normalize(raw, region)
    display = raw
    if norm.e164:
        try:
            display = phonenumbers.format_number(
                phonenumbers.parse(norm.e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
        except phonenumbers.NumberParseException:
            display = norm.e164
    return {"raw": raw, "e164": norm.e164, "display": display, "hidden": False}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# what each row of the details statement is
_PHONE, _CALL, _NOTE, _TASK = 1, 2, 3, 4


def _arm(
    src: int,
    table: Any,
    order: list[Any],
    where: ColumnElement[bool],
    limit: int | None,
    **cols: Any,
) -> Any:
    """One part of the details statement: the uniform columns (missing ones NULL, typed so
    results convert alike on every part), ``pos`` its place in ``order``, at most ``limit``."""
    types: dict[str, Any] = {
        "id": ID,
        "int1": ID,
        "int2": ID,
        "num": Float(),
        "s1": Text(),
        "s2": Text(),
        "s3": Text(),
        "s4": Text(),
        "who": Text(),
        "at": TS,
    }
    columns: list[Any] = [literal_column(str(src)).label("src")]
    for name, type_ in types.items():
        value = cols.get(name)
        columns.append((value if value is not None else cast(null(), type_)).label(name))
    columns.append(func.row_number().over(order_by=order).label("pos"))
    stmt = select(*columns).select_from(table).where(where).order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    return select(stmt.subquery())


@functools.lru_cache(maxsize=16)
def _details_statement(owners: bool, by_number: bool, by_key: bool) -> Any:
    """Phones of the matches, last calls, last notes and open tasks as one statement, each part
    ordered and limited as on its own; built once per shape. Bound parameters: ``contact_ids``
    and ``company_ids`` (lists), ``e164`` when ``by_number``, ``key`` when ``by_key``."""
    contact_ids: Any = bindparam("contact_ids", expanding=True)
    company_ids: Any = bindparam("company_ids", expanding=True)
    who: list[ColumnElement[bool]] = [
        activities.c.contact_id.in_(contact_ids),
        activities.c.company_id.in_(company_ids),
    ]
    call_filter = list(who)
    if by_number:
        e164 = bindparam("e164", type_=Text())
        call_filter += [activities.c.caller_e164 == e164, activities.c.callee_e164 == e164]
    task_filter: list[ColumnElement[bool]] = [
        tasks.c.contact_id.in_(contact_ids),
        tasks.c.company_id.in_(company_ids),
    ]
    if by_key:
        task_filter.append(tasks.c.number_e164 == bindparam("key", type_=Text()))
    parts = []
    if owners:
        parts.append(
            _arm(
                _PHONE,
                phones,
                [phones.c.id],
                or_(phones.c.contact_id.in_(contact_ids), phones.c.company_id.in_(company_ids)),
                None,
                id=phones.c.id,
                int1=phones.c.contact_id,
                int2=phones.c.company_id,
                s1=phones.c.raw,
                s2=phones.c.e164,
                s3=phones.c.label,
            )
        )
    parts.append(
        _arm(
            _CALL,
            activities.outerjoin(users, users.c.id == activities.c.answered_by_user_id),
            [activities.c.started_at.desc(), activities.c.id.desc()],
            and_(activities.c.kind == "call", or_(*call_filter)),
            RECENT_LIMIT,
            id=activities.c.id,
            num=activities.c.talk_seconds,
            s1=activities.c.direction,
            s2=activities.c.outcome,
            s3=activities.c.answered_by,
            s4=activities.c.body,
            who=users.c.name,
            at=activities.c.started_at,
        )
    )
    if owners:
        parts.append(
            _arm(
                _NOTE,
                activities.outerjoin(users, users.c.id == activities.c.user_id),
                [activities.c.created_at.desc(), activities.c.id.desc()],
                and_(activities.c.kind == "note", or_(*who)),
                RECENT_LIMIT,
                id=activities.c.id,
                s4=activities.c.body,
                who=users.c.name,
                at=activities.c.created_at,
            )
        )
    parts.append(
        _arm(
            _TASK,
            tasks.outerjoin(users, users.c.id == tasks.c.assignee_id),
            [tasks.c.due_at.is_(None), tasks.c.due_at, tasks.c.id],
            and_(tasks.c.status == "open", or_(*task_filter)),
            TASK_LIMIT,
            id=tasks.c.id,
            int1=tasks.c.attempts,
            s1=tasks.c.title,
            s2=tasks.c.kind,
            who=users.c.name,
            at=tasks.c.due_at,
        )
    )
    return union_all(*parts).order_by(literal_column("src"), literal_column("pos"))


async def _details(
    conn: AsyncConnection,
    contact_ids: list[int],
    company_ids: list[int],
    e164: str | None,
    key: str | None,
) -> dict[int, list[Any]]:
    """The rows of :func:`_details_statement` (one round trip) by part, in order."""
    params: dict[str, Any] = {"contact_ids": contact_ids, "company_ids": company_ids}
    if e164:
        params["e164"] = e164
    if key:
        params["key"] = key
    stmt = _details_statement(bool(contact_ids or company_ids), bool(e164), bool(key))
    out: dict[int, list[Any]] = {_PHONE: [], _CALL: [], _NOTE: [], _TASK: []}
    for row in await conn.execute(stmt, params):
        out[int(row.src)].append(row)
    return out


async def build_card(
    conn: AsyncConnection, number: str, region: str, *, now: datetime
) -> dict[str, Any]:
    """The caller card for ``number`` (any format), built from the store. Never raises on odd
    input; a database failure propagates to the caller (the hub then sends a minimal card)."""
    view = display_number(number, region)
    if view["hidden"]:
        return {
            "number": view,
            "status": "hidden",
            "matches": [],
            "primary": None,
            "company": None,
            "responsible": None,
            "tags": [],
            "recent_calls": [],
            "notes": [],
            "open_tasks": [],
            "create_contact": None,
            "explanation": {"input": number, "reason_if_none": "the caller id is withheld"},
            "built_at": now.isoformat(),
        }
    result = await lookup(conn, number, region, limit=10)
    found = list(result.matches)
    exact = any(m.rank <= 2 for m in found)
    if exact:
        # an exact number match makes "same last 7 digits" guesses noise on a card
        found = [m for m in found if m.rank <= 2]
    matches = [m.to_dict() for m in found]
    contact_ids = [m.id for m in found if m.kind == "contact"]
    company_ids = sorted(
        {m.company_id for m in found if m.company_id is not None}
        | {m.id for m in found if m.kind == "company"}
    )
    e164 = view["e164"] or result.e164

    key = number_key(number, e164)  # callback tasks keep short numbers by their digits
    details = await _details(conn, contact_ids, company_ids, e164, key)
    phone_map: dict[tuple[str, int], list[dict[str, str]]] = {}
    for r in details[_PHONE]:
        owner = ("contact", r.int1) if r.int1 is not None else ("company", r.int2)
        phone_map.setdefault(owner, []).append({"raw": r.s1, "e164": r.s2 or "", "label": r.s3})
    for m in matches:
        m["phones"] = phone_map.get((m["kind"], m["id"]), [])
    recent_calls = [
        {
            "id": r.id,
            "direction": r.s1,
            "outcome": r.s2,
            "started_at": _iso(r.at),
            "talk_seconds": r.num,
            "agent": r.who or r.s3 or "",
            "note": r.s4,
        }
        for r in details[_CALL]
    ]
    notes = [
        {"id": r.id, "body": r.s4, "at": _iso(r.at), "author": r.who or ""} for r in details[_NOTE]
    ]
    open_tasks = [
        {
            "id": r.id,
            "title": r.s1,
            "kind": r.s2,
            "due_at": _iso(r.at),
            "attempts": r.int1,
            "assignee": r.who or "",
        }
        for r in details[_TASK]
    ]
    # only the same last digits: candidates to show, not the caller
    primary = matches[0] if matches and exact else None
    company: dict[str, Any] | None = None
    tags: list[str] = []
    if primary is not None:
        tags = list(primary["tags"])
        if primary["company_id"] is not None:
            row = (
                await conn.execute(
                    select(companies.c.id, companies.c.name, companies.c.tags).where(
                        companies.c.id == primary["company_id"]
                    )
                )
            ).first()
            if row is not None:
                company = {"id": row.id, "name": row.name}
                tags += [t for t in (row.tags or []) if t not in tags]
    responsible = (
        {"user_id": primary["responsible_user_id"], "name": primary["responsible_name"] or ""}
        if primary is not None and primary["responsible_user_id"] is not None
        else None
    )
    if not matches:
        status = "unknown"
    elif not exact:
        status = "possible"
    else:
        status = "known" if len(matches) == 1 else "multiple"
    return {
        "number": view,
        "status": status,
        "matches": matches,
        "primary": primary,
        "company": company,
        "responsible": responsible,
        "tags": tags,
        "recent_calls": recent_calls,
        "notes": notes,
        "open_tasks": open_tasks,
        "create_contact": {"phone": e164 or number} if primary is None else None,
        "explanation": result.explanation.to_dict(),
        "built_at": now.isoformat(),
    }
