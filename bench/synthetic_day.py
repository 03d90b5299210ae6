"""A synthetic day of AMI traffic built from the real transcripts in tests/data/ami/.

Each call of the day is a copy of one captured call scenario with every Asterisk id rewritten
(so no two calls share a Uniqueid or Linkedid), and calls overlap: ``concurrency`` calls are in
flight at once, their messages interleaved round-robin, as a busy PBX would send them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from bench.common import DATA

SCENARIOS = (
    "inbound_answered",
    "inbound_missed",
    "inbound_busy",
    "caller_abandons",
    "queue_call",
    "transfer",
    "click_to_call",
)
_ID = re.compile(rb"\b(1795900\d{3})\.(\d+)\b")


def scenario_messages(name: str, directory: Path = DATA / "ami") -> list[bytes]:
    """The call's messages (without banner and login) as raw byte blocks ending in CRLFCRLF."""
    raw = (directory / f"{name}.ami").read_bytes()
    body = raw.split(b"\r\n", 1)[1]  # drop the banner line
    blocks = [b + b"\r\n\r\n" for b in body.split(b"\r\n\r\n") if b.strip()]
    return [
        b
        for b in blocks
        if not b.startswith(b"Response:") and b"FullyBooted" not in b and b"SuccessfulAuth" not in b
    ]


def _rewrite(block: bytes, call_no: int) -> bytes:
    def sub(m: re.Match[bytes]) -> bytes:
        return b"%d.%s" % (2_000_000_000 + call_no * 100 + int(m.group(1)) % 100, m.group(2))

    return _ID.sub(sub, block)


def day(calls: int = 10_000, concurrency: int = 20) -> Iterator[bytes]:
    """Yield the day's AMI bytes message by message (banner first)."""
    templates = [scenario_messages(n) for n in SCENARIOS]
    yield b"Asterisk Call Manager/11.0.0\r\n"
    active: list[Iterator[bytes]] = []
    started = 0
    while started < calls or active:
        while len(active) < concurrency and started < calls:
            tpl = templates[started % len(templates)]
            active.append(iter([_rewrite(b, started) for b in tpl]))
            started += 1
        still: list[Iterator[bytes]] = []
        for it in active:
            block = next(it, None)
            if block is not None:
                yield block
                still.append(it)
        active = still


def day_bytes(calls: int = 10_000, concurrency: int = 20) -> bytes:
    """The whole day as one byte string."""
    return b"".join(day(calls, concurrency))


def chunked(data: bytes, size: int = 4096) -> list[bytes]:
    """The bytes cut into TCP-like reads of ``size`` bytes (messages split mid-line)."""
    return [data[i : i + size] for i in range(0, len(data), size)]
