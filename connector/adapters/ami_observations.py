"""AMI events -> generic observations, pure and stateless.

:class:`AmiTranslator` reads one :class:`~connector.adapters.ami_codec.AmiMessage` at a time and
returns the :mod:`connector.events.model` observations it means. It keeps no state: everything
that needs memory (which legs belong together, when a call is over) is the
:class:`~connector.calls.CallTracker`'s job. Every observation carries the channel's Linkedid as
``conversation_id`` and its Uniqueid as ``leg_id``.

Who is an agent and which way a call goes are decided from the PBX settings:

* a channel matching ``trunk_patterns`` (``PJSIP/trunk`` prefix or an ``fnmatch`` glob) or in one
  of ``inbound_contexts`` is the outside world coming in;
* a dialed channel in one of ``internal_contexts`` is an agent's phone; its extension is the
  channel's resource (``PJSIP/101-0000002a`` and ``Local/101@agents-00000001;1`` both give
  ``101``), else ``DestExten``;
* a dialed channel that is a trunk (by pattern, or created in an inbound context), or that is not
  an agent and is dialed from one of ``outbound_contexts``, is the remote party of an outbound
  call; anything else that is not an agent (an IVR, a feature code) is not a leg of ours.

Times: ``Timestamp`` (``timestampevents=yes``) or ``EventTV`` when present, else ``now``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from connector.adapters.ami_codec import AmiMessage
from connector.config import AmiPbxSettings
from connector.events.model import (
    ChannelSeen,
    ConversationEnded,
    Direction,
    LegAnswered,
    LegBridged,
    LegEnded,
    LegHungUp,
    LegRinging,
    LegStatus,
    LegTransferred,
    LocalPaired,
    Observation,
    OriginateResult,
    Party,
    QueueCallerChanged,
    RecordingFound,
    TransferKind,
)

logger = logging.getLogger(__name__)

__all__ = ["AmiTranslator", "channel_extension", "clean_number"]

_UNKNOWN = {"<unknown>", "unknown", "anonymous", "restricted", "private", "unavailable"}
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]{6,}(;[12])?$")
_EXTENSION = re.compile(r"^\+?[0-9A-Za-z_.*#]+$")

_DIAL_STATUS: dict[str, LegStatus] = {
    "NOANSWER": LegStatus.NO_ANSWER,
    "BUSY": LegStatus.BUSY,
    "CANCEL": LegStatus.CANCEL,
    "ABORT": LegStatus.CANCEL,
    "CHANUNAVAIL": LegStatus.FAILED,
    "CONGESTION": LegStatus.FAILED,
    "INVALIDARGS": LegStatus.FAILED,
}


def clean_number(value: str) -> str:
    """An AMI caller-id number, with Asterisk's placeholders for "no number" turned into ``""``."""
    value = value.strip()
    return "" if value.lower() in _UNKNOWN else value


def _clean_name(value: str) -> str:
    value = value.strip()
    return "" if value == "<unknown>" else value


def channel_extension(channel: str) -> str:
    """The resource part of a channel name: the extension for an agent's phone.

    ``PJSIP/101-0000002a`` -> ``101``; ``Local/101@agents-00000001;1`` -> ``101``;
    ``PJSIP/101`` (an Originate target) -> ``101``; ``""`` when there is no resource.
    """
    _, sep, resource = channel.partition("/")
    if not sep:
        return ""
    resource = resource.split("@", 1)[0].split("/", 1)[0]
    resource = _CHANNEL_SUFFIX.sub("", resource)
    if ";" in resource:
        resource = resource.split(";", 1)[0]
    return resource


def _parse_time(msg: AmiMessage, now: datetime) -> datetime:
    stamp = msg.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            pass
    for name in ("EventTV", "EventTime"):
        text = msg.get(name)
        if not text:
            continue
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            continue
        # CEL's EventTime has no zone (PBX local time): never mix it with our clock.
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    return now


