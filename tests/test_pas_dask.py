"""PAS lanes on Dask: a real `distributed.LocalCluster` with two process workers on loopback.

The executor (built by a real PEX orchestrator on a real SQLite store) claims each run and submits
it to the cluster's scheduler; a worker runs papermill on the test lane (tests/fixtures/test_lanes:
`narrative` in modes quick/sleep) exactly as a local run does. Covered: a run end to end with its
passport naming the worker, and its replay; `max_parallel` across the cluster; a worker killed
mid-run (interrupted, re-queued: the test lane is idempotent); an unreachable scheduler at
start-up, in a real Jupyter server's log and in health; a worker without the lane's notebook.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from conftest import FIXTURES
from direng_kernel.models import TaskState
from direng_kernel.pex.orchestrator import Orchestrator

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow
TEST_LANES = FIXTURES / "test_lanes"


@pytest.fixture(scope="module")
def cluster():
    """Two process workers, one thread each, on loopback, no dashboard. They find the test lanes
    on their own DIRENG_LANES_PATH."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  scheduler_port=0, dashboard_address=None,
                                  env={"DIRENG_LANES_PATH": str(TEST_LANES)}) as c:
        with distributed.Client(c, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            yield c, client


@pytest.fixture
def on_dask(cluster, monkeypatch, test_lanes):
    c, client = cluster
    client.wait_for_workers(2, timeout=120)  # a worker killed by an earlier test is back
    monkeypatch.setenv("DIRENG_EXECUTOR", "dask://" + c.scheduler_address.removeprefix("tcp://"))
    return client


def approved(orch: Orchestrator, **params) -> str:
    task, _ = orch.new_task("test", "t", "narrative", params)
    orch.estimate(task.id)
    orch.approve(task.id)
    return task.id


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout} s")


def test_a_lane_runs_on_the_cluster_end_to_end_and_replays(repo, on_dask):
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="quick")
    task = orch.start(tid, worker="here", timeout=300)
    assert task.state == TaskState.succeeded, task.error
    passport = orch.executor.passports.load(task.run_id)
    workers = on_dask.scheduler_info(n_workers=-1)["workers"]
    assert passport.executor["kind"] == "dask" and passport.executor["worker"] in workers, passport.executor
    assert passport.status == "succeeded" and passport.kpis == {"done": 1.0}
    assert {"output.ipynb"} <= {o.name for o in passport.outputs}
    events = orch.tasks.events(tid)
    assert any(e.kind == "log" and "test lane in mode quick" in e.message for e in events)  # streamed back
    assert any(e.kind == "kpi" and e.message.startswith("done = 1") for e in events)
    assert orch.tasks.list_runs()[0]["kpis"] == {"done": 1.0}
    report = orch.replay(task.run_id)  # the replay runs on the cluster too
    assert report.match is True, report


def test_the_local_executor_records_itself_and_old_passports_load(repo, test_lanes, monkeypatch):
    monkeypatch.delenv("DIRENG_EXECUTOR", raising=False)
    orch = Orchestrator(repo, repo / ".direng")
    task = orch.start(approved(orch, mode="quick"), worker="here", timeout=300)
    assert task.state == TaskState.succeeded, task.error
    passports = orch.executor.passports
    recorded = passports.load(task.run_id)
    assert recorded.executor["kind"] == "local" and recorded.executor["host"]
    data = json.loads(passports.path(task.run_id).read_text())
    del data["executor"]  # as written before the field existed
    data["run_id"] = "run-old"
    passports.path("run-old").write_text(json.dumps(data))
    assert passports.load("run-old").executor == {}


def test_max_parallel_holds_across_the_cluster(repo, on_dask, tmp_path, monkeypatch):
    """The test lane with max_parallel 1, four submitting threads and two worker threads: the
    lanes' own papermill clocks never overlap, and every run succeeds."""
    lanes = tmp_path / "lanes"
    shutil.copytree(TEST_LANES, lanes)
    allowlist = lanes / "allowlists" / "narrative.yaml"
    allowlist.write_text(allowlist.read_text().replace("max_parallel: 2", "max_parallel: 1"))
    monkeypatch.setenv("DIRENG_LANES_PATH", str(lanes))
    orch = Orchestrator(repo, repo / ".direng")
    ids = [approved(orch, mode="sleep", seconds=2) for _ in range(4)]
    for tid in ids:
        orch.start(tid)  # queued
    executor = orch.executor
    executor.concurrency = 4
    executor.start()
    try:
        wait_for(lambda: all(orch.status(t).state.value in ("succeeded", "failed") for t in ids), 300,
                 "the four runs did not end")
    finally:
        executor.stop()
    assert all(orch.status(t).state == TaskState.succeeded for t in ids), [orch.status(t).error for t in ids]
    spans, workers = [], set()
    for run in orch.tasks.list_runs():
        import nbformat

        meta = nbformat.read(repo / ".direng" / "runs" / run["id"] / "output.ipynb", as_version=4).metadata.papermill
        spans.append((meta["start_time"], meta["end_time"]))
        workers.add(orch.executor.passports.load(run["id"]).executor["worker"])
    spans.sort()
    assert len(spans) == 4 and all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:])), spans
    assert workers <= set(on_dask.scheduler_info(n_workers=-1)["workers"]) | {None} and None not in workers


