"""Tasks: title, description, due time, assignee, status, links to a contact, a company and
the activity (call) that caused them.

Create and update take a plain mapping and check it. Fields: ``title`` (required on create),
``description``, ``kind`` (``general`` or ``callback``), ``status`` (``open``, ``done``,
``cancelled``), ``due_at`` (ISO 8601), ``assignee_id``, ``contact_id``, ``company_id``,
``activity_id``, ``number_e164``, ``closed_note``. Moving to ``done``/``cancelled`` sets
``closed_at``; reopening clears it.

Visibility is the caller's business: :func:`list_tasks` filters by ``assignee_ids`` so the API
can pass the agent's own id, a supervisor's team member ids, or nothing for an admin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.paging import Page

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


async def create_task(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Task:
    """Create a task (``created_by`` = ``user_id``). Audited. Raises ValidationError (also for
    links to a user, contact, company or activity that does not exist)."""
    raise NotImplementedError


async def get_task(conn: AsyncConnection, task_id: int) -> Task:
    """The task with ``task_id``; raises NotFound."""
    raise NotImplementedError


async def update_task(
    conn: AsyncConnection,
    task_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Task:
    """Change the given fields. Audited. Raises NotFound, ValidationError."""
    raise NotImplementedError


async def delete_task(
    conn: AsyncConnection,
    task_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a task. Audited. Raises NotFound."""
    raise NotImplementedError


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
    raise NotImplementedError