class AmiTranslator:
    """Translate AMI events of one PBX into observations (see the module docstring)."""

    def __init__(self, pbx: AmiPbxSettings) -> None:
        self.pbx = pbx
        self.name = pbx.name
        self._inbound = {c.lower() for c in pbx.inbound_contexts}
        self._outbound = {c.lower() for c in pbx.outbound_contexts}
        self._internal = {c.lower() for c in pbx.internal_contexts}
        self._trunks = tuple(pbx.trunk_patterns)

    # -- classification -------------------------------------------------------------------

    def is_trunk(self, channel: str) -> bool:
        """True if the channel name matches one of the trunk patterns (prefix or glob)."""
        return any(
            channel.startswith(p) or fnmatch.fnmatchcase(channel, p) for p in self._trunks if p
        )

    def _channel_direction(self, channel: str, context: str) -> Direction:
        ctx = context.lower()
        if self.is_trunk(channel) or ctx in self._inbound or self._local_context(channel):
            return Direction.INBOUND
        if ctx in self._outbound:
            return Direction.OUTBOUND
        if ctx in self._internal:
            return Direction.INTERNAL
        return Direction.UNKNOWN

    def _local_context(self, channel: str) -> bool:
        """True for a Local channel created in an inbound context (``Local/DID@from-trunk``)."""
        if not channel.startswith("Local/") or "@" not in channel:
            return False
        context = _CHANNEL_SUFFIX.sub("", channel.split("@", 1)[1]).split("/", 1)[0]
        return context.lower() in self._inbound

    def _agent_extension(self, msg: AmiMessage, prefix: str) -> str:
        """The agent extension of channel ``prefix``, or ``""`` if it is not an agent's phone."""
        channel = msg.get(prefix + "Channel")
        if not channel or self.is_trunk(channel):
            return ""
        if msg.get(prefix + "Context").lower() not in self._internal:
            return ""
        ext = channel_extension(channel)
        if ext and _EXTENSION.match(ext):
            return ext
        return msg.get(prefix + "Exten")

    def _member_extension(self, msg: AmiMessage) -> str:
        """A queue member's extension: its channel (``Local/101@from-queue-...;1``) or Interface."""
        for channel in (msg.get("DestChannel"), msg.get("Interface")):
            ext = channel_extension(channel) if channel else ""
            if ext and _EXTENSION.match(ext):
                return ext
        return ""

    def _party(self, msg: AmiMessage, prefix: str) -> Party:
        return Party(
            number=clean_number(msg.get(prefix + "CallerIDNum")),
            name=_clean_name(msg.get(prefix + "CallerIDName")),
        )

    # -- translation ----------------------------------------------------------------------

    def translate(self, msg: AmiMessage, now: datetime) -> list[Observation]:
        """The observations one AMI message means (often none: most events are noise)."""
        name = msg.event
        lower = name.lower()
        handler = _HANDLERS.get(lower) if name else None
        if handler is None:
            return []
        needle = _ONLY_WITH.get(lower)
        if needle is not None and not msg.mentions(needle):
            return []  # a VarSet/CEL without the one value that matters: noise, not even parsed
        at = _parse_time(msg, now)
        try:
            return handler(self, msg, at)
        except Exception:  # one malformed event must never stop the adapter
            logger.exception("%s: cannot translate AMI %s; skipped", self.name, name)
            return []

    def _channel_seen(
        self, msg: AmiMessage, at: datetime, *, adopted: bool = False
    ) -> list[Observation]:
        uid, linked = msg.get("Uniqueid"), msg.get("Linkedid")
        if not uid or not linked:
            return []
        channel = msg.get("Channel")
        return [
            ChannelSeen(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=uid,
                channel=channel,
                extension=self._agent_extension(msg, ""),
                caller=self._party(msg, ""),
                direction=self._channel_direction(channel, msg.get("Context")),
                adopted=adopted,
                answered=adopted and msg.get("ChannelState") == "6",
            )
        ]

    def _core_show_channel(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        """A channel still up after a (re)login: adopt it, answered if its state is Up."""
        return self._channel_seen(msg, at, adopted=True)

    def _local_bridge(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        one, two = msg.get("LocalOneUniqueid"), msg.get("LocalTwoUniqueid")
        linked = msg.get("LocalOneLinkedid") or msg.get("LocalTwoLinkedid")
        if not one or not two or not linked:
            return []
        return [
            LocalPaired(pbx=self.name, conversation_id=linked, at=at, leg_id=one, other_leg_id=two)
        ]

    def _dial_ringing(self, msg: AmiMessage, at: datetime, queue: str = "") -> list[Observation]:
        dest_uid = msg.get("DestUniqueid")
        linked = msg.get("Linkedid") or msg.get("DestLinkedid")
        if not dest_uid or not linked:
            return []
        dest_channel = msg.get("DestChannel")
        source = msg.get("Channel")
        extension = self._agent_extension(msg, "Dest")
        if queue and not extension:  # a queue member is an agent, whatever its context
            extension = self._member_extension(msg)
        if not source:
            # An Originate dials its first leg: only an agent's phone is a call of ours (the
            # click-to-call agent leg); anything else is the far end of a test or a callback.
            if not extension:
                return []
            return [
                LegRinging(
                    pbx=self.name,
                    conversation_id=linked,
                    at=at,
                    leg_id=dest_uid,
                    extension=extension,
                    caller=Party(number=extension),
                    callee=Party(
                        number=clean_number(msg.get("DestConnectedLineNum")),
                        name="",
                    ),
                    direction=Direction.OUTBOUND,
                    originated=True,
                )
            ]
        src_ctx = msg.get("Context").lower()
        src_inbound = (
            self.is_trunk(source) or src_ctx in self._inbound or self._local_context(source)
        )
        # The far end is outside when it is a trunk channel, a channel created in a trunk
        # context, or anything but an agent dialed from an outbound context.
        external = self.is_trunk(dest_channel) or (
            not extension
            and (src_ctx in self._outbound or msg.get("DestContext").lower() in self._inbound)
        )
        if src_inbound:
            direction = Direction.INBOUND
        elif external or src_ctx in self._outbound:
            direction = Direction.OUTBOUND
        else:
            direction = Direction.INTERNAL
        from_extension = "" if src_inbound else self._agent_extension(msg, "")
        if not from_extension and not src_inbound and not self.is_trunk(source):
            ext = channel_extension(source)
            from_extension = ext if _EXTENSION.match(ext or "-") else ""
        caller = self._party(msg, "")
        if external:
            # The number dialed: the dialing phone's current extension (the dialed trunk channel
            # often says "s"), else the dialed channel's extension or caller id (fact 1).
            candidates = [msg.get("DestExten"), msg.get("DestCallerIDNum")]
            if not src_inbound:
                candidates.insert(0, msg.get("Exten"))
            number = next(
                (clean_number(c) for c in candidates if clean_number(c) not in ("", "s")), ""
            )
            callee = Party(number=number)
            extension = ""
        else:
            callee = Party(number=extension)
        return [
            LegRinging(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=dest_uid,
                extension=extension,
                caller=caller,
                callee=callee,
                direction=direction,
                queue=queue,
                did=msg.get("Exten") if src_inbound else "",
                external=external,
                from_extension=from_extension,
                source_leg_id=msg.get("Uniqueid"),
            )
        ]

    def _dial_begin(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        return self._dial_ringing(msg, at)

    def _dial_state(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        if msg.get("DialStatus").upper() not in ("RINGING", "PROCEEDING", "PROGRESS"):
            return []
        return self._dial_ringing(msg, at)

    def _agent_called(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        return self._dial_ringing(msg, at, queue=msg.get("Queue"))

    def _dial_end(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        dest_uid = msg.get("DestUniqueid")
        linked = msg.get("Linkedid") or msg.get("DestLinkedid")
        if not dest_uid or not linked:
            return []
        status = msg.get("DialStatus").upper()
        extension = self._agent_extension(msg, "Dest")
        if status == "ANSWER":
            return [
                LegAnswered(
                    pbx=self.name,
                    conversation_id=linked,
                    at=at,
                    leg_id=dest_uid,
                    extension=extension,
                )
            ]
        leg_status = _DIAL_STATUS.get(status)
        if leg_status is None:  # CONTINUE, GOTO, forwards: the leg goes on elsewhere
            return []
        return [
            LegEnded(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=dest_uid,
                extension=extension,
                status=leg_status,
            )
        ]

    def _agent_connect(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        dest_uid = msg.get("DestUniqueid")
        linked = msg.get("Linkedid") or msg.get("DestLinkedid")
        if not dest_uid or not linked:
            return []
        return [
            LegAnswered(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=dest_uid,
                extension=self._agent_extension(msg, "Dest") or self._member_extension(msg),
            )
        ]

    def _agent_ring_no_answer(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        dest_uid = msg.get("DestUniqueid")
        linked = msg.get("Linkedid") or msg.get("DestLinkedid")
        if not dest_uid or not linked:
            return []
        return [
            LegEnded(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=dest_uid,
                extension=self._agent_extension(msg, "Dest"),
                status=LegStatus.NO_ANSWER,
            )
        ]

    def _queue_caller(self, msg: AmiMessage, at: datetime, status: str) -> list[Observation]:
        uid, linked = msg.get("Uniqueid"), msg.get("Linkedid")
        if not uid or not linked:
            return []
        return [
            QueueCallerChanged(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=uid,
                queue=msg.get("Queue"),
                status=status,
            )
        ]

    def _queue_join(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        return self._queue_caller(msg, at, "joined")

    def _queue_leave(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        return self._queue_caller(msg, at, "left")

    def _queue_abandon(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        return self._queue_caller(msg, at, "abandoned")

    def _bridge_enter(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        uid, linked = msg.get("Uniqueid"), msg.get("Linkedid")
        if not uid or not linked:
            return []
        return [
            LegBridged(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=uid,
                bridge_id=msg.get("BridgeUniqueid"),
            )
        ]

    def _blind_transfer(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        if msg.get("Result").lower() != "success":
            return []
        linked = msg.get("TransfereeLinkedid") or msg.get("TransfererLinkedid")
        if not linked:
            return []
        transferer = msg.get("TransfererChannel")
        return [
            LegTransferred(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                from_extension=channel_extension(transferer) if transferer else "",
                to_extension=msg.get("Extension"),
                kind=TransferKind.BLIND,
                from_leg_id=msg.get("TransfererUniqueid"),
            )
        ]

    def _attended_transfer(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        if msg.get("Result").lower() != "success":
            return []
        linked = (
            msg.get("TransfereeLinkedid")
            or msg.get("OrigTransfererLinkedid")
            or msg.get("TransferTargetLinkedid")
        )
        if not linked:
            return []
        origin = msg.get("OrigTransfererChannel")
        target = msg.get("TransferTargetChannel")
        return [
            LegTransferred(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                from_extension=channel_extension(origin) if origin else "",
                to_extension=channel_extension(target) if target else "",
                kind=TransferKind.ATTENDED,
                from_leg_id=msg.get("OrigTransfererUniqueid"),
                to_leg_id=msg.get("TransferTargetUniqueid"),
            )
        ]

    def _var_set(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        if msg.get("Variable") != "MIXMONITOR_FILENAME" or not msg.get("Value"):
            return []
        linked = msg.get("Linkedid")
        if not linked:
            return []
        return [
            RecordingFound(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                reference=msg.get("Value"),
                leg_id=msg.get("Uniqueid"),
            )
        ]

    def _hangup(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        uid, linked = msg.get("Uniqueid"), msg.get("Linkedid")
        if not uid or not linked:
            return []
        cause = msg.get("Cause")
        return [
            LegHungUp(
                pbx=self.name,
                conversation_id=linked,
                at=at,
                leg_id=uid,
                channel=msg.get("Channel"),
                cause=int(cause) if cause.isdigit() else 0,
            )
        ]

    def _cel(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        if msg.get("EventName") != "LINKEDID_END":
            return []
        linked = msg.get("LinkedID")
        if not linked:
            return []
        return [ConversationEnded(pbx=self.name, conversation_id=linked, at=at)]

    def _originate_response(self, msg: AmiMessage, at: datetime) -> list[Observation]:
        uid = clean_number(msg.get("Uniqueid"))
        if not uid:  # no ChannelId was given: the adapter correlates by ActionID alone
            return []
        reason = msg.get("Reason")
        channel = msg.get("Channel")
        return [
            OriginateResult(
                pbx=self.name,
                conversation_id=uid,
                at=at,
                leg_id=uid,
                action_id=msg.action_id,
                success=msg.response.lower() == "success",
                reason=int(reason) if reason.isdigit() else 0,
                extension=channel_extension(channel) if channel else "",
                channel=channel,
            )
        ]


_Handler = Callable[[AmiTranslator, AmiMessage, datetime], list[Observation]]

#: Events that mean something only when this text is in them (most VarSet and CEL events are
#: noise: only MIXMONITOR_FILENAME and LINKEDID_END matter).
_ONLY_WITH: dict[str, str] = {"varset": "MIXMONITOR_FILENAME", "cel": "LINKEDID_END"}

_HANDLERS: dict[str, _Handler] = {
    "newchannel": AmiTranslator._channel_seen,
    "newcallerid": AmiTranslator._channel_seen,
    "coreshowchannel": AmiTranslator._core_show_channel,
    "localbridge": AmiTranslator._local_bridge,
    "dialbegin": AmiTranslator._dial_begin,
    "dialstate": AmiTranslator._dial_state,
    "dialend": AmiTranslator._dial_end,
    "agentcalled": AmiTranslator._agent_called,
    "agentconnect": AmiTranslator._agent_connect,
    "agentringnoanswer": AmiTranslator._agent_ring_no_answer,
    "queuecallerjoin": AmiTranslator._queue_join,
    "queuecallerleave": AmiTranslator._queue_leave,
    "queuecallerabandon": AmiTranslator._queue_abandon,
    "bridgeenter": AmiTranslator._bridge_enter,
    "blindtransfer": AmiTranslator._blind_transfer,
    "attendedtransfer": AmiTranslator._attended_transfer,
    "varset": AmiTranslator._var_set,
    "hangup": AmiTranslator._hangup,
    "cel": AmiTranslator._cel,
    "originateresponse": AmiTranslator._originate_response,
}
