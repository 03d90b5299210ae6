"""The call model: :class:`CallTracker` turns PBX observations into call events. Pure.

Contract (feed, then drain)::

    tracker = CallTracker(user_of=lambda pbx, ext: users.get((pbx, ext)))
    for event in tracker.handle(observation, now):   # no I/O, no clock, no asyncio
        bus.publish(event)
    tracker.resync(pbx, live_leg_ids, now)           # after every AMI (re)login
    tracker.active_calls(pbx)                        # snapshot for reconnecting clients

The model:

* A **conversation** (Asterisk Linkedid) is made of **channels** (every Uniqueid seen) and
  **dialed legs** (channels that rang an agent or a remote party). Conversation ids are merged
  union-find style when Asterisk rewrites a Linkedid (a known leg shows a new Linkedid, or a
  :class:`~connector.events.model.ConversationsMerged` observation); the oldest id survives and
  ``call.ended`` lists the others in ``merged_ids``.
* Asterisk ``Local/...;1``/``;2`` halves are one hop: the ``;2`` half is an alias of its ``;1``
  half, and a phone dialed by a ``;2`` half that still rings is the same agent leg.
* Each agent leg that rings gives ``call.ringing``; the first agent answer gives
  ``call.answered`` and a ``call.claimed`` to every other agent leg that rang (queue ring-all).
  Transfers give ``call.transferred``. Duplicates (a doubled DialEnd, DialBegin after
  AgentCalled) are absorbed; an answered leg is never downgraded.
* The outcome comes from dial, bridge and queue facts, never from hang-up causes. A
  conversation ends when its last channel hangs up (CEL ``LINKEDID_END`` only marks the end as
  expected: Asterisk sends it before the last events), or, for providers without channels, on
  :class:`~connector.events.model.ConversationEnded`.
* State of an ended conversation is released at once; its ids are kept a few minutes as
  tombstones so late events (a Hangup after LINKEDID_END) do not resurrect it.

Every event has a stable idempotency key ``"{pbx}:{conversation}:{type}:{leg or n}"``.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallEvent,
    CallRinging,
    CallTransferred,
    ChannelSeen,
    ConversationEnded,
    ConversationsMerged,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegBridged,
    LegEnded,
    LegHungUp,
    LegRinging,
    LegStatus,
    LegTransferred,
    LocalPaired,
    Observation,
    OriginateResult,
    Outcome,
    Party,
    QueueCallerChanged,
    RecordingFound,
    TransferKind,
)

logger = logging.getLogger(__name__)

__all__ = ["ActiveCall", "ActiveLeg", "CallState", "CallStateError", "CallTracker"]

UserOf = Callable[[str, str], int | None]

_TOMBSTONE_SECONDS = 600.0
_MAX_TOMBSTONES = 100_000

_ORIGINATE_FAILURES: dict[int, tuple[str, LegStatus]] = {
    3: ("agent_no_answer", LegStatus.NO_ANSWER),
    5: ("agent_busy", LegStatus.BUSY),
    1: ("agent_rejected", LegStatus.CANCEL),
}


class CallState(enum.StrEnum):
    """Where a conversation is: started (nobody rings yet), ringing, talking, ended."""

    STARTED = "started"
    RINGING = "ringing"
    TALKING = "talking"
    ENDED = "ended"


_ORDER = {CallState.STARTED: 0, CallState.RINGING: 1, CallState.TALKING: 2, CallState.ENDED: 3}


class CallStateError(RuntimeError):
    """An illegal transition of a conversation's state (the message names the current state)."""


@dataclass(frozen=True, slots=True)
class ActiveLeg:
    """One dialed leg of a call in progress: ``state`` is ringing, answered or ended."""

    leg_id: str
    extension: str
    user_id: int | None
    external: bool
    state: str
    rang_at: datetime


@dataclass(frozen=True, slots=True)
class ActiveCall:
    """A snapshot of one call in progress (reconnect snapshots, ``/api/v1/pbx``)."""

    pbx: str
    conversation_id: str
    state: CallState
    direction: Direction
    caller: Party
    callee: Party
    did: str
    queue: str
    started_at: datetime
    answered_at: datetime | None
    answered_by: str
    talked_last: str
    rang: tuple[str, ...]
    legs: tuple[ActiveLeg, ...]


