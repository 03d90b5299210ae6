"""JSON wire format: every event and observation type survives a round trip."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Union

import pytest

from connector.events import model
from connector.events.model import CallRinging, Direction, Party
from connector.events.wire import (
    OBSERVATION_TYPES,
    WIRE_TYPES,
    WireFormatError,
    event_from_dict,
    event_to_dict,
    from_json,
    to_json,
)

T0 = datetime(2026, 11, 28, 12, 0, 1, 250_000, tzinfo=UTC)


def _sample(tp: Any, name: str) -> Any:
    """A non-default value of type ``tp`` so the round trip really exercises every field."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        first = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _sample(first, name)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return (_sample(args[0], name), _sample(args[0], name + "2"))
        return tuple(_sample(a, f"{name}{i}") for i, a in enumerate(args))
    if tp is datetime:
        return T0 + timedelta(seconds=len(name))
    if tp is Party:
        return Party(number="+7916" + str(len(name)), name="Ромашка " + name)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return list(tp)[-1]
    if tp is bool:
        return True
    if tp is int:
        return 7 + len(name)
    if tp is float:
        return 1.5 + len(name)
    if tp is str:
        return f"{name}-value"
    raise AssertionError(f"no sample for {tp!r}")


def _instance(cls: type[Any]) -> Any:
    hints = typing.get_type_hints(cls, vars(model))
    return cls(**{f.name: _sample(hints[f.name], f.name) for f in dataclasses.fields(cls)})


def test_every_observation_type_is_on_the_wire() -> None:
    assert set(OBSERVATION_TYPES.values()) == set(typing.get_args(model.Observation))
    assert "obs.leg_ringing" in OBSERVATION_TYPES
    assert "call.ringing" in WIRE_TYPES and "call.ended" in WIRE_TYPES


@pytest.mark.parametrize("name", sorted(WIRE_TYPES))
def test_round_trip(name: str) -> None:
    obj = _instance(WIRE_TYPES[name])
    text = to_json(obj)
    assert json.loads(text)["type"] == name
    assert from_json(text) == obj
    assert event_from_dict(event_to_dict(obj)) == obj


def test_defaults_round_trip() -> None:
    obj = CallRinging(key="k", pbx="p", conversation_id="c", occurred_at=T0, observed_at=T0)
    assert from_json(to_json(obj)) == obj


def test_datetimes_are_utc_iso() -> None:
    msk = timezone(timedelta(hours=3))
    obj = CallRinging(
        key="k",
        pbx="p",
        conversation_id="c",
        occurred_at=T0.astimezone(msk),
        observed_at=T0,
        direction=Direction.INBOUND,
    )
    data = event_to_dict(obj)
    assert data["occurred_at"] == "2026-11-28T12:00:01.250000+00:00"
    assert data["direction"] == "inbound"
    assert from_json(to_json(obj)) == obj


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"type": "call.nope"}',
        '{"type": "call.ringing"}',
        '{"type": "call.ringing", "key": 1, "pbx": "p", "conversation_id": "c",'
        ' "occurred_at": "2026-01-01T00:00:00+00:00", "observed_at": "2026-01-01T00:00:00+00:00"}',
        '{"type": "call.ringing", "key": "k", "pbx": "p", "conversation_id": "c",'
        ' "occurred_at": "yesterday", "observed_at": "2026-01-01T00:00:00+00:00"}',
        '{"type": "call.ringing", "key": "k", "pbx": "p", "conversation_id": "c",'
        ' "occurred_at": "2026-01-01T00:00:00", "observed_at": "2026-01-01T00:00:00+00:00"}',
        '{"type": "call.ringing", "key": "k", "pbx": "p", "conversation_id": "c",'
        ' "occurred_at": "2026-01-01T00:00:00+00:00", "observed_at": "2026-01-01T00:00:00+00:00",'
        ' "direction": "sideways"}',
    ],
)
def test_bad_input_is_a_named_error(text: str) -> None:
    with pytest.raises(WireFormatError):
        from_json(text)


def test_naive_datetime_is_refused_on_encode() -> None:
    obj = CallRinging(
        key="k", pbx="p", conversation_id="c", occurred_at=datetime(2026, 1, 1), observed_at=T0
    )
    with pytest.raises(WireFormatError):
        to_json(obj)
