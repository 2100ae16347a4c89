"""The calibration plot: predicted p50/p90 against actuals, p90 coverage over time, drift alarms
marked (`plms/plot.py`), from a synthetic history with a known shift and from a real task store
through the real CLI (`direng plms calibration --plot FILE.png`)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import numpy as np

from direng_kernel.models import TaskState
from direng_kernel.plms.calibration import prequential
from direng_kernel.plms.estimate import RunRecord
from direng_kernel.plms.plot import figure

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def history(seed: int = 3) -> list[RunRecord]:
    """graph-ops: 30 runs at a 10 s median (sigma 0.3), then 10 at 40 s: a shift drift must catch."""
    rng = np.random.default_rng(seed)
    medians = [10.0] * 30 + [40.0] * 10
    return [RunRecord(lane="graph-ops", duration_s=float(m * np.exp(rng.normal(0, 0.3))), status="succeeded",
                      finished_at=T0 + timedelta(minutes=i)) for i, m in enumerate(medians)]


def red_lines(ax) -> list[float]:
    return [line.get_xdata()[0] for line in ax.get_lines() if line.get_color() == "tab:red"]


def test_the_figure_draws_predictions_coverage_and_the_drift_alarms():
    records = history()
    _, scores = prequential(records)
    alarms = [i for i, s in enumerate(scores, 1) if s["drift"]]
    assert alarms and min(alarms) > 30 - 5  # the replay fires after the shift, not before it
    fig = figure(records)
    left, right = fig.axes
    assert left.get_yscale() == "log" and "graph-ops" in left.get_title()
    assert red_lines(left) == alarms and red_lines(right) == alarms
    p50, p90 = (line for line in left.get_lines() if line.get_color() in ("tab:blue", "tab:orange"))
    assert list(p50.get_ydata()) == [s["p50"] for s in scores] and list(p90.get_ydata()) == [s["p90"] for s in scores]
    coverage = next(line for line in right.get_lines() if line.get_color() == "tab:green").get_ydata()
    assert coverage[-1] == sum(s["le_p90"] for s in scores) / len(scores)
    assert f"{coverage[-1]:.0%}" in right.get_title()


def test_a_history_without_scored_runs_says_so():
    fig = figure(history()[:3])
    assert "no scored runs yet" in fig.axes[0].texts[0].get_text()


def test_the_cli_writes_the_plot_of_a_real_task_store(tmp_path):
    from direng_kernel.pex.store import TaskStore

    store = TaskStore.for_root(tmp_path)
    for wait in [0.02, 0.05, 0.1, 0.2] * 2:  # real runs through the store, timed by it
        task, _ = store.create_task(title="run", brief="", lane="graph-ops", parameters={})
        store.transition(task.id, TaskState.estimated)
        store.transition(task.id, TaskState.approved)
        run_id = store.enqueue(task.id)
        assert store.claim("test-worker:1", {"graph-ops": 1}, lease_s=30, task_id=task.id) is not None
        time.sleep(wait)
        store.finish(run_id, TaskState.succeeded)
    out = tmp_path / "calibration.png"
    proc = subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "plms", "calibration", "--root",
                           str(tmp_path), "--plot", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stderr and proc.stdout.startswith("lane")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width = matplotlib.image.imread(str(out)).shape[:2]
    assert (width, height) == (1100, 280)  # one lane scored: one row of two panels
