"""CallTracker on literal observations: merging, duplicates, ordering, state, snapshots."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from connector.calls import CallState, CallStateError, CallTracker
from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallEvent,
    CallRinging,
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
    LocalPaired,
    Observation,
    OriginateResult,
    Outcome,
    Party,
    QueueCallerChanged,
    RecordingFound,
)

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def run(tracker: CallTracker, observations: list[Observation]) -> list[CallEvent]:
    out: list[CallEvent] = []
    for obs in observations:
        out += tracker.handle(obs, obs.at)
    return out


def seen(conv: str, leg: str, s: float, direction: Direction = Direction.UNKNOWN) -> ChannelSeen:
    return ChannelSeen(pbx="p", conversation_id=conv, at=at(s), leg_id=leg, direction=direction)


def ring(conv: str, leg: str, ext: str, s: float, **kw: object) -> LegRinging:
    return LegRinging(
        pbx="p",
        conversation_id=conv,
        at=at(s),
        leg_id=leg,
        extension=ext,
        caller=Party("+79161234567", "Ivan"),
        direction=Direction.INBOUND,
        **kw,  # type: ignore[arg-type]
    )


def answer(conv: str, leg: str, s: float) -> LegAnswered:
    return LegAnswered(pbx="p", conversation_id=conv, at=at(s), leg_id=leg)


def dial_end(conv: str, leg: str, s: float, status: LegStatus) -> LegEnded:
    return LegEnded(pbx="p", conversation_id=conv, at=at(s), leg_id=leg, status=status)


def hangup(conv: str, leg: str, s: float) -> LegHungUp:
    return LegHungUp(pbx="p", conversation_id=conv, at=at(s), leg_id=leg)


def inbound_call(conv: str = "A") -> list[Observation]:
    return [
        seen(conv, conv, 0, Direction.INBOUND),
        seen(conv, f"{conv}.2", 1),
        ring(conv, f"{conv}.2", "101", 1),
    ]


def the_end(events: list[CallEvent]) -> CallEnded:
    (end,) = [e for e in events if isinstance(e, CallEnded)]
    return end


def test_doubled_dial_end_and_late_noanswer_never_downgrade() -> None:
    tracker = CallTracker()
    events = run(
        tracker,
        inbound_call()
        + [
            answer("A", "A.2", 3),
            answer("A", "A.2", 3),
            dial_end("A", "A.2", 4, LegStatus.NO_ANSWER),
            hangup("A", "A.2", 8),
            hangup("A", "A", 9),
        ],
    )
    assert [type(e) for e in events] == [CallRinging, CallAnswered, CallEnded]
    end = the_end(events)
    assert end.outcome is Outcome.ANSWERED
    assert (end.ring_seconds, end.talk_seconds) == (2.0, 6.0)


def test_missing_dial_end_bridge_answers() -> None:
    events = run(
        CallTracker(),
        inbound_call()
        + [
            LegBridged(pbx="p", conversation_id="A", at=at(2), leg_id="A.2", bridge_id="b"),
            hangup("A", "A.2", 5),
            hangup("A", "A", 5),
        ],
    )
    assert the_end(events).outcome is Outcome.ANSWERED
    assert the_end(events).answered_by == "101"


def test_no_dial_end_at_all_caller_hangs_up_is_abandoned() -> None:
    events = run(CallTracker(), inbound_call() + [hangup("A", "A.2", 4), hangup("A", "A", 4)])
    end = the_end(events)
    assert (end.outcome, end.rang, end.answered_by) == (Outcome.ABANDONED, ("101",), "")


def test_queue_abandoned_before_anyone_rang() -> None:
    events = run(
        CallTracker(),
        [
            seen("Q", "Q", 0, Direction.INBOUND),
            QueueCallerChanged(pbx="p", conversation_id="Q", at=at(1), leg_id="Q", queue="s"),
            QueueCallerChanged(
                pbx="p", conversation_id="Q", at=at(9), leg_id="Q", queue="s", status="abandoned"
            ),
            hangup("Q", "Q", 9),
        ],
    )
    end = the_end(events)
    assert (end.outcome, end.queue, end.direction) == (Outcome.ABANDONED, "s", Direction.INBOUND)


def test_known_leg_with_a_new_linkedid_merges_conversations() -> None:
    tracker = CallTracker()
    events = run(
        tracker,
        inbound_call("A")
        + [
            answer("A", "A.2", 2),
            # a separate call B (agent 101 consulting 104) ...
            seen("B", "B", 3),
            seen("B", "B.2", 3),
            ring("B", "B.2", "104", 3),
            # ... then Asterisk re-keys B's channels to A's Linkedid when they are bridged
            LegBridged(pbx="p", conversation_id="A", at=at(5), leg_id="B.2", bridge_id="x"),
            hangup("A", "A.2", 6),
            hangup("A", "B", 6),
            hangup("A", "B.2", 9),
            hangup("A", "A", 9),
        ],
    )
    end = the_end(events)
    assert end.conversation_id == "A" and end.merged_ids == ("B",)
    assert end.rang == ("101", "104") and end.talked_last == "104"
    assert tracker.stats()["conversations"] == 0 and tracker.stats()["aliases"] == 0
    # late events of either id are ignored, not resurrected as new calls
    assert tracker.handle(seen("B", "B.9", 10), at(10)) == []
    assert tracker.handle(seen("A", "A.9", 10), at(10)) == []
    assert tracker.size() == 0


def test_conversations_merged_observation() -> None:
    tracker = CallTracker()
    run(tracker, inbound_call("A") + inbound_call("B"))
    assert tracker.size() == 2
    tracker.handle(
        ConversationsMerged(pbx="p", conversation_id="B", at=at(2), other_conversation_id="A"),
        at(2),
    )
    assert tracker.size() == 1
    (call,) = tracker.active_calls()
    assert call.conversation_id == "A" and len(call.legs) == 2


def test_local_half_is_the_same_agent_leg() -> None:
    events = run(
        CallTracker(),
        [
            seen("A", "A", 0, Direction.INBOUND),
            seen("A", "A.1", 1),
            seen("A", "A.2", 1),
            LocalPaired(pbx="p", conversation_id="A", at=at(1), leg_id="A.1", other_leg_id="A.2"),
            ring("A", "A.1", "101", 1, queue="q"),
            ring("A", "A.3", "101", 1, source_leg_id="A.2"),  # ;2 dials the phone behind
            answer("A", "A.3", 3),
            hangup("A", "A.3", 4),
            hangup("A", "A.2", 4),
            hangup("A", "A.1", 4),
            hangup("A", "A", 4),
        ],
    )
    assert [(type(e), getattr(e, "leg_id", "")) for e in events] == [
        (CallRinging, "A.1"),
        (CallAnswered, "A.1"),
        (CallEnded, ""),
    ]


def test_linkedid_end_before_the_last_events_waits_for_the_last_channel() -> None:
    tracker = CallTracker()
    events = run(
        tracker,
        inbound_call()
        + [
            ConversationEnded(pbx="p", conversation_id="A", at=at(2)),
            answer("A", "A.2", 3),
            hangup("A", "A.2", 5),
        ],
    )
    assert not [e for e in events if isinstance(e, CallEnded)]
    end = the_end(tracker.handle(hangup("A", "A", 6), at(6)))
    assert end.outcome is Outcome.ANSWERED


def test_provider_without_channels_ends_on_conversation_ended() -> None:
    events = run(
        CallTracker(),
        [
            ConversationStarted(
                pbx="p", conversation_id="W", at=at(0), direction=Direction.INBOUND, did="495"
            ),
            ring("W", "w1", "101", 1),
            ring("W", "w2", "102", 1),
            dial_end("W", "w1", 20, LegStatus.NO_ANSWER),
            ConversationEnded(pbx="p", conversation_id="W", at=at(21)),
        ],
    )
    end = the_end(events)
    assert (end.outcome, end.rang, end.did) == (Outcome.NO_ANSWER, ("101", "102"), "495")


def test_recording_only_for_answered_calls() -> None:
    rec = RecordingFound(pbx="p", conversation_id="A", at=at(1), reference="/r/a.wav", leg_id="A")
    missed = run(CallTracker(), [*inbound_call(), rec, hangup("A", "A.2", 3), hangup("A", "A", 3)])
    assert the_end(missed).recording == ""
    talked = run(
        CallTracker(),
        [*inbound_call(), rec, answer("A", "A.2", 2), hangup("A", "A.2", 3), hangup("A", "A", 3)],
    )
    assert the_end(talked).recording == "/r/a.wav"


def test_click_to_call_agent_busy_and_success() -> None:
    originated = LegRinging(
        pbx="p",
        conversation_id="c",
        at=at(0),
        leg_id="c",
        extension="101",
        direction=Direction.OUTBOUND,
        originated=True,
    )
    busy = OriginateResult(pbx="p", conversation_id="c", at=at(1), leg_id="c", reason=5)
    events = run(CallTracker(), [seen("c", "c", 0), originated, busy, hangup("c", "c", 1)])
    end = the_end(events)
    assert (end.outcome, end.failure) == (Outcome.BUSY, "agent_busy")
    ok = OriginateResult(pbx="p", conversation_id="c", at=at(2), leg_id="c", success=True, reason=4)
    tracker = CallTracker()
    events = run(tracker, [seen("c", "c", 0), originated, ok])
    assert [type(e) for e in events] == [CallRinging, CallAnswered]
    # the agent picked up but the customer has not: still ringing, not talking
    (call,) = tracker.active_calls()
    assert call.state is CallState.RINGING


def test_claimed_is_sent_once_per_leg_and_never_to_the_answerer() -> None:
    events = run(
        CallTracker(),
        [
            seen("A", "A", 0, Direction.INBOUND),
            ring("A", "l1", "201", 1, queue="q"),
            ring("A", "l2", "202", 1, queue="q"),
            ring("A", "l3", "203", 1, queue="q"),
            dial_end("A", "l3", 2, LegStatus.NO_ANSWER),
            answer("A", "l2", 3),
            answer("A", "l2", 3),
        ],
    )
    claimed = [e for e in events if isinstance(e, CallClaimed)]
    assert sorted(e.extension for e in claimed) == ["201", "203"]
    assert len({e.key for e in events}) == len(events)


def test_keys_are_stable_across_trackers() -> None:
    obs = [*inbound_call(), answer("A", "A.2", 2), hangup("A", "A.2", 3), hangup("A", "A", 3)]
    first = [e.key for e in run(CallTracker(), obs)]
    assert first == [e.key for e in run(CallTracker(), obs)]
    assert first[0] == "p:A:call.ringing:A.2"


def test_state_changes_in_one_setter_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    tracker = CallTracker()
    with caplog.at_level(logging.INFO, logger="connector.calls"):
        run(tracker, [*inbound_call(), answer("A", "A.2", 2)])
    assert "p:A started -> ringing" in caplog.text
    assert "p:A ringing -> talking" in caplog.text
    (call,) = tracker.active_calls("p")
    assert call.state is CallState.TALKING
    conv = tracker._convs[("p", "A")]
    with pytest.raises(CallStateError, match="talking"):
        tracker._set_state(conv, CallState.RINGING)


def test_active_calls_and_resync_keep_live_calls() -> None:
    tracker = CallTracker(user_of=lambda pbx, ext: 5 if ext == "101" else None)
    run(tracker, inbound_call("A") + inbound_call("B"))
    (call_a, call_b) = tracker.active_calls("p")
    assert call_a.legs[0].user_id == 5 and call_a.legs[0].state == "ringing"
    assert tracker.active_calls("other") == []
    events = tracker.resync("p", ["A", "A.2"], at(30))
    end = the_end(events)
    assert end.conversation_id == "B" and end.outcome is Outcome.ABANDONED
    assert [c.conversation_id for c in tracker.active_calls()] == ["A"]
    assert tracker.resync("other", [], at(30)) == []


def test_tombstones_expire() -> None:
    tracker = CallTracker(tombstone_seconds=60)
    run(tracker, [*inbound_call(), hangup("A", "A.2", 1), hangup("A", "A", 1)])
    assert tracker.stats()["tombstones"] == 1
    tracker.handle(seen("Z", "Z", 100), at(100))
    assert tracker.stats()["tombstones"] == 0


def test_unknown_conversation_noise_is_ignored() -> None:
    tracker = CallTracker()
    assert tracker.handle(hangup("X", "X", 1), at(1)) == []
    assert tracker.handle(answer("X", "X.2", 1), at(1)) == []
    assert tracker.handle(ConversationEnded(pbx="p", conversation_id="X", at=at(1)), at(1)) == []
    assert tracker.size() == 0 and tracker.stats()["ignored"] == 3


def test_sweep_ends_calls_whose_hangup_was_lost() -> None:
    tracker = CallTracker()
    run(tracker, [*inbound_call("A"), answer("A", "A.2", 2)])
    run(tracker, [*inbound_call("B"), ConversationEnded(pbx="p", conversation_id="B", at=at(3))])
    assert tracker.sweep(at(60)) == []
    (end_b,) = tracker.sweep(at(200))
    assert isinstance(end_b, CallEnded) and end_b.conversation_id == "B"
    (end_a,) = tracker.sweep(at(5 * 3600))
    assert isinstance(end_a, CallEnded) and end_a.outcome is Outcome.ANSWERED
    assert tracker.size() == 0


def test_resync_spares_calls_seen_after_the_list_was_requested() -> None:
    tracker = CallTracker()
    tracker.handle(seen("old", "old", 0, Direction.INBOUND), at(0))
    tracker.handle(seen("new", "new", 10, Direction.INBOUND), at(10))
    tracker.handle(seen("up", "up", 0, Direction.INBOUND), at(0))
    tracker.handle(seen("up", "up.2", 0), at(0))
    tracker.handle(seen("up", "up", 6), at(6))  # adopted from the list: still up
    events = tracker.resync("p", ["up"], at(11), seen_since=at(5))
    assert [e.conversation_id for e in events] == ["old"]
    assert [c.conversation_id for c in tracker.active_calls()] == ["up", "new"]
    # up.2 vanished during the outage: the call ends with its last listed channel
    (end,) = tracker.handle(hangup("up", "up", 12), at(12))
    assert end.conversation_id == "up"


def test_provider_verdict_fills_what_the_legs_did_not_say() -> None:
    start = ConversationStarted(pbx="p", conversation_id="W", at=at(0), direction=Direction.INBOUND)
    rec = RecordingFound(pbx="p", conversation_id="W", at=at(9), reference="https://rec/1")
    answered = run(
        CallTracker(),
        [
            start,
            ring("W", "w1", "101", 1),
            rec,
            ConversationEnded(pbx="p", conversation_id="W", at=at(30), outcome=Outcome.ANSWERED),
        ],
    )
    end = the_end(answered)
    # answered, but no leg said by whom: the tracker does not guess
    assert (end.outcome, end.answered_by, end.recording) == (
        Outcome.ANSWERED,
        "",
        "https://rec/1",
    )
    busy = run(
        CallTracker(),
        [
            start,
            ring("W", "w1", "101", 1),
            ConversationEnded(pbx="p", conversation_id="W", at=at(3), outcome=Outcome.BUSY),
        ],
    )
    assert the_end(busy).outcome is Outcome.BUSY
    # a leg that says it was cancelled (the caller hung up) is more precise than "missed"
    cancelled = run(
        CallTracker(),
        [
            start,
            ring("W", "w1", "101", 1),
            dial_end("W", "w1", 4, LegStatus.CANCEL),
            ConversationEnded(pbx="p", conversation_id="W", at=at(4), outcome=Outcome.NO_ANSWER),
        ],
    )
    assert the_end(cancelled).outcome is Outcome.ABANDONED
