"""The connector's own JSON webhook format, for any PBX that can post events: a pure codec.

Documented for integrators in ``docs/generic-webhook.md`` with the JSON Schema
``docs/generic-webhook.schema.json``. The same signature scheme signs our outgoing webhooks
(:mod:`connector.outbox`).

Signature: ``X-Connector-Timestamp: <unix seconds>`` and
``X-Connector-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`` over the raw
body bytes. A timestamp further than ``max_skew_seconds`` from our clock is a replay.

One request carries one event (an object) or several (``{"events": [...]}``, applied in order).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connector.adapters.errors import (
    WebhookMalformedError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookUnknownEvent,
)
from connector.adapters.webhook_request import Decoded, WebhookRequest
from connector.config import WebhookAccountSettings
from connector.events.model import (
    ConversationEnded,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegEnded,
    LegHungUp,
    LegRinging,
    LegStatus,
    LegTransferred,
    Observation,
    Outcome,
    Party,
    RecordingFound,
    TransferKind,
)

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "parse",
    "sign_body",
    "verify",
    "verify_signature",
]

TIMESTAMP_HEADER = "X-Connector-Timestamp"
SIGNATURE_HEADER = "X-Connector-Signature"
EVENT_TYPES = (
    "call.started",
    "leg.ringing",
    "leg.answered",
    "leg.ended",
    "leg.hungup",
    "leg.transferred",
    "call.ended",
    "recording.found",
)
MAX_EVENTS = 100


def sign_body(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Connector-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``ts.body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime, max_skew: int
) -> int:
    """Check the signature headers (lower-case names) on the raw body; return the timestamp."""
    raw_ts = headers.get(TIMESTAMP_HEADER.lower(), "")
    given = headers.get(SIGNATURE_HEADER.lower(), "")
    if not raw_ts or not given:
        raise WebhookSignatureError(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    try:
        ts = int(raw_ts)
    except ValueError:
        raise WebhookSignatureError(f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    expected = sign_body(secret, ts, body)
    candidates = [c.strip() for c in given.split(",")]  # several during a secret rotation
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} does not match")
    skew = now.timestamp() - ts
    if abs(skew) > max_skew:
        raise WebhookReplayError(
            f"the timestamp is {int(skew)} s away from our clock (allowed {max_skew} s)"
        )
    return ts


def verify(account: WebhookAccountSettings, request: WebhookRequest, now: datetime) -> None:
    """Check the signature over the raw body and the replay window."""
    verify_signature(
        account.secret.get(), request.headers, request.body, now, account.max_skew_seconds
    )


def _load(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise WebhookMalformedError("the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise WebhookMalformedError(f"the body is not JSON: {exc}") from None


def _str(data: Mapping[str, Any], name: str, where: str, required: bool = False) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise WebhookMalformedError(f"{where}: {name!r} is required")
        return ""
    if not isinstance(value, str):
        raise WebhookMalformedError(f"{where}: {name!r} must be a string")
    if len(value) > 500:
        raise WebhookMalformedError(f"{where}: {name!r} is longer than 500 characters")
    return value


def _time(data: Mapping[str, Any], where: str) -> datetime:
    value = data.get("at")
    if isinstance(value, bool) or value is None:
        raise WebhookMalformedError(f"{where}: 'at' is required (ISO-8601 or Unix seconds)")
    if isinstance(value, int | float):
        if not 0 < value < 10**11:
            raise WebhookMalformedError(f"{where}: 'at' is out of range")
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise WebhookMalformedError(f"{where}: 'at' is not ISO-8601: {value[:40]!r}") from None
        if at.tzinfo is None:
            raise WebhookMalformedError(f"{where}: 'at' needs a UTC offset")
        return at.astimezone(UTC)
    raise WebhookMalformedError(f"{where}: 'at' must be a string or a number")


def _enum(data: Mapping[str, Any], name: str, where: str, cls: Any, default: Any) -> Any:
    raw = _str(data, name, where)
    if not raw:
        return default
    try:
        return cls(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise WebhookMalformedError(f"{where}: {name!r} must be one of {allowed}") from None


def _observations(pbx: str, ev: Mapping[str, Any], where: str) -> list[Observation]:
    etype = _str(ev, "type", where, required=True)
    if etype not in EVENT_TYPES:
        raise WebhookUnknownEvent(f"{where}: unknown event type {etype!r}")
    call = _str(ev, "call_id", where, required=True)
    if not call:
        raise WebhookMalformedError(f"{where}: 'call_id' is empty")
    key = _str(ev, "id", where, required=True)
    at = _time(ev, where)
    direction = _enum(ev, "direction", where, Direction, Direction.UNKNOWN)
    caller = Party(_str(ev, "from", where), _str(ev, "from_name", where))
    callee = Party(_str(ev, "to", where))
    did = _str(ev, "did", where)
    ext = _str(ev, "extension", where)
    leg = _str(ev, "leg_id", where)
    common: dict[str, Any] = {"pbx": pbx, "conversation_id": call, "at": at, "source_key": key}
    needs_leg = etype.startswith("leg.") and etype != "leg.transferred"
    if needs_leg and not leg:
        raise WebhookMalformedError(f"{where}: {etype} needs 'leg_id'")
    if etype == "call.started":
        return [
            ConversationStarted(
                **common, direction=direction, caller=caller, callee=callee, did=did
            )
        ]
    if etype == "leg.ringing":
        external = ev.get("external", False)
        if not isinstance(external, bool):
            raise WebhookMalformedError(f"{where}: 'external' must be true or false")
        if not ext and not external:
            raise WebhookMalformedError(f"{where}: leg.ringing needs 'extension' or external")
        return [
            LegRinging(
                **common,
                leg_id=leg,
                extension=ext,
                caller=caller,
                callee=callee,
                direction=direction,
                queue=_str(ev, "queue", where),
                did=did,
                external=external,
                from_extension=_str(ev, "from_extension", where),
            )
        ]
    if etype == "leg.answered":
        return [LegAnswered(**common, leg_id=leg, extension=ext)]
    if etype == "leg.ended":
        status = _enum(ev, "status", where, LegStatus, LegStatus.NO_ANSWER)
        return [LegEnded(**common, leg_id=leg, extension=ext, status=status)]
    if etype == "leg.hungup":
        return [LegHungUp(**common, leg_id=leg)]
    if etype == "leg.transferred":
        return [
            LegTransferred(
                **common,
                from_extension=_str(ev, "from_extension", where),
                to_extension=_str(ev, "to_extension", where, required=True),
                kind=_enum(ev, "kind", where, TransferKind, TransferKind.BLIND),
                from_leg_id=_str(ev, "from_leg_id", where),
                to_leg_id=_str(ev, "to_leg_id", where),
            )
        ]
    if etype == "recording.found":
        url = _str(ev, "recording_url", where, required=True)
        if not url.startswith(("http://", "https://")):
            raise WebhookMalformedError(f"{where}: 'recording_url' must be an http(s) URL")
        return [RecordingFound(**common, reference=url, leg_id=leg)]
    outcome = _enum(ev, "outcome", where, Outcome, None)
    return [ConversationEnded(**common, outcome=outcome)]


def parse(
    account: WebhookAccountSettings, request: WebhookRequest, received_at: datetime
) -> Decoded:
    """The observations of one verified request (one event or ``{"events": [...]}``)."""
    del received_at  # every event carries its own time
    data = _load(request.body)
    if not isinstance(data, dict):
        raise WebhookMalformedError("the body must be a JSON object")
    batch = data.get("events")
    events: list[Any]
    if batch is None:
        events = [data]
    elif isinstance(batch, list) and 0 < len(batch) <= MAX_EVENTS:
        events = batch
    else:
        raise WebhookMalformedError(f"'events' must be an array of 1..{MAX_EVENTS} events")
    obs: list[Observation] = []
    keys: list[str] = []
    calls: set[str] = set()
    seq: int | None = None
    for i, ev in enumerate(events):
        where = "event" if batch is None else f"events[{i}]"
        if not isinstance(ev, dict):
            raise WebhookMalformedError(f"{where} must be an object")
        obs.extend(_observations(account.pbx_name, ev, where))
        keys.append(str(ev["id"]))
        calls.add(str(ev["call_id"]))
        raw_seq = ev.get("seq")
        if raw_seq is not None:
            if isinstance(raw_seq, bool) or not isinstance(raw_seq, int) or raw_seq < 0:
                raise WebhookMalformedError(f"{where}: 'seq' must be a non-negative integer")
            seq = raw_seq if seq is None else min(seq, raw_seq)
    key = (
        keys[0]
        if len(keys) == 1
        else "batch:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
    )
    conversation = next(iter(calls)) if len(calls) == 1 else ""
    return Decoded(
        event_key=key[:200],
        conversation_id=conversation,
        seq=seq if len(calls) == 1 else None,
        observations=tuple(obs),
        kind=str(events[0].get("type")),
    )
