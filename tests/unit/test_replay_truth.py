"""Every captured call yields the call log of its truth table (tests/data/ami/README.md).

The transcripts go through the real pipeline: bytes split exactly as the recorded recv() calls
split them -> AmiFramer -> AmiTranslator -> CallTracker. Composed transcripts (interleaved
calls, two PBXs, attended transfer, an unanswered queue call, a PBX restart, garbage on the wire)
are built from the real messages with their ids rewritten.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.adapters.ami_codec import AmiFramer, AmiMessage
from connector.adapters.errors import AmiDecodeError, AmiMessageTooLarge, AmiTruncatedMessage
from connector.calls import CallTracker
from connector.config import AmiPbxSettings
from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallEvent,
    CallRinging,
    CallTransferred,
    TransferKind,
)
from connector.replay import load_chunks, replay

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"
START = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
PBX = AmiPbxSettings(name="office")
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


@dataclass(frozen=True)
class Truth:
    direction: str
    outcome: str
    rang: tuple[str, ...]
    answered_by: str = ""
    talked_last: str = ""
    transfers: tuple[tuple[str, str], ...] = ()
    caller: str = ""
    callee: str = ""
    recording: str = ""  # suffix of the file name; "" means no recording
    ring: float = 0.0
    talk: float = 0.0
    failure: str = ""
    queue: str = ""


TRUTH: dict[str, Truth] = {
    "inbound_answered": Truth(
        "inbound", "answered", ("101",), "101", "101", (), "+79161234567", "74951234500",
        "-1795900871.1.wav", ring=2.0, talk=3.0,
    ),
    "inbound_missed": Truth(
        "inbound", "no_answer", ("102",), caller="89161234567", callee="74951234501", ring=8.0
    ),
    "inbound_busy": Truth(
        "inbound", "busy", ("103",), caller="89161234567", callee="74951234502", ring=0.0
    ),
    "caller_abandons": Truth(
        "inbound", "abandoned", ("102",), caller="", callee="74951234503", ring=5.0
    ),
    "click_to_call": Truth(
        "outbound", "answered", ("101",), "101", "101", (), "101", "89161234567",
        "-1795900920.16.wav", ring=3.0, talk=4.0,
    ),
    "click_to_call_noanswer": Truth(
        "outbound", "abandoned", ("102",), caller="102", callee="+79161234567", ring=6.0,
        failure="agent_no_answer",
    ),
    "queue_call": Truth(
        "inbound", "answered", ("201", "202"), "202", "202", (), "74951234567", "74951234510",
        "-1795900932.21.wav", ring=3.0, talk=3.0, queue="support",
    ),
    "transfer": Truth(
        "inbound", "answered", ("101", "104"), "101", "104", (("101", "104"),), "+79031112233",
        "74951234500", "-1795900941.27.wav", ring=2.0, talk=12.0,
    ),
}  # fmt: skip


def ended(events: list[CallEvent]) -> list[CallEnded]:
    return [e for e in events if isinstance(e, CallEnded)]


def check(truth: Truth, end: CallEnded, *, timing: bool = True, tag: str = "") -> None:
    assert end.direction.value == truth.direction
    assert end.outcome.value == truth.outcome
    assert end.rang == truth.rang
    assert end.answered_by == truth.answered_by
    assert end.talked_last == truth.talked_last
    assert end.transfers == truth.transfers
    assert end.caller.number == truth.caller
    assert end.callee.number == truth.callee
    assert end.failure == truth.failure
    assert end.queue == truth.queue
    if truth.recording:
        assert end.recording.endswith(truth.recording.replace(".wav", tag + ".wav"))
    else:
        assert end.recording == ""
    if timing:
        assert end.ring_seconds == pytest.approx(truth.ring, abs=0.1)
        assert end.talk_seconds == pytest.approx(truth.talk, abs=0.1)


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_captured_call_matches_truth_table(name: str) -> None:
    tracker = CallTracker()
    result = replay(load_chunks(DATA / f"{name}.ami"), PBX, START, tracker)
    assert result.errors == []
    (end,) = ended(result.events)
    check(TRUTH[name], end)
    assert end.pbx == "office"
    assert end.key == f"office:{end.conversation_id}:call.ended:end"
    # every leg event is about that one conversation, and nothing is left behind
    assert {e.conversation_id for e in result.events} == {end.conversation_id}
    stats = tracker.stats()
    assert stats["conversations"] == stats["legs"] == stats["leg_index"] == stats["aliases"] == 0


def test_queue_ring_all_claims_the_call_for_the_other_member() -> None:
    result = replay(load_chunks(DATA / "queue_call.ami"), PBX, START)
    ringing = [e for e in result.events if isinstance(e, CallRinging)]
    assert [(e.extension, e.queue) for e in ringing] == [("201", "support"), ("202", "support")]
    assert all(e.caller.name == "ООО Ромашка" for e in ringing)
    answered = [e for e in result.events if isinstance(e, CallAnswered)]
    assert [e.extension for e in answered] == ["202"]
    claimed = [e for e in result.events if isinstance(e, CallClaimed)]
    assert [(e.extension, e.claimed_by_extension) for e in claimed] == [("201", "202")]
    # the doubled DialEnd CANCEL does not produce anything twice
    assert len({e.key for e in result.events}) == len(result.events)


def test_blind_transfer_event() -> None:
    result = replay(load_chunks(DATA / "transfer.ami"), PBX, START)
    (xfer,) = [e for e in result.events if isinstance(e, CallTransferred)]
    assert (xfer.kind, xfer.from_extension, xfer.to_extension) == (TransferKind.BLIND, "101", "104")
    assert [e.extension for e in result.events if isinstance(e, CallRinging)] == ["101", "104"]


def test_click_to_call_events_tell_agent_and_customer_apart() -> None:
    result = replay(load_chunks(DATA / "click_to_call.ami"), PBX, START)
    answered = [e for e in result.events if isinstance(e, CallAnswered)]
    assert [(e.extension, e.remote) for e in answered] == [("101", False), ("", True)]
    (end,) = ended(result.events)
    assert end.conversation_id == "1795900920.16"  # the agent leg's Uniqueid


def test_click_to_call_noanswer_ends_with_the_originate_channel_id() -> None:
    result = replay(load_chunks(DATA / "click_to_call_noanswer.ami"), PBX, START)
    (ring,) = [e for e in result.events if isinstance(e, CallRinging)]
    assert ring.leg_id == "c2c-crm-43-agent" and ring.extension == "102"
    (end,) = ended(result.events)
    assert end.conversation_id == "c2c-crm-43-agent"
    assert end.failure == "agent_no_answer"
    assert not [e for e in result.events if isinstance(e, CallAnswered)]


def test_user_ids_are_filled() -> None:
    users = {("office", "201"): 7, ("office", "202"): 8}
    tracker = CallTracker(user_of=lambda pbx, ext: users.get((pbx, ext)))
    result = replay(load_chunks(DATA / "queue_call.ami"), PBX, START, tracker)
    (claimed,) = [e for e in result.events if isinstance(e, CallClaimed)]
    assert (claimed.user_id, claimed.claimed_by_user_id) == (7, 8)


# --------------------------------------------------------------------------------------------
# Composed transcripts
# --------------------------------------------------------------------------------------------

_UID = re.compile(r"\b(1795900\d{3}\.\d+|c2c-crm-43-agent(?:-2)?)\b")


def messages(name: str) -> list[tuple[float, AmiMessage]]:
    """The call's messages (no login/logoff responses) with the time they completed."""
    framer = AmiFramer()
    out = []
    for t, data in load_chunks(DATA / f"{name}.ami"):
        out.extend((t, m) for m in framer.feed(data) if m.event)
    return out


