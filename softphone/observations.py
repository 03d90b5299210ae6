"""Turn the softphone's call events into the connector's observations. Pure.

The softphone is a PBX adapter like any other: the conversation id and the leg id are the SIP
Call-ID, the PBX name is ``[softphone] pbx`` and the agent's extension is the SIP username.

Contract (feed, then drain)::

    mapper = ObservationMapper(pbx="softphone", extension="alice")
    for obs in mapper.handle(phone_event):      # no I/O, no clock
        send(obs)

An incoming call gives ``ConversationStarted`` + ``LegRinging`` (the agent's leg), then
``LegAnswered``, then ``LegEnded`` + ``ConversationEnded``. An outgoing call rings the remote
party: its leg is ``external`` and placed ``from_extension`` the agent. Registration and DTMF
events give nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.events.model import (
    ConversationEnded,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegEnded,
    LegRinging,
    LegStatus,
    Observation,
    Outcome,
    Party,
)
from softphone import events as ev

__all__ = ["ObservationMapper", "leg_status"]


def leg_status(reason: ev.EndReason, status: int, answered: bool) -> LegStatus:
    """How the leg ended, from the phone's end reason and the SIP status that ended it."""
    if answered:
        return LegStatus.ANSWER
    if reason in (ev.EndReason.CANCELLED, ev.EndReason.LOCAL_HANGUP, ev.EndReason.REMOTE_HANGUP):
        return LegStatus.CANCEL
    if reason in (ev.EndReason.REJECTED, ev.EndReason.BUSY):
        return LegStatus.BUSY
    if status in (408, 480, 487):
        return LegStatus.NO_ANSWER
    return LegStatus.FAILED


@dataclass
class _Call:
    direction: Direction
    answered: bool = False


class ObservationMapper:
    """Keeps, per call, what is needed to describe its end (direction, answered or not)."""

    def __init__(self, pbx: str, extension: str) -> None:
        self.pbx = pbx
        self.extension = extension
        self._calls: dict[str, _Call] = {}

    def handle(self, event: ev.PhoneEvent) -> list[Observation]:
        """The observations that ``event`` produces (possibly none)."""
        if isinstance(event, ev.CallRinging):
            return self._ringing(event)
        if isinstance(event, ev.CallAnswered):
            call = self._calls.get(event.call_id)
            if call is None or call.answered:
                return []
            call.answered = True
            return [
                LegAnswered(
                    pbx=self.pbx,
                    conversation_id=event.call_id,
                    at=event.at,
                    source_key=f"{event.call_id}:answered",
                    leg_id=event.call_id,
                    extension=self.extension if call.direction is Direction.INBOUND else "",
                )
            ]
        if isinstance(event, ev.CallEnded):
            call = self._calls.pop(event.call_id, None)
            if call is None:
                return []
            status = leg_status(event.reason, event.status, call.answered)
            return [
                LegEnded(
                    pbx=self.pbx,
                    conversation_id=event.call_id,
                    at=event.at,
                    source_key=f"{event.call_id}:leg-ended",
                    leg_id=event.call_id,
                    extension=self.extension if call.direction is Direction.INBOUND else "",
                    status=status,
                ),
                ConversationEnded(
                    pbx=self.pbx,
                    conversation_id=event.call_id,
                    at=event.at,
                    source_key=f"{event.call_id}:ended",
                    outcome=Outcome.ANSWERED if call.answered else None,
                ),
            ]
        return []

    def _ringing(self, event: ev.CallRinging) -> list[Observation]:
        if event.call_id in self._calls:
            return []
        self._calls[event.call_id] = _Call(event.direction)
        me = Party(number=self.extension, name=event.local.name)
        inbound = event.direction is Direction.INBOUND
        caller, callee = (event.remote, me) if inbound else (me, event.remote)
        started = ConversationStarted(
            pbx=self.pbx,
            conversation_id=event.call_id,
            at=event.at,
            source_key=f"{event.call_id}:started",
            direction=event.direction,
            caller=caller,
            callee=callee,
        )
        ringing = LegRinging(
            pbx=self.pbx,
            conversation_id=event.call_id,
            at=event.at,
            source_key=f"{event.call_id}:ringing",
            leg_id=event.call_id,
            extension=self.extension if inbound else "",
            caller=caller,
            callee=callee,
            direction=event.direction,
            external=not inbound,
            from_extension="" if inbound else self.extension,
        )
        return [started, ringing]
