"""The Asterisk AMI adapter: one connection per ``[[pbx]]``, kept alive, resynchronised.

What it does, per PBX (:class:`AmiAdapter`, a runtime component and a ``CallControl``):

* connects and logs in with panoramisk (``Manager`` + ``AMIProtocol``, ``loop`` passed
  explicitly), and sends every action through panoramisk's ``send_action``;
* frames the socket with our :class:`~connector.adapters.ami_codec.AmiFramer` instead of
  panoramisk's ``data_received``, which decodes each TCP chunk on its own with
  ``errors='ignore'`` (a Cyrillic caller name split across two reads loses characters) and has
  no size limit; framed messages are handed to panoramisk's ``handle_message`` so its action
  futures still work; a failing handler is logged and counted and never reaches asyncio's
  transport (which would close the connection);
* feeds every event: framer -> :class:`~connector.adapters.ami_observations.AmiTranslator` ->
  ``runtime.ingest`` (call tracker, bus);
* pings with a reply timeout (panoramisk's own pinger never reads the reply, so a half-open
  connection would go unnoticed): no ``Pong`` within ``ping_timeout`` aborts the transport, so a
  dead peer is detected within ``ping_interval + ping_timeout``;
* reconnects with jittered exponential backoff from ``reconnect_min`` to ``reconnect_max``
  (panoramisk's reconnect is a fixed interval forever and is switched off here), also after an
  authentication failure, which is logged, shown in the status and counted in metrics;
* after every (re)login sends ``CoreShowChannels``: the channels still up are translated like
  live events (the tracker adopts their calls), then ``tracker.resync(pbx, live ids, now)`` ends
  the calls that vanished while we were away. The snapshot is applied synchronously when its
  ``CoreShowChannelsComplete`` arrives, before any later event is handled, so a call that
  starts right after the snapshot is not ended by mistake;
* never lets panoramisk re-send actions after a reconnect (a re-sent ``Originate`` could ring
  twice): actions pending when the connection drops fail at once with :class:`AmiNotConnected`,
  and every action has a reply timeout (panoramisk would otherwise wait forever);
* keeps per-PBX status in ``runtime.pbx_status[name]`` and Prometheus metrics labelled ``pbx``.

Errors raised here (all :class:`~connector.adapters.errors.AdapterError`):
:class:`AmiNotConnected`, :class:`AmiAuthenticationError`, :class:`AmiActionError`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message
from prometheus_client import Counter, Gauge

from connector.adapters.ami_codec import AmiFramer, AmiMessage, encode_action
from connector.adapters.errors import AdapterError, AmiEncodeError
from connector.app import OriginateRequest, OriginateResult
from connector.config import AmiPbxSettings

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "AmiActionError",
    "AmiAdapter",
    "AmiAuthenticationError",
    "AmiNotConnected",
    "ami_components",
    "reconnect_delay",
]

# -------------------------------------------------------------------------------- metrics

CONNECTED = Gauge("connector_ami_connected", "1 while logged in to the PBX", ["pbx"])
CONNECTED_SINCE = Gauge(
    "connector_ami_connected_since_seconds", "Unix time of the current login (0: down)", ["pbx"]
)
AUTH_FAILED = Gauge("connector_ami_auth_failed", "1 while the PBX rejects our login", ["pbx"])
AUTH_FAILURES = Counter("connector_ami_auth_failures_total", "Rejected AMI logins", ["pbx"])
MESSAGES = Counter("connector_ami_messages_total", "AMI messages received", ["pbx"])
PROTOCOL_ERRORS = Counter(
    "connector_ami_protocol_errors_total", "Malformed AMI input (counted and skipped)", ["pbx"]
)
HANDLER_ERRORS = Counter(
    "connector_ami_handler_errors_total", "AMI messages whose handling failed", ["pbx"]
)
RECONNECTS = Counter("connector_ami_reconnects_total", "Logins after a lost connection", ["pbx"])
PING_TIMEOUTS = Counter(
    "connector_ami_ping_timeouts_total", "Pings without a reply (half-open connection)", ["pbx"]
)
EVENTS_PER_SECOND = Gauge(
    "connector_ami_events_per_second", "AMI messages per second (recent)", ["pbx"]
)


# -------------------------------------------------------------------------------- errors


class AmiNotConnected(AdapterError):
    """The PBX is not connected (or the connection was lost while waiting for a reply)."""


class AmiAuthenticationError(AdapterError):
    """The PBX rejected our username/secret."""


class AmiActionError(AdapterError):
    """An action got an error reply, or no reply in time."""


# -------------------------------------------------------------------------------- pure parts


def reconnect_delay(attempt: int, low: float, high: float, jitter: float) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 for the first retry).

    The ceiling doubles per attempt from ``low`` and is capped at ``high``; the delay is drawn
    between ``low`` and that ceiling by ``jitter`` in [0, 1], so many connectors restarted
    together do not reconnect in lockstep.
    """
    ceiling = min(high, low * (2.0 ** min(attempt, 62)))
    jitter = min(max(jitter, 0.0), 1.0)
    return min(high, low + (ceiling - low) * jitter)


