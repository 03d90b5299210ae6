"""AMI ingest: messages per second through framing + translation + call tracking, on one core.

The input is a synthetic day (bench.synthetic_day) cut into 4 KiB reads. Floors, on the same
bytes: splitting into messages only, and panoramisk's own parser (decode + split + Message).
"""

from __future__ import annotations

import gc
import time
from datetime import UTC, datetime

from bench.common import Measurement
from bench.synthetic_day import chunked, day_bytes
from connector.adapters.ami_codec import AmiFramer
from connector.adapters.ami_observations import AmiTranslator
from connector.calls import CallTracker
from connector.config import AmiPbxSettings


def _connector(chunks: list[bytes]) -> tuple[float, int, int, int]:
    framer = AmiFramer()
    translator = AmiTranslator(AmiPbxSettings(name="bench"))
    tracker = CallTracker()
    now = datetime(2026, 11, 28, tzinfo=UTC)
    messages = events = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        for msg in framer.feed(chunk):
            messages += 1
            for obs in translator.translate(msg, now):
                events += len(tracker.handle(obs, now))
    elapsed = time.perf_counter() - t0
    return elapsed, messages, events, len(tracker.active_calls())


def _split_only(chunks: list[bytes]) -> tuple[float, int]:
    pending = b""
    count = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        parts = (pending + chunk).split(b"\r\n\r\n")
        pending = parts.pop()
        count += len(parts)
    return time.perf_counter() - t0, count


def _panoramisk(chunks: list[bytes]) -> tuple[float, int]:
    from panoramisk.message import Message

    pending = ""
    count = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        data = pending + chunk.decode("utf-8", "ignore")
        parts = data.split("\r\n\r\n")
        pending = parts.pop()
        for part in parts:
            if Message.from_line(part.strip()) is not None:
                count += 1
    return time.perf_counter() - t0, count


def run(calls: int = 10_000, rounds: int = 3) -> tuple[list[Measurement], dict[str, object]]:
    """Run the ingest benchmark over ``calls`` synthetic calls.

    The machine is shared, so each measurement is repeated ``rounds`` times, interleaved with
    the others, and the best round of each counts (noise only ever makes code slower)."""
    data = day_bytes(calls)
    chunks = chunked(data)
    best: dict[str, float] = {}
    for _ in range(rounds):
        gc.collect()
        elapsed, messages, events, left = _connector(chunks)
        split_s, split_n = _split_only(chunks)
        pano_s, pano_n = _panoramisk(chunks)
        codec = _codec_only(chunks)
        for key, value in (("ours", elapsed), ("split", split_s), ("pano", pano_s)):
            best[key] = min(best.get(key, value), value)
        best["codec"] = max(best.get("codec", codec), codec)
    rate = messages / best["ours"]
    split_rate = split_n / best["split"]
    pano_rate = pano_n / best["pano"]
    ok = rate >= 50_000 and rate > pano_rate
    out = [
        Measurement(
            "AMI ingest",
            "codec + tracker",
            rate,
            split_rate,
            "msg/s",
            ">= 50,000 msg/s, faster than panoramisk's parser",
            ok,
            f"{messages:,} messages, {calls:,} calls, {events:,} call events, "
            f"{left} calls left in the tracker; panoramisk's parser alone: {pano_rate:,.0f} "
            f"msg/s ({rate / pano_rate:.2f}x); best of {rounds} interleaved rounds",
        ),
        Measurement(
            "AMI ingest",
            "codec only (framing)",
            best["codec"],
            split_rate,
            "msg/s",
            "–",
            None,
            "our framer without translation and tracking (headers are split lazily, on first use)",
        ),
    ]
    out[0].goal, out[0].higher = 50_000, True
    return out, {"ingest_bytes": len(data), "panoramisk_msgs_per_s": pano_rate}


def _codec_only(chunks: list[bytes]) -> float:
    framer = AmiFramer()
    n = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        n += len(framer.feed(chunk))
    return n / (time.perf_counter() - t0)
