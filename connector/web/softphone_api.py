"""The softphone as an adapter: its observations in, click-to-call commands out.

* ``POST /api/v1/softphone/observations`` takes ``{"observations": [...]}`` in the wire format
  of :mod:`connector.events.wire`, from an agent's softphone with the agent's token. Every
  observation must be for the softphone PBX (``[softphone] pbx``); one that names an extension
  must name one of the caller's own; a conversation belongs to the user whose extension first
  appeared in it, and nobody else may speak about it. Accepted observations go to
  :meth:`connector.app.Runtime.ingest` (tracker, bus, call log, pops).
* ``GET /api/v1/softphone/commands?wait=N`` is the phone's long poll for click-to-call: the
  :class:`SoftphoneControl`, registered in ``runtime.controls`` under the softphone PBX once a
  phone has polled (so deployments without softphones are unaffected), queues
  ``{"action": "dial", "number": ..., "id": <click-to-call id>}`` for the user owning the
  extension. The phone uses that id as the SIP Call-ID, so the call's events carry it.
* ``PUT /api/v1/softphone/recordings/{conversation_id}`` takes the WAV the phone recorded of a
  call it reported (only its owner may send it), and hands it to the recording pipeline
  (transcode, store, link to the call's activity, ``recording.ready``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from connector.app import OriginateRequest, OriginateResult, Runtime
from connector.events.model import (
    ConversationEnded,
    ConversationStarted,
    LegAnswered,
    LegEnded,
    LegRinging,
    Observation,
)
from connector.events.wire import OBSERVATION_TYPES, WireFormatError, event_from_dict
from connector.web.api_access import USER_ROLES, json_ok, user_principal
from connector.web.errors import ApiError, bad_request, forbidden, not_found
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from connector.web.validation import Field, parse_query, read_json
from crm_sync.auth import Principal

logger = logging.getLogger(__name__)

__all__ = ["SoftphoneControl", "setup"]

ACCEPTED = Counter(
    "connector_softphone_observations_total", "Softphone observations accepted", ["type"]
)
REJECTED = Counter(
    "connector_softphone_observations_rejected_total", "Softphone observations refused", ["why"]
)

ALLOWED = (ConversationStarted, LegRinging, LegAnswered, LegEnded, ConversationEnded)
MAX_OBSERVATIONS = 100
MAX_CONVERSATIONS = 10_000
POLL_FRESH_SECONDS = 90.0

OBSERVATIONS_BODY = {
    "observations": Field(
        "list",
        required=True,
        items=Field("any"),
        max_items=MAX_OBSERVATIONS,
        description="observations in the wire format (connector.events.wire), oldest first",
    ),
}
COMMANDS_QUERY = {
    "wait": Field("int", minimum=0, maximum=60, description="seconds to wait for a command (25)"),
}


@dataclass
class _Mailbox:
    commands: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    polled_at: float = 0.0
    polling: int = 0


class SoftphoneControl:
    """``CallControl`` for the softphone PBX: queues commands for the agents' phones."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pbx = runtime.settings.softphone.pbx
        self._boxes: dict[int, _Mailbox] = {}

    def mailbox(self, user_id: int) -> _Mailbox:
        """The command queue of one user's phone."""
        return self._boxes.setdefault(user_id, _Mailbox())

    def connected(self, user_id: int) -> bool:
        """True if that user's phone is polling now or polled recently."""
        box = self._boxes.get(user_id)
        if box is None:
            return False
        return box.polling > 0 or time.monotonic() - box.polled_at < POLL_FRESH_SECONDS

    async def wait_connected(self, user_id: int, timeout: float) -> bool:
        """Wait until that user's phone polls (False if ``timeout`` passes first)."""
        try:
            await asyncio.wait_for(self.mailbox(user_id).seen.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _send(self, user_id: int, command: dict[str, Any]) -> None:
        box = self.mailbox(user_id)
        box.commands.append(command)
        box.ready.set()

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Ask the softphone of the extension's owner to dial ``request.number``."""
        user_id = self.runtime.directory.user_of(self.pbx, request.extension)
        if user_id is None:
            return OriginateResult(False, f"extension {request.extension} has no user")
        if not self.connected(user_id):
            return OriginateResult(
                False, f"no softphone is connected for extension {request.extension}"
            )
        self._send(
            user_id,
            {"id": request.call_id, "action": "dial", "number": request.number},
        )
        return OriginateResult(True)

    async def hangup(self, conversation_id: str) -> None:
        """Ask the phone that owns the conversation to end it."""
        owners = self.runtime.extras.get(_OWNERS_KEY)
        user_id = owners.get(conversation_id) if isinstance(owners, OrderedDict) else None
        if user_id is not None:
            self._send(
                user_id,
                {"id": uuid.uuid4().hex, "action": "hangup", "conversation_id": conversation_id},
            )


_OWNERS_KEY = "softphone_conversation_owners"
CONTROL: web.AppKey[SoftphoneControl] = web.AppKey("softphone_control", SoftphoneControl)


def _owners(runtime: Runtime) -> OrderedDict[str, int]:
    owners = runtime.extras.get(_OWNERS_KEY)
    if not isinstance(owners, OrderedDict):
        owners = OrderedDict()
        runtime.extras[_OWNERS_KEY] = owners
    return owners


def _extension_of(obs: Observation) -> str:
    if isinstance(obs, LegRinging):
        return obs.extension or obs.from_extension
    if isinstance(obs, LegAnswered | LegEnded):
        return obs.extension
    return ""


def _check(who: Principal, pbx: str, owners: OrderedDict[str, int], obs: Any, i: int) -> None:
    """Raise 400/403 unless ``who`` may report ``obs``; remember who owns its conversation."""
    where = f"observations[{i}]"
    if not isinstance(obs, ALLOWED):
        REJECTED.labels("type").inc()
        raise bad_request(f"{where}: a softphone cannot report {type(obs).__name__}", where)
    if obs.pbx != pbx:
        REJECTED.labels("pbx").inc()
        raise bad_request(f"{where}: pbx must be {pbx!r}, got {obs.pbx!r}", where)
    if not obs.conversation_id or len(obs.conversation_id) > 200:
        REJECTED.labels("conversation").inc()
        raise bad_request(f"{where}: conversation_id must be 1..200 characters", where)
    extension = _extension_of(obs)
    if (
        extension
        and (pbx, extension) not in who.extensions
        and ("*", extension) not in (who.extensions)
    ):
        REJECTED.labels("extension").inc()
        raise forbidden(f"{where}: extension {extension} on {pbx} is not yours")
    owner = owners.get(obs.conversation_id)
    if owner is not None and owner != who.user_id:
        REJECTED.labels("owner").inc()
        raise forbidden(f"{where}: conversation {obs.conversation_id} is another user's")


async def post_observations(request: web.Request) -> web.Response:
    """Take a batch of a softphone's observations and feed them to the call tracker."""
    who = user_principal(request, *USER_ROLES)
    runtime = request.app[RUNTIME]
    body = await read_json(request, OBSERVATIONS_BODY)
    pbx = runtime.settings.softphone.pbx
    parsed: list[Observation] = []
    for i, item in enumerate(body["observations"]):
        if not isinstance(item, dict) or item.get("type") not in OBSERVATION_TYPES:
            REJECTED.labels("type").inc()
            raise bad_request(
                f"observations[{i}]: type must be one of the observation types",
                f"observations[{i}].type",
            )
        try:
            obs = event_from_dict(item)
        except WireFormatError as exc:
            REJECTED.labels("format").inc()
            raise bad_request(f"observations[{i}]: {exc}", f"observations[{i}]") from None
        parsed.append(obs)  # type: ignore[arg-type]
    owners = _owners(runtime)
    claimed: dict[str, int] = {}
    for i, obs in enumerate(parsed):
        _check(who, pbx, owners, obs, i)
        if who.user_id is not None and obs.conversation_id not in owners:
            claimed.setdefault(obs.conversation_id, who.user_id)
    for conversation_id, user_id in claimed.items():
        owners[conversation_id] = user_id
        while len(owners) > MAX_CONVERSATIONS:
            owners.popitem(last=False)
    events = runtime.ingest(parsed)
    for obs in parsed:
        ACCEPTED.labels(type(obs).__name__).inc()
    logger.debug("softphone of %s: %d observations, %d events", who.login, len(parsed), len(events))
    return json_ok({"accepted": len(parsed), "events": [e.TYPE for e in events]})


async def get_commands(request: web.Request) -> web.Response:
    """Long poll: the click-to-call commands for the caller's softphone."""
    who = user_principal(request, *USER_ROLES)
    query = parse_query(request, COMMANDS_QUERY)
    wait = query.get("wait")
    control = request.app[CONTROL]
    assert who.user_id is not None  # user_principal guarantees a person
    box = control.mailbox(who.user_id)
    box.polling += 1
    box.seen.set()
    # Click-to-call may use the softphone PBX once a phone has shown up.
    request.app[RUNTIME].controls.setdefault(control.pbx, control)
    try:
        if not box.commands and (wait if wait is not None else 25) > 0:
            box.ready.clear()
            try:
                await asyncio.wait_for(box.ready.wait(), wait if wait is not None else 25)
            except TimeoutError:
                pass
        commands, box.commands = box.commands, []
    finally:
        box.polling -= 1
        box.polled_at = time.monotonic()
    return json_ok({"commands": commands})


async def put_recording(request: web.Request) -> web.Response:
    """Store the WAV recording of one of the caller's softphone calls."""
    from sqlalchemy import select

    from connector.recordings import RecordingPipeline
    from crm_sync.schema import recordings

    who = user_principal(request, *USER_ROLES)
    runtime = request.app[RUNTIME]
    conversation_id = request.match_info["conversation_id"]
    if _owners(runtime).get(conversation_id) != who.user_id:
        raise not_found(f"you reported no softphone call {conversation_id!r}")
    settings = runtime.settings.recordings
    incoming = settings.directory / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(conversation_id.encode()).hexdigest()[:16]
    name = f"softphone-{digest}-{uuid.uuid4().hex[:8]}.wav"
    path = incoming / name
    size = 0
    try:
        with open(path, "wb") as out:
            async for chunk in request.content.iter_chunked(65536):
                size += len(chunk)
                if size > settings.max_download_bytes:
                    raise ApiError(
                        413, "too_large", f"a recording may be {settings.max_download_bytes} bytes"
                    )
                out.write(chunk)
        with open(path, "rb") as check:
            head = check.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise bad_request("the body must be a WAV file (RIFF/WAVE)")
        pipeline = RecordingPipeline(
            runtime.engine,
            settings,
            {runtime.settings.softphone.pbx: incoming},
            runtime.publish,
            stable_interval=0.05,
            appear_timeout=5.0,
        )
        rec_id = await pipeline.collect(
            pbx=runtime.settings.softphone.pbx,
            conversation_id=conversation_id,
            source=name,
            day=datetime.now(UTC),
        )
    finally:
        path.unlink(missing_ok=True)
    status = ""
    if rec_id is not None:
        async with runtime.engine.connect() as conn:
            status = str(
                (
                    await conn.execute(select(recordings.c.status).where(recordings.c.id == rec_id))
                ).scalar_one()
            )
    logger.info("softphone recording of %s from %s: %s", conversation_id, who.login, status)
    return json_ok({"recording_id": rec_id, "status": status}, status=201)


ROUTES = [
    ApiRoute(
        "POST",
        "/api/v1/softphone/observations",
        post_observations,
        "A softphone reports what its calls did (observations in the wire format)",
        "softphone",
        body=OBSERVATIONS_BODY,
    ),
    ApiRoute(
        "GET",
        "/api/v1/softphone/commands",
        get_commands,
        "Long poll of an agent's softphone for click-to-call commands",
        "softphone",
        query=COMMANDS_QUERY,
    ),
    ApiRoute(
        "PUT",
        "/api/v1/softphone/recordings/{conversation_id}",
        put_recording,
        "A softphone uploads the WAV it recorded of one of its calls",
        "softphone",
        status=201,
    ),
]


def setup(app: web.Application) -> None:
    """Add the softphone routes (the CallControl joins ``runtime.controls`` on a first poll)."""
    runtime = app[RUNTIME]
    control = SoftphoneControl(runtime)
    app[CONTROL] = control
    add_routes(app, ROUTES)
