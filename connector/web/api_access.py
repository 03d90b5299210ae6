"""Who may call the REST API's CRM endpoints, and small pieces every API module shares.

Roles (see DESIGN.md "Security"): ``agent``, ``supervisor`` and ``admin`` are people;
``pbx`` tokens belong to a PBX integration and may not use the CRM endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.web.auth import principal
from connector.web.errors import forbidden
from crm_sync import users
from crm_sync.auth import Principal

if TYPE_CHECKING:
    from connector.app import Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_ROLES",
    "USER_ROLES",
    "json_ok",
    "may_see",
    "narrowed_view",
    "tokens_revoked",
    "user_principal",
    "visible_user_ids",
]

USER_ROLES = ("agent", "supervisor", "admin")
ALL_ROLES = (*USER_ROLES, "pbx")


def user_principal(request: web.Request, *roles: str) -> Principal:
    """The caller, who must be a person (not a PBX token) and, if ``roles`` are given, have one.

    403 otherwise, naming the role needed.
    """
    who = principal(request)
    allowed = roles or USER_ROLES
    if who.user_id is None or who.role not in allowed:
        raise forbidden(f"this needs the role {' or '.join(allowed)}; you are {who.role}")
    return who


def json_ok(data: Any, status: int = 200) -> web.Response:
    """A JSON response."""
    return web.json_response(data, status=status)


async def visible_user_ids(conn: AsyncConnection, who: Principal) -> list[int] | None:
    """Whose tasks and activities ``who`` may see: None means everyone's (admins).

    Agents see their own; supervisors their team's (themselves included).
    """
    assert who.user_id is not None
    if who.is_admin:
        return None
    if who.is_supervisor and who.team:
        ids = await users.team_member_ids(conn, who.team)
        return sorted({*ids, who.user_id})
    return [who.user_id]


def may_see(ids: list[int] | None, *user_ids: int | None) -> bool:
    """True if any of ``user_ids`` is among the visible ``ids`` (None: all visible)."""
    if ids is None:
        return True
    return any(u is not None and u in ids for u in user_ids)


async def narrowed_view(
    conn: AsyncConnection, who: Principal, wanted: int | None, what: str
) -> list[int] | None:
    """Whose ``what`` (tasks, activities) a listing shows: ``who``'s view, or only ``wanted``.

    403 when ``wanted`` is outside the view.
    """
    ids = await visible_user_ids(conn, who)
    if wanted is None:
        return ids
    if not may_see(ids, wanted):
        raise forbidden(f"you may list only your own or your team's {what}")
    return [wanted]


def tokens_revoked(runtime: Runtime, token_ids: Iterable[int]) -> None:
    """Tell live connections (the screen-pop hub) that these tokens died, so they close now.

    The hub registers ``runtime.extras["on_token_revoked"]``; without a hub nothing happens.
    A failing hook is logged and never fails the request (the hub also re-checks tokens on
    its own every few seconds).
    """
    hook = runtime.extras.get("on_token_revoked")
    if hook is None:
        return
    for token_id in token_ids:
        try:
            hook(token_id)
        except Exception:
            logger.exception("on_token_revoked hook failed for token %s", token_id)
