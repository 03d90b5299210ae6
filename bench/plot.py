"""latency.png: latency CDFs of the connector next to its floor (pop latency, caller lookup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (
    ("pop latency, full rate", "pop", "pop_floor"),
    ("pop latency, moderate rate", "pop_low", "pop_low_floor"),
    ("pop latency, burst", "burst", "burst_floor"),
    ("caller lookup", "lookup", "lookup_floor"),
    ("webhooks, per request", "webhooks", "webhooks_floor"),
)


def plot(samples: dict[str, list[float]], extra: dict[str, Any], path: Path) -> None:
    """Draw one CDF panel per benchmark that has samples (seconds in, milliseconds shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in PANELS if samples.get(p[1])]
    if not panels:
        return
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, ours, floor) in zip(flat, panels, strict=False):
        for key, label in ((ours, "connector"), (floor, "floor")):
            values = sorted(v * 1000 for v in samples.get(key) or [])
            if not values:
                continue
            n = len(values)
            ax.plot(values, [(i + 1) / n for i in range(n)], label=f"{label} (n={n:,})")
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(title)
        ax.axhline(0.99, color="grey", linewidth=0.5, linestyle="--")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
    machine = extra.get("machine_line", "")
    if machine:
        fig.suptitle(machine, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
