"""The softphone: pyVoIP (threads) on one side, asyncio on the other.

:class:`Softphone` owns a :class:`softphone.patches.PatchedPhone`. pyVoIP's threads report through
the :class:`~softphone.patches.PhoneHooks` methods below, which build small frozen events
(:mod:`softphone.events`) and cross into the event loop in exactly one place, :meth:`_to_loop`
(``loop.call_soon_threadsafe``). Blocking pyVoIP calls (start, stop, dial) run in their own
threads and hand their result back through the same place.

Registration is a state machine (:class:`~softphone.events.RegistrationState`) changed only by
:meth:`Softphone._set_state`, which logs ``old -> new``.

Usage::

    async with Softphone(settings) as phone:       # registers, raises if it cannot
        events = phone.listen()
        ev = await events.get()                      # CallRinging(...)
        phone.answer(ev.call_id)
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pyVoIP.VoIP.VoIP import CallState

from connector.config import SoftphoneSettings
from connector.events.model import Direction, Party
from softphone import events as ev
from softphone.audio import FileAudio, PhoneAudio, open_audio
from softphone.errors import (
    CallFailed,
    HoldNotSupported,
    InvalidState,
    RegistrationError,
    SoftphoneError,
)
from softphone.patches import PatchedCall, PatchedPhone

logger = logging.getLogger(__name__)

__all__ = ["AudioFactory", "PhoneOptions", "Softphone"]

T = TypeVar("T")

AudioFactory = Callable[[str, Direction], PhoneAudio]
"""Builds the audio of one call from its Call-ID and direction."""

_DIALABLE = re.compile(r"^[A-Za-z0-9+*#._-]{1,64}$")
_DTMF = re.compile(r"^[0-9*#A-Da-d]+$")
_CALL_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def recording_name(call_id: str) -> str:
    """A safe file name for the recording of call ``call_id``."""
    return _UNSAFE.sub("_", call_id)[:120] + ".wav"


@dataclass(frozen=True, slots=True)
class PhoneOptions:
    """Tuning that is not in the settings file (tests shorten these)."""

    register_expires: int = 120
    retry_interval: float = 5.0
    invite_timeout: float = 10.0
    use_device: bool = False


class Softphone:
    """A SIP phone on pyVoIP with an asyncio face: events out, commands in."""

    def __init__(
        self,
        settings: SoftphoneSettings,
        options: PhoneOptions | None = None,
        audio: AudioFactory | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or PhoneOptions()
        self.auto_answer = settings.auto_answer
        self._audio_factory = audio or self._default_audio
        self._state = ev.RegistrationState.STOPPED
        self._reason = ""
        self._error: RegistrationError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._phone: PatchedPhone | None = None
        self._listeners: list[asyncio.Queue[ev.PhoneEvent]] = []
        self._calls: dict[str, PatchedCall] = {}
        self._workers: list[threading.Thread] = []
        self._running = False

    # ---- the one crossing into asyncio ---------------------------------------------------------

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the event loop; safe from any thread (the only crossing)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed between the check and the call
            pass

    async def _in_thread(self, fn: Callable[[], T], name: str) -> T:
        """Run a blocking pyVoIP call in its own thread; the result comes back via _to_loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def run() -> None:
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting coroutine
                self._to_loop(settle, None, exc)
            else:
                self._to_loop(settle, result, None)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return await future

    # ---- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> ev.RegistrationState:
        """The registration state."""
        return self._state

    @property
    def reason(self) -> str:
        """Why the last registration attempt failed ("" when it did not)."""
        return self._reason

    @property
    def malformed(self) -> int:
        """How many malformed SIP datagrams were ignored."""
        return self._phone.sip.malformed if self._phone is not None else 0

    def _set_state(self, new: ev.RegistrationState, reason: str = "") -> None:
        """The only place the registration state changes (on the event loop)."""
        old = self._state
        if old == new and reason == self._reason:
            return
        self._state = new
        self._reason = reason
        if reason:
            logger.info("registration %s -> %s (%s)", old.value, new.value, reason)
        else:
            logger.info("registration %s -> %s", old.value, new.value)
        self._publish(ev.RegistrationChanged(old, new, reason, _now()))

    def _publish(self, event: ev.PhoneEvent) -> None:
        for queue in self._listeners:
            queue.put_nowait(event)

    def listen(self) -> asyncio.Queue[ev.PhoneEvent]:
        """A new queue that receives every event from now on."""
        queue: asyncio.Queue[ev.PhoneEvent] = asyncio.Queue()
        self._listeners.append(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[ev.PhoneEvent]) -> None:
        """Stop delivering events to ``queue``."""
        if queue in self._listeners:
            self._listeners.remove(queue)

    # ---- hooks (called in pyVoIP's threads) ----------------------------------------------------

    def registration_attempt(self, refresh: bool) -> None:
        """PhoneHooks: a REGISTER is about to go out."""
        new = ev.RegistrationState.RE_REGISTERING if refresh else ev.RegistrationState.REGISTERING
        self._to_loop(self._set_state, new, "")

    def registration_succeeded(self) -> None:
        """PhoneHooks: registered."""
        self._to_loop(self._registered)

    def registration_failed(self, error: RegistrationError) -> None:
        """PhoneHooks: the attempt failed."""
        self._to_loop(self._failed, error)

    def _registered(self) -> None:
        self._error = None
        self._set_state(ev.RegistrationState.REGISTERED)

    def _failed(self, error: RegistrationError) -> None:
        self._error = error
        self._set_state(ev.RegistrationState.FAILED, str(error))

    def call_state(self, call: PatchedCall, old: CallState | None, new: CallState) -> None:
        """PhoneHooks: a call changed state."""
        at = _now()
        if old is None:
            direction = Direction.INBOUND if call.direction_inbound else Direction.OUTBOUND
            local = Party(number=self.settings.username)
            event: ev.PhoneEvent = ev.CallRinging(call.call_id, direction, local, call.remote, at)
            self._to_loop(self._track, call, event)
            return
        if new == CallState.ANSWERED:
            self._to_loop(self._publish, ev.CallAnswered(call.call_id, at))
        elif new == CallState.ENDED:
            ended = ev.CallEnded(call.call_id, call.end_reason, at, call.end_status)
            self._to_loop(self._untrack, call.call_id, ended)

    def dtmf(self, call: PatchedCall, digit: str) -> None:
        """PhoneHooks: a key press arrived."""
        self._to_loop(self._publish, ev.DtmfReceived(call.call_id, digit, _now()))

    def _track(self, call: PatchedCall, event: ev.PhoneEvent) -> None:
        self._calls[call.call_id] = call
        self._publish(event)

    def _untrack(self, call_id: str, event: ev.PhoneEvent) -> None:
        self._calls.pop(call_id, None)
        self._publish(event)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and register. Raises :class:`RegistrationError` (or ``PortInUse``) on failure."""
        if self._running:
            raise InvalidState(f"cannot start: the phone is {self._state.value}")
        self._loop = asyncio.get_running_loop()
        s = self.settings
        self._phone = PatchedPhone(
            s.server,
            s.port,
            s.username,
            s.password.get(),
            hooks=self,
            call_worker=self._call_worker,
            my_ip=s.local_ip,
            sip_port=s.local_port,
            rtp_port_low=s.rtp_port_low,
            rtp_port_high=s.rtp_port_high,
            register_timeout=s.register_timeout,
            register_expires=self.options.register_expires,
            retry_interval=self.options.retry_interval,
            invite_timeout=self.options.invite_timeout,
        )
        self._running = True
        phone = self._phone
        try:
            await self._in_thread(phone.start, "softphone start")
        except SoftphoneError as exc:
            self._running = False
            self._phone = None
            self._set_state(ev.RegistrationState.FAILED, str(exc))
            raise
        if self._state != ev.RegistrationState.REGISTERED:
            error = self._error or RegistrationError("registration did not complete")
            await self.stop()
            self._set_state(ev.RegistrationState.FAILED, str(error))
            raise error

    async def stop(self) -> None:
        """End calls, de-register, stop pyVoIP's threads. Safe to call twice."""
        phone, self._phone = self._phone, None
        self._running = False
        if phone is not None:
            await self._in_thread(phone.stop, "softphone stop")
            workers, self._workers = self._workers, []

            def join() -> None:
                for worker in workers:
                    worker.join(timeout=5)

            await self._in_thread(join, "softphone join")
        self._set_state(ev.RegistrationState.STOPPED)

    async def __aenter__(self) -> Softphone:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- calls ---------------------------------------------------------------------------------

    def _call(self, call_id: str) -> PatchedCall:
        call = self._calls.get(call_id)
        if call is None:
            raise InvalidState(f"there is no call {call_id!r}")
        return call

    @property
    def calls(self) -> dict[str, CallState]:
        """Calls in progress and their pyVoIP states."""
        return {cid: call.state for cid, call in self._calls.items()}

    def answer(self, call_id: str) -> None:
        """Answer a ringing incoming call."""
        self._call(call_id).answer()

    def reject(self, call_id: str) -> None:
        """Decline a ringing incoming call (486 Busy Here)."""
        self._call(call_id).deny()

    def hangup(self, call_id: str) -> None:
        """Hang up an answered call, or abandon an outgoing call that still rings."""
        call = self._call(call_id)
        if call.state == CallState.DIALING:
            call.cancel()
        else:
            call.hangup()

    def send_dtmf(self, call_id: str, digits: str) -> None:
        """Send key presses (0-9, *, #, A-D) on an answered call."""
        if not _DTMF.match(digits):
            raise ValueError(f"not DTMF digits: {digits!r}")
        call = self._call(call_id)
        for digit in digits:
            call.send_dtmf(digit)

    def hold(self, call_id: str) -> None:
        """Not possible with pyVoIP 1.6: it cannot send the re-INVITE that hold needs."""
        self._call(call_id)
        raise HoldNotSupported("hold is not supported: pyVoIP 1.6 cannot send a re-INVITE")

    async def dial(self, number: str, call_id: str | None = None) -> str:
        """Call ``number``; returns the Call-ID once the callee is trying or ringing.

        pyVoIP's blocking ``call()`` runs in a thread and is bounded by ``invite_timeout``.
        Raises :class:`CallFailed` when the callee refuses or never answers. ``call_id`` sets
        the SIP Call-ID (letters, digits, ``.-_``; default: a new one).
        """
        if not _DIALABLE.match(number):
            raise CallFailed(f"not a dialable number: {number!r}")
        if call_id is not None and not _CALL_ID.match(call_id):
            raise CallFailed(f"not a usable Call-ID: {call_id!r}")
        phone = self._phone
        if phone is None or self._state not in (
            ev.RegistrationState.REGISTERED,
            ev.RegistrationState.RE_REGISTERING,
        ):
            raise InvalidState(f"cannot dial: the phone is {self._state.value}")
        try:
            call = await asyncio.wait_for(
                self._in_thread(lambda: phone.call(number, call_id), "softphone dial"),
                timeout=self.options.invite_timeout + 5,
            )
        except TimeoutError:
            raise CallFailed(f"call to {number} did not start in time") from None
        except OSError as exc:
            raise CallFailed(f"call to {number} failed: {exc}") from exc
        self._calls[call.call_id] = call
        worker = threading.Thread(
            target=self._call_worker, args=(call,), name=f"call {number}", daemon=True
        )
        self._workers.append(worker)
        worker.start()
        return str(call.call_id)

    # ---- per-call thread: auto-answer and audio --------------------------------------------------

    def _default_audio(self, call_id: str, direction: Direction) -> PhoneAudio:
        out_dir = self.settings.audio_out_dir
        sink = out_dir / recording_name(call_id) if out_dir is not None else None
        return open_audio(
            use_device=self.options.use_device, source=self.settings.audio_in, sink=sink
        )

    def _call_worker(self, call: PatchedCall) -> None:
        """Runs for the life of one call: pyVoIP's call thread (incoming) or ours (outgoing)."""
        try:
            if call.direction_inbound:
                self._workers.append(threading.current_thread())
                if self.auto_answer and call.state == CallState.RINGING:
                    call.answer()
            while self._running and call.state in (CallState.RINGING, CallState.DIALING):
                call.wait_state(lambda s: s not in (CallState.RINGING, CallState.DIALING), 0.5)
            if call.state == CallState.ANSWERED:
                self._pump_audio(call)
        except Exception:
            logger.exception("call %s: worker failed", call.call_id)

    def _pump_audio(self, call: PatchedCall) -> None:
        direction = Direction.INBOUND if call.direction_inbound else Direction.OUTBOUND
        audio = self._audio_factory(call.call_id, direction)
        received = 0
        try:
            audio.start(call.write_audio)
            while call.state == CallState.ANSWERED:
                received += self._drain(call, audio)
                call.wait_state(lambda s: s != CallState.ANSWERED, 0.02)
            received += self._drain(call, audio)
        finally:
            audio.close()
        if isinstance(audio, FileAudio) and audio.sink.path is not None:
            saved = ev.RecordingSaved(call.call_id, Path(audio.sink.path), received, _now())
            self._to_loop(self._publish, saved)

    @staticmethod
    def _drain(call: PatchedCall, audio: PhoneAudio) -> int:
        available = call.readable()
        if available <= 0:
            return 0
        audio.play(call.read_audio(available, blocking=False))
        return available


def _now() -> datetime:
    return datetime.now(UTC)
