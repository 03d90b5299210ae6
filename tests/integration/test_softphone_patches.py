"""Each pyVoIP 1.6.8 defect the patch layer fixes: the stock library against sipp, then the fix.

The stock ``VoIPPhone`` has no callbacks for most of what it does wrong, so the "defect" halves
poll its state with :func:`until` (bounded); the patched halves wait on events.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVoIP.VoIP.status import PhoneStatus
from pyVoIP.VoIP.VoIP import CallState, VoIPCall, VoIPPhone

from softphone import events as ev
from softphone.patches import PatchedCall, PatchedPhone
from softphone.phone import Softphone
from softphone.sipmsg import response_status
from tests.data.sip.pcap import tone_ulaw, write_rtp_pcap
from tests.integration.softphone_sipp import Sipp, free_udp_port, phone_settings

pytestmark = pytest.mark.sip


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (stock pyVoIP has nothing to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def sipp_factory(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    started: list[Sipp] = []

    def make(scenario: str, **variables: str | int) -> Sipp:
        sipp = Sipp(scenario, free_udp_port(), tmp_path, **variables).start()
        started.append(sipp)
        return sipp

    yield make
    for sipp in started:
        sipp.stop()


@pytest.fixture
def stock_phones() -> Iterator[list[VoIPPhone]]:
    phones: list[VoIPPhone] = []
    yield phones
    for phone in phones:
        phone.stop()


def stock_phone(sipp: Sipp, callback: Callable[[VoIPCall], None] | None = None) -> VoIPPhone:
    port = free_udp_port()
    phone = VoIPPhone(
        "127.0.0.1", sipp.port, "alice", "secret", myIP="127.0.0.1", callCallback=callback,
        sipPort=free_udp_port(), rtpPortLow=port, rtpPortHigh=port,
    )  # fmt: skip
    phone.sip.register_timeout = 1
    return phone


class Hooks:
    """Minimal PhoneHooks for driving PatchedPhone directly: remembers calls and states."""

    def __init__(self) -> None:
        self.calls: list[PatchedCall] = []
        self.changed = threading.Event()

    def registration_attempt(self, refresh: bool) -> None:
        pass

    def registration_succeeded(self) -> None:
        pass

    def registration_failed(self, error: Any) -> None:
        pass

    def call_state(self, call: PatchedCall, old: Any, new: Any) -> None:
        if old is None:
            self.calls.append(call)
        self.changed.set()

    def dtmf(self, call: PatchedCall, digit: str) -> None:
        pass


def patched_phone(sipp: Sipp, hooks: Hooks) -> PatchedPhone:
    port = free_udp_port()
    return PatchedPhone(
        "127.0.0.1", sipp.port, "alice", "secret", hooks=hooks, call_worker=lambda call: None,
        my_ip="127.0.0.1", sip_port=free_udp_port(), rtp_port_low=port, rtp_port_high=port,
        register_timeout=1.0, register_expires=120, retry_interval=5.0, invite_timeout=5.0,
    )  # fmt: skip


def send_options(phone_port: int) -> bytes | None:
    """Send an OPTIONS to the phone; its answer, or None after 1 s of silence."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(1.0)
        me = peer.getsockname()[1]
        peer.sendto(
            (
                f"OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKq\r\n"
                f"From: <sip:q@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\n"
                f"Call-ID: qualify-{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", phone_port),
        )
        try:
            return peer.recv(65535)
        except TimeoutError:
            return None


async def test_options_unanswered_by_stock_answered_when_patched(
    sipp_factory, stock_phones, tmp_path
) -> None:
    sipp = sipp_factory("registrar")
    stock = stock_phone(sipp)
    stock_phones.append(stock)
    await asyncio.to_thread(stock.start)
    assert until(lambda: stock.get_status() == PhoneStatus.REGISTERED)
    assert await asyncio.to_thread(send_options, stock.sip.myPort) is None  # the defect

    phone = Softphone(phone_settings(sipp.port, tmp_path))
    await phone.start()
    try:
        answer = await asyncio.to_thread(send_options, phone.settings.local_port)
        assert answer is not None and response_status(answer) == 200  # the fix
    finally:
        await phone.stop()


async def test_register_misreads_options_in_stock_not_when_patched(
    sipp_factory, stock_phones, tmp_path
) -> None:
    stock = stock_phone(sipp_factory("registrar_qualifies"))
    stock_phones.append(stock)
    await asyncio.to_thread(stock.start)
    # The defect: the OPTIONS is taken for the registrar's answer; three failures, then FAILED.
    assert until(lambda: stock.get_status() == PhoneStatus.FAILED)

    phone = Softphone(phone_settings(sipp_factory("registrar_qualifies").port, tmp_path))
    try:
        await phone.start()
        assert phone.state == ev.RegistrationState.REGISTERED  # the fix
    finally:
        await phone.stop()


