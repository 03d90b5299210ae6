"""Outgoing webhook subscriptions and their delivery log (``/api/v1/webhooks``), admins only.

Also the inbox of incoming provider webhooks (``/api/v1/webhooks/inbox``), to see what arrived
and why a row failed.

A subscription is a URL, the event types it wants (``call.ringing``, ``call.ended``,
``recording.ready``, ``task.created``..., or ``*``), a signing secret (generated when not
given, shown to admins) and an optional rate limit. Deliveries are listed per subscription
with their status (``pending``, ``delivered``, ``dead``), attempts and last error; a dead (or
pending) delivery can be retried now.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select, update

from connector.events.model import EVENT_TYPES
from connector.outbox import OUTBOX_KEY, OutboxWorker
from connector.web.api_access import json_ok, user_principal
from connector.web.errors import bad_request, not_found
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, parse_query, path_id, read_json
from crm_sync.schema import webhook_deliveries, webhook_inbox, webhook_subscriptions

__all__ = ["setup"]

ADMIN = ("admin",)
TYPES = ("*", *sorted(EVENT_TYPES))
STATUSES = ("pending", "delivered", "dead")

BODY = {
    "url": Field("str", required=True, max_length=1000, description="http(s) URL to POST to"),
    "event_types": Field(
        "list",
        required=True,
        items=Field("str", choices=TYPES),
        max_items=len(TYPES),
        description="event types to deliver ('*' for all)",
    ),
    "secret": Field("str", min_length=16, max_length=200, description="signing secret"),
    "active": Field("bool", description="deliver (true) or pause (false)"),
    "rate_per_second": Field(
        "float", nullable=True, minimum=0.01, maximum=100000, description="per-endpoint limit"
    ),
}
INBOX_QUERY = {
    "status": Field("str", choices=("pending", "done", "failed"), description="row state"),
    "provider": Field("str", max_length=32, description="only this provider"),
    "limit": Field("int", minimum=1, maximum=1000, description="at most this many (100)"),
}
LOG_QUERY = {
    "status": Field("str", choices=STATUSES, description="only deliveries in this state"),
    "limit": Field("int", minimum=1, maximum=1000, description="at most this many (100)"),
}


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")) or len(url) < 10:
        raise bad_request("url must be an http:// or https:// URL", "url")


def _sub(row: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "url": row.url,
        "event_types": list(row.event_types),
        "secret": row.secret,
        "active": bool(row.active),
        "rate_per_second": row.rate_per_second,
        "created_at": _iso(row.created_at),
    }
    if counts is not None:
        out["deliveries"] = {s: counts.get(s, 0) for s in STATUSES}
    return out


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription_id": row.subscription_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": _iso(row.created_at),
        "delivered_at": _iso(row.delivered_at),
    }


async def _counts(conn: Any, sub_id: int) -> dict[str, int]:
    d = webhook_deliveries
    rows = await conn.execute(
        select(d.c.status, func.count()).where(d.c.subscription_id == sub_id).group_by(d.c.status)
    )
    return {status: int(n) for status, n in rows}


async def _get(conn: Any, sub_id: int) -> Any:
    row = (
        await conn.execute(
            select(webhook_subscriptions).where(webhook_subscriptions.c.id == sub_id)
        )
    ).first()
    if row is None:
        raise not_found(f"no subscription {sub_id}")
    return row


async def list_subscriptions(request: web.Request) -> web.Response:
    """Every subscription with its delivery counts."""
    user_principal(request, *ADMIN)
    async with request.app[RUNTIME].engine.connect() as conn:
        rows = list(
            await conn.execute(select(webhook_subscriptions).order_by(webhook_subscriptions.c.id))
        )
        items = [_sub(r, await _counts(conn, r.id)) for r in rows]
    return json_ok({"items": items, "total": len(items)})


async def create_subscription(request: web.Request) -> web.Response:
    """Subscribe a URL to event types; the secret is generated unless given."""
    who = user_principal(request, *ADMIN)
    body = await read_json(request, BODY)
    _check_url(body["url"])
    if not body["event_types"]:
        raise bad_request("event_types must name at least one type", "event_types")
    values = {
        "url": body["url"],
        "event_types": sorted(set(body["event_types"])),
        "secret": body.get("secret") or secrets.token_urlsafe(32),
        "active": body.get("active", True),
        "rate_per_second": body.get("rate_per_second"),
        "created_by": who.user_id,
        "created_at": datetime.now(UTC),
    }
    async with request.app[RUNTIME].engine.begin() as conn:
        res = await conn.execute(
            webhook_subscriptions.insert().values(**values).returning(webhook_subscriptions.c.id)
        )
        row = await _get(conn, int(res.scalar_one()))
    return json_ok(_sub(row, {}), status=201)


async def get_subscription(request: web.Request) -> web.Response:
    """One subscription with its delivery counts."""
    user_principal(request, *ADMIN)
    sub_id = path_id(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        row = await _get(conn, sub_id)
        return json_ok(_sub(row, await _counts(conn, sub_id)))


async def update_subscription(request: web.Request) -> web.Response:
    """Change the URL, types, secret, rate limit, or pause/resume."""
    user_principal(request, *ADMIN)
    sub_id = path_id(request)
    body = await read_json(request, BODY, partial=True)
    if not body:
        raise bad_request("nothing to change")
    if "url" in body:
        _check_url(body["url"])
    if "event_types" in body:
        if not body["event_types"]:
            raise bad_request("event_types must name at least one type", "event_types")
        body["event_types"] = sorted(set(body["event_types"]))
    async with request.app[RUNTIME].engine.begin() as conn:
        await _get(conn, sub_id)
        await conn.execute(
            update(webhook_subscriptions).where(webhook_subscriptions.c.id == sub_id).values(**body)
        )
        row = await _get(conn, sub_id)
    _wake(request)
    return json_ok(_sub(row))


async def delete_subscription(request: web.Request) -> web.Response:
    """Remove a subscription and its delivery log."""
    user_principal(request, *ADMIN)
    sub_id = path_id(request)
    async with request.app[RUNTIME].engine.begin() as conn:
        await _get(conn, sub_id)
        await conn.execute(
            webhook_deliveries.delete().where(webhook_deliveries.c.subscription_id == sub_id)
        )
        await conn.execute(
            webhook_subscriptions.delete().where(webhook_subscriptions.c.id == sub_id)
        )
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    """The delivery log of a subscription, newest first (``status=dead``: the dead letters)."""
    user_principal(request, *ADMIN)
    sub_id = path_id(request)
    query = parse_query(request, LOG_QUERY)
    d = webhook_deliveries
    stmt = select(d).where(d.c.subscription_id == sub_id)
    if query.get("status"):
        stmt = stmt.where(d.c.status == query["status"])
    stmt = stmt.order_by(d.c.id.desc()).limit(query.get("limit") or 100)
    async with request.app[RUNTIME].engine.connect() as conn:
        await _get(conn, sub_id)
        rows = list(await conn.execute(stmt))
    return json_ok({"items": [_delivery(r) for r in rows], "total": len(rows)})


async def retry_delivery(request: web.Request) -> web.Response:
    """Send a dead (or waiting) delivery again now, with a fresh attempt budget."""
    user_principal(request, *ADMIN)
    delivery_id = path_id(request)
    d = webhook_deliveries
    async with request.app[RUNTIME].engine.begin() as conn:
        row = (await conn.execute(select(d).where(d.c.id == delivery_id))).first()
        if row is None:
            raise not_found(f"no delivery {delivery_id}")
        if row.status == "delivered":
            raise bad_request("this delivery was delivered already", code="already_delivered")
        await conn.execute(
            update(d)
            .where(d.c.id == delivery_id)
            .values(status="pending", attempts=0, next_attempt_at=datetime.now(UTC))
        )
        row = (await conn.execute(select(d).where(d.c.id == delivery_id))).first()
    _wake(request)
    return json_ok(_delivery(row))


async def list_inbox(request: web.Request) -> web.Response:
    """Incoming provider webhooks, newest first, with their processing state and error."""
    user_principal(request, *ADMIN)
    query = parse_query(request, INBOX_QUERY)
    t = webhook_inbox
    stmt = select(
        t.c.id,
        t.c.provider,
        t.c.account,
        t.c.event_key,
        t.c.conversation_id,
        t.c.seq,
        t.c.status,
        t.c.error,
        t.c.received_at,
        t.c.processed_at,
    )
    if query.get("status"):
        stmt = stmt.where(t.c.status == query["status"])
    if query.get("provider"):
        stmt = stmt.where(t.c.provider == query["provider"])
    stmt = stmt.order_by(t.c.id.desc()).limit(query.get("limit") or 100)
    async with request.app[RUNTIME].engine.connect() as conn:
        rows = list(await conn.execute(stmt))
    items = [
        {
            "id": r.id,
            "provider": r.provider,
            "account": r.account,
            "event_key": r.event_key,
            "conversation_id": r.conversation_id,
            "seq": r.seq,
            "status": r.status,
            "error": r.error,
            "received_at": _iso(r.received_at),
            "processed_at": _iso(r.processed_at),
        }
        for r in rows
    ]
    return json_ok({"items": items, "total": len(items)})


def _wake(request: web.Request) -> None:
    worker = request.app[RUNTIME].extras.get(OUTBOX_KEY)
    if isinstance(worker, OutboxWorker):
        worker.wake()


P = "/api/v1/webhooks/subscriptions"
ROUTES = [
    ApiRoute(
        "GET", P, list_subscriptions, "List outgoing webhook subscriptions", "webhooks", roles=ADMIN
    ),
    ApiRoute(
        "POST",
        P,
        create_subscription,
        "Subscribe a URL to event types",
        "webhooks",
        body=BODY,
        roles=ADMIN,
        status=201,
    ),
    ApiRoute("GET", P + "/{id}", get_subscription, "One subscription", "webhooks", roles=ADMIN),
    ApiRoute(
        "PATCH",
        P + "/{id}",
        update_subscription,
        "Change or pause a subscription",
        "webhooks",
        body=BODY,
        partial=True,
        roles=ADMIN,
    ),
    ApiRoute(
        "DELETE",
        P + "/{id}",
        delete_subscription,
        "Remove a subscription",
        "webhooks",
        roles=ADMIN,
        status=204,
    ),
    ApiRoute(
        "GET",
        P + "/{id}/deliveries",
        list_deliveries,
        "Delivery log of a subscription",
        "webhooks",
        query=LOG_QUERY,
        roles=ADMIN,
    ),
    ApiRoute(
        "GET",
        "/api/v1/webhooks/inbox",
        list_inbox,
        "Incoming provider webhooks and their processing state",
        "webhooks",
        query=INBOX_QUERY,
        roles=ADMIN,
    ),
    ApiRoute(
        "POST",
        "/api/v1/webhooks/deliveries/{id}/retry",
        retry_delivery,
        "Retry a dead delivery now",
        "webhooks",
        roles=ADMIN,
    ),
]


def setup(app: web.Application) -> None:
    """Add the subscription routes."""
    add_routes(app, ROUTES)