def rewrite(msgs: list[tuple[float, AmiMessage]], tag: str, shift: float = 0.0) -> Any:
    """A copy with every Uniqueid/Linkedid made unique by ``tag`` and times shifted."""

    def fix(value: str) -> str:
        return _UID.sub(lambda m: f"{m.group(1)}{tag}", value)

    return [(t + shift, AmiMessage(tuple((k, fix(v)) for k, v in m.headers))) for t, m in msgs]


def to_chunks(
    msgs: list[tuple[float, AmiMessage]], seed: int, banner: bool = True
) -> list[tuple[float, bytes]]:
    """Serialise in time order and cut at random places (like TCP does)."""
    rng = random.Random(seed)
    msgs = sorted(msgs, key=lambda x: x[0])
    out: list[tuple[float, bytes]] = [(0.0, BANNER)] if banner else []
    for t, m in msgs:
        raw = m.to_bytes()
        cut = rng.randint(0, len(raw))
        out.append((t, raw[:cut]))
        out.append((t, raw[cut:]))
    return out


def with_event(m: AmiMessage, name: str, **changes: str) -> AmiMessage:
    headers = [(k, changes.pop(k, v)) if k != "Event" else ("Event", name) for k, v in m.headers]
    headers.extend(changes.items())
    return AmiMessage(tuple(headers))


