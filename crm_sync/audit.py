"""The audit log: who changed what, when. Written in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.fields import aware, utc_now
from crm_sync.paging import Page, check_page
from crm_sync.schema import audit_log

__all__ = ["AuditEntry", "list_audit", "record"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited change."""

    id: int
    at: datetime
    user_id: int | None
    action: str  # e.g. contact.create, user.update, token.revoke
    entity: str  # contact | company | user | task | activity | token | ...
    entity_id: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "user_id": self.user_id,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "details": self.details,
        }


async def record(
    conn: AsyncConnection,
    user_id: int | None,
    action: str,
    entity: str,
    entity_id: object,
    details: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Append one entry; ``user_id`` None means the system (an import, the daemon itself)."""
    await conn.execute(
        audit_log.insert().values(
            at=now or utc_now(),
            user_id=user_id,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            details=details or {},
        )
    )


async def list_audit(
    conn: AsyncConnection,
    *,
    entity: str | None = None,
    entity_id: object = None,
    user_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[AuditEntry]:
    """Entries newest first, optionally for one entity (and id) or one user."""
    limit, offset = check_page(limit, offset)
    conds = []
    if entity is not None:
        conds.append(audit_log.c.entity == entity)
    if entity_id is not None:
        conds.append(audit_log.c.entity_id == str(entity_id))
    if user_id is not None:
        conds.append(audit_log.c.user_id == user_id)
    total = (
        await conn.execute(select(func.count()).select_from(audit_log).where(*conds))
    ).scalar_one()
    rows = await conn.execute(
        select(audit_log).where(*conds).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    )
    items = [
        AuditEntry(
            id=r.id,
            at=aware(r.at) or r.at,
            user_id=r.user_id,
            action=r.action,
            entity=r.entity,
            entity_id=r.entity_id,
            details=dict(r.details or {}),
        )
        for r in rows
    ]
    return Page(items=items, total=int(total), limit=limit, offset=offset)
