"""Zadarma PBX call notifications (``NOTIFY_*``): a pure codec.

Wire format (PROVIDERS.md section 1): a form POST (url-encoded or multipart) with ``event`` and
per-event fields; the ``Signature`` header is ``base64(hex(HMAC-SHA1(secret, concat)))`` where
``concat`` depends on the event. A ``GET ?zd_echo=X`` checks the URL and must be answered ``X``.

Mapping onto observations (the conversation is ``pbx_call_id``; Zadarma has no leg ids, so a
leg is ``<pbx_call_id>:<extension>`` inbound and ``<pbx_call_id>:out`` outbound):

=================  ==========================================================================
NOTIFY_START       ConversationStarted(inbound, caller_id -> called_did)
NOTIFY_INTERNAL    LegRinging(extension=internal)
NOTIFY_ANSWER      LegAnswered (the extension's leg, or the outbound leg)
NOTIFY_END         ConversationStarted (fills gaps), LegEnded (unanswered extension) or
                   LegAnswered again (answered), RecordingFound if recorded,
                   ConversationEnded(outcome from ``disposition``)
NOTIFY_OUT_START   ConversationStarted(outbound) + LegRinging(external, from_extension=internal)
NOTIFY_OUT_END     the same for the outbound leg
NOTIFY_RECORD      RecordingFound(reference="zadarma:<account>:<call_id_with_rec>")
NOTIFY_IVR         nothing (accepted)
=================  ==========================================================================

Dynamic routing (PROVIDERS.md 1.4): Zadarma takes the body of the answer to ``NOTIFY_START`` as
instructions, ``{"redirect": "<extension>", "caller_name": "<name>"}`` among them; an empty
body leaves the call to the PBX's own scenario. :func:`routing_number` says which events may be
answered that way and :func:`route_answer` shapes the body; the web route asks the CRM.

Times: ``call_start`` is local time of the account (``timezone`` setting), converted to UTC. It
is the only provider time, so ring and answer are stamped with it and the end with
``call_start + duration``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from connector.adapters.errors import (
    WebhookMalformedError,
    WebhookSignatureError,
    WebhookUnknownEvent,
)
from connector.adapters.webhook_request import (
    Decoded,
    WebhookRequest,
    body_digest,
    form_seconds,
    outbound_started,
    parse_form,
    require,
    require_id,
)
from connector.config import WebhookAccountSettings
from connector.events.model import (
    ConversationEnded,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegEnded,
    LegRinging,
    LegStatus,
    Observation,
    Outcome,
    Party,
    RecordingFound,
)

__all__ = [
    "EVENTS",
    "MAX_CALLER_NAME",
    "RECORDING_PREFIX",
    "echo_reply",
    "outcome_of",
    "parse",
    "route_answer",
    "routing_number",
    "sign_api_request",
    "signature",
    "signature_string",
    "verify",
]

RECORDING_PREFIX = "zadarma:"

#: Event name -> the fields whose concatenation is signed.
EVENTS: dict[str, tuple[str, ...]] = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_IVR": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}

_EXTENSION = re.compile(r"^[0-9]{2,5}$")
#: Longest ``caller_name`` sent back (it becomes the SIP display name on the agent's phone).
MAX_CALLER_NAME = 64
_ECHO = re.compile(r"^[A-Za-z0-9_\-.]{1,200}$")


def _hex_hmac_b64(secret: str, data: str) -> str:
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def signature_string(fields: dict[str, str]) -> str:
    """The string Zadarma signs for this event (raises for an unknown event)."""
    event = fields.get("event", "")
    names = EVENTS.get(event)
    if names is None:
        raise WebhookUnknownEvent(f"unknown Zadarma event {event!r}")
    return "".join(fields.get(n, "") for n in names)


def signature(secret: str, fields: dict[str, str]) -> str:
    """The ``Signature`` header value Zadarma sends for these fields."""
    return _hex_hmac_b64(secret, signature_string(fields))


def echo_reply(request: WebhookRequest) -> str | None:
    """The body to answer a ``GET ?zd_echo=X`` URL check with (None if it is not one)."""
    value = request.query.get("zd_echo")
    if value is None:
        return None
    if not _ECHO.match(value):
        raise WebhookMalformedError("zd_echo must be 1..200 letters, digits, '-', '_' or '.'")
    return value


def verify(account: WebhookAccountSettings, request: WebhookRequest, now: datetime) -> None:
    """Check the ``Signature`` header against the account's API secret."""
    del now  # Zadarma signs no timestamp; duplicates are dropped by the inbox instead.
    given = request.header("signature")
    if not given:
        raise WebhookSignatureError("the Signature header is missing")
    fields = parse_form(request)
    if "event" not in fields:
        raise WebhookMalformedError("the field 'event' is missing")
    expected = signature(account.secret.get(), fields)
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise WebhookSignatureError("the Signature header does not match")