def test_a_worker_killed_mid_run_leaves_the_run_interrupted_and_requeued(repo, on_dask):
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="sleep", seconds=8)
    orch.start(tid)
    executor = orch.executor
    executor.start()
    try:
        wait_for(lambda: any("test lane in mode sleep" in e.message for e in orch.tasks.events(tid)), 120,
                 "the lane did not start")
        first = orch.status(tid).run_id
        key = f"direng-lane-{first}"
        holder = wait_for(lambda: next((w for w, keys in on_dask.processing().items() if key in keys), None), 30,
                          "no worker holds the run")
        pids = on_dask.run(os.getpid)
        os.kill(pids[holder], signal.SIGKILL)  # the worker process; its nanny starts a fresh one
        wait_for(lambda: orch.tasks.get_run(first)["state"] == "interrupted", 60, "the run was not interrupted")
        task = wait_for(lambda: (t := orch.status(tid)).state.value in ("succeeded", "failed") and t, 300,
                        "the re-queued run did not end")
    finally:
        executor.stop()
    assert task.state == TaskState.succeeded and task.run_id != first, task.error
    states = [e.data.get("state") for e in orch.tasks.events(tid) if e.kind == "state"]
    assert "interrupted" in states and states.index("interrupted") < len(states) - 1 and states[-1] == "succeeded"
    assert any(e.kind == "error" and holder in e.message and "died" in e.message for e in orch.tasks.events(tid))
    lost = orch.executor.passports.load(first)
    assert lost.status == "interrupted" and lost.executor == {"kind": "dask", "worker": holder,
                                                              "scheduler": lost.executor["scheduler"]}
    assert orch.executor.passports.load(task.run_id).executor["worker"] != holder
    # the killed worker's lane died with it (PR_SET_PDEATHSIG): nothing of the first run is left running
    import psutil

    def alive() -> list:
        found = []
        for proc in psutil.process_iter():
            try:
                if first in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    wait_for(lambda: not alive(), 30, f"processes of the lost run are still running: {alive()}")


def test_a_worker_without_the_lane_notebook_fails_the_run_clearly(repo, on_dask, tmp_path):
    """A user lane only the server has: its folder is registered in the server's registry and
    gone by the time a worker looks (the workers' own lane folders never had it)."""
    from direng_kernel.pas.lanes import LaneRegistry

    folder = tmp_path / "server-only"
    shutil.copytree(TEST_LANES, folder)
    (folder / "narrative.ipynb").rename(folder / "only-here.ipynb")
    for kind in ("allowlists", "gates"):
        old = folder / kind / "narrative.yaml"
        (folder / kind / "only-here.yaml").write_text(old.read_text().replace("lane: narrative", "lane: only-here"))
        old.unlink()
    lanes = LaneRegistry()
    lanes.register_folder(folder)

    class Vanishing:
        """The workbench the executor refreshes before the run: after it, the notebook is gone
        from this machine too, as it never was on the workers."""

        def __init__(self, wb):
            self.wb = wb

        def index(self):
            report = self.wb.index()
            (folder / "only-here.ipynb").unlink()
            return report

    from direng_kernel.workbench import Workbench

    orch = Orchestrator(repo, repo / ".direng", lanes=lanes,
                        workbench=Vanishing(Workbench(repo, repo / ".direng")))
    task, _ = orch.new_task("test", "t", "only-here", {"mode": "quick"})
    orch.estimate(task.id)
    orch.approve(task.id)
    done = orch.start(task.id, worker="here", timeout=120)
    assert done.state == TaskState.failed
    assert "has no notebook of lane 'only-here'" in done.error and "DIRENG_LANES_PATH" in done.error, done.error
    assert orch.executor.passports.load(done.run_id).executor["kind"] == "dask"


def test_an_unreachable_scheduler_is_one_error_at_start_up_and_in_health(repo, test_lanes, monkeypatch, tmp_path):
    from test_server import free_port, running_server

    from direng_kernel.engine import Engine
    from direng_kernel.pas.backends import ExecutorUnavailable

    dead = f"dask://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DIRENG_EXECUTOR", dead)
    monkeypatch.setenv("DIRENG_DASK_CONNECT_TIMEOUT", "2")
    orch = Orchestrator(repo, repo / ".direng")
    tid = approved(orch, mode="quick")
    started = time.monotonic()
    with pytest.raises(ExecutorUnavailable, match="Dask scheduler tcp://127.0.0.1:.* is unreachable"):
        orch.executor.start()
    with pytest.raises(ExecutorUnavailable):
        orch.start(tid, worker="here", timeout=60)
    assert time.monotonic() - started < 30  # timeouts, not a hang
    assert orch.status(tid).state == TaskState.queued  # nothing claimed, nothing lost
    health = Engine(repo).health()
    assert health["status"] == "degraded" and health["executor"]["ok"] is False
    assert health["executor"]["kind"] == "dask" and "is unreachable" in health["executor"]["error"]
    monkeypatch.setenv("DIRENG_EXECUTOR", "nope://x")
    assert "no executor backend 'nope'" in Engine(repo).health()["executor"]["error"]
    monkeypatch.delenv("DIRENG_EXECUTOR")
    assert Engine(repo).health()["executor"] == {"ok": True, "kind": "local", "address": None, "workers": None,
                                                 "error": None}
    # A real Jupyter server configured with the traitlet: one line in its log, degraded health.
    with running_server(tmp_path / "srv", f"--DirEngExtension.pas_executor={dead}", "--DirEngExtension.watch=False",
                        indexed=False) as srv:
        status, health = srv.get("health")
        assert status == 200 and health["status"] == "degraded" and health["executor"]["ok"] is False, health
        wait_for(lambda: "PAS workers not started" in srv.log_tail(400), 60, "no start-up error in the log")
        lines = [ln for ln in srv.log_tail(400).splitlines() if "PAS workers not started" in ln]
        assert len(lines) == 1 and "is unreachable" in lines[0] and "Traceback" not in srv.log_tail(400)
        assert srv.get("policy")[0] == 200  # the rest of the API serves
