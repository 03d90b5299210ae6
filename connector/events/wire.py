"""JSON wire format for call events and observations.

Every event and every observation becomes a flat JSON object with a ``"type"`` field:

* call events use their dotted name (``call.ringing``, ``call.ended``, ``recording.ready``...);
* observations use ``obs.`` plus the snake-case class name (``obs.leg_ringing``...).

Datetimes are ISO-8601 strings in UTC (``2026-11-28T22:39:40.123456+00:00``), enums their string
value, :class:`~connector.events.model.Party` a ``{"number", "name"}`` object, tuples JSON arrays.
Parse and serialise are symmetric: ``from_json(to_json(x)) == x`` for every type.

Bad input (unknown type, missing field, wrong value) raises :class:`WireFormatError`, never a
bare ``KeyError``/``TypeError``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from datetime import UTC, datetime
from typing import Any, Union

from connector.events import model
from connector.events.model import EVENT_TYPES, Event, Observation, Party

__all__ = [
    "OBSERVATION_TYPES",
    "WIRE_TYPES",
    "WireFormatError",
    "event_from_dict",
    "event_to_dict",
    "from_json",
    "to_json",
    "type_name",
]

Wire = Event | Observation


class WireFormatError(ValueError):
    """A JSON document is not a valid event or observation (the message says why)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _observation_classes() -> list[type[Any]]:
    return list(typing.get_args(model.Observation))


OBSERVATION_TYPES: dict[str, type[Any]] = {
    "obs." + _snake(cls.__name__): cls for cls in _observation_classes()
}
"""Wire name -> observation class (``obs.leg_ringing`` -> ``LegRinging``)."""

WIRE_TYPES: dict[str, type[Any]] = {**EVENT_TYPES, **OBSERVATION_TYPES}
"""Every type the wire format knows, by wire name."""

_NAME_OF: dict[type[Any], str] = {cls: name for name, cls in WIRE_TYPES.items()}
_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls, vars(model))
        _HINTS[cls] = hints
    return hints


def type_name(obj: Wire) -> str:
    """The wire name of an event or observation (``call.ringing``, ``obs.leg_ringing``)."""
    try:
        return _NAME_OF[type(obj)]
    except KeyError:
        raise WireFormatError(f"{type(obj).__name__} has no wire name") from None


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise WireFormatError(f"naive datetime {value!r}: times must be timezone-aware")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Party):
        return {"number": value.number, "name": value.name}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def event_to_dict(obj: Wire) -> dict[str, Any]:
    """A JSON-ready dict of an event or observation, with its ``type`` first."""
    out: dict[str, Any] = {"type": type_name(obj)}
    for f in dataclasses.fields(obj):
        out[f.name] = _encode(getattr(obj, f.name))
    return out


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, value, where)
            except WireFormatError as exc:
                errors.append(str(exc))
        raise WireFormatError("; ".join(errors) or f"{where}: null not allowed")
    if origin is tuple:
        if not isinstance(value, list):
            raise WireFormatError(f"{where}: expected an array, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise WireFormatError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_decode(a, v, where) for a, v in zip(args, value, strict=True))
    if tp is datetime:
        if not isinstance(value, str):
            raise WireFormatError(f"{where}: expected an ISO-8601 string, got {value!r}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise WireFormatError(f"{where}: bad datetime {value!r}") from exc
        if parsed.tzinfo is None:
            raise WireFormatError(f"{where}: datetime {value!r} has no UTC offset")
        return parsed.astimezone(UTC)
    if tp is Party:
        if not isinstance(value, dict):
            raise WireFormatError(f"{where}: expected a party object, got {value!r}")
        return Party(
            number=_decode(str, value.get("number", ""), where + ".number"),
            name=_decode(str, value.get("name", ""), where + ".name"),
        )
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError as exc:
            raise WireFormatError(f"{where}: {value!r} is not a {tp.__name__}") from exc
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WireFormatError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp in (str, int, bool):
        if type(value) is not tp:
            raise WireFormatError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise WireFormatError(f"{where}: unsupported field type {tp!r}")


def event_from_dict(data: dict[str, Any]) -> Wire:
    """Parse a dict made by :func:`event_to_dict`; unknown keys are ignored (newer senders)."""
    if not isinstance(data, dict):
        raise WireFormatError(f"expected an object, got {type(data).__name__}")
    name = data.get("type")
    cls = WIRE_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WireFormatError(f"unknown type {name!r}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            if has_default:
                continue
            raise WireFormatError(f"{name}: missing field {f.name!r}")
        kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{name}.{f.name}")
    obj: Wire = cls(**kwargs)
    return obj


def to_json(obj: Wire) -> str:
    """One compact JSON line for an event or observation (non-ASCII kept as is)."""
    return json.dumps(event_to_dict(obj), ensure_ascii=False, separators=(",", ":"))


def from_json(text: str | bytes) -> Wire:
    """Parse :func:`to_json` output; raises :class:`WireFormatError` on anything else."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"not JSON: {exc}") from exc
    return event_from_dict(data)
