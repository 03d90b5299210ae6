"""A thin patch layer over pyVoIP 1.6.8: subclasses that fix the defects that bite a softphone.

Each fix is small and has an integration test against sipp that shows the defect in the stock
library and the fix here (``tests/integration/test_softphone_patches.py``):

* **OPTIONS is never answered** (the parser rejects the method): a PBX that qualifies peers marks
  the phone unreachable. -> :meth:`PatchedSIPClient.handle_datagram` answers ``200 OK``.
* **Unknown methods and malformed datagrams** are dropped silently -> ``405`` / ``400`` when the
  message can be answered, otherwise counted in :attr:`PatchedSIPClient.malformed` and logged.
* **Register, de-register and INVITE take whatever datagram comes next as their answer** (an
  ``OPTIONS`` or an ``INVITE`` arriving at that moment is taken for the registrar's reply). ->
  :meth:`PatchedSIPClient._await_response` waits for the response with the right Call-ID and
  hands everything else to the normal dispatcher.
* **The blocking-socket race**: after registering, the socket stays non-blocking and ``call()``
  raises ``BlockingIOError``. -> every read waits with ``select`` first, with a deadline.
* **``call()`` has no timeout** and hangs when the callee answers a final error. -> bounded
  wait; ``4xx/5xx/6xx`` end the call with a reason instead of leaving it DIALING forever.
* **Rejecting a ringing call crashes** (``deny()`` stops RTP clients that never started). ->
  :meth:`PatchedCall.deny` sends ``486`` and ends the call itself.
* **CANCEL leaves the call ringing forever** and no ``487`` is sent. -> the call ends
  (``EndReason.CANCELLED``) and the INVITE gets ``487 Request Terminated``.
* **A dialing call cannot be abandoned** (only ``hangup()`` of an answered call exists). ->
  :meth:`PatchedCall.cancel` sends ``CANCEL``.
* **The caller's display name keeps a stray quote** (``'Caller Sipp" '``). ->
  :attr:`PatchedCall.remote` parses the From header properly.
* **No DTMF sending** -> :meth:`PatchedCall.send_dtmf` sends RFC 4733 packets on the call's RTP
  socket.
* **Digest ignores ``qop``** (Asterisk PJSIP challenges with ``qop="auth"``) and uses a URI
  that is not the Request-URI. -> :func:`softphone.sipmsg.digest_authorization`.
* **The registrar's granted ``Expires`` is ignored** (refresh at our 120 s - 5 even if it granted
  60). -> the refresh follows the grant.
* **Registration gives up for good after three failures** and a stopped registrar kills the phone.
  -> :meth:`PatchedSIPClient.register` makes one attempt, reports it, and after a failed refresh
  retries every ``retry_interval`` seconds while the phone keeps running.
* **No state callbacks**: ``VoIPCall.state`` is a plain attribute. -> a property that reports
  every change to :class:`PhoneHooks`.
* **Stopping RTP races its own transmit thread** (a ``RuntimeWarning`` raised in that thread).
  -> :class:`PatchedRTPClient` joins its threads before closing the socket.
* **Hold**: pyVoIP 1.6 sends no re-INVITE, so hold is not possible; this layer does not fake it.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, cast

from pyVoIP import RTP, SIP
from pyVoIP.VoIP.status import PhoneStatus
from pyVoIP.VoIP.VoIP import CallState, InvalidStateError, VoIPCall, VoIPPhone

from connector.events.model import Party
from softphone import sipmsg
from softphone.errors import (
    AuthenticationFailed,
    CallFailed,
    InvalidState,
    PortInUse,
    RegistrarUnreachable,
    RegistrationError,
    SoftphoneError,
)
from softphone.events import EndReason

logger = logging.getLogger(__name__)

__all__ = ["PatchedCall", "PatchedPhone", "PatchedSIPClient", "PhoneHooks"]

_READ_SIZE = 65_535


class PhoneHooks(Protocol):
    """What the patched classes report, from pyVoIP's threads. Implementations must not block."""

    def registration_attempt(self, refresh: bool) -> None:
        """A REGISTER is about to be sent (``refresh``: a registration existed before)."""

    def registration_succeeded(self) -> None:
        """The registrar accepted the registration."""

    def registration_failed(self, error: RegistrationError) -> None:
        """The attempt failed; ``error`` says why."""

    def call_state(self, call: PatchedCall, old: CallState | None, new: CallState) -> None:
        """A call changed state (``old`` is None for a new call)."""

    def dtmf(self, call: PatchedCall, digit: str) -> None:
        """A key press arrived on a call."""


