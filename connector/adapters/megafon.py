"""MegaFon VATS (ITooLabs "API for CRM integration", ``crm_token``): a pure codec.

Wire format (PROVIDERS.md section 3.1): one url-encoded POST URL for everything, the command in
``cmd`` and the shared token in ``crm_token`` (no HMAC: compared in constant time).

Mapping (the conversation is ``callid``, shared by all related calls; a leg is
``<callid>:<ext>`` for an agent, ``<callid>:out`` for the outside party of an outbound call):

==================  =========================================================================
event INCOMING      LegRinging(extension=ext, caller=phone, did=diversion)
event OUTGOING      ConversationStarted(outbound) + LegRinging(external, from_extension=ext)
event ACCEPTED      LegAnswered (the agent's leg; outbound: the outside leg)
event COMPLETED     LegHungUp
event CANCELLED     LegEnded(cancel) (the caller hung up, or a colleague answered)
event TRANSFERRED   LegTransferred to ``ext``
history             ConversationStarted (fills gaps), LegAnswered again (Success),
                    RecordingFound(link) if any,
                    ConversationEnded(outcome from ``status``)
contact             answered synchronously by the web route (see :func:`contact_query`)
==================  =========================================================================

Times: ``event`` carries no time, so it is stamped when it arrived; ``history.start`` is UTC
(``YYYYmmddTHHMMSSZ``) and the end is ``start + duration``.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from connector.adapters.errors import (
    WebhookMalformedError,
    WebhookSignatureError,
    WebhookUnknownEvent,
)
from connector.adapters.webhook_request import (
    Decoded,
    WebhookRequest,
    form_seconds,
    outbound_started,
    parse_form,
    require,
    require_id,
)
from connector.config import WebhookAccountSettings
from connector.events.model import (
    ConversationEnded,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegEnded,
    LegHungUp,
    LegRinging,
    LegStatus,
    LegTransferred,
    Observation,
    Outcome,
    Party,
    RecordingFound,
)

__all__ = ["COMMANDS", "contact_query", "outcome_of", "parse", "verify"]

COMMANDS = frozenset({"event", "history", "contact", "rating"})
EVENT_TYPES = frozenset(
    {"INCOMING", "OUTGOING", "ACCEPTED", "COMPLETED", "CANCELLED", "TRANSFERRED"}
)


def verify(account: WebhookAccountSettings, request: WebhookRequest, now: datetime) -> None:
    """Check ``crm_token`` against the account's secret (the token set in the VATS cabinet)."""
    del now  # MegaFon sends no signed timestamp
    fields = parse_form(request)
    token = fields.get("crm_token")
    if not token:
        raise WebhookSignatureError("crm_token is missing")
    if not hmac.compare_digest(token.encode(), account.secret.get().encode()):
        raise WebhookSignatureError("crm_token does not match")
    cmd = fields.get("cmd", "")
    if cmd not in COMMANDS:
        raise WebhookUnknownEvent(f"unknown MegaFon command {cmd!r}")


def contact_query(request: WebhookRequest) -> tuple[str, str] | None:
    """``(phone, diversion)`` of a ``cmd=contact`` lookup, None for any other command."""
    fields = parse_form(request)
    if fields.get("cmd") != "contact":
        return None
    (phone,) = require(fields, "phone")
    return phone, fields.get("diversion", "")


def outcome_of(status: str) -> Outcome:
    """The outcome of a ``history.status`` (compared case-insensitively)."""
    s = status.strip().lower()
    if s == "success":
        return Outcome.ANSWERED
    if s in ("missed", "no_answer", "noanswer"):
        return Outcome.NO_ANSWER
    if s == "cancel":
        return Outcome.ABANDONED
    if s == "busy":
        return Outcome.BUSY
    return Outcome.FAILED


