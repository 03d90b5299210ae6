"""Click-to-call over REST.

``POST /api/v1/calls`` with ``{"to": "+7 916 123-45-67", "contact_id": 12}`` and an
``Idempotency-Key`` header places a call from the caller's own extension (agent, supervisor or
admin with an extension) and answers ``202 {"call_id", "status", ...}``. Repeating the request
with the same key returns the same call and never places a second one (a key reused for another
number is a 409). When the PBX refuses or is not connected the answer is ``502`` with code
``originate_failed`` (and the same on a retry with that key).

``GET /api/v1/calls/{call_id}`` gives the current status (``requested``, ``agent_ringing``,
``agent_answered``, ``customer_answered``, ``completed``, ``failed`` with a reason such as
"agent did not answer", ``rejected``). Agents see their own calls, supervisors their team's,
admins all. The call's live events (``call.ringing`` for the agent leg, ``call.answered``,
``call.ended`` with ``failure``) reach the agent over the hub as for any call: the conversation
id is the ``call_id``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select

from connector.clicktocall import ClickToCall, InvalidNumber, NoLine, Origination
from connector.web.auth import require_role
from connector.web.errors import bad_request, conflict, error_response, not_found
from connector.web.keys import RUNTIME
from connector.web.validation import parse_json

logger = logging.getLogger(__name__)

__all__ = ["service", "setup"]

MAX_KEY_LENGTH = 200


def service(app: web.Application) -> ClickToCall:
    """The click-to-call service of the app's runtime (created on first use)."""
    runtime = app[RUNTIME]
    existing = runtime.extras.get("clicktocall")
    if isinstance(existing, ClickToCall):
        return existing
    return ClickToCall(runtime)


def _rejected(origination: Origination) -> web.Response:
    return error_response(
        502,
        "originate_failed",
        f"the PBX did not place the call: {origination.reason}",
        call_id=origination.call_id,
    )


def _body(raw: Any) -> tuple[str, int | None]:
    if not isinstance(raw, dict):
        raise bad_request("the body must be a JSON object")
    unknown = sorted(set(raw) - {"to", "contact_id"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}", field=unknown[0])
    to = raw.get("to")
    if not isinstance(to, str) or not to.strip():
        raise bad_request("'to' must be the phone number to call", field="to")
    if len(to) > 64:
        raise bad_request("'to' is too long", field="to")
    contact_id = raw.get("contact_id")
    if contact_id is not None and (
        isinstance(contact_id, bool) or not isinstance(contact_id, int) or contact_id < 1
    ):
        raise bad_request("'contact_id' must be a positive integer", field="contact_id")
    return to.strip(), contact_id


async def _contact_name(request: web.Request, contact_id: int | None) -> str:
    """The name of the contact being called, for the agent's phone display ("" if none)."""
    if contact_id is None:
        return ""
    from crm_sync.schema import contacts

    async with request.app[RUNTIME].engine.connect() as conn:
        name = (
            await conn.execute(select(contacts.c.name).where(contacts.c.id == contact_id))
        ).scalar()
    return str(name or "")


async def create_call(request: web.Request) -> web.StreamResponse:
    """Place a call from your extension to a number (click-to-call)."""
    who = require_role(request, "agent", "supervisor", "admin")
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise bad_request(
            "the Idempotency-Key header is required (any unique string per intended call)",
            field="Idempotency-Key",
        )
    if len(key) > MAX_KEY_LENGTH:
        raise bad_request("the Idempotency-Key header is too long", field="Idempotency-Key")
    body = await request.read()
    if (
        "Authorization" not in request.headers
        and "vc_token" in request.cookies
        and request.content_type != "application/json"
    ):
        # a cross-site form can carry the cookie but not this content type: no calls by CSRF
        raise bad_request("send the body as Content-Type: application/json", code="json_required")
    to, contact_id = _body(parse_json(body))
    shown = await _contact_name(request, contact_id) or f"Call to {to}"
    try:
        origination, created = await service(request.app).place(
            user_id=who.user_id,
            extensions=who.extensions,
            to=to,
            idempotency_key=key,
            contact_id=contact_id,
            caller_name=shown,  # what the agent's phone shows while it rings
        )
    except InvalidNumber as exc:
        raise bad_request(str(exc), field="to", code="invalid_number") from None
    except NoLine as exc:
        raise conflict(str(exc)) from None
    if not created and origination.to != to:
        raise conflict(
            f"Idempotency-Key {key!r} was already used for another number", "Idempotency-Key"
        )
    if origination.status == "rejected":
        return _rejected(origination)
    return web.json_response(origination.to_json(), status=202)


async def get_call(request: web.Request) -> web.StreamResponse:
    """The status of a click-to-call."""
    who = require_role(request, "agent", "supervisor", "admin")
    call_id = request.match_info["call_id"]
    origination = await service(request.app).get(call_id)
    if origination is None:
        raise not_found(f"no click-to-call {call_id}")
    if not who.is_admin and origination.user_id != who.user_id:
        team_of = request.app[RUNTIME].directory.team_of
        same_team = (
            who.is_supervisor
            and origination.user_id is not None
            and bool(who.team)
            and team_of.get(origination.user_id) == who.team
        )
        if not same_team:
            raise not_found(f"no click-to-call {call_id}")
    return web.json_response(origination.to_json())


def setup(app: web.Application) -> None:
    """Add the click-to-call routes."""
    app.router.add_post("/api/v1/calls", create_call)
    app.router.add_get("/api/v1/calls/{call_id}", get_call)
