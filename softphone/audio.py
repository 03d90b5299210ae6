"""Audio for the softphone: one pure format conversion, plus sources and sinks.

pyVoIP hands out and takes **8 kHz, mono, 8-bit unsigned linear** samples ("phone format").
Everything else (WAV files, the sound card) uses signed 16-bit PCM at some rate and
channel count. The
conversion between the two lives in exactly one place, :class:`ToPhone` / :class:`FromPhone`
(stateful only for the resampler, so a stream can be converted chunk by chunk), with the
whole-buffer shortcuts :func:`pcm_to_phone` and :func:`phone_to_pcm`. They do no I/O.

Sources and sinks do the I/O: :class:`WavSource` / :class:`WavSink` (always available) and
:class:`DeviceAudio` (the system sound device through the optional ``sounddevice`` package, extra
``audio``), chosen by :func:`open_audio`.
"""

from __future__ import annotations

import audioop
import logging
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from softphone.errors import AudioError

logger = logging.getLogger(__name__)

__all__ = [
    "PHONE_FORMAT",
    "DeviceAudio",
    "FileAudio",
    "FromPhone",
    "PcmFormat",
    "PhoneAudio",
    "SILENCE_BYTE",
    "ToPhone",
    "WavSink",
    "WavSource",
    "device_available",
    "open_audio",
    "pcm_to_phone",
    "phone_to_pcm",
    "read_wav",
    "write_wav",
]