def test_twenty_calls_interleaved() -> None:
    names = sorted(TRUTH)
    composed: list[tuple[float, AmiMessage]] = []
    expected: dict[str, Truth] = {}
    for k in range(20):
        name = names[k % len(names)]
        tag = f"x{k}"
        composed += rewrite(messages(name), tag, shift=k * 0.31)
        expected[tag] = TRUTH[name]
    tracker = CallTracker()
    result = replay(to_chunks(composed, seed=20), PBX, START, tracker)
    assert result.errors == []
    ends = ended(result.events)
    assert len(ends) == 20
    for end in ends:
        tag = end.conversation_id.rsplit("x", 1)[1]
        check(expected["x" + tag], end, tag="x" + tag)
    assert tracker.stats()["conversations"] == 0 and tracker.stats()["leg_index"] == 0


def test_two_pbxs_with_the_same_ids_at_once() -> None:
    tracker = CallTracker()
    chunks = load_chunks(DATA / "queue_call.ami")
    other = AmiPbxSettings(name="branch")
    a = replay(chunks, PBX, START, tracker)
    b = replay(chunks, other, START, tracker)
    (end_a,), (end_b,) = ended(a.events), ended(b.events)
    assert (end_a.pbx, end_b.pbx) == ("office", "branch")
    assert end_a.conversation_id == end_b.conversation_id
    check(TRUTH["queue_call"], end_a)
    check(TRUTH["queue_call"], end_b)


def test_two_pbxs_interleaved_in_one_tracker() -> None:
    tracker = CallTracker()
    from connector.adapters.ami_observations import AmiTranslator

    translators = {"office": AmiTranslator(PBX), "branch": AmiTranslator(AmiPbxSettings("branch"))}
    streams = {
        "office": messages("inbound_answered"),
        "branch": rewrite(messages("inbound_answered"), "", shift=0.5),
    }
    merged = sorted(
        ((t, pbx, m) for pbx, msgs in streams.items() for t, m in msgs), key=lambda x: x[0]
    )
    events: list[CallEvent] = []
    for t, pbx, m in merged:
        now = START + timedelta(seconds=t)
        for obs in translators[pbx].translate(m, now):
            events.extend(tracker.handle(obs, now))
    ends = ended(events)
    assert sorted(e.pbx for e in ends) == ["branch", "office"]
    for end in ends:
        check(TRUTH["inbound_answered"], end)


def test_queue_call_nobody_answers() -> None:
    src = messages("queue_call")
    answer_t = next(t for t, m in src if m.event == "DialEnd" and m.get("DialStatus") == "ANSWER")
    composed = [(t, m) for t, m in src if t < answer_t and m.event != "Hangup"]
    dial_ends = {
        m.get("DestUniqueid"): m
        for t, m in src
        if m.event == "DialEnd" and m.get("Channel") and m.get("DestUniqueid")
    }
    end_t = answer_t + 15.0  # the queue rang everyone for 15 s more
    for m in dial_ends.values():
        composed.append((end_t, with_event(m, "DialEnd", DialStatus="NOANSWER")))
        composed.append((end_t + 0.1, with_event(m, "DialEnd", DialStatus="CANCEL")))
    leave = next(m for t, m in src if m.event == "QueueCallerLeave")
    composed.append((end_t + 0.2, with_event(leave, "QueueCallerAbandon")))
    for _, m in src:
        if m.event == "Newchannel":
            composed.append((end_t + 0.3, with_event(m, "Hangup", Cause="19")))
    result = replay(to_chunks(composed, seed=3), PBX, START)
    assert not [e for e in result.events if isinstance(e, CallAnswered | CallClaimed)]
    assert [e.extension for e in result.events if isinstance(e, CallRinging)] == ["201", "202"]
    (end,) = ended(result.events)
    assert (end.outcome.value, end.rang, end.answered_by) == ("no_answer", ("201", "202"), "")
    assert end.recording == ""
    assert end.ring_seconds == pytest.approx(end_t - 0.504, abs=0.1)


