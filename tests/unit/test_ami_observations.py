"""AMI translator on production-shaped traffic (PJSIP phones and trunks, FreePBX queues)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.adapters.ami_codec import AmiMessage
from connector.adapters.ami_observations import AmiTranslator, channel_extension, clean_number
from connector.calls import CallTracker
from connector.config import AmiPbxSettings
from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallEvent,
    CallRinging,
    ChannelSeen,
    Direction,
    LegRinging,
    OriginateResult,
    Outcome,
)

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
PBX = AmiPbxSettings(name="pbx")


@pytest.mark.parametrize(
    ("channel", "ext"),
    [
        ("PJSIP/101-0000002a", "101"),
        ("Local/101@agents-00000001;1", "101"),
        ("Local/101@from-queue-0000a1b2;2", "101"),
        ("PJSIP/101", "101"),
        ("Local/102@agents", "102"),
        ("SIP/trunk-0000001f", "trunk"),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_channel_extension(channel: str, ext: str) -> None:
    assert channel_extension(channel) == ext


def test_clean_number() -> None:
    assert clean_number("<unknown>") == clean_number("anonymous") == ""
    assert clean_number(" +79161234567 ") == "+79161234567"


def chan(
    prefix: str, channel: str, uid: str, linked: str, ctx: str, **extra: str
) -> list[tuple[str, str]]:
    base = {
        "Channel": channel,
        "ChannelState": "4",
        "CallerIDNum": extra.pop("num", "<unknown>"),
        "CallerIDName": extra.pop("name", "<unknown>"),
        "ConnectedLineNum": "<unknown>",
        "Context": ctx,
        "Exten": extra.pop("exten", "s"),
        "Uniqueid": uid,
        "Linkedid": linked,
    }
    return [(prefix + k, v) for k, v in base.items()] + list(extra.items())


def ev(name: str, *parts: list[tuple[str, str]], **headers: str) -> AmiMessage:
    out = [("Event", name), ("Privilege", "call,all")]
    for part in parts:
        out += part
    out += list(headers.items())
    return AmiMessage(tuple(out))


class Pbx:
    """Translator + tracker, fed message by message with a clock that moves one second each."""

    def __init__(self) -> None:
        self.translator = AmiTranslator(PBX)
        self.tracker = CallTracker()
        self.t = 0
        self.events: list[CallEvent] = []

    def feed(self, *msgs: AmiMessage) -> list[CallEvent]:
        out: list[CallEvent] = []
        for msg in msgs:
            self.t += 1
            now = T0 + timedelta(seconds=self.t)
            for obs in self.translator.translate(msg, now):
                out += self.tracker.handle(obs, now)
        self.events += out
        return out


TRUNK = ("PJSIP/trunk-00000001", "100.1", "100.1", "from-trunk")


def trunk(**kw: str) -> list[tuple[str, str]]:
    kw.setdefault("num", "+79161234567")
    kw.setdefault("name", "Иван")
    kw.setdefault("exten", "74951234500")
    return chan("", *TRUNK, **kw)


def phone(
    ext: str, uid: str, linked: str = "100.1", ctx: str = "from-internal"
) -> list[tuple[str, str]]:
    return chan("Dest", f"PJSIP/{ext}-0000000{uid[-1]}", uid, linked, ctx, exten=ext)


def test_inbound_ring_all_on_pjsip() -> None:
    pbx = Pbx()
    pbx.feed(ev("Newchannel", trunk()))
    ringing = pbx.feed(
        ev("DialBegin", trunk(), phone("101", "100.2"), DialString="PJSIP/101&PJSIP/102"),
        ev("DialBegin", trunk(), phone("102", "100.3")),
        ev("DialState", trunk(), phone("102", "100.3"), DialStatus="RINGING"),
    )
    assert [(e.extension, e.direction) for e in ringing if isinstance(e, CallRinging)] == [
        ("101", Direction.INBOUND),
        ("102", Direction.INBOUND),
    ]
    assert ringing[0].caller.number == "+79161234567" and ringing[0].caller.name == "Иван"
    answer = pbx.feed(
        ev("DialEnd", trunk(), phone("102", "100.3"), DialStatus="ANSWER"),
        ev("DialEnd", trunk(), phone("101", "100.2"), DialStatus="CANCEL"),
    )
    assert [type(e) for e in answer] == [CallAnswered, CallClaimed]
    end = pbx.feed(
        ev("Hangup", chan("", "PJSIP/101-00000002", "100.2", "100.1", "from-internal"), Cause="26"),
        ev("Hangup", chan("", "PJSIP/102-00000003", "100.3", "100.1", "from-internal"), Cause="16"),
        ev("Hangup", trunk(), Cause="16"),
    )
    (ended,) = end
    assert isinstance(ended, CallEnded)
    assert (ended.outcome, ended.answered_by, ended.rang) == (
        Outcome.ANSWERED,
        "102",
        ("101", "102"),
    )


def test_outbound_from_a_phone_through_the_trunk() -> None:
    pbx = Pbx()
    me = chan(
        "", "PJSIP/101-00000009", "200.1", "200.1", "from-internal", num="101", exten="89161234567"
    )
    out = chan("Dest", "PJSIP/trunk-0000000a", "200.2", "200.1", "from-trunk", exten="s")
    pbx.feed(ev("Newchannel", me), ev("DialBegin", me, out))
    pbx.feed(ev("DialEnd", me, out, DialStatus="BUSY"))
    (ended,) = pbx.feed(
        ev("Hangup", chan("", "PJSIP/trunk-0000000a", "200.2", "200.1", "from-trunk"), Cause="17"),
        ev("Hangup", me, Cause="16"),
    )
    assert isinstance(ended, CallEnded)
    assert (ended.direction, ended.outcome) == (Direction.OUTBOUND, Outcome.BUSY)
    assert ended.callee.number == "89161234567" and ended.caller.number == "101"
    assert not [e for e in pbx.events if isinstance(e, CallRinging)]  # nobody of ours rang


def test_freepbx_queue_local_member_collapses_with_its_phone() -> None:
    pbx = Pbx()
    pbx.feed(ev("Newchannel", trunk()))
    l1 = chan(
        "Dest", "Local/101@from-queue-00000004;1", "100.4", "100.1", "from-queue", exten="101"
    )
    l2 = chan("", "Local/101@from-queue-00000004;2", "100.5", "100.1", "from-queue", exten="101")
    pbx.feed(
        ev(
            "LocalBridge",
            [("LocalOneUniqueid", "100.4"), ("LocalOneLinkedid", "100.1")],
            [("LocalTwoUniqueid", "100.5"), ("LocalTwoLinkedid", "100.1")],
        ),
        ev("AgentCalled", trunk(), l1, Queue="sales", Interface="Local/101@from-queue/n"),
        ev("DialBegin", trunk(), l1),
        ev("DialBegin", l2, phone("101", "100.6")),
        ev("DialState", l2, phone("101", "100.6"), DialStatus="RINGING"),
    )
    ringing = [e for e in pbx.events if isinstance(e, CallRinging)]
    assert [(e.extension, e.leg_id, e.queue) for e in ringing] == [("101", "100.4", "sales")]
    answered = pbx.feed(
        ev("DialEnd", l2, phone("101", "100.6"), DialStatus="ANSWER"),
        ev("DialEnd", trunk(), l1, DialStatus="ANSWER"),
        ev("AgentConnect", trunk(), l1, Queue="sales"),
    )
    assert [(type(e), e.leg_id) for e in answered] == [(CallAnswered, "100.4")]


def test_times_come_from_the_event_when_present() -> None:
    tr = AmiTranslator(PBX)
    now = T0
    msg = ev("Newchannel", trunk(), Timestamp="1795900871.250000")
    (obs,) = tr.translate(msg, now)
    assert obs.at == datetime.fromtimestamp(1795900871.25, UTC)
    msg = ev("Newchannel", trunk(), EventTV="2026-11-28T21:21:11.234+0000")
    assert tr.translate(msg, now)[0].at == datetime(2026, 11, 28, 21, 21, 11, 234000, tzinfo=UTC)
    # CEL's EventTime has no zone: our clock is used instead
    msg = ev("Newchannel", trunk(), EventTime="2026-11-28 21:21:16")
    assert tr.translate(msg, now)[0].at == now


def test_originate_response_with_channel_id() -> None:
    tr = AmiTranslator(PBX)
    msg = AmiMessage.of(
        ("Event", "OriginateResponse"),
        ("Response", "Failure"),
        ("ActionID", "c2c-9"),
        ("Channel", "PJSIP/102"),
        ("Reason", "0"),
        ("Uniqueid", "call-9"),
    )
    (obs,) = tr.translate(msg, T0)
    assert isinstance(obs, OriginateResult)
    assert (obs.leg_id, obs.success, obs.reason, obs.extension, obs.action_id) == (
        "call-9",
        False,
        0,
        "102",
        "c2c-9",
    )
    unknown = AmiMessage.of(
        ("Event", "OriginateResponse"), ("Response", "Failure"), Uniqueid="<unknown>"
    )
    assert tr.translate(unknown, T0) == []
    # the agent's phone was unreachable: no channel ever existed, the call still ends
    (ended,) = CallTracker().handle(obs, T0)
    assert isinstance(ended, CallEnded)
    assert (ended.outcome, ended.failure, ended.conversation_id) == (
        Outcome.FAILED,
        "agent_failed",
        "call-9",
    )


def test_core_show_channel_is_an_adoption() -> None:
    tr = AmiTranslator(PBX)
    msg = ev(
        "CoreShowChannel",
        chan("", "PJSIP/101-0000002a", "300.2", "300.1", "from-internal", ChannelState="6"),
    )
    (obs,) = tr.translate(msg, T0)
    assert isinstance(obs, ChannelSeen) and obs.adopted and obs.extension == "101"


def test_noise_and_broken_events_translate_to_nothing() -> None:
    tr = AmiTranslator(PBX)
    assert tr.translate(AmiMessage.of(("Event", "VarSet"), Variable="X", Value="1"), T0) == []
    assert tr.translate(AmiMessage.of(("Response", "Success")), T0) == []
    assert tr.translate(AmiMessage.of(("Event", "DialBegin")), T0) == []
    assert tr.translate(
        AmiMessage.of(("Event", "Hangup"), Uniqueid="1", Linkedid="1", Cause="x"), T0
    )


def test_trunk_patterns_accept_globs() -> None:
    tr = AmiTranslator(AmiPbxSettings(name="p", trunk_patterns=("PJSIP/provider-*", "SIP/trunk")))
    assert tr.is_trunk("PJSIP/provider-a-00000001")
    assert tr.is_trunk("SIP/trunk-00000001")
    assert not tr.is_trunk("PJSIP/101-00000001")


def test_dial_begin_from_originate_to_agent_is_an_originated_leg() -> None:
    tr = AmiTranslator(PBX)
    dest = chan("Dest", "PJSIP/101-0000000b", "c2c-1", "c2c-1", "from-internal")
    (obs,) = tr.translate(ev("DialBegin", dest, DestConnectedLineNum="89161234567"), T0)
    assert isinstance(obs, LegRinging)
    assert obs.originated and obs.extension == "101" and obs.direction is Direction.OUTBOUND


def test_internal_call_between_two_phones() -> None:
    pbx = Pbx()
    me = chan("", "PJSIP/101-00000011", "400.1", "400.1", "from-internal", num="101", exten="102")
    you = chan("Dest", "PJSIP/102-00000012", "400.2", "400.1", "from-internal", exten="102")
    ivr = chan("Dest", "Local/s@ivr-00000013;1", "400.3", "400.1", "ivr", exten="s")
    pbx.feed(ev("Newchannel", me), ev("DialBegin", me, ivr), ev("DialBegin", me, you))
    (ring,) = [e for e in pbx.events if isinstance(e, CallRinging)]
    assert (ring.extension, ring.direction, ring.caller.number) == (
        "102",
        Direction.INTERNAL,
        "101",
    )
    pbx.feed(ev("DialEnd", me, you, DialStatus="ANSWER"))
    (ended,) = pbx.feed(
        ev("Hangup", chan("", "PJSIP/102-00000012", "400.2", "400.1", "from-internal")),
        ev("Hangup", me),
    )
    assert isinstance(ended, CallEnded)
    assert (ended.direction, ended.outcome, ended.answered_by) == (
        Direction.INTERNAL,
        Outcome.ANSWERED,
        "102",
    )
