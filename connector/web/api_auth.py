"""Login, logout and "who am I": ``/api/v1/auth/login``, ``/api/v1/auth/logout``, ``/api/v1/me``.

Login trades a login and password for a new API token (shown once) and also sets it as the
``vc_token`` cookie (HttpOnly, SameSite=Lax) so the browser console is signed in without
script access to the token. A wrong password and an unknown login get the same 401 message, so
the answer does not tell which logins exist. Logout revokes the token the request carries;
it stops working at once.
"""

from __future__ import annotations

import logging

from aiohttp import web

from connector.web.api_access import json_ok, user_principal
from connector.web.auth import public
from connector.web.errors import unauthorized
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, read_json
from crm_sync import users

logger = logging.getLogger(__name__)

__all__ = ["COOKIE", "setup"]

COOKIE = "vc_token"
#: The browser cookie lives as long as a month; the token itself lives until revoked.
COOKIE_MAX_AGE = 30 * 24 * 3600
LOGIN_FAILED = "the login or the password is wrong"

LOGIN_BODY = {
    "login": Field("str", required=True, max_length=200, description="the user's login"),
    "password": Field("str", required=True, max_length=1000, description="the user's password"),
    "token_name": Field(
        "str", max_length=100, description="a label for the issued token (default: login)"
    ),
}


@public
async def login(request: web.Request) -> web.Response:
    """Exchange a login and password for a new API token; also sets the vc_token cookie."""
    body = await read_json(request, LOGIN_BODY)
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        user = await users.authenticate(conn, body["login"], body["password"])
        if user is None:
            logger.info("login refused for %r from %s", body["login"][:64], request.remote)
            raise unauthorized(LOGIN_FAILED)
        issued = await users.issue_token(
            conn, user.id, body.get("token_name") or "login", actor_id=user.id
        )
    logger.info("user %s logged in (token %d)", user.login, issued.id)
    response = json_ok({"token": issued.token, "token_id": issued.id, "user": user.to_dict()})
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        COOKIE,
        issued.token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """Revoke the token this request carries (and clear the cookie)."""
    who = user_principal(request)
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        await users.revoke_token(conn, who.token_id, actor_id=who.user_id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    """The calling user, with extensions, and the id of the token in use."""
    who = user_principal(request)
    assert who.user_id is not None
    runtime = request.app[RUNTIME]
    async with runtime.engine.connect() as conn:
        user = await users.get_user(conn, who.user_id)
    return json_ok({**user.to_dict(), "token_id": who.token_id})


ROUTES = [
    ApiRoute(
        "POST",
        "/api/v1/auth/login",
        login,
        "Log in: a new API token for a login and password",
        "auth",
        body=LOGIN_BODY,
        public=True,
        responses={401: "the login or the password is wrong"},
    ),
    ApiRoute(
        "POST",
        "/api/v1/auth/logout",
        logout,
        "Log out: revoke the token in use",
        "auth",
        status=204,
    ),
    ApiRoute("GET", "/api/v1/me", me, "The calling user", "auth"),
]


def setup(app: web.Application) -> None:
    """Add the login, logout and me routes."""
    add_routes(app, ROUTES)
