"""PEX's task store and state machine (real SQLite, real threads and processes)."""

from __future__ import annotations

import threading
import time

import pytest

from direng_kernel.models import TaskState
from direng_kernel.pex.orchestrator import route_lane
from direng_kernel.pex.states import IllegalTransition
from direng_kernel.pex.store import TaskNotFound, TaskStore


@pytest.fixture
def store(tmp_path):
    return TaskStore.for_store(tmp_path / "store")


def new(store, lane="narrative", key=None):
    task, _ = store.create_task(title="t", brief="b", lane=lane, parameters={"x": 1}, idempotency_key=key)
    return task


def approve(store, task_id):
    store.transition(task_id, TaskState.estimated)
    store.transition(task_id, TaskState.approved)


def test_lifecycle_and_events(store):
    t = new(store)
    assert t.state == TaskState.new and t.parameters == {"x": 1}
    approve(store, t.id)
    run_id = store.enqueue(t.id)
    assert store.get_task(t.id).state == TaskState.queued and store.get_task(t.id).run_id == run_id
    run = store.claim("w1", {"narrative": 1})
    assert run["id"] == run_id and store.get_task(t.id).state == TaskState.running
    store.finish(run_id, TaskState.succeeded, kpi_values={"docs_coverage": 0.5})
    assert [e.data.get("state") for e in store.events(t.id) if e.kind == "state"] == [
        "new", "estimated", "approved", "queued", "running", "succeeded"]
    assert store.list_runs()[0]["kpis"] == {"docs_coverage": 0.5}


@pytest.mark.parametrize("path", [
    [TaskState.approved],                      # must be estimated first
    [TaskState.running],                       # must be queued first
    [TaskState.estimated, TaskState.queued],   # must be approved first
])
def test_illegal_transitions_are_refused(store, path):
    t = new(store)
    with pytest.raises(IllegalTransition) as err:
        for state in path:
            store.transition(t.id, state)
    assert "cannot go from" in str(err.value)


def test_final_states_are_final(store):
    t = new(store)
    store.transition(t.id, TaskState.cancelled)
    with pytest.raises(IllegalTransition, match="none \\(final state\\)"):
        store.transition(t.id, TaskState.estimated)


def test_idempotency_key_returns_the_same_task(store):
    a, created_a = store.create_task(title="x", brief="", lane="narrative", parameters={}, idempotency_key="k1")
    b, created_b = store.create_task(title="other", brief="", lane="graph-ops", parameters={}, idempotency_key="k1")
    assert created_a and not created_b and a.id == b.id and b.title == "x"
    assert len(store.list_tasks()) == 1


def test_unknown_task(store):
    with pytest.raises(TaskNotFound):
        store.get_task("task-nope")


def test_claim_honours_max_parallel_under_contention(store):
    ids = []
    for _ in range(6):
        t = new(store, lane="graph-ops")
        approve(store, t.id)
        ids.append(store.enqueue(t.id))
    claimed, lock = [], threading.Lock()

    def worker(name):
        while True:
            run = store.claim(name, {"graph-ops": 2})
            if run is None:
                return
            with lock:
                claimed.append(run["id"])

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(claimed) == 2 and len(set(claimed)) == 2  # never more than 2 running, no double claims
    store.finish(claimed[0], TaskState.succeeded)
    assert store.claim("w9", {"graph-ops": 2}) is not None


def test_cancel_queued_and_running(store):
    t = new(store)
    approve(store, t.id)
    store.enqueue(t.id)
    assert store.request_cancel(t.id).state == TaskState.cancelled
    t2 = new(store)
    approve(store, t2.id)
    run_id = store.enqueue(t2.id)
    store.claim("w", {"narrative": 1})
    store.request_cancel(t2.id)
    assert store.heartbeat(run_id) is False  # the worker learns it must stop
    store.finish(run_id, TaskState.cancelled, error="cancelled by user")
    assert store.get_task(t2.id).state == TaskState.cancelled


def test_expired_lease_is_interrupted_and_requeued_when_idempotent(store):
    idem, other = new(store, lane="graph-ops"), new(store, lane="code-impl")
    for t in (idem, other):
        approve(store, t.id)
        store.enqueue(t.id)
        store.claim("dead-worker", {"graph-ops": 1, "code-impl": 1}, lease_s=0.1)
    time.sleep(0.3)
    assert sorted(store.reconcile({"graph-ops"})) == sorted([idem.id, other.id])
    assert store.get_task(idem.id).state == TaskState.queued
    assert store.get_task(other.id).state == TaskState.failed
    assert "not idempotent" in store.get_task(other.id).error
    assert store.claim("w2", {"graph-ops": 1})["attempt"] == 2


def test_state_survives_a_new_process(tmp_path):
    import subprocess
    import sys

    code = ("from pathlib import Path; from direng_kernel.pex.store import TaskStore\n"
            f"s = TaskStore.for_store(Path({str(tmp_path / 's')!r}))\n"
            "t, _ = s.create_task(title='durable', brief='', lane='narrative', parameters={}, idempotency_key='d')\n"
            "print(t.id)")
    tid = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert TaskStore.for_store(tmp_path / "s").get_task(tid).title == "durable"


@pytest.mark.parametrize("brief,lane", [
    ("document the public API of the http module", "narrative"),
    ("find import cycles and dead code", "graph-ops"),
    ("apply this patch and run the tests", "code-impl"),
    ("report breaking changes in the public API since v1", "code-api-design"),
    ("infer a JSON schema from the sample data files", "data-schema"),
    ("refresh the index", "vector-ops"),
])
def test_routing(brief, lane):
    assert route_lane(brief) == lane
