"""Tasks: title, description, due time, assignee, status, links to a contact, a company and
the activity (call) that caused them.

Create and update take a plain mapping and check it. Fields: ``title`` (required on create),
``description``, ``kind`` (``general`` or ``callback``), ``status`` (``open``, ``done``,
``cancelled``), ``due_at`` (ISO 8601), ``assignee_id``, ``contact_id``, ``company_id``,
``activity_id``, ``number_e164`` (the number a callback task is about: E.164, or only digits
for a number without an E.164 form), ``closed_note``. Moving to ``done``/``cancelled`` sets
``closed_at``; reopening clears it.

Visibility is the caller's business: :func:`list_tasks` filters by ``assignee_ids`` so the API
can pass the agent's own id, a supervisor's team member ids, or nothing for an admin.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.audit import record
from crm_sync.errors import NotFound, ValidationError
from crm_sync.fields import aware, check_known, opt_datetime, opt_id, opt_text, req_text, utc_now
from crm_sync.paging import Page, check_page
from crm_sync.schema import activities, companies, contacts, tasks, users

logger = logging.getLogger(__name__)

__all__ = [
    "TASK_FIELDS",
    "TASK_KINDS",
    "TASK_STATUSES",
    "Task",
    "create_task",
    "delete_task",
    "get_task",
    "list_tasks",
    "update_task",
]

TASK_KINDS = ("general", "callback")
TASK_STATUSES = ("open", "done", "cancelled")
TASK_FIELDS = frozenset(
    {
        "title",
        "description",
        "kind",
        "status",
        "due_at",
        "assignee_id",
        "contact_id",
        "company_id",
        "activity_id",
        "number_e164",
        "closed_note",
    }
)


@dataclass(frozen=True, slots=True)
class Task:
    """A task as stored."""

    id: int
    title: str
    description: str
    kind: str
    status: str
    due_at: datetime | None
    assignee_id: int | None
    contact_id: int | None
    company_id: int | None
    activity_id: int | None
    number_e164: str | None
    attempts: int
    closed_at: datetime | None
    closed_note: str
    created_by: int | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "kind": self.kind,
            "status": self.status,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "assignee_id": self.assignee_id,
            "contact_id": self.contact_id,
            "company_id": self.company_id,
            "activity_id": self.activity_id,
            "number_e164": self.number_e164,
            "attempts": self.attempts,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_note": self.closed_note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


_LINKS = {
    "assignee_id": (users, "user"),
    "contact_id": (contacts, "contact"),
    "company_id": (companies, "company"),
    "activity_id": (activities, "activity"),
}
# E.164, or the digits of a number that has no E.164 form (crm_sync.callbacks.number_key).
_NUMBER_KEY = re.compile(r"\+[1-9]\d{4,19}|\d{1,20}")


def _task_of(r: Any) -> Task:
    created = aware(r.created_at)
    updated = aware(r.updated_at)
    assert created is not None and updated is not None
    return Task(
        id=int(r.id),
        title=r.title,
        description=r.description,
        kind=r.kind,
        status=r.status,
        due_at=aware(r.due_at),
        assignee_id=r.assignee_id,
        contact_id=r.contact_id,
        company_id=r.company_id,
        activity_id=r.activity_id,
        number_e164=r.number_e164,
        attempts=int(r.attempts),
        closed_at=aware(r.closed_at),
        closed_note=r.closed_note,
        created_by=r.created_by,
        created_at=created,
        updated_at=updated,
    )


async def _check_links(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    for key, (table, what) in _LINKS.items():
        value = values.get(key)
        if value is None:
            continue
        found = (await conn.execute(select(table.c.id).where(table.c.id == value))).first()
        if found is None:
            raise ValidationError(key, f"{key}: {what} {value} does not exist")


def _choice(data: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in choices:
        raise ValidationError(key, f"{key} must be one of {', '.join(choices)}, got {value!r}")
    assert isinstance(value, str)
    return value


def _values(data: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    check_known(data, TASK_FIELDS, "a task")
    values: dict[str, Any] = {}
    if creating or "title" in data:
        values["title"] = req_text(data, "title", 300)
    if "description" in data:
        values["description"] = opt_text(data, "description", 20_000, multiline=True)
    if "kind" in data:
        values["kind"] = _choice(data, "kind", TASK_KINDS)
    if "status" in data:
        values["status"] = _choice(data, "status", TASK_STATUSES)
    if "due_at" in data:
        values["due_at"] = opt_datetime(data, "due_at")
    for key in _LINKS:
        if key in data:
            values[key] = opt_id(data, key)
    if "number_e164" in data:
        number = data.get("number_e164")
        if number is not None and (
            not isinstance(number, str) or not _NUMBER_KEY.fullmatch(number)
        ):
            raise ValidationError(
                "number_e164",
                f"number_e164 must be like +79161234567 (or digits only), got {number!r}",
            )
        values["number_e164"] = number
    if "closed_note" in data:
        values["closed_note"] = opt_text(data, "closed_note", 5000, multiline=True)
    return values


def _audit(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


async def create_task(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Task:
    """Create a task (``created_by`` = ``user_id``). Audited. Raises ValidationError (also for
    links to a user, contact, company or activity that does not exist)."""
    now = now or utc_now()
    values = _values(data, creating=True)
    await _check_links(conn, values)
    if values.get("status", "open") != "open":
        values["closed_at"] = now
    result = await conn.execute(
        tasks.insert()
        .values(**values, created_by=user_id, created_at=now, updated_at=now)
        .returning(tasks.c.id)
    )
    task_id = int(result.scalar_one())
    await record(conn, user_id, "task.create", "task", task_id, _audit(values), now=now)
    return await get_task(conn, task_id)


async def get_task(conn: AsyncConnection, task_id: int) -> Task:
    """The task with ``task_id``; raises NotFound."""
    row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFound("task", task_id)
    return _task_of(row)


async def update_task(
    conn: AsyncConnection,
    task_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Task:
    """Change the given fields. Audited. Raises NotFound, ValidationError."""
    now = now or utc_now()
    old = await get_task(conn, task_id)
    values = _values(changes, creating=False)
    await _check_links(conn, values)
    status = values.get("status")
    if status is not None and status != old.status:
        values["closed_at"] = None if status == "open" else now
    await conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values, updated_at=now))
    await record(conn, user_id, "task.update", "task", task_id, _audit(values), now=now)
    return await get_task(conn, task_id)


async def delete_task(
    conn: AsyncConnection,
    task_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a task. Audited. Raises NotFound."""
    old = await get_task(conn, task_id)
    await conn.execute(delete(tasks).where(tasks.c.id == task_id))
    await record(conn, user_id, "task.delete", "task", task_id, {"title": old.title}, now=now)