@dataclass(eq=False)
class _Leg:
    leg_id: str
    extension: str
    external: bool
    originated: bool
    rang_at: datetime
    answered_at: datetime | None = None
    status: LegStatus | None = None
    claimed: bool = False
    hung_up: bool = False
    ended_at: datetime | None = None


@dataclass(eq=False)
class _Conversation:
    pbx: str
    id: str
    created_at: datetime
    state: CallState = CallState.STARTED
    direction: Direction = Direction.UNKNOWN
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    did: str = ""
    queue: str = ""
    aliases: list[str] = field(default_factory=list)
    channels: set[str] = field(default_factory=set)
    known_ids: set[str] = field(default_factory=set)
    channels_seen: bool = False
    legs: dict[str, _Leg] = field(default_factory=dict)
    leg_alias: dict[str, str] = field(default_factory=dict)
    rang: list[str] = field(default_factory=list)
    answered_by: str = ""
    agent_answered_at: datetime | None = None
    remote_answered_at: datetime | None = None
    talked_last: str = ""
    transfers: list[tuple[str, str]] = field(default_factory=list)
    transfer_kinds: list[TransferKind] = field(default_factory=list)
    recording: str = ""
    placed_by: str = ""
    queue_abandoned: bool = False
    failure: str = ""
    provider_outcome: Outcome | None = None
    end_expected: bool = False
    ended_at: datetime | None = None
    last_seen: datetime | None = None

    def resolve(self, leg_id: str) -> str:
        """The dialed leg a channel stands for (Local halves and collapsed hops)."""
        seen = 0
        while leg_id in self.leg_alias and seen < 8:
            leg_id = self.leg_alias[leg_id]
            seen += 1
        return leg_id

    @property
    def answered(self) -> bool:
        return self.agent_answered_at is not None or self.remote_answered_at is not None


_CREATORS = (ChannelSeen, ConversationStarted, LegRinging, LegBridged, RecordingFound)


