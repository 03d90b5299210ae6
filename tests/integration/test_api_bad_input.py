"""Bad input never yields a 500: every endpoint is fed malformed bodies, queries and ids.

The endpoints come from the application's route table, so a new endpoint is covered as soon
as it is registered. Each answer must be a 4xx with the standard error body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.web.openapi import API_ROUTES
from tests.integration.api_harness import ApiWorld, api_world

BAD_BODIES: list[tuple[str, bytes]] = [
    ("malformed", b'{"name": "x",'),
    ("not json", b"name=x&phones=1"),
    ("empty", b""),
    ("array", b"[1, 2, 3]"),
    ("string", b'"just a string"'),
    ("null", b"null"),
    ("NaN", b'{"name": NaN}'),
    ("huge integer", b'{"name": "x", "company_id": 1' + b"0" * 5000 + b"}"),
    ("1e400", b'{"name": "x", "company_id": 1e400}'),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("deep objects", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    ("not utf-8", b'{"name": "\xff\xfe"}'),
    ("unknown field", b'{"bogus": 1}'),
    ("surrogate field name", b'{"\\ud800": 1}'),
]

BAD_QUERIES = [
    "limit=-1",
    "limit=0",
    "limit=100000000000000000000000000000",
    "limit=abc",
    "limit=1e3",
    "limit=%D9%A1%D9%A2",  # Arabic-Indic digits: int() would accept them
    "offset=-5",
    "offset=99999999999999999999",
    "limit=5&limit=6",
    "bogus=1",
    "q=" + "x" * 5000,
    "since=yesterday",
    "active=maybe",
    "company_id=%00",
]
#: Odd but decodable: aiohttp replaces undecodable bytes; answered 200 or 400, never 500.
ODD_QUERIES = ["q=%ED%A0%80", "q=%FF%FE", "q=a%00b", "tag=%27%3B--", "phone=%25%5F"]

BAD_IDS = ["abc", "-1", "0", "1.5", "99999999999999999999999999", "%00", "1%20OR%201=1", "٣"]


#: The CRM API's own modules: their exact answers are asserted (other features' routes in the
#: table are held to "a 4xx with the error body").
OURS = {
    f"connector.web.{m}"
    for m in (
        "api_auth",
        "api_tokens",
        "api_users",
        "api_contacts",
        "api_companies",
        "api_activities",
        "api_tasks",
        "api_lookup",
        "health",
        "openapi",
    )
}


def _ours(route: Any) -> bool:
    return route.handler.__module__ in OURS


def _concrete(path: str, ctx: dict[str, Any]) -> str:
    return (
        path.replace("{id}", str(ctx.get("id", 1)))
        .replace("{pbx}", "main")
        .replace("{extension}", "101")
    )


def _assert_client_error(status: int, data: Any, what: str) -> None:
    assert 400 <= status < 500, (what, status, data)
    assert isinstance(data, dict) and set(data["error"]) == {"code", "message", "field"}, (
        what,
        data,
    )


async def _seed(w: ApiWorld) -> dict[str, Any]:
    contact = await w.ok("admin", "POST", "/api/v1/contacts", {"name": "Ivan"})
    company = await w.ok("admin", "POST", "/api/v1/companies", {"name": "Acme"})
    assert contact["id"] == company["id"]  # one {id} fits both kinds of route
    return {"id": contact["id"]}


async def test_malformed_bodies_on_every_endpoint(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        ctx = await _seed(w)
        routes = [r for r in w.client.server.app[API_ROUTES] if r.body is not None]
        assert len(routes) >= 12
        for route in routes:
            path = _concrete(route.path, ctx)
            for name, raw in BAD_BODIES:
                status, data = await w.call(
                    "admin",
                    route.method,
                    path,
                    raw=raw,
                    headers={"Content-Type": "application/json"},
                )
                _assert_client_error(status, data, f"{route.method} {route.path} {name}")


WRONG_TYPE: dict[str, Any] = {
    "str": 5,
    "int": "5",
    "float": "1.5",
    "bool": "yes",
    "datetime": 1700000000,
    "list": "not a list",
    "object": ["not an object"],
}
GOOD: dict[str, Any] = {"str": "x", "int": 1, "float": 1.0, "bool": True, "datetime": None}


def _good(spec: Any) -> Any:
    if spec.choices:
        return spec.choices[0]
    if spec.kind == "list":
        return [_good(spec.items)]
    if spec.kind == "object":
        return _valid_required(spec.fields)
    return GOOD.get(spec.kind, "x")


def _valid_required(schema: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if spec.required:
            out[key] = _good(spec)
    return out


def _bad_values(spec: Any) -> list[tuple[str, Any]]:
    """Values of one field that must be refused, with what makes each bad."""
    out: list[tuple[str, Any]] = []
    if spec.kind in WRONG_TYPE:
        out.append(("wrong type", WRONG_TYPE[spec.kind]))
    if not spec.nullable:
        out.append(("null", None))
    if spec.kind == "str":
        out += [("NUL", "a\x00b"), ("lone surrogate", "a\ud800"), ("too long", "x" * 100_000)]
    if spec.kind == "list":
        out += [("too many", [GOOD.get(spec.items.kind, "x")] * 1000)]
        out += [("surrogate item", ["\udfff"]), ("nested surrogate", [{"number": "\ud800"}])]
    if spec.kind == "int":
        out += [("too big", 2**70), ("boolean", True), ("float", 1.5)]
    return out


async def test_every_field_of_every_body_is_checked(tmp_path: Path) -> None:
    """Each field alone gets wrong values (other fields valid): 400 naming that field."""
    async with api_world(tmp_path) as w:
        ctx = await _seed(w)
        checked = 0
        for route in [r for r in w.client.server.app[API_ROUTES] if r.body and _ours(r)]:
            path = _concrete(route.path, ctx)
            for key, spec in route.body.items():
                for what, bad in _bad_values(spec):
                    body = {**_valid_required(route.body), key: bad}
                    status, data = await w.call("admin", route.method, path, body)
                    where = f"{route.method} {route.path} {key} {what}"
                    _assert_client_error(status, data, where)
                    assert status == 400, (where, status, data)
                    assert (data["error"]["field"] or "").startswith(key), (where, data)
                    checked += 1
        assert checked > 100


async def test_specific_errors_name_the_problem(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        status, data = await w.call("admin", "POST", "/api/v1/contacts", raw=b"{oops")
        assert status == 400 and data["error"]["code"] == "malformed_json"
        status, data = await w.call("admin", "POST", "/api/v1/contacts", {"name": "x", "nmae": "y"})
        assert status == 400 and data["error"]["field"] == "nmae"
        assert data["error"]["code"] == "unknown_field"
        status, data = await w.call("admin", "POST", "/api/v1/contacts", {"name": ["x"]})
        assert status == 400 and data["error"]["field"] == "name"
        status, data = await w.call(
            "admin", "POST", "/api/v1/contacts", {"tags": ["a", 5], "name": "x"}
        )
        assert status == 400 and data["error"]["field"] == "tags[1]"
        status, data = await w.call("admin", "POST", "/api/v1/contacts", {"notes": "n"})
        assert status == 400 and data["error"]["field"] == "name"
        status, data = await w.call(
            "admin",
            "POST",
            "/api/v1/users",
            {"login": "x", "name": "x", "role": "agent", "extensions": [{"pbx": "m", "ext": "1"}]},
        )
        assert status == 400 and data["error"]["field"] == "extensions[0].ext"
        status, data = await w.call(
            "admin", "POST", "/api/v1/users", {"login": "x", "name": "x", "role": "root"}
        )
        assert status == 400 and data["error"]["field"] == "role"
        status, data = await w.call(
            "admin", "POST", "/api/v1/tasks", {"title": "t", "due_at": "tomorrow"}
        )
        assert status == 400 and data["error"]["field"] == "due_at"
        status, data = await w.call(
            "admin", "POST", "/api/v1/contacts", {"name": "x", "company_id": True}
        )
        assert status == 400 and data["error"]["field"] == "company_id"
        status, data = await w.call("admin", "PATCH", f"/api/v1/users/{w.ids['agent_a']}", {})
        assert status == 400
        status, data = await w.call(
            "admin", "POST", "/api/v1/users", {"login": "agent_a", "name": "x", "role": "agent"}
        )
        assert status == 409 and data["error"]["field"] == "login"


@pytest.mark.parametrize("size", [2 * 1024 * 1024])
async def test_huge_body_is_413(tmp_path: Path, size: int) -> None:
    async with api_world(tmp_path) as w:
        body = b'{"name": "' + b"x" * size + b'"}'
        for path in ["/api/v1/contacts", "/api/v1/auth/login", "/api/v1/activities"]:
            status, data = await w.call("admin", "POST", path, raw=body)
            assert status == 413, (path, status)
            assert data["error"]["code"] == "too_large"
        # the limit is the configured one
    async with api_world(tmp_path / "small", server={"max_body_bytes": 2048}) as w:
        status, _ = await w.call(
            "admin", "POST", "/api/v1/contacts", raw=b'{"name": "' + b"x" * 4000 + b'"}'
        )
        assert status == 413
        status, _ = await w.call("admin", "POST", "/api/v1/contacts", {"name": "fits"})
        assert status == 201


async def test_bad_queries_on_every_listing(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        ctx = await _seed(w)
        routes = [r for r in w.client.server.app[API_ROUTES] if r.method == "GET" and r.query]
        assert len(routes) >= 8
        for route in routes:
            path = _concrete(route.path, ctx)
            for query in BAD_QUERIES:
                status, data = await w.call("admin", "GET", f"{path}?{query}")
                _assert_client_error(status, data, f"{route.path}?{query[:40]}")
            for query in ODD_QUERIES:
                status, data = await w.call("admin", "GET", f"{path}?{query}")
                assert status in (200, 400), (route.path, query, status, data)
        status, data = await w.call("admin", "GET", "/api/v1/contacts?limit=501")
        assert status == 400 and data["error"]["field"] == "limit"
        status, data = await w.call("admin", "GET", "/api/v1/contacts?limt=5")
        assert status == 400 and data["error"]["field"] == "limt"
        status, data = await w.call("admin", "GET", "/api/v1/contacts?limit=500&offset=10000000")
        assert status == 200 and data["items"] == [] and data["limit"] == 500


async def test_bad_ids_on_every_item_route(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        routes = [r for r in w.client.server.app[API_ROUTES] if "{id}" in r.path]
        assert len(routes) >= 20
        for route in routes:
            for bad in BAD_IDS:
                path = _concrete(route.path, {"id": bad})
                body = {"name": "x"} if route.body is not None else None
                status, data = await w.call("admin", route.method, path, body)
                _assert_client_error(status, data, f"{route.method} {path}")
                if _ours(route):
                    assert status in (400, 404), (route.method, path, status)


async def test_odd_lookup_input(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        for number in ["'; DROP TABLE phones;--", "%", "_", "☎️📞", "+", "0", "anonymous", " "]:
            resp = await w.client.get(
                "/api/v1/lookup", params={"number": number}, headers=w.auth("agent_a")
            )
            assert resp.status == 200, number
            assert (await resp.json())["matches"] == []
        status, data = await w.call("agent_a", "GET", "/api/v1/lookup?number=" + "9" * 200)
        _assert_client_error(status, data, "long number")
        status, data = await w.call("agent_a", "GET", "/api/v1/lookup?number=1&region=XYZ")
        _assert_client_error(status, data, "bad region")


async def test_wrong_methods_and_unknown_paths(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        status, data = await w.call("admin", "PUT", "/api/v1/contacts")
        assert status == 405 and data["error"]["code"] == "method_not_allowed"
        status, data = await w.call("admin", "GET", "/api/v1/nothing-here")
        assert status == 404 and data["error"]["code"] == "not_found"
