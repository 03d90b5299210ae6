"""The hub's pure core: who gets which call event, per-stream sequence numbers, replay, snapshots.

No sockets and no clock: :class:`HubState` is fed call events (and the time) and returns
*deliveries* - ``(stream key, message)`` pairs, each message already numbered in its stream.
The I/O layer (:mod:`connector.hub`) sends each delivery to the live connections of that stream.

A **stream** belongs to a user and a scope: ``(user_id, "own")`` carries the events of the user's
own extensions, ``(user_id, "team")`` those of the supervisor's team, ``(user_id, "all")``
everything (admins). Own streams exist for every user who was ever a recipient, so an agent who
was offline gets what they missed when they come back; team and all streams exist once somebody
subscribed to them. Every stream numbers its messages 1, 2, 3... and keeps the last ``capacity``
for replay; a cursor older than that (or from a previous ``epoch``) gets a ``resync``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallEvent,
    CallRinging,
    CallTransferred,
    Direction,
    Party,
    TaskCreated,
)
from connector.events.wire import event_to_dict
from crm_sync.cards import display_number

logger = logging.getLogger(__name__)

__all__ = [
    "CallView",
    "Delivery",
    "HubState",
    "Replay",
    "Stream",
    "StreamKey",
    "remote_party",
]

StreamKey = tuple[int, str]
Delivery = tuple[StreamKey, dict[str, Any]]

#: Marks a buffered message whose caller card was left out (see :meth:`Stream.append`).
CARD_LEFT_OUT = "_card_left_out"

#: A call with no event for this long is forgotten (its end was never seen).
STALE_AFTER = timedelta(hours=4)


def remote_party(event: CallEvent) -> Party:
    """The customer's side of a call: the caller inbound, the callee outbound."""
    caller: Party = getattr(event, "caller", Party())
    callee: Party = getattr(event, "callee", Party())
    direction = getattr(event, "direction", Direction.UNKNOWN)
    return callee if direction == Direction.OUTBOUND else caller


@dataclass
class Stream:
    """Numbered messages of one (user, scope) with a bounded replay buffer."""

    capacity: int
    seq: int = 0
    buffer: deque[dict[str, Any]] = field(default_factory=deque)

    def append(self, message: dict[str, Any]) -> dict[str, Any]:
        """Number ``message`` and keep it for replay; returns the numbered copy.

        The buffer keeps messages without their caller card (cards are the bulk of a pop, and
        every agent's buffer would otherwise keep the cards of its last hundreds of calls
        alive): :meth:`HubState.replay` puts the card of a call still in progress back.
        """
        self.seq += 1
        numbered = {**message, "seq": self.seq}
        if numbered.get("card") is not None:
            kept = {k: v for k, v in numbered.items() if k != "card"}
            kept["card"] = None
            kept[CARD_LEFT_OUT] = True
            self.buffer.append(kept)
        else:
            self.buffer.append(numbered)
        while len(self.buffer) > self.capacity:
            self.buffer.popleft()
        return numbered

    def since(self, last_seq: int) -> list[dict[str, Any]] | None:
        """Messages after ``last_seq``, or None if some of them are no longer buffered."""
        if last_seq > self.seq:
            return None
        if last_seq == self.seq:
            return []
        oldest = self.buffer[0]["seq"] if self.buffer else self.seq + 1
        if last_seq + 1 < oldest:
            return None
        return [m for m in self.buffer if m["seq"] > last_seq]


@dataclass(frozen=True, slots=True)
class Replay:
    """What a (re)connecting client gets: missed messages, or a resync notice, and the seq."""

    messages: list[dict[str, Any]]
    resync: str | None  # why the cursor could not be honoured
    seq: int


