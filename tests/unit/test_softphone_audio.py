"""The one audio conversion: phone format (8 kHz mono unsigned 8-bit) <-> PCM WAV."""

from __future__ import annotations

import audioop
import math
import struct
from pathlib import Path

import pytest

from softphone.audio import (
    PHONE_FORMAT,
    FileAudio,
    FromPhone,
    PcmFormat,
    ToPhone,
    open_audio,
    pcm_to_phone,
    phone_to_pcm,
    read_wav,
    write_wav,
)
from softphone.errors import AudioError


def tone_pcm16(rate: int, seconds: float, channels: int = 1, hz: float = 440.0) -> bytes:
    frames = []
    for i in range(int(rate * seconds)):
        sample = struct.pack("<h", int(10000 * math.sin(2 * math.pi * hz * i / rate)))
        frames.append(sample * channels)
    return b"".join(frames)


def test_phone_silence_is_pcm_silence_and_back() -> None:
    silence = b"\x80" * 160
    pcm = phone_to_pcm(silence, PcmFormat(8000, 1, 2))
    assert pcm == b"\x00\x00" * 160
    assert pcm_to_phone(pcm, PcmFormat(8000, 1, 2)) == silence


@pytest.mark.parametrize(
    ("rate", "channels", "width"),
    [(8000, 1, 2), (16000, 1, 2), (44100, 2, 2), (48000, 2, 4), (8000, 1, 1), (22050, 1, 3)],
)
def test_round_trip_keeps_length_and_loudness(rate: int, channels: int, width: int) -> None:
    fmt = PcmFormat(rate, channels, width)
    original = pcm_to_phone(tone_pcm16(8000, 1.0), PcmFormat(8000, 1, 2))  # 1 s tone
    phone = pcm_to_phone(phone_to_pcm(original, fmt), fmt)
    assert abs(len(phone) - 8000) <= 2  # one second stays one second at 8 kHz
    signed = audioop.bias(phone, 1, -128)
    assert audioop.rms(signed, 1) > 20  # still a tone (8-bit scale), not silence
    out = phone_to_pcm(phone, fmt)
    assert abs(len(out) // fmt.frame_bytes - rate) <= rate // 400 + 2


def test_stereo_and_rate_conversion_to_phone() -> None:
    pcm = tone_pcm16(16000, 0.5, channels=2)
    phone = pcm_to_phone(pcm, PcmFormat(16000, 2, 2))
    assert abs(len(phone) - 4000) <= 2
    assert audioop.rms(audioop.bias(phone, 1, -128), 1) > 20


def test_streaming_equals_whole_buffer_and_keeps_partial_frames() -> None:
    fmt = PcmFormat(16000, 2, 2)
    pcm = tone_pcm16(16000, 0.25, channels=2)
    whole = pcm_to_phone(pcm, fmt)
    stream = ToPhone(fmt)
    pieces = b"".join(stream.convert(pcm[i : i + 333]) for i in range(0, len(pcm), 333))
    assert pieces == whole
    back = FromPhone(fmt)
    assert b"".join(back.convert(whole[i : i + 160]) for i in range(0, len(whole), 160)) == (
        phone_to_pcm(whole, fmt)
    )


def test_bad_formats_are_named() -> None:
    with pytest.raises(AudioError, match="channels must be 1 or 2"):
        PcmFormat(8000, 6, 2)
    with pytest.raises(AudioError, match="sample rate"):
        PcmFormat(10, 1, 2)
    assert PHONE_FORMAT == PcmFormat(8000, 1, 1)


def test_wav_files_and_file_audio(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    write_wav(src, tone_pcm16(44100, 0.2, channels=2), PcmFormat(44100, 2, 2))
    frames, fmt = read_wav(src)
    assert fmt == PcmFormat(44100, 2, 2) and len(frames) == 44100 * 0.2 * 4

    out = tmp_path / "rec" / "call.wav"
    audio = open_audio(use_device=False, source=src, sink=out, fmt=PcmFormat(16000, 1, 2))
    assert isinstance(audio, FileAudio)
    sent: list[bytes] = []
    audio.start(sent.append)
    assert abs(len(b"".join(sent)) - 1600) <= 2
    audio.play(b"\x80" * 800)
    audio.play(b"\x90" * 800)
    audio.close()
    frames, fmt = read_wav(out)
    assert fmt == PcmFormat(16000, 1, 2)
    assert abs(len(frames) // 2 - 3200) <= 2


def test_unreadable_wav_is_an_audio_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(AudioError, match="cannot read WAV file"):
        read_wav(bad)
    with pytest.raises(AudioError):
        read_wav(tmp_path / "missing.wav")


def test_no_sound_device_falls_back_to_files(tmp_path: Path) -> None:
    # sounddevice is an optional extra; without it (or without a device) calls use WAV files.
    from softphone.audio import device_available

    audio = open_audio(use_device=True, source=None, sink=tmp_path / "out.wav")
    assert isinstance(audio, FileAudio) or device_available()