class State(enum.StrEnum):
    """Where the connection to one PBX is."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    LOGGING_IN = "logging_in"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    AUTH_FAILED = "auth_failed"


class _PbxLog(logging.LoggerAdapter[logging.Logger]):
    """Prefix every line with the PBX name."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"[{self.extra['pbx'] if self.extra else '?'}] {msg}", kwargs


def _panoramisk_message(msg: AmiMessage) -> Message:
    """Our framed message as panoramisk's (repeated headers become lists)."""
    headers: dict[str, Any] = {}
    for name, value in msg.headers:
        if name in headers:
            old = headers[name]
            headers[name] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            headers[name] = value
    pmsg = Message(headers)
    pmsg.ami = msg
    return pmsg


# -------------------------------------------------------------------------------- panoramisk


class _FramedProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with our framing and with exceptions kept away from asyncio."""

    version: str | None
    closed: bool
    responses: dict[str, Any]

    def __init__(self, adapter: AmiAdapter) -> None:
        super().__init__()
        self._adapter = adapter
        self.framer = AmiFramer(adapter.settings.max_message_bytes)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
            self._adapter._protocol_errors(self.framer.drain_errors())
            if self.version is None and self.framer.banner:
                self.version = self.framer.banner.partition("/")[2].strip()
                self._adapter._banner(self.framer.banner)
        except Exception:  # the framer is not supposed to raise; never let it kill the transport
            self._adapter.log.exception("AMI framing failed; chunk of %d bytes skipped", len(data))
            return
        for msg in messages:
            if self.closed:
                break
            try:
                self._adapter._received(msg)
                super().handle_message(_panoramisk_message(msg))
            except Exception:
                self._adapter._handler_failed(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.framer.feed_eof()
            self._adapter._protocol_errors(self.framer.drain_errors())
        except Exception:
            self._adapter.log.exception("AMI framing failed at EOF")
        super().connection_lost(exc)

    def close(self) -> None:
        # Fail what still waits for a reply: panoramisk would park these actions and re-send
        # them after the next FullyBooted (an Originate could ring twice) or never resolve them.
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(AmiNotConnected("the AMI connection was lost"))
        super().close()


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its fixed-interval reconnect, blind pinger and re-sends."""

    pinger: asyncio.TimerHandle | None

    def __init__(self, adapter: AmiAdapter, **config: Any) -> None:
        super().__init__(**config)
        self._adapter = adapter
        self.lost = asyncio.Event()

    def ping(self) -> None:
        """Disabled: :meth:`AmiAdapter._watch` pings and checks the reply."""

    def login(self, future: asyncio.Future[Any]) -> bool:
        self.authenticated_future = None
        if future.cancelled() or future.exception() is not None:
            self.authenticated = False
            return False
        return bool(super().login(future))

    async def send_awaiting_actions(self, *_: Any) -> None:
        self.awaiting_actions.clear()

    def dispatch(self, event: Message) -> list[str]:
        msg = getattr(event, "ami", None)
        if isinstance(msg, AmiMessage):
            self._adapter._event(msg)
        return []

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        if self._adapter._lost_reason:  # we closed it ourselves and said why (ping timeout)
            pass
        elif isinstance(exc, Message):
            self._adapter._lost_reason = "the PBX is shutting down (Shutdown event)"
        elif exc is not None:
            self._adapter._lost_reason = f"connection lost: {exc}"
        else:
            self._adapter._lost_reason = "connection closed by the PBX"
        self.lost.set()


