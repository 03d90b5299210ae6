"""HTTP errors: one JSON body shape for every failure.

Handlers raise :class:`ApiError` (or its shortcuts); the middleware in :mod:`connector.web.app`
renders ``{"error": {"code": ..., "message": ..., "field": ...}}`` with the status. Domain code
never knows HTTP status codes: it raises its own errors, which web handlers translate.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

__all__ = [
    "ApiError",
    "bad_request",
    "conflict",
    "error_response",
    "forbidden",
    "from_domain",
    "not_found",
    "unauthorized",
]


class ApiError(Exception):
    """An HTTP error with a machine-readable code, a message for people and the offending field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> web.Response:
    """The JSON error response every endpoint uses."""
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    body.update(extra)
    return web.json_response({"error": body}, status=status)


def bad_request(message: str, field: str | None = None, code: str = "bad_request") -> ApiError:
    """400: the request is malformed or a value is wrong."""
    return ApiError(400, code, message, field)


def unauthorized(message: str = "a valid token is required") -> ApiError:
    """401: no token, or an unknown, revoked or expired one."""
    return ApiError(401, "unauthorized", message)


def forbidden(message: str = "your role may not do this") -> ApiError:
    """403: authenticated, but not allowed."""
    return ApiError(403, "forbidden", message)


def not_found(message: str = "not found") -> ApiError:
    """404."""
    return ApiError(404, "not_found", message)


def conflict(message: str, field: str | None = None) -> ApiError:
    """409: the request conflicts with what is stored (duplicate login, stale state...)."""
    return ApiError(409, "conflict", message, field)


def from_domain(exc: Exception) -> ApiError | None:
    """The HTTP form of a CRM core error (the one place they are translated), else None.

    ``NotFound`` -> 404, ``Conflict`` -> 409, ``ValidationError`` -> 400, each keeping the
    message and the field; a unique or foreign-key violation that slipped past the core -> 409;
    a database that cannot be reached -> 503.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError

    from crm_sync.errors import Conflict, CrmError, NotFound, ValidationError

    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.message)
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", exc.message, exc.field)
    if isinstance(exc, ValidationError):
        return ApiError(400, "invalid", exc.message, exc.field)
    if isinstance(exc, CrmError):
        return ApiError(400, "bad_request", exc.message)
    if isinstance(exc, IntegrityError):
        return ApiError(409, "conflict", "the change conflicts with stored data")
    if isinstance(exc, OperationalError):  # unreachable, locked too long, disk full
        logging.getLogger(__name__).warning("database unavailable: %s", exc)
        return ApiError(503, "unavailable", "the database is not available; try again later")
    return None
