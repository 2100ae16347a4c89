"""Lanes on Dask: N lane tasks through PEX and PAS on a 2-worker `distributed.LocalCluster`,
against the local executor in the same run.

For each executor (local first, then dask) the same N tasks of the test lane (`narrative` in
`sleep` mode, tests/fixtures/test_lanes, max_parallel 2) are queued and drained by a serving
executor with 4 submitting threads; both run cold (a papermill process per run: the local
kernel pool is off, so the two compare the same work). Measured:

  * wall time from the executor's start to the last task's end;
  * the most lanes ever running at once, from the lanes' own papermill clocks (the output
    notebooks' start/end times), against max_parallel;
  * nothing lost: every task succeeded, each with one run, one passport and its output notebook;
    for dask, how the runs spread over the workers.

    python benchmarks/dask_lanes.py [--tasks 40] [--seconds 1]

Prints a table and writes benchmarks/results/dask_lanes.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEST_LANES = REPO / "tests" / "fixtures" / "test_lanes"
MAX_PARALLEL = 2  # the test lane's allowlist


def make_repo(dest: Path) -> Path:
    shutil.copytree(REPO / "tests" / "fixtures" / "sample_repo", dest)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-C", str(dest), "-c", "user.name=b", "-c", "user.email=b@b", *args], check=True)
    return dest


def peak(spans: list[tuple[str, str]]) -> int:
    """The most intervals open at once (ISO times compare as strings)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def drain(root: Path, tasks: int, seconds: float) -> dict:
    """Queue `tasks` runs on a fresh store of `root`, drain them with a serving executor, measure."""
    import nbformat

    from direng_kernel.pex.orchestrator import Orchestrator

    orch = Orchestrator(root, root / ".direng")
    ids = []
    for _ in range(tasks):
        task, _ = orch.new_task("bench", "", "narrative", {"mode": "sleep", "seconds": seconds})
        orch.estimate(task.id)
        orch.approve(task.id)
        orch.start(task.id)
        ids.append(task.id)
    executor = orch.executor
    executor.concurrency, executor.kernel_pool = 4, 0
    t0 = time.perf_counter()
    executor.start()
    try:
        while not all(orch.status(t).state.value in ("succeeded", "failed", "escalated") for t in ids):
            time.sleep(0.2)
    finally:
        executor.stop()
    wall = time.perf_counter() - t0
    runs = orch.tasks.list_runs(10 * tasks)
    spans, where = [], collections.Counter()
    for run in runs:
        meta = nbformat.read(root / ".direng" / "runs" / run["id"] / "output.ipynb", as_version=4).metadata.papermill
        spans.append((meta["start_time"], meta["end_time"]))
        recorded = executor.passports.load(run["id"]).executor
        where[recorded.get("worker") or recorded.get("host")] += 1
    states = collections.Counter(orch.status(t).state.value for t in ids)
    return {"tasks": tasks, "wall_s": round(wall, 2), "per_task_s": round(wall / tasks, 3),
            "peak_running": peak(spans), "max_parallel": MAX_PARALLEL, "succeeded": states.get("succeeded", 0),
            "not_succeeded": tasks - states.get("succeeded", 0), "runs": len(runs),
            "passports": len(executor.passports.list()), "ran_on": dict(where)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=1.0, help="each lane's sleep")
    args = parser.parse_args(argv)
    os.environ["DIRENG_LANES_PATH"] = str(TEST_LANES)
    os.environ["DIRENG_KERNEL_POOL"] = "0"
    from distributed import LocalCluster

    work = Path(tempfile.mkdtemp(prefix="dask-lanes-"))
    result: dict = {"tasks": args.tasks, "lane_sleep_s": args.seconds, "submitting_threads": 4}
    try:
        os.environ.pop("DIRENG_EXECUTOR", None)
        result["local"] = drain(make_repo(work / "local"), args.tasks, args.seconds)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                          dashboard_address=None, env={"DIRENG_LANES_PATH": str(TEST_LANES)}) as cluster:
            os.environ["DIRENG_EXECUTOR"] = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
            result["dask"] = drain(make_repo(work / "dask"), args.tasks, args.seconds)
            result["dask"]["workers"] = 2
    finally:
        os.environ.pop("DIRENG_EXECUTOR", None)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'executor':<10} {'tasks':>5} {'wall s':>8} {'s/task':>7} {'peak/max':>9} {'ok':>4} {'lost':>5}  ran on")
    for name in ("local", "dask"):
        r = result[name]
        print(f"{name:<10} {r['tasks']:>5} {r['wall_s']:>8.1f} {r['per_task_s']:>7.2f} "
              f"{str(r['peak_running']) + '/' + str(r['max_parallel']):>9} {r['succeeded']:>4} {r['not_succeeded']:>5}  "
              + ", ".join(f"{k} ×{v}" for k, v in sorted(r["ran_on"].items())))
    result["dask_over_local"] = round(result["dask"]["wall_s"] / result["local"]["wall_s"], 3)
    print(f"dask / local wall time: {result['dask_over_local']:.2f}")
    out = HERE / "results" / "dask_lanes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