def outcome_of(disposition: str) -> tuple[Outcome, LegStatus]:
    """The call outcome and the leg status of a Zadarma ``disposition``."""
    d = disposition.strip().lower()
    if d == "answered":
        return Outcome.ANSWERED, LegStatus.ANSWER
    if d == "busy":
        return Outcome.BUSY, LegStatus.BUSY
    if d == "no answer":
        return Outcome.NO_ANSWER, LegStatus.NO_ANSWER
    if d == "cancel":
        return Outcome.ABANDONED, LegStatus.CANCEL
    return Outcome.FAILED, LegStatus.FAILED


def _call_start(account: WebhookAccountSettings, value: str) -> datetime:
    try:
        local = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise WebhookMalformedError(
            f"call_start must be 'YYYY-MM-DD HH:MM:SS', got {value[:40]!r}"
        ) from None
    return local.replace(tzinfo=ZoneInfo(account.timezone)).astimezone(ZoneInfo("UTC"))


def parse(
    account: WebhookAccountSettings, request: WebhookRequest, received_at: datetime
) -> Decoded:
    """The observations of one verified Zadarma notification."""
    f = parse_form(request)
    event = f.get("event", "")
    if event not in EVENTS:
        raise WebhookUnknownEvent(f"unknown Zadarma event {event!r}")
    call = require_id(f, "pbx_call_id")
    pbx = account.pbx_name
    key_fields = "&".join(f"{k}={v}" for k, v in sorted(f.items()))
    key = f"{event}:{call}:{body_digest(key_fields.encode())}"
    obs: list[Observation] = []
    if event == "NOTIFY_RECORD":
        rec = require_id(f, "call_id_with_rec")
        # NOTIFY_RECORD has no time of its own: it is stamped when it arrived.
        obs.append(
            RecordingFound(
                pbx=pbx,
                conversation_id=call,
                at=received_at,
                source_key=key,
                reference=f"{RECORDING_PREFIX}{account.account}:{rec}",
            )
        )
        return Decoded(event_key=key, conversation_id=call, observations=tuple(obs), kind=event)
    (start_raw,) = require(f, "call_start")
    start = _call_start(account, start_raw)
    caller = f.get("caller_id", "")
    internal = f.get("internal", "")
    if event == "NOTIFY_START":
        obs.append(_inbound_started(pbx, call, start, key, caller, f.get("called_did", "")))
    elif event == "NOTIFY_INTERNAL":
        if not internal:
            raise WebhookMalformedError("NOTIFY_INTERNAL without 'internal'")
        did = f.get("called_did", "")
        obs.append(
            LegRinging(
                pbx=pbx,
                conversation_id=call,
                at=start,
                source_key=key,
                leg_id=f"{call}:{internal}",
                extension=internal,
                caller=Party(caller),
                callee=Party(internal),
                direction=Direction.INBOUND,
                did=did,
            )
        )
    elif event == "NOTIFY_ANSWER":
        destination = f.get("destination", "")
        ext = _answering_extension(caller, destination, internal)
        leg = f"{call}:{ext}" if ext else f"{call}:out"
        obs.append(
            LegAnswered(
                pbx=pbx, conversation_id=call, at=start, source_key=key, leg_id=leg, extension=ext
            )
        )
    elif event == "NOTIFY_OUT_START":
        (destination,) = require(f, "destination")
        obs.extend(
            outbound_started(
                pbx=pbx,
                conversation_id=call,
                at=start,
                source_key=key,
                leg_id=f"{call}:out",
                agent=internal,
                callee=Party(destination),
            )
        )
    elif event in ("NOTIFY_END", "NOTIFY_OUT_END"):
        duration = form_seconds(f, "duration")
        end = start + timedelta(seconds=duration)
        outcome, status = outcome_of(f.get("disposition", ""))
        if event == "NOTIFY_END":
            leg, ext = (f"{call}:{internal}", internal) if internal else ("", "")
            opened = _inbound_started(pbx, call, start, key, caller, f.get("called_did", ""))
        else:
            leg, ext = f"{call}:out", ""
            opened, _ = outbound_started(
                pbx=pbx,
                conversation_id=call,
                at=start,
                source_key=key,
                leg_id=leg,
                agent=internal,
                callee=Party(f.get("destination", "")),
            )
        # Opens the call if its start was never seen; for a known call it only fills gaps.
        obs.append(opened)
        if leg and status is LegStatus.ANSWER:
            # Repeats the answer in case NOTIFY_ANSWER was lost (the tracker ignores a second
            # answer of the same leg).
            obs.append(
                LegAnswered(
                    pbx=pbx,
                    conversation_id=call,
                    at=end - timedelta(seconds=duration),
                    source_key=key,
                    leg_id=leg,
                    extension=ext,
                )
            )
        elif leg:
            obs.append(
                LegEnded(
                    pbx=pbx,
                    conversation_id=call,
                    at=end,
                    source_key=key,
                    leg_id=leg,
                    extension=ext,
                    status=status,
                )
            )
        rec = f.get("call_id_with_rec", "")
        if f.get("is_recorded") == "1" and rec:
            obs.append(
                RecordingFound(
                    pbx=pbx,
                    conversation_id=call,
                    at=end,
                    source_key=key,
                    reference=f"{RECORDING_PREFIX}{account.account}:{rec}",
                )
            )
        obs.append(
            ConversationEnded(
                pbx=pbx, conversation_id=call, at=end, source_key=key, outcome=outcome
            )
        )
    # NOTIFY_IVR: an IVR step; nothing for the call model.
    return Decoded(event_key=key, conversation_id=call, observations=tuple(obs), kind=event)


