"""Request authentication: bearer tokens, and role checks for handlers.

The token is read from ``Authorization: Bearer <token>``; for browsers, where headers cannot be
set (``<audio src>``, websockets), also from the ``vc_token`` cookie or an ``access_token`` query
parameter. Handlers that need no token are marked with :func:`public`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from connector.web.errors import forbidden, unauthorized
from connector.web.keys import RUNTIME
from crm_sync.auth import Principal, resolve_token

__all__ = ["auth_middleware", "principal", "public", "require_role", "token_from_request"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])

PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def public(handler: H) -> H:
    """Mark a handler as needing no token (it authenticates otherwise, or is open)."""
    handler.__dict__["_public"] = True
    return handler


def token_from_request(request: web.Request) -> str | None:
    """The API token a request carries, if any."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    cookie = request.cookies.get("vc_token")
    if cookie:
        return cookie
    return request.query.get("access_token") or None


def _is_public(request: web.Request) -> bool:
    handler = request.match_info.handler
    target = getattr(handler, "__func__", handler)
    return bool(getattr(target, "_public", False))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the token to a :class:`Principal` before any non-public handler runs."""
    if _is_public(request) or request.match_info.http_exception is not None:
        return await handler(request)
    token = token_from_request(request)
    if token is None:
        raise unauthorized("a token is required: Authorization: Bearer <token>")
    runtime = request.app[RUNTIME]
    async with runtime.engine.connect() as conn:
        who = await resolve_token(conn, token)
    if who is None:
        raise unauthorized("the token is unknown or revoked")
    request[PRINCIPAL_KEY] = who
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """The authenticated caller of a non-public handler."""
    who = request.get(PRINCIPAL_KEY)
    if not isinstance(who, Principal):
        raise unauthorized()
    return who


def require_role(request: web.Request, *roles: str) -> Principal:
    """The caller, if their role is one of ``roles``; else 403."""
    who = principal(request)
    if who.role not in roles:
        raise forbidden(f"this needs the role {' or '.join(roles)}; you are {who.role}")
    return who
