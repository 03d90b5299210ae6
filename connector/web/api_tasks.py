"""Tasks (``/api/v1/tasks``): list, create, change, close, delete.

Agents see and edit the tasks assigned to them and may create tasks only for themselves;
supervisors see, assign, edit and delete their team's tasks; admins all. A task outside the
caller's view answers 403. Creating a task, or handing it to someone else, publishes
``task.created`` so the assignee's console shows it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from connector.events.model import TaskCreated
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
    require_any,
)
from crm_sync import tasks
from crm_sync.auth import Principal

__all__ = ["setup"]

TASK_BODY = {
    "title": Field("str", required=True, max_length=300, min_length=1),
    "description": Field("str", max_length=20_000, nullable=True),
    "kind": Field("str", choices=tasks.TASK_KINDS),
    "status": Field("str", choices=tasks.TASK_STATUSES),
    "due_at": Field("datetime", nullable=True, description="ISO 8601"),
    "assignee_id": Field("int", description="default: yourself", nullable=True, minimum=1),
    "contact_id": Field("int", nullable=True, minimum=1),
    "company_id": Field("int", nullable=True, minimum=1),
    "activity_id": Field("int", description="the call that caused it", nullable=True, minimum=1),
    "number_e164": Field("str", max_length=32, nullable=True),
    "closed_note": Field("str", max_length=20_000, nullable=True),
}
CLOSE_BODY = {
    "status": Field("str", choices=("done", "cancelled"), description="default: done"),
    "note": Field("str", max_length=20_000, description="why or how it was closed"),
}
LIST_QUERY = {
    "status": Field("str", choices=tasks.TASK_STATUSES),
    "kind": Field("str", choices=tasks.TASK_KINDS),
    "assignee_id": Field("int", minimum=1, description="one assignee within your view"),
    "contact_id": Field("int", minimum=1),
    "company_id": Field("int", minimum=1),
    "due_before": Field("datetime", description="due before this time (ISO 8601)"),
    **PAGE_QUERY,
}


async def _visible_task(request: web.Request, who: Principal, task_id: int) -> tasks.Task:
    async with request.app[RUNTIME].engine.connect() as conn:
        task = await tasks.get_task(conn, task_id)
        ids = await visible_user_ids(conn, who)
    if not may_see(ids, task.assignee_id):
        raise forbidden(f"task {task_id} is not assigned to you or your team")
    return task


async def _check_assignee(request: web.Request, who: Principal, assignee_id: int | None) -> None:
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await visible_user_ids(conn, who)
    if not may_see(ids, assignee_id):
        raise forbidden(
            "agents assign tasks to themselves, supervisors within their team",
        )


def _announce(request: web.Request, task: tasks.Task) -> None:
    """Publish task.created so the assignee's console (and webhook subscribers) learn of it."""
    if task.assignee_id is None:
        return
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    runtime.publish(
        TaskCreated(
            key=f"task.created:{task.id}:{task.updated_at.isoformat()}",
            pbx="",
            conversation_id="",
            occurred_at=task.updated_at,
            observed_at=now,
            task_id=task.id,
            assignee_id=task.assignee_id,
            title=task.title,
            number=task.number_e164 or "",
        )
    )


async def list_tasks(request: web.Request) -> web.Response:
    """Tasks in the caller's view: open ones by due time first."""
    who = user_principal(request)
    query = parse_query(request, LIST_QUERY)
    limit, offset = page_params(query)
    async with request.app[RUNTIME].engine.connect() as conn:
        ids = await narrowed_view(conn, who, query.get("assignee_id"), "tasks")
        page = await tasks.list_tasks(
            conn,
            assignee_ids=ids,
            status=query.get("status"),
            kind=query.get("kind"),
            contact_id=query.get("contact_id"),
            company_id=query.get("company_id"),
            due_before=query.get("due_before"),
            limit=limit,
            offset=offset,
        )
    return json_ok(page.to_dict())


async def create_task(request: web.Request) -> web.Response:
    """Create a task (assigned to yourself unless you say otherwise and may)."""
    who = user_principal(request)
    body = await read_json(request, TASK_BODY)
    body.setdefault("assignee_id", who.user_id)
    await _check_assignee(request, who, body["assignee_id"])
    async with request.app[RUNTIME].engine.begin() as conn:
        task = await tasks.create_task(conn, body, user_id=who.user_id)
    _announce(request, task)
    return json_ok(task.to_dict(), status=201)


async def get_task(request: web.Request) -> web.Response:
    """One task in the caller's view."""
    who = user_principal(request)
    task = await _visible_task(request, who, path_id(request))
    return json_ok(task.to_dict())


async def update_task(request: web.Request) -> web.Response:
    """Change a task in the caller's view (reassign only within it)."""
    who = user_principal(request)
    task_id = path_id(request)
    body = await read_json(request, TASK_BODY, partial=True)
    require_any(body)
    before = await _visible_task(request, who, task_id)
    if "assignee_id" in body:
        await _check_assignee(request, who, body["assignee_id"])
    async with request.app[RUNTIME].engine.begin() as conn:
        task = await tasks.update_task(conn, task_id, body, user_id=who.user_id)
    if before.assignee_id != task.assignee_id:
        _announce(request, task)
    return json_ok(task.to_dict())


async def close_task(request: web.Request) -> web.Response:
    """Close a task as done (or cancelled), with a note."""
    who = user_principal(request)
    task_id = path_id(request)
    body = await read_json(request, CLOSE_BODY)
    await _visible_task(request, who, task_id)
    changes = {"status": body.get("status") or "done", "closed_note": body.get("note") or ""}
    async with request.app[RUNTIME].engine.begin() as conn:
        task = await tasks.update_task(conn, task_id, changes, user_id=who.user_id)
    return json_ok(task.to_dict())


async def delete_task(request: web.Request) -> web.Response:
    """Delete a task (supervisors: their team's; admins: any)."""
    who = user_principal(request, "supervisor", "admin")
    task_id = path_id(request)
    await _visible_task(request, who, task_id)
    async with request.app[RUNTIME].engine.begin() as conn:
        await tasks.delete_task(conn, task_id, user_id=who.user_id)
    return web.Response(status=204)


ROUTES = [
    ApiRoute(
        "GET", "/api/v1/tasks", list_tasks, "List tasks in your view", "tasks", query=LIST_QUERY
    ),
    ApiRoute(
        "POST",
        "/api/v1/tasks",
        create_task,
        "Create a task",
        "tasks",
        body=TASK_BODY,
        status=201,
    ),
    ApiRoute("GET", "/api/v1/tasks/{id}", get_task, "One task", "tasks"),
    ApiRoute(
        "PATCH",
        "/api/v1/tasks/{id}",
        update_task,
        "Change a task",
        "tasks",
        body=TASK_BODY,
        partial=True,
    ),
    ApiRoute(
        "POST",
        "/api/v1/tasks/{id}/close",
        close_task,
        "Close a task (done or cancelled)",
        "tasks",
        body=CLOSE_BODY,
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/tasks/{id}",
        delete_task,
        "Delete a task",
        "tasks",
        roles=("supervisor", "admin"),
        status=204,
    ),
]


def setup(app: web.Application) -> None:
    """Add the task routes."""
    add_routes(app, ROUTES)
