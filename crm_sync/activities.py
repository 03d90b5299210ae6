"""Activities: notes written by people, and (read-only here) calls written by the call log.

Notes are created and edited through this module. Fields: ``body`` (required), ``contact_id``,
``company_id``. Call activities are written by :mod:`crm_sync.calllog`; here they are only
read, listed and deleted.

Visibility is the caller's business: :func:`list_activities` filters by ``user_ids``: an
activity belongs to a user when the user wrote it (``user_id``), answered it
(``answered_by_user_id``) or took part in it (``activity_participants``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.paging import Page

__all__ = [
    "ACTIVITY_KINDS",
    "NOTE_FIELDS",
    "Activity",
    "create_note",
    "delete_activity",
    "get_activity",
    "list_activities",
    "update_note",
]

ACTIVITY_KINDS = ("call", "note")
NOTE_FIELDS = frozenset({"body", "contact_id", "company_id"})


@dataclass(frozen=True, slots=True)
class Activity:
    """A note or a call; ``call`` holds the call columns (empty for notes)."""

    id: int
    kind: str
    contact_id: int | None
    company_id: int | None
    user_id: int | None
    body: str
    created_at: datetime
    call: dict[str, Any] = field(default_factory=dict)
    participant_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ``call`` as ISO 8601)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "contact_id": self.contact_id,
            "company_id": self.company_id,
            "user_id": self.user_id,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
            "call": {
                k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.call.items()
            }
            or None,
            "participant_ids": list(self.participant_ids),
        }


async def create_note(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Activity:
    """Write a note by ``user_id``. Audited. Raises ValidationError (also for a link to a
    contact or company that does not exist)."""
    raise NotImplementedError


async def get_activity(conn: AsyncConnection, activity_id: int) -> Activity:
    """The activity with ``activity_id``; raises NotFound."""
    raise NotImplementedError


async def update_note(
    conn: AsyncConnection,
    activity_id: int,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> Activity:
    """Edit a note. Audited. Raises NotFound, ValidationError (also when it is a call)."""
    raise NotImplementedError


async def delete_activity(
    conn: AsyncConnection,
    activity_id: int,
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete an activity. Audited. Raises NotFound."""
    raise NotImplementedError


async def list_activities(
    conn: AsyncConnection,
    *,
    user_ids: Sequence[int] | None = None,
    kind: str | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[Activity]:
    """Activities newest first matching every given filter.

    ``user_ids=None`` means anyone's (admins); an empty list matches nothing.
    """
    raise NotImplementedError
