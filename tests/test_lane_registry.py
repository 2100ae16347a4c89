"""The lane registry (pas/lanes.py), who hands the executor what, and replay through PEX.

Registry tests are fast; the ones marked slow run a real lane notebook with papermill (the
test lane of tests/fixtures/test_lanes, in its `quick` mode, under other names).
"""

from __future__ import annotations

import ast
import shutil
import time
from pathlib import Path

import pytest

from conftest import FIXTURES
from direng_kernel.models import LANE_IDS, LANE_ROUTES, LANES, TaskState
from direng_kernel.pas.allowlist import lane_allowlist, lane_limits
from direng_kernel.pas.executor import check_lane
from direng_kernel.pas.gates import load_gates, read_gates
from direng_kernel.pas.lanes import Lane, LaneRegistry, UnknownLane, registry
from direng_kernel.pex.orchestrator import Orchestrator

TEST_LANES = FIXTURES / "test_lanes"
PACKAGE = Path(__file__).resolve().parents[1] / "direng_kernel"


def user_lane_folder(folder: Path, *lanes: str) -> Path:
    """A lane folder holding the test lane under each of `lanes` (notebook, allowlist, gates)."""
    (folder / "allowlists").mkdir(parents=True, exist_ok=True)
    (folder / "gates").mkdir(exist_ok=True)
    for lane in lanes:
        shutil.copy(TEST_LANES / "narrative.ipynb", folder / f"{lane}.ipynb")
        text = (TEST_LANES / "allowlists" / "narrative.yaml").read_text()
        (folder / "allowlists" / f"{lane}.yaml").write_text(text.replace("lane: narrative", f"lane: {lane}"))
        (folder / "gates" / f"{lane}.yaml").write_text(f'lane: {lane}\ngates:\n  - {{kpi: done, op: "==", value: 1}}\n')
    return folder


# -- the registry ---------------------------------------------------------------------------------

def test_builtin_lanes_come_from_the_one_list_in_models(monkeypatch):
    monkeypatch.delenv("DIRENG_LANES_PATH", raising=False)
    assert registry.ids() == list(LANE_IDS)
    assert LANES == (*LANE_ROUTES.values(), "chat") and "chat" not in registry
    assert registry.routes() == LANE_ROUTES and registry.extra_routes() == []
    assert registry.idempotent() == set(LANE_IDS) - {"code-impl"}
    narrative = registry.get("narrative")
    assert narrative.notebook.name == "narrative.ipynb" and narrative.route == "Narrative"
    assert narrative.allowlist.parent.name == "allowlists" and narrative.gates.parent.name == "gates"
    assert lane_limits(narrative)["max_parallel"] >= 1
    check_lane(narrative)


def test_a_user_lane_folder_registers_and_overrides_file_by_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DIRENG_LANES_PATH", raising=False)
    lanes = LaneRegistry()
    folder = user_lane_folder(tmp_path / "mine", "echo-lane")
    lanes.register_folder(folder)
    assert lanes.ids() == [*LANE_IDS, "echo-lane"] and "echo-lane" in lanes
    lane = lanes.get("echo-lane")
    assert lane.notebook == folder / "echo-lane.ipynb" and lane.allowlist == folder / "allowlists" / "echo-lane.yaml"
    assert lane.route == "echo-lane" and not lane.idempotent  # a user lane: a lost run is not run twice
    assert lane_allowlist(lane).lane == "echo-lane" and read_gates(lane.gates, lane.id).gates[0].kpi == "done"
    assert load_gates("echo-lane").gates == []  # the module-level lookups use the global registry
    assert lanes.extra_routes() == ["echo-lane"]
    # A folder's file wins over the built-in one, the rest stays built-in.
    (folder / "gates" / "graph-ops.yaml").write_text("lane: graph-ops\ngates: []\n")
    graph = lanes.get("graph-ops")
    assert graph.gates == folder / "gates" / "graph-ops.yaml" and graph.notebook.parent != folder
    assert graph.route == "Graph-Ops" and graph.idempotent
    lanes.unregister_folder(folder)
    assert "echo-lane" not in lanes
    # DIRENG_LANES_PATH folders register through the registry too, at every lookup.
    monkeypatch.setenv("DIRENG_LANES_PATH", str(folder))
    assert registry.get("echo-lane").notebook == folder / "echo-lane.ipynb"
    assert registry.folders()[0] == folder


