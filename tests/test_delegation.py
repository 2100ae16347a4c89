"""Delegation end to end: PEX → PLMS → PAS lanes with papermill → passports → replay.

Real papermill runs, real subprocess workers, real SQLite. Test lanes (tests/fixtures/test_lanes,
put first on DIRENG_LANES_PATH) stand in for `narrative` where a test needs a lane that sleeps,
hogs memory or runs a denied command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import FIXTURES, expected_sandbox_mode, run_cli
from direng_kernel.models import TaskState
from direng_kernel.pex.orchestrator import Orchestrator

pytestmark = pytest.mark.slow
TEST_LANES = FIXTURES / "test_lanes"


def cli_json(*args) -> dict | list:
    proc = run_cli(*args, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def orchestrator(root: Path) -> Orchestrator:
    return Orchestrator(root, root / ".direng")


def approved(orch: Orchestrator, **params) -> str:
    task, _ = orch.new_task("test", "t", "narrative", params)
    orch.estimate(task.id)
    orch.approve(task.id)
    return task.id


@pytest.mark.e2e("direng task new", "direng task estimate", "direng task approve", "direng task start",
                 "direng task status", "direng runs", "direng replay")
def test_cli_delegation_runs_a_real_lane_and_replays_identically(repo):
    root = str(repo)
    task = cli_json("task", "new", "--title", "document the public API of the shop package", "--root", root)
    assert task["lane"] == "narrative" and task["state"] == "new"
    est = cli_json("task", "estimate", task["id"], "--root", root)
    assert est["state"] == "estimated" and est["estimate"]["duration_p90_s"] >= est["estimate"]["duration_p50_s"]
    cli_json("task", "approve", task["id"], "--root", root)
    done = cli_json("task", "start", task["id"], "--follow", "--root", root)
    assert done["state"] == "succeeded", done
    status = cli_json("task", "status", task["id"], "--root", root)
    assert status["state"] == "succeeded" and status["run_id"]
    assert cli_json("runs", "--root", root) == [status["run_id"]]
    passport = json.loads((repo / ".direng" / "passports" / f"{status['run_id']}.json").read_text())
    assert passport["git"]["commit"] and passport["kpis"]["docs_coverage"] > 0
    assert passport["sandbox"] == expected_sandbox_mode()  # bubblewrap wherever it is required
    report = cli_json("replay", status["run_id"], "--root", root)
    assert report["match"] is True, report
    assert cli_json("replay", status["run_id"], "--dry-run", "--root", root)["match"] is True
    # The passport also renders as a papermill notebook that replays headless.
    import papermill

    replay_nb = repo / ".direng" / "runs" / status["run_id"] / "replay.ipynb"
    out = papermill.execute_notebook(str(replay_nb), str(repo.parent / "replayed.ipynb"), kernel_name="python3",
                                     parameters={"dry_run": False}, progress_bar=False)
    text = str(out.cells[-1].outputs)
    assert "match=True" in text, text[:2000]


def test_idempotency_key_and_bad_input_on_the_cli(repo):
    root = str(repo)
    a = cli_json("task", "new", "--title", "x", "--lane", "graph-ops", "--idempotency-key", "K", "--root", root)
    b = cli_json("task", "new", "--title", "y", "--lane", "graph-ops", "--idempotency-key", "K", "--root", root)
    assert a["id"] == b["id"]
    bad = run_cli("task", "new", "--title", "x", "--lane", "nope", "--root", root)
    assert bad.returncode == 1 and "unknown lane 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("task", "new", "--title", "x", "--params-json", "[1", "--root", root)
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr
    bad = run_cli("task", "approve", a["id"], "--root", root)
    assert bad.returncode == 1 and "cannot go from new to approved" in bad.stderr
    bad = run_cli("replay", "run-doesnotexist", "--root", root)
    assert bad.returncode == 1 and "run-doesnotexist" in bad.stderr


def test_denied_command_fails_the_run_naming_the_rule(repo, test_lanes):
    """The run fails on the denied command; the task escalates to the user with the rule
    (tests/test_escalation.py has the answers), never a silent failure."""
    orch = orchestrator(repo)
    tid = approved(orch, mode="denied")
    orch.start(tid)
    task = orch.run_here(tid, timeout=300)
    assert task.state == TaskState.escalated and task.escalation.kind == "denied"
    assert "curl" in task.error and "denied" in task.error.lower()
    assert task.escalation.evidence["argv"][0] == "curl" and "denied" in task.escalation.message
    assert orch.tasks.get_run(task.run_id)["state"] == "failed"
    assert any("denied" in e.message.lower() for e in orch.tasks.events(tid) if e.kind == "error")


def lane_processes(run_id: str) -> list[psutil.Process]:
    """Live processes of a lane run: the executor gives papermill, the kernel and every command
    the run's DIRENG_RUN_ID in their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DIRENG_RUN_ID") == run_id and alive(proc):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def command_line(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_timeout_kills_the_lane(repo, test_lanes):
    """The lane sleeps 60 s; its 20 s limit fails the run and stops every process of it.
    (How soon after the limit: benchmarks/safety_bench.py.)"""
    orch = orchestrator(repo)
    tid = approved(orch, mode="sleep", seconds=60)
    orch.start(tid)
    worker = threading.Thread(target=orch.run_here, args=(tid, 300))
    worker.start()
    seen: list[psutil.Process] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("ipykernel" in command_line(p) for p in seen):
        run_id = orch.status(tid).run_id
        seen = lane_processes(run_id) if run_id else []
        time.sleep(0.2)
    assert any("papermill" in command_line(p) for p in seen), "the lane's processes were never seen"
    worker.join(300)
    task = orch.status(tid)
    assert task.state == TaskState.failed and task.error == "timed out after 20 s (lane limit)"
    assert orch.tasks.get_run(task.run_id)["state"] == "failed"
    deadline = time.monotonic() + 10  # SIGKILL is immediate; /proc may lag a moment
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p.pid for p in seen if alive(p)] == []
    assert lane_processes(task.run_id) == []


