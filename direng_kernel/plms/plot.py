"""Calibration you can see: per lane, predicted p50/p90 against the actual durations, and the
p90 coverage over time, with the drift detector's alarms marked.

Idea: the same prequential replay as the calibration report (`calibration.prequential`: each
run against the estimate made before it); one row of two panels per lane with scored runs.
Left: actual duration (dots; red when above the p90) with the p50 and p90 predicted for it, log
scale. Right: the running share of actuals ≤ p90 against the nominal 0.9 (and the 0.8 floor).
A run after which the drift detector fires is marked on both with a red vertical line.
matplotlib with the Agg backend (no display needed); `figure()` returns the Figure (the notebook
shows it inline), `save()` writes a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .calibration import prequential
from .estimate import RunRecord

NOMINAL_P90 = 0.9
COVERAGE_FLOOR = 0.8


def figure(records: Iterable[RunRecord], min_n: int = 5, recent_k: int = 5):
    """The calibration figure (a matplotlib Figure); a note instead of panels when nothing was scored."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # not pyplot: no global figure state, no GUI

    _, scores = prequential(list(records), min_n=min_n, recent_k=recent_k)
    lanes = list(dict.fromkeys(s["lane"] for s in scores))
    fig = Figure(figsize=(11, 2.8 * max(len(lanes), 1)), layout="constrained")
    if not lanes:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, f"no scored runs yet (a lane is scored from its {min_n + 1}th calibrating run)",
                ha="center", va="center")
        return fig
    axes = fig.subplots(len(lanes), 2, squeeze=False)
    for row, lane in zip(axes, lanes):
        s = [x for x in scores if x["lane"] == lane]
        idx = list(range(1, len(s) + 1))
        actual, p50, p90 = ([x[k] for x in s] for k in ("actual", "p50", "p90"))
        over = [i for i, x in zip(idx, s) if not x["le_p90"]]
        alarms = [i for i, x in zip(idx, s) if x.get("drift")]
        left, right = row
        left.plot(idx, p50, color="tab:blue", label="predicted p50")
        left.plot(idx, p90, color="tab:orange", label="predicted p90")
        left.scatter(idx, actual, s=12, color="black", label="actual", zorder=3)
        left.scatter(over, [actual[i - 1] for i in over], s=18, color="tab:red", label="actual > p90", zorder=4)
        left.set_yscale("log")
        left.set_ylabel("seconds")
        left.set_title(f"{lane}: predicted vs actual ({len(s)} scored runs)")
        cover, hits = [], 0
        for n, x in enumerate(s, 1):
            hits += x["le_p90"]
            cover.append(hits / n)
        right.plot(idx, cover, color="tab:green", label="share ≤ p90 so far")
        right.axhline(NOMINAL_P90, color="grey", linestyle="--", label="nominal 0.9")
        right.axhline(COVERAGE_FLOOR, color="grey", linestyle=":", label="floor 0.8")
        right.set_ylim(0, 1.05)
        right.set_title(f"{lane}: p90 coverage over time (now {cover[-1]:.0%})")
        for ax in row:
            for i, a in enumerate(alarms):
                ax.axvline(a, color="tab:red", alpha=0.35, label="drift alarm" if i == 0 else None)
            ax.set_xlabel("scored run (in finished order)")
        left.legend(fontsize=7, loc="upper left")
        right.legend(fontsize=7, loc="lower right")
    return fig


def save(records: Iterable[RunRecord], path: str | Path, min_n: int = 5, recent_k: int = 5) -> Path:
    """Write the calibration figure as a PNG to `path`; returns it."""
    path = Path(path)
    figure(records, min_n=min_n, recent_k=recent_k).savefig(path, format="png", dpi=100)
    return path
