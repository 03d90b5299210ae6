"""The softphone's side of the connector's HTTP API, with the agent's bearer token.

* :meth:`ConnectorLink.post_observations`: ``POST /api/v1/softphone/observations`` (the calls
  this phone sees land in the call log and pop cards like any PBX's);
* :meth:`ConnectorLink.lookup`: ``GET /api/v1/lookup?number=`` -> :class:`CallerCard`;
* :meth:`ConnectorLink.commands`: ``GET /api/v1/softphone/commands`` (long poll): click-to-call
  requests for this agent, which :func:`run_commands` dials.

:func:`run_uplink` feeds the phone's events through the pure
:class:`~softphone.observations.ObservationMapper` and posts them, retrying with a bounded
backlog so a connector restart loses nothing that fits in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from connector.app import OriginateRequest
from connector.events.model import Observation
from connector.events.wire import event_to_dict
from softphone import events as ev
from softphone.control import PhoneControl
from softphone.errors import LookupFailed, SoftphoneError, UplinkFailed
from softphone.observations import ObservationMapper
from softphone.phone import Softphone

logger = logging.getLogger(__name__)

__all__ = [
    "CallerCard",
    "Command",
    "ConnectorLink",
    "UplinkFailed",
    "card_from_lookup",
    "run_commands",
    "run_uplink",
]

OBSERVATIONS_PATH = "/api/v1/softphone/observations"
COMMANDS_PATH = "/api/v1/softphone/commands"
LOOKUP_PATH = "/api/v1/lookup"
RECORDINGS_PATH = "/api/v1/softphone/recordings/"


@dataclass(frozen=True, slots=True)
class CallerCard:
    """Who is calling, as the connector's lookup knows them (any field may be empty)."""

    number: str
    name: str = ""
    company: str = ""
    responsible: str = ""
    kind: str = ""
    id: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    """A request from the connector to this phone (click-to-call)."""

    id: str
    action: str
    number: str = ""
    conversation_id: str = ""


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("name") or value.get("login") or ""
    if value is None or isinstance(value, list | dict):
        return ""
    return str(value)


def card_from_lookup(number: str, body: Any) -> CallerCard | None:
    """The best match of a lookup answer as a card; None when nothing matched.

    Tolerant: missing fields are empty; ``company``/``company_name`` and
    ``responsible``/``responsible_name`` (a string or an object with a name) are both read.
    """
    if not isinstance(body, dict):
        return None
    matches = body.get("matches")
    if not isinstance(matches, list) or not matches or not isinstance(matches[0], dict):
        return None
    best = matches[0]
    return CallerCard(
        number=number,
        name=_text(best.get("name")),
        company=_text(best.get("company") or best.get("company_name")),
        responsible=_text(best.get("responsible") or best.get("responsible_name")),
        kind=_text(best.get("kind")),
        id=_text(best.get("id")),
    )