async def list_tasks(
    conn: AsyncConnection,
    *,
    assignee_ids: Sequence[int] | None = None,
    status: str | None = None,
    kind: str | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    due_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Task]:
    """Tasks matching every given filter: open ones by due time first, then newest.

    ``assignee_ids=None`` means any assignee (admins); an empty list matches nothing.
    Raises ValidationError for a bad status, kind or paging.
    """
    limit, offset = check_page(limit, offset)
    if assignee_ids is not None and not assignee_ids:
        return Page(items=[], total=0, limit=limit, offset=offset)
    conds: list[Any] = []
    if assignee_ids is not None:
        conds.append(tasks.c.assignee_id.in_(list(assignee_ids)))
    if status is not None:
        conds.append(tasks.c.status == _choice({"status": status}, "status", TASK_STATUSES))
    if kind is not None:
        conds.append(tasks.c.kind == _choice({"kind": kind}, "kind", TASK_KINDS))
    if contact_id is not None:
        conds.append(tasks.c.contact_id == contact_id)
    if company_id is not None:
        conds.append(tasks.c.company_id == company_id)
    if due_before is not None:
        conds.append(tasks.c.due_at < aware(due_before))
    total = (await conn.execute(select(func.count()).select_from(tasks).where(*conds))).scalar_one()
    rows = await conn.execute(
        select(tasks)
        .where(*conds)
        .order_by(
            case((tasks.c.status == "open", 0), else_=1),
            case((tasks.c.due_at.is_(None), 1), else_=0),
            tasks.c.due_at,
            tasks.c.id.desc(),
        )
        .limit(limit)
        .offset(offset)
    )
    return Page(items=[_task_of(r) for r in rows], total=int(total), limit=limit, offset=offset)
