"""Shared machinery of the benchmarks: timing, percentiles, processes, results files."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "tests" / "data"


@dataclass
class Measurement:
    """One measured quantity of the connector next to its floor and its target."""

    benchmark: str
    metric: str
    connector: float
    floor: float | None
    unit: str
    target: str
    met: bool | None
    note: str = ""
    samples: list[float] = field(default_factory=list, repr=False)
    goal: float | None = None  # the target's number, to say by how much it is missed
    higher: bool = False  # True when more is better (rates)

    def gap(self) -> str:
        """How far from the goal a missed target is (``""`` when met or without a number)."""
        if self.met is not False or not self.goal or not self.connector:
            return ""
        if self.higher:
            return f"{self.connector / self.goal:.0%} of the goal"
        return f"{self.connector / self.goal:.1f}x the goal"

    def row(self) -> dict[str, Any]:
        """The serialisable form (without the raw samples)."""
        d = asdict(self)
        d.pop("samples")
        return d


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of latencies given in seconds."""
    ms = [v * 1000 for v in values_s]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else 0.0,
        "mean": statistics.fmean(ms) if ms else 0.0,
        "n": float(len(ms)),
    }


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Block until something listens on 127.0.0.1:port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def machine() -> dict[str, Any]:
    """A description of the machine the numbers come from."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    ffmpeg = ""
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False)
        ffmpeg = out.stdout.splitlines()[0] if out.stdout else ""
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "ffmpeg": ffmpeg,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_results(measurements: list[Measurement], extra: dict[str, Any]) -> Path:
    """Write results.json and results.md under bench/results/; returns the Markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    payload = {
        "machine": info,
        "measurements": [m.row() for m in measurements],
        "extra": extra,
    }
    (RESULTS / "results.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    lines = [
        "# Benchmark results",
        "",
        "`python -m bench` (or `make bench`) writes this file; see bench/__main__.py.",
        "",
        f"Machine: {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, "
        f"Python {info['python']}, {info['date']}.",
        "",
        "| benchmark | metric | connector | floor | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in measurements:
        ratio = f"{m.connector / m.floor:.2f}x" if m.floor else "–"
        floor = f"{m.floor:,.3f} {m.unit}" if m.floor is not None else "–"
        met = {True: "yes", False: "**no**", None: "–"}[m.met]
        if m.gap():
            met += f" ({m.gap()})"
        lines.append(
            f"| {m.benchmark} | {m.metric} | {m.connector:,.3f} {m.unit} | {floor} | {ratio} | "
            f"{m.target} | {met} | {m.note} |"
        )
    notes = extra.get("notes")
    if notes:
        lines += ["", "## What changed, and why the missed targets are missed", ""]
        lines += [f"- {n}" for n in notes]
    soak = extra.get("soak")
    if isinstance(soak, dict) and soak.get("samples"):
        lines += [
            "",
            f"## Soak samples ({soak.get('date', '')})",
            "",
            "| t (s) | calls | RSS (MB) | tracker conversations | tracker tombstones "
            "| hub calls | pop p99 (ms) |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = soak["samples"]
        step = max(1, len(rows) // 15)
        for r in rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else []):
            lines.append(
                f"| {r['t_s']:.0f} | {r['calls']:,.0f} | {r['rss_mb']:.0f} | "
                f"{r['tracker_conversations']:.0f} | {r['tracker_tombstones']:.0f} | "
                f"{r['hub_calls']:.0f} | {r['pop_p99_ms']:.1f} |"
            )
    md = RESULTS / "results.md"
    md.write_text("\n".join(lines) + "\n")
    return md
