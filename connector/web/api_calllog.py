"""The call log for supervisors: ``/api/v1/calllog`` (filters), ``/stats``, ``/missed``, ``.csv``.

Filters (query parameters, all optional): ``from``/``to`` (ISO 8601 date or time; a plain
``to`` date includes that day), ``agent`` (user id), ``team``, ``direction``, ``outcome``
(an outcome or ``missed``), ``number`` (any part of either number), ``has_recording``.
Agents see the calls they took part in, supervisors their team's, admins all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from connector.web.api_access import json_ok, user_principal, visible_user_ids
from connector.web.auth import public
from connector.web.errors import bad_request
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import PAGE_QUERY, Field, page_params, parse_query
from crm_sync.calllog_query import (
    DIRECTIONS,
    OUTCOMES,
    CallFilter,
    agent_stats,
    hourly,
    missed_not_called_back,
    participants_of,
    query_calls,
    to_csv,
)
from crm_sync.schema import activities, tasks, users

__all__ = ["setup"]

FILTERS = {
    "from": Field("str", max_length=40, description="ISO 8601 date or time (inclusive)"),
    "to": Field("str", max_length=40, description="ISO 8601 date (inclusive) or time"),
    "agent": Field("int", minimum=1, description="a user id"),
    "team": Field("str", max_length=100),
    "direction": Field("str", choices=DIRECTIONS),
    "outcome": Field("str", choices=(*OUTCOMES, "missed")),
    "number": Field("str", max_length=64, description="digits in either number"),
    "has_recording": Field("bool"),
}
STATS_QUERY = {**FILTERS, "tz_offset": Field("int", minimum=-900, maximum=900)}
EXPORT_LIMIT = 100_000


def _time(text: str | None, name: str, end: bool) -> datetime | None:
    if not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"{name} must be an ISO 8601 date or time, got {text[:40]!r}", name
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filter(q: dict[str, Any]) -> CallFilter:
    return CallFilter(
        since=_time(q.get("from"), "from", False),
        until=_time(q.get("to"), "to", True),
        agent_id=q.get("agent"),
        team=q.get("team") or None,
        direction=q.get("direction"),
        outcome=q.get("outcome"),
        number=q.get("number") or None,
        has_recording=q.get("has_recording"),
    )


async def list_calls(request: web.Request) -> web.Response:
    """The filtered call log, newest first, paged."""
    who = user_principal(request)
    q = parse_query(request, {**FILTERS, **PAGE_QUERY})
    limit, offset = page_params(q)
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await visible_user_ids(conn, who)
        items, total = await query_calls(conn, _filter(q), ids, limit=limit, offset=offset)
    return json_ok({"items": items, "total": total, "limit": limit, "offset": offset})


async def export_csv(request: web.Request) -> web.Response:
    """The filtered call log as CSV (every matching row)."""
    who = user_principal(request)
    q = parse_query(request, FILTERS)
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await visible_user_ids(conn, who)
        items, _ = await query_calls(conn, _filter(q), ids, limit=EXPORT_LIMIT)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return web.Response(
        body=to_csv(items).encode("utf-8-sig"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="calllog-{stamp}.csv"',
        },
    )


async def stats(request: web.Request) -> web.Response:
    """Per-agent statistics, calls per hour and totals for the filtered period."""
    who = user_principal(request, "supervisor", "admin")
    q = parse_query(request, STATS_QUERY)
    f = _filter(q)
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await visible_user_ids(conn, who)
        items, _ = await query_calls(conn, f, ids, limit=EXPORT_LIMIT)
        parts = await participants_of(conn, [c["id"] for c in items])
        for c in items:
            c["participant_ids"] = parts.get(c["id"], [])
        user_q = select(users.c.id, users.c.name, users.c.team).where(
            users.c.role.in_(("agent", "supervisor"))
        )
        if ids is not None:
            user_q = user_q.where(users.c.id.in_(ids))
        if f.team:
            user_q = user_q.where(users.c.team == f.team)
        if f.agent_id:
            user_q = user_q.where(users.c.id == f.agent_id)
        agents = {int(r.id): r.name for r in await conn.execute(user_q)}
        # a callback belongs to the period of the missed call that caused it (not to the time
        # the task was written, which can fall on another day)
        when = func.coalesce(activities.c.started_at, tasks.c.created_at)
        cb_q = (
            select(tasks.c.assignee_id, tasks.c.status)
            .select_from(tasks.outerjoin(activities, activities.c.id == tasks.c.activity_id))
            .where(tasks.c.kind == "callback")
        )
        if f.since:
            cb_q = cb_q.where(when >= f.since)
        if f.until:
            cb_q = cb_q.where(when < f.until)
        callbacks = [(r.assignee_id, r.status) for r in await conn.execute(cb_q)]
    inbound = [c for c in items if c["direction"] == "inbound"]
    totals = {
        "calls": len(items),
        "inbound": len(inbound),
        "outbound": sum(1 for c in items if c["direction"] == "outbound"),
        "answered": sum(1 for c in inbound if c["outcome"] == "answered"),
        "missed": sum(1 for c in inbound if c["outcome"] != "answered"),
    }
    return json_ok(
        {
            "agents": agent_stats(items, callbacks, agents),
            "hourly": hourly(items, -int(q.get("tz_offset") or 0)),
            "totals": totals,
        }
    )


@public
async def supervisor_page(request: web.Request) -> web.Response:
    """``/supervisor``: the supervisor console (a static page that signs in by itself)."""
    raise web.HTTPFound("/static/supervisor/index.html")


async def missed(request: web.Request) -> web.Response:
    """Missed calls not yet called back (open callback tasks)."""
    who = user_principal(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await visible_user_ids(conn, who)
        items = await missed_not_called_back(conn, ids)
    return json_ok({"items": items})


def setup(app: web.Application) -> None:
    """Add the call log routes and the supervisor console's address."""
    app.router.add_get("/supervisor", supervisor_page)
    add_routes(
        app,
        [
            ApiRoute(
                "GET",
                "/api/v1/calllog",
                list_calls,
                "The call log, filtered",
                "calllog",
                query={**FILTERS, **PAGE_QUERY},
                description=__doc__ or "",
            ),
            ApiRoute(
                "GET",
                "/api/v1/calllog.csv",
                export_csv,
                "The filtered call log as CSV",
                "calllog",
                query=FILTERS,
            ),
            ApiRoute(
                "GET",
                "/api/v1/calllog/stats",
                stats,
                "Per-agent statistics, calls per hour, totals",
                "calllog",
                query=STATS_QUERY,
                roles=("supervisor", "admin"),
            ),
            ApiRoute(
                "GET",
                "/api/v1/calllog/missed",
                missed,
                "Missed calls not yet called back",
                "calllog",
            ),
        ],
    )
