"""Pure click-to-call rules: dialled numbers, the line to call from, status transitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.adapters.ami import reconnect_delay
from connector.clicktocall import InvalidNumber, NoLine, choose_line, dial_number, next_status
from connector.config import DialRule
from connector.events.model import CallAnswered, CallEnded, CallRinging, Outcome

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RU = (
    DialRule(match=r"^\+7", strip=2, prepend="8"),
    DialRule(match=r"^\+", strip=1, prepend="810"),
)


@pytest.mark.parametrize(
    ("raw", "rules", "dialled"),
    [
        ("+7 (916) 123-45-67", RU, "89161234567"),
        ("8 916 123 45 67", RU, "89161234567"),
        ("+49 30 1234567", RU, "81049301234567"),
        ("101", RU, "101"),
        ("*97", (), "*97"),
        ("+79161234567", (), "+79161234567"),
        ("9161234567", (DialRule(match=r"^9\d{9}$", prepend="8"),), "89161234567"),
    ],
)
def test_dial_number_applies_the_first_matching_rule(
    raw: str, rules: tuple[DialRule, ...], dialled: str
) -> None:
    assert dial_number(raw, rules) == dialled


@pytest.mark.parametrize(
    "raw", ["", "   ", "+", "call me", "12a4", "1" * 21, "+7\x00916", "+7:916"]
)
def test_dial_number_refuses_what_is_not_a_number(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        dial_number(raw, RU)


def test_choose_line_prefers_a_connected_pbx() -> None:
    exts = [("old", "200"), ("main", "101")]
    assert choose_line(exts, ["main"]) == ("main", "101")
    assert choose_line([("*", "101")], ["main"]) == ("main", "101")
    with pytest.raises(NoLine, match="no extension"):
        choose_line([], ["main"])
    with pytest.raises(NoLine, match="old"):
        choose_line([("old", "200")], ["main"])


def _ringing(leg: str) -> CallRinging:
    return CallRinging("k1", "main", "c1", T, T, leg_id=leg, extension="101")


def _ended(outcome: Outcome, failure: str = "", answered_by: str = "") -> CallEnded:
    return CallEnded(
        "k9", "main", "c1", T, T, outcome=outcome, failure=failure, answered_by=answered_by
    )


def test_next_status_follows_the_call_forward_only() -> None:
    assert next_status("requested", _ringing("c1"), "c1") == ("agent_ringing", "")
    assert next_status("requested", _ringing("other-leg"), "c1") is None
    answered = CallAnswered("k2", "main", "c1", T, T, leg_id="c1", extension="101")
    assert next_status("agent_ringing", answered, "c1") == ("agent_answered", "")
    remote = CallAnswered("k3", "main", "c1", T, T, remote=True)
    assert next_status("agent_answered", remote, "c1") == ("customer_answered", "")
    assert next_status("customer_answered", _ringing("c1"), "c1") is None  # never backwards
    done = _ended(Outcome.ANSWERED, answered_by="101")
    assert next_status("customer_answered", done, "c1") == ("completed", "")
    assert next_status("completed", _ended(Outcome.BUSY), "c1") is None  # terminal stays


def test_next_status_names_the_failure() -> None:
    no_answer = _ended(Outcome.ABANDONED, failure="agent_no_answer")
    assert next_status("agent_ringing", no_answer, "c1") == ("failed", "agent did not answer")
    busy = _ended(Outcome.BUSY, answered_by="101")
    assert next_status("agent_answered", busy, "c1") == ("failed", "customer is busy")
    assert next_status("agent_ringing", _ended(Outcome.NO_ANSWER), "c1") == (
        "failed",
        "agent did not answer",
    )


def test_reconnect_delay_grows_with_jitter_and_is_capped() -> None:
    assert reconnect_delay(0, 0.5, 60.0, 0.7) == 0.5
    assert reconnect_delay(1, 0.5, 60.0, 0.0) == 0.5
    assert reconnect_delay(1, 0.5, 60.0, 1.0) == 1.0
    assert reconnect_delay(3, 0.5, 60.0, 0.5) == pytest.approx(0.5 + (4.0 - 0.5) * 0.5)
    assert reconnect_delay(50, 0.5, 60.0, 1.0) == 60.0
    assert reconnect_delay(10_000, 0.5, 60.0, 0.3) <= 60.0
    delays = [reconnect_delay(n, 0.5, 60.0, 1.0) for n in range(10)]
    assert delays == sorted(delays)
