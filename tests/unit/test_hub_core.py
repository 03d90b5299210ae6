"""The hub's pure core: client message validation, streams, routing, replay and snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallRinging,
    CallTransferred,
    Direction,
    Outcome,
    Party,
)
from connector.hub_protocol import Ack, Ping, ProtocolError, Subscribe, parse_client_message
from connector.hub_state import HubState, Stream

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OWNERS = {"101": 1, "102": 2, "201": 3, "202": 4}
TEAMS = {1: "sales", 2: "support", 3: "sales", 4: "sales", 9: "sales", 10: ""}


def state(capacity: int = 100) -> HubState:
    return HubState(
        region="RU",
        capacity=capacity,
        user_of=lambda pbx, ext: OWNERS.get(ext),
        team_of=lambda uid: TEAMS.get(uid, ""),
        name_of=lambda uid: f"user{uid}",
    )


def base(conv: str, key: str) -> dict[str, object]:
    return {
        "key": key,
        "pbx": "p",
        "conversation_id": conv,
        "occurred_at": T0,
        "observed_at": T0,
    }


def ring(conv: str, ext: str, number: str = "89161234567") -> CallRinging:
    return CallRinging(
        **base(conv, f"r{ext}"),  # type: ignore[arg-type]
        extension=ext,
        direction=Direction.INBOUND,
        caller=Party(number, "Ivan"),
    )


# ---------------------------------------------------------------- protocol


def test_client_messages_parse() -> None:
    assert parse_client_message('{"type": "ping"}', 100) == Ping()
    assert parse_client_message('{"type": "ack", "seq": 5}', 100) == Ack(5)
    assert parse_client_message(
        '{"type": "subscribe", "scope": "team", "last_seq": 3, "epoch": "e"}', 200
    ) == Subscribe("team", 3, "e")


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("x" * 101, "too_large", "101 bytes"),
        ("é" * 60, "too_large", "120 bytes"),
        ("{", "malformed", "not valid JSON"),
        ("[" * 5000 + "]" * 5000, "too_large", "bytes"),
        ("null", "malformed", "JSON object"),
        ('{"seq": 1}', "malformed", "'type'"),
        ('{"type": "x"}', "unknown_type", "'x'"),
        ('{"type": "ack"}', "malformed", "required"),
        ('{"type": "ack", "seq": true}', "malformed", "non-negative"),
        ('{"type": "subscribe", "scope": "own", "epoch": 3}', "malformed", "epoch"),
        (b"{}", "malformed", "binary"),
    ],
)
def test_bad_client_messages_are_named(raw: str | bytes, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_client_message(raw, 100)
    assert exc.value.code == code and words in exc.value.message


def test_deep_nesting_within_the_limit_is_refused_cleanly() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_client_message("[" * 20000 + "]" * 20000, 100_000)
    assert exc.value.code == "malformed"


# ---------------------------------------------------------------- streams


def test_stream_numbers_keeps_the_tail_and_says_when_a_cursor_is_too_old() -> None:
    s = Stream(capacity=3)
    for i in range(5):
        assert s.append({"n": i})["seq"] == i + 1
    assert [m["n"] for m in s.since(2) or []] == [2, 3, 4]
    assert s.since(5) == []
    assert s.since(1) is None  # seq 2 fell out of the buffer
    assert s.since(9) is None  # from the future: another server


# ---------------------------------------------------------------- routing


def test_each_agent_gets_only_own_calls_and_the_team_stream_gets_the_team() -> None:
    st = state()
    st.stream((9, "team"))  # a sales supervisor subscribed
    st.stream((10, "all"))  # an admin subscribed
    out = st.handle(ring("c1", "101"), T0) + st.handle(ring("c2", "102"), T0)
    got = [(key, msg["conversation"]) for key, msg in out]
    assert got == [
        ((1, "own"), "p/c1"),
        ((9, "team"), "p/c1"),
        ((10, "all"), "p/c1"),
        ((2, "own"), "p/c2"),
        ((10, "all"), "p/c2"),
    ]
    pop = out[0][1]
    assert pop["number"] == {
        "raw": "89161234567",
        "e164": "+79161234567",
        "display": "+7 916 123-45-67",
        "hidden": False,
        "name": "Ivan",
    }
    assert pop["card_pending"] and pop["pbx_time"] == T0.isoformat()


def test_queue_call_claim_closes_for_the_colleague_and_snapshots_follow() -> None:
    st = state()
    st.handle(ring("q", "201"), T0)
    st.handle(ring("q", "202"), T0)
    answer = st.handle(
        CallAnswered(**base("q", "a"), extension="202"),  # type: ignore[arg-type]
        T0,
    )
    assert sorted(k for k, _ in answer) == [(3, "own"), (4, "own")]
    claim = st.handle(
        CallClaimed(**base("q", "c"), extension="201", claimed_by_extension="202"),  # type: ignore[arg-type]
        T0,
    )
    assert [k for k, _ in claim] == [(3, "own")]
    assert claim[0][1]["claimed_by"] == {"extension": "202", "user_id": 4, "name": "user4"}
    assert st.snapshot((3, "own")) == []
    assert [c["state"] for c in st.snapshot((4, "own"))] == ["talking"]
    ended = st.handle(
        CallEnded(  # type: ignore[arg-type]
            **base("q", "e"), outcome=Outcome.ANSWERED, rang=("201", "202"), answered_by="202"
        ),
        T0,
    )
    assert sorted(k for k, _ in ended) == [(3, "own"), (4, "own")]
    assert st.calls == {} and st.snapshot((4, "own")) == []


def test_transfer_moves_the_card_with_history_and_late_card_follows_the_pop() -> None:
    st = state()
    st.handle(ring("t", "101"), T0)
    st.handle(CallAnswered(**base("t", "a"), extension="101"), T0)  # type: ignore[arg-type]
    moved = st.handle(
        CallTransferred(  # type: ignore[arg-type]
            **base("t", "x"), from_extension="101", to_extension="201"
        ),
        T0,
    )
    to_new = dict(moved)[(3, "own")]
    assert [h["type"] for h in to_new["history"]] == [
        "call.ringing",
        "call.answered",
        "call.transferred",
    ]
    cards = st.card_ready("p/t", {"status": "known"})
    assert [k for k, _ in cards] == [(3, "own")]  # 101 handed it over: the card is not theirs
    assert cards[0][1]["seq"] == to_new["seq"] + 1
    assert st.snapshot((3, "own"))[0]["card"] == {"status": "known"}


def test_replay_resync_reasons_and_stale_calls_are_forgotten() -> None:
    st = state(capacity=2)
    for i in range(4):
        st.handle(ring(f"c{i}", "101"), T0)
    assert st.replay((1, "own"), None, True).messages == []
    assert [m["seq"] for m in st.replay((1, "own"), 2, True).messages] == [3, 4]
    assert "too old" in (st.replay((1, "own"), 1, True).resync or "")
    assert "restarted" in (st.replay((1, "own"), 3, False).resync or "")
    st.handle(ring("late", "102"), T0 + timedelta(hours=5))
    assert list(st.calls) == ["p/late"]


def test_replay_buffers_keep_no_cards_and_replay_puts_back_the_card_of_a_live_call() -> None:
    st = state()
    card = {"status": "known", "primary": {"name": "Ivan Petrov"}}
    st.handle(ring("done", "101"), T0)
    st.card_ready("p/done", card)
    st.handle(ring("live", "101"), T0)  # the card of "live" is built now, "done" ends
    st.card_ready("p/live", card)
    st.handle(CallEnded(**base("done", "e"), outcome=Outcome.ANSWERED), T0)  # type: ignore[arg-type]
    buffered = st.stream((1, "own")).buffer
    assert all(m["card"] is None for m in buffered if "card" in m)  # nothing keeps cards alive
    replayed = st.replay((1, "own"), 0, True).messages
    by_conv = [(m["conversation"], m["type"], m.get("card")) for m in replayed]
    assert ("p/live", "card", card) in by_conv  # still ringing: the card comes back
    assert ("p/done", "card", None) in by_conv  # over: no card to keep or send
    assert all("_card_left_out" not in m for m in replayed)


def test_calls_in_progress_from_the_tracker_are_adopted_once() -> None:
    from connector.calls import ActiveCall, ActiveLeg, CallState

    def leg(ext: str, leg_state: str) -> ActiveLeg:
        return ActiveLeg(f"l{ext}", ext, None, False, leg_state, T0)

    up = ActiveCall(
        pbx="p",
        conversation_id="q",
        state=CallState.RINGING,
        direction=Direction.INBOUND,
        caller=Party("74951234567", "ООО Ромашка"),
        callee=Party("74951234510"),
        did="74951234510",
        queue="support",
        started_at=T0,
        answered_at=None,
        answered_by="",
        talked_last="",
        rang=("201", "202"),
        legs=(leg("201", "ringing"), leg("202", "answered"), leg("999", "ringing")),
    )
    st = state()
    assert st.adopt([up], T0) == ["p/q"]
    assert st.adopt([up], T0) == []
    assert st.snapshot((3, "own"))[0]["number"]["e164"] == "+74951234567"
    assert st.calls["p/q"].user_state == {3: "ringing", 4: "talking"}
    cards = st.card_ready("p/q", {"status": "multiple"})
    assert sorted(k for k, _ in cards) == [(3, "own"), (4, "own")]
