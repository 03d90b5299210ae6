"""Request parsing for the REST API: JSON bodies, query strings, path ids and paging.

A request shape is a :data:`Schema`, a mapping of field name to :class:`Field`. The same schema
validates the request (:func:`parse_object`, :func:`read_json`, :func:`parse_query`) and documents
it in the OpenAPI document (:func:`json_schema`), so the two cannot drift apart.

Every problem raises :class:`~connector.web.errors.ApiError` 400 naming the offending field
(``"phones[1].number"``, ``"limit"``); unknown fields are rejected, never silently ignored, so a
typo in a client is seen at once. Nothing a client sends reaches the database unchecked: strings
are bounded, integers fit in 63 bits, JSON nesting is bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from connector.web.errors import ApiError, bad_request, not_found

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_ID",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "Field",
    "Schema",
    "json_schema",
    "page_params",
    "parse_json",
    "parse_object",
    "parse_query",
    "path_id",
    "read_json",
]

#: Rows per page when the client does not say.
DEFAULT_LIMIT = 50
#: The largest page any listing returns (the CRM core enforces the same cap).
MAX_LIMIT = 500
#: Offsets beyond this are refused (no listing is that long; keeps SQL integers small).
MAX_OFFSET = 10_000_000
#: Ids are 63-bit integers; larger ones cannot exist.
MAX_ID = 2**63 - 1
#: Deepest JSON nesting accepted in a body (no request shape needs more than a few levels).
MAX_DEPTH = 20

_INT_RE = re.compile(r"-?[0-9]{1,19}")
KINDS = ("str", "int", "float", "bool", "datetime", "list", "object", "any")


@dataclass(frozen=True)
class Field:
    """One field of a request shape.

    ``kind`` is one of ``str``, ``int``, ``float``, ``bool``, ``datetime`` (ISO 8601, returned as
    an aware UTC :class:`datetime`), ``list`` (items described by ``items``), ``object`` (nested
    ``fields``) or ``any``. ``nullable`` allows JSON ``null``; ``required`` is ignored for
    partial updates (PATCH).
    """

    kind: str
    required: bool = False
    nullable: bool = False
    description: str = ""
    max_length: int = 1000
    min_length: int = 0
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[str, ...] | None = None
    items: Field | None = None
    max_items: int = 100
    fields: Mapping[str, Field] = field(default_factory=dict)
    default: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")
        if self.kind == "list" and self.items is None:
            raise ValueError("a list field needs items")


Schema = Mapping[str, Field]


# ------------------------------------------------------------------------------------ values


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_datetime(value: str, name: str) -> datetime:
    """An ISO 8601 time (``2026-11-28T12:00:00Z``); times without an offset are taken as UTC."""
    if len(value) > 40:
        raise bad_request(
            f"{name} must be an ISO 8601 time, got a {len(value)}-character string", name
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(
            f"{name} must be an ISO 8601 time like 2026-11-28T12:00:00Z, got {value!r}", name
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _encodable(text: str) -> bool:
    """False for strings UTF-8 cannot carry (JSON allows lone surrogates like "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_value(spec: Field, value: Any, name: str, depth: int) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise bad_request(f"{name} may not be null", name)
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string, got {_describe(value)}", name)
        if len(value) > spec.max_length:
            raise bad_request(f"{name} must be at most {spec.max_length} characters", name)
        if len(value.strip()) < spec.min_length:
            raise bad_request(f"{name} must not be empty", name)
        if "\x00" in value:
            raise bad_request(f"{name} must not contain NUL characters", name)
        if not _encodable(value):
            raise bad_request(f"{name} must be valid Unicode (no lone surrogates)", name)
        if spec.choices is not None and value not in spec.choices:
            raise bad_request(
                f"{name} must be one of {', '.join(spec.choices)}, got {value!r}", name
            )
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"{name} must be an integer, got {_describe(value)}", name)
        lo = spec.minimum if spec.minimum is not None else -MAX_ID
        hi = spec.maximum if spec.maximum is not None else MAX_ID
        if not lo <= value <= hi:
            raise bad_request(f"{name} must be an integer {lo}..{hi}, got {value}", name)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request(f"{name} must be a number, got {_describe(value)}", name)
        if spec.minimum is not None and value < spec.minimum:
            raise bad_request(f"{name} must be at least {spec.minimum}", name)
        if spec.maximum is not None and value > spec.maximum:
            raise bad_request(f"{name} must be at most {spec.maximum}", name)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad_request(f"{name} must be true or false, got {_describe(value)}", name)
        return value
    if kind == "datetime":
        if not isinstance(value, str):
            raise bad_request(
                f"{name} must be an ISO 8601 time string, got {_describe(value)}", name
            )
        return parse_datetime(value, name)
    if kind == "list":
        if not isinstance(value, list):
            raise bad_request(f"{name} must be an array, got {_describe(value)}", name)
        if len(value) > spec.max_items:
            raise bad_request(f"{name} may have at most {spec.max_items} items", name)
        assert spec.items is not None
        return [_check_value(spec.items, v, f"{name}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind == "object":
        return parse_object(value, spec.fields, path=name, _depth=depth + 1)
    _check_any(value, name, depth)
    return value


def _check_any(value: Any, name: str, depth: int) -> None:
    """Free-form values (checked by the CRM core) still carry only storable text."""
    if depth > MAX_DEPTH:
        raise bad_request(f"{name} is nested too deeply", name)
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            raise bad_request(f"{name} must be text without NUL or lone surrogates", name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_any(item, f"{name}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _encodable(key):
                raise bad_request(f"{name} has a field name that is not valid Unicode", name)
            _check_any(item, f"{name}.{key}", depth + 1)


def parse_object(
    data: Any, schema: Schema, *, partial: bool = False, path: str = "", _depth: int = 0
) -> dict[str, Any]:
    """Check ``data`` against ``schema``; returns the checked values (only the fields given).

    Unknown fields, missing required fields (unless ``partial``) and wrong types raise 400 with
    the field named. Defaults are not filled in: absent means "not given".
    """
    where = path or "the body"
    if _depth > MAX_DEPTH:
        raise bad_request(f"{where} is nested too deeply", path or None)
    if not isinstance(data, dict):
        raise bad_request(f"{where} must be a JSON object, got {_describe(data)}", path or None)
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in schema:
            if not _encodable(key):
                raise bad_request("a field name is not valid Unicode", code="unknown_field")
            known = ", ".join(sorted(schema)) or "none"
            raise bad_request(
                f"unknown field {prefix}{key!s:.60} (known: {known})",
                f"{prefix}{key!s:.60}",
                code="unknown_field",
            )
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if key not in data:
            if spec.required and not partial:
                raise bad_request(
                    f"{prefix}{key} is required", f"{prefix}{key}", code="missing_field"
                )
            continue
        out[key] = _check_value(spec, data[key], f"{prefix}{key}", _depth)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body; malformed, non-UTF-8 or absurdly nested input raises 400."""
    if not raw.strip():
        raise bad_request("a JSON body is required", code="malformed_json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the body is not valid UTF-8", code="malformed_body") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            code="malformed_json",
        ) from None
    except (ValueError, RecursionError) as exc:
        # NaN/Infinity, absurdly long integers, or nesting deeper than the parser's stack
        raise bad_request(
            f"the body is not valid JSON: {exc!s:.100}", code="malformed_json"
        ) from None


async def read_json(
    request: web.Request, schema: Schema, *, partial: bool = False
) -> dict[str, Any]:
    """Read, decode and check the request body against ``schema``.

    A body over ``server.max_body_bytes`` becomes 413 (aiohttp raises, the error middleware
    renders it). Requests authenticated by the ``vc_token`` cookie alone must say
    ``Content-Type: application/json`` (a cross-site form cannot), a guard against CSRF.
    """
    raw = await request.read()
    if (
        "Authorization" not in request.headers
        and "vc_token" in request.cookies
        and request.content_type != "application/json"
    ):
        # A browser sends the cookie by itself; requiring the JSON content type (which a
        # plain cross-site form cannot set) keeps other sites from writing with it.
        raise bad_request("send the body as Content-Type: application/json", code="json_required")
    return parse_object(parse_json(raw), schema, partial=partial)


# ------------------------------------------------------------------------------------ query


def _query_value(spec: Field, text: str, name: str) -> Any:
    if len(text) > max(spec.max_length, 64):
        raise bad_request(f"{name} is too long", name)
    if spec.kind == "int":
        if not _INT_RE.fullmatch(text):
            raise bad_request(f"{name} must be an integer, got {text[:40]!r}", name)
        return _check_value(spec, int(text), name, 0)
    if spec.kind == "bool":
        low = text.lower()
        if low in ("1", "true", "yes"):
            return True
        if low in ("0", "false", "no"):
            return False
        raise bad_request(f"{name} must be true or false, got {text[:40]!r}", name)
    if spec.kind == "datetime":
        return parse_datetime(text, name)
    if spec.kind == "str":
        return _check_value(spec, text, name, 0)
    raise ValueError(f"query fields cannot be of kind {spec.kind}")


#: Query parameters every endpoint accepts (the browser's way to pass a token).
COMMON_QUERY = frozenset({"access_token"})


def parse_query(request: web.Request, schema: Schema) -> dict[str, Any]:
    """Check the query string against ``schema`` (each parameter at most once).

    Unknown parameters raise 400 naming them; ``access_token`` is always allowed.
    """
    out: dict[str, Any] = {}
    for key in request.query:
        if key in COMMON_QUERY:
            continue
        if key not in schema:
            known = ", ".join(sorted(schema)) or "none"
            raise bad_request(
                f"unknown query parameter {key!s:.60} (known: {known})",
                f"{key!s:.60}",
                code="unknown_field",
            )
        values = request.query.getall(key)
        if len(values) > 1:
            raise bad_request(f"{key} is given more than once", key)
        out[key] = _query_value(schema[key], values[0], key)
    for key, spec in schema.items():
        if spec.required and key not in out:
            raise bad_request(f"query parameter {key} is required", key, code="missing_field")
    return out


#: The paging parameters every listing accepts.
PAGE_QUERY: dict[str, Field] = {
    "limit": Field(
        "int", minimum=1, maximum=MAX_LIMIT, description=f"rows per page, 1..{MAX_LIMIT}"
    ),
    "offset": Field("int", minimum=0, maximum=MAX_OFFSET, description="rows to skip"),
}


def page_params(query: Mapping[str, Any]) -> tuple[int, int]:
    """(limit, offset) from a query parsed with :data:`PAGE_QUERY` fields; defaults filled in."""
    limit = query.get("limit")
    offset = query.get("offset")
    return (DEFAULT_LIMIT if limit is None else int(limit), 0 if offset is None else int(offset))


def path_id(request: web.Request, name: str = "id") -> int:
    """The integer id in the URL; 400 if it is not a number, 404 if it cannot exist."""
    text = request.match_info.get(name, "")
    if not text.isascii() or not text.isdigit():
        raise bad_request(f"{name} must be a positive integer, got {text[:40]!r}", name)
    value = int(text[:40]) if len(text) <= 40 else MAX_ID + 1
    if value < 1 or value > MAX_ID:
        raise not_found(f"{name} {text[:40]} does not exist")
    return value


# ------------------------------------------------------------------------------------ documents


def json_schema(spec: Field | Schema, *, partial: bool = False) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1 flavour) of a field or of a whole request shape."""
    if not isinstance(spec, Field):
        props = {k: json_schema(v) for k, v in spec.items()}
        out: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
        }
        required = [k for k, v in spec.items() if v.required]
        if required and not partial:
            out["required"] = required
        return out
    types_of = {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "datetime": "string",
        "list": "array",
        "object": "object",
    }
    doc: dict[str, Any] = {}
    if spec.kind in types_of:
        doc["type"] = [types_of[spec.kind], "null"] if spec.nullable else types_of[spec.kind]
    if spec.kind == "datetime":
        doc["format"] = "date-time"
    if spec.kind == "str":
        doc["maxLength"] = spec.max_length
        if spec.min_length:
            doc["minLength"] = spec.min_length
    if spec.choices is not None:
        doc["enum"] = list(spec.choices)
    if spec.minimum is not None:
        doc["minimum"] = spec.minimum
    if spec.maximum is not None:
        doc["maximum"] = spec.maximum
    if spec.kind == "list" and spec.items is not None:
        doc["items"] = json_schema(spec.items)
        doc["maxItems"] = spec.max_items
    if spec.kind == "object":
        doc.update(json_schema(spec.fields))
    if spec.description:
        doc["description"] = spec.description
    return doc


def require_any(values: Mapping[str, Any], message: str = "nothing to change") -> None:
    """400 when a partial update carries no field at all."""
    if not values:
        raise ApiError(400, "bad_request", message)