@dataclass
class CallView:
    """What the hub knows about one conversation: who was popped, its card, its history."""

    pbx: str
    conversation_id: str
    direction: str
    number: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    state: str = "ringing"  # ringing | talking | ended
    user_state: dict[int, str] = field(default_factory=dict)  # ringing|talking|closed
    last_event: dict[int, dict[str, Any]] = field(default_factory=dict)  # per user
    latest: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    card: dict[str, Any] | None = None
    card_pending: bool = False

    @property
    def key(self) -> str:
        """The conversation as one string (``pbx/conversation_id``)."""
        return f"{self.pbx}/{self.conversation_id}"

    def summary(self, user_id: int | None) -> dict[str, Any]:
        """This call as a snapshot entry, seen by ``user_id`` (None: supervisor view)."""
        event = self.last_event.get(user_id, self.latest) if user_id is not None else self.latest
        return {
            "conversation": self.key,
            "pbx": self.pbx,
            "conversation_id": self.conversation_id,
            "direction": self.direction,
            "state": self.state,
            "agents": {str(u): s for u, s in self.user_state.items()},
            "number": self.number,
            "event": event,
            "card": self.card,
            "card_pending": self.card_pending and self.card is None,
            "history": list(self.history),
        }


class HubState:
    """Routing, numbering and call state of the hub. Feed events, get deliveries."""

    def __init__(
        self,
        *,
        region: str,
        capacity: int,
        user_of: Callable[[str, str], int | None],
        team_of: Callable[[int], str],
        name_of: Callable[[int], str],
    ) -> None:
        self.region = region
        self.capacity = capacity
        self._user_of = user_of
        self._team_of = team_of
        self._name_of = name_of
        self.streams: dict[StreamKey, Stream] = {}
        self.calls: dict[str, CallView] = {}

    # ------------------------------------------------------------------ streams

    def stream(self, key: StreamKey) -> Stream:
        """The stream for ``key``, created empty if needed."""
        found = self.streams.get(key)
        if found is None:
            found = self.streams[key] = Stream(capacity=self.capacity)
        return found

    def replay(self, key: StreamKey, last_seq: int | None, epoch_matches: bool) -> Replay:
        """What a client resuming ``key`` from ``last_seq`` gets (None: a fresh start)."""
        stream = self.stream(key)
        if last_seq is None:
            return Replay(messages=[], resync=None, seq=stream.seq)
        if not epoch_matches:
            return Replay([], "the server restarted since your last message", stream.seq)
        missed = stream.since(last_seq)
        if missed is None:
            reason = (
                f"seq {last_seq} is ahead of this stream (last is {stream.seq})"
                if last_seq > stream.seq
                else f"seq {last_seq} is too old: only the last {self.capacity} messages are kept"
            )
            return Replay(messages=[], resync=reason, seq=stream.seq)
        return Replay(messages=[self._with_card(m) for m in missed], resync=None, seq=stream.seq)

    def _with_card(self, message: dict[str, Any]) -> dict[str, Any]:
        """A buffered message as it is replayed: the card back if the call is still live."""
        if not message.get(CARD_LEFT_OUT):
            return message
        out = {k: v for k, v in message.items() if k != CARD_LEFT_OUT}
        view = self.calls.get(str(message.get("conversation", "")))
        out["card"] = view.card if view is not None else None
        if "card_pending" in out:
            out["card_pending"] = bool(view is not None and view.card is None)
        return out

    def snapshot(self, key: StreamKey) -> list[dict[str, Any]]:
        """Calls now ringing or in progress that the stream ``key`` may see."""
        user_id, scope = key
        out: list[dict[str, Any]] = []
        for view in self.calls.values():
            if view.state == "ended":
                continue
            if scope == "own":
                if view.user_state.get(user_id) in ("ringing", "talking"):
                    out.append(view.summary(user_id))
            elif scope == "team":
                team = self._team_of(user_id)
                if any(self._team_of(u) == team for u in view.user_state):
                    out.append(view.summary(None))
            else:
                out.append(view.summary(None))
        return out

    def _targets(self, users: Iterable[int]) -> list[StreamKey]:
        """The streams that must carry an event concerning ``users``."""
        users = sorted(set(users))
        keys: list[StreamKey] = [(u, "own") for u in users]
        teams = {self._team_of(u) for u in users}
        teams.discard("")
        for uid, scope in list(self.streams):
            if scope == "team" and self._team_of(uid) in teams:
                keys.append((uid, scope))
            elif scope == "all":
                keys.append((uid, scope))
        return keys

    def _deliver(self, users: Iterable[int], message: dict[str, Any]) -> list[Delivery]:
        return [(key, self.stream(key).append(message)) for key in self._targets(users)]

    # ------------------------------------------------------------------ events

    def _user(self, pbx: str, extension: str, user_id: int | None) -> int | None:
        if user_id is not None:
            return user_id
        return self._user_of(pbx, extension) if extension else None

    def _agent(self, pbx: str, extension: str, user_id: int | None) -> dict[str, Any]:
        uid = self._user(pbx, extension, user_id)
        return {
            "extension": extension,
            "user_id": uid,
            "name": self._name_of(uid) if uid is not None else "",
        }

    def view_of(self, event: CallEvent, now: datetime) -> CallView:
        """The call view of ``event``'s conversation, created on first sight."""
        key = f"{event.pbx}/{event.conversation_id}"
        view = self.calls.get(key)
        if view is None:
            party = remote_party(event)
            view = CallView(
                pbx=event.pbx,
                conversation_id=event.conversation_id,
                direction=str(getattr(event, "direction", Direction.UNKNOWN)),
                number=display_number(party.number, self.region),
                started_at=event.occurred_at,
                updated_at=now,
            )
            if party.name:
                view.number["name"] = party.name
            self.calls[key] = view
        return view

    def needs_card(self, event: CallEvent) -> bool:
        """True if ``event`` pops a card that is neither built nor being built."""
        if not isinstance(event, CallRinging | CallTransferred):
            return False
        view = self.calls.get(f"{event.pbx}/{event.conversation_id}")
        return view is None or (view.card is None and not view.card_pending)

    def handle(self, event: CallEvent, now: datetime) -> list[Delivery]:
        """Route one call event: update the call view and return the numbered deliveries."""
        self.expire(now)
        view = self.view_of(event, now)
        view.updated_at = now
        wire = event_to_dict(event)
        entry: dict[str, Any] = {
            "type": event.TYPE,
            "at": event.occurred_at.isoformat(),
        }
        message: dict[str, Any] = {
            "type": "call",
            "conversation": view.key,
            "event": wire,
            "number": view.number,
            "direction": view.direction,
            "pbx_time": event.occurred_at.isoformat(),
            "observed_at": event.observed_at.isoformat(),
        }
        users: set[int] = set()
        if isinstance(event, CallRinging):
            uid = self._user(event.pbx, event.extension, event.user_id)
            agent = self._agent(event.pbx, event.extension, event.user_id)
            entry["agent"] = agent
            message["agent"] = agent
            if event.queue:
                message["queue"] = event.queue
            if uid is not None:
                users.add(uid)
                if view.user_state.get(uid) != "talking":
                    view.user_state[uid] = "ringing"
            message["card"] = view.card
            message["card_pending"] = view.card is None
        elif isinstance(event, CallAnswered):
            uid = self._user(event.pbx, event.extension, event.user_id)
            agent = self._agent(event.pbx, event.extension, event.user_id)
            entry["agent"] = agent
            message["agent"] = agent
            view.state = "talking"
            if uid is not None:
                users.add(uid)
                view.user_state[uid] = "talking"
            # everybody this call rang learns who took it
            users.update(u for u, s in view.user_state.items() if s == "ringing")
        elif isinstance(event, CallClaimed):
            uid = self._user(event.pbx, event.extension, event.user_id)
            by = self._agent(event.pbx, event.claimed_by_extension, event.claimed_by_user_id)
            entry["agent"] = self._agent(event.pbx, event.extension, event.user_id)
            entry["claimed_by"] = by
            message["agent"] = entry["agent"]
            message["claimed_by"] = by
            if uid is not None:
                users.add(uid)
                view.user_state[uid] = "closed"
        elif isinstance(event, CallTransferred):
            src = self._user(event.pbx, event.from_extension, event.from_user_id)
            dst = self._user(event.pbx, event.to_extension, event.to_user_id)
            entry["from"] = self._agent(event.pbx, event.from_extension, event.from_user_id)
            entry["to"] = self._agent(event.pbx, event.to_extension, event.to_user_id)
            message["from"] = entry["from"]
            message["to"] = entry["to"]
            if src is not None:
                users.add(src)
                view.user_state[src] = "closed"
            if dst is not None:
                users.add(dst)
                view.user_state[dst] = "ringing" if view.state == "ringing" else "talking"
            message["card"] = view.card
            message["card_pending"] = view.card is None
        elif isinstance(event, CallEnded):
            view.state = "ended"
            entry["outcome"] = str(event.outcome)
            entry["talk_seconds"] = event.talk_seconds
            entry["ring_seconds"] = event.ring_seconds
            message["outcome"] = str(event.outcome)
            message["duration"] = {"ring": event.ring_seconds, "talk": event.talk_seconds}
            message["answered_by"] = self._agent(event.pbx, event.answered_by, None)
            users.update(view.user_state)
            for ext in (*event.rang, event.answered_by, event.talked_last):
                uid = self._user(event.pbx, ext, None)
                if uid is not None:
                    users.add(uid)
            for u in users:
                view.user_state[u] = "closed"
        view.history.append(entry)
        message["history"] = list(view.history)
        view.latest = message
        for u in users:
            view.last_event[u] = message
        deliveries = self._deliver(users, message)
        if view.state == "ended":
            del self.calls[view.key]
        return deliveries

    def handle_task(self, event: TaskCreated) -> list[Delivery]:
        """A task was created or updated (e.g. a callback for a missed call): tell its assignee."""
        if event.assignee_id is None:
            return []
        message = {
            "type": "task",
            "task": {"id": event.task_id, "title": event.title, "number": event.number},
            "event": event_to_dict(event),
        }
        return self._deliver([event.assignee_id], message)

    def adopt(self, calls: Iterable[Any], now: datetime) -> list[str]:
        """Take over calls in progress the hub has not seen (``CallTracker.active_calls()``).

        Used when the hub (re)starts while calls are up, so reconnecting agents still get them
        in their snapshot. Returns the conversations adopted (their cards are still to build).
        """
        adopted: list[str] = []
        for call in calls:
            key = f"{call.pbx}/{call.conversation_id}"
            if key in self.calls or str(call.state) in ("ended", "started"):
                continue
            direction = str(call.direction)
            party = call.callee if direction == Direction.OUTBOUND else call.caller
            view = CallView(
                pbx=call.pbx,
                conversation_id=call.conversation_id,
                direction=direction,
                number=display_number(party.number, self.region),
                started_at=call.started_at,
                updated_at=now,
                state=str(call.state),
            )
            if party.name:
                view.number["name"] = party.name
            for leg in call.legs:
                uid = self._user(call.pbx, leg.extension, leg.user_id)
                if uid is None or leg.external:
                    continue
                if leg.state == "ringing":
                    view.user_state[uid] = "ringing"
                elif leg.state == "answered":
                    view.user_state[uid] = "talking"
            view.latest = {
                "type": "call",
                "conversation": key,
                "number": view.number,
                "direction": direction,
                "adopted": True,
            }
            self.calls[key] = view
            adopted.append(key)
        return adopted

    def card_ready(self, conversation: str, card: dict[str, Any]) -> list[Delivery]:
        """A card built after its pop went out: store it and send it to whoever was popped."""
        view = self.calls.get(conversation)
        if view is None:
            return []
        view.card = card
        view.card_pending = False
        for snapshot in view.last_event.values():
            snapshot["card"] = card
            snapshot["card_pending"] = False
        users = [u for u, s in view.user_state.items() if s in ("ringing", "talking")]
        message = {"type": "card", "conversation": conversation, "card": card}
        return self._deliver(users, message)

    def expire(self, now: datetime) -> None:
        """Forget calls not heard of for :data:`STALE_AFTER` (their end never came)."""
        stale = [k for k, v in self.calls.items() if now - v.updated_at > STALE_AFTER]
        for key in stale:
            logger.info("forgetting call %s: no event for %s", key, STALE_AFTER)
            del self.calls[key]
