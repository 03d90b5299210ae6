"""Recordings: transcode a one-hour 8 kHz mono WAV (a MixMonitor file) to the stored format.

Measured: ``connector.recordings.transcode`` (pydub driving ffmpeg, as the pipeline runs it in
its worker thread). Floor: the ``ffmpeg`` command line doing the same conversion.
"""

from __future__ import annotations

import math
import struct
import subprocess
import time
import wave
from pathlib import Path, PurePosixPath

from bench.common import RESULTS, Measurement

TMP = RESULTS / "tmp"


def make_wav(path: Path, seconds: int = 3600, rate: int = 8000) -> None:
    """A speech-like test signal: a warbling tone with pauses, 16-bit mono."""
    if path.exists() and path.stat().st_size == 44 + seconds * rate * 2:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    period = [
        int(8000 * math.sin(2 * math.pi * (300 + 80 * math.sin(i / 400)) * i / rate))
        if (i // 4000) % 3
        else 0
        for i in range(rate * 6)
    ]
    block = struct.pack(f"<{len(period)}h", *period)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for _ in range(seconds // 6):
            w.writeframes(block)


def run(
    seconds: int = 3600, fmt: str = "mp3", bitrate: str = "32k", rounds: int = 2
) -> tuple[list[Measurement], dict[str, object]]:
    """Transcode with the connector and with the ffmpeg CLI, ``rounds`` times each; compare."""
    from connector.recordings import transcode

    src = TMP / f"call-{seconds}s.wav"
    make_wav(src, seconds)
    out_dir = TMP / "rec-out"
    codec = "libopus" if fmt == "opus" else "libmp3lame"
    dest = out_dir / f"floor.{'ogg' if fmt == 'opus' else fmt}"
    ours = floor = float("inf")
    stored = None
    for _ in range(rounds):  # interleaved; the best round of each counts (shared machine)
        t0 = time.perf_counter()
        stored = transcode(src, out_dir, PurePosixPath(f"bench.{fmt}"), fmt, bitrate)
        ours = min(ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(
            [
                "ffmpeg",
                "-y",
                "-loglevel",
                "error",
                "-i",
                str(src),
                "-acodec",
                codec,
                "-b:a",
                bitrate,
                str(dest),
            ],
            check=True,
        )
        floor = min(floor, time.perf_counter() - t0)
    speed = seconds / ours
    ratio = ours / floor
    assert stored is not None
    return [
        Measurement(
            "recordings",
            f"transcode 1 h WAV -> {fmt} {bitrate}",
            ours,
            floor,
            "s",
            ">= 100x real time, <= 1.2x ffmpeg's time",
            speed >= 100 and ratio <= 1.2,
            f"{speed:,.0f}x real time, {ratio:.2f}x ffmpeg's time (best of {rounds} interleaved "
            f"rounds); duration kept {stored.duration_seconds:.0f} s, "
            f"{stored.size_bytes / 1e6:.1f} MB",
        )
    ], {"recordings_speed_x_realtime": speed, "recordings_ratio_to_ffmpeg": ratio}