def test_attended_transfer_composed_from_fact_15() -> None:
    """101 answers, consults 104 (Atxfer), 104 answers, 101 completes: 104 talks last."""
    src = messages("transfer")
    answered_t = 2.6
    head = [(t, m) for t, m in src if t < answered_t and m.event != "Hangup"]
    agent = next(m for t, m in src if m.event == "BridgeEnter" and "101@agents" in m.get("Channel"))
    trunk = next(m for t, m in src if m.event == "BridgeEnter" and "from-trunk" in m.get("Channel"))
    linked = agent.get("Linkedid")
    snap = {k: v for k, v in agent.headers if k not in ("Event", "Privilege") and "Bridge" not in k}
    t104 = {
        "Channel": "Local/104@agents-00000010;1",
        "ChannelState": "0",
        "CallerIDNum": "104",
        "CallerIDName": "<unknown>",
        "ConnectedLineNum": "101",
        "Context": "agents",
        "Exten": "104",
        "Priority": "1",
        "Uniqueid": "1795900999.50",
        "Linkedid": linked,
    }
    t104b = dict(t104, Channel="Local/104@agents-00000010;2", Uniqueid="1795900999.51")

    def ev(name: str, *parts: dict[str, str], **extra: str) -> AmiMessage:
        headers: list[tuple[str, str]] = [("Event", name), ("Privilege", "call,all")]
        for part in parts:
            headers += list(part.items())
        headers += list(extra.items())
        return AmiMessage(tuple(headers))

    def pref(prefix: str, d: dict[str, str]) -> dict[str, str]:
        return {prefix + k: v for k, v in d.items()}

    t = 4.0
    tail = [
        (t, ev("DTMFBegin", snap, Digit="*", Direction="Received")),
        (t, ev("Hold", pref("", {k: v for k, v in trunk.headers if k == "Uniqueid"}), snap)),
        (t + 0.1, ev("Newchannel", t104)),
        (t + 0.1, ev("Newchannel", t104b)),
        (t + 0.1, ev("LocalBridge", pref("LocalOne", t104), pref("LocalTwo", t104b))),
        (t + 0.1, ev("DialBegin", snap, pref("Dest", t104), DialString="104@agents")),
        (t + 0.2, ev("DialState", snap, pref("Dest", t104), DialStatus="RINGING")),
        (t + 2.2, ev("DialEnd", pref("Dest", t104), DialStatus="ANSWER")),
        (t + 2.2, ev("BridgeEnter", t104, BridgeUniqueid="consult")),
        (t + 5.0, ev("BridgeMerge", {"ToBridgeUniqueid": "consult"})),
        (
            t + 5.0,
            ev(
                "AttendedTransfer",
                {"Result": "Success", "DestType": "Bridge"},
                pref("OrigTransferer", snap),
                pref("SecondTransferer", dict(snap, Uniqueid="1795900941.29")),
                pref("TransferTarget", t104),
                pref(
                    "Transferee", {k: v for k, v in trunk.headers if k in ("Uniqueid", "Linkedid")}
                ),
            ),
        ),
        (t + 5.1, with_event(agent, "Hangup", Cause="16")),
    ]
    for _, m in src:
        if m.event == "Newchannel" and "104@agents" not in m.get("Channel"):
            if "101@agents" in m.get("Channel") and m.get("Channel").endswith(";1"):
                continue  # already hung up above
            tail.append((t + 15.0, with_event(m, "Hangup", Cause="16")))
    tail.append((t + 15.0, ev("Hangup", t104, Cause="16")))
    tail.append((t + 15.0, ev("Hangup", t104b, Cause="16")))
    result = replay(to_chunks(head + tail, seed=15), PBX, START)
    assert result.errors == []
    (xfer,) = [e for e in result.events if isinstance(e, CallTransferred)]
    assert (xfer.kind, xfer.from_extension, xfer.to_extension) == (
        TransferKind.ATTENDED,
        "101",
        "104",
    )
    (end,) = ended(result.events)
    assert (end.outcome.value, end.answered_by, end.talked_last) == ("answered", "101", "104")
    assert end.rang == ("101", "104") and end.transfers == (("101", "104"),)
    assert end.recording.endswith("-1795900941.27.wav")