class CallTracker:
    """Conversations of every connected PBX, fed observations, producing call events."""

    def __init__(
        self,
        user_of: UserOf | None = None,
        *,
        tombstone_seconds: float = _TOMBSTONE_SECONDS,
    ) -> None:
        self._user_of = user_of
        self._convs: dict[tuple[str, str], _Conversation] = {}
        self._parent: dict[tuple[str, str], str] = {}
        self._leg_owner: dict[tuple[str, str], str] = {}
        self._ended: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._tombstone_for = timedelta(seconds=tombstone_seconds)
        self.ignored = 0

    # -- public ---------------------------------------------------------------------------

    def handle(self, obs: Observation, now: datetime) -> list[CallEvent]:
        """Apply one observation; return the call events it causes (often none)."""
        self._expire(now)
        pbx = obs.pbx
        if (pbx, obs.conversation_id) in self._ended:
            self.ignored += 1
            return []
        conv_id = self._find(pbx, obs.conversation_id)
        for leg in _legs_of(obs):
            owner = self._leg_owner.get((pbx, leg))
            if owner is not None:
                owner = self._find(pbx, owner)
                if owner != conv_id and (pbx, owner) in self._convs:
                    if (pbx, conv_id) in self._convs:
                        conv_id = self._merge(pbx, owner, conv_id)
                    else:  # a known leg shows a new Linkedid: that id now means this call
                        self._parent[(pbx, conv_id)] = owner
                        self._convs[(pbx, owner)].aliases.append(conv_id)
                        conv_id = owner
        if isinstance(obs, ConversationsMerged):
            other = self._find(pbx, obs.other_conversation_id)
            if (pbx, other) in self._convs and (pbx, conv_id) in self._convs and other != conv_id:
                self._merge(pbx, other, conv_id)  # the older survives; a tie keeps ``other``
            return []
        conv = self._convs.get((pbx, conv_id))
        if conv is None:
            if isinstance(obs, OriginateResult) and not obs.success:
                conv = self._create(pbx, conv_id, obs.at)
                conv.direction = Direction.OUTBOUND
                conv.placed_by = obs.extension
                conv.caller = Party(number=obs.extension)
            elif isinstance(obs, _CREATORS):
                conv = self._create(pbx, conv_id, obs.at)
            else:
                self.ignored += 1
                return []
        conv.last_seen = now
        events = self._apply(conv, obs, now)
        if conv.state is not CallState.ENDED and self._over(conv):
            events.extend(self._end(conv, obs.at, now))
        return events

    def resync(
        self,
        pbx: str,
        live_leg_ids: Collection[str],
        now: datetime,
        seen_since: datetime | None = None,
    ) -> list[CallEvent]:
        """After a (re)login: end every conversation of ``pbx`` with no channel still up.

        ``live_leg_ids`` are the Uniqueids CoreShowChannels reported (feed their
        CoreShowChannel events through the translator first so calls still up are adopted).
        Channels that vanished during the outage are forgotten; a conversation left with none
        ends now, its outcome decided from what was known.

        ``seen_since`` (the ``now`` at which CoreShowChannels was sent) protects calls that
        began while the list was being produced: a conversation with no listed channel but an
        observation at or after it is left alone.
        """
        live = set(live_leg_ids)
        events: list[CallEvent] = []
        for (conv_pbx, _), conv in list(self._convs.items()):
            if conv_pbx != pbx:
                continue
            if (
                not conv.channels & live
                and seen_since is not None
                and conv.last_seen is not None
                and conv.last_seen >= seen_since
            ):
                continue  # began while the list was produced: not in it, but not gone either
            vanished = conv.channels - live
            for leg_id in vanished:
                leg = conv.legs.get(conv.resolve(leg_id))
                if leg is not None:
                    leg.hung_up = True
            conv.channels -= vanished
            for leg in conv.legs.values():
                if leg.leg_id not in live and not any(
                    conv.resolve(c) == leg.leg_id for c in conv.channels
                ):
                    leg.hung_up = True
            if not conv.channels:
                logger.info("%s:%s vanished during the AMI outage: ending it", pbx, conv.id)
                events.extend(self._end(conv, now, now))
        return events

    def sweep(
        self,
        now: datetime,
        idle_seconds: float = 4 * 3600.0,
        expected_end_seconds: float = 120.0,
    ) -> list[CallEvent]:
        """End conversations that went silent: a lost Hangup must not keep a call open forever.

        A conversation nothing was heard of for ``idle_seconds`` ends, and so does one whose end
        the PBX announced (CEL LINKEDID_END) ``expected_end_seconds`` ago while a channel's
        Hangup never came. Call it now and then (every minute or so).
        """
        events: list[CallEvent] = []
        for conv in list(self._convs.values()):
            seen = conv.last_seen or conv.created_at
            quiet = (now - seen).total_seconds()
            if quiet >= idle_seconds or (conv.end_expected and quiet >= expected_end_seconds):
                logger.warning(
                    "%s:%s silent for %.0f s with %d channel(s) up: ending it",
                    conv.pbx,
                    conv.id,
                    quiet,
                    len(conv.channels),
                )
                events.extend(self._end(conv, now, now))
        return events

    def active_calls(self, pbx: str | None = None) -> list[ActiveCall]:
        """Snapshot of every call in progress (of one PBX, or of all), oldest first."""
        out = []
        for conv in self._convs.values():
            if pbx is not None and conv.pbx != pbx:
                continue
            legs = tuple(
                ActiveLeg(
                    leg_id=leg.leg_id,
                    extension=leg.extension,
                    user_id=self._user(conv.pbx, leg.extension),
                    external=leg.external,
                    state=(
                        "answered"
                        if leg.answered_at is not None
                        else "ended"
                        if leg.status is not None or leg.hung_up
                        else "ringing"
                    ),
                    rang_at=leg.rang_at,
                )
                for leg in conv.legs.values()
            )
            out.append(
                ActiveCall(
                    pbx=conv.pbx,
                    conversation_id=conv.id,
                    state=conv.state,
                    direction=conv.direction,
                    caller=conv.caller,
                    callee=conv.callee,
                    did=conv.did,
                    queue=conv.queue,
                    started_at=conv.created_at,
                    answered_at=self._answered_at(conv),
                    answered_by=conv.answered_by,
                    talked_last=conv.talked_last,
                    rang=tuple(conv.rang),
                    legs=legs,
                )
            )
        out.sort(key=lambda c: c.started_at)
        return out

    def size(self) -> int:
        """Number of conversations in progress."""
        return len(self._convs)

    def stats(self) -> dict[str, int]:
        """Sizes of every internal table (a leak shows up here)."""
        return {
            "conversations": len(self._convs),
            "legs": sum(len(c.legs) for c in self._convs.values()),
            "channels": sum(len(c.channels) for c in self._convs.values()),
            "leg_index": len(self._leg_owner),
            "aliases": len(self._parent),
            "tombstones": len(self._ended),
            "ignored": self.ignored,
        }

    # -- conversation table ---------------------------------------------------------------

    def _find(self, pbx: str, conv_id: str) -> str:
        seen = 0
        while (pbx, conv_id) in self._parent and seen < 64:
            conv_id = self._parent[(pbx, conv_id)]
            seen += 1
        return conv_id

    def _create(self, pbx: str, conv_id: str, at: datetime) -> _Conversation:
        conv = _Conversation(pbx=pbx, id=conv_id, created_at=at)
        self._convs[(pbx, conv_id)] = conv
        logger.debug("%s:%s new conversation", pbx, conv_id)
        return conv

    def _own(self, conv: _Conversation, leg_id: str) -> None:
        if leg_id:
            self._leg_owner[(conv.pbx, leg_id)] = conv.id
            conv.known_ids.add(leg_id)

    def _merge(self, pbx: str, a: str, b: str) -> str:
        """Merge conversations ``a`` and ``b``; the older survives. Returns the survivor's id."""
        first, second = self._convs[(pbx, a)], self._convs[(pbx, b)]
        if second.created_at < first.created_at:
            first, second = second, first
        logger.info("%s: conversation %s merged into %s", pbx, second.id, first.id)
        del self._convs[(pbx, second.id)]
        self._parent[(pbx, second.id)] = first.id
        first.aliases.extend([second.id, *second.aliases])
        first.channels |= second.channels
        first.channels_seen = first.channels_seen or second.channels_seen
        first.known_ids |= second.known_ids
        for leg_id in second.known_ids:
            self._leg_owner[(pbx, leg_id)] = first.id
        for leg_id, leg in second.legs.items():
            first.legs.setdefault(leg_id, leg)
        for k, v in second.leg_alias.items():
            first.leg_alias.setdefault(k, v)
        first.rang.extend(ext for ext in second.rang if ext not in first.rang)
        for name in ("agent_answered_at", "remote_answered_at"):
            mine, theirs = getattr(first, name), getattr(second, name)
            if mine is None or (theirs is not None and theirs < mine):
                setattr(first, name, theirs)
        if second.agent_answered_at == first.agent_answered_at and second.answered_by:
            first.answered_by = second.answered_by
        first.answered_by = first.answered_by or second.answered_by
        first.talked_last = first.talked_last or second.talked_last
        first.transfers.extend(second.transfers)
        first.transfer_kinds.extend(second.transfer_kinds)
        first.recording = first.recording or second.recording
        first.placed_by = first.placed_by or second.placed_by
        first.queue = first.queue or second.queue
        first.did = first.did or second.did
        if first.direction is Direction.UNKNOWN:
            first.direction = second.direction
        if not first.caller.number and not first.caller.name:
            first.caller = second.caller
        if not first.callee.number:
            first.callee = second.callee
        first.queue_abandoned = first.queue_abandoned or second.queue_abandoned
        first.failure = first.failure or second.failure
        first.end_expected = first.end_expected and second.end_expected
        if _ORDER[second.state] > _ORDER[first.state] and second.state is not CallState.ENDED:
            self._set_state(first, second.state)
        return first.id

    def _expire(self, now: datetime) -> None:
        while self._ended:
            key, expires = next(iter(self._ended.items()))
            if expires > now and len(self._ended) <= _MAX_TOMBSTONES:
                break
            del self._ended[key]

    def _set_state(self, conv: _Conversation, new: CallState) -> None:
        """The only place a conversation's state changes; logs ``old -> new``."""
        old = conv.state
        if old is new:
            return
        if old is CallState.ENDED or _ORDER[new] < _ORDER[old]:
            raise CallStateError(f"{conv.pbx}:{conv.id} is {old.value}; cannot become {new.value}")
        conv.state = new
        logger.info("%s:%s %s -> %s", conv.pbx, conv.id, old.value, new.value)

    def _advance(self, conv: _Conversation, new: CallState) -> None:
        if _ORDER[new] > _ORDER[conv.state]:
            self._set_state(conv, new)

    def _user(self, pbx: str, extension: str) -> int | None:
        if not extension or self._user_of is None:
            return None
        return self._user_of(pbx, extension)

    @staticmethod
    def _answered(
        conv: _Conversation, leg: _Leg, at: datetime, now: datetime, **extra: object
    ) -> CallAnswered:
        """call.answered for ``leg`` (an agent's leg, or ``remote=True`` for the customer)."""
        return CallAnswered(
            key=CallTracker._key(conv, CallAnswered.TYPE, leg.leg_id),
            pbx=conv.pbx,
            conversation_id=conv.id,
            occurred_at=at,
            observed_at=now,
            leg_id=leg.leg_id,
            direction=conv.direction,
            caller=conv.caller,
            callee=conv.callee,
            **extra,  # type: ignore[arg-type]
        )

    @staticmethod
    def _key(conv: _Conversation, type_: str, suffix: str) -> str:
        return f"{conv.pbx}:{conv.id}:{type_}:{suffix}"

    # -- observations ---------------------------------------------------------------------

    def _apply(self, conv: _Conversation, obs: Observation, now: datetime) -> list[CallEvent]:
        if isinstance(obs, ChannelSeen):
            self._channel_seen(conv, obs)
        elif isinstance(obs, LocalPaired):
            self._own(conv, obs.leg_id)
            self._own(conv, obs.other_leg_id)
            if obs.other_leg_id != obs.leg_id:
                conv.leg_alias[obs.other_leg_id] = obs.leg_id
        elif isinstance(obs, LegRinging):
            return self._ringing(conv, obs, now)
        elif isinstance(obs, LegAnswered):
            leg = conv.legs.get(conv.resolve(obs.leg_id))
            if leg is not None:
                return self._answer(conv, leg, obs.at, now)
        elif isinstance(obs, LegBridged):
            leg = conv.legs.get(conv.resolve(obs.leg_id))
            if leg is not None and leg.answered_at is None:
                return self._answer(conv, leg, obs.at, now)
        elif isinstance(obs, LegEnded):
            leg = conv.legs.get(conv.resolve(obs.leg_id))
            if leg is not None and leg.answered_at is None and leg.status is None:
                leg.status = obs.status
                leg.ended_at = leg.ended_at or obs.at
        elif isinstance(obs, LegHungUp):
            conv.channels.discard(obs.leg_id)
            leg = conv.legs.get(conv.resolve(obs.leg_id))
            if leg is not None and conv.resolve(obs.leg_id) == obs.leg_id:
                leg.hung_up = True
                leg.ended_at = leg.ended_at or obs.at
        elif isinstance(obs, LegTransferred):
            return self._transferred(conv, obs, now)
        elif isinstance(obs, RecordingFound):
            conv.recording = conv.recording or obs.reference
        elif isinstance(obs, QueueCallerChanged):
            conv.queue = conv.queue or obs.queue
            if obs.status == "abandoned":
                conv.queue_abandoned = True
        elif isinstance(obs, OriginateResult):
            return self._originate_result(conv, obs, now)
        elif isinstance(obs, ConversationStarted):
            if conv.direction is Direction.UNKNOWN:
                conv.direction = obs.direction
            conv.caller = conv.caller if conv.caller.number else obs.caller
            conv.callee = conv.callee if conv.callee.number else obs.callee
            conv.did = conv.did or obs.did
        elif isinstance(obs, ConversationEnded):
            conv.end_expected = True
            conv.provider_outcome = obs.outcome or conv.provider_outcome
            if not conv.channels_seen:
                return self._end(conv, obs.at, now)
        return []

    def _channel_seen(self, conv: _Conversation, obs: ChannelSeen) -> None:
        self._own(conv, obs.leg_id)
        conv.channels.add(obs.leg_id)
        conv.channels_seen = True
        # The channel that opened the conversation (Uniqueid == Linkedid) tells its direction.
        first = obs.leg_id == obs.conversation_id
        if first and obs.direction is Direction.INBOUND:
            if conv.direction in (Direction.UNKNOWN, Direction.INTERNAL):
                conv.direction = Direction.INBOUND
            if obs.caller.number or obs.caller.name:
                conv.caller = obs.caller
        if obs.adopted and obs.extension and obs.leg_id not in conv.legs:
            if conv.resolve(obs.leg_id) != obs.leg_id:
                return
            leg = _Leg(obs.leg_id, obs.extension, False, False, obs.at)
            conv.legs[obs.leg_id] = leg
            if obs.extension not in conv.rang:
                conv.rang.append(obs.extension)
            if obs.answered:
                leg.answered_at = obs.at
                if conv.agent_answered_at is None:
                    conv.agent_answered_at = obs.at
                conv.answered_by = conv.answered_by or obs.extension
                conv.talked_last = obs.extension
                self._advance(conv, CallState.TALKING)
            else:
                self._advance(conv, CallState.RINGING)

    def _ringing(self, conv: _Conversation, obs: LegRinging, now: datetime) -> list[CallEvent]:
        self._own(conv, obs.leg_id)
        leg_id = conv.resolve(obs.leg_id)
        if leg_id in conv.legs:  # DialState after DialBegin, DialBegin after AgentCalled
            conv.queue = conv.queue or obs.queue
            return []
        source = conv.resolve(obs.source_leg_id) if obs.source_leg_id else ""
        if source and source != obs.source_leg_id:
            behind = conv.legs.get(source)
            if behind is not None and behind.answered_at is None and not obs.external:
                # A Local ;2 half dialing the phone behind its ;1: the same hop, not a new ring.
                conv.leg_alias[obs.leg_id] = source
                return []
        if obs.external:
            conv.legs[obs.leg_id] = _Leg(obs.leg_id, "", True, obs.originated, obs.at)
            if conv.direction in (Direction.UNKNOWN, Direction.INTERNAL):
                conv.direction = Direction.OUTBOUND
            placed_by = obs.from_extension
            if not placed_by and source in conv.legs:
                placed_by = conv.legs[source].extension
            conv.placed_by = conv.placed_by or placed_by
            if conv.direction is Direction.OUTBOUND:
                if obs.callee.number:
                    conv.callee = obs.callee
                if not conv.caller.number and conv.placed_by:
                    conv.caller = Party(number=conv.placed_by)
            self._advance(conv, CallState.RINGING)
            return []
        if not obs.extension:
            return []
        leg = _Leg(obs.leg_id, obs.extension, False, obs.originated, obs.at)
        conv.legs[obs.leg_id] = leg
        if obs.extension not in conv.rang:
            conv.rang.append(obs.extension)
        if conv.direction is Direction.UNKNOWN or (
            conv.direction is Direction.INTERNAL and obs.direction is Direction.OUTBOUND
        ):
            conv.direction = obs.direction
        if obs.originated:
            conv.placed_by = conv.placed_by or obs.extension
        conv.queue = conv.queue or obs.queue
        conv.did = conv.did or obs.did
        if not conv.caller.number and not conv.caller.name:
            conv.caller = obs.caller
        if not conv.callee.number:
            conv.callee = Party(number=obs.did) if obs.did else obs.callee
        self._advance(conv, CallState.RINGING)
        return [
            CallRinging(
                key=self._key(conv, CallRinging.TYPE, obs.leg_id),
                pbx=conv.pbx,
                conversation_id=conv.id,
                occurred_at=obs.at,
                observed_at=now,
                leg_id=obs.leg_id,
                direction=conv.direction,
                caller=conv.caller,
                callee=conv.callee,
                extension=obs.extension,
                user_id=self._user(conv.pbx, obs.extension),
                queue=obs.queue or conv.queue,
                did=conv.did,
            )
        ]

    def _answer(
        self, conv: _Conversation, leg: _Leg, at: datetime, now: datetime
    ) -> list[CallEvent]:
        if leg.answered_at is not None:
            return []
        leg.answered_at = at
        leg.status = LegStatus.ANSWER
        if leg.external:
            if conv.remote_answered_at is None:
                conv.remote_answered_at = at
            conv.answered_by = conv.answered_by or conv.placed_by
            self._advance(conv, CallState.TALKING)
            return [self._answered(conv, leg, at, now, remote=True)]
        if conv.agent_answered_at is None:
            conv.agent_answered_at = at
        conv.answered_by = conv.answered_by or leg.extension
        conv.talked_last = leg.extension
        # A click-to-call agent who picks up is not talking yet: the customer still rings.
        if not (leg.originated and conv.direction is Direction.OUTBOUND):
            self._advance(conv, CallState.TALKING)
        user_id = self._user(conv.pbx, leg.extension)
        events: list[CallEvent] = [
            self._answered(conv, leg, at, now, extension=leg.extension, user_id=user_id)
        ]
        for other in conv.legs.values():
            if (
                other.external
                or other.claimed
                or other.answered_at is not None
                or other.extension == leg.extension
            ):
                continue
            other.claimed = True
            events.append(
                CallClaimed(
                    key=self._key(conv, CallClaimed.TYPE, other.leg_id),
                    pbx=conv.pbx,
                    conversation_id=conv.id,
                    occurred_at=at,
                    observed_at=now,
                    leg_id=other.leg_id,
                    extension=other.extension,
                    user_id=self._user(conv.pbx, other.extension),
                    claimed_by_extension=leg.extension,
                    claimed_by_user_id=user_id,
                )
            )
        return events

    def _transferred(
        self, conv: _Conversation, obs: LegTransferred, now: datetime
    ) -> list[CallEvent]:
        pair = (obs.from_extension, obs.to_extension)
        if conv.transfers and conv.transfers[-1] == pair and conv.transfer_kinds[-1] is obs.kind:
            return []  # the same transfer reported twice
        conv.transfers.append(pair)
        conv.transfer_kinds.append(obs.kind)
        if obs.kind is TransferKind.ATTENDED and obs.to_extension:
            conv.talked_last = obs.to_extension
        return [
            CallTransferred(
                key=self._key(conv, CallTransferred.TYPE, str(len(conv.transfers))),
                pbx=conv.pbx,
                conversation_id=conv.id,
                occurred_at=obs.at,
                observed_at=now,
                kind=obs.kind,
                from_extension=obs.from_extension,
                from_user_id=self._user(conv.pbx, obs.from_extension),
                to_extension=obs.to_extension,
                to_user_id=self._user(conv.pbx, obs.to_extension),
                caller=conv.caller,
                callee=conv.callee,
                direction=conv.direction,
            )
        ]

    def _originate_result(
        self, conv: _Conversation, obs: OriginateResult, now: datetime
    ) -> list[CallEvent]:
        self._own(conv, obs.leg_id)
        leg = conv.legs.get(conv.resolve(obs.leg_id))
        if obs.success:
            if leg is not None and not leg.external:
                return self._answer(conv, leg, obs.at, now)
            return []
        if leg is not None and leg.answered_at is not None:
            return []
        failure, status = _ORIGINATE_FAILURES.get(obs.reason, ("agent_failed", LegStatus.FAILED))
        conv.failure = failure
        conv.placed_by = conv.placed_by or obs.extension
        if leg is not None and leg.status is None:
            leg.status = status
        if not conv.channels:
            return self._end(conv, obs.at, now)
        return []

    # -- ending ---------------------------------------------------------------------------

    @staticmethod
    def _over(conv: _Conversation) -> bool:
        return conv.channels_seen and not conv.channels

    @staticmethod
    def _answered_at(conv: _Conversation) -> datetime | None:
        has_remote = any(leg.external for leg in conv.legs.values())
        if conv.direction is Direction.OUTBOUND and has_remote:
            return conv.remote_answered_at
        return conv.agent_answered_at or conv.remote_answered_at

    @staticmethod
    def _outcome(conv: _Conversation) -> Outcome:
        remote = [leg for leg in conv.legs.values() if leg.external]
        agents = [leg for leg in conv.legs.values() if not leg.external]
        if conv.failure:
            if conv.failure == "agent_busy":
                return Outcome.BUSY
            if conv.failure in ("agent_no_answer", "agent_rejected"):
                return Outcome.ABANDONED
            return Outcome.FAILED
        if conv.direction is Direction.OUTBOUND and remote:
            if conv.remote_answered_at is not None:
                return Outcome.ANSWERED
            considered = remote
        else:
            if conv.answered:
                return Outcome.ANSWERED
            considered = agents
        # A provider's own verdict (webhook end-of-call) is never downgraded from answered.
        if conv.provider_outcome is Outcome.ANSWERED:
            return Outcome.ANSWERED
        statuses = {leg.status for leg in considered}
        if LegStatus.NO_ANSWER in statuses:
            return Outcome.NO_ANSWER
        if LegStatus.BUSY in statuses:
            return Outcome.BUSY
        if LegStatus.FAILED in statuses:
            return Outcome.FAILED
        if LegStatus.CANCEL in statuses or conv.queue_abandoned:
            return Outcome.ABANDONED
        # Legs that rang without saying how they ended: the provider's verdict, if any, decides.
        if conv.provider_outcome is not None:
            return conv.provider_outcome
        if considered:
            return Outcome.ABANDONED
        if conv.direction is Direction.OUTBOUND:
            return Outcome.FAILED
        return Outcome.ABANDONED

    def _end(self, conv: _Conversation, at: datetime, now: datetime) -> list[CallEvent]:
        if conv.state is CallState.ENDED:
            return []
        outcome = self._outcome(conv)
        self._set_state(conv, CallState.ENDED)
        conv.ended_at = at
        answered_at = self._answered_at(conv) if outcome is Outcome.ANSWERED else None
        remote = [leg for leg in conv.legs.values() if leg.external]
        ringing_legs = (
            remote
            if conv.direction is Direction.OUTBOUND and remote
            else [leg for leg in conv.legs.values() if not leg.external]
        )
        # Ring time: from the first ring to the answer, else until the last leg stopped ringing.
        first_ring = min((leg.rang_at for leg in ringing_legs), default=None)
        ring_seconds = 0.0
        if first_ring is not None:
            stop = answered_at or max(min(leg.ended_at or at, at) for leg in ringing_legs)
            ring_seconds = max(0.0, (stop - first_ring).total_seconds())
        talk_seconds = max(0.0, (at - answered_at).total_seconds()) if answered_at else 0.0
        answered = outcome is Outcome.ANSWERED
        answered_by = (conv.answered_by or conv.placed_by) if answered else ""
        event = CallEnded(
            key=self._key(conv, CallEnded.TYPE, "end"),
            pbx=conv.pbx,
            conversation_id=conv.id,
            occurred_at=at,
            observed_at=now,
            direction=conv.direction,
            outcome=outcome,
            caller=conv.caller,
            callee=conv.callee,
            did=conv.did,
            queue=conv.queue,
            rang=tuple(conv.rang),
            answered_by=answered_by,
            talked_last=(conv.talked_last or answered_by) if answered else "",
            transfers=tuple(conv.transfers),
            started_at=conv.created_at,
            answered_at=answered_at,
            ended_at=at,
            ring_seconds=round(ring_seconds, 3),
            talk_seconds=round(talk_seconds, 3),
            # An unanswered call leaves only an empty (header-only) file: not a recording.
            recording=conv.recording if answered else "",
            merged_ids=tuple(conv.aliases),
            failure=conv.failure,
        )
        self._release(conv, now)
        return [event]

    def _release(self, conv: _Conversation, now: datetime) -> None:
        pbx = conv.pbx
        self._convs.pop((pbx, conv.id), None)
        expires = now + self._tombstone_for
        for conv_id in (conv.id, *conv.aliases):
            self._parent.pop((pbx, conv_id), None)
            self._ended[(pbx, conv_id)] = expires
            self._ended.move_to_end((pbx, conv_id))
        for leg_id in conv.known_ids | set(conv.legs) | set(conv.leg_alias):
            if self._leg_owner.get((pbx, leg_id)) in (conv.id, *conv.aliases):
                del self._leg_owner[(pbx, leg_id)]


def _legs_of(obs: Observation) -> tuple[str, ...]:
    """Leg ids an observation names whose owner tells which conversation it belongs to."""
    if isinstance(obs, LocalPaired):
        return (obs.leg_id, obs.other_leg_id)
    if isinstance(obs, ChannelSeen | LegRinging | LegAnswered | LegEnded | LegHungUp):
        return (obs.leg_id,) if obs.leg_id else ()
    if isinstance(obs, LegBridged | RecordingFound | QueueCallerChanged | OriginateResult):
        return (obs.leg_id,) if obs.leg_id else ()
    return ()
