"""Attack run (issue 8): tasks left stuck by a killed worker, broken lane files, unknown task ids.

Real `direng` CLI processes, real papermill lane runs (the sleeping test lane in
tests/fixtures/test_lanes stands in for narrative, and a copy of it for the non-idempotent
code-impl), real SQLite. A worker is killed with SIGKILL mid-run, as a user's `kill -9` would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import FIXTURES, run_cli
from direng_kernel.errors import NotFoundError
from direng_kernel.models import TaskState
from direng_kernel.pex.orchestrator import Orchestrator, claim_server, release_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TEST_LANES = FIXTURES / "test_lanes"


def _lane_copy(folder: Path, lane: str, allowlist: str | None = None, gates: str | None = None) -> Path:
    """A lane folder whose `lane` is the test lane under another name (or with other files)."""
    (folder / "allowlists").mkdir(parents=True, exist_ok=True)
    (folder / "gates").mkdir(exist_ok=True)
    shutil.copy(TEST_LANES / "narrative.ipynb", folder / f"{lane}.ipynb")
    (folder / "allowlists" / f"{lane}.yaml").write_text(
        allowlist if allowlist is not None
        else (TEST_LANES / "allowlists" / "narrative.yaml").read_text().replace("lane: narrative", f"lane: {lane}"))
    (folder / "gates" / f"{lane}.yaml").write_text(
        gates if gates is not None else f'lane: {lane}\ngates:\n  - {{kpi: done, op: "==", value: 1}}\n')
    return folder


def approved(orch: Orchestrator, lane: str = "narrative", **params) -> str:
    task, _ = orch.new_task("test", "t", lane, params)
    orch.estimate(task.id)
    orch.approve(task.id)
    return task.id


def _popen_start(tid: str, repo: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "task", "start", tid, *extra,
                             "--root", str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lane(orch: Orchestrator, tid: str, proc: subprocess.Popen) -> int:
    """The pid of the task's papermill process, once its worker has recorded it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        task = orch.status(tid)
        if task.state == TaskState.running and (pid := orch.tasks.get_run(task.run_id)["pid"]):
            return pid
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"the lane never started: {orch.status(tid)}")


def _kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # the CLI only: its papermill child has a session of its own
    proc.communicate()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _clean(proc: subprocess.CompletedProcess) -> None:
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and "cannot go from" not in text, text


def _states(orch: Orchestrator, tid: str) -> list[str]:
    return [e.data.get("state") for e in orch.tasks.events(tid) if e.kind == "state"]


# -- 1. a killed worker ------------------------------------------------------------------------

def test_start_after_kill_9_of_start_follow_finishes_the_task(repo, test_lanes):
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="sleep", seconds=6)
    first = _popen_start(tid, repo, "--follow")
    _wait_for_lane(orch, tid, first)
    _kill_9(first)

    again = run_cli("task", "start", tid, "--root", str(repo), timeout=300)
    _clean(again)
    assert again.returncode == 0, again.stderr
    task = orch.status(tid)
    assert task.state == TaskState.succeeded, task.error
    assert "interrupted" in _states(orch, tid) and _states(orch, tid)[-1] == "succeeded"
    assert sorted(r["state"] for r in orch.tasks.list_runs()) == ["interrupted", "succeeded"]


def test_dead_worker_is_reconciled_at_once_and_its_lane_stopped(repo, test_lanes):
    """The lease has 30 s to run, but the worker's process is gone: no need to wait for it."""
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="sleep", seconds=8)
    first = _popen_start(tid, repo, "--follow")
    lane_pid = _wait_for_lane(orch, tid, first)
    _kill_9(first)
    assert not _gone(lane_pid)  # orphaned, still sleeping

    assert orch.reconcile() == [tid]
    assert orch.status(tid).state == TaskState.queued  # narrative is idempotent: re-queued
    old = next(r for r in orch.tasks.list_runs() if r["state"] == "interrupted")
    assert "worker" in old["error"]
    deadline = time.monotonic() + 30
    while not _gone(lane_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(lane_pid), "the orphaned lane process was left running"

    done = run_cli("task", "start", tid, "--follow", "--root", str(repo), timeout=300)
    _clean(done)
    assert done.returncode == 0 and orch.status(tid).state == TaskState.succeeded, done.stderr


def test_kill_9_of_a_non_idempotent_lane_ends_in_a_clear_failure(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("DIRENG_LANES_PATH", str(_lane_copy(tmp_path / "lanes", "code-impl")))
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, "code-impl", mode="sleep", seconds=8)
    first = _popen_start(tid, repo, "--follow")
    _wait_for_lane(orch, tid, first)
    _kill_9(first)

    for follow in ((), ("--follow",)):  # the second start finds it failed already: same answer
        again = run_cli("task", "start", tid, *follow, "--root", str(repo), timeout=300)
        _clean(again)
        assert again.returncode == 1 and "failed" in again.stdout and "not idempotent" in again.stdout, again
    assert orch.status(tid).state == TaskState.failed and len(orch.tasks.list_runs()) == 1


def test_starting_a_queued_task_runs_it_here(repo, test_lanes):
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="quick")
    orch.start(tid)  # queued, and nobody's worker will take it
    proc = run_cli("task", "start", tid, "--root", str(repo), timeout=300)
    _clean(proc)
    assert proc.returncode == 0 and orch.status(tid).state == TaskState.succeeded, proc.stderr
    assert "already queued" in proc.stderr