def routing_number(decoded: Decoded) -> str | None:
    """The caller's number if this event may be answered with a route, else None.

    Only ``NOTIFY_START`` is: ``NOTIFY_IVR`` follows an IVR step where the caller made a choice
    (or one asked for with ``wait_dtmf``, which we never send), and a redirect must not
    override it."""
    if decoded.kind != "NOTIFY_START":
        return None
    for obs in decoded.observations:
        if isinstance(obs, ConversationStarted):
            return obs.caller.number
    return None


def route_answer(extension: str, caller_name: str) -> dict[str, str]:
    """The JSON body answering ``NOTIFY_START``: ``redirect`` to ``extension`` and the
    ``caller_name`` to show, each only when known; ``{}`` means "answer with an empty body"."""
    body: dict[str, str] = {}
    if _EXTENSION.match(extension):
        body["redirect"] = extension
    name = " ".join("".join(ch for ch in caller_name if ch.isprintable()).split())
    if name:
        body["caller_name"] = name[:MAX_CALLER_NAME].rstrip()
    return body


def _inbound_started(
    pbx: str, call: str, start: datetime, key: str, caller: str, did: str
) -> ConversationStarted:
    """An inbound call from ``caller`` to the account's number ``did`` begins."""
    return ConversationStarted(
        pbx=pbx,
        conversation_id=call,
        at=start,
        source_key=key,
        direction=Direction.INBOUND,
        caller=Party(caller),
        callee=Party(did),
        did=did,
    )


def _answering_extension(caller: str, destination: str, internal: str) -> str:
    """Which extension answered: '' when the answering party is the outside number."""
    if internal and internal == caller:
        return ""  # an agent's outbound call: the customer answered
    if internal:
        return internal
    if _EXTENSION.match(destination):
        return destination
    return ""


def sign_api_request(method_path: str, params: dict[str, str], key: str, secret: str) -> str:
    """The ``Authorization`` header of a Zadarma API call: ``key:base64(hex(hmac_sha1))``.

    ``method_path`` is the path with version and trailing slash (``/v1/request/callback/``);
    the signed string is ``method_path + query + md5_hex(query)`` with the parameters sorted by
    name and RFC 1738 encoded (spaces as ``+``).
    """
    from urllib.parse import urlencode

    query = urlencode(sorted(params.items()))
    data = method_path + query + hashlib.md5(query.encode()).hexdigest()
    return f"{key}:{_hex_hmac_b64(secret, data)}"
