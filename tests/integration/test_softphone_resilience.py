"""The softphone survives a registrar that goes away and comes back, and malformed SIP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from softphone import events as ev
from softphone.phone import PhoneOptions, Softphone
from softphone.sipmsg import response_status
from tests.integration.softphone_sipp import Sipp, free_udp_port, phone_settings

pytestmark = pytest.mark.sip

WAIT = 15.0
STATE = ev.RegistrationState


@pytest.fixture
def sipps() -> Iterator[list[Sipp]]:
    started: list[Sipp] = []
    yield started
    for sipp in started:
        sipp.stop()


@pytest.fixture
async def phones() -> AsyncIterator[list[Softphone]]:
    started: list[Softphone] = []
    yield started
    for phone in started:
        await phone.stop()


async def wait_state(queue: asyncio.Queue[ev.PhoneEvent], state: ev.RegistrationState) -> str:
    """Wait (bounded) until the registration becomes ``state``; return its reason."""

    async def find() -> str:
        while True:
            event = await queue.get()
            if isinstance(event, ev.RegistrationChanged) and event.new == state:
                return event.reason

    return await asyncio.wait_for(find(), WAIT)


async def test_registrar_goes_away_and_comes_back(sipps, phones, tmp_path: Path) -> None:
    port = free_udp_port()
    sipps.append(Sipp("registrar", port, tmp_path).start())
    settings = phone_settings(port, tmp_path)
    # Refresh every second; retry half a second after a failure; 1 s to wait for an answer.
    phone = Softphone(
        settings.__class__(**{**settings.__dict__, "register_timeout": 1.0}),
        PhoneOptions(register_expires=6, retry_interval=0.5),
    )
    phones.append(phone)
    queue = phone.listen()
    await phone.start()
    assert phone.state == STATE.REGISTERED

    await wait_state(queue, STATE.RE_REGISTERING)
    await wait_state(queue, STATE.REGISTERED)  # a refresh went through

    sipps.pop().stop()  # the registrar goes away
    reason = await wait_state(queue, STATE.FAILED)
    assert "no answer from registrar" in reason
    await wait_state(queue, STATE.RE_REGISTERING)  # it keeps trying

    sipps.append(Sipp("registrar", port, tmp_path).start())  # and comes back
    await wait_state(queue, STATE.REGISTERED)
    assert phone.state == STATE.REGISTERED


MALFORMED = [
    b"\x00\xff\xfe garbage \x80\x81",
    b"hello world\r\n\r\n",
    b"INVITE sip:alice@127.0.0.1 SIP/2.0\r\n\r\n",  # no headers at all
    b"INVITE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
    b"From: <sip:x@y>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: broken-1\r\nCSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\nm=aud",  # broken SDP
    b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",  # a response to nothing
    b"SIP/2.0 abc Broken\r\n\r\n",
    b"REGISTER sip:x SIP/3.0\r\n\r\n",
    b"BYE sip:alice@127.0.0.1 SIP/2.0\r\nCall-ID: nope\r\n\r\n",
    b"X" * 70000,
    "INVITE sip:\u00e9@127.0.0.1 SIP/2.0\r\nVia: \u00ff\r\n\r\n".encode(),
]


def options(call_id: str, port: int) -> bytes:
    return (
        f"OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:qualify@127.0.0.1>;tag=q1\r\nTo: <sip:alice@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_malformed_sip_is_survived_and_options_answered(sipps, phones, tmp_path) -> None:
    port = free_udp_port()
    sipps.append(Sipp("registrar", port, tmp_path).start())
    phone = Softphone(phone_settings(port, tmp_path))
    phones.append(phone)
    await phone.start()

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    target = ("127.0.0.1", phone.settings.local_port)
    try:
        for junk in MALFORMED:
            peer.sendto(junk[:65000], target)
        # The phone still answers: OPTIONS gets 200, an unknown method gets 405.
        peer.sendto(options("after-junk", peer.getsockname()[1]), target)
        replies = []
        for _ in range(10):  # bounded; 400s for the broken INVITEs may come first
            data = await asyncio.to_thread(peer.recv, 65535)
            replies.append(data)
            if b"after-junk" in data:
                break
        assert response_status(replies[-1]) == 200
        assert b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS" in replies[-1]
        assert any(response_status(r) == 400 for r in replies)  # the broken SDP INVITE

        subscribe = options("sub-1", peer.getsockname()[1]).replace(b"OPTIONS", b"SUBSCRIBE")
        peer.sendto(subscribe, target)
        data = await asyncio.to_thread(peer.recv, 65535)
        assert response_status(data) == 405
    finally:
        peer.close()
    assert phone.malformed >= 5
    assert phone.state == STATE.REGISTERED
