"""Who may do what: every endpoint as agent, supervisor, admin and a PBX token, over real HTTP.

The table below is the access policy; each row is one endpoint and the status each role gets.
The agent is ``agent_a`` (team A), the supervisor ``sup_a`` (team A), so "someone else's"
objects belong to ``agent_b`` of team B. Destructive rows create a fresh target for every role.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from connector.web.openapi import API_ROUTES, ApiRoute, build_document
from crm_sync.auth import issue_token
from tests.integration.api_harness import ApiWorld, api_world

ROLE_USER = {"agent": "agent_a", "supervisor": "sup_a", "admin": "admin", "pbx": "pbx"}
Builder = Callable[[ApiWorld, dict[str, Any], str], Awaitable[tuple[str, Any]]]


@dataclass(frozen=True)
class Row:
    """One endpoint: how to call it, and the status each role must get."""

    name: str
    method: str
    build: Builder
    agent: int
    supervisor: int
    admin: int
    pbx: int = 403
    fresh_token: bool = False  # call with a new token of the user (the call revokes it)


def static(path: str, body: Any = None) -> Builder:
    """A request whose path and body do not depend on the world."""

    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        return path.format(**ctx), body

    return build


async def _task(w: ApiWorld, assignee: str) -> int:
    data = await w.ok(
        "admin", "POST", "/api/v1/tasks", {"title": "t", "assignee_id": w.ids[assignee]}
    )
    return int(data["id"])


async def _note(w: ApiWorld, author: str, contact_id: int) -> int:
    data = await w.ok(author, "POST", "/api/v1/activities", {"body": "n", "contact_id": contact_id})
    return int(data["id"])


async def populate(w: ApiWorld) -> dict[str, Any]:
    """Objects the rows refer to, as format fields for their paths."""
    contact = await w.ok(
        "admin", "POST", "/api/v1/contacts", {"name": "Ivan", "phones": ["+79161234567"]}
    )
    company = await w.ok("admin", "POST", "/api/v1/companies", {"name": "Acme"})
    ctx: dict[str, Any] = {
        "contact": contact["id"],
        "company": company["id"],
        "task_a": await _task(w, "agent_a"),
        "task_b": await _task(w, "agent_b"),
        "note_a": await _note(w, "agent_a", contact["id"]),
        "note_b": await _note(w, "agent_b", contact["id"]),
    }
    ctx.update({f"id_{login}": uid for login, uid in w.ids.items()})
    return ctx


def fresh_contact() -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        data = await w.ok("admin", "POST", "/api/v1/contacts", {"name": f"gone {role}"})
        return f"/api/v1/contacts/{data['id']}", None

    return build


def fresh_company() -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        data = await w.ok("admin", "POST", "/api/v1/companies", {"name": f"gone {role}"})
        return f"/api/v1/companies/{data['id']}", None

    return build


def fresh_user() -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        data = await w.ok(
            "admin",
            "POST",
            "/api/v1/users",
            {"login": f"gone_{role}", "name": "x", "role": "agent"},
        )
        return f"/api/v1/users/{data['id']}", None

    return build


def new_user() -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        return "/api/v1/users", {
            "login": f"new_{role}",
            "name": "New",
            "role": "agent",
            "team": "A",
        }

    return build


def new_extension() -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        ext = {"agent": "301", "supervisor": "302", "admin": "303", "pbx": "304"}[role]
        return f"/api/v1/users/{ctx['id_agent_a2']}/extensions", {"pbx": "main", "extension": ext}

    return build


def drop_extension() -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        ext = {"agent": "401", "supervisor": "402", "admin": "403", "pbx": "404"}[role]
        uid = ctx["id_agent_a2"]
        await w.ok(
            "admin", "POST", f"/api/v1/users/{uid}/extensions", {"pbx": "main", "extension": ext}
        )
        return f"/api/v1/users/{uid}/extensions/main/{ext}", None

    return build


def fresh_task(assignee: str, suffix: str = "") -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        return f"/api/v1/tasks/{await _task(w, assignee)}{suffix}", {} if suffix else None

    return build


def fresh_note(author: str) -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        return f"/api/v1/activities/{await _note(w, author, ctx['contact'])}", None

    return build


def token_of(login: str) -> Builder:
    async def build(w: ApiWorld, ctx: dict[str, Any], role: str) -> tuple[str, Any]:
        async with w.runtime.engine.begin() as conn:
            token_id, _ = await issue_token(conn, w.ids[login], "victim")
        return f"/api/v1/tokens/{token_id}", None

    return build


ROWS = [
    # --- who am I, tokens
    Row("me", "GET", static("/api/v1/me"), 200, 200, 200),
    Row("logout", "POST", static("/api/v1/auth/logout"), 204, 204, 204, fresh_token=True),
    Row("own tokens", "GET", static("/api/v1/tokens"), 200, 200, 200),
    Row("new own token", "POST", static("/api/v1/tokens", {"name": "cli"}), 201, 201, 201),
    Row("others' tokens", "GET", static("/api/v1/tokens?user_id={id_agent_b}"), 403, 403, 200),
    Row(
        "token for another",
        "POST",
        static("/api/v1/tokens", {"user_id": 0}),  # replaced below
        403,
        403,
        201,
    ),
    Row("revoke another's token", "DELETE", token_of("agent_b"), 404, 404, 204),
    Row("revoke own token", "DELETE", token_of("agent_a"), 204, 404, 204),
    # --- users
    Row("list users", "GET", static("/api/v1/users"), 200, 200, 200),
    Row("one user", "GET", static("/api/v1/users/{id_agent_b}"), 200, 200, 200),
    Row("create user", "POST", new_user(), 403, 403, 201),
    Row(
        "change user",
        "PATCH",
        static("/api/v1/users/{id_agent_a2}", {"name": "Renamed"}),
        403,
        403,
        200,
    ),
    Row("delete user", "DELETE", fresh_user(), 403, 403, 204),
    Row("give extension", "POST", new_extension(), 403, 403, 201),
    Row("take extension", "DELETE", drop_extension(), 403, 403, 200),
    # --- contacts and companies
    Row("list contacts", "GET", static("/api/v1/contacts"), 200, 200, 200),
    Row("create contact", "POST", static("/api/v1/contacts", {"name": "Petr"}), 201, 201, 201),
    Row("one contact", "GET", static("/api/v1/contacts/{contact}"), 200, 200, 200),
    Row(
        "change contact",
        "PATCH",
        static("/api/v1/contacts/{contact}", {"tags": ["vip"]}),
        200,
        200,
        200,
    ),
    Row("delete contact", "DELETE", fresh_contact(), 403, 204, 204),
    Row("contact history", "GET", static("/api/v1/contacts/{contact}/activities"), 200, 200, 200),
    Row("list companies", "GET", static("/api/v1/companies"), 200, 200, 200),
    Row("create company", "POST", static("/api/v1/companies", {"name": "Beta"}), 201, 201, 201),
    Row("one company", "GET", static("/api/v1/companies/{company}"), 200, 200, 200),
    Row(
        "change company",
        "PATCH",
        static("/api/v1/companies/{company}", {"notes": "x"}),
        200,
        200,
        200,
    ),
    Row("delete company", "DELETE", fresh_company(), 403, 204, 204),
    Row("company history", "GET", static("/api/v1/companies/{company}/activities"), 200, 200, 200),
    # --- tasks
    Row("list tasks", "GET", static("/api/v1/tasks"), 200, 200, 200),
    Row(
        "list another's tasks",
        "GET",
        static("/api/v1/tasks?assignee_id={id_agent_b}"),
        403,
        403,
        200,
    ),
    Row(
        "list teammate's tasks",
        "GET",
        static("/api/v1/tasks?assignee_id={id_agent_a2}"),
        403,
        200,
        200,
    ),
    Row("own task", "GET", static("/api/v1/tasks/{task_a}"), 200, 200, 200),
    Row("other team's task", "GET", static("/api/v1/tasks/{task_b}"), 403, 403, 200),
    Row(
        "change own task", "PATCH", static("/api/v1/tasks/{task_a}", {"title": "x"}), 200, 200, 200
    ),
    Row(
        "change other team's task",
        "PATCH",
        static("/api/v1/tasks/{task_b}", {"title": "x"}),
        403,
        403,
        200,
    ),
    Row("task for myself", "POST", static("/api/v1/tasks", {"title": "call back"}), 201, 201, 201),
    Row(
        "task for a teammate",
        "POST",
        static("/api/v1/tasks", {"title": "t", "assignee_id": "{id_agent_a2}"}),
        403,
        201,
        201,
    ),
    Row(
        "task for another team",
        "POST",
        static("/api/v1/tasks", {"title": "t", "assignee_id": "{id_agent_b}"}),
        403,
        403,
        201,
    ),
    Row("close own task", "POST", fresh_task("agent_a", "/close"), 200, 200, 200),
    Row("close other team's task", "POST", fresh_task("agent_b", "/close"), 403, 403, 200),
    Row("delete own task", "DELETE", fresh_task("agent_a"), 403, 204, 204),
    # --- activities
    Row("list activities", "GET", static("/api/v1/activities"), 200, 200, 200),
    Row(
        "others' activities",
        "GET",
        static("/api/v1/activities?user_id={id_agent_b}"),
        403,
        403,
        200,
    ),
    Row("own note", "GET", static("/api/v1/activities/{note_a}"), 200, 200, 200),
    Row("other team's note", "GET", static("/api/v1/activities/{note_b}"), 403, 403, 200),
    Row(
        "write a note",
        "POST",
        static("/api/v1/activities", {"body": "hi", "contact_id": "{contact}"}),
        201,
        201,
        201,
    ),
    Row(
        "edit own note",
        "PATCH",
        static("/api/v1/activities/{note_a}", {"body": "edited"}),
        200,
        403,
        200,
    ),
    Row("delete own note", "DELETE", fresh_note("agent_a"), 204, 403, 204),
    Row("delete other team's note", "DELETE", fresh_note("agent_b"), 403, 403, 204),
    # --- lookup (PBX tokens may ask too)
    Row("lookup", "GET", static("/api/v1/lookup?number=89161234567"), 200, 200, 200, pbx=200),
]


def _fill(value: Any, ctx: dict[str, Any]) -> Any:
    """Replace "{name}" strings in a body with the context's ids."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ctx[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ctx) for k, v in value.items()}
    return value


