"""``python -m bench [names...] [--quick] [--minutes N]``: run the benchmarks, write the results.

Without names every benchmark runs except the 30-minute soak, whose last stored result
(bench/results/soak.json, written by ``python -m bench soak``) is included instead. The table
is printed and written to bench/results/results.md, with results.json and latency.png.
``--quick`` uses small sizes (a smoke run of a few minutes); its results go to
bench/results/tmp/quick/ (not committed) so they never overwrite a full run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Measurement

#: name -> (module, full-size kwargs, quick kwargs)
BENCHMARKS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "ingest": ("bench.bench_ingest", {}, {"calls": 1_000}),
    "lookup": ("bench.bench_lookup", {}, {"contacts": 20_000, "n": 2_000}),
    "calllog": ("bench.bench_calllog", {}, {"n": 500}),
    "recordings": ("bench.bench_recordings", {}, {"seconds": 300}),
    "pop": (
        "bench.bench_pop",
        {},
        {"agents": 100, "rate": 50, "seconds": 4, "burst": 200, "low_rate": 20},
    ),
    "connections": ("bench.bench_connections", {}, {"agents": 500}),
    "webhooks": ("bench.bench_webhooks", {}, {"requests": 2_000}),
    "soak": ("bench.bench_soak", {}, {"minutes": 1, "agents": 20, "every": 5}),
}
DEFAULT = [n for n in BENCHMARKS if n != "soak"]


def _run_one(
    name: str, quick: bool, minutes: float | None, replay_buffer: int | None
) -> tuple[list[Measurement], dict[str, Any]]:
    module, full, small = BENCHMARKS[name]
    kwargs = dict(small if quick else full)
    if name == "soak" and minutes is not None:
        kwargs["minutes"] = minutes
    if name == "soak" and replay_buffer is not None:
        kwargs["replay_buffer"] = replay_buffer
    run: Callable[..., tuple[list[Measurement], dict[str, Any]]]
    run = importlib.import_module(module).run
    return run(**kwargs)


def _table(measurements: list[Measurement]) -> str:
    rows = [
        "| benchmark | metric | connector | floor | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for m in measurements:
        floor = f"{m.floor:,.3f}" if m.floor is not None else "–"
        met = {True: "yes", False: "NO", None: "–"}[m.met]
        rows.append(
            f"| {m.benchmark} | {m.metric} | {m.connector:,.3f} {m.unit} | {floor} | "
            f"{m.target} | {met} |"
        )
    return "\n".join(rows)


def _merge(
    names: list[str], measurements: list[Measurement], extra: dict[str, Any]
) -> tuple[list[Measurement], dict[str, Any]]:
    """Keep the stored rows of the benchmarks not run now (running one benchmark updates its
    rows in results.json/results.md and leaves the others as they were)."""
    path = common.RESULTS / "results.json"
    if not path.exists():
        return measurements, extra
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return measurements, extra
    ran = {m.benchmark for m in measurements}
    kept = [
        Measurement(**row) for row in old.get("measurements", []) if row["benchmark"] not in ran
    ]
    merged_extra = {k: v for k, v in old.get("extra", {}).items() if k != "notes"}
    runs = {**merged_extra.get("runs", {}), **extra.get("runs", {})}
    merged_extra.update(extra)
    merged_extra["runs"] = runs
    order = {n: i for i, n in enumerate(BENCHMARKS)}
    allm = kept + measurements
    allm.sort(key=lambda m: order.get(_name_of(m.benchmark), 99))
    return allm, merged_extra


def _name_of(benchmark: str) -> str:
    return {
        "AMI ingest": "ingest",
        "caller lookup": "lookup",
        "call log writes": "calllog",
        "recordings": "recordings",
        "pop latency": "pop",
        "connections": "connections",
        "webhooks": "webhooks",
        "soak": "soak",
    }.get(benchmark, benchmark)


def _samples(new: dict[str, list[float]], measurements: list[Measurement]) -> dict[str, Any]:
    """Latency samples for the plot: this run's, plus the stored ones of benchmarks not run."""
    for m in measurements:
        if m.samples and m.benchmark == "caller lookup" and "in-process" in m.metric:
            new.setdefault("lookup", m.samples)
    path = common.RESULTS / "tmp" / "samples.json"
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = {}
    stored.update(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored))
    return stored


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named in ``argv`` (all but the soak by default)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--report", action="store_true", help="run nothing: rewrite the results from what is stored"
    )
    parser.add_argument("--minutes", type=float, default=None, help="soak duration")
    parser.add_argument(
        "--replay-buffer", type=int, default=None, help="soak: the hub's [hub] replay_buffer"
    )
    parser.add_argument(
        "--notes",
        type=Path,
        default=common.RESULTS / "notes.json",
        help="JSON list of 'what changed' notes to include",
    )
    args = parser.parse_args(argv)
    names = [] if args.report else args.names or DEFAULT
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.quick:
        common.RESULTS = common.RESULTS / "tmp" / "quick"
    measurements: list[Measurement] = []
    extra: dict[str, Any] = {"runs": {}}
    failed: list[str] = []
    for name in names:
        sys.stderr.write(f"== {name}\n")
        t0 = time.perf_counter()
        try:
            got, info = _run_one(name, args.quick, args.minutes, args.replay_buffer)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        measurements += got
        extra.setdefault("samples", {}).update(info.pop("samples", {}))
        extra.update(info)
        extra["runs"][name] = round(time.perf_counter() - t0, 1)
        sys.stderr.write(_table(got) + "\n")
    measurements, extra = _merge(names, measurements, extra)
    if "soak" not in names:
        from bench.bench_soak import stored

        soak = stored()
        if soak is not None:
            measurements = [m for m in measurements if m.benchmark != "soak"] + soak[0]
            extra.update(soak[1])
    if args.notes.exists():
        extra["notes"] = json.loads(args.notes.read_text())
    if failed:
        extra.setdefault("notes", []).append(f"failed to run: {', '.join(failed)}")
    samples = _samples(extra.pop("samples", {}), measurements)
    md = common.write_results(measurements, extra)
    try:
        from bench.plot import plot

        plot(samples, extra, md.parent / "latency.png")
    except Exception:
        traceback.print_exc()
    print(md.read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
