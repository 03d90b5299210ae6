"""Users and their extensions (``/api/v1/users``).

Everyone may list users in a minimal form (id, login, name, role, team, active) for pickers
("assign to...", "responsible manager"); admins see everything and alone may create, change,
delete users and give or take extensions. Every change reloads the runtime's directory of
extensions, so the call tracker knows at once who owns which phone.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.web.api_access import json_ok, tokens_revoked, user_principal
from connector.web.errors import conflict
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import (
    PAGE_QUERY,
    Field,
    page_params,
    parse_query,
    path_id,
    read_json,
    require_any,
)
from crm_sync import users

__all__ = ["minimal", "setup"]

ADMIN = ("admin",)
EXTENSION_BODY = {
    "pbx": Field("str", required=True, max_length=100, min_length=1, description='PBX name or "*"'),
    "extension": Field("str", required=True, max_length=40, min_length=1),
}
USER_BODY = {
    "login": Field("str", required=True, max_length=64, min_length=1),
    "name": Field("str", required=True, max_length=200, min_length=1),
    "role": Field("str", required=True, choices=users.ROLES),
    "team": Field("str", max_length=100),
    "active": Field("bool"),
    "password": Field("str", max_length=1000, nullable=True, description="write only"),
    "extensions": Field(
        "list",
        items=Field("object", fields=EXTENSION_BODY),
        max_items=50,
        description="replaces the user's extensions",
    ),
}
UPDATE_BODY = {k: v for k, v in USER_BODY.items() if k != "login"}
LIST_QUERY = {
    "q": Field("str", max_length=200, description="name or login contains"),
    "team": Field("str", max_length=100),
    "role": Field("str", choices=users.ROLES),
    "active": Field("bool"),
    **PAGE_QUERY,
}


def minimal(user: users.User) -> dict[str, Any]:
    """What every user may know of another: enough to pick them in a list."""
    return {
        "id": user.id,
        "login": user.login,
        "name": user.name,
        "role": user.role,
        "team": user.team,
        "active": user.active,
    }


async def _live_token_ids(conn: AsyncConnection, user_id: int) -> list[int]:
    return [t.id for t in await users.list_tokens(conn, user_id=user_id)]


async def list_users(request: web.Request) -> web.Response:
    """Users (minimal fields unless you are an admin), by login, a page at a time."""
    who = user_principal(request)
    query = parse_query(request, LIST_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        page = await users.list_users(
            conn,
            team=query.get("team"),
            role=query.get("role"),
            active=query.get("active"),
            name=query.get("q"),
            limit=limit,
            offset=offset,
        )
    return json_ok(page.to_dict(None if who.is_admin else minimal))


async def get_user(request: web.Request) -> web.Response:
    """One user: everything for admins and for yourself, the minimal form otherwise."""
    who = user_principal(request)
    user_id = path_id(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        user = await users.get_user(conn, user_id)
    full = who.is_admin or who.user_id == user.id
    return json_ok(user.to_dict() if full else minimal(user))


async def create_user(request: web.Request) -> web.Response:
    """Create a user (admins)."""
    who = user_principal(request, *ADMIN)
    body = await read_json(request, USER_BODY)
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        user = await users.create_user(conn, body, actor_id=who.user_id)
    await runtime.reload_directory()
    return json_ok(user.to_dict(), status=201)


async def update_user(request: web.Request) -> web.Response:
    """Change a user's name, role, team, active flag, password or extensions (admins)."""
    who = user_principal(request, *ADMIN)
    user_id = path_id(request)
    body = await read_json(request, UPDATE_BODY, partial=True)
    require_any(body)
    if user_id == who.user_id and (
        body.get("role", "admin") != "admin" or body.get("active", True) is False
    ):
        raise conflict("you cannot demote or deactivate yourself; another admin can", "role")
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        live = await _live_token_ids(conn, user_id) if body.get("active") is False else []
        user = await users.update_user(conn, user_id, body, actor_id=who.user_id)
    await runtime.reload_directory()
    tokens_revoked(runtime, live)  # a deactivated user's tokens stop working
    return json_ok(user.to_dict())


async def delete_user(request: web.Request) -> web.Response:
    """Delete a user with their extensions and tokens (admins; not themselves)."""
    who = user_principal(request, *ADMIN)
    user_id = path_id(request)
    if user_id == who.user_id:
        raise conflict("you cannot delete yourself; another admin can", "id")
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        live = await _live_token_ids(conn, user_id)
        await users.delete_user(conn, user_id, actor_id=who.user_id)
    await runtime.reload_directory()
    tokens_revoked(runtime, live)
    return web.Response(status=204)


async def add_extension(request: web.Request) -> web.Response:
    """Give a user an extension on a PBX (admins); 409 if someone has it."""
    who = user_principal(request, *ADMIN)
    user_id = path_id(request)
    body = await read_json(request, EXTENSION_BODY)
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        user = await users.add_extension(
            conn, user_id, body["pbx"], body["extension"], actor_id=who.user_id
        )
    await runtime.reload_directory()
    return json_ok(user.to_dict(), status=201)


async def remove_extension(request: web.Request) -> web.Response:
    """Take an extension away from a user (admins)."""
    who = user_principal(request, *ADMIN)
    user_id = path_id(request)
    pbx = request.match_info["pbx"]
    extension = request.match_info["extension"]
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        user = await users.remove_extension(conn, user_id, pbx, extension, actor_id=who.user_id)
    await runtime.reload_directory()
    return json_ok(user.to_dict())


ROUTES = [
    ApiRoute("GET", "/api/v1/users", list_users, "List users", "users", query=LIST_QUERY),
    ApiRoute(
        "POST",
        "/api/v1/users",
        create_user,
        "Create a user",
        "users",
        body=USER_BODY,
        roles=ADMIN,
        status=201,
        responses={409: "the login or an extension is taken"},
    ),
    ApiRoute("GET", "/api/v1/users/{id}", get_user, "One user", "users"),
    ApiRoute(
        "PATCH",
        "/api/v1/users/{id}",
        update_user,
        "Change a user",
        "users",
        body=UPDATE_BODY,
        partial=True,
        roles=ADMIN,
        responses={409: "an extension is taken"},
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/users/{id}",
        delete_user,
        "Delete a user",
        "users",
        roles=ADMIN,
        status=204,
    ),
    ApiRoute(
        "POST",
        "/api/v1/users/{id}/extensions",
        add_extension,
        "Give a user an extension",
        "users",
        body=EXTENSION_BODY,
        roles=ADMIN,
        status=201,
        responses={409: "the extension belongs to someone"},
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/users/{id}/extensions/{pbx}/{extension}",
        remove_extension,
        "Take an extension away",
        "users",
        roles=ADMIN,
    ),
]


def setup(app: web.Application) -> None:
    """Add the user routes."""
    add_routes(app, ROUTES)