def _table_route(w: ApiWorld, method: str, path: str) -> ApiRoute:
    bare = path.split("?", 1)[0]
    for route in w.client.server.app[API_ROUTES]:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", route.path)
        if route.method == method and re.fullmatch(pattern, bare):
            return route
    raise AssertionError(f"{method} {bare} is not in the route table")


@dataclass
class Shared:
    """One world for the whole table: rows never break what other rows rely on."""

    world: ApiWorld
    ctx: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    async with api_world(tmp_path_factory.mktemp("roles")) as w:
        async with w.runtime.engine.begin() as conn:
            _, w.tokens["pbx"] = await issue_token(conn, None, "pbx", scope="pbx", pbx="main")
        yield Shared(world=w, ctx=await populate(w))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
async def test_role_matrix(shared: Shared, row: Row) -> None:
    w, ctx = shared.world, shared.ctx
    got: dict[str, int] = {}
    for role, user in ROLE_USER.items():
        path, body = await row.build(w, ctx, role)
        body = _fill(body, ctx)
        if row.name == "token for another":
            body = {"user_id": w.ids["agent_b"]}
        headers = None
        if row.fresh_token and role != "pbx":
            async with w.runtime.engine.begin() as conn:
                _, token = await issue_token(conn, w.ids[user], "throwaway")
            headers, user = {"Authorization": f"Bearer {token}"}, None
        status, data = await w.call(user, row.method, path, body, headers=headers)
        got[role] = status
        if status >= 400:
            assert set(data["error"]) == {"code", "message", "field"}, data
        # the roles the OpenAPI document promises agree with what is enforced
        documented = _table_route(w, row.method, path)
        if role not in documented.roles:
            assert status == 403, (role, documented.path, status)
    want = {"agent": row.agent, "supervisor": row.supervisor, "admin": row.admin, "pbx": row.pbx}
    assert got == want


