"""The kernel pool: lane runs start on a kernel started ahead of them, and no run sees another's.

Real PEX, real papermill (through DirEng's registered engine), real runner processes and kernels,
the test lane's `probe` mode reporting what a run sees of its kernel: its process and parent, cwd,
run environment, resource limits, and whatever an earlier run left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import nbformat
import psutil
import pytest

from conftest import FIXTURES
from direng_kernel.models import TaskState
from direng_kernel.pas.pool import KernelPool, PoolKey, pool_size
from direng_kernel.pex.orchestrator import Orchestrator

pytestmark = pytest.mark.slow


def approved(orch: Orchestrator, **params) -> str:
    task, _ = orch.new_task("pool", "t", "narrative", params)
    orch.estimate(task.id)
    orch.approve(task.id)
    orch.start(task.id)
    return task.id


def settle(orch: Orchestrator, tid: str, timeout: float = 120):
    deadline = time.time() + timeout
    while orch.status(tid).state.value not in ("succeeded", "failed", "cancelled") and time.time() < deadline:
        time.sleep(0.2)
    return orch.status(tid)


def probe(orch: Orchestrator, tid: str) -> dict:
    (line,) = [e.message for e in orch.tasks.events(tid) if e.message.startswith("probe ")]
    return json.loads(line.removeprefix("probe "))


def runners() -> list[psutil.Process]:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if "direng_kernel.pas.runner" in " ".join(p.cmdline())]


def test_runs_after_the_first_start_warm_on_a_fresh_kernel_each(repo, test_lanes, monkeypatch):
    monkeypatch.setenv("DIRENG_KERNEL_POOL", "1")
    orch = Orchestrator(repo, repo / ".direng")
    executor = orch.executor
    executor.concurrency = 1
    executor.start()
    try:
        facts = []
        for _ in range(3):
            task = settle(orch, approved(orch, mode="probe"))
            assert task.state == TaskState.succeeded, task.error
            facts.append((task, probe(orch, task.id)))
            time.sleep(2)  # the pool refills after each run: let the next runner start its kernel
        assert len(runners()) == 1  # one waits for the next run of this lane

        (first_task, first), *warm = facts
        assert "papermill" in first["parent"] and "direng_kernel.pas.runner" not in first["parent"]  # cold
        for task, seen in warm:
            assert "direng_kernel.pas.runner" in seen["parent"]  # started ahead, from the pool
        for task, seen in facts:
            # moved into its own run: cwd, environment; nothing left by the run before it
            assert seen["run_id"] == task.run_id and seen["task_id"] == task.id
            assert seen["cwd"] == seen["run_dir"] and seen["run_dir"].endswith(task.run_id)
            assert seen["global_left"] is None and seen["env_left"] is None
            assert seen["as_limit"] == first["as_limit"] > 0  # the lane's memory limit, warm or cold
            out = nbformat.read(f"{seen['run_dir']}/output.ipynb", as_version=4)
            assert out.metadata["kernelspec"]["name"] == "python3"
            assert not any("_direng_os" in "".join(c.source) for c in out.cells)  # the set-up is not a cell
        assert len({seen["pid"] for _, seen in facts}) == 3  # a kernel per run, never reused

        # a warm run is cancelled like a cold one: its runner and kernel go with it
        tid = approved(orch, mode="sleep", seconds=30)
        deadline = time.time() + 60
        while orch.status(tid).state != TaskState.running and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        orch.cancel(tid)
        assert settle(orch, tid).state == TaskState.cancelled
    finally:
        executor.stop()
    deadline = time.time() + 15
    while runners() and time.time() < deadline:
        time.sleep(0.2)
    assert runners() == []  # stopping the executor stops the pool


def test_a_runner_started_for_other_settings_is_stopped_not_used(tmp_path):
    from direng_kernel.pas.sandbox import apply_process_limits

    pool = KernelPool(tmp_path, 1, lambda limits: (lambda: apply_process_limits(limits)))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DIRENG_LANE": "narrative"}
    old = PoolKey.of("narrative", "python3", env, {"memory_mb": 2048})
    new = PoolKey.of("narrative", "python3", {**env, "DIRENG_POLICY": "/changed.json"}, {"memory_mb": 2048})
    try:
        pool.refill(old)
        (proc,) = pool._runners[old]
        assert pool.take(new) is None  # the policy changed: not this runner
        assert proc.poll() is not None and old not in pool._runners  # stopped
        # a run's own values never split the pool
        run_env = {**env, "DIRENG_RUN_ID": "run-1", "DIRENG_TOKEN": "t"}
        assert PoolKey.of("narrative", "python3", run_env, {"memory_mb": 2048}) == old
    finally:
        pool.close()


def test_plain_papermill_runs_a_notebook_with_the_direng_engine(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(x)")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    proc = subprocess.run([sys.executable, "-m", "papermill", str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                           "--engine", "direng", "-p", "x", "5", "-k", "python3"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "5\n"


def test_pool_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DIRENG_KERNEL_POOL", "2")
    assert pool_size() == 2
    monkeypatch.setenv("DIRENG_KERNEL_POOL", "many")
    assert pool_size() == 0  # a bad value turns the pool off, with a warning
    monkeypatch.delenv("DIRENG_KERNEL_POOL")
    assert pool_size(default=1) == 1


def test_a_stopped_executor_serves_again_when_started(repo, test_lanes):
    """pas_bench stops the pooled executor and starts it again for its queue phase: the second
    start must serve (it once found its stop flag still set and every queued task waited)."""
    orch = Orchestrator(repo, repo / ".direng")
    executor = orch.executor
    executor.concurrency = 1
    executor.start()
    try:
        assert settle(orch, approved(orch, mode="quick")).state == TaskState.succeeded
        executor.stop()
        assert not any(t.is_alive() for t in executor._threads)
        executor.start()
        assert len([t for t in executor._threads if t.is_alive()]) == 1
        assert settle(orch, approved(orch, mode="quick")).state == TaskState.succeeded
    finally:
        executor.stop()
