"""Mango Office VPBX realtime events: a pure codec.

Wire format (PROVIDERS.md section 2): a url-encoded POST with ``vpbx_api_key``, ``sign`` and
``json``; ``sign = sha256_hex(vpbx_api_key + json + salt)`` over the ``json`` value exactly as
sent. Mango posts to our base URL plus the event path (``/events/call``, ``/events/summary``,
``/events/record/added``, ``/result/callback``...).

Mapping (the conversation is ``entry_id``, a leg is ``call_id``):

=======================  ===================================================================
call Appeared            ConversationStarted (ivr/queue, the first seq, or outbound);
                         LegRinging for an agent (``to.extension``) or the outside number
call Connected           LegAnswered; LegTransferred when ``from.taken_from_call_id`` is set
call Disconnected        LegEnded (why it stopped ringing) + LegHungUp
summary                  ConversationStarted (fills gaps),
                         ConversationEnded(outcome from ``entry_result``)
record/added             RecordingFound(reference="mango:<account>:<recording_id>")
result/callback          the asynchronous result of a click-to-call command
recording, dtmf, sms...  accepted, nothing for the call model
=======================  ===================================================================

Times: Mango's ``timestamp`` values are Unix times on a UTC+3 clock (the documentation says
"UTC+3"); :data:`CLOCK_OFFSET` is subtracted to get UTC. ``seq`` orders the events of one
``entry_id``; the inbox worker uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.adapters.errors import (
    WebhookMalformedError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookUnknownEvent,
)
from connector.adapters.webhook_request import (
    CallbackResult,
    Decoded,
    WebhookRequest,
    body_digest,
    outbound_started,
    parse_form,
)
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
    "CLOCK_OFFSET",
    "IGNORED_PATHS",
    "RECORDING_PREFIX",
    "from_mango_time",
    "parse",
    "sign",
    "to_mango_time",
    "verify",
]

RECORDING_PREFIX = "mango:"
CLOCK_OFFSET = timedelta(hours=3)
MAX_JSON = 65_536

#: Event paths Mango may post that carry nothing for the call model.
IGNORED_PATHS = frozenset(
    {"/events/recording", "/events/record/tagged", "/events/dtmf", "/events/sms", "/ping"}
)
_HANDLED = frozenset({"/events/call", "/events/summary", "/events/record/added"})


def sign(key: str, json_text: str, salt: str) -> str:
    """Mango's ``sign``: ``sha256_hex(vpbx_api_key + json + salt)``."""
    return hashlib.sha256((key + json_text + salt).encode()).hexdigest()


