"""API tokens: list, issue and revoke (``/api/v1/tokens``).

Everyone manages their own tokens; admins may list, issue and revoke anyone's, and issue
PBX-scoped tokens (``{"pbx": "main"}``) for a dialplan or provider to call the routing and
lookup endpoints. A token is shown once, in the answer to the POST that creates it; lists show
only its first characters. A revoked token is refused by the very next request.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.web.api_access import json_ok, tokens_revoked, user_principal
from connector.web.errors import bad_request, forbidden
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, parse_query, path_id, read_json
from crm_sync import audit, auth, users
from crm_sync.auth import Principal

__all__ = ["setup"]

LIST_QUERY = {
    "user_id": Field("int", minimum=1, description="whose tokens (admins: default everyone's)"),
    "include_revoked": Field("bool", description="also list revoked tokens"),
}
CREATE_BODY = {
    "name": Field("str", max_length=100, description="a label, e.g. the program using it"),
    "user_id": Field("int", minimum=1, description="for whom (admins only; default yourself)"),
    "pbx": Field(
        "str",
        max_length=100,
        min_length=1,
        description="issue a PBX-scoped token for this PBX instead (admins only; it may ask "
        "/api/v1/route and /api/v1/lookup)",
    ),
}


async def list_tokens(request: web.Request) -> web.Response:
    """Tokens of the caller (admins: of anyone, or everyone's); never the tokens themselves."""
    who = user_principal(request)
    query = parse_query(request, LIST_QUERY)
    user_id = query.get("user_id")
    if not who.is_admin:
        if user_id is not None and user_id != who.user_id:
            raise forbidden("only admins may list other users' tokens")
        user_id = who.user_id
    async with request.app[RUNTIME].engine.connect() as conn:
        tokens = await users.list_tokens(
            conn, user_id=user_id, include_revoked=bool(query.get("include_revoked"))
        )
    return json_ok({"items": [t.to_dict() for t in tokens], "total": len(tokens)})


async def create_token(request: web.Request) -> web.Response:
    """Issue a new token (shown once in this answer)."""
    who = user_principal(request)
    body = await read_json(request, CREATE_BODY)
    if "pbx" in body:
        return await _create_pbx_token(request, who, body)
    owner = body.get("user_id") or who.user_id
    assert owner is not None
    if owner != who.user_id and not who.is_admin:
        raise forbidden("only admins may issue tokens for other users")
    async with request.app[RUNTIME].engine.begin() as conn:
        issued = await users.issue_token(conn, owner, body.get("name") or "", actor_id=who.user_id)
    response = json_ok(issued.to_dict(), status=201)
    response.headers["Cache-Control"] = "no-store"  # the token is in it
    return response


async def _create_pbx_token(
    request: web.Request, who: Principal, body: dict[str, Any]
) -> web.Response:
    if not who.is_admin:
        raise forbidden("only admins may issue PBX tokens")
    if "user_id" in body:
        raise bad_request("a token is for a user or for a PBX, not both", "user_id")
    pbx = body["pbx"].strip()
    name = body.get("name") or f"pbx {pbx}"
    async with request.app[RUNTIME].engine.begin() as conn:
        token_id, token = await auth.issue_token(conn, None, name, scope="pbx", pbx=pbx)
        await audit.record(
            conn,
            who.user_id,
            "token.issue",
            "token",
            token_id,
            {"scope": "pbx", "pbx": pbx, "name": name, "prefix": token[:10]},
        )
    response = json_ok(
        {
            "id": token_id,
            "token": token,
            "prefix": token[:10],
            "name": name,
            "user_id": None,
            "pbx": pbx,
        },
        status=201,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a token: your own, or (admins) anyone's. 404 for someone else's."""
    who = user_principal(request)
    token_id = path_id(request)
    async with request.app[RUNTIME].engine.begin() as conn:
        await users.revoke_token(
            conn,
            token_id,
            actor_id=who.user_id,
            owner_id=None if who.is_admin else who.user_id,
        )
    tokens_revoked(request.app[RUNTIME], [token_id])
    return web.Response(status=204)


ROUTES = [
    ApiRoute("GET", "/api/v1/tokens", list_tokens, "List API tokens", "tokens", query=LIST_QUERY),
    ApiRoute(
        "POST",
        "/api/v1/tokens",
        create_token,
        "Issue an API token (shown once)",
        "tokens",
        body=CREATE_BODY,
        status=201,
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/tokens/{id}",
        revoke_token,
        "Revoke an API token",
        "tokens",
        status=204,
        responses={404: "no such live token of yours"},
    ),
]


def setup(app: web.Application) -> None:
    """Add the token routes."""
    add_routes(app, ROUTES)
