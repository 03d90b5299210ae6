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
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from crm_sync.callbacks import number_key
from crm_sync.lookup import lookup
from crm_sync.phones import is_hidden, normalize
from crm_sync.schema import activities, companies, phones, tasks, users

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


async def _phones_of(
    conn: AsyncConnection, contact_ids: list[int], company_ids: list[int]
) -> dict[tuple[str, int], list[dict[str, str]]]:
    out: dict[tuple[str, int], list[dict[str, str]]] = {}
    if not contact_ids and not company_ids:
        return out
    rows = await conn.execute(
        select(
            phones.c.contact_id, phones.c.company_id, phones.c.raw, phones.c.e164, phones.c.label
        )
        .where(or_(phones.c.contact_id.in_(contact_ids), phones.c.company_id.in_(company_ids)))
        .order_by(phones.c.id)
    )
    for r in rows:
        key = ("contact", r.contact_id) if r.contact_id is not None else ("company", r.company_id)
        out.setdefault(key, []).append({"raw": r.raw, "e164": r.e164 or "", "label": r.label})
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
    phone_map = await _phones_of(conn, contact_ids, company_ids)
    for m in matches:
        m["phones"] = phone_map.get((m["kind"], m["id"]), [])
    e164 = view["e164"] or result.e164

    who: list[ColumnElement[bool]] = [
        activities.c.contact_id.in_(contact_ids),
        activities.c.company_id.in_(company_ids),
    ]
    call_filter = list(who)
    if e164:
        call_filter += [activities.c.caller_e164 == e164, activities.c.callee_e164 == e164]
    calls = await conn.execute(
        select(
            activities.c.id,
            activities.c.direction,
            activities.c.outcome,
            activities.c.started_at,
            activities.c.talk_seconds,
            activities.c.answered_by,
            activities.c.body,
            users.c.name.label("agent_name"),
        )
        .select_from(activities.outerjoin(users, users.c.id == activities.c.answered_by_user_id))
        .where(and_(activities.c.kind == "call", or_(*call_filter)))
        .order_by(activities.c.started_at.desc(), activities.c.id.desc())
        .limit(RECENT_LIMIT)
    )
    recent_calls = [
        {
            "id": r.id,
            "direction": r.direction,
            "outcome": r.outcome,
            "started_at": _iso(r.started_at),
            "talk_seconds": r.talk_seconds,
            "agent": r.agent_name or r.answered_by or "",
            "note": r.body,
        }
        for r in calls
    ]
    notes: list[dict[str, Any]] = []
    if contact_ids or company_ids:
        rows = await conn.execute(
            select(activities.c.id, activities.c.body, activities.c.created_at, users.c.name)
            .select_from(activities.outerjoin(users, users.c.id == activities.c.user_id))
            .where(and_(activities.c.kind == "note", or_(*who)))
            .order_by(activities.c.created_at.desc(), activities.c.id.desc())
            .limit(RECENT_LIMIT)
        )
        notes = [
            {"id": r.id, "body": r.body, "at": _iso(r.created_at), "author": r.name or ""}
            for r in rows
        ]
    task_filter: list[ColumnElement[bool]] = [
        tasks.c.contact_id.in_(contact_ids),
        tasks.c.company_id.in_(company_ids),
    ]
    key = number_key(number, e164)  # callback tasks keep short numbers by their digits
    if key:
        task_filter.append(tasks.c.number_e164 == key)
    rows = await conn.execute(
        select(
            tasks.c.id,
            tasks.c.title,
            tasks.c.kind,
            tasks.c.due_at,
            tasks.c.attempts,
            users.c.name.label("assignee"),
        )
        .select_from(tasks.outerjoin(users, users.c.id == tasks.c.assignee_id))
        .where(and_(tasks.c.status == "open", or_(*task_filter)))
        .order_by(tasks.c.due_at.is_(None), tasks.c.due_at, tasks.c.id)
        .limit(TASK_LIMIT)
    )
    open_tasks = [
        {
            "id": r.id,
            "title": r.title,
            "kind": r.kind,
            "due_at": _iso(r.due_at),
            "attempts": r.attempts,
            "assignee": r.assignee or "",
        }
        for r in rows
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