def test_a_registered_record_and_its_flags(tmp_path):
    lanes = LaneRegistry()
    folder = user_lane_folder(tmp_path / "mine", "echo-lane")
    record = lanes.register(Lane.in_folder(folder, "echo-lane", route="Echo", idempotent=True,
                                           limits={"timeout_s": 7}))
    assert lanes.get("echo-lane") is record and lanes.routes()["echo-lane"] == "Echo"
    assert lane_limits(record)["timeout_s"] == 7 and lane_limits(record)["max_parallel"] == 2
    assert "echo-lane" in lanes.idempotent()
    from direng_kernel.errors import DirEngError

    with pytest.raises(DirEngError, match="already registered"):
        lanes.register(Lane.in_folder(folder, "echo-lane"))
    with pytest.raises(DirEngError, match="already registered"):
        lanes.register(Lane.in_folder(folder, "narrative"))  # shadowing a built-in needs replace=True
    with pytest.raises(DirEngError, match="bad lane id"):
        Lane(id="Echo Lane", notebook=folder / "x.ipynb")


def test_unknown_lane_names_the_lanes_and_the_closest_one(repo, tmp_path):
    with pytest.raises(UnknownLane) as err:
        registry.get("narative")
    assert str(err.value) == (f"unknown lane 'narative'; lanes: {', '.join(LANE_IDS)}; did you mean 'narrative'?")
    orch = Orchestrator(repo, repo / ".direng")
    with pytest.raises(UnknownLane, match=r"unknown lane 'graph-op'; lanes: .*; did you mean 'graph-ops'\?"):
        orch.new_task("x", "", "graph-op")
    with pytest.raises(UnknownLane, match=r"^unknown lane 'zzz'; lanes: code-impl, [^;]*narrative$"):
        orch.new_task("x", "", "zzz")
    assert orch.tasks.list_tasks() == []
    lanes = LaneRegistry()
    lanes.register_folder(user_lane_folder(tmp_path / "mine", "echo-lane"))
    with pytest.raises(UnknownLane, match="echo-lane; did you mean 'echo-lane'"):
        lanes.get("echo_lane")


def test_the_idempotent_flag_drives_reconciliation(repo, tmp_path):
    """A lost run of an idempotent lane is re-queued, of any other lane failed: the registry says which."""
    folder = user_lane_folder(tmp_path / "mine", "again-lane", "once-lane")
    lanes = LaneRegistry()
    lanes.register(Lane.in_folder(folder, "again-lane", idempotent=True))
    lanes.register_folder(folder)  # once-lane: a folder lane, not idempotent
    orch = Orchestrator(repo, repo / ".direng", lanes=lanes)
    assert orch.executor.idempotent_lanes() == lanes.idempotent() and "again-lane" in lanes.idempotent()
    ids = {}
    for lane in ("again-lane", "once-lane"):
        task, _ = orch.new_task("t", "", lane, {"mode": "quick"})
        orch.estimate(task.id)  # a lane without a prior of its own gets the generic one
        orch.approve(task.id)
        orch.tasks.enqueue(task.id)
        assert orch.tasks.claim("elsewhere:1", {lane: 1}, lease_s=1.0, task_id=task.id) is not None
        ids[lane] = task.id
    assert orch.reconcile() == []  # leases still held
    assert sorted(orch.reconcile(now=time.time() + 60)) == sorted(ids.values())
    assert orch.status(ids["again-lane"]).state == TaskState.queued
    once = orch.status(ids["once-lane"])
    assert once.state == TaskState.failed and "not idempotent" in once.error


# -- what the orchestrator hands the executor ---------------------------------------------------

