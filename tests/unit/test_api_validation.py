"""Request shapes: parse_object, parse_json and json_schema (pure, no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.web.errors import ApiError
from connector.web.validation import (
    MAX_DEPTH,
    Field,
    json_schema,
    page_params,
    parse_datetime,
    parse_json,
    parse_object,
)

SHAPE = {
    "name": Field("str", required=True, max_length=10, min_length=1),
    "age": Field("int", minimum=0, maximum=150),
    "score": Field("float", nullable=True),
    "vip": Field("bool"),
    "due": Field("datetime", nullable=True),
    "kind": Field("str", choices=("a", "b")),
    "tags": Field("list", items=Field("str", max_length=5), max_items=3),
    "ext": Field(
        "list",
        items=Field("object", fields={"pbx": Field("str", required=True)}),
    ),
    "free": Field("any"),
}


def refused(data: Any, *, partial: bool = False) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_object(data, SHAPE, partial=partial)
    assert info.value.status == 400
    return info.value


def test_valid_values_come_back_checked() -> None:
    out = parse_object(
        {
            "name": "Ivan",
            "age": 40,
            "score": 1,
            "vip": False,
            "due": "2026-11-28T15:00:00+03:00",
            "kind": "b",
            "tags": ["x"],
            "ext": [{"pbx": "main"}],
            "free": {"number": "+7 916", "label": "m"},
        },
        SHAPE,
    )
    assert out["due"] == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert out["score"] == 1.0 and isinstance(out["score"], float)
    assert out["ext"] == [{"pbx": "main"}]
    # absent fields stay absent: "not given" differs from "set to null"
    assert parse_object({"name": "x"}, SHAPE) == {"name": "x"}
    assert parse_object({"score": None}, SHAPE, partial=True) == {"score": None}


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"name": "x", "nmae": 1}, "nmae", "unknown_field"),
        ({}, "name", "missing_field"),
        ({"name": 5}, "name", "bad_request"),
        ({"name": "  "}, "name", "bad_request"),
        ({"name": "x" * 11}, "name", "bad_request"),
        ({"name": "a\x00b"}, "name", "bad_request"),
        ({"name": "a\ud800"}, "name", "bad_request"),
        ({"name": None}, "name", "bad_request"),
        ({"name": "x", "age": True}, "age", "bad_request"),
        ({"name": "x", "age": 1.0}, "age", "bad_request"),
        ({"name": "x", "age": -1}, "age", "bad_request"),
        ({"name": "x", "age": 2**80}, "age", "bad_request"),
        ({"name": "x", "vip": 1}, "vip", "bad_request"),
        ({"name": "x", "due": "soon"}, "due", "bad_request"),
        ({"name": "x", "due": 17}, "due", "bad_request"),
        ({"name": "x", "kind": "c"}, "kind", "bad_request"),
        ({"name": "x", "tags": "a"}, "tags", "bad_request"),
        ({"name": "x", "tags": ["a", "b", "c", "d"]}, "tags", "bad_request"),
        ({"name": "x", "tags": ["ok", 1]}, "tags[1]", "bad_request"),
        ({"name": "x", "ext": [{"pbx": "m", "x": 1}]}, "ext[0].x", "unknown_field"),
        ({"name": "x", "ext": [{}]}, "ext[0].pbx", "missing_field"),
        ({"name": "x", "ext": ["main"]}, "ext[0]", "bad_request"),
        ({"name": "x", "free": ["a\x00"]}, "free[0]", "bad_request"),
        ({"name": "x", "free": {"n": "\udfff"}}, "free.n", "bad_request"),
    ],
)
def test_bad_values_name_their_field(data: dict[str, Any], field: str, code: str) -> None:
    err = refused(data)
    assert err.field == field
    assert err.code == code


def test_partial_skips_required_but_not_types() -> None:
    assert parse_object({"age": 3}, SHAPE, partial=True) == {"age": 3}
    assert refused({"age": "3"}, partial=True).field == "age"


@pytest.mark.parametrize("body", [[], "x", 1, None, True])
def test_body_must_be_an_object(body: Any) -> None:
    assert refused(body).field is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b"{'a': 1}",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xff\xfe",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a": 1' + b"0" * 5000 + b"}",
    ],
)
def test_parse_json_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert info.value.status == 400


def test_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {"pbx": "x"}
    inner = Field("object", fields={"pbx": Field("str")})
    spec = inner
    for _ in range(MAX_DEPTH + 2):
        spec = Field("object", fields={"n": spec})
        deep = {"n": deep}
    with pytest.raises(ApiError):
        parse_object({"n": deep}, {"n": spec})


def test_parse_datetime_forms() -> None:
    assert parse_datetime("2026-11-28T12:00:00Z", "t") == datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert parse_datetime("2026-11-28 12:00", "t") == datetime(2026, 11, 28, 12, tzinfo=UTC)
    with pytest.raises(ApiError):
        parse_datetime("2026-11-28T12:00:00Z" * 3, "t")


def test_page_params_defaults() -> None:
    assert page_params({}) == (50, 0)
    assert page_params({"limit": 5, "offset": 10}) == (5, 10)


def test_json_schema_mirrors_the_shape() -> None:
    doc = json_schema(SHAPE)
    assert doc["type"] == "object" and doc["additionalProperties"] is False
    assert doc["required"] == ["name"]
    props = doc["properties"]
    assert props["score"]["type"] == ["number", "null"]
    assert props["due"]["format"] == "date-time"
    assert props["kind"]["enum"] == ["a", "b"]
    assert props["tags"]["items"]["maxLength"] == 5
    assert props["ext"]["items"]["required"] == ["pbx"]
    assert "type" not in props["free"]
    assert "required" not in json_schema(SHAPE, partial=True)
