"""Who should handle a caller: the responsible manager, else the fallback chain.

The chain is ``[calllog] fallback_chain``, a list of steps tried in order:

* ``responsible``  - the responsible manager of the matched contact (or of its company);
* ``last_agent``   - for a missed call, the last agent whose phone rang; for routing, the agent
  who last answered a call with this number;
* ``team``         - ``[calllog] fallback_team``: its supervisor, else its first member;
* ``default_user`` - ``[calllog] fallback_user`` (a login).

A step is skipped when it names nobody, an inactive user, or (for routing) a user without an
extension on the asking PBX. :func:`choose` is the pure core; :func:`route` and
:func:`assignee_for` gather the facts from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.schema import activities, extensions, users

__all__ = [
    "Candidate",
    "Choice",
    "RouteDecision",
    "assignee_for",
    "choose",
    "route",
    "team_lead",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One step of the chain and the user it names (None: the step has nobody)."""

    step: str
    user_id: int | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Choice:
    """The user the chain settled on (or None) and why."""

    user_id: int | None
    step: str | None
    reason: str


def choose(
    chain: Sequence[str],
    candidates: dict[str, Candidate],
    usable: Callable[[int], str | None],
) -> Choice:
    """Walk ``chain`` over ``candidates``; ``usable(uid)`` returns None or why it is skipped.

    Pure: the caller has looked everything up already.
    """
    skipped: list[str] = []
    for step in chain:
        cand = candidates.get(step)
        if cand is None or cand.user_id is None:
            skipped.append(
                f"{step}: nobody" + (f" ({cand.detail})" if cand and cand.detail else "")
            )
            continue
        why_not = usable(cand.user_id)
        if why_not is not None:
            skipped.append(f"{step}: user {cand.user_id} {why_not}")
            continue
        detail = f" ({cand.detail})" if cand.detail else ""
        reason = f"{step}{detail}"
        if skipped:
            reason += "; skipped " + ", ".join(skipped)
        return Choice(cand.user_id, step, reason)
    return Choice(None, None, "nobody found; " + ", ".join(skipped) if skipped else "empty chain")


async def team_lead(conn: AsyncConnection, team: str) -> int | None:
    """The team's active supervisor (lowest id), else its first active member, else None."""
    if not team:
        return None
    rows = (
        await conn.execute(
            select(users.c.id, users.c.role)
            .where(users.c.team == team, users.c.active.is_(True))
            .order_by(users.c.id)
        )
    ).all()
    for row in rows:
        if row.role == "supervisor":
            return int(row.id)
    return int(rows[0].id) if rows else None


async def _user_by_login(conn: AsyncConnection, login: str) -> int | None:
    if not login:
        return None
    row = (await conn.execute(select(users.c.id).where(users.c.login == login))).first()
    return int(row.id) if row else None


async def _active(conn: AsyncConnection, ids: set[int]) -> dict[int, bool]:
    if not ids:
        return {}
    rows = await conn.execute(select(users.c.id, users.c.active).where(users.c.id.in_(ids)))
    return {int(r.id): bool(r.active) for r in rows}


async def _fallback_candidates(
    conn: AsyncConnection, fallback_team: str, fallback_user: str
) -> dict[str, Candidate]:
    return {
        "team": Candidate("team", await team_lead(conn, fallback_team), fallback_team),
        "default_user": Candidate(
            "default_user", await _user_by_login(conn, fallback_user), fallback_user
        ),
    }


async def assignee_for(
    conn: AsyncConnection,
    *,
    chain: Sequence[str],
    responsible_user_id: int | None,
    last_agent_user_id: int | None,
    fallback_team: str,
    fallback_user: str,
) -> Choice:
    """Who gets a callback task: the chain over the given responsible manager and last agent."""
    cands = {
        "responsible": Candidate("responsible", responsible_user_id),
        "last_agent": Candidate("last_agent", last_agent_user_id),
        **await _fallback_candidates(conn, fallback_team, fallback_user),
    }
    ids = {c.user_id for c in cands.values() if c.user_id is not None}
    active = await _active(conn, ids)
    return choose(chain, cands, lambda uid: None if active.get(uid) else "is not active")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where the PBX should send a caller."""

    extension: str
    user_id: int | None
    step: str | None
    reason: str
    contact_id: int | None = None
    company_id: int | None = None
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "extension": self.extension,
            "user_id": self.user_id,
            "step": self.step,
            "reason": self.reason,
            "contact_id": self.contact_id,
            "company_id": self.company_id,
            "name": self.name,
        }


async def _last_answering_agent(conn: AsyncConnection, e164: str | None, raw: str) -> int | None:
    keys = [k for k in (e164, raw) if k]
    if not keys:
        return None
    row = (
        await conn.execute(
            select(activities.c.answered_by_user_id)
            .where(
                activities.c.kind == "call",
                activities.c.answered_by_user_id.is_not(None),
                or_(
                    activities.c.caller_e164.in_(keys),
                    activities.c.callee_e164.in_(keys),
                ),
            )
            .order_by(activities.c.started_at.desc(), activities.c.id.desc())
            .limit(1)
        )
    ).first()
    return int(row.answered_by_user_id) if row else None


async def route(
    conn: AsyncConnection,
    *,
    number: str,
    pbx: str,
    region: str,
    chain: Sequence[str],
    fallback_team: str = "",
    fallback_user: str = "",
) -> RouteDecision:
    """Which extension on ``pbx`` should ring for a call from ``number``.

    Looks the number up (:func:`crm_sync.lookup.lookup`), then walks the chain, skipping users
    who are inactive or have no extension on ``pbx``. Returns an empty extension with the reason
    when nobody fits; never raises on odd numbers.
    """
    from crm_sync.lookup import lookup

    found = await lookup(conn, number, region, limit=1)
    best = found.best
    cands = {
        "responsible": Candidate(
            "responsible",
            best.responsible_user_id if best else None,
            f"{best.kind} {best.id} {best.name}" if best else "no contact matches",
        ),
        "last_agent": Candidate(
            "last_agent", await _last_answering_agent(conn, found.e164, number), "last answered"
        ),
        **await _fallback_candidates(conn, fallback_team, fallback_user),
    }
    ids = {c.user_id for c in cands.values() if c.user_id is not None}
    active = await _active(conn, ids)
    exts: dict[int, str] = {}
    if ids:
        rows = await conn.execute(
            select(extensions.c.user_id, extensions.c.pbx, extensions.c.extension)
            .where(extensions.c.user_id.in_(ids), extensions.c.pbx.in_([pbx, "*"]))
            .order_by(extensions.c.id)
        )
        for r in rows:
            # an extension on this very PBX wins over a wildcard one
            if r.pbx == pbx:
                exts[int(r.user_id)] = r.extension
            else:
                exts.setdefault(int(r.user_id), r.extension)

    def usable(uid: int) -> str | None:
        if not active.get(uid):
            return "is not active"
        if uid not in exts:
            return f"has no extension on {pbx}"
        return None

    picked = choose(chain, cands, usable)
    return RouteDecision(
        extension=exts.get(picked.user_id, "") if picked.user_id is not None else "",
        user_id=picked.user_id,
        step=picked.step,
        reason=picked.reason,
        contact_id=(best.id if best.kind == "contact" else None) if best else None,
        company_id=best.company_id if best else None,
        name=best.name if best else "",
    )
