"""What the softphone tells its asyncio side: small frozen dataclasses, one per fact.

They are created in pyVoIP's threads and delivered on the event loop by
:class:`softphone.phone.Softphone` (its only ``call_soon_threadsafe``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from connector.events.model import Direction, Party

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallRinging",
    "DtmfReceived",
    "EndReason",
    "PhoneEvent",
    "RecordingSaved",
    "RegistrationChanged",
    "RegistrationState",
]


class RegistrationState(enum.StrEnum):
    """Where the phone stands with its registrar."""

    STOPPED = "stopped"
    REGISTERING = "registering"
    REGISTERED = "registered"
    RE_REGISTERING = "re-registering"
    FAILED = "failed"


class EndReason(enum.StrEnum):
    """Why a call ended."""

    LOCAL_HANGUP = "local_hangup"  # we hung up an answered call
    REMOTE_HANGUP = "remote_hangup"  # BYE from the other side
    REJECTED = "rejected"  # we declined a ringing call (486)
    CANCELLED = "cancelled"  # the caller gave up while it rang (CANCEL)
    BUSY = "busy"  # the callee answered 486/600
    DECLINED = "declined"  # the callee answered 603
    FAILED = "failed"  # any other final error response, or no answer at all
    STOPPED = "stopped"  # the phone was stopped during the call


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """The registration state changed (``reason`` says why it failed, when it did)."""

    old: RegistrationState
    new: RegistrationState
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallRinging:
    """A call started: an incoming call rings here, or an outgoing call was sent."""

    call_id: str
    direction: Direction
    local: Party
    remote: Party
    at: datetime


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call was answered (by us when incoming, by the callee when outgoing)."""

    call_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over."""

    call_id: str
    reason: EndReason
    at: datetime
    status: int = 0  # the SIP status that ended it, when one did


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The other side pressed a key (RFC 4733 telephone-event)."""

    call_id: str
    digit: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordingSaved:
    """The audio received during a call was written to a WAV file."""

    call_id: str
    path: Path
    samples: int
    at: datetime


PhoneEvent = (
    RegistrationChanged | CallRinging | CallAnswered | CallEnded | DtmfReceived | RecordingSaved
)
