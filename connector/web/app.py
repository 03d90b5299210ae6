"""The aiohttp application: REST API, webhooks, pages, /metrics and /healthz.

Plugging in routes: a feature module exposes ``setup(app: web.Application) -> None`` that adds
its routes, and is listed in :data:`ROUTE_SETUPS` below. Handlers get the runtime with
``request.app[RUNTIME]`` and the caller with :func:`connector.web.auth.principal`.

Every request is authenticated unless its handler is decorated with
:func:`connector.web.auth.public` (login page, webhooks that carry their own signature,
/healthz). Errors are rendered by :func:`error_middleware` as
``{"error": {"code", "message", "field"}}``; nothing that a client sends can cause a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from connector.app import Runtime
from connector.web.auth import auth_middleware
from connector.web.errors import ApiError, error_response, from_domain
from connector.web.keys import RUNTIME

logger = logging.getLogger(__name__)

__all__ = ["ROUTE_SETUPS", "RUNTIME", "create_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the JSON error body with the right status."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", "the request body is too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except json.JSONDecodeError as exc:
        return error_response(400, "malformed_json", f"the body is not valid JSON: {exc.msg}")
    except UnicodeDecodeError:
        return error_response(400, "malformed_body", "the body is not valid UTF-8")
    except Exception as exc:
        domain = from_domain(exc)  # the CRM core's NotFound/Conflict/ValidationError
        if domain is not None:
            return error_response(domain.status, domain.code, domain.message, domain.field)
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; it was logged")


def _route_setups() -> list[Callable[[web.Application], None]]:
    """Every feature's ``setup(app)``; imported here so the order is explicit."""
    setups: list[Callable[[web.Application], None]] = []
    from connector.web import api_calls, api_pbx

    setups += [api_calls.setup, api_pbx.setup]
    from connector.web import api_webhooks

    setups.append(api_webhooks.setup)
    from connector.web import api_subscriptions

    setups.append(api_subscriptions.setup)
    from connector.web import (
        api_activities,
        api_auth,
        api_companies,
        api_contacts,
        api_lookup,
        api_tasks,
        api_tokens,
        api_users,
        health,
        openapi,
    )

    setups += [
        health.setup,
        openapi.setup,
        api_auth.setup,
        api_tokens.setup,
        api_users.setup,
        api_contacts.setup,
        api_companies.setup,
        api_activities.setup,
        api_tasks.setup,
        api_lookup.setup,
    ]
    from connector.web import pages

    setups.append(pages.setup)
    from connector.web import api_calllog, api_recordings, api_route

    setups += [api_recordings.setup, api_route.setup, api_calllog.setup]
    from connector.web import softphone_api

    setups.append(softphone_api.setup)
    return setups


#: Extra setups added at run time (tests, plugins).
ROUTE_SETUPS: list[Callable[[web.Application], None]] = []


def create_app(runtime: Runtime) -> web.Application:
    """Build the aiohttp application for ``runtime``."""
    app = web.Application(
        client_max_size=runtime.settings.server.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
    )
    app[RUNTIME] = runtime
    for setup in [*_route_setups(), *ROUTE_SETUPS]:
        setup(app)
    return app
