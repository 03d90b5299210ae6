"""Click-to-call on the softphone: :class:`PhoneControl` is a ``CallControl`` for one phone.

In the connector, click-to-call for an agent served by a softphone goes to the phone through
``GET /api/v1/softphone/commands``; the phone hands each request to :class:`PhoneControl`. A
program that embeds a :class:`~softphone.phone.Softphone` can register the control directly in
``runtime.controls``.
"""

from __future__ import annotations

import logging

from connector.app import OriginateRequest, OriginateResult
from softphone.errors import SoftphoneError
from softphone.phone import Softphone

logger = logging.getLogger(__name__)

__all__ = ["PhoneControl"]


class PhoneControl:
    """``CallControl`` of one softphone: originate dials from it, hangup ends its call."""

    def __init__(self, phone: Softphone) -> None:
        self.phone = phone
        self.pbx = phone.settings.pbx

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Dial ``request.number`` from this phone (the agent is the phone: no first leg)."""
        if request.extension and request.extension != self.phone.settings.username:
            return OriginateResult(
                False, f"extension {request.extension} is not this phone's ({self.pbx})"
            )
        try:
            call_id = await self.phone.dial(request.number, request.call_id or None)
        except SoftphoneError as exc:
            logger.warning("click-to-call %s failed: %s", request.number, exc)
            return OriginateResult(False, str(exc))
        logger.info("click-to-call %s placed as %s", request.number, call_id)
        return OriginateResult(True)

    async def hangup(self, conversation_id: str) -> None:
        """End the call whose SIP Call-ID is ``conversation_id``."""
        self.phone.hangup(conversation_id)
