"""The softphone against sipp: registration, incoming and outgoing calls, audio, DTMF, CANCEL."""

from __future__ import annotations

import asyncio
import audioop
import dataclasses
import socket
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from connector.events.model import Direction
from softphone import events as ev
from softphone.errors import (
    AuthenticationFailed,
    CallFailed,
    HoldNotSupported,
    InvalidState,
    PortInUse,
    RegistrarUnreachable,
)
from softphone.phone import PhoneOptions, Softphone
from tests.data.sip.pcap import tone_ulaw, write_rtp_pcap
from tests.integration.softphone_sipp import Sipp, free_udp_port, phone_settings

pytestmark = pytest.mark.sip

E = TypeVar("E")
WAIT = 15.0


async def next_of(queue: asyncio.Queue[ev.PhoneEvent], kind: type[E], **match: Any) -> E:
    """The next event of ``kind`` (with the given field values), within a bounded time."""

    async def find() -> E:
        while True:
            event = await queue.get()
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in match.items()):
                return event

    return await asyncio.wait_for(find(), WAIT)


@pytest.fixture
def sipp_factory(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    started: list[Sipp] = []

    def make(scenario: str, port: int | None = None, **variables: str | int) -> Sipp:
        sipp = Sipp(scenario, port or free_udp_port(), tmp_path, **variables).start()
        started.append(sipp)
        return sipp

    yield make
    for sipp in started:
        sipp.stop()


@pytest.fixture
async def stopper() -> AsyncIterator[list[Softphone]]:
    phones: list[Softphone] = []
    yield phones
    for phone in phones:
        await phone.stop()


async def started_phone(
    sipp: Sipp, tmp_path: Path, stopper: list[Softphone], **options: Any
) -> tuple[Softphone, asyncio.Queue[ev.PhoneEvent]]:
    phone = Softphone(phone_settings(sipp.port, tmp_path), PhoneOptions(**options))
    stopper.append(phone)
    queue = phone.listen()
    await phone.start()
    return phone, queue


async def test_registers_with_digest(sipp_factory, tmp_path, stopper) -> None:
    sipp = sipp_factory("registrar")
    phone, queue = await started_phone(sipp, tmp_path, stopper)
    assert phone.state == ev.RegistrationState.REGISTERED
    changes = []
    while not queue.empty():
        event = queue.get_nowait()
        if isinstance(event, ev.RegistrationChanged):
            changes.append((event.old, event.new))
    assert changes == [
        (ev.RegistrationState.STOPPED, ev.RegistrationState.REGISTERING),
        (ev.RegistrationState.REGISTERING, ev.RegistrationState.REGISTERED),
    ]


async def test_wrong_password_fails_clearly(sipp_factory, tmp_path, stopper) -> None:
    sipp = sipp_factory("registrar")
    phone = Softphone(phone_settings(sipp.port, tmp_path, password="wrong"))
    stopper.append(phone)
    with pytest.raises(AuthenticationFailed, match="rejected the password of user 'alice'"):
        await phone.start()
    assert phone.state == ev.RegistrationState.FAILED
    assert "403" in phone.reason


async def test_unreachable_registrar_fails_clearly(tmp_path, stopper) -> None:
    settings = phone_settings(free_udp_port(), tmp_path)  # nothing listens there
    phone = Softphone(settings)
    stopper.append(phone)
    with pytest.raises(RegistrarUnreachable, match="no answer from registrar"):
        await phone.start()
    assert phone.state == ev.RegistrationState.FAILED


async def test_port_in_use_fails_clearly(sipp_factory, tmp_path, stopper) -> None:
    sipp = sipp_factory("registrar")
    first, _ = await started_phone(sipp, tmp_path, stopper)
    second = Softphone(first.settings)
    stopper.append(second)
    with pytest.raises(PortInUse, match="already in use"):
        await second.start()
    assert second.state == ev.RegistrationState.FAILED and "already in use" in second.reason


async def test_incoming_call_audio_dtmf_and_bye(sipp_factory, tmp_path, stopper) -> None:
    seconds = 1.0
    write_rtp_pcap(tmp_path / "call.pcap", tone_ulaw(seconds), dtmf="15#")
    sipp = sipp_factory("registrar_caller")
    phone, queue = await started_phone(sipp, tmp_path, stopper)

    ringing = await next_of(queue, ev.CallRinging)
    assert ringing.direction == Direction.INBOUND
    assert ringing.remote.number == "79161234567"
    assert ringing.remote.name == "Caller Sipp"
    assert ringing.local.number == "alice"
    phone.answer(ringing.call_id)
    await next_of(queue, ev.CallAnswered, call_id=ringing.call_id)

    digits = [(await next_of(queue, ev.DtmfReceived)).digit for _ in range(3)]
    assert digits == ["1", "5", "#"]

    ended = await next_of(queue, ev.CallEnded, call_id=ringing.call_id)
    assert ended.reason == ev.EndReason.REMOTE_HANGUP
    saved = await next_of(queue, ev.RecordingSaved, call_id=ringing.call_id)

    expected = int(seconds * 8000)
    assert abs(saved.samples - expected) <= 160 * 3  # within three 20 ms packets
    with wave.open(str(saved.path), "rb") as wav:
        assert wav.getframerate() == 8000 and wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
    assert abs(len(frames) // 2 - expected) <= 160 * 3
    assert audioop.rms(frames, 2) > 3000  # the tone, not silence


async def test_incoming_call_rejected(sipp_factory, tmp_path, stopper) -> None:
    sipp = sipp_factory("registrar_caller_rejected")
    phone, queue = await started_phone(sipp, tmp_path, stopper)
    ringing = await next_of(queue, ev.CallRinging)
    phone.reject(ringing.call_id)
    ended = await next_of(queue, ev.CallEnded, call_id=ringing.call_id)
    assert ended.reason == ev.EndReason.REJECTED
    assert phone.calls == {}
    with pytest.raises(InvalidState, match="there is no call"):
        phone.answer(ringing.call_id)
    with pytest.raises(ValueError, match="not DTMF digits"):
        phone.send_dtmf(ringing.call_id, "12x")


async def test_commands_refused_clearly_before_start(tmp_path) -> None:
    phone = Softphone(phone_settings(free_udp_port(), tmp_path))
    with pytest.raises(InvalidState, match="cannot dial: the phone is stopped"):
        await phone.dial("100")
    with pytest.raises(CallFailed, match="not a dialable number"):
        await phone.dial("1; rm -rf")


async def test_caller_cancels_while_ringing(sipp_factory, tmp_path, stopper) -> None:
    sipp = sipp_factory("registrar_caller_cancels")
    phone, queue = await started_phone(sipp, tmp_path, stopper)
    ringing = await next_of(queue, ev.CallRinging)
    ended = await next_of(queue, ev.CallEnded, call_id=ringing.call_id)
    assert ended.reason == ev.EndReason.CANCELLED
    assert ended.status == 487
    assert phone.calls == {}


def rtp_digits_and_audio(
    sock: socket.socket, want_digits: int, budget: int = 500
) -> tuple[str, int]:
    """Read RTP from ``sock`` (bounded): the DTMF digits (marker packets of PT 101) and the
    loudest PCMU packet's RMS, until the digits are complete and a tone packet was seen."""
    digits = ""
    loudest = 0
    for _ in range(budget):  # each recv waits at most the socket timeout
        data = sock.recv(2048)
        pt = data[1] & 0x7F
        if pt == 101 and data[1] & 0x80:
            digits += "0123456789*#ABCD"[data[12]]
        elif pt == 0:
            loudest = max(loudest, audioop.rms(audioop.ulaw2lin(data[12:], 2), 2))
        if len(digits) >= want_digits and loudest > 3000:
            break
    return digits, loudest


async def test_outgoing_call_answered_dtmf_audio_and_hangup(
    sipp_factory, tmp_path, stopper
) -> None:
    tone = tmp_path / "tone.wav"
    with wave.open(str(tone), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        pcm = audioop.ulaw2lin(tone_ulaw(1.0), 2)
        wav.writeframes(audioop.tostereo(audioop.ratecv(pcm, 2, 1, 8000, 16000, None)[0], 2, 1, 1))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(5)
    try:
        sipp = sipp_factory("registrar_callee", rtpport=rtp.getsockname()[1])
        settings = dataclasses.replace(phone_settings(sipp.port, tmp_path), audio_in=tone)
        phone = Softphone(settings)
        stopper.append(phone)
        queue = phone.listen()
        await phone.start()

        call_id = await phone.dial("79161234567")
        ringing = await next_of(queue, ev.CallRinging, call_id=call_id)
        assert ringing.direction == Direction.OUTBOUND
        assert ringing.remote.number == "79161234567"
        await next_of(queue, ev.CallAnswered, call_id=call_id)

        phone.send_dtmf(call_id, "42")
        digits, loudest = await asyncio.to_thread(rtp_digits_and_audio, rtp, 2)
        assert digits == "42"
        assert loudest > 3000  # the tone from the WAV file went out

        phone.hangup(call_id)
        ended = await next_of(queue, ev.CallEnded, call_id=call_id)
        assert ended.reason == ev.EndReason.LOCAL_HANGUP
        assert phone.calls == {}
    finally:
        rtp.close()


async def test_outgoing_call_busy(sipp_factory, tmp_path, stopper) -> None:
    sipp = sipp_factory("registrar_callee_busy")
    phone, queue = await started_phone(sipp, tmp_path, stopper)
    with pytest.raises(CallFailed, match="486"):
        await phone.dial("100")
    assert phone.calls == {}


async def test_hold_is_refused_clearly(sipp_factory, tmp_path, stopper) -> None:
    write_rtp_pcap(tmp_path / "call.pcap", tone_ulaw(0.2))
    sipp = sipp_factory("registrar_caller")
    phone, queue = await started_phone(sipp, tmp_path, stopper)
    ringing = await next_of(queue, ev.CallRinging)
    with pytest.raises(HoldNotSupported, match="re-INVITE"):
        phone.hold(ringing.call_id)


async def test_auto_answer(sipp_factory, tmp_path, stopper) -> None:
    write_rtp_pcap(tmp_path / "call.pcap", tone_ulaw(0.2))
    sipp = sipp_factory("registrar_caller")
    settings = dataclasses.replace(phone_settings(sipp.port, tmp_path), auto_answer=True)
    phone = Softphone(settings)
    stopper.append(phone)
    queue = phone.listen()
    await phone.start()
    ringing = await next_of(queue, ev.CallRinging)
    await next_of(queue, ev.CallAnswered, call_id=ringing.call_id)  # nobody pressed a key
    ended = await next_of(queue, ev.CallEnded, call_id=ringing.call_id)
    assert ended.reason == ev.EndReason.REMOTE_HANGUP
