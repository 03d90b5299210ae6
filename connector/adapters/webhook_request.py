"""What every webhook codec is fed and what it returns (pure: no I/O, no clock).

A provider codec (:mod:`~connector.adapters.zadarma`, :mod:`~connector.adapters.mango`,
:mod:`~connector.adapters.megafon`, :mod:`~connector.adapters.generic_webhook`) exposes two
functions with the same contract:

* ``verify(account, request, now)`` checks the signature (or token) on the raw bytes and, where
  the provider sends a timestamp, the replay window. It raises
  :class:`~connector.adapters.errors.WebhookSignatureError` /
  :class:`~connector.adapters.errors.WebhookReplayError` /
  :class:`~connector.adapters.errors.WebhookMalformedError`.
* ``parse(account, request, received_at)`` turns an authentic request into a :class:`Decoded`:
  the provider's event key (for deduplication), its ordering hint, the conversation it belongs
  to, and the observations for the call tracker. It raises
  :class:`~connector.adapters.errors.WebhookMalformedError` or
  :class:`~connector.adapters.errors.WebhookUnknownEvent`.

The web route calls both before it stores the request in the inbox; the inbox worker calls only
``parse`` again (the request was verified when it arrived).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from connector.adapters.errors import WebhookMalformedError
from connector.events.model import ConversationStarted, Direction, LegRinging, Observation, Party

__all__ = [
    "CallbackResult",
    "Decoded",
    "WebhookRequest",
    "body_digest",
    "form_seconds",
    "outbound_started",
    "parse_form",
    "require",
    "require_id",
]

MAX_FIELDS = 200


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One HTTP request as received: the raw body is kept byte for byte for the signature."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = ""  # what follows /webhooks/{provider}/{account} (Mango: /events/call)
    method: str = "POST"

    def header(self, name: str) -> str:
        """A header's value ('' when absent); ``name`` in any case."""
        return self.headers.get(name.lower(), "")

    def to_record(self) -> dict[str, Any]:
        """The parts besides the body worth storing in the inbox (JSON-ready)."""
        return {
            "headers": dict(self.headers),
            "query": dict(self.query),
            "path": self.path,
            "method": self.method,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], body: bytes) -> WebhookRequest:
        """Rebuild a request stored with :meth:`to_record`."""
        return cls(
            body=body,
            headers=dict(record.get("headers") or {}),
            query=dict(record.get("query") or {}),
            path=str(record.get("path") or ""),
            method=str(record.get("method") or "POST"),
        )


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """The asynchronous result of a click-to-call command (Mango ``/result/callback``)."""

    command_id: str
    result: int


@dataclass(frozen=True, slots=True)
class Decoded:
    """An authentic provider event, ready for the inbox and the tracker."""

    event_key: str
    conversation_id: str = ""
    seq: int | None = None
    observations: tuple[Observation, ...] = ()
    callback: CallbackResult | None = None
    kind: str = ""  # the provider's event name, for logs


def body_digest(body: bytes) -> str:
    """A short stable digest of a body (event keys for providers without an event id)."""
    return hashlib.sha256(body).hexdigest()[:32]


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookMalformedError(f"the body is not UTF-8 (byte {exc.start})") from None


def _parse_urlencoded(body: bytes) -> dict[str, str]:
    text = _decode_text(body)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text.strip()))
    except ValueError as exc:
        raise WebhookMalformedError(f"the form body is not url-encoded: {exc}") from None
    if len(pairs) > MAX_FIELDS:
        raise WebhookMalformedError(f"the form has more than {MAX_FIELDS} fields")
    return dict(pairs)


def _parse_multipart(body: bytes) -> dict[str, str]:
    """A small multipart/form-data reader that takes the boundary from the body itself.

    Zadarma has been seen sending a boundary in the header that differs from the body's, so the
    first line of the body is the boundary that counts.
    """
    first, sep, _ = body.lstrip(b"\r\n").partition(b"\n")
    boundary = first.rstrip(b"\r")
    if not sep or not boundary.startswith(b"--") or len(boundary) < 3:
        raise WebhookMalformedError("the multipart body does not start with a boundary line")
    out: dict[str, str] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, found, value = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not found:
            head, found, value = part.lstrip(b"\n").partition(b"\n\n")
        if not found:
            raise WebhookMalformedError("a multipart part has no blank line after its headers")
        name = ""
        for line in _decode_text(head).splitlines():
            key, _, rest = line.partition(":")
            if key.strip().lower() != "content-disposition":
                continue
            for item in rest.split(";"):
                k, eq, v = item.strip().partition("=")
                if eq and k.strip().lower() == "name":
                    name = v.strip().strip('"')
        if not name:
            raise WebhookMalformedError("a multipart part has no name")
        if value.endswith(b"\r\n"):
            value = value[:-2]
        elif value.endswith(b"\n"):
            value = value[:-1]
        out[name] = _decode_text(value)
        if len(out) > MAX_FIELDS:
            raise WebhookMalformedError(f"the form has more than {MAX_FIELDS} fields")
    if not out:
        raise WebhookMalformedError("the multipart body has no fields")
    return out


def parse_form(request: WebhookRequest) -> dict[str, str]:
    """The form fields of a url-encoded or multipart body (GET: the query string)."""
    if request.method == "GET":
        return dict(request.query)
    ctype = request.header("content-type").lower()
    if ctype.startswith("multipart/"):
        return _parse_multipart(request.body)
    if request.body.lstrip().startswith(b"--") and b"content-disposition" in request.body.lower():
        return _parse_multipart(request.body)
    return _parse_urlencoded(request.body)


def require(fields: Mapping[str, str], *names: str) -> list[str]:
    """The values of required form fields, or a :class:`WebhookMalformedError` naming the first
    one missing."""
    out = []
    for name in names:
        value = fields.get(name)
        if value is None:
            raise WebhookMalformedError(f"the field {name!r} is missing")
        out.append(value)
    return out


def form_seconds(fields: Mapping[str, str], name: str) -> int:
    """A form field holding whole seconds (absent or empty: 0), at most 10**7."""
    raw = fields.get(name, "") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise WebhookMalformedError(f"{name} must be an integer, got {raw[:20]!r}") from None
    if value < 0 or value > 10**7:
        raise WebhookMalformedError(f"{name} is out of range: {value}")
    return value


def require_id(fields: Mapping[str, str], name: str) -> str:
    """A required form field that must not be empty either (a call or recording id)."""
    (value,) = require(fields, name)
    if not value:
        raise WebhookMalformedError(f"{name} is empty")
    return value


def outbound_started(
    *,
    pbx: str,
    conversation_id: str,
    at: datetime,
    source_key: str,
    leg_id: str,
    agent: str,
    callee: Party,
) -> tuple[ConversationStarted, LegRinging]:
    """An agent's outbound call begins: the conversation opens (outbound, from the agent's
    extension ``agent`` to ``callee``) and the outside leg ``leg_id`` rings."""
    opened = ConversationStarted(
        pbx=pbx,
        conversation_id=conversation_id,
        at=at,
        source_key=source_key,
        direction=Direction.OUTBOUND,
        caller=Party(agent),
        callee=callee,
    )
    ringing = LegRinging(
        pbx=pbx,
        conversation_id=conversation_id,
        at=at,
        source_key=source_key,
        leg_id=leg_id,
        caller=Party(agent),
        callee=callee,
        direction=Direction.OUTBOUND,
        external=True,
        from_extension=agent,
    )
    return opened, ringing