def test_memory_limit_fails_the_lane(repo, test_lanes):
    orch = orchestrator(repo)
    tid = approved(orch, mode="hog")
    orch.start(tid)
    task = orch.run_here(tid, timeout=300)
    assert task.state == TaskState.failed
    assert "memory" in task.error.lower() or "MemoryError" in task.error


def test_cancel_stops_a_running_lane(repo, test_lanes):
    orch = orchestrator(repo)
    tid = approved(orch, mode="sleep", seconds=5)
    orch.start(tid)
    worker = threading.Thread(target=orch.run_here, args=(tid, 120))
    worker.start()
    deadline = time.time() + 60
    while orch.status(tid).state != TaskState.running and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    orch.cancel(tid)
    worker.join(60)
    assert orch.status(tid).state == TaskState.cancelled


def test_max_parallel_is_honoured(repo, test_lanes):
    orch = orchestrator(repo)
    ids = [approved(orch, mode="sleep", seconds=1) for _ in range(6)]
    for tid in ids:
        orch.start(tid)
    executor = orch.executor
    executor.concurrency = 4
    executor.start()
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not all(orch.status(t).state.value in ("succeeded", "failed") for t in ids):
            time.sleep(0.5)
    finally:
        executor.stop()
    assert all(orch.status(t).state == TaskState.succeeded for t in ids), [orch.status(t).error for t in ids]
    spans = [(r["started_at"], r["finished_at"]) for r in orch.tasks.list_runs()]
    peak = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert peak <= 2  # the test lane's allowlist says max_parallel: 2


def test_kill_9_of_the_worker_is_recovered(repo, test_lanes):
    orch = orchestrator(repo)
    tid = approved(orch, mode="sleep", seconds=3)
    env = dict(os.environ, DIRENG_LANES_PATH=str(TEST_LANES))
    worker = subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "task", "start", tid,
                               "--root", str(repo)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while orch.status(tid).state != TaskState.running and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its papermill child, mid-run
    worker.wait()
    assert orch.status(tid).state == TaskState.running  # nobody knows yet
    import direng_kernel.pas.executor as ex

    orch.reconcile(now=time.time() + ex.LEASE_S + 1)
    assert orch.status(tid).state == TaskState.queued  # narrative is idempotent: re-queued
    task = orch.run_here(tid, timeout=300)
    assert task.state == TaskState.succeeded, task.error
    states = [e.data.get("state") for e in orch.tasks.events(tid) if e.kind == "state"]
    assert "interrupted" in states and states[-1] == "succeeded"