def test_pas_never_imports_pex_nor_builds_a_workbench_in_the_executor():
    for path in sorted((PACKAGE / "pas").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert not (name.startswith("..pex") or name.startswith("direng_kernel.pex")), (path.name, name)
                if path.name == "executor.py":
                    assert "workbench" not in name, name


def test_the_executor_gets_url_token_and_workbench_from_its_caller(repo):
    from direng_kernel.engine import Engine
    from direng_kernel.pas.executor import Executor
    from direng_kernel.pex.store import TaskStore

    store = repo / ".direng"
    minted = []
    executor = Executor(repo, store, TaskStore.for_store(store), server_url=lambda: "http://127.0.0.1:9/api",
                        lane_token=lambda ttl: minted.append(ttl) or "lane-token")
    env = executor.lane_env("r", "t", "narrative", store / "runs" / "r")
    assert env["DIRENG_SERVER_URL"] == "http://127.0.0.1:9/api" and env["DIRENG_TOKEN"] == "lane-token"
    assert minted == [int(lane_limits(registry.get("narrative"))["timeout_s"]) + 300]
    assert env["DIRENG_LANE_ROUTE"] == "Narrative" and env["DIRENG_LANE_ALLOWLIST"].endswith("narrative.yaml")
    no_server = Executor(repo, store, TaskStore.for_store(store), server_url=lambda: None,
                         lane_token=lambda ttl: "x").lane_env("r", "t", "narrative", store / "runs" / "r")
    assert "DIRENG_SERVER_URL" not in no_server and "DIRENG_TOKEN" not in no_server
    engine = Engine(repo)
    assert engine.orchestrator.executor.workbench is engine.workbench  # one index for the engine and its lanes
    assert engine.orchestrator.executor.tasks is engine.orchestrator.tasks


def test_the_broker_takes_user_lane_routes_from_its_caller():
    from direng_kernel.broker.policy import validate_policy

    policy = {"version": 1, "providers": {"local": {"type": "local", "external": False}},
              "lanes": {"Echo": {"primary": {"provider": "local", "model": "retrieval"}}}}
    assert [i.message for i in validate_policy(policy)] == ["unknown lane 'Echo'; known lanes: " + ", ".join(LANES)]
    assert validate_policy(policy, extra_lanes=["Echo"]) == []


# -- real lane runs ----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_user_lane_runs_end_to_end(repo, tmp_path, monkeypatch):
    monkeypatch.delenv("DIRENG_LANES_PATH", raising=False)
    lanes = LaneRegistry()
    lanes.register_folder(user_lane_folder(tmp_path / "mine", "echo-lane"))
    orch = Orchestrator(repo, repo / ".direng", lanes=lanes)
    task, _ = orch.new_task("echo", "", "echo-lane", {"mode": "quick"})
    orch.estimate(task.id)
    orch.approve(task.id)
    done = orch.start(task.id, "here", timeout=300)
    assert done.state == TaskState.succeeded, done.error
    assert orch.tasks.get_run(done.run_id)["lane"] == "echo-lane"


@pytest.mark.slow
def test_replay_goes_through_the_orchestrator_and_the_task_lifecycle(repo, test_lanes):
    from direng_kernel.pex.store import TaskStore

    orch = Orchestrator(repo, repo / ".direng")
    task, _ = orch.new_task("test", "t", "narrative", {"mode": "quick"})
    orch.estimate(task.id)
    orch.approve(task.id)
    done = orch.start(task.id, "here", timeout=300)
    assert done.state == TaskState.succeeded, done.error

    assert orch.replay(done.run_id, dry_run=True).match is True
    report = orch.replay(done.run_id)
    assert report.match is True and not report.dry_run, report.summary()
    assert report.replay_run_id and report.replay_run_id != done.run_id and Path(report.report_path).is_file()
    assert report.kpis_replay == report.kpis_original == {"done": 1.0}
    # The replay was a task of its own store, through the whole lifecycle, claimed and run there.
    stores = list((repo / ".direng" / "replays").glob("*/store"))
    assert len(stores) == 1
    replays = TaskStore.for_store(stores[0])
    [again] = replays.list_tasks()
    assert again.title == f"replay of {done.run_id}" and again.state == TaskState.succeeded
    assert again.run_id == report.replay_run_id and again.estimate is not None
    states = [e.data.get("state") for e in replays.events(again.id) if e.kind == "state"]
    assert states == ["new", "estimated", "approved", "queued", "running", "succeeded"]
    run = replays.get_run(again.run_id)
    assert run["state"] == "succeeded" and run["rehearsal"]
    assert (stores[0] / "passports" / f"{again.run_id}.json").is_file()
    # The user's store holds only the original task and run; the worktree is gone.
    assert [t.id for t in orch.tasks.list_tasks()] == [task.id] and len(orch.tasks.list_runs()) == 1
    assert not list((repo / ".direng" / "replays").glob("*/worktree"))