class ConnectorLink:
    """HTTP client of the connector for one agent (async context manager)."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ConnectorLink:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open HTTP session."""
        if self._session is None:
            raise SoftphoneError("the connector link is not open (use 'async with')")
        return self._session

    async def post_observations(self, observations: Sequence[Observation]) -> int:
        """Send observations; returns how many the connector accepted."""
        body = {"observations": [event_to_dict(obs) for obs in observations]}
        try:
            async with self.session.post(self.base_url + OBSERVATIONS_PATH, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    message = _error_message(data) or resp.reason or ""
                    raise UplinkFailed(
                        f"connector refused observations: {resp.status} {message}", resp.status
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UplinkFailed(f"connector unreachable at {self.base_url}: {exc}") from exc
        return int(data.get("accepted", 0)) if isinstance(data, dict) else 0

    async def lookup(self, number: str) -> CallerCard | None:
        """The caller's card from ``GET /api/v1/lookup``; None when nobody matches."""
        if not number:
            return None
        url = self.base_url + LOOKUP_PATH
        try:
            async with self.session.get(url, params={"number": number}) as resp:
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    raise LookupFailed(f"lookup of {number}: {resp.status} {_error_message(data)}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise LookupFailed(f"lookup of {number} failed: {exc}") from exc
        return card_from_lookup(number, data)

    async def upload_recording(self, call_id: str, path: Path) -> int | None:
        """Send the WAV recorded of call ``call_id``; returns the connector's recording id."""
        url = self.base_url + RECORDINGS_PATH + quote(call_id, safe="")
        timeout = aiohttp.ClientTimeout(total=300)
        try:
            with open(path, "rb") as wav:
                async with self.session.put(
                    url, data=wav, headers={"Content-Type": "audio/wav"}, timeout=timeout
                ) as resp:
                    data = await resp.json(content_type=None)
                    if resp.status != 201:
                        raise UplinkFailed(
                            f"recording upload: {resp.status} {_error_message(data)}", resp.status
                        )
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            raise UplinkFailed(f"recording upload of {path.name} failed: {exc}") from exc
        rec_id = data.get("recording_id") if isinstance(data, dict) else None
        return rec_id if isinstance(rec_id, int) else None

    async def commands(self, wait: int = 25) -> list[Command]:
        """Wait (long poll, at most ``wait`` s) for click-to-call requests for this agent."""
        url = self.base_url + COMMANDS_PATH
        timeout = aiohttp.ClientTimeout(total=wait + 10)
        try:
            params = {"wait": str(int(wait))}
            async with self.session.get(url, params=params, timeout=timeout) as resp:
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    raise UplinkFailed(
                        f"commands: {resp.status} {_error_message(data)}", resp.status
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UplinkFailed(f"connector unreachable at {self.base_url}: {exc}") from exc
        out: list[Command] = []
        for item in data.get("commands", []) if isinstance(data, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("action"), str):
                out.append(
                    Command(
                        id=str(item.get("id", "")),
                        action=item["action"],
                        number=str(item.get("number", "")),
                        conversation_id=str(item.get("conversation_id", "")),
                    )
                )
        return out


async def _upload(link: ConnectorLink, uploads: deque[ev.RecordingSaved]) -> None:
    while uploads:
        saved = uploads.popleft()
        try:
            rec_id = await link.upload_recording(saved.call_id, saved.path)
        except UplinkFailed as exc:
            logger.error("recording of %s not uploaded: %s", saved.call_id, exc)
            continue
        logger.info("recording of %s uploaded as %s", saved.call_id, rec_id)


def _error_message(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))
    return ""


async def run_uplink(
    phone: Softphone,
    link: ConnectorLink,
    *,
    backlog: int = 1000,
    retry_delay: float = 2.0,
    queue: asyncio.Queue[ev.PhoneEvent] | None = None,
    finish_on_stop: bool = False,
    upload_recordings: bool = True,
) -> None:
    """Post the phone's calls to the connector until cancelled (or, with ``finish_on_stop``,
    until the phone has stopped and its last observations went out or failed once more).

    Observations that could not be sent wait (at most ``backlog``, oldest dropped and logged)
    and go out, in order, with the next attempt. A 4xx answer drops the batch (it would never
    be accepted) and is logged. The phone's last event is "registration stopped", published
    after the calls it ended, so nothing is cut off. With ``upload_recordings`` the WAV of each
    call (:class:`~softphone.events.RecordingSaved`) is sent once its observations went out;
    a failed upload is logged and not retried.
    """
    mapper = ObservationMapper(pbx=phone.settings.pbx, extension=phone.settings.username)
    events = queue or phone.listen()
    pending: deque[Observation] = deque()
    uploads: deque[ev.RecordingSaved] = deque()
    finishing = False
    try:
        while True:
            if pending:
                try:
                    event = await asyncio.wait_for(events.get(), retry_delay)
                except TimeoutError:
                    event = None
            else:
                event = await events.get()
            if (
                finish_on_stop
                and isinstance(event, ev.RegistrationChanged)
                and event.new is ev.RegistrationState.STOPPED
            ):
                finishing = True
            if upload_recordings and isinstance(event, ev.RecordingSaved) and event.samples:
                uploads.append(event)
            if event is not None:
                for obs in mapper.handle(event):
                    if len(pending) >= backlog:
                        dropped = pending.popleft()
                        logger.error("uplink backlog full; dropped %r", dropped)
                    pending.append(obs)
            if not pending:
                await _upload(link, uploads)
                if finishing:
                    return
                continue
            batch = list(pending)
            try:
                await link.post_observations(batch)
            except UplinkFailed as exc:
                if 400 <= exc.status < 500:
                    logger.error("connector rejected %d observations: %s", len(batch), exc)
                    pending.clear()
                else:
                    logger.warning("uplink: %s; will retry", exc)
                if finishing:
                    if pending:
                        logger.error("%d observations were not delivered", len(pending))
                    return
                continue
            for _ in batch:
                pending.popleft()
            await _upload(link, uploads)
            if finishing:
                return
    finally:
        if queue is None:
            phone.unlisten(events)


async def run_commands(phone: Softphone, link: ConnectorLink, *, retry_delay: float = 5.0) -> None:
    """Dial click-to-call requests from the connector until cancelled."""
    control = PhoneControl(phone)
    while True:
        try:
            commands = await link.commands()
        except UplinkFailed as exc:
            logger.warning("commands: %s; retrying in %.0f s", exc, retry_delay)
            await asyncio.sleep(retry_delay)
            continue
        for command in commands:
            try:
                if command.action == "dial":
                    await control.originate(
                        OriginateRequest(
                            call_id=command.id,
                            pbx=control.pbx,
                            extension=phone.settings.username,
                            number=command.number,
                        )
                    )
                elif command.action == "hangup":
                    await control.hangup(command.conversation_id)
                else:
                    logger.warning("unknown command %r ignored", command.action)
            except SoftphoneError as exc:
                logger.warning("command %s %s failed: %s", command.action, command.number, exc)
