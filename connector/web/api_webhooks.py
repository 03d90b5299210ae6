"""``/webhooks/{provider}/{account}``: cloud PBX events in, answered only once stored.

Public routes (no token): every request authenticates with the provider's signature or token.
Answers:

* ``200`` once the event is durably in the inbox (a duplicate is also ``200``); Zadarma's
  ``GET ?zd_echo=X`` is answered ``X``; MegaFon's ``cmd=contact`` with the contact's name and
  responsible user from the CRM; Zadarma's ``NOTIFY_START`` on an account with
  ``route_calls`` with ``{"redirect": "<extension>", "caller_name": "<name>"}`` (see below);
* ``400`` malformed body or unknown event (the reason is in the JSON error body);
* ``401`` bad or missing signature/token, or a replayed (too old) signed request;
* ``403`` source address not in the account's ``allow_ips``;
* ``404`` unknown provider or account; ``413`` body larger than ``server.max_body_bytes``;
* ``503`` when the inbox cannot be written (the provider retries).

Mango posts to the account URL plus its event path (``/webhooks/mango/<account>/events/call``),
so everything below the account URL is accepted too.

Dynamic routing (Zadarma, ``route_calls = true``): the answer to ``NOTIFY_START`` names the
extension that should take the caller on that account's PBX, decided as ``GET /api/v1/route``
decides (:func:`crm_sync.routing.route`: the responsible manager, then the ``[calllog]`` fallback
chain), and the caller's name from the CRM. The decision is looked up while the event is being
stored; the event is stored and processed exactly as without routing. If the decision is not
ready ``route_budget_ms`` after the request arrived (a slow store), or the lookup fails, the
answer is empty and Zadarma follows its own scenario: a late redirect is worse than none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError

from connector.adapters import megafon, zadarma
from connector.adapters.errors import (
    WebhookError,
    WebhookMalformedError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookUnknownEvent,
)
from connector.adapters.webhook_request import Decoded, WebhookRequest
from connector.config import WebhookAccountSettings
from connector.web.api_auth import client_address
from connector.web.auth import public
from connector.web.errors import error_response
from connector.web.keys import RUNTIME
from connector.webhooks_inbox import CODECS, INBOX_KEY, InboxWorker, account_of, store

logger = logging.getLogger(__name__)

__all__ = ["REQUESTS", "ROUTES", "setup"]

REQUESTS = Counter(
    "connector_webhook_requests_total",
    "Webhook requests by provider and result (accepted, duplicate, bad_signature, replayed, "
    "malformed, unknown_event, forbidden_ip, unknown_account, too_large, unavailable)",
    ["provider", "result"],
)

ROUTES = Counter(
    "connector_webhook_routes_total",
    "Synchronous routing answers by provider and result (redirect: an extension was named, "
    "name_only: only the caller's name, neutral: nothing known, late: over the time budget, "
    "failed: the lookup raised)",
    ["provider", "result"],
)

# Routing lookups that outlived their request: kept referenced until they finish.
_LEFT_RUNNING: set[asyncio.Task[Any]] = set()

_KEEP_HEADERS = ("content-type", "signature", "x-connector-timestamp", "x-connector-signature")


def _ip_allowed(account: WebhookAccountSettings, remote: str) -> bool:
    if not account.allow_ips:
        return True
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in account.allow_ips:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            logger.warning(
                "%s: allow_ips entry %r is not an address or CIDR", account.pbx_name, entry
            )
    return False


def _reject(provider: str, result: str, status: int, code: str, message: str) -> web.Response:
    REQUESTS.labels(provider, result).inc()
    return error_response(status, code, message)


async def _contact(
    request: web.Request, account: WebhookAccountSettings, phone: str
) -> web.Response:
    """MegaFon ``cmd=contact``: the contact's name and responsible user's login, or empty."""
    runtime = request.app[RUNTIME]
    name, responsible = "", ""
    try:
        from crm_sync.lookup import lookup

        async with runtime.engine.connect() as conn:
            found = await lookup(conn, phone, runtime.settings.storage.default_region)
        if found.matches:
            best = found.matches[0]
            name = best.name
            if best.responsible_user_id is not None:
                responsible = runtime.directory.login_of.get(best.responsible_user_id, "")
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        logger.warning("%s: contact lookup for a caller failed: %s", account.pbx_name, exc)
    REQUESTS.labels(account.provider, "contact").inc()
    body: dict[str, str] = {"contact_name": name}
    if responsible:
        body["responsible"] = responsible
    return web.json_response(body)


async def _route_caller(
    request: web.Request, account: WebhookAccountSettings, number: str
) -> dict[str, str] | None:
    """Zadarma's answer for a caller: the extension that should take it and the name (None:
    the lookup failed, logged and counted)."""
    from crm_sync.routing import route

    runtime = request.app[RUNTIME]
    cfg = runtime.settings.calllog
    try:
        async with runtime.engine.connect() as conn:
            decision = await route(
                conn,
                number=number,
                pbx=account.pbx_name,
                region=runtime.settings.storage.default_region,
                chain=cfg.fallback_chain,
                fallback_team=cfg.fallback_team,
                fallback_user=cfg.fallback_user,
            )
    except (SQLAlchemyError, ValueError, OSError) as exc:
        logger.warning("%s: routing a caller failed: %s", account.pbx_name, exc)
        ROUTES.labels(account.provider, "failed").inc()
        return None
    except Exception:  # the event is stored already: the provider still gets its 200
        logger.exception("%s: routing a caller failed", account.pbx_name)
        ROUTES.labels(account.provider, "failed").inc()
        return None
    answer = zadarma.route_answer(decision.extension, decision.name)
    if decision.extension and "redirect" not in answer:
        logger.warning(
            "%s: extension %r cannot be a Zadarma redirect (2 to 5 digits)",
            account.pbx_name,
            decision.extension,
        )
    logger.info(
        "%s: route call -> %r: %s", account.pbx_name, answer.get("redirect", ""), decision.reason
    )
    return answer


def _start_routing(
    request: web.Request, account: WebhookAccountSettings, decoded: Decoded
) -> asyncio.Task[dict[str, str] | None] | None:
    """Begin looking up the route for a Zadarma ``NOTIFY_START``, if the account routes calls."""
    if account.provider != "zadarma" or not account.route_calls:
        return None
    number = zadarma.routing_number(decoded)
    if number is None:
        return None
    task = asyncio.create_task(_route_caller(request, account, number), name="webhook-route")
    _LEFT_RUNNING.add(task)
    task.add_done_callback(_LEFT_RUNNING.discard)
    return task


async def _routing_answer(
    account: WebhookAccountSettings, task: asyncio.Task[dict[str, str] | None], deadline: float
) -> web.Response:
    """The route if it is ready by ``deadline`` (loop time), else an empty answer.

    A late lookup is not cancelled (that would cut a database call short); it finishes on its
    own and its result is dropped."""
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    done, _ = await asyncio.wait({task}, timeout=remaining)
    if not done:
        logger.warning(
            "%s: no route within %d ms; answered without routing",
            account.pbx_name,
            account.route_budget_ms,
        )
        ROUTES.labels(account.provider, "late").inc()
        return web.Response(status=200, text="")
    answer = None if task.cancelled() else task.result()
    if answer is None:
        return web.Response(status=200, text="")
    if "redirect" in answer:
        ROUTES.labels(account.provider, "redirect").inc()
    elif answer:
        ROUTES.labels(account.provider, "name_only").inc()
    else:
        ROUTES.labels(account.provider, "neutral").inc()
    if not answer:
        return web.Response(status=200, text="")
    return web.json_response(answer)


@public
async def receive(request: web.Request) -> web.StreamResponse:
    """Verify, store durably, acknowledge; processing happens in the inbox worker."""
    runtime = request.app[RUNTIME]
    arrived = asyncio.get_running_loop().time()
    provider = request.match_info["provider"]
    codec = CODECS.get(provider)
    account = account_of(runtime.settings.webhook, provider, request.match_info["account"])
    label = provider if codec is not None else "unknown"
    if codec is None or account is None:
        return _reject(label, "unknown_account", 404, "not_found", "no such webhook account")
    if not _ip_allowed(account, client_address(request)):
        return _reject(provider, "forbidden_ip", 403, "forbidden", "source address not allowed")
    limit = runtime.settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(provider, "too_large", 413, "too_large", f"the body exceeds {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _reject(provider, "too_large", 413, "too_large", f"the body exceeds {limit} bytes")
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in _KEEP_HEADERS}
    wreq = WebhookRequest(
        body=body,
        headers=headers,
        query=dict(request.query),
        path=request.match_info.get("tail", ""),
        method=request.method,
    )
    now = datetime.now(UTC)
    try:
        if provider == "zadarma" and request.method == "GET":
            echo = zadarma.echo_reply(wreq)
            if echo is None:
                raise WebhookMalformedError("GET is only for the zd_echo URL check")
            REQUESTS.labels(provider, "echo").inc()
            return web.Response(text=echo, content_type="text/plain")
        if request.method != "POST":
            raise WebhookMalformedError("webhooks are POSTed")
        codec.verify(account, wreq, now)
        if provider == "megafon":
            query = megafon.contact_query(wreq)
            if query is not None:
                return await _contact(request, account, query[0])
        decoded = codec.parse(account, wreq, now)
    except WebhookSignatureError as exc:
        logger.warning("%s: rejected webhook from %s: %s", account.pbx_name, request.remote, exc)
        return _reject(provider, "bad_signature", 401, "bad_signature", str(exc))
    except WebhookReplayError as exc:
        logger.warning(
            "%s: replayed or late webhook from %s: %s", account.pbx_name, request.remote, exc
        )
        return _reject(provider, "replayed", 401, "replayed", str(exc))
    except WebhookUnknownEvent as exc:
        return _reject(provider, "unknown_event", 400, "unknown_event", str(exc))
    except WebhookMalformedError as exc:
        return _reject(provider, "malformed", 400, "malformed", str(exc))
    except WebhookError as exc:
        return _reject(provider, "malformed", 400, "bad_request", str(exc))
    routing = _start_routing(request, account, decoded)
    try:
        fresh = await store(runtime.engine, account, wreq, decoded, now)
    except SQLAlchemyError:
        logger.exception("%s: the webhook inbox cannot be written", account.pbx_name)
        return _reject(provider, "unavailable", 503, "unavailable", "try again later")
    REQUESTS.labels(provider, "accepted" if fresh else "duplicate").inc()
    worker = runtime.extras.get(INBOX_KEY)
    if fresh and isinstance(worker, InboxWorker):
        worker.wake()
    if provider == "generic":
        return web.json_response({"accepted": True, "duplicate": not fresh})
    if routing is not None:
        return await _routing_answer(account, routing, arrived + account.route_budget_ms / 1000)
    return web.Response(status=200, text="")


def setup(app: web.Application) -> None:
    """Add the webhook routes."""
    for path in ("/webhooks/{provider}/{account}", "/webhooks/{provider}/{account}{tail:/.*}"):
        app.router.add_route("POST", path, receive)
        app.router.add_route("GET", path, receive)
