"""The event vocabulary: what the rest of the connector consumes.

Two families live here:

* **Observations** are what a PBX adapter saw on the wire, normalised to legs and conversations
  (``LegRinging``, ``LegAnswered``...). Adapters produce them; :class:`connector.calls.CallTracker`
  consumes them.
* **Call events** are the truth about calls (``call.ringing``, ``call.ended``...). The tracker
  produces them; the hub, the call log, recordings and outgoing webhooks consume them.

Every class is a small frozen dataclass. Times are timezone-aware UTC ``datetime`` values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar


class Direction(enum.StrEnum):
    """Which way a call goes, seen from the company."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"
    UNKNOWN = "unknown"


class Outcome(enum.StrEnum):
    """How a conversation ended."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    ABANDONED = "abandoned"
    FAILED = "failed"


class LegStatus(enum.StrEnum):
    """How one dialed leg ended (Asterisk DIALSTATUS, provider dispositions)."""

    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CANCEL = "cancel"
    FAILED = "failed"


class TransferKind(enum.StrEnum):
    """Blind (unattended) or attended (consultative) transfer."""

    BLIND = "blind"
    ATTENDED = "attended"


@dataclass(frozen=True, slots=True)
class Party:
    """One end of a call: a number as the PBX gave it and a display name (either may be empty)."""

    number: str = ""
    name: str = ""


# --------------------------------------------------------------------------------------------
# Observations: adapters -> CallTracker
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObservationBase:
    """Fields every observation has.

    ``pbx`` is the configured PBX/account name, ``conversation_id`` the provider's call key
    (Asterisk Linkedid, Zadarma pbx_call_id, Mango entry_id...), ``at`` the time at the PBX and
    ``source_key`` a stable id of the provider event that produced it (for deduplication).
    """

    pbx: str
    conversation_id: str
    at: datetime
    source_key: str = ""


@dataclass(frozen=True, slots=True)
class ConversationStarted(ObservationBase):
    """A call entered the PBX (trunk channel created, NOTIFY_START, Mango Appeared...)."""

    direction: Direction = Direction.UNKNOWN
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    did: str = ""


@dataclass(frozen=True, slots=True)
class LegRinging(ObservationBase):
    """A leg alerts an agent's extension (or, outbound, the remote party)."""

    leg_id: str = ""
    extension: str = ""
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    direction: Direction = Direction.UNKNOWN
    queue: str = ""
    did: str = ""
    external: bool = False  # the leg rings a party outside the PBX (a trunk), not an agent
    originated: bool = False  # the leg was placed by an Originate (click-to-call agent leg)
    from_extension: str = ""  # the agent extension of the dialing channel, if it is an agent
    source_leg_id: str = ""  # the dialing channel's leg id (Local ;2 halves collapse through it)


@dataclass(frozen=True, slots=True)
class LegAnswered(ObservationBase):
    """A ringing leg was answered."""

    leg_id: str = ""
    extension: str = ""


@dataclass(frozen=True, slots=True)
class LegEnded(ObservationBase):
    """A dialed leg stopped ringing or talking, with its dial status."""

    leg_id: str = ""
    extension: str = ""
    status: LegStatus = LegStatus.NO_ANSWER


@dataclass(frozen=True, slots=True)
class LegTransferred(ObservationBase):
    """The call moved from one extension to another."""

    from_extension: str = ""
    to_extension: str = ""
    kind: TransferKind = TransferKind.BLIND
    from_leg_id: str = ""
    to_leg_id: str = ""


@dataclass(frozen=True, slots=True)
class RecordingFound(ObservationBase):
    """The PBX records (or recorded) this conversation: a file name or a provider reference."""

    reference: str = ""
    leg_id: str = ""


@dataclass(frozen=True, slots=True)
class ConversationsMerged(ObservationBase):
    """Two conversation ids are the same call (Asterisk rewrote the Linkedid)."""

    other_conversation_id: str = ""


@dataclass(frozen=True, slots=True)
class ConversationEnded(ObservationBase):
    """The PBX says the whole call is over; ``outcome`` is the provider's verdict, if any."""

    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class ChannelSeen(ObservationBase):
    """A channel (leg) exists in the conversation: just created, or still up after a resync.

    ``adopted`` marks channels reported by a resync snapshot (Asterisk CoreShowChannel) rather
    than created live; ``answered`` is then the channel's state (Up).
    """

    leg_id: str = ""
    channel: str = ""
    extension: str = ""
    caller: Party = field(default_factory=Party)
    direction: Direction = Direction.UNKNOWN
    adopted: bool = False
    answered: bool = False


@dataclass(frozen=True, slots=True)
class LegHungUp(ObservationBase):
    """A channel is gone (Asterisk Hangup); the cause is informational only."""

    leg_id: str = ""
    channel: str = ""
    cause: int = 0


@dataclass(frozen=True, slots=True)
class LocalPaired(ObservationBase):
    """Two halves of one Asterisk Local channel (``;1`` is ``leg_id``, ``;2`` the other)."""

    leg_id: str = ""
    other_leg_id: str = ""