class PatchedRTPClient(RTP.RTPClient):
    """An RTP client whose stop() waits for its threads before closing the socket.

    Stock ``stop()`` closes the socket while the transmit thread may be sending: the send
    fails and pyVoIP raises a ``RuntimeWarning`` in that thread.
    """

    def start(self) -> None:
        """Bind and start the receive and transmit threads (kept, to be joined on stop)."""
        self.sin = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sout = self.sin
        self.sin.bind((self.inIP, self.inPort))
        self.sin.setblocking(False)
        self._threads = [
            threading.Thread(target=self.recv, name="RTP receive", daemon=True),
            threading.Thread(target=self.trans, name="RTP transmit", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the threads (bounded wait), then close the socket."""
        self.NSD = False
        for thread in getattr(self, "_threads", []):
            if thread is not threading.current_thread():
                thread.join(timeout=1)
        if hasattr(self, "sin"):
            self.sin.close()


class PatchedCall(VoIPCall):
    """A :class:`VoIPCall` that reports state changes and knows why it ended."""

    end_reason: EndReason = EndReason.FAILED
    end_status: int = 0

    def __init__(self, *args: Any, inbound: bool, hooks: PhoneHooks, **kwargs: Any) -> None:
        self.__dict__["_inbound"] = inbound
        self.hooks: PhoneHooks | None = None  # silent while pyVoIP builds the call
        super().__init__(*args, **kwargs)
        self.hooks = hooks
        hooks.call_state(self, None, self.state)

    @property
    def state(self) -> CallState:
        """The pyVoIP call state; every assignment is reported to the hooks."""
        return self.__dict__["_state"]  # type: ignore[no-any-return]

    @state.setter
    def state(self, new: CallState) -> None:
        old: CallState | None = self.__dict__.get("_state")
        self.__dict__["_state"] = new
        self.__dict__.setdefault("_changed", threading.Condition())
        cond: threading.Condition = self.__dict__["_changed"]
        with cond:
            cond.notify_all()
        if old != new and self.hooks is not None:
            try:
                self.hooks.call_state(self, old, new)
            except Exception:
                logger.exception("call state hook failed")

    def wait_state(self, predicate: Callable[[CallState], bool], timeout: float) -> bool:
        """Wait until ``predicate(state)`` holds; False if ``timeout`` passed first."""
        cond: threading.Condition = self.__dict__.setdefault("_changed", threading.Condition())
        with cond:
            return cond.wait_for(lambda: predicate(self.state), timeout)

    @property
    def remote(self) -> Party:
        """The other party: the caller of an incoming call, the callee of an outgoing one."""
        header = "From" if self.direction_inbound else "To"
        raw = self.request.headers.get(header, {}).get("raw", "")
        return sipmsg.parse_party(str(raw))

    @property
    def direction_inbound(self) -> bool:
        """True for a call that rang here."""
        return bool(self.__dict__.get("_inbound", False))

    def _end(self, reason: EndReason, status: int = 0) -> None:
        self.end_reason = reason
        self.end_status = status

    def deny(self) -> None:
        """Reject a ringing call with 486 Busy Here."""
        if self.state != CallState.RINGING:
            raise InvalidState(f"cannot reject: the call is {self.state.value.lower()}")
        # pyVoIP's deny() stops RTP clients that were never started and crashes
        # (AttributeError: 'RTPClient' object has no attribute 'sin').
        message = self.sip.gen_busy(self.request)
        self.sip.out.sendto(message.encode("utf8"), (self.phone.server, self.phone.port))
        self._finish(EndReason.REJECTED, 486)

    def answer(self) -> None:
        """Answer a ringing call."""
        if self.state != CallState.RINGING:
            raise InvalidState(f"cannot answer: the call is {self.state.value.lower()}")
        super().answer()

    def hangup(self) -> None:
        """Hang up an answered call (BYE)."""
        if self.state != CallState.ANSWERED:
            raise InvalidState(f"cannot hang up: the call is {self.state.value.lower()}")
        self._end(EndReason.LOCAL_HANGUP)
        super().hangup()

    def bye(self) -> None:
        """The other side sent BYE."""
        if self.state == CallState.ANSWERED:
            self._end(EndReason.REMOTE_HANGUP)
        super().bye()

    def cancel(self) -> None:
        """Abandon an outgoing call that has not been answered yet (sends CANCEL)."""
        if self.state != CallState.DIALING:
            raise InvalidState(f"cannot cancel: the call is {self.state.value.lower()}")
        message = sipmsg.build_cancel(self.request.raw)
        self.sip.out.sendto(message, (self.phone.server, self.phone.port))
        self._finish(EndReason.CANCELLED, 0)

    def _finish(self, reason: EndReason, status: int) -> None:
        """End the call from outside pyVoIP's own paths (CANCEL, error response, stop)."""
        if self.state == CallState.ENDED:
            return
        self._stop_rtp()
        self._end(reason, status)
        self.state = CallState.ENDED
        self.phone.calls.pop(self.call_id, None)

    def create_rtp_clients(
        self,
        codecs: dict[int, RTP.PayloadType],
        ip: str,
        port: int,
        request: SIP.SIPMessage,
        baseport: int,
    ) -> None:
        """As pyVoIP's, with :class:`PatchedRTPClient`."""
        for ii in range(len(request.body["c"])):
            self.RTPClients.append(
                PatchedRTPClient(
                    codecs,
                    ip,
                    port,
                    request.body["c"][ii]["address"],
                    baseport + ii,
                    self.sendmode,
                    dtmf=self.dtmf_callback,
                )
            )

    def _stop_rtp(self) -> None:
        for client in self.RTPClients:
            if hasattr(client, "sin"):  # only started clients have sockets
                try:
                    client.stop()
                except OSError:
                    pass
            client.NSD = False

    def dtmf_callback(self, code: str) -> None:
        """pyVoIP's RTP thread saw a key press."""
        super().dtmf_callback(code)
        if self.hooks is not None:
            self.hooks.dtmf(self, code)

    def send_dtmf(self, digit: str) -> None:
        """Send one key press as RFC 4733 telephone-events on the call's RTP stream."""
        if self.state != CallState.ANSWERED:
            raise InvalidState(f"cannot send DTMF: the call is {self.state.value.lower()}")
        for client in self.RTPClients:
            pt = next((k for k, v in client.assoc.items() if v == RTP.PayloadType.EVENT), 101)
            packets = sipmsg.dtmf_packets(
                digit,
                payload_type=int(pt),
                sequence=client.outSequence,
                timestamp=client.outTimestamp,
                ssrc=client.outSSRC,
            )
            client.outSequence += len(packets)
            for packet in packets:
                client.sout.sendto(packet, (client.outIP, client.outPort))

    def readable(self) -> int:
        """How many received phone-format bytes can be read without padding."""
        total = 0
        for client in self.RTPClients[:1]:
            buf = client.pmin.buffer
            with client.pmin.bufferLock:
                total = len(buf.getbuffer()) - buf.tell()
        return max(0, total)


class PatchedSIPClient(SIP.SIPClient):
    """A :class:`SIPClient` with matched responses, bounded waits and more methods answered."""

    def __init__(
        self,
        *args: Any,
        hooks: PhoneHooks,
        retry_interval: float = 5.0,
        invite_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.hooks = hooks
        self.retry_interval = retry_interval
        self.invite_timeout = invite_timeout
        # re-entrant, so PatchedPhone.call() can hold it around invite()
        self.recvLock = threading.RLock()  # type: ignore[assignment]
        self.registered_once = False
        self.malformed = 0
        self.early_final: dict[str, SIP.SIPMessage] = {}
        self._recv_thread: threading.Thread | None = None
        self.s: socket.socket
        self.out: socket.socket

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, make the first registration attempt, then start the receive thread."""
        if self.NSD:
            raise InvalidState("the SIP client is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.myIP, self.myPort))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"UDP port {self.myIP}:{self.myPort} is already in use by another program"
                ) from exc
            raise SoftphoneError(f"cannot bind {self.myIP}:{self.myPort}: {exc}") from exc
        sock.setblocking(False)
        self.s = self.out = sock
        self.NSD = True
        self.register()
        self._recv_thread = threading.Thread(target=self.recv_loop, name="SIP receive", daemon=True)
        self._recv_thread.start()

    def stop(self) -> None:
        """De-register (one bounded attempt), stop the threads and close the socket."""
        if not self.NSD:
            return
        if self.registerThread is not None:
            self.registerThread.cancel()
        if self.phone._status == PhoneStatus.REGISTERED:
            self.deregister()
        self.NSD = False
        if self._recv_thread is not None and self._recv_thread is not threading.current_thread():
            self._recv_thread.join(timeout=2)
        self._close_sockets()

    # ---- receiving ---------------------------------------------------------------------------

    def _ready(self, timeout: float) -> bool:
        try:
            return bool(select.select([self.s], [], [], max(0.0, timeout))[0])
        except (OSError, ValueError):  # socket closed by stop()
            return False

    def _read(self) -> tuple[bytes, tuple[str, int]] | None:
        try:
            data, addr = self.s.recvfrom(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except ConnectionRefusedError:  # an ICMP port-unreachable from an earlier send
            return None
        return data, addr

    def recv_loop(self) -> None:
        """Read datagrams until stopped; every wait is bounded so stop() is prompt."""
        while self.NSD:
            if not self._ready(0.05):
                continue
            with self.recvLock:
                if not self.NSD or not self._ready(0):
                    continue
                try:
                    got = self._read()
                except OSError:
                    if not self.NSD:
                        return
                    logger.exception("SIP socket error")
                    continue
                if got is not None:
                    self.handle_datagram(*got)

    def recv(self) -> None:
        """Read and handle one datagram if one is waiting (the stock loop's entry point)."""
        got = self._read()
        if got is not None:
            self.handle_datagram(*got)

    def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.out.sendto(data, addr)
        except OSError as exc:
            logger.warning("cannot send to %s:%s: %s", addr[0], addr[1], exc)

    def _count_malformed(self, raw: bytes, addr: tuple[str, int], why: str) -> None:
        self.malformed += 1
        logger.warning(
            "ignored a malformed SIP datagram from %s:%s (%d bytes): %s",
            addr[0],
            addr[1],
            len(raw),
            why,
        )

    def handle_datagram(self, raw: bytes, addr: tuple[str, int]) -> None:
        """Dispatch one datagram. Never raises: bad input is answered or counted and logged."""
        if raw in (b"", b"\x00\x00\x00\x00", b"\r\n\r\n", b"\r\n"):
            return  # keep-alives
        try:
            self._dispatch(raw, addr)
        except Exception as exc:
            self._count_malformed(raw, addr, f"{type(exc).__name__}: {exc}")

    def _dispatch(self, raw: bytes, addr: tuple[str, int]) -> None:
        status = sipmsg.response_status(raw)
        if status is not None:
            message = SIP.SIPMessage(raw)
            cseq = message.headers.get("CSeq", {})
            if cseq.get("method") == "INVITE" and status >= 300:
                self._invite_rejected(message, status)
                return
            if cseq.get("method") in ("REGISTER", "CANCEL", "BYE", "OPTIONS"):
                return  # late or stray answers to our own transactions
            self.parse_message(message)
            return
        method = sipmsg.request_method(raw)
        if method is None:
            self._count_malformed(raw, addr, "neither a SIP request nor a response")
            return
        if method == "OPTIONS":
            self._reply(
                sipmsg.build_response(
                    raw, 200, "OK", extra=(f"Allow: {sipmsg.ALLOW}", "Accept: application/sdp")
                ),
                addr,
            )
            return
        if method == "CANCEL":
            self._cancelled(raw, addr)
            return
        if method not in ("INVITE", "ACK", "BYE"):
            self._reply(
                sipmsg.build_response(
                    raw, 405, "Method Not Allowed", extra=(f"Allow: {sipmsg.ALLOW}",)
                ),
                addr,
            )
            return
        try:
            message = SIP.SIPMessage(raw)
            if method == "INVITE" and "Call-ID" not in message.headers:
                raise sipmsg.MalformedMessage("no Call-ID header")
        except Exception as exc:
            self._count_malformed(raw, addr, f"{type(exc).__name__}: {exc}")
            if method != "ACK":
                try:
                    self._reply(sipmsg.build_response(raw, 400, "Bad Request"), addr)
                except sipmsg.MalformedMessage:
                    pass
            return
        self.parse_message(message)

    def _cancelled(self, raw: bytes, addr: tuple[str, int]) -> None:
        call_id = sipmsg.header_values(raw, "Call-ID")
        call = self.phone.calls.get(call_id[0]) if call_id else None
        if not isinstance(call, PatchedCall) or call.state != CallState.RINGING:
            self._reply(sipmsg.build_response(raw, 481, "Call/Transaction Does Not Exist"), addr)
            return
        self._reply(sipmsg.build_response(raw, 200, "OK"), addr)
        tag = self.tagLibrary.get(call.call_id)
        self._reply(
            sipmsg.build_response(call.request.raw, 487, "Request Terminated", to_tag=tag), addr
        )
        call._finish(EndReason.CANCELLED, 487)

    def _invite_rejected(self, message: SIP.SIPMessage, status: int) -> None:
        call_id = message.headers["Call-ID"]
        if call_id in self.tagLibrary:
            self.out.sendto(self.gen_ack(message).encode("utf8"), (self.server, self.port))
        call = self.phone.calls.get(call_id)
        if isinstance(call, PatchedCall):
            reason = {486: EndReason.BUSY, 600: EndReason.BUSY, 603: EndReason.DECLINED}.get(
                status, EndReason.FAILED
            )
            call._finish(reason, status)

    # ---- transactions of our own ---------------------------------------------------------------

    def _await_response(
        self,
        call_id: str,
        timeout: float,
        on_timeout: Callable[[], Exception],
        skip_provisional: bool = True,
    ) -> SIP.SIPMessage:
        """Wait for the response with ``call_id``; dispatch every other datagram meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._ready(left):
                raise on_timeout()
            got = self._read()
            if got is None:
                continue
            raw, addr = got
            status = sipmsg.response_status(raw)
            try:
                ours = status is not None and sipmsg.header_values(raw, "Call-ID")[:1] == [call_id]
            except sipmsg.MalformedMessage:
                ours = False
            if not ours:
                self.handle_datagram(raw, addr)
                continue
            try:
                message = SIP.SIPMessage(raw)
            except Exception as exc:
                self._count_malformed(raw, addr, f"{type(exc).__name__}: {exc}")
                continue
            if skip_provisional and status is not None and status < 200:
                continue
            return message

    def register(self) -> bool:
        """One registration attempt; report it; schedule the refresh or the retry."""
        refresh = self.registered_once
        self.hooks.registration_attempt(refresh)
        try:
            with self.recvLock:
                granted = self._register_once()
        except RegistrationError as exc:
            self.phone._status = PhoneStatus.FAILED
            self.hooks.registration_failed(exc)
            if refresh and not isinstance(exc, AuthenticationFailed):
                self._schedule(self.retry_interval)
            return False
        except OSError as exc:
            if not self.NSD:
                return False
            error = RegistrarUnreachable(f"cannot reach registrar {self.server}:{self.port}: {exc}")
            self.phone._status = PhoneStatus.FAILED
            self.hooks.registration_failed(error)
            if refresh:
                self._schedule(self.retry_interval)
            return False
        self.registered_once = True
        self.phone._status = PhoneStatus.REGISTERED
        self.hooks.registration_succeeded()
        # Refresh before the registrar's grant runs out (it may grant less than we asked).
        self._schedule(granted - 5.0 if granted > 10 else max(1.0, granted / 2))
        return True

    def _schedule(self, delay: float) -> None:
        if not self.NSD:
            return
        timer = threading.Timer(delay, self.register)
        timer.name = "SIP register"
        timer.daemon = True
        self.registerThread = timer
        timer.start()

    def _unreachable(self) -> RegistrarUnreachable:
        return RegistrarUnreachable(
            f"no answer from registrar {self.server}:{self.port} within {self.register_timeout:g} s"
        )

    def _with_digest(self, request: str, challenge: SIP.SIPMessage, method: str, uri: str) -> str:
        """``request`` with an Authorization header answering ``challenge`` (qop-aware)."""
        values = sipmsg.header_values(challenge.raw, "WWW-Authenticate")
        try:
            params = sipmsg.parse_challenge(values[0]) if values else {}
            auth = sipmsg.digest_authorization(
                params, method=method, uri=uri, username=self.username, password=self.password
            )
        except sipmsg.MalformedMessage as exc:
            raise RegistrationError(f"cannot answer the registrar's challenge: {exc}") from exc
        lines = [
            line for line in request.split("\r\n") if not line.lower().startswith("authorization:")
        ]
        cut = next(i for i, line in enumerate(lines) if line.startswith("Content-Length"))
        lines.insert(cut, f"Authorization: {auth}")
        return "\r\n".join(lines)

    def _register_once(self, deregister: bool = False) -> int:
        self.phone._status = PhoneStatus.DEREGISTERING if deregister else PhoneStatus.REGISTERING
        first = self.gen_first_response(deregister=deregister)
        call_id = sipmsg.header_values(first.encode("utf8"), "Call-ID")[0]
        self.out.sendto(first.encode("utf8"), (self.server, self.port))
        response = self._await_response(call_id, self.register_timeout, self._unreachable)
        status = int(response.status)
        if status in (401, 407):
            if status == 407 or "nonce" not in response.authentication:
                raise RegistrationError(
                    f"registrar {self.server}:{self.port} asks for an authentication "
                    f"this phone does not support ({status})"
                )
            again = self._with_digest(
                self.gen_register(response, deregister=deregister),
                response,
                "REGISTER",
                f"sip:{self.server}",
            )
            self.out.sendto(again.encode("utf8"), (self.server, self.port))
            response = self._await_response(call_id, self.register_timeout, self._unreachable)
            status = int(response.status)
            if status in (401, 403, 407):
                raise AuthenticationFailed(
                    f"registrar {self.server}:{self.port} rejected the password of user "
                    f"{self.username!r} ({status} {response.status.phrase})"
                )
        if status in (403, 404):
            raise AuthenticationFailed(
                f"registrar {self.server}:{self.port} refused user {self.username!r} "
                f"({status} {response.status.phrase})"
            )
        if status != 200:
            raise RegistrationError(
                f"registrar {self.server}:{self.port} answered {status} {response.status.phrase}"
            )
        return sipmsg.granted_expires(response.raw, int(self.default_expires))

    def deregister(self) -> bool:
        """One bounded REGISTER with Expires: 0; failures are logged, never raised."""
        try:
            with self.recvLock:
                self._register_once(deregister=True)
        except (SoftphoneError, OSError) as exc:
            logger.info("de-registration did not complete: %s", exc)
            return False
        self.phone._status = PhoneStatus.INACTIVE
        return True

    def invite(
        self,
        number: str,
        ms: dict[int, dict[str, RTP.PayloadType]],
        sendtype: Any,
        call_id: str | None = None,
    ) -> tuple[SIP.SIPMessage, str, int]:
        """Send an INVITE and wait (bounded) for the first answer; digest-authenticate if asked.

        Returns once the callee is trying/ringing. A final error raises :class:`CallFailed`; an
        immediate 200 is kept in :attr:`early_final` for the call object to pick up.
        ``call_id`` sets the SIP Call-ID (default: a new one).
        """
        branch = "z9hG4bK" + uuid.uuid4().hex[:25]
        call_id = call_id or self.gen_call_id()
        sess_id = self.sessID.next()
        invite = self.gen_invite(number, str(sess_id), ms, sendtype, branch, call_id)
        with self.recvLock:
            self.out.sendto(invite.encode("utf8"), (self.server, self.port))

            def timeout() -> Exception:
                return CallFailed(f"no answer to INVITE {number} within {self.invite_timeout:g} s")

            response = self._await_response(
                call_id, self.invite_timeout, timeout, skip_provisional=False
            )
            status = int(response.status)
            if status < 200:
                return SIP.SIPMessage(invite.encode("utf8")), call_id, sess_id
            if status == 200:
                self.early_final[call_id] = response
                return SIP.SIPMessage(invite.encode("utf8")), call_id, sess_id
            self.out.sendto(self.gen_ack(response).encode("utf8"), (self.server, self.port))
            if status != 401 or "nonce" not in response.authentication:
                raise CallFailed(f"call to {number} failed: {status} {response.status.phrase}")
            invite = self.gen_invite(number, str(sess_id), ms, sendtype, branch, call_id)
            try:
                invite = self._with_digest(
                    invite, response, "INVITE", f"sip:{number}@{self.server}"
                )
            except RegistrationError as exc:
                raise CallFailed(f"call to {number}: {exc}") from exc
            self.out.sendto(invite.encode("utf8"), (self.server, self.port))
            return SIP.SIPMessage(invite.encode("utf8")), call_id, sess_id


class PatchedPhone(VoIPPhone):
    """A :class:`VoIPPhone` built on :class:`PatchedSIPClient` and :class:`PatchedCall`."""

    sip: PatchedSIPClient

    def __init__(
        self,
        server: str,
        port: int,
        username: str,
        password: str,
        *,
        hooks: PhoneHooks,
        call_worker: Callable[[PatchedCall], None],
        my_ip: str,
        sip_port: int,
        rtp_port_low: int,
        rtp_port_high: int,
        register_timeout: float,
        register_expires: int,
        retry_interval: float,
        invite_timeout: float,
    ) -> None:
        super().__init__(
            server,
            port,
            username,
            password,
            myIP=my_ip,
            callCallback=lambda call: call_worker(cast(PatchedCall, call)),
            sipPort=sip_port,
            rtpPortLow=rtp_port_low,
            rtpPortHigh=rtp_port_high,
        )
        self.hooks = hooks
        self.sip = PatchedSIPClient(
            server,
            port,
            username,
            password,
            phone=self,
            myIP=my_ip,
            myPort=sip_port,
            callCallback=self.callback,
            fatalCallback=self.fatal,
            hooks=hooks,
            retry_interval=retry_interval,
            invite_timeout=invite_timeout,
        )
        self.sip.register_timeout = register_timeout  # type: ignore[assignment]  # float is fine
        self.sip.default_expires = register_expires

    def _create_Call(self, request: SIP.SIPMessage, sess_id: int) -> None:  # noqa: N802
        call_id = request.headers["Call-ID"]
        self.calls[call_id] = PatchedCall(
            self,
            CallState.RINGING,
            request,
            sess_id,
            self.myIP,
            sendmode=self.recvmode,
            inbound=True,
            hooks=self.hooks,
        )

    def call(self, number: str, call_id: str | None = None) -> PatchedCall:
        """Dial ``number``: blocks until the callee is trying or ringing (bounded).

        ``call_id`` sets the SIP Call-ID (click-to-call passes the connector's call id, so the
        call's events carry it).
        """
        port = self.request_port()
        medias: dict[int, dict[Any, RTP.PayloadType]] = {
            port: {0: RTP.PayloadType.PCMU, 101: RTP.PayloadType.EVENT}
        }
        try:
            with self.sip.recvLock:  # so no answer is dispatched before the call object exists
                request, call_id, sess_id = self.sip.invite(
                    number, medias, RTP.TransmitType.SENDRECV, call_id
                )
                call = PatchedCall(
                    self,
                    CallState.DIALING,
                    request,
                    sess_id,
                    self.myIP,
                    ms=medias,
                    sendmode=self.sendmode,
                    inbound=False,
                    hooks=self.hooks,
                )
                self.calls[call_id] = call
                early = self.sip.early_final.pop(call_id, None)
                if early is not None:
                    self.callback(early)
        except BaseException:
            if port in self.assignedPorts:
                self.assignedPorts.remove(port)
            raise
        return call

    def stop(self, failed: bool = False) -> None:
        """End every call (hang up, reject or cancel), de-register and stop."""
        self._status = PhoneStatus.DEREGISTERING
        for call in list(self.calls.values()):
            if not isinstance(call, PatchedCall):
                continue
            try:
                if call.state == CallState.ANSWERED:
                    call.hangup()
                elif call.state == CallState.RINGING:
                    call.deny()
                elif call.state == CallState.DIALING:
                    call.cancel()
            except (InvalidState, InvalidStateError, OSError) as exc:
                logger.info("ending call %s on stop: %s", call.call_id, exc)
        self.sip.stop()
        self._status = PhoneStatus.FAILED if failed else PhoneStatus.INACTIVE