async def test_reject_crashes_in_stock_not_when_patched(sipp_factory, stock_phones, tmp_path):
    errors: list[BaseException] = []

    def reject(call: VoIPCall) -> None:
        try:
            call.deny()
        except AttributeError as exc:  # the defect, caught so the thread ends cleanly
            errors.append(exc)

    stock = stock_phone(sipp_factory("registrar_caller_rejected"), reject)
    stock_phones.append(stock)
    await asyncio.to_thread(stock.start)
    assert until(lambda: bool(errors))
    assert "sin" in str(errors[0])

    hooks = Hooks()
    patched = patched_phone(sipp_factory("registrar_caller_rejected"), hooks)
    await asyncio.to_thread(patched.start)
    try:
        assert until(lambda: bool(hooks.calls))
        hooks.calls[0].deny()  # the fix: 486 sent, call ended
        assert hooks.calls[0].state == CallState.ENDED
        assert hooks.calls[0].end_reason == ev.EndReason.REJECTED
    finally:
        await asyncio.to_thread(patched.stop)


async def test_cancel_leaves_stock_call_ringing_not_when_patched(
    sipp_factory, stock_phones, tmp_path
) -> None:
    calls: list[VoIPCall] = []
    stock = stock_phone(sipp_factory("registrar_caller_cancels"), calls.append)
    stock_phones.append(stock)
    await asyncio.to_thread(stock.start)
    assert until(lambda: bool(calls))
    # The defect: the caller cancelled 200 ms after ringing; the call still rings 2 s later.
    assert not until(lambda: calls[0].state != CallState.RINGING, timeout=2.0)

    hooks = Hooks()
    patched = patched_phone(sipp_factory("registrar_caller_cancels"), hooks)
    await asyncio.to_thread(patched.start)
    try:
        assert until(lambda: bool(hooks.calls))
        assert hooks.calls[0].wait_state(lambda s: s == CallState.ENDED, 10)  # the fix
        assert hooks.calls[0].end_reason == ev.EndReason.CANCELLED
    finally:
        await asyncio.to_thread(patched.stop)


async def test_call_right_after_register(sipp_factory, tmp_path) -> None:
    # Stock pyVoIP leaves its socket non-blocking after some registration paths and reads it
    # without select, so call() can raise BlockingIOError (reproducible only with a racy timing,
    # hence no stock half here). Patched: every read waits with select and a deadline.
    hooks = Hooks()
    patched = patched_phone(sipp_factory("registrar_callee", rtpport=free_udp_port()), hooks)
    await asyncio.to_thread(patched.start)
    try:
        call = await asyncio.to_thread(patched.call, "100")
        assert call.wait_state(lambda s: s == CallState.ANSWERED, 10)
        call.hangup()
    finally:
        await asyncio.to_thread(patched.stop)


async def test_stray_quote_in_caller_name(sipp_factory, stock_phones, tmp_path) -> None:
    write_rtp_pcap(tmp_path / "call.pcap", tone_ulaw(0.2))
    calls: list[VoIPCall] = []
    stock = stock_phone(sipp_factory("registrar_caller_rejected"), calls.append)
    stock_phones.append(stock)
    await asyncio.to_thread(stock.start)
    assert until(lambda: bool(calls))
    assert calls[0].request.headers["From"]["caller"] == 'Caller Sipp" '  # the defect

    hooks = Hooks()
    patched = patched_phone(sipp_factory("registrar_caller_rejected"), hooks)
    await asyncio.to_thread(patched.start)
    try:
        assert until(lambda: bool(hooks.calls))
        assert hooks.calls[0].remote.name == "Caller Sipp"  # the fix
        assert hooks.calls[0].remote.number == "79161234567"
    finally:
        await asyncio.to_thread(patched.stop)


async def test_qop_digest_and_short_grant(sipp_factory, tmp_path) -> None:
    # sipp's verifyauth accepts an answer without qop even when it offered qop, so the stock
    # half of this defect (refused by Asterisk PJSIP) is shown in the unit tests with the
    # RFC 2617 example instead; here sipp checks the qop=auth answer (nc, cnonce) we send.
    phone = Softphone(phone_settings(sipp_factory("registrar_qop").port, tmp_path))
    queue = phone.listen()
    try:
        await phone.start()  # the fix: qop=auth answered
        assert phone.state == ev.RegistrationState.REGISTERED

        async def refreshed() -> None:  # granted 4 s of our 120: it refreshes early
            seen = []
            while len(seen) < 2:
                event = await queue.get()
                if isinstance(event, ev.RegistrationChanged) and event.old in (
                    ev.RegistrationState.REGISTERED,
                    ev.RegistrationState.RE_REGISTERING,
                ):
                    seen.append(event.new)
            assert seen == [ev.RegistrationState.RE_REGISTERING, ev.RegistrationState.REGISTERED]

        await asyncio.wait_for(refreshed(), 15)
    finally:
        await phone.stop()
