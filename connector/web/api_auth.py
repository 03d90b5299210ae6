"""Login, logout, "who am I" and one's own password.

``POST /api/v1/auth/login``, ``POST /api/v1/auth/logout``, ``GET /api/v1/me``,
``POST /api/v1/me/password``.

Login trades a login and password for a new API token (shown once) and also sets it as the
``vc_token`` cookie (HttpOnly, SameSite=Lax) so the browser console is signed in without
script access to the token. A wrong password and an unknown login get the same 401 message, so
the answer does not tell which logins exist. Logout revokes the token the request carries;
it stops working at once.

Guessing is throttled: after 10 failed logins within 5 minutes for one login name (or 100 from
one client address), further attempts get 429 until the oldest failure is 5 minutes old.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import Counter

from connector.web.api_access import json_ok, tokens_revoked, user_principal
from connector.web.auth import public
from connector.web.errors import ApiError, bad_request, unauthorized
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, read_json
from crm_sync import users

logger = logging.getLogger(__name__)

__all__ = ["COOKIE", "LoginThrottle", "client_address", "setup"]

COOKIE = "vc_token"
#: The browser cookie lives as long as a month; the token itself lives until revoked.
COOKIE_MAX_AGE = 30 * 24 * 3600
LOGIN_FAILED = "the login or the password is wrong"

#: Failed logins allowed within the window: per login name, and per client address (higher,
#: because many people may share one address behind a proxy or NAT).
MAX_FAILURES_PER_LOGIN = 10
MAX_FAILURES_PER_ADDRESS = 100
FAILURE_WINDOW_SECONDS = 300.0


class LoginThrottle:
    """Refuse logins after too many failures for a login name or from a client address.

    A sliding window per key: once a key has its limit of failures within ``window`` seconds,
    attempts are refused until the oldest of them leaves the window. Keys are
    ``("login", name)`` or ``("addr", address)``. Pure: the caller passes ``now`` (monotonic
    seconds). Memory is bounded by ``max_keys``.
    """

    def __init__(
        self,
        per_login: int = MAX_FAILURES_PER_LOGIN,
        per_address: int = MAX_FAILURES_PER_ADDRESS,
        window: float = FAILURE_WINDOW_SECONDS,
        max_keys: int = 10_000,
    ) -> None:
        self.limits = {"login": per_login, "addr": per_address}
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, keys: list[tuple[str, str]], now: float) -> float | None:
        """Seconds until all of ``keys`` may try again, or None if none is throttled."""
        waits = []
        for key in keys:
            limit = self.limits[key[0]]
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[-limit] + self.window - now)
        return max(waits) if waits else None

    def failed(self, keys: list[tuple[str, str]], now: float) -> None:
        """Count a failed attempt against each key."""
        if len(self._failures) >= self.max_keys:
            for key in list(self._failures):
                self._recent(key, now)
            while len(self._failures) >= self.max_keys:  # still full: forget the oldest
                self._failures.pop(next(iter(self._failures)))
        for key in keys:
            self._failures.setdefault(key, []).append(now)

    def succeeded(self, keys: list[tuple[str, str]]) -> None:
        """A correct password clears the login's failures (not the address's)."""
        for key in keys:
            if key[0] == "login":
                self._failures.pop(key, None)


LOGINS = Counter("connector_logins_total", "Login attempts, by result", ["result"])

LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle", LoginThrottle)


def client_address(request: web.Request) -> str:
    """The client's address: behind a trusted proxy (``server.trusted_proxies``), the rightmost
    ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries further left are
    whatever the client chose to send)."""
    remote = request.remote or "?"
    trusted = set(request.app[RUNTIME].settings.server.trusted_proxies)
    if remote not in trusted:
        return remote
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return remote


def _throttle_keys(request: web.Request, login: str) -> list[tuple[str, str]]:
    return [("login", login.strip().lower()[:64]), ("addr", client_address(request))]


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
    throttle = request.app[LOGIN_THROTTLE]
    keys = _throttle_keys(request, body["login"])
    wait = throttle.retry_after(keys, time.monotonic())
    if wait is not None:
        logger.warning("login throttled for %r from %s", body["login"][:64], keys[1][1])
        LOGINS.labels("throttled").inc()
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again in {max(1, round(wait))} s",
        )
    async with runtime.engine.begin() as conn:
        user = await users.authenticate(conn, body["login"], body["password"])
        if user is None:
            throttle.failed(keys, time.monotonic())
            logger.info("login refused for %r from %s", body["login"][:64], keys[1][1])
            LOGINS.labels("refused").inc()
            raise unauthorized(LOGIN_FAILED)
        throttle.succeeded(keys)
        LOGINS.labels("ok").inc()
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
    tokens_revoked(runtime, [who.token_id])
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


PASSWORD_BODY = {
    "current_password": Field("str", required=True, max_length=1000),
    "new_password": Field("str", required=True, max_length=1000),
}


async def change_password(request: web.Request) -> web.Response:
    """Change your own password (the current one is asked again; guessing is throttled)."""
    who = user_principal(request)
    assert who.user_id is not None
    body = await read_json(request, PASSWORD_BODY)
    throttle = request.app[LOGIN_THROTTLE]
    keys = _throttle_keys(request, who.login)
    wait = throttle.retry_after(keys, time.monotonic())
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", f"too many wrong passwords; try again in {round(wait)} s"
        )
    async with request.app[RUNTIME].engine.begin() as conn:
        user = await users.authenticate(conn, who.login, body["current_password"])
        if user is None or user.id != who.user_id:
            throttle.failed(keys, time.monotonic())
            raise bad_request("the current password is wrong", "current_password")
        await users.set_password(conn, who.user_id, body["new_password"], actor_id=who.user_id)
    return web.Response(status=204)


ROUTES = [
    ApiRoute(
        "POST",
        "/api/v1/auth/login",
        login,
        "Log in: a new API token for a login and password",
        "auth",
        body=LOGIN_BODY,
        public=True,
        responses={
            401: "the login or the password is wrong",
            429: "too many failed logins for this login or address; wait and retry",
        },
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
    ApiRoute(
        "POST",
        "/api/v1/me/password",
        change_password,
        "Change your own password",
        "auth",
        body=PASSWORD_BODY,
        status=204,
        responses={429: "too many wrong current passwords; wait and retry"},
    ),
]


def setup(app: web.Application) -> None:
    """Add the login, logout and me routes."""
    app[LOGIN_THROTTLE] = LoginThrottle()
    add_routes(app, ROUTES)