def test_tampered_artifact_makes_replay_refuse_with_the_hash(repo, test_lanes):
    from direng_kernel.pas.replay import ReplayRefused

    orch = orchestrator(repo)
    tid = approved(orch, mode="quick")
    orch.start(tid)
    task = orch.run_here(tid, timeout=300)
    assert task.state == TaskState.succeeded
    passport = json.loads((repo / ".direng" / "passports" / f"{task.run_id}.json").read_text())
    sha = passport["inputs"][0]["sha256"]
    obj = repo / ".direng" / "artifacts" / "objects" / sha[:2] / sha[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"tampered")
    with pytest.raises(ReplayRefused) as err:
        orch.replay(task.run_id)
    assert sha in str(err.value)
    (repo / ".direng" / "passports" / f"{task.run_id}.json").write_text("{not json")
    bad = run_cli("replay", task.run_id, "--root", str(repo))
    assert bad.returncode == 1 and task.run_id in bad.stderr and "Traceback" not in bad.stderr


def test_runs_export_and_pas_health(repo, test_lanes, tmp_path):
    import pandas as pd

    orch = orchestrator(repo)
    tid = approved(orch, mode="quick")
    orch.start(tid)
    assert orch.run_here(tid, timeout=300).state == TaskState.succeeded
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"runs.{fmt}"
        proc = run_cli("runs", "export", "--format", fmt, "--out", str(out), "--root", str(repo))
        assert proc.returncode == 0, proc.stderr
        frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
        assert list(frame["state"]) == ["succeeded"] and frame["kpi.done"].tolist() == [1.0]
    health = cli_json("pas", "health", "--root", str(repo))
    assert health["sandbox"]["mode"] == expected_sandbox_mode() and health["lanes"]["narrative"]["ok"]


def test_lane_notebook_without_parameters_cell_is_refused(repo, tmp_path, monkeypatch):
    import nbformat

    lanes = tmp_path / "lanes"
    (lanes / "allowlists").mkdir(parents=True)
    (lanes / "allowlists" / "narrative.yaml").write_text((TEST_LANES / "allowlists" / "narrative.yaml").read_text())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, lanes / "narrative.ipynb")
    monkeypatch.setenv("DIRENG_LANES_PATH", str(lanes))
    bad = run_cli("task", "new", "--title", "x", "--lane", "narrative", "--root", str(repo))
    assert bad.returncode == 1 and "has no cell tagged 'parameters'" in bad.stderr


def test_lane_secret_only_when_allowlisted_and_never_persisted(repo, test_lanes):
    from direng_kernel.security.vault import Vault

    value = "dpl-9f8e7d6c5b4a39281706"
    Vault().set("DEPLOY_TOKEN", value)
    Vault().set("OTHER_TOKEN", "oth-1234567890abcdef")
    orch = orchestrator(repo)
    tid = approved(orch, mode="secret")
    orch.start(tid)
    assert orch.run_here(tid, timeout=300).state == TaskState.succeeded
    store = repo / ".direng"
    output = (store / "runs" / orch.status(tid).run_id / "output.ipynb").read_text()
    assert "the deploy token is [secret:DEPLOY_TOKEN]" in output
    assert not [p for p in store.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]
    denied = approved(orch, mode="secret", secret_name="OTHER_TOKEN")
    orch.start(denied)
    task = orch.run_here(denied, timeout=300)
    assert task.state == TaskState.failed and "may not read secret 'OTHER_TOKEN'" in task.error


def test_lanes_get_a_narrow_token_when_a_server_owns_the_store(repo):
    from direng_kernel.pex.orchestrator import claim_server, release_server
    from direng_kernel.security.tokens import InsufficientScope, verify

    orch = orchestrator(repo)
    run_dir = repo / ".direng" / "runs" / "r"
    assert "DIRENG_TOKEN" not in orch.executor.lane_env("r", "t", "narrative", run_dir)  # no server: no token
    claim_server(repo / ".direng", "http://127.0.0.1:9/direng/api")
    try:
        env = orch.executor.lane_env("r", "t", "narrative", run_dir)
    finally:
        release_server(repo / ".direng")
    assert env["DIRENG_SERVER_URL"] == "http://127.0.0.1:9/direng/api"
    claims = verify(env["DIRENG_TOKEN"], required_scope="index:read")
    assert claims is not None
    for scope in ("runs:execute", "policy:admin", "tasks:write"):
        with pytest.raises(InsufficientScope):
            verify(env["DIRENG_TOKEN"], required_scope=scope)
