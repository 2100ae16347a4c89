"""Delegation overhead and calibration: what a lane run costs beyond its own work.

  * overhead — a lane whose notebook does nothing (`quick` mode of the test lane) run end to
    end through PEX and PAS: total run time, and the part spent in papermill + kernel start;
    cold (a papermill process per run, as a one-shot `direng task start` runs it) and warm (the
    serving executor's kernel pool, its runner started while the lane was idle);
  * queue — 20 queued tasks with max_parallel 2 and 4 worker threads: wall time and the most
    runs ever running at once (from the runs' start/finish times);
  * calibration — after those 20 runs of one lane, PLMS's prequential share of actuals within
    the p90 estimate (target ≥ 80 %).
Runs on a git copy of tests/fixtures/sample_repo with the test lanes first on
DIRENG_LANES_PATH. Prints a table and writes benchmarks/results/pas_bench.json.

    python benchmarks/pas_bench.py [--tasks 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEST_LANES = REPO / "tests" / "fixtures" / "test_lanes"


def make_repo(dest: Path) -> Path:
    shutil.copytree(REPO / "tests" / "fixtures" / "sample_repo", dest)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-C", str(dest), "-c", "user.name=b", "-c", "user.email=b@b", *args], check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--overhead-runs", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["DIRENG_LANES_PATH"] = str(TEST_LANES)
    from direng_kernel.models import TaskState
    from direng_kernel.pex.orchestrator import Orchestrator
    from direng_kernel.plms.calibration import calibration_report

    work = Path(tempfile.mkdtemp(prefix="pas-bench-"))
    root = make_repo(work / "repo")
    orch = Orchestrator(root, root / ".direng")

    def submit(**params) -> str:
        task, _ = orch.new_task("bench", "", "narrative", params)
        orch.estimate(task.id)
        orch.approve(task.id)
        orch.start(task.id)
        return task.id

    overhead = []
    for _ in range(args.overhead_runs):
        tid = submit(mode="quick")
        t0 = time.perf_counter()
        task = orch.run_here(tid, timeout=300)
        assert task.state == TaskState.succeeded, task.error
        run = orch.tasks.get_run(task.run_id)
        passport = json.loads((root / ".direng" / "passports" / f"{task.run_id}.json").read_text())
        overhead.append({"wall_s": time.perf_counter() - t0, "run_s": run["duration_s"],
                         "notebook_s": passport["timings"]["notebook_s"]})

    # Warm: the serving executor's kernel pool. Each run's runner was started (papermill imported,
    # kernel up) while the lane was idle, as between a user's tasks; the first run is cold.
    warm = []
    executor = orch.executor
    executor.kernel_pool, executor.concurrency = 1, 1
    executor.start()
    for i in range(args.overhead_runs + 1):
        tid = submit(mode="quick")
        while orch.status(tid).state.value not in ("succeeded", "failed"):
            time.sleep(0.05)
        task = orch.status(tid)
        assert task.state == TaskState.succeeded, task.error
        run = orch.tasks.get_run(task.run_id)
        passport = json.loads((root / ".direng" / "passports" / f"{task.run_id}.json").read_text())
        if i:
            warm.append({"run_s": run["duration_s"], "notebook_s": passport["timings"]["notebook_s"]})
        time.sleep(4)  # idle: the pool starts the next runner
    executor.stop()
    executor.kernel_pool = 0

    ids = [submit(mode="sleep", seconds=1) for _ in range(args.tasks)]
    executor = orch.executor
    executor.concurrency = 4
    t0 = time.perf_counter()
    executor.start()
    while not all(orch.status(t).state.value in ("succeeded", "failed") for t in ids):
        time.sleep(0.5)
    executor.stop()
    queue_wall = time.perf_counter() - t0
    runs = [orch.tasks.get_run(orch.status(t).run_id) for t in ids]
    spans = [(r["started_at"], r["finished_at"]) for r in runs]
    peak = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    failed = sum(r["state"] != "succeeded" for r in runs)
    report = calibration_report(orch.tasks.run_records())
    row = report[report["lane"] == "narrative"].iloc[0].to_dict()

    med = {k: statistics.median(o[k] for o in overhead) for k in ("wall_s", "run_s", "notebook_s")}
    med_warm = {k: statistics.median(o[k] for o in warm) for k in ("run_s", "notebook_s")}
    result = {
        "overhead": {"runs": len(overhead), "median": med},
        "overhead_warm": {"runs": len(warm), "median": med_warm},
        "queue": {"tasks": args.tasks, "max_parallel": 2, "workers": 4, "wall_s": round(queue_wall, 2),
                  "peak_running": peak, "failed": failed},
        "calibration": {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()},
    }
    print(f"{'measure':<44} result")
    print(f"{'lane run, empty notebook (median of ' + str(len(overhead)) + ')':<44} "
          f"{med['run_s']:.2f} s total, {med['notebook_s']:.2f} s papermill + kernel")
    print(f"{'same, warm kernel from the pool (median of ' + str(len(warm)) + ')':<44} "
          f"{med_warm['run_s']:.2f} s total, {med_warm['notebook_s']:.2f} s papermill + kernel")
    print(f"{'20 tasks, max_parallel 2, 4 workers':<44} {queue_wall:.1f} s wall, peak {peak} running, {failed} failed")
    print(f"{'PLMS share of actuals ≤ p90 (prequential)':<44} {row['within_p90']:.2f} over {row['scored']} scored runs "
          f"(p10–p90: {row['within_p10_p90']:.2f})")
    out = HERE / "results" / "pas_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