@dataclass(frozen=True, slots=True)
class LegBridged(ObservationBase):
    """A leg entered a bridge (it is talking); answers a ringing leg whose DialEnd was lost."""

    leg_id: str = ""
    bridge_id: str = ""


@dataclass(frozen=True, slots=True)
class QueueCallerChanged(ObservationBase):
    """The caller joined, left or abandoned a queue (``status``: joined / left / abandoned)."""

    leg_id: str = ""
    queue: str = ""
    status: str = "joined"


@dataclass(frozen=True, slots=True)
class OriginateResult(ObservationBase):
    """The result of an Originate whose first leg is ``leg_id`` (Asterisk ChannelId).

    ``reason`` is Asterisk's OriginateResponse Reason (3 rang without answer, 4 answered,
    5 busy, 0/1/8 failed); success means only that the first leg (the agent) answered.
    """

    leg_id: str = ""
    action_id: str = ""
    success: bool = False
    reason: int = 0
    extension: str = ""
    channel: str = ""


Observation = (
    ConversationStarted
    | LegRinging
    | LegAnswered
    | LegEnded
    | LegTransferred
    | RecordingFound
    | ConversationsMerged
    | ConversationEnded
    | ChannelSeen
    | LegHungUp
    | LocalPaired
    | LegBridged
    | QueueCallerChanged
    | OriginateResult
)


# --------------------------------------------------------------------------------------------
# Call events: CallTracker -> hub, call log, recordings, outgoing webhooks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventBase:
    """Fields every call event has.

    ``occurred_at`` is the time at the PBX, ``observed_at`` when we saw it (pop latency is
    measured from it), ``key`` a stable idempotency key: the same fact seen twice has the same key.
    """

    key: str
    pbx: str
    conversation_id: str
    occurred_at: datetime
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class CallRinging(EventBase):
    """call.ringing: a leg rings an agent."""

    TYPE: ClassVar[str] = "call.ringing"
    leg_id: str = ""
    direction: Direction = Direction.UNKNOWN
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    extension: str = ""
    user_id: int | None = None
    queue: str = ""
    did: str = ""


@dataclass(frozen=True, slots=True)
class CallAnswered(EventBase):
    """call.answered: an agent answered."""

    TYPE: ClassVar[str] = "call.answered"
    leg_id: str = ""
    direction: Direction = Direction.UNKNOWN
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    extension: str = ""
    user_id: int | None = None
    remote: bool = False  # the remote party (customer) answered an outbound call, not an agent


@dataclass(frozen=True, slots=True)
class CallClaimed(EventBase):
    """call.claimed: a colleague answered a call that also rang this extension."""

    TYPE: ClassVar[str] = "call.claimed"
    leg_id: str = ""
    extension: str = ""
    user_id: int | None = None
    claimed_by_extension: str = ""
    claimed_by_user_id: int | None = None


@dataclass(frozen=True, slots=True)
class CallTransferred(EventBase):
    """call.transferred: the call moved from one agent to another."""

    TYPE: ClassVar[str] = "call.transferred"
    kind: TransferKind = TransferKind.BLIND
    from_extension: str = ""
    from_user_id: int | None = None
    to_extension: str = ""
    to_user_id: int | None = None
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    direction: Direction = Direction.UNKNOWN


@dataclass(frozen=True, slots=True)
class CallEnded(EventBase):
    """call.ended: the conversation is over, with its outcome and who took part."""

    TYPE: ClassVar[str] = "call.ended"
    direction: Direction = Direction.UNKNOWN
    outcome: Outcome = Outcome.NO_ANSWER
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    did: str = ""
    queue: str = ""
    rang: tuple[str, ...] = ()
    answered_by: str = ""
    talked_last: str = ""
    transfers: tuple[tuple[str, str], ...] = ()
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ring_seconds: float = 0.0
    talk_seconds: float = 0.0
    recording: str = ""
    # Conversation ids merged into this one (Asterisk rewrote the Linkedid): close those too.
    merged_ids: tuple[str, ...] = ()
    # Click-to-call that never reached the customer: agent_no_answer / agent_busy / agent_failed.
    failure: str = ""


@dataclass(frozen=True, slots=True)
class RecordingReady(EventBase):
    """recording.ready: a recording of the conversation is stored and can be played."""

    TYPE: ClassVar[str] = "recording.ready"
    recording_id: int = 0
    duration_seconds: float = 0.0
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class TaskCreated(EventBase):
    """task.created: a task (e.g. a callback for a missed call) was created or updated."""

    TYPE: ClassVar[str] = "task.created"
    task_id: int = 0
    assignee_id: int | None = None
    title: str = ""
    number: str = ""


CallEvent = CallRinging | CallAnswered | CallClaimed | CallTransferred | CallEnded
Event = CallEvent | RecordingReady | TaskCreated

EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        CallRinging,
        CallAnswered,
        CallClaimed,
        CallTransferred,
        CallEnded,
        RecordingReady,
        TaskCreated,
    )
}
