"""Replay an AMI transcript through the codec, the translator and the call tracker.

``connector replay FILE.ami [--speed N]`` prints the call events as JSON lines (the wire format
of :mod:`connector.events.wire`). When ``FILE.chunks.jsonl`` sits next to the transcript, the
bytes are split exactly as the real ``recv()`` calls split them and paced by their recorded times
(``--speed 0``: no waiting; ``--speed 2``: twice as fast). Without it the file is one read.

The pure part, :func:`replay`, is what the tests use: chunks in, events out, with the same
``now`` the live adapter would have passed (start time plus the chunk's offset).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.adapters.ami_codec import AmiFramer
from connector.adapters.ami_observations import AmiTranslator
from connector.adapters.errors import AmiProtocolError
from connector.calls import CallTracker
from connector.config import AmiPbxSettings
from connector.events.model import CallEvent, Observation
from connector.events.wire import to_json

logger = logging.getLogger(__name__)

__all__ = ["ReplayResult", "add_parser", "load_chunks", "replay", "replay_steps", "run"]


def load_chunks(path: Path) -> list[tuple[float, bytes]]:
    """``(seconds since connect, bytes)`` per recorded read of transcript ``path``.

    Uses ``<name>.chunks.jsonl`` next to ``<name>.ami`` when present (``{"t", "off", "len"}``
    per line), else the whole file as one read at t=0.
    """
    data = path.read_bytes()
    index = path.with_suffix(".chunks.jsonl")
    if not index.exists():
        return [(0.0, data)]
    out: list[tuple[float, bytes]] = []
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec: dict[str, Any] = json.loads(line)
            t, off, size = float(rec["t"]), int(rec["off"]), int(rec["len"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{index}:{n}: bad chunk record: {exc}") from exc
        out.append((t, data[off : off + size]))
    return out


@dataclass
class ReplayResult:
    """Everything one replay produced."""

    events: list[CallEvent] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    errors: list[AmiProtocolError] = field(default_factory=list)
    messages: int = 0
    banner: str | None = None


def replay_steps(
    chunks: Iterable[tuple[float, bytes]],
    pbx: AmiPbxSettings,
    start: datetime,
    tracker: CallTracker | None = None,
    result: ReplayResult | None = None,
) -> Iterator[tuple[float, list[CallEvent]]]:
    """Feed chunks one by one; yield ``(t, call events caused by that chunk)``.

    ``now`` for chunk ``t`` is ``start + t``. Observations, framing errors and counts are
    collected in ``result`` when given.
    """
    framer = AmiFramer(pbx.max_message_bytes)
    translator = AmiTranslator(pbx)
    tracker = tracker if tracker is not None else CallTracker()
    for t, data in chunks:
        now = start + timedelta(seconds=t)
        events: list[CallEvent] = []
        for msg in framer.feed(data):
            for obs in translator.translate(msg, now):
                if result is not None:
                    result.observations.append(obs)
                events.extend(tracker.handle(obs, now))
        if result is not None:
            result.errors.extend(framer.drain_errors())
        yield t, events
    framer.feed_eof()
    if result is not None:
        result.errors.extend(framer.drain_errors())
        result.messages = framer.message_count
        result.banner = framer.banner


def replay(
    chunks: Iterable[tuple[float, bytes]],
    pbx: AmiPbxSettings,
    start: datetime,
    tracker: CallTracker | None = None,
) -> ReplayResult:
    """Replay every chunk at once (no waiting); return events, observations and errors."""
    result = ReplayResult()
    for _, events in replay_steps(chunks, pbx, start, tracker, result):
        result.events.extend(events)
    return result


def add_parser(subparsers: Any) -> None:
    """Register ``connector replay``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay an AMI transcript and print the call events as JSON lines",
        description=(
            "Feed a recorded AMI transcript (FILE.ami, with FILE.chunks.jsonl for the real "
            "chunking and timing) through the AMI codec and the call tracker, and print every "
            "call event as one JSON line."
        ),
    )
    p.add_argument("file", type=Path, metavar="FILE.ami", help="AMI transcript")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay speed: 1 real time (default), 2 twice as fast, 0 no waiting",
    )
    p.add_argument("--pbx", default="", help="PBX name from the configuration (default: first)")
    p.add_argument(
        "--observations",
        action="store_true",
        help="also print the observations the translator made (type obs.*)",
    )
    from connector.adapters.ami_replay_server import add_serve_arguments

    add_serve_arguments(p)  # --serve: a fake AMI server replaying FILE instead of printing
    p.set_defaults(func=run)


def _pbx_settings(args: argparse.Namespace) -> AmiPbxSettings:
    from connector.cli import load_cli_settings

    settings = load_cli_settings(args)
    for pbx in settings.pbx:
        if not args.pbx or pbx.name == args.pbx:
            return pbx
    return AmiPbxSettings(name=args.pbx or "replay")


def run(args: argparse.Namespace) -> int:
    """``connector replay``: print call events as JSON lines; 0 on success."""
    if args.speed < 0:
        sys.stderr.write("connector replay: --speed must be >= 0\n")
        return 2
    if getattr(args, "serve", False):
        from connector.adapters.ami_replay_server import serve_command

        return serve_command(args)
    try:
        chunks = load_chunks(args.file)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"connector replay: {exc}\n")
        return 1
    pbx = _pbx_settings(args)
    result = ReplayResult()
    start = datetime.now(UTC)
    began = time.monotonic()
    out = sys.stdout
    seen_obs = 0
    for t, events in replay_steps(chunks, pbx, start, None, result):
        if args.speed > 0:
            delay = t / args.speed - (time.monotonic() - began)
            if delay > 0:
                time.sleep(delay)
        if args.observations:
            for obs in result.observations[seen_obs:]:
                out.write(to_json(obs) + "\n")
            seen_obs = len(result.observations)
        for event in events:
            out.write(to_json(event) + "\n")
        out.flush()
    for err in result.errors:
        sys.stderr.write(f"connector replay: {type(err).__name__}: {err}\n")
    return 0