async def test_listings_show_only_what_each_role_may_see(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        ctx = await populate(w)
        t_a2 = await _task(w, "agent_a2")

        async def task_ids(who: str) -> set[int]:
            data = await w.ok(who, "GET", "/api/v1/tasks")
            assert data["total"] == len(data["items"])
            return {t["id"] for t in data["items"]}

        assert await task_ids("agent_a") == {ctx["task_a"]}
        assert await task_ids("sup_a") == {ctx["task_a"], t_a2}
        assert await task_ids("sup_b") == {ctx["task_b"]}
        assert await task_ids("admin") == {ctx["task_a"], ctx["task_b"], t_a2}

        async def note_ids(who: str, path: str = "/api/v1/activities") -> set[int]:
            return {a["id"] for a in (await w.ok(who, "GET", path))["items"]}

        history = f"/api/v1/contacts/{ctx['contact']}/activities"
        assert await note_ids("agent_a") == {ctx["note_a"]}
        assert await note_ids("agent_a", history) == {ctx["note_a"]}
        assert await note_ids("agent_b", history) == {ctx["note_b"]}
        assert await note_ids("sup_a") == {ctx["note_a"]}
        assert await note_ids("admin", history) == {ctx["note_a"], ctx["note_b"]}

        # everyone sees users minimally; admins see extensions too
        agent_view = (await w.ok("agent_a", "GET", "/api/v1/users"))["items"]
        assert {u["login"] for u in agent_view} >= {"admin", "agent_b"}
        assert all("extensions" not in u for u in agent_view)
        admin_view = (await w.ok("admin", "GET", "/api/v1/users?q=agent_b"))["items"]
        assert admin_view[0]["extensions"] == [{"pbx": "main", "extension": "201"}]


async def test_every_protected_route_wants_a_token(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        doc = build_document(w.client.server.app)
        checked = 0
        for path, ops in doc["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            for method, op in ops.items():
                if not op["security"]:
                    continue
                for headers in ({}, {"Authorization": "Bearer vc_not-a-real-token"}):
                    status, data = await w.call(None, method.upper(), concrete, headers=headers)
                    assert status == 401, (method, path, status, data)
                    assert data["error"]["code"] == "unauthorized"
                checked += 1
        assert checked > 30


async def test_directory_reloads_when_extensions_change(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        uid = w.ids["agent_a2"]
        assert w.runtime.directory.user_of("main", "555") is None
        await w.ok(
            "admin", "POST", f"/api/v1/users/{uid}/extensions", {"pbx": "main", "extension": "555"}
        )
        assert w.runtime.directory.user_of("main", "555") == uid
        status, data = await w.call(
            "admin",
            "POST",
            f"/api/v1/users/{w.ids['agent_b']}/extensions",
            {"pbx": "main", "extension": "555"},
        )
        assert status == 409 and data["error"]["code"] == "conflict"
        await w.ok("admin", "DELETE", f"/api/v1/users/{uid}/extensions/main/555")
        assert w.runtime.directory.user_of("main", "555") is None
        created = await w.ok(
            "admin",
            "POST",
            "/api/v1/users",
            {
                "login": "newbie",
                "name": "N",
                "role": "agent",
                "extensions": [{"pbx": "*", "extension": "777"}],
            },
        )
        assert w.runtime.directory.user_of("other", "777") == created["id"]
        await w.ok("admin", "DELETE", f"/api/v1/users/{created['id']}")
        assert w.runtime.directory.user_of("other", "777") is None
