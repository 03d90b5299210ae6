"""Pure pieces of the call log: columns of an ended call, participants, callback keys, the
fallback chain, statistics, the hourly chart and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from connector.config import CallLogSettings
from connector.events.model import CallEnded, Direction, Outcome, Party
from crm_sync.callbacks import number_key
from crm_sync.calllog import (
    call_columns,
    creates_contact,
    customer_number,
    participant_ids,
    summary,
)
from crm_sync.calllog_query import agent_stats, hourly, to_csv
from crm_sync.routing import Candidate, choose

T0 = datetime(2026, 11, 28, 21, 22, 21, tzinfo=UTC)
USERS = {"101": 1, "104": 4, "102": 2}


def user_of(pbx: str, ext: str) -> int | None:
    return USERS.get(ext) if pbx == "pbx1" else None


def transfer_call() -> CallEnded:
    """The transfer row of the truth table, as the tracker reports it."""
    return CallEnded(
        key="call.ended:pbx1:1795900941.26",
        pbx="pbx1",
        conversation_id="1795900941.26",
        occurred_at=T0 + timedelta(seconds=14),
        observed_at=T0 + timedelta(seconds=14),
        direction=Direction.INBOUND,
        outcome=Outcome.ANSWERED,
        caller=Party("+79031112233", "Petr Sidorov"),
        callee=Party("74951234500"),
        did="74951234500",
        rang=("101", "104"),
        answered_by="101",
        talked_last="104",
        transfers=(("101", "104"),),
        started_at=T0,
        answered_at=T0 + timedelta(seconds=2),
        ended_at=T0 + timedelta(seconds=14),
        ring_seconds=2.004,
        talk_seconds=12.002,
        recording="/srv/pbx/recordings/in-20261128-212221-1795900941.27.wav",
    )


def test_calllog_columns_of_a_transferred_call() -> None:
    cols = call_columns(transfer_call(), region="RU", user_of=user_of, now=T0)
    assert cols["direction"] == "inbound" and cols["outcome"] == "answered"
    assert cols["caller_e164"] == "+79031112233" and cols["caller_name"] == "Petr Sidorov"
    assert cols["callee_raw"] == "74951234500" and cols["did"] == "74951234500"
    assert cols["agents"] == ["101", "104"] and cols["transfers"] == [["101", "104"]]
    assert cols["answered_by_user_id"] == 1 and cols["user_id"] == 1
    assert cols["talked_last"] == "104" and cols["queue"] is None
    assert cols["ring_seconds"] == 2.004 and cols["talk_seconds"] == 12.002
    assert cols["recording_ref"].endswith("1795900941.27.wav")
    assert "transferred to 104" in cols["body"]


def test_calllog_participants_and_customer() -> None:
    call = transfer_call()
    assert participant_ids(call, user_of) == [1, 4]
    assert customer_number(call) == "+79031112233"
    out = CallEnded(
        key="k",
        pbx="pbx1",
        conversation_id="c",
        occurred_at=T0,
        observed_at=T0,
        direction=Direction.OUTBOUND,
        outcome=Outcome.ABANDONED,
        caller=Party("102"),
        callee=Party("+79161234567"),
        rang=("102",),
    )
    assert customer_number(out) == "+79161234567"
    assert participant_ids(out, user_of) == [2]
    cols = call_columns(out, region="RU", user_of=user_of, now=T0)
    assert cols["user_id"] == 2 and cols["answered_by_user_id"] is None
    assert summary(out) == "Outbound call to +79161234567, caller hung up while ringing"


def test_calllog_hidden_numbers_have_no_key() -> None:
    assert number_key("anonymous", None) is None
    assert number_key("", None) is None
    assert number_key("<unknown>", None) is None
    assert number_key("89161234567", "+79161234567") == "+79161234567"
    # no E.164 form (a short or odd number): its digits, so repeats fold and close
    assert number_key("0123", None) == "0123"
    assert number_key("*01-23", None) == "0123"
    assert number_key("1" * 21, None) is None  # too long for a number: a task, but no key


def test_calllog_chain_skips_nobody_and_unusable() -> None:
    cands = {
        "responsible": Candidate("responsible", 7, "contact 1"),
        "last_agent": Candidate("last_agent", None),
        "team": Candidate("team", 9, "sales"),
        "default_user": Candidate("default_user", 10, "duty"),
    }
    chain = ("responsible", "last_agent", "team", "default_user")
    pick = choose(chain, cands, lambda uid: "is not active" if uid == 7 else None)
    assert (pick.user_id, pick.step) == (9, "team")
    assert "responsible: user 7 is not active" in pick.reason
    assert "last_agent: nobody" in pick.reason
    assert choose(chain, cands, lambda uid: None).user_id == 7
    none = choose(("last_agent",), cands, lambda uid: None)
    assert none.user_id is None and none.step is None
    assert choose((), cands, lambda uid: None).reason == "empty chain"


def row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "direction": "inbound",
        "outcome": "answered",
        "answered_by_user_id": None,
        "user_id": None,
        "ring_seconds": 2.0,
        "talk_seconds": 0.0,
        "participant_ids": [],
        "started_at": "2026-11-28T21:00:00+00:00",
    }
    base.update(kw)
    return base


def test_calllog_agent_stats() -> None:
    calls = [
        row(answered_by_user_id=1, user_id=1, talk_seconds=30.0, participant_ids=[1]),
        row(outcome="no_answer", ring_seconds=8.0, participant_ids=[1, 2]),
        row(outcome="abandoned", ring_seconds=5.0, participant_ids=[2]),
        row(direction="outbound", user_id=1, talk_seconds=10.0, participant_ids=[1]),
        row(answered_by_user_id=3, participant_ids=[3]),  # not reported
    ]
    stats = {
        a["user_id"]: a
        for a in agent_stats(
            calls, [(1, "open"), (1, "done"), (2, "done"), (None, "open")], {1: "Anna", 2: "Boris"}
        )
    }
    anna, boris = stats[1], stats[2]
    assert (anna["calls_in"], anna["calls_out"], anna["answered"]) == (2, 1, 2)
    assert (anna["missed"], anna["abandoned"]) == (1, 0)
    assert anna["avg_ring_seconds"] == 5.0 and anna["avg_talk_seconds"] == 20.0
    assert (anna["callbacks_pending"], anna["callbacks_done"]) == (1, 1)
    assert (boris["calls_in"], boris["missed"], boris["abandoned"]) == (2, 1, 1)
    assert boris["avg_talk_seconds"] == 0.0 and boris["callbacks_done"] == 1
    assert 3 not in stats


def test_calllog_hourly_with_offset() -> None:
    calls = [
        row(),
        row(outcome="busy"),
        row(direction="outbound"),
        row(started_at="2026-11-28T23:30:00+00:00"),
        row(started_at=None),
    ]
    hours = hourly(calls, offset_minutes=180)  # Moscow
    assert hours[0] == {"hour": 0, "answered": 1, "missed": 1, "outbound": 1}
    assert hours[2] == {"hour": 2, "answered": 1, "missed": 0, "outbound": 0}
    assert sum(h["answered"] for h in hours) == 2


def test_calllog_csv_neutralises_formulas_but_keeps_numbers() -> None:
    text = to_csv(
        [
            {
                "id": 1,
                "caller": "+79161234567",
                "caller_name": '=HYPERLINK("x")',
                "agents": ["101", "104"],
                "ring_seconds": 2.5,
            },
            {"id": 2, "caller": "@evil", "caller_name": "-1+2"},
        ]
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["caller"] == "+79161234567" and rows[0]["agents"] == "101 104"
    assert rows[0]["caller_name"].startswith("'=")
    assert rows[1]["caller"] == "'@evil" and rows[1]["caller_name"] == "'-1+2"


def test_calllog_contact_creation_per_direction_and_line() -> None:
    call = transfer_call()  # inbound on line 74951234500
    assert not creates_contact(CallLogSettings(), call)
    assert creates_contact(CallLogSettings(create_contacts_inbound=True), call)
    assert not creates_contact(CallLogSettings(create_contacts_outbound=True), call)
    on_line = CallLogSettings(create_contacts_inbound=True, create_contacts_lines=("74951234500",))
    other_line = CallLogSettings(create_contacts_inbound=True, create_contacts_lines=("7495999",))
    assert creates_contact(on_line, call) and not creates_contact(other_line, call)
