"""The terminal screen of ``connector softphone``: keys -> actions, events -> screen."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from connector.events.model import Direction, Party
from softphone import events as ev
from softphone.link import CallerCard, card_from_lookup
from softphone.tui import Action, Screen

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def shown(screen: Screen) -> str:
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(screen.render())
    return out.getvalue()


def ringing(screen: Screen, direction: Direction = Direction.INBOUND) -> list[Action]:
    caller = Party("79161234567", "Caller Sipp")
    return screen.event(ev.CallRinging("c1", direction, Party("alice"), caller, AT))


def test_incoming_call_answer_dtmf_hangup() -> None:
    screen = Screen(username="alice", server="pbx:5060")
    assert screen.key("a") == [] and "there is no call" in screen.log[-1]
    assert ringing(screen) == [Action("lookup", "c1", "79161234567")]
    screen.card("c1", CallerCard("79161234567", "Ivan Petrov", "Roga i Kopyta", "Alice"))
    text = shown(screen)
    assert "Ivan Petrov" in text and "Roga i Kopyta" in text and "Alice" in text
    assert screen.key("5") == [] and "DTMF needs an answered call" in screen.log[-1]
    assert screen.key("a") == [Action("answer", "c1")]
    screen.event(ev.CallAnswered("c1", AT))
    assert screen.key("5") == [Action("dtmf", "c1", "5")]
    assert screen.key("#") == [Action("dtmf", "c1", "#")]
    assert "5#" in shown(screen)
    assert screen.key("h") == [Action("hangup", "c1")]
    screen.event(ev.CallEnded("c1", ev.EndReason.LOCAL_HANGUP, AT))
    assert screen.call is None and "call ended (local_hangup)" in screen.log[-1]


def test_reject_and_quit() -> None:
    screen = Screen(username="alice", server="pbx:5060")
    ringing(screen)
    assert screen.key("r") == [Action("reject", "c1")]
    assert screen.key("q") == [Action("quit")]


def test_dial_mode() -> None:
    screen = Screen(username="alice", server="pbx:5060")
    assert screen.key("d") == [] and screen.dialing == ""
    for key in "+7916x":
        assert screen.key(key) == []
    assert screen.dialing == "+7916"
    screen.key("\x7f")
    assert screen.dialing == "+791"
    assert "dial: +791_" in shown(screen)
    assert screen.key("\r") == [Action("dial", value="+791")]
    assert screen.dialing is None
    screen.key("d")
    screen.key("1")
    assert screen.key("\x1b") == [] and screen.dialing is None
    ringing(screen, Direction.OUTBOUND)
    assert screen.key("a") == []  # an outgoing call is not answered here
    assert screen.key("d") == [] and screen.dialing is None  # one call at a time


def test_auto_answer_and_registration() -> None:
    screen = Screen(username="alice", server="pbx:5060")
    assert screen.key("t") == [Action("auto", value="on")]
    assert screen.key("t") == [Action("auto", value="off")]
    screen.event(
        ev.RegistrationChanged(
            ev.RegistrationState.REGISTERING, ev.RegistrationState.FAILED, "403 Forbidden", AT
        )
    )
    assert "failed" in shown(screen) and "403 Forbidden" in shown(screen)
    screen.event(ev.RecordingSaved("other", Path("/x.wav"), 8000, AT))  # not the call: ignored


def test_card_from_lookup_is_tolerant() -> None:
    assert card_from_lookup("1", {"matches": []}) is None
    assert card_from_lookup("1", "nonsense") is None
    assert card_from_lookup("1", {"matches": ["x"]}) is None
    card = card_from_lookup(
        "1",
        {"matches": [{"kind": "contact", "id": 5, "name": "Ivan", "company_name": "Roga",
                      "responsible_name": "Alice"}]},
    )  # fmt: skip
    assert card == CallerCard("1", "Ivan", "Roga", "Alice", "contact", "5")
    card = card_from_lookup(
        "1", {"matches": [{"name": "Ivan", "responsible": {"name": "Bob"}, "company": None}]}
    )
    assert card == CallerCard("1", "Ivan", "", "Bob")
