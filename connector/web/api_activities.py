"""Activities (``/api/v1/activities``): calls and notes.

Who sees what: agents the activities they wrote, answered or took part in (the
``activity_participants`` table); supervisors their team's; admins all. Anyone may write a
note on a contact or company; a note is edited or deleted by its author or an admin; calls are
written by the call log and deleted only by admins.
"""

from __future__ import annotations

from aiohttp import web

from connector.web.api_access import (
    json_ok,
    may_see,
    narrowed_view,
    user_principal,
    visible_user_ids,
)
from connector.web.errors import forbidden
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import (
    PAGE_QUERY,
    Field,
    page_params,
    parse_query,
    path_id,
    read_json,
)
from crm_sync import activities
from crm_sync.auth import Principal

__all__ = ["setup", "visible"]

NOTE_BODY = {
    "body": Field("str", required=True, max_length=20_000, min_length=1),
    "contact_id": Field("int", nullable=True, minimum=1),
    "company_id": Field("int", nullable=True, minimum=1),
}
NOTE_UPDATE = {"body": Field("str", required=True, max_length=20_000, min_length=1)}
LIST_QUERY = {
    "kind": Field("str", choices=activities.ACTIVITY_KINDS, description="call or note"),
    "contact_id": Field("int", minimum=1),
    "company_id": Field("int", minimum=1),
    "user_id": Field("int", minimum=1, description="one user within your view"),
    "since": Field("datetime", description="created at or after (ISO 8601)"),
    "until": Field("datetime", description="created before (ISO 8601)"),
    **PAGE_QUERY,
}


def visible(ids: list[int] | None, activity: activities.Activity) -> bool:
    """True if an activity involves one of the users in ``ids`` (None: everyone's)."""
    answered = activity.call.get("answered_by_user_id") if activity.call else None
    return may_see(ids, activity.user_id, answered, *activity.participant_ids)


async def _visible_activity(
    request: web.Request, who: Principal, activity_id: int
) -> activities.Activity:
    async with request.app[RUNTIME].engine.connect() as conn:
        activity = await activities.get_activity(conn, activity_id)
        ids = await visible_user_ids(conn, who)
    if not visible(ids, activity):
        raise forbidden(f"activity {activity_id} is not yours or your team's")
    return activity


async def list_activities(request: web.Request) -> web.Response:
    """Calls and notes in the caller's view, newest first."""
    who = user_principal(request)
    query = parse_query(request, LIST_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await narrowed_view(conn, who, query.get("user_id"), "activities")
        page = await activities.list_activities(
            conn,
            user_ids=ids,
            kind=query.get("kind"),
            contact_id=query.get("contact_id"),
            company_id=query.get("company_id"),
            since=query.get("since"),
            until=query.get("until"),
            limit=limit,
            offset=offset,
        )
    return json_ok(page.to_dict())


async def create_note(request: web.Request) -> web.Response:
    """Write a note on a contact or company."""
    who = user_principal(request)
    body = await read_json(request, NOTE_BODY)
    async with request.app[RUNTIME].engine.begin() as conn:
        note = await activities.create_note(conn, body, user_id=who.user_id)
    return json_ok(note.to_dict(), status=201)


async def get_activity(request: web.Request) -> web.Response:
    """One call or note in the caller's view."""
    who = user_principal(request)
    activity = await _visible_activity(request, who, path_id(request))
    return json_ok(activity.to_dict())


async def update_note(request: web.Request) -> web.Response:
    """Edit a note (its author or an admin)."""
    who = user_principal(request)
    activity_id = path_id(request)
    body = await read_json(request, NOTE_UPDATE)
    activity = await _visible_activity(request, who, activity_id)
    if not who.is_admin and activity.user_id != who.user_id:
        raise forbidden("only the author or an admin may edit a note")
    async with request.app[RUNTIME].engine.begin() as conn:
        note = await activities.update_note(conn, activity_id, body, user_id=who.user_id)
    return json_ok(note.to_dict())


async def delete_activity(request: web.Request) -> web.Response:
    """Delete a note (its author or an admin) or a call (admins)."""
    who = user_principal(request)
    activity_id = path_id(request)
    activity = await _visible_activity(request, who, activity_id)
    if not who.is_admin and (activity.kind != "note" or activity.user_id != who.user_id):
        raise forbidden("only admins delete calls, and notes only their authors or admins")
    async with request.app[RUNTIME].engine.begin() as conn:
        await activities.delete_activity(conn, activity_id, user_id=who.user_id)
    return web.Response(status=204)


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/activities",
        list_activities,
        "List calls and notes in your view",
        "activities",
        query=LIST_QUERY,
    ),
    ApiRoute(
        "POST",
        "/api/v1/activities",
        create_note,
        "Write a note",
        "activities",
        body=NOTE_BODY,
        status=201,
    ),
    ApiRoute("GET", "/api/v1/activities/{id}", get_activity, "One call or note", "activities"),
    ApiRoute(
        "PATCH",
        "/api/v1/activities/{id}",
        update_note,
        "Edit a note",
        "activities",
        body=NOTE_UPDATE,
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/activities/{id}",
        delete_activity,
        "Delete a note or (admins) a call",
        "activities",
        status=204,
    ),
]


def setup(app: web.Application) -> None:
    """Add the activity routes."""
    add_routes(app, ROUTES)
