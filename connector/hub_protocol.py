"""The screen-pop hub's wire protocol: close codes and client messages (pure, no I/O).

Server to client, every message is a JSON object with a ``type``:

``hello``      after authentication: who you are, your scope, the stream ``epoch`` and ``seq``
``snapshot``   the calls ringing or in progress for you right now (after hello and on subscribe)
``call``       a call event for you, with ``seq``; ``call.ringing`` carries the pop (number,
               card or ``card_pending``); ``call.transferred`` carries the card and history
``card``       a card that was not ready within the lookup budget, with ``seq`` (always after
               the ``call`` message of the same conversation)
``task``       a task was assigned to you (a callback for a missed call...), with ``seq``
``resync``     the cursor you gave is too old or from another epoch: drop local state, the
               snapshot that follows is the truth
``subscribed`` answer to ``subscribe``
``pong``       answer to ``ping``
``error``      your message was refused: ``code`` and a readable ``message``

Client to server: ``{"type": "ping"}``, ``{"type": "ack", "seq": N}``,
``{"type": "subscribe", "scope": "own" | "team" | "all", "last_seq": N, "epoch": "..."}``.
A message that is too large, not JSON, not an object or unknown is answered with ``error``
and the connection stays open (a frame over four times the limit, and at least 1 MiB, is not
even read: the websocket layer closes with 1009). Twenty bad messages in a row close the
connection with 4400.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCOPES",
    "Ack",
    "ClientMessage",
    "CloseCode",
    "Ping",
    "ProtocolError",
    "Subscribe",
    "parse_client_message",
]

SCOPES = ("own", "team", "all")


class CloseCode(enum.IntEnum):
    """Websocket close codes the hub uses (4000-4999 are for applications)."""

    BAD_REQUEST = 4400  # malformed handshake parameters
    TOKEN_MISSING = 4401  # no token in header, query or cookie
    TOKEN_INVALID = 4402  # unknown token, or its user is inactive
    TOKEN_REVOKED = 4403  # the token was revoked (at connect or while connected)
    NOT_ALLOWED = 4404  # a token that may not receive pops (PBX-scoped)
    TOO_SLOW = 4408  # the send queue was full: the client does not read fast enough
    TOO_MANY = 4429  # too many connections for this user
    GOING_AWAY = 1001  # the server stops


class ProtocolError(ValueError):
    """A client message was refused; ``code`` is machine-readable, the text is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Ping:
    """The client checks the server is alive."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The client has handled every message up to ``seq``."""

    seq: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """The client wants another scope (supervisors: team, admins: all), optionally resuming."""

    scope: str
    last_seq: int | None = None
    epoch: str | None = None


ClientMessage = Ping | Ack | Subscribe


def _int_field(data: dict[str, Any], name: str, required: bool) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ProtocolError("malformed", f"field {name!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("malformed", f"field {name!r} must be a non-negative integer")
    return value


def parse_client_message(raw: str | bytes, max_bytes: int) -> ClientMessage:
    """Validate one client message; raise :class:`ProtocolError` saying what is wrong."""
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ProtocolError(
            "too_large", f"message of {size} bytes is over the limit of {max_bytes} bytes"
        )
    if isinstance(raw, bytes):
        raise ProtocolError("malformed", "binary messages are not accepted; send JSON text")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ProtocolError("malformed", f"message is not valid JSON: {detail}") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "message must be a JSON object with a 'type'")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("malformed", "field 'type' is required and must be a string")
    if kind == "ping":
        return Ping()
    if kind == "ack":
        seq = _int_field(data, "seq", required=True)
        assert seq is not None
        return Ack(seq=seq)
    if kind == "subscribe":
        scope = data.get("scope")
        if scope not in SCOPES:
            raise ProtocolError("malformed", f"field 'scope' must be one of {', '.join(SCOPES)}")
        epoch = data.get("epoch")
        if epoch is not None and not isinstance(epoch, str):
            raise ProtocolError("malformed", "field 'epoch' must be a string")
        return Subscribe(scope=scope, last_seq=_int_field(data, "last_seq", False), epoch=epoch)
    shown = kind if len(kind) <= 40 else kind[:40] + "..."
    raise ProtocolError(
        "unknown_type", f"unknown message type {shown!r}; use ping, ack or subscribe"
    )
