"""The API's route table and the OpenAPI 3.1 document built from it.

API modules describe their endpoints as :class:`ApiRoute` rows (method, path, handler, summary,
request body and query schemas, who may call it) and register them with :func:`add_routes`,
which adds each to the aiohttp router *and* to the table on the application. The document at
``GET /api/v1/openapi.json`` is generated from that table, so it lists exactly what is routed.
Routes that other features add to the router directly (under ``/api/`` or ``/healthz`` and
``/metrics``) are still listed, described by their handler's docstring, so the document never
misses an endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from connector.web.auth import public
from connector.web.validation import Schema, json_schema

__all__ = [
    "API_ROUTES",
    "ApiRoute",
    "add_routes",
    "build_document",
    "documented_routes",
    "setup",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

USER_ROLES = ("agent", "supervisor", "admin")


@dataclass(frozen=True)
class ApiRoute:
    """One endpoint: where it is, what it does, what it takes, who may call it.

    ``roles`` documents who may call it (the handler enforces it; a test checks both agree);
    ``public`` routes need no token. ``body``/``query`` are the request shapes the handler
    parses with :mod:`connector.web.validation`; ``partial`` marks a PATCH body.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: Schema | None = None
    partial: bool = False
    query: Schema | None = None
    roles: tuple[str, ...] = USER_ROLES
    public: bool = False
    status: int = 200
    description: str = ""
    responses: dict[int, str] = field(default_factory=dict)


API_ROUTES: web.AppKey[list[ApiRoute]] = web.AppKey("api_routes", list)


def add_routes(app: web.Application, routes: Iterable[ApiRoute]) -> None:
    """Register ``routes`` on the router and in the application's route table."""
    if API_ROUTES not in app:
        app[API_ROUTES] = []
    for route in routes:
        if route.method == "GET":  # answers HEAD too (load balancers, link checkers)
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)
        app[API_ROUTES].append(route)


def _documented_path(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/metrics")


def documented_routes(app: web.Application) -> set[tuple[str, str]]:
    """(path, METHOD) of every routed endpoint the document must list."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "OPTIONS", "*") or not _documented_path(path):
            continue
        out.add((path, route.method))
    return out


_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0].strip()


def _error_ref() -> dict[str, Any]:
    return {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(route: ApiRoute | None, path: str, method: str, handler: Any) -> dict[str, Any]:
    target = getattr(handler, "__func__", handler)
    is_public = route.public if route is not None else bool(getattr(target, "_public", False))
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
        "summary": route.summary if route is not None else _first_line(handler.__doc__),
    }
    if route is not None:
        op["tags"] = [route.tag]
        desc = route.description or (target.__doc__ or "").strip()
        if not route.public:
            desc = (desc + f"\n\nRoles: {', '.join(route.roles)}.").strip()
        op["description"] = desc
        op["x-roles"] = list(route.roles) if not route.public else []
    else:
        op["tags"] = ["other"]
        op["description"] = (target.__doc__ or "").strip()
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM_RE.findall(path)
    ]
    if route is not None and route.query:
        for name, spec in route.query.items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": spec.required,
                    "schema": json_schema(spec),
                    "description": spec.description,
                }
            )
    if params:
        op["parameters"] = params
    if route is not None and route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": json_schema(route.body, partial=route.partial)}
            },
        }
    ok = route.status if route is not None else 200
    responses: dict[str, Any] = {str(ok): {"description": "success"}}
    responses["400"] = _error_ref()
    if "{" in path:
        responses["404"] = _error_ref()
    if route is not None and route.body is not None:
        responses["413"] = _error_ref()
    if not is_public:
        responses["401"] = _error_ref()
        responses["403"] = _error_ref()
        op["security"] = [{"bearer": []}, {"cookie": []}]
    else:
        op["security"] = []
    if route is not None:
        for status, text in route.responses.items():
            responses[str(status)] = {"description": text}
    op["responses"] = dict(sorted(responses.items()))
    return op


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint routed on ``app``."""
    table = {(r.path, r.method): r for r in app.get(API_ROUTES, [])}
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "OPTIONS", "*") or not _documented_path(path):
            continue
        entry = table.get((path, route.method))
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            entry, path, route.method, route.handler
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "VoIP connector API",
            "version": "1",
            "description": (
                "JSON under /api/v1/. Authenticate with `Authorization: Bearer <token>` "
                "(tokens from POST /api/v1/auth/login or the CLI). Errors are "
                '`{"error": {"code", "message", "field"}}` with 400 bad input, 401 no or '
                "revoked token, 403 role may not, 404, 409 conflict, 413 body too large."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "vc_token"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": ["string", "null"]},
                            },
                            "required": ["code", "message", "field"],
                        }
                    },
                    "required": ["error"],
                },
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array"},
                        "total": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                    },
                },
            },
        },
    }


@public
async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document of this API (public: it holds no data)."""
    return web.json_response(build_document(request.app))


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/openapi.json",
        openapi_json,
        "The OpenAPI 3.1 document of this API",
        "meta",
        public=True,
    ),
]


def setup(app: web.Application) -> None:
    """Serve the OpenAPI document."""
    add_routes(app, ROUTES)