# -------------------------------------------------------------------------------- adapter


class AmiAdapter:
    """One Asterisk PBX over AMI: a runtime component and the PBX's ``CallControl``."""

    def __init__(
        self,
        runtime: Runtime,
        settings: AmiPbxSettings,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        from connector.adapters.ami_observations import AmiTranslator

        self.runtime = runtime
        self.settings = settings
        self.pbx = settings.name
        self.name = f"ami:{settings.name}"
        self.log = _PbxLog(logger, {"pbx": settings.name})
        self.translator = AmiTranslator(settings)
        self._rng = rng
        self._state = State.STOPPED
        self._manager: _Manager | None = None
        self._lost_reason = ""
        self._resync_id = ""
        self._resync_items: list[AmiMessage] = []
        self._resynced: asyncio.Event | None = None
        self._channels: dict[str, tuple[str, str]] = {}  # uniqueid -> (channel, linkedid)
        self._logins = 0
        self._rate_mark = (time.monotonic(), 0)
        self._status_changed = asyncio.Event()
        self.status: dict[str, Any] = {
            "name": settings.name,
            "type": "asterisk",
            "host": settings.host,
            "port": settings.port,
            "state": State.STOPPED.value,
            "connected": False,
            "connected_since": None,
            "events_per_second": 0.0,
            "messages_total": 0,
            "protocol_errors": 0,
            "handler_errors": 0,
            "reconnects": 0,
            "resyncs": 0,
            "auth_failed": False,
            "auth_failures": 0,
            "ping_timeouts": 0,
            "last_error": "",
            "last_error_at": None,
            "banner": "",
        }
        runtime.pbx_status[settings.name] = self.status

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The connection state."""
        return self._state

    def _set_state(self, new: State) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self.log.info("AMI %s -> %s", old.value, new.value)
        connected = new is State.CONNECTED
        self.status["state"] = new.value
        self.status["connected"] = connected
        CONNECTED.labels(self.pbx).set(1 if connected else 0)
        if connected:
            self.status["connected_since"] = datetime.now(UTC).isoformat()
            CONNECTED_SINCE.labels(self.pbx).set(time.time())
        elif old is State.CONNECTED:
            self.status["connected_since"] = None
            CONNECTED_SINCE.labels(self.pbx).set(0)
        self._notify()

    def _error(self, message: str) -> None:
        self.status["last_error"] = message
        self.status["last_error_at"] = datetime.now(UTC).isoformat()
        self._notify()

    def _notify(self) -> None:
        self._status_changed.set()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (bounded) until ``condition()`` holds; checked after every status change."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._status_changed.clear()
                await self._status_changed.wait()

    # -- component ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled: connect, log in, resync, watch, back off, repeat."""
        self.runtime.controls[self.pbx] = self
        attempt = 0
        try:
            while True:
                try:
                    await self._session()
                    attempt = 0
                    self._set_state(State.DISCONNECTED)
                    self.log.warning("AMI connection ended: %s", self._lost_reason or "closed")
                    self._error(self._lost_reason or "connection closed")
                except AmiAuthenticationError as exc:
                    self._set_state(State.AUTH_FAILED)
                    self.status["auth_failed"] = True
                    self.status["auth_failures"] += 1
                    AUTH_FAILED.labels(self.pbx).set(1)
                    AUTH_FAILURES.labels(self.pbx).inc()
                    self._error(f"authentication failed: {exc}")
                    self.log.error(
                        "AMI login as %r to %s:%d was rejected (%s); check [[pbx]] username "
                        "and secret and manager.conf",
                        self.settings.username,
                        self.settings.host,
                        self.settings.port,
                        exc,
                    )
                except (AdapterError, OSError, TimeoutError) as exc:
                    _reraise_cancellation()
                    self._set_state(State.DISCONNECTED)
                    reason = str(exc) or type(exc).__name__
                    self._error(reason)
                    self.log.warning(
                        "AMI connection to %s:%d failed: %s",
                        self.settings.host,
                        self.settings.port,
                        reason,
                    )
                delay = reconnect_delay(
                    attempt, self.settings.reconnect_min, self.settings.reconnect_max, self._rng()
                )
                attempt += 1
                self.log.info("reconnecting in %.2f s (attempt %d)", delay, attempt)
                await asyncio.sleep(delay)
        finally:
            if self.runtime.controls.get(self.pbx) is self:
                del self.runtime.controls[self.pbx]
            self._close(logoff=True)
            self._set_state(State.STOPPED)

    def _close(self, *, logoff: bool = False) -> None:
        manager, self._manager = self._manager, None
        if manager is None:
            return
        protocol = manager.protocol
        if logoff and protocol is not None and not protocol.closed and not manager.lost.is_set():
            # say goodbye so Asterisk logs a clean logoff; close() flushes this write first
            protocol.transport.write(encode_action("Logoff", {}, "logoff"))
        manager.close()

    async def _session(self) -> None:
        """One connection: returns when it ends; raises if it could not be set up."""
        loop = asyncio.get_running_loop()
        s = self.settings
        self._lost_reason = ""
        self._set_state(State.CONNECTING)
        manager = _Manager(
            self,
            loop=loop,
            host=s.host,
            port=s.port,
            username=s.username,
            secret=s.secret.get(),
            events="on",
            encoding="utf8",
            ping_delay=3600,
            reconnect_timeout=3600,
        )
        try:
            async with asyncio.timeout(s.connect_timeout):
                transport, protocol = await loop.create_connection(
                    lambda: _FramedProtocol(self), s.host, s.port
                )
        except TimeoutError:
            raise AmiNotConnected(f"no TCP connection within {s.connect_timeout:g} s") from None
        except OSError as exc:
            raise AmiNotConnected(f"cannot connect: {exc.strerror or exc}") from exc
        self._set_state(State.LOGGING_IN)
        connected: asyncio.Future[Any] = loop.create_future()
        connected.set_result((transport, protocol))
        manager.connection_made(connected)  # panoramisk sets up the protocol and sends Login
        self._manager = manager
        try:
            await self._login(manager)
            self._logins += 1
            if self._logins > 1:
                self.status["reconnects"] += 1
                RECONNECTS.labels(self.pbx).inc()
            self.status["auth_failed"] = False
            AUTH_FAILED.labels(self.pbx).set(0)
            self._set_state(State.CONNECTED)
            await self._resync(manager)
            await self._watch(manager)
        finally:
            task = asyncio.current_task()
            self._close(logoff=task is not None and task.cancelling() > 0)  # stopping: Logoff

    async def _login(self, manager: _Manager) -> None:
        action = manager.authenticated_future
        if action is None:
            raise AmiNotConnected("the connection closed before Login was sent")
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                reply = await action
        except TimeoutError:
            raise AmiNotConnected(
                f"no reply to Login within {self.settings.connect_timeout:g} s"
            ) from None
        if not reply.success:
            raise AmiAuthenticationError(reply.get("Message", "") or reply.get("Response", ""))

    async def _resync(self, manager: _Manager) -> None:
        """Ask for the channels still up; the snapshot is applied as its list completes."""
        self._resynced = asyncio.Event()
        self._resync_items = []
        if manager.lost.is_set():  # a write now would vanish into the closed transport
            raise AmiNotConnected(self._lost_reason or "the connection was lost")
        action = Action({"Action": "CoreShowChannels"})
        self._resync_id = str(action.action_id)
        try:
            async with asyncio.timeout(self._action_timeout):
                await manager.send_action(action)
        except TimeoutError:
            raise AmiNotConnected(
                f"no complete CoreShowChannels list within {self._action_timeout:g} s"
            ) from None
        if not self._resynced.is_set():  # list answered without the Complete event we expect
            self._apply_snapshot()

    @property
    def _action_timeout(self) -> float:
        return max(self.settings.ping_timeout, self.settings.connect_timeout)

    async def _watch(self, manager: _Manager) -> None:
        """Ping with a reply timeout until the connection ends."""
        s = self.settings
        while not manager.lost.is_set():
            try:
                async with asyncio.timeout(s.ping_interval):
                    await manager.lost.wait()
                return
            except TimeoutError:
                pass
            self._update_rate()
            if manager.lost.is_set():
                return
            try:
                async with asyncio.timeout(s.ping_timeout):
                    await manager.send_action({"Action": "Ping"})
            except TimeoutError:
                self.status["ping_timeouts"] += 1
                PING_TIMEOUTS.labels(self.pbx).inc()
                self._lost_reason = f"no reply to Ping within {s.ping_timeout:g} s (half-open)"
                self.log.warning("%s; aborting the connection", self._lost_reason)
                transport = getattr(manager.protocol, "transport", None)
                if transport is not None:
                    transport.abort()
                return
            except AmiNotConnected:
                return

    # -- incoming (called from the protocol, synchronously) ---------------------------------

    def _banner(self, banner: str) -> None:
        self.status["banner"] = banner
        self.log.info("AMI banner: %s", banner)

    def _protocol_errors(self, errors: list[Any]) -> None:
        if not errors:
            return
        self.status["protocol_errors"] += len(errors)
        PROTOCOL_ERRORS.labels(self.pbx).inc(len(errors))
        self.log.warning("%d AMI protocol error(s); last: %s", len(errors), errors[-1])
        self._error(f"protocol error: {errors[-1]}")

    def _handler_failed(self, msg: AmiMessage) -> None:
        self.status["handler_errors"] += 1
        HANDLER_ERRORS.labels(self.pbx).inc()
        self._notify()
        self.log.exception("handling AMI %s failed; message skipped", msg.event or msg.response)

    def _received(self, msg: AmiMessage) -> None:
        """Every framed message, before panoramisk routes it."""
        self.status["messages_total"] += 1
        MESSAGES.labels(self.pbx).inc()
        if self._resync_id and msg.action_id == self._resync_id:
            if msg.event == "CoreShowChannel":
                self._resync_items.append(msg)
            elif msg.event == "CoreShowChannelsComplete":
                self._apply_snapshot()

    def _apply_snapshot(self) -> None:
        """Adopt the channels still up and end the calls that vanished."""
        items, self._resync_items = self._resync_items, []
        self._resync_id = ""
        if self._resynced is not None:
            self._resynced.set()
        now = datetime.now(UTC)
        self._channels.clear()
        observations: list[Any] = []
        for item in items:
            self._track_channel(item)
            try:
                observations.extend(self.translator.translate(item, now))
            except Exception:
                self._handler_failed(item)
        self.runtime.ingest(observations, now)
        live = {item.get("Uniqueid") for item in items if item.get("Uniqueid")}
        resync = getattr(self.runtime.tracker, "resync", None)
        ended: list[Any] = []
        if callable(resync):
            try:
                ended = list(resync(self.pbx, live, now))
            except Exception:
                self.log.exception("call tracker resync failed")
        for event in ended:
            self.runtime.publish(event)
        self.status["resyncs"] += 1
        self._notify()
        self.log.info(
            "resynchronised: %d channel(s) up, %d call(s) ended during the outage",
            len(live),
            len(ended),
        )

    def _event(self, msg: AmiMessage) -> None:
        """An event not claimed by an action: translate it and feed the tracker."""
        self._track_channel(msg)
        now = datetime.now(UTC)
        observations = self.translator.translate(msg, now)
        if observations:
            self.runtime.ingest(observations, now)

    def _track_channel(self, msg: AmiMessage) -> None:
        """Remember live channel names by Uniqueid (Hangup needs a channel name)."""
        uid = msg.get("Uniqueid")
        channel = msg.get("Channel")
        if not uid or not channel or msg.event == "CEL":
            return
        if msg.event == "Hangup":
            self._channels.pop(uid, None)
        elif uid not in self._channels:
            if len(self._channels) >= 100_000:  # lost Hangups must not grow memory forever
                self._channels.pop(next(iter(self._channels)))
            self._channels[uid] = (channel, msg.get("Linkedid"))

    def _update_rate(self) -> None:
        now = time.monotonic()
        then, count = self._rate_mark
        total = int(self.status["messages_total"])
        if now > then:
            rate = round((total - count) / (now - then), 2)
            self.status["events_per_second"] = rate
            EVENTS_PER_SECOND.labels(self.pbx).set(rate)
        self._rate_mark = (now, total)

    # -- CallControl -------------------------------------------------------------------------

    async def _send(self, action: dict[str, Any]) -> Message:
        manager = self._manager
        if manager is None or self._state is not State.CONNECTED or manager.lost.is_set():
            raise AmiNotConnected(f"PBX {self.pbx} is not connected ({self._state.value})")
        headers = {k: v for k, v in action.items() if k != "Action"}
        encode_action(action["Action"], headers, "check")  # refuses CR/LF header injection
        try:
            async with asyncio.timeout(self._action_timeout):
                reply: Message = await manager.send_action(action, as_list=False)
        except TimeoutError:
            raise AmiActionError(
                f"no reply to {action['Action']} within {self._action_timeout:g} s"
            ) from None
        return reply

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Ring the agent's extension, then dial ``request.number`` (AMI ``Originate``, async).

        The agent leg's Uniqueid is our ``call_id`` (``ChannelId``), so every event of the call
        is ours from the first moment. Never hangs: a dead connection or a missing reply gives
        ``accepted=False`` with the reason.
        """
        s = self.settings
        number = request.number
        # a display name must not break the CallerID syntax or the AMI framing
        shown = re.sub(r'[\x00-\x1f\x7f"<>\\]', " ", request.caller_name or f"Call to {number}")
        action: dict[str, Any] = {
            "Action": "Originate",
            "Channel": s.originate_channel.format(extension=request.extension),
            "Context": s.originate_context,
            "Exten": number,
            "Priority": "1",
            "CallerID": f'"{shown}" <{number}>',
            "Timeout": str(int(request.timeout * 1000)),
            "ChannelId": request.call_id,
            "Variable": f"CRM_CALL_ID={request.call_id}",
            "Async": "true",
        }
        try:
            reply = await self._send(action)
        except (AmiNotConnected, AmiActionError, AmiEncodeError) as exc:
            self.log.warning("originate %s failed: %s", request.call_id, exc)
            return OriginateResult(accepted=False, reason=str(exc))
        if reply.success:
            self.log.info(
                "originate %s queued: %s -> %s", request.call_id, action["Channel"], number
            )
            return OriginateResult(accepted=True)
        reason = reply.get("Message", "") or reply.get("Response", "") or "rejected"
        return OriginateResult(accepted=False, reason=f"the PBX refused: {reason}")

    async def hangup(self, conversation_id: str) -> None:
        """Hang up every live channel of a conversation (or the leg with that id).

        Raises :class:`AmiNotConnected`, or :class:`AmiActionError` if no channel is known.
        """
        names = [
            channel
            for uid, (channel, linkedid) in self._channels.items()
            if conversation_id in (uid, linkedid)
        ]
        if not names:
            raise AmiActionError(f"no live channel of call {conversation_id} is known")
        for channel in names:
            reply = await self._send({"Action": "Hangup", "Channel": channel, "Cause": "16"})
            if not reply.success:
                raise AmiActionError(f"Hangup {channel}: {reply.get('Message', '')}")


def _reraise_cancellation() -> None:
    """Re-raise a cancellation that an exception from a completed future may have masked."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def ami_components(runtime: Runtime) -> list[Component]:
    """One :class:`AmiAdapter` per enabled Asterisk ``[[pbx]]``."""
    return [
        AmiAdapter(runtime, pbx)
        for pbx in runtime.settings.pbx
        if pbx.enabled and pbx.type == "asterisk"
    ]