def from_mango_time(value: Any) -> datetime:
    """A Mango timestamp (Unix seconds on a UTC+3 clock, number or string) as UTC."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise WebhookMalformedError(f"timestamp must be Unix seconds, got {value!r}") from None
    if not 0 < seconds < 10**11:
        raise WebhookMalformedError(f"timestamp out of range: {value!r}")
    return datetime.fromtimestamp(seconds, tz=UTC) - CLOCK_OFFSET


def to_mango_time(at: datetime) -> int:
    """The Mango timestamp of a UTC time (inverse of :func:`from_mango_time`)."""
    return int((at + CLOCK_OFFSET).timestamp())


def _path(request: WebhookRequest) -> str:
    path = "/" + request.path.strip("/")
    return path


def _fields(request: WebhookRequest) -> tuple[str, str, str]:
    form = parse_form(request)
    missing = [n for n in ("vpbx_api_key", "sign", "json") if n not in form]
    if missing:
        raise WebhookMalformedError(f"the field {missing[0]!r} is missing")
    return form["vpbx_api_key"], form["sign"], form["json"]


def _load(json_text: str) -> dict[str, Any]:
    if len(json_text) > MAX_JSON:
        raise WebhookMalformedError(f"the json field is longer than {MAX_JSON} characters")
    try:
        data = json.loads(json_text)
    except (ValueError, RecursionError) as exc:
        raise WebhookMalformedError(f"the json field is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookMalformedError("the json field is not an object")
    return data


def verify(account: WebhookAccountSettings, request: WebhookRequest, now: datetime) -> None:
    """Check ``vpbx_api_key`` and ``sign`` (over the raw json string), then the replay window."""
    key, given, json_text = _fields(request)
    if not hmac.compare_digest(key.encode(), account.key.encode()):
        raise WebhookSignatureError("vpbx_api_key is not this account's key")
    expected = sign(account.key, json_text, account.secret.get())
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise WebhookSignatureError("sign does not match")
    data = _load(json_text)
    if "timestamp" in data and _path(request) in ("/events/call", "/events/record/added"):
        at = from_mango_time(data["timestamp"])
        if abs((now - at).total_seconds()) > account.max_skew_seconds:
            raise WebhookReplayError(
                f"timestamp is {int((now - at).total_seconds())} s away from our clock"
                f" (allowed {account.max_skew_seconds} s)"
            )


def _str(data: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise WebhookMalformedError(f"the json field {name!r} is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise WebhookMalformedError(f"{name} must be a string, got {type(value).__name__}")
    return str(value)


def _obj(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise WebhookMalformedError(f"{name} must be an object")
    return value


def _seq(data: Mapping[str, Any]) -> int | None:
    raw = data.get("seq")
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise WebhookMalformedError(f"seq must be an integer, got {raw!r}") from None
    if value < 0:
        raise WebhookMalformedError(f"seq must not be negative, got {value}")
    return value


def _party_number(side: Mapping[str, Any]) -> str:
    number = _str(side, "number")
    if number.startswith("sip:"):
        return ""  # on Disconnected Mango puts the agent's SIP URI here
    return number


def outcome_of(entry_result: int, direction: int, reason: str) -> Outcome:
    """The outcome of a summary (``entry_result`` 1 is a conversation)."""
    if entry_result == 1:
        return Outcome.ANSWERED
    if reason[:2] == "11" or not reason:
        return Outcome.NO_ANSWER
    return Outcome.FAILED


def parse(
    account: WebhookAccountSettings, request: WebhookRequest, received_at: datetime
) -> Decoded:
    """The observations of one verified Mango request."""
    path = _path(request)
    _, _, json_text = _fields(request)
    data = _load(json_text)
    if path == "/result/callback":
        command_id = _str(data, "command_id", required=True)
        try:
            result = int(_str(data, "result", required=True))
        except ValueError:
            raise WebhookMalformedError("result must be an integer") from None
        return Decoded(
            event_key=f"result:{command_id}",
            callback=CallbackResult(command_id=command_id, result=result),
            kind=path,
        )
    if path in IGNORED_PATHS or path.startswith("/result/"):
        return Decoded(event_key=f"{path}:{body_digest(json_text.encode())}", kind=path)
    if path not in _HANDLED:
        raise WebhookUnknownEvent(f"unknown Mango event path {path!r}")
    entry = _str(data, "entry_id", required=True)
    if not entry:
        raise WebhookMalformedError("entry_id is empty")
    pbx = account.pbx_name
    if path == "/events/record/added":
        rec = _str(data, "recording_id", required=True)
        at = from_mango_time(data["timestamp"]) if "timestamp" in data else received_at
        key = f"record:{rec}"
        found = RecordingFound(
            pbx=pbx,
            conversation_id=entry,
            at=at,
            source_key=key,
            reference=f"{RECORDING_PREFIX}{account.account}:{rec}",
        )
        return Decoded(event_key=key, conversation_id=entry, observations=(found,), kind=path)
    if path == "/events/summary":
        return _summary(pbx, entry, data, path)
    return _call(pbx, entry, data, path)


def _summary(pbx: str, entry: str, data: Mapping[str, Any], path: str) -> Decoded:
    try:
        result = int(_str(data, "entry_result") or "0")
        direction = int(_str(data, "call_direction") or "0")
    except ValueError:
        raise WebhookMalformedError("entry_result and call_direction must be integers") from None
    end_raw = data.get("end_time")
    at = from_mango_time(end_raw) if end_raw not in (None, "", 0, "0") else None
    if at is None:
        raise WebhookMalformedError("summary without end_time")
    key = f"summary:{entry}"
    src = _obj(data, "from")
    dst = _obj(data, "to")
    created_raw = data.get("create_time")
    created = from_mango_time(created_raw) if created_raw not in (None, "", 0, "0") else at
    line = _str(data, "line_number")
    kind = {1: Direction.INBOUND, 2: Direction.OUTBOUND}.get(direction, Direction.INTERNAL)
    # Opens the call if no leg of it was seen; for a known call it only fills gaps.
    opened = ConversationStarted(
        pbx=pbx,
        conversation_id=entry,
        at=created,
        source_key=key,
        direction=kind,
        caller=Party(_party_number(src) or _str(src, "extension")),
        callee=Party(_party_number(dst) or line or _str(dst, "extension")),
        did=line if kind is Direction.INBOUND else "",
    )
    ended = ConversationEnded(
        pbx=pbx,
        conversation_id=entry,
        at=at,
        source_key=key,
        outcome=outcome_of(result, direction, _str(data, "disconnect_reason")),
    )
    return Decoded(event_key=key, conversation_id=entry, observations=(opened, ended), kind=path)


def _call(pbx: str, entry: str, data: Mapping[str, Any], path: str) -> Decoded:
    leg = _str(data, "call_id", required=True)
    state = _str(data, "call_state", required=True)
    if "timestamp" not in data:
        raise WebhookMalformedError("the json field 'timestamp' is missing")
    at = from_mango_time(data["timestamp"])
    seq = _seq(data)
    src = _obj(data, "from")
    dst = _obj(data, "to")
    location = _str(data, "location") or _str(data, "locaton")
    key = f"call:{entry}:{leg}:{state}:{seq if seq is not None else ''}"
    from_ext = _str(src, "extension")
    to_ext = _str(dst, "extension")
    caller = Party(_party_number(src) or from_ext)
    did = _str(dst, "line_number")
    obs: list[Observation] = []
    base: dict[str, Any] = {"pbx": pbx, "conversation_id": entry, "at": at, "source_key": key}
    if state == "Appeared":
        outbound = bool(from_ext) and not to_ext and not did
        if outbound:
            obs.extend(
                outbound_started(
                    **base, leg_id=leg, agent=from_ext, callee=Party(_party_number(dst))
                )
            )
        else:
            direction = Direction.INTERNAL if from_ext and to_ext else Direction.INBOUND
            callee_number = _party_number(dst) or did
            if location in ("ivr", "queue") or not to_ext or (seq is not None and seq <= 1):
                obs.append(
                    ConversationStarted(
                        **base,
                        direction=direction,
                        caller=caller,
                        callee=Party(did or callee_number),
                        did=did,
                    )
                )
            if to_ext:
                obs.append(
                    LegRinging(
                        **base,
                        leg_id=leg,
                        extension=to_ext,
                        caller=caller,
                        callee=Party(to_ext),
                        direction=direction,
                        queue=_str(dst, "acd_group"),
                        did=did,
                        from_extension=from_ext,
                    )
                )
    elif state == "Connected":
        obs.append(LegAnswered(**base, leg_id=leg, extension=to_ext))
        taken_from = _str(src, "taken_from_call_id")
        if taken_from and to_ext:
            kind = _str(data, "transfer")
            obs.append(
                LegTransferred(
                    **base,
                    from_extension=from_ext,
                    to_extension=to_ext,
                    kind=TransferKind.ATTENDED if kind == "consultative" else TransferKind.BLIND,
                    from_leg_id=taken_from,
                    to_leg_id=leg,
                )
            )
    elif state == "Disconnected":
        # The tracker ignores a leg status once the leg was answered, so this only says why a
        # leg that rang stopped ringing.
        reason = _str(data, "disconnect_reason")
        status = LegStatus.CANCEL if reason[:2] in ("", "11") else LegStatus.FAILED
        obs.append(LegEnded(**base, leg_id=leg, extension=to_ext, status=status))
        obs.append(LegHungUp(**base, leg_id=leg))
    elif state != "OnHold":
        raise WebhookMalformedError(f"unknown call_state {state!r}")
    return Decoded(
        event_key=key, conversation_id=entry, seq=seq, observations=tuple(obs), kind=path
    )
