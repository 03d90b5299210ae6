"""The terminal interface of ``connector softphone``: state, keys and rendering. Pure.

:class:`Screen` holds what the terminal shows. :meth:`Screen.key` turns one key press into
:class:`Action` values for the I/O loop in :mod:`softphone.cli` to perform;
:meth:`Screen.event` folds in a phone event; :meth:`Screen.render` builds the rich renderable.
Nothing here touches the phone, the network or the terminal.

Keys: ``a`` answer, ``r`` reject, ``h`` hang up, ``d`` dial (type the number, Enter to call,
Esc to cancel), ``0-9 * #`` DTMF during a call, ``t`` auto-answer on/off, ``q`` quit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from connector.events.model import Direction, Party
from softphone import events as ev
from softphone.link import CallerCard

__all__ = ["Action", "CallView", "Screen"]

DIGITS = set("0123456789*#")
ENTER = {"\r", "\n"}
ESCAPE = "\x1b"
BACKSPACE = {"\x7f", "\b"}


@dataclass(frozen=True, slots=True)
class Action:
    """Something the I/O loop must do: answer, reject, hangup, dial, dtmf, auto, quit, lookup."""

    kind: str
    call_id: str = ""
    value: str = ""


@dataclass
class CallView:
    """The call on screen."""

    call_id: str
    direction: Direction
    remote: Party
    state: str = "ringing"
    card: CallerCard | None = None
    digits: str = ""


@dataclass
class Screen:
    """Everything the terminal shows."""

    username: str
    server: str
    registration: ev.RegistrationState = ev.RegistrationState.STOPPED
    reason: str = ""
    auto_answer: bool = False
    call: CallView | None = None
    dialing: str | None = None  # the number being typed after 'd'
    log: deque[str] = field(default_factory=lambda: deque(maxlen=8))

    def note(self, text: str, at: datetime | None = None) -> None:
        """Add a line to the log panel."""
        stamp = at.strftime("%H:%M:%S ") if at is not None else ""
        self.log.append(stamp + text)

    # ---- keys ----------------------------------------------------------------------------------

    def key(self, key: str) -> list[Action]:
        """The actions one key press asks for (and the screen changes it makes)."""
        if self.dialing is not None:
            return self._dial_key(key)
        call = self.call
        if key == "q":
            return [Action("quit")]
        if key == "t":
            self.auto_answer = not self.auto_answer
            self.note(f"auto-answer {'on' if self.auto_answer else 'off'}")
            return [Action("auto", value="on" if self.auto_answer else "off")]
        if key == "d":
            if call is not None:
                self.note("hang up first (h), then dial")
                return []
            self.dialing = ""
            return []
        if call is None:
            if key in ("a", "r", "h") or key in DIGITS:
                self.note("there is no call")
            return []
        if key == "a":
            if call.state != "ringing" or call.direction is not Direction.INBOUND:
                self.note("nothing to answer")
                return []
            return [Action("answer", call.call_id)]
        if key == "r":
            if call.state != "ringing" or call.direction is not Direction.INBOUND:
                self.note("nothing to reject")
                return []
            return [Action("reject", call.call_id)]
        if key == "h":
            return [Action("hangup", call.call_id)]
        if key in DIGITS:
            if call.state != "talking":
                self.note("DTMF needs an answered call")
                return []
            call.digits += key
            return [Action("dtmf", call.call_id, key)]
        return []

    def _dial_key(self, key: str) -> list[Action]:
        assert self.dialing is not None
        if key == ESCAPE:
            self.dialing = None
            return []
        if key in BACKSPACE:
            self.dialing = self.dialing[:-1]
            return []
        if key in ENTER:
            number, self.dialing = self.dialing, None
            if not number:
                return []
            self.note(f"dialing {number}")
            return [Action("dial", value=number)]
        if key in DIGITS or key == "+":
            self.dialing += key
        return []

    # ---- phone events --------------------------------------------------------------------------

    def event(self, event: ev.PhoneEvent) -> list[Action]:
        """Fold in a phone event; may ask for a caller lookup."""
        if isinstance(event, ev.RegistrationChanged):
            self.registration = event.new
            self.reason = event.reason
            self.note(
                f"registration {event.new.value}" + (f": {event.reason}" if event.reason else ""),
                event.at,
            )
            return []
        if isinstance(event, ev.CallRinging):
            self.call = CallView(event.call_id, event.direction, event.remote)
            who = event.remote.name or event.remote.number or "unknown"
            verb = "incoming call from" if event.direction is Direction.INBOUND else "calling"
            self.note(f"{verb} {who}", event.at)
            return [Action("lookup", event.call_id, event.remote.number)]
        call = self.call
        if call is None or getattr(event, "call_id", None) != call.call_id:
            return []
        if isinstance(event, ev.CallAnswered):
            call.state = "talking"
            self.note("answered", event.at)
        elif isinstance(event, ev.CallEnded):
            self.note(f"call ended ({event.reason.value})", event.at)
            self.call = None
        elif isinstance(event, ev.DtmfReceived):
            self.note(f"key pressed by the other side: {event.digit}", event.at)
        elif isinstance(event, ev.RecordingSaved):
            self.note(f"recorded {event.path.name}", event.at)
        return []

    def card(self, call_id: str, card: CallerCard | None) -> None:
        """Show the caller's card (from the connector's lookup)."""
        if self.call is not None and self.call.call_id == call_id:
            self.call.card = card

    # ---- rendering -----------------------------------------------------------------------------

    def render(self) -> Panel:
        """The whole screen as one rich panel."""
        colour = {
            ev.RegistrationState.REGISTERED: "green",
            ev.RegistrationState.FAILED: "red",
            ev.RegistrationState.STOPPED: "dim",
        }.get(self.registration, "yellow")
        status = Text.assemble(
            (f"{self.username}@{self.server}  ", "bold"),
            (self.registration.value, colour),
            (f"  ({self.reason})" if self.reason else "", "red"),
            ("   auto-answer: " + ("on" if self.auto_answer else "off"), "cyan"),
        )
        parts: list[Text | Table] = [status]
        if self.call is not None:
            parts.append(self._call_table(self.call))
        if self.dialing is not None:
            parts.append(Text(f"dial: {self.dialing}_   (Enter to call, Esc to cancel)", "bold"))
        parts.append(Text("\n".join(self.log), "dim"))
        parts.append(
            Text(
                "a answer  r reject  h hang up  d dial  0-9*# DTMF  t auto-answer  q quit",
                "italic",
            )
        )
        return Panel(Group(*parts), title="softphone")

    @staticmethod
    def _call_table(call: CallView) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        inbound = call.direction is Direction.INBOUND
        table.add_row("call", ("incoming, " if inbound else "outgoing, ") + call.state)
        table.add_row("number", call.remote.number or "(hidden)")
        card = call.card
        name = (card.name if card and card.name else "") or call.remote.name
        table.add_row("name", name or "unknown")
        table.add_row("company", card.company if card and card.company else "-")
        table.add_row("manager", card.responsible if card and card.responsible else "-")
        if call.digits:
            table.add_row("sent", call.digits)
        return table