def test_starting_a_running_task_attaches_to_its_worker(repo, test_lanes):
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="sleep", seconds=4)
    first = _popen_start(tid, repo)
    _wait_for_lane(orch, tid, first)
    second = run_cli("task", "start", tid, "--follow", "--root", str(repo), timeout=300)
    out, err = first.communicate(timeout=300)
    _clean(second)
    assert second.returncode == 0 and first.returncode == 0, (second.stderr, err)
    assert "already running on" in second.stderr
    assert orch.status(tid).state == TaskState.succeeded
    assert len(orch.tasks.list_runs()) == 1  # followed, not run twice


def test_a_queued_task_says_when_a_backlog_is_ahead_of_it(repo, test_lanes):
    orch = Orchestrator(repo, repo / ".direng")
    ahead, tid = approved(orch, mode="quick"), approved(orch, mode="quick")
    orch.start(ahead)
    claim_server(repo / ".direng", None)  # this test process stands for a live server owning the store
    try:
        proc = run_cli("task", "start", tid, "--root", str(repo), "--json")
    finally:
        release_server(repo / ".direng")
    _clean(proc)
    assert proc.returncode == 0 and json.loads(proc.stdout)["state"] == "queued", proc.stderr
    notes = [e.message for e in orch.tasks.events(tid) if e.data.get("note")]
    assert any("1 queued run ahead" in m for m in notes), notes
    proc = run_cli("task", "start", tid, "--root", str(repo))  # no server now: runs here, backlog or not
    _clean(proc)
    assert proc.returncode == 0 and orch.status(tid).state == TaskState.succeeded, proc.stderr
    assert orch.status(ahead).state == TaskState.queued  # not silently run first


# -- 2. broken lane files and unknown ids --------------------------------------------------------

BROKEN_ALLOWLIST = "lane: narrative\nallow: [\n  - id: x\n"
BROKEN_GATES = 'lane: narrative\ngates:\n  - {kpi: done, op: "~", value: 1}\n'


@pytest.mark.parametrize("folder", ["allowlists", "gates"])
def test_task_new_refuses_a_lane_whose_files_do_not_load(repo, tmp_path, monkeypatch, folder):
    lanes = _lane_copy(tmp_path / "lanes", "narrative",
                       allowlist=BROKEN_ALLOWLIST if folder == "allowlists" else None,
                       gates=BROKEN_GATES if folder == "gates" else None)
    monkeypatch.setenv("DIRENG_LANES_PATH", str(lanes))
    proc = run_cli("task", "new", "--title", "x", "--lane", "narrative", "--root", str(repo))
    _clean(proc)
    assert proc.returncode != 0 and proc.stderr.startswith("direng: error:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and f"{folder}/narrative.yaml" in proc.stderr, proc.stderr
    assert not Orchestrator(repo, repo / ".direng").tasks.list_tasks()


def test_task_start_with_an_allowlist_broken_since_creation_is_one_line(repo, tmp_path, monkeypatch):
    lanes = _lane_copy(tmp_path / "lanes", "narrative")
    monkeypatch.setenv("DIRENG_LANES_PATH", str(lanes))
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="quick")
    (lanes / "allowlists" / "narrative.yaml").write_text(BROKEN_ALLOWLIST)
    for follow in ((), ("--follow",)):
        proc = run_cli("task", "start", tid, *follow, "--root", str(repo), timeout=300)
        _clean(proc)
        lines = proc.stderr.strip().splitlines()  # --follow prints the task's history first
        assert proc.returncode != 0 and [ln for ln in lines if "error" in ln] == lines[-1:], proc.stderr
        assert lines[-1].startswith("direng: error:") and "allowlists/narrative.yaml" in lines[-1]
    assert orch.status(tid).state == TaskState.approved  # fix the file and start again
    (lanes / "allowlists" / "narrative.yaml").write_text((TEST_LANES / "allowlists" / "narrative.yaml").read_text())
    proc = run_cli("task", "start", tid, "--root", str(repo), timeout=300)
    assert proc.returncode == 0 and orch.status(tid).state == TaskState.succeeded, proc.stderr


def test_unknown_task_ids_are_not_found_everywhere(repo):
    orch = Orchestrator(repo, repo / ".direng")
    for action in (orch.start, orch.cancel, orch.estimate, orch.approve, orch.status, orch.run_here):
        with pytest.raises(NotFoundError, match="task-nope"):
            action("task-nope")
    with pytest.raises(NotFoundError):
        orch.tasks.enqueue("task-nope")
    for cmd in ("start", "cancel", "estimate", "approve", "status"):
        proc = run_cli("task", cmd, "task-nope", "--root", str(repo))
        _clean(proc)
        assert proc.returncode == 1 and proc.stderr.strip() == "direng: error: no task 'task-nope'", proc.stderr