def test_pbx_restart_mid_call_resync_ends_the_vanished_call() -> None:
    src = messages("inbound_answered")
    bridged = next(t for t, m in src if m.event == "BridgeEnter")
    head = [(t, m) for t, m in src if t <= bridged]
    shutdown = AmiMessage.of(("Event", "Shutdown"), Shutdown="Cleanly", Restart="True")
    tracker = CallTracker()
    result = replay(to_chunks(head + [(bridged + 1.0, shutdown)], seed=5), PBX, START, tracker)
    assert not ended(result.events)
    (call,) = tracker.active_calls("office")
    assert call.state.value == "talking" and call.answered_by == "101"
    # the PBX came back with nothing up
    after = replay(load_chunks(DATA / "reconnect_after.ami"), PBX, START, tracker)
    assert after.events == []
    events = tracker.resync("office", [], START + timedelta(seconds=bridged + 3.3))
    (end,) = ended(events)
    assert (end.outcome.value, end.answered_by) == ("answered", "101")
    assert end.talk_seconds == pytest.approx(bridged + 3.3 - 2.508, abs=0.1)
    assert tracker.active_calls() == [] and tracker.stats()["leg_index"] == 0


def test_daemon_restart_adopts_calls_still_up() -> None:
    """A fresh tracker learns a live call from CoreShowChannel items and ends it later."""
    src = messages("inbound_answered")
    bridged = next(t for t, m in src if m.event == "BridgeEnter")
    snapshot: dict[str, AmiMessage] = {}
    for t, m in src:
        if t <= bridged + 0.01 and m.get("Uniqueid") and m.event not in ("CEL", "Cdr"):
            snapshot[m.get("Uniqueid")] = with_event(m, "CoreShowChannel", ChannelState="6")
    tracker = CallTracker()
    adopted = replay(
        to_chunks([(0.0, m) for m in snapshot.values()], seed=1, banner=False), PBX, START, tracker
    )
    assert adopted.events == []
    assert tracker.resync("office", list(snapshot), START) == []
    (call,) = tracker.active_calls()
    assert call.answered_by == "101" and call.state.value == "talking"
    tail = [(t, m) for t, m in src if m.event == "Hangup"]
    rest = replay(to_chunks(tail, seed=2, banner=False), PBX, START, tracker)
    (end,) = ended(rest.events)
    assert (end.outcome.value, end.answered_by, end.direction.value) == (
        "answered",
        "101",
        "inbound",
    )
    assert tracker.size() == 0


def test_garbage_on_the_wire_is_counted_and_the_next_call_tracked() -> None:
    rng = random.Random(99)
    garbage: list[tuple[float, bytes]] = [(0.0, BANNER)]
    garbage += [(0.0, rng.randbytes(2000)) for _ in range(20)]
    garbage.append((0.0, b"\r\n\r\n"))
    garbage.append((0.0, b"Event: DialBegin\r\nDestUniqueid: 1.1\r\n"))  # cut short
    garbage.append((0.0, b"Event: Huge\r\nData: " + b"z" * 10_000_000 + b"\r\n\r\n"))
    garbage.append((0.0, b"Event: Newchannel\r\nCallerIDName: \xc0\xaf\r\n\r\n"))
    call = load_chunks(DATA / "queue_call.ami")
    # the next call arrives with the Cyrillic name split across reads
    body = b"".join(data for _, data in call)[len(BANNER) :]
    cut = body.index("Ромашка".encode()) + 1
    chunks = garbage + [(0.0, body[:cut]), (0.5, body[cut:])]
    tracker = CallTracker()
    result = replay(chunks, PBX, START, tracker)
    kinds = {type(e) for e in result.errors}
    assert {AmiMessageTooLarge, AmiDecodeError, AmiTruncatedMessage} <= kinds
    (end,) = ended(result.events)
    check(TRUTH["queue_call"], end, timing=False)
    assert end.caller.name == "ООО Ромашка"


def test_no_leak_after_many_calls() -> None:
    tracker = CallTracker(tombstone_seconds=60)
    names = sorted(TRUTH)
    composed: list[tuple[float, AmiMessage]] = []
    for k in range(200):
        composed += rewrite(messages(names[k % len(names)]), f"n{k}", shift=k * 2.0)
    result = replay(to_chunks(composed, seed=200), PBX, START, tracker)
    assert len(ended(result.events)) == 200
    stats = tracker.stats()
    assert stats["conversations"] == stats["legs"] == stats["channels"] == 0
    assert stats["leg_index"] == stats["aliases"] == 0
    assert stats["tombstones"] <= 60  # only the last minute of calls is remembered