def _start(value: str) -> datetime:
    try:
        return datetime.strptime(value.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise WebhookMalformedError(f"start must be YYYYmmddTHHMMSSZ, got {value[:30]!r}") from None


def parse(
    account: WebhookAccountSettings, request: WebhookRequest, received_at: datetime
) -> Decoded:
    """The observations of one verified MegaFon command (``event`` or ``history``)."""
    f = parse_form(request)
    cmd = f.get("cmd", "")
    if cmd not in COMMANDS:
        raise WebhookUnknownEvent(f"unknown MegaFon command {cmd!r}")
    call = require_id(f, "callid")
    pbx = account.pbx_name
    if cmd in ("contact", "rating"):
        return Decoded(event_key=f"{cmd}:{call}", conversation_id=call, kind=cmd)
    ext = f.get("ext", "")
    phone = f.get("phone", "")
    did = f.get("diversion", "")
    if cmd == "history":
        key = f"history:{call}"
        start = _start(require(f, "start")[0])
        end = start + timedelta(seconds=form_seconds(f, "duration"))
        outbound = f.get("type", "").lower() == "out"
        # Opens the call if no event of it came (a call that never rang anyone); for a known
        # call it only fills in what is missing.
        obs: list[Observation] = [
            ConversationStarted(
                pbx=pbx,
                conversation_id=call,
                at=start,
                source_key=key,
                direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
                caller=Party(ext) if outbound else Party(phone),
                callee=Party(phone) if outbound else Party(did),
                did="" if outbound else did,
            )
        ]
        if outbound or ext:
            if outcome_of(f.get("status", "")) is Outcome.ANSWERED:
                # Repeats the answer in case the ACCEPTED event was lost (the tracker ignores
                # a second answer of the same leg).
                obs.append(
                    LegAnswered(
                        pbx=pbx,
                        conversation_id=call,
                        at=start,
                        source_key=key,
                        leg_id=f"{call}:out" if outbound else f"{call}:{ext}",
                        extension="" if outbound else ext,
                    )
                )
        link = f.get("link", "").strip()
        if link:
            obs.append(
                RecordingFound(
                    pbx=pbx, conversation_id=call, at=end, source_key=key, reference=link
                )
            )
        obs.append(
            ConversationEnded(
                pbx=pbx,
                conversation_id=call,
                at=end,
                source_key=key,
                outcome=outcome_of(f.get("status", "")),
            )
        )
        return Decoded(event_key=key, conversation_id=call, observations=tuple(obs), kind=cmd)
    (etype,) = require(f, "type")
    etype = etype.upper()
    if etype not in EVENT_TYPES:
        raise WebhookUnknownEvent(f"unknown MegaFon event type {etype!r}")
    outbound = f.get("direction", "").lower() == "out" or etype == "OUTGOING"
    key = f"event:{call}:{etype}:{ext}"
    at = received_at
    agent_leg = f"{call}:{ext}"
    out_leg = f"{call}:out"
    # The leg an ACCEPTED, COMPLETED or CANCELLED is about: outbound, the outside party's.
    leg, leg_ext = (out_leg, "") if outbound else (agent_leg, ext)
    obs = []
    if etype == "INCOMING":
        if not ext:
            raise WebhookMalformedError("INCOMING without 'ext'")
        obs.append(
            LegRinging(
                pbx=pbx,
                conversation_id=call,
                at=at,
                source_key=key,
                leg_id=agent_leg,
                extension=ext,
                caller=Party(phone),
                callee=Party(ext),
                direction=Direction.INBOUND,
                did=did,
            )
        )
    elif etype == "OUTGOING":
        obs.extend(
            outbound_started(
                pbx=pbx,
                conversation_id=call,
                at=at,
                source_key=key,
                leg_id=out_leg,
                agent=ext,
                callee=Party(phone),
            )
        )
    elif etype == "ACCEPTED":
        obs.append(
            LegAnswered(
                pbx=pbx,
                conversation_id=call,
                at=at,
                source_key=key,
                leg_id=leg,
                extension=leg_ext,
            )
        )
    elif etype == "COMPLETED":
        obs.append(LegHungUp(pbx=pbx, conversation_id=call, at=at, source_key=key, leg_id=leg))
    elif etype == "CANCELLED":
        obs.append(
            LegEnded(
                pbx=pbx,
                conversation_id=call,
                at=at,
                source_key=key,
                leg_id=leg,
                extension=leg_ext,
                status=LegStatus.CANCEL,
            )
        )
    else:  # TRANSFERRED
        obs.append(
            LegTransferred(
                pbx=pbx,
                conversation_id=call,
                at=at,
                source_key=key,
                to_extension=ext,
                to_leg_id=agent_leg,
            )
        )
    return Decoded(event_key=key, conversation_id=call, observations=tuple(obs), kind=etype)
