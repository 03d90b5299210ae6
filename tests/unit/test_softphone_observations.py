"""Softphone events -> observations, and through the real (pure) CallTracker to call events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.calls import CallTracker
from connector.events.model import (
    CallEnded,
    CallRinging,
    ConversationEnded,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegEnded,
    LegRinging,
    LegStatus,
    Outcome,
    Party,
)
from softphone import events as ev
from softphone.observations import ObservationMapper, leg_status

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CALLER = Party(number="79161234567", name="Caller Sipp")
ME = Party(number="alice")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(events: list[ev.PhoneEvent]) -> tuple[list, list]:
    mapper = ObservationMapper(pbx="softphone", extension="alice")
    tracker = CallTracker(
        user_of=lambda pbx, ext: 7 if (pbx, ext) == ("softphone", "alice") else None
    )
    observations = [obs for event in events for obs in mapper.handle(event)]
    call_events = [e for obs in observations for e in tracker.handle(obs, obs.at)]
    return observations, call_events


def test_incoming_answered_call() -> None:
    observations, call_events = run(
        [
            ev.CallRinging("cid-1", Direction.INBOUND, ME, CALLER, at(0)),
            ev.CallAnswered("cid-1", at(3)),
            ev.DtmfReceived("cid-1", "5", at(4)),
            ev.CallEnded("cid-1", ev.EndReason.REMOTE_HANGUP, at(63)),
        ]
    )
    assert [type(o) for o in observations] == [
        ConversationStarted, LegRinging, LegAnswered, LegEnded, ConversationEnded,
    ]  # fmt: skip
    started, ringing = observations[0], observations[1]
    assert started.conversation_id == ringing.leg_id == "cid-1"
    assert started.pbx == "softphone"
    assert started.caller == CALLER and started.callee == Party(number="alice")
    assert ringing.extension == "alice" and ringing.direction == Direction.INBOUND
    assert observations[3].status == LegStatus.ANSWER
    assert observations[4].outcome == Outcome.ANSWERED

    ringing_event = next(e for e in call_events if isinstance(e, CallRinging))
    assert ringing_event.user_id == 7 and ringing_event.caller == CALLER
    ended = call_events[-1]
    assert isinstance(ended, CallEnded)
    assert ended.outcome == Outcome.ANSWERED
    assert ended.answered_by == "alice"
    assert ended.talk_seconds == 60.0 and ended.ring_seconds == 3.0


def test_incoming_rejected_is_busy_and_cancelled_is_abandoned() -> None:
    _, rejected = run(
        [
            ev.CallRinging("cid-2", Direction.INBOUND, ME, CALLER, at(0)),
            ev.CallEnded("cid-2", ev.EndReason.REJECTED, at(2), 486),
        ]
    )
    assert isinstance(rejected[-1], CallEnded) and rejected[-1].outcome == Outcome.BUSY
    _, cancelled = run(
        [
            ev.CallRinging("cid-3", Direction.INBOUND, ME, CALLER, at(0)),
            ev.CallEnded("cid-3", ev.EndReason.CANCELLED, at(2), 487),
        ]
    )
    assert isinstance(cancelled[-1], CallEnded) and cancelled[-1].outcome == Outcome.ABANDONED


def test_outgoing_answered_and_busy() -> None:
    callee = Party(number="79161234567")
    observations, answered = run(
        [
            ev.CallRinging("out-1", Direction.OUTBOUND, ME, callee, at(0)),
            ev.CallAnswered("out-1", at(5)),
            ev.CallEnded("out-1", ev.EndReason.LOCAL_HANGUP, at(35)),
        ]
    )
    ringing = observations[1]
    assert isinstance(ringing, LegRinging)
    assert ringing.external and ringing.from_extension == "alice" and ringing.callee == callee
    ended = answered[-1]
    assert isinstance(ended, CallEnded)
    assert ended.outcome == Outcome.ANSWERED and ended.direction == Direction.OUTBOUND
    assert ended.callee == callee and ended.answered_by == "alice"

    _, busy = run(
        [
            ev.CallRinging("out-2", Direction.OUTBOUND, ME, callee, at(0)),
            ev.CallEnded("out-2", ev.EndReason.BUSY, at(1), 486),
        ]
    )
    assert isinstance(busy[-1], CallEnded) and busy[-1].outcome == Outcome.BUSY


def test_duplicates_and_unknown_calls_give_nothing() -> None:
    mapper = ObservationMapper(pbx="softphone", extension="alice")
    ring = ev.CallRinging("cid-9", Direction.INBOUND, ME, CALLER, at(0))
    assert len(mapper.handle(ring)) == 2
    assert mapper.handle(ring) == []
    assert mapper.handle(ev.CallAnswered("nope", at(1))) == []
    assert mapper.handle(ev.CallEnded("nope", ev.EndReason.REMOTE_HANGUP, at(1))) == []
    state = ev.RegistrationChanged(
        ev.RegistrationState.STOPPED, ev.RegistrationState.REGISTERING, "", at(0)
    )
    assert mapper.handle(state) == []


def test_leg_status_table() -> None:
    assert leg_status(ev.EndReason.REMOTE_HANGUP, 0, answered=True) == LegStatus.ANSWER
    assert leg_status(ev.EndReason.CANCELLED, 487, answered=False) == LegStatus.CANCEL
    assert leg_status(ev.EndReason.BUSY, 486, answered=False) == LegStatus.BUSY
    assert leg_status(ev.EndReason.FAILED, 480, answered=False) == LegStatus.NO_ANSWER
    assert leg_status(ev.EndReason.DECLINED, 603, answered=False) == LegStatus.FAILED
