"""Checking of the plain mappings (parsed JSON, CSV rows) the store functions accept.

Every reader raises :class:`~crm_sync.errors.ValidationError` naming the field, what is allowed
and what was given; nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from crm_sync.errors import ValidationError

__all__ = [
    "EMAIL_RE",
    "aware",
    "check_known",
    "opt_datetime",
    "opt_id",
    "opt_text",
    "req_text",
    "str_list",
    "utc_now",
]

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default when a caller passes no ``now``)."""
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands naive ones back)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_known(
    data: Mapping[str, Any], allowed: Iterable[str], what: str, prefix: str = ""
) -> None:
    """Refuse keys that are not in ``allowed`` (typos must not be silently ignored).

    ``prefix`` is the path of ``data`` inside a larger value (``phones[0]``) for the field name.
    """
    if not isinstance(data, Mapping):
        raise ValidationError(
            prefix or None, f"{what} must be an object, got {type(data).__name__}"
        )
    known = set(allowed)
    for key in data:
        if key not in known:
            name = f"{prefix}.{key}" if prefix else str(key)
            raise ValidationError(
                name, f"{key!r} is not a field of {what}; allowed: {', '.join(sorted(known))}"
            )


def _clean(field: str, value: str, max_len: int) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise ValidationError(field, f"{field} must not contain control characters")
    if len(value) > max_len:
        raise ValidationError(field, f"{field} must be at most {max_len} characters")
    return value


def req_text(data: Mapping[str, Any], key: str, max_len: int) -> str:
    """A required, non-empty string (trimmed)."""
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(key, f"{key} must be a non-empty string, got {value!r}")
    return _clean(key, value, max_len)


def opt_text(
    data: Mapping[str, Any],
    key: str,
    max_len: int,
    default: str = "",
    *,
    multiline: bool = False,
) -> str:
    """An optional string (trimmed); ``None`` or absent gives ``default``."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValidationError(key, f"{key} must be a string, got {type(value).__name__}")
    if multiline:
        value = value.replace("\r\n", "\n")
        if len(value) > max_len:
            raise ValidationError(key, f"{key} must be at most {max_len} characters")
        if _CONTROL.search(value.replace("\t", " ")):
            raise ValidationError(key, f"{key} must not contain control characters")
        return value.strip()
    return _clean(key, value, max_len)


def opt_id(data: Mapping[str, Any], key: str) -> int | None:
    """An optional positive integer id (``None`` clears it)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(key, f"{key} must be a positive integer id or null, got {value!r}")
    return value


def opt_datetime(data: Mapping[str, Any], key: str) -> datetime | None:
    """An optional time: a datetime or an ISO 8601 string; naive times are taken as UTC."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                key, f"{key} must be an ISO 8601 time like 2024-05-01T12:00:00Z, got {value!r}"
            ) from None
    if not isinstance(value, datetime):
        raise ValidationError(key, f"{key} must be an ISO 8601 time, got {value!r}")
    return aware(value)


def str_list(
    data: Mapping[str, Any],
    key: str,
    *,
    max_items: int = 50,
    max_len: int = 200,
    email: bool = False,
) -> list[str]:
    """An optional list of strings, trimmed, empty ones dropped, duplicates removed in order."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(key, f"{key} must be a list of strings, got {type(value).__name__}")
    if len(value) > max_items:
        raise ValidationError(key, f"{key} may hold at most {max_items} items")
    out: list[str] = []
    for i, item in enumerate(value):
        name = f"{key}[{i}]"
        if not isinstance(item, str):
            raise ValidationError(name, f"{name} must be a string, got {type(item).__name__}")
        item = _clean(name, item, max_len)
        if not item:
            continue
        if email and not EMAIL_RE.fullmatch(item):
            raise ValidationError(name, f"{name} is not an e-mail address: {item!r}")
        if item not in out:
            out.append(item)
    return out