SILENCE_BYTE = 0x80
"""The value of silence in pyVoIP's 8-bit unsigned samples."""


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """Linear PCM: ``width`` bytes per sample (1 = unsigned 8-bit as in WAV, 2..4 = signed)."""

    rate: int = 8000
    channels: int = 1
    width: int = 2

    def __post_init__(self) -> None:
        if not 1000 <= self.rate <= 384_000:
            raise AudioError(f"sample rate must be 1000..384000 Hz, got {self.rate}")
        if not 1 <= self.channels <= 2:
            raise AudioError(f"channels must be 1 or 2, got {self.channels}")
        if self.width not in (1, 2, 3, 4):
            raise AudioError(f"sample width must be 1..4 bytes, got {self.width}")

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (one sample for every channel)."""
        return self.width * self.channels


PHONE_FORMAT = PcmFormat(rate=8000, channels=1, width=1)
"""What pyVoIP reads and writes: 8 kHz mono unsigned 8-bit."""


class ToPhone:
    """Converts a stream of PCM in ``fmt`` into phone format, chunk by chunk.

    Feed whole frames; a trailing partial frame is kept for the next call.
    """

    def __init__(self, fmt: PcmFormat) -> None:
        self.fmt = fmt
        self._state: Any = None
        self._rest = b""

    def convert(self, data: bytes) -> bytes:
        """Convert ``data`` (any length) and return the phone-format samples it completes."""
        data = self._rest + data
        cut = len(data) - len(data) % self.fmt.frame_bytes
        data, self._rest = data[:cut], data[cut:]
        if not data:
            return b""
        width = self.fmt.width
        if width == 1:
            data = audioop.bias(data, 1, -128)  # WAV 8-bit is unsigned; audioop wants signed
        if self.fmt.channels == 2:
            data = audioop.tomono(data, width, 0.5, 0.5)
        data = audioop.lin2lin(data, width, 2)
        if self.fmt.rate != 8000:
            data, self._state = audioop.ratecv(data, 2, 1, self.fmt.rate, 8000, self._state)
        return audioop.bias(audioop.lin2lin(data, 2, 1), 1, 128)


class FromPhone:
    """Converts a stream of phone-format samples into PCM in ``fmt``, chunk by chunk."""

    def __init__(self, fmt: PcmFormat) -> None:
        self.fmt = fmt
        self._state: Any = None

    def convert(self, data: bytes) -> bytes:
        """Convert phone-format ``data`` and return PCM frames in ``fmt``."""
        if not data:
            return b""
        pcm = audioop.lin2lin(audioop.bias(data, 1, -128), 1, 2)
        if self.fmt.rate != 8000:
            pcm, self._state = audioop.ratecv(pcm, 2, 1, 8000, self.fmt.rate, self._state)
        width = self.fmt.width
        pcm = audioop.lin2lin(pcm, 2, width)
        if width == 1:
            pcm = audioop.bias(pcm, 1, 128)
        if self.fmt.channels == 2:
            pcm = audioop.tostereo(pcm, width, 1, 1)
        return pcm


def pcm_to_phone(data: bytes, fmt: PcmFormat) -> bytes:
    """Whole-buffer conversion of PCM in ``fmt`` into phone format."""
    return ToPhone(fmt).convert(data)


def phone_to_pcm(data: bytes, fmt: PcmFormat) -> bytes:
    """Whole-buffer conversion of phone-format samples into PCM in ``fmt``."""
    return FromPhone(fmt).convert(data)


def read_wav(path: Path) -> tuple[bytes, PcmFormat]:
    """Read a PCM WAV file: its frames and format. Raises :class:`AudioError` on a bad file."""
    try:
        with wave.open(str(path), "rb") as wav:
            fmt = PcmFormat(wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            return wav.readframes(wav.getnframes()), fmt
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read WAV file {path}: {exc}") from exc


def write_wav(path: Path, frames: bytes, fmt: PcmFormat) -> None:
    """Write PCM frames in ``fmt`` as a WAV file (parent directories are created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(fmt.channels)
        wav.setsampwidth(fmt.width)
        wav.setframerate(fmt.rate)
        wav.writeframes(frames)


class PhoneAudio(Protocol):
    """Where a call's audio comes from and goes to, in phone format.

    ``start(write)`` begins sending: the source calls ``write(samples)`` with phone-format bytes
    (possibly once with everything, possibly every 20 ms). ``play(samples)`` takes received audio.
    ``close()`` ends both directions and flushes what was received.
    """

    def start(self, write: Callable[[bytes], None]) -> None:
        """Start feeding outgoing audio through ``write``."""

    def play(self, samples: bytes) -> None:
        """Take received phone-format samples."""

    def close(self) -> None:
        """Stop and flush."""


class WavSource:
    """Outgoing audio from a WAV file (converted once when the call starts)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def samples(self) -> bytes:
        """The whole file in phone format (empty when there is no file)."""
        if self.path is None:
            return b""
        frames, fmt = read_wav(self.path)
        return pcm_to_phone(frames, fmt)


class WavSink:
    """Received audio into a WAV file in ``fmt`` (written when closed)."""

    def __init__(self, path: Path | None, fmt: PcmFormat = PcmFormat()) -> None:
        self.path = path
        self.fmt = fmt
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()

    def play(self, samples: bytes) -> None:
        """Keep received samples for the file."""
        with self._lock:
            self._chunks.append(samples)

    def received(self) -> bytes:
        """Everything received so far, in phone format."""
        with self._lock:
            return b"".join(self._chunks)

    def close(self) -> None:
        """Write the WAV file (once, converted in one go)."""
        if self.path is None:
            return
        write_wav(self.path, phone_to_pcm(self.received(), self.fmt), self.fmt)
        logger.info("recorded %s", self.path)


class FileAudio:
    """A :class:`PhoneAudio` that plays a WAV file into the call and records the call to a WAV."""

    def __init__(
        self, source: Path | None, sink: Path | None, fmt: PcmFormat = PcmFormat()
    ) -> None:
        self.source = WavSource(source)
        self.sink = WavSink(sink, fmt)

    def start(self, write: Callable[[bytes], None]) -> None:
        """Hand the whole source file to the phone; pyVoIP paces it at 20 ms per packet."""
        samples = self.source.samples()
        if samples:
            write(samples)

    def play(self, samples: bytes) -> None:
        """Record received samples."""
        self.sink.play(samples)

    def close(self) -> None:
        """Write the recording."""
        self.sink.close()


def device_available() -> bool:
    """True if ``sounddevice`` is installed and sees at least one input and one output device."""
    try:
        import sounddevice
    except (ImportError, OSError):
        return False
    try:
        sounddevice.query_devices(kind="input")
        sounddevice.query_devices(kind="output")
    except Exception:  # sounddevice raises PortAudioError / ValueError when there is no device
        return False
    return True


class DeviceAudio:
    """The system sound device (PortAudio through ``sounddevice``), 8 kHz mono 16-bit."""

    FORMAT = PcmFormat(rate=8000, channels=1, width=2)

    def __init__(self) -> None:
        import sounddevice  # optional extra "audio"; imported only when a device is used

        self._sd: Any = sounddevice
        self._to_phone = ToPhone(self.FORMAT)
        self._from_phone = FromPhone(self.FORMAT)
        self._stream: Any = None

    def start(self, write: Callable[[bytes], None]) -> None:
        """Open the device; microphone blocks of 20 ms go to ``write``."""

        def on_input(indata: Any, frames: int, time: Any, status: Any) -> None:
            write(self._to_phone.convert(bytes(indata)))

        self._stream = self._sd.RawInputStream(
            samplerate=self.FORMAT.rate,
            channels=1,
            dtype="int16",
            blocksize=160,
            callback=on_input,
        )
        self._out = self._sd.RawOutputStream(samplerate=self.FORMAT.rate, channels=1, dtype="int16")
        self._stream.start()
        self._out.start()

    def play(self, samples: bytes) -> None:
        """Play received samples on the speaker."""
        if self._stream is not None:
            self._out.write(self._from_phone.convert(samples))

    def close(self) -> None:
        """Close the device streams."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._out.stop()
            self._out.close()
            self._stream = None


def open_audio(
    *, use_device: bool, source: Path | None, sink: Path | None, fmt: PcmFormat = PcmFormat()
) -> PhoneAudio:
    """The sound device when asked for and present, else WAV file in and WAV file out."""
    if use_device and device_available():
        logger.info("audio: system sound device")
        return DeviceAudio()
    if use_device:
        logger.info("audio: no sound device (or sounddevice not installed); using WAV files")
    return FileAudio(source, sink, fmt)
