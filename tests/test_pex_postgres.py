"""PEX on PostgreSQL: a real server (Debian's binaries, `initdb` + `pg_ctl` in a temp dir, a
loopback port), the store's own test module rerun against it, two processes draining one
queue, reconciliation after a kill -9 on both backends, stores kept apart by schema, and an
unreachable database as one clear, quick error.

Every test of `tests/test_pex.py` is imported here and runs again with `DIRENG_PEX_DB` set, so
the same tests pass on SQLite (there) and PostgreSQL (here).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from direng_kernel.models import TaskState
from direng_kernel.pex.db import DB_ENV, SCHEMA_ENV, PexDatabaseError
from direng_kernel.pex.store import TaskStore
from pg_server import postgres_server
import test_pex
from test_pex import approve, new

# the store's own tests and their `store` fixture, collected again here (routing is no store test)
globals().update({name: test for name, test in vars(test_pex).items()
                  if (name.startswith("test_") and name != "test_routing") or name == "store"})
import test_attack_tasks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _on_postgres(pg_url, monkeypatch):
    """Every store of every test here (subprocesses too) is on the PostgreSQL server."""
    monkeypatch.setenv(DB_ENV, pg_url)
    monkeypatch.delenv(SCHEMA_ENV, raising=False)


def _queue(store, lane: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        t = new(store, lane=lane)
        approve(store, t.id)
        ids.append(store.enqueue(t.id))
    return ids


def test_stores_sharing_a_database_are_kept_apart_by_schema(tmp_path, monkeypatch):
    a, b = TaskStore.for_store(tmp_path / "a"), TaskStore.for_store(tmp_path / "b")
    assert a.engine.dialect.name == "postgresql" and not (tmp_path / "a").exists()  # no SQLite file
    assert a.location.schema != b.location.schema and a.location.schema.startswith("pex_")
    task = new(a)
    assert [t.id for t in a.list_tasks()] == [task.id] and b.list_tasks() == []
    _queue(a, "narrative", 1)
    assert b.claim("w", {"narrative": 5}) is None  # b's workers never see a's queue
    # servers that share a queue name the same schema, whatever their store directories
    monkeypatch.setenv(SCHEMA_ENV, "team_queue")
    one, two = TaskStore.for_store(tmp_path / "host1"), TaskStore.for_store(tmp_path / "host2")
    shared = new(one)
    assert two.get_task(shared.id).title == "t" and "schema team_queue" in two.describe()
    monkeypatch.setenv(SCHEMA_ENV, "Bad-Name;")
    with pytest.raises(PexDatabaseError, match="not a schema name"):
        TaskStore.for_store(tmp_path / "c")


WORKER = """
import json, os, sys, time
from pathlib import Path
from direng_kernel.models import TaskState
from direng_kernel.pex.store import TaskStore
store = TaskStore.for_store(Path(sys.argv[1]))
go = Path(sys.argv[2])
while not go.exists():  # both workers start claiming at once
    time.sleep(0.01)
claimed, most = [], 0
while True:
    run = store.claim(sys.argv[3], {"graph-ops": 2, "narrative": 50}, lease_s=60)
    if run is None:
        if not any(r["state"] in ("queued", "running") for r in store.list_runs(10_000)):
            break
        time.sleep(0.01)
        continue
    most = max(most, store.running_by_lane().get("graph-ops", 0))
    claimed.append(run["id"])
    time.sleep(0.005)  # the run "works" while the other worker claims
    store.finish(run["id"], TaskState.succeeded)
print(json.dumps({"claimed": claimed, "most_graph_ops": most}))
"""


def test_two_servers_draining_one_queue_never_run_a_task_twice(tmp_path, monkeypatch):
    monkeypatch.setenv(SCHEMA_ENV, "drain_test")  # two servers, two store dirs, one queue
    store = TaskStore.for_store(tmp_path / "server0")
    queued = _queue(store, "narrative", 40) + _queue(store, "graph-ops", 20)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"server{i}"), str(go),
                               f"{socket.gethostname()}:{90000 + i}"], stdout=subprocess.PIPE, text=True)
             for i in (1, 2)]
    time.sleep(1.0)  # both are connected and waiting
    go.touch()
    results = [json.loads(p.communicate(timeout=240)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    claimed = [run for r in results for run in r["claimed"]]
    assert sorted(claimed) == sorted(queued)  # every run claimed, none twice
    assert all(r["claimed"] for r in results), "one worker drained the whole queue: no contention was tested"
    assert max(r["most_graph_ops"] for r in results) <= 2  # the lane's parallelism held across servers
    for run in store.list_runs(1000):
        assert run["state"] == "succeeded" and run["attempt"] == 1
        states = [e.data.get("state") for e in store.events(run["task_id"]) if e.kind == "state"]
        assert states.count("running") == 1


HOLDER = """
import os, socket, sys, time
from pathlib import Path
from direng_kernel.pex.store import TaskStore
store = TaskStore.for_store(Path(sys.argv[1]))
run = store.claim(f"{socket.gethostname()}:{os.getpid()}", {"graph-ops": 1, "code-impl": 1}, lease_s=3600)
print(run["id"], flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_of_a_worker_is_reconciled_the_same_on_both_backends(tmp_path, monkeypatch, backend):
    if backend == "sqlite":
        monkeypatch.delenv(DB_ENV)
    store = TaskStore.for_store(tmp_path / "store")
    assert store.engine.dialect.name == backend
    idem, other = new(store, lane="graph-ops"), new(store, lane="code-impl")
    lost = {}
    for task in (idem, other):
        approve(store, task.id)
        store.enqueue(task.id)
        worker = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "store")], stdout=subprocess.PIPE,
                                  text=True)
        lost[task.id] = worker.stdout.readline().strip()
        os.kill(worker.pid, signal.SIGKILL)  # mid-run, as a user's kill -9
        worker.wait(timeout=30)
        assert store.get_task(task.id).state == TaskState.running
    # the leases have an hour left: the dead pid on this host is what reconciliation sees
    assert sorted(store.reconcile({"graph-ops"})) == sorted([idem.id, other.id])
    for task_id, run_id in lost.items():
        assert store.get_run(run_id)["state"] == "interrupted"
        assert "is gone" in store.get_run(run_id)["error"]
    assert store.get_task(idem.id).state == TaskState.queued  # idempotent: re-queued
    assert store.get_task(other.id).state == TaskState.failed and "not idempotent" in store.get_task(other.id).error
    again = store.claim("w2", {"graph-ops": 1, "code-impl": 1})
    assert again["task_id"] == idem.id and again["attempt"] == 2
    assert store.reconcile({"graph-ops"}) == []  # nothing left to reconcile, nothing done twice


def test_kill_9_of_a_real_cli_worker_is_reconciled_on_postgres(repo, test_lanes):
    """A real `direng task start` worker running a real papermill lane, killed with SIGKILL and
    reconciled at once: tests/test_attack_tasks.py's test, with every process of it on PostgreSQL."""
    from direng_kernel.pex.orchestrator import Orchestrator

    assert Orchestrator(repo, repo / ".direng").tasks.dialect == "postgresql"
    test_attack_tasks.test_dead_worker_is_reconciled_at_once_and_its_lane_stopped(repo, test_lanes)
    assert not (repo / ".direng" / "pex.sqlite3").exists()  # the CLI processes were on PostgreSQL too


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nobody listens there


def test_an_unreachable_database_is_one_clear_error_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, f"postgresql+psycopg://direng:s3cret-pw@127.0.0.1:{_closed_port()}/direng")
    started = time.monotonic()
    with pytest.raises(PexDatabaseError) as err:
        TaskStore.for_store(tmp_path / "store")
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "is unavailable" in message and "127.0.0.1" in message and DB_ENV in message
    assert "s3cret-pw" not in message and "\n" not in message  # one line, no password
    assert err.value.error_code == "pex_db_unavailable"


def test_a_database_that_never_answers_times_out(tmp_path, monkeypatch):
    """A listener that accepts and says nothing (a firewall, a hung server): the connect timeout
    ends the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        monkeypatch.setenv(DB_ENV, f"postgresql+psycopg://direng@127.0.0.1:{port}/direng?connect_timeout=2")
        started = time.monotonic()
        with pytest.raises(PexDatabaseError, match="is unavailable"):
            TaskStore.for_store(tmp_path / "store")
        assert time.monotonic() - started < 15


def test_a_bad_url_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, "mysql://somewhere/db")
    with pytest.raises(PexDatabaseError, match="SQLite or PostgreSQL"):
        TaskStore.for_store(tmp_path / "store")
    monkeypatch.setenv(DB_ENV, "not a url")
    with pytest.raises(PexDatabaseError, match=DB_ENV):
        TaskStore.for_store(tmp_path / "store")


def test_a_reopened_store_keeps_its_tasks(tmp_path):
    store = TaskStore.for_store(tmp_path / "store")
    task = new(store)
    store.close()
    assert TaskStore.for_store(tmp_path / "store").get_task(task.id).title == "t"


def test_ping_reports_a_live_database(tmp_path):
    store = TaskStore.for_store(tmp_path / "store")
    store.ping()  # no error: the server answered
    assert store.describe().startswith("postgresql+psycopg://direng@127.0.0.1:")


def _engine(tmp_path):
    from direng_kernel.engine import Engine

    root = tmp_path / "repo"
    root.mkdir(parents=True)
    (root / "app.py").write_text("def main():\n    return 1\n")
    return Engine(root, watch=False)


def test_health_reports_the_task_store_and_start_up_fails_in_one_line(tmp_path, monkeypatch, pg_url):
    engine = _engine(tmp_path)
    health = engine.health()
    assert health["pex"] == {"ok": True, "db": engine.orchestrator.tasks.describe(), "error": None}
    assert health["status"] == "ok" and "(schema pex_" in health["pex"]["db"]
    monkeypatch.setenv(DB_ENV, f"postgresql+psycopg://direng@127.0.0.1:{_closed_port()}/direng")
    down = _engine(tmp_path / "other")
    started = time.monotonic()
    with pytest.raises(PexDatabaseError, match="is unavailable"):
        down.start_workers()  # the server's start-up: one clear error, no workers, no hang
    health = down.health()
    assert time.monotonic() - started < 20
    assert health["status"] == "degraded" and health["pex"]["ok"] is False
    assert "is unavailable" in health["pex"]["error"] and DB_ENV in health["pex"]["error"]


def test_a_user_without_the_right_to_create_the_schema_gets_one_line(tmp_path, monkeypatch, pg_url):
    import psycopg
    import sqlalchemy as sa

    url = sa.engine.make_url(pg_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                         autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pex_reader")
        conn.execute("CREATE ROLE pex_reader LOGIN")  # may connect (PUBLIC), may not create schemas
    monkeypatch.setenv(DB_ENV, url.set(username="pex_reader").render_as_string(hide_password=False))
    with pytest.raises(PexDatabaseError, match="permission denied") as err:
        TaskStore.for_store(tmp_path / "store")
    assert "\n" not in str(err.value) and "pex_reader@" in str(err.value)


def test_the_server_traitlets_put_the_store_on_postgres_and_report_a_dead_database(tmp_path, monkeypatch,
                                                                                   pg_url):
    """A real Jupyter server: `pex_db` / `pex_schema` move its task store onto PostgreSQL (its workers
    start and health says where); an unreachable `pex_db` is one error line in its log at start-up
    and `degraded` at /health, while the rest of the API keeps serving."""
    from test_server import running_server

    monkeypatch.delenv(DB_ENV)  # the traitlets alone say where the store is
    with running_server(tmp_path / "up", f"--DirEngExtension.pex_db={pg_url}", "--DirEngExtension.pex_schema=srv_team",
                        "--DirEngExtension.watch=False", indexed=False) as srv:
        status, health = srv.get("health")
        assert status == 200 and health["pex"]["ok"] is True, health
        assert health["pex"]["db"].endswith("(schema srv_team)") and health["status"] == "ok"
    monkeypatch.setenv(SCHEMA_ENV, "srv_team")
    assert TaskStore.for_store(tmp_path / "elsewhere").list_tasks() == []  # the schema the server created
    dead = f"postgresql+psycopg://direng:pw@127.0.0.1:{_closed_port()}/direng"
    with running_server(tmp_path / "down", f"--DirEngExtension.pex_db={dead}", "--DirEngExtension.watch=False",
                        indexed=False) as srv:
        status, health = srv.get("health")
        assert status == 200 and health["status"] == "degraded" and health["pex"]["ok"] is False
        assert "is unavailable" in health["pex"]["error"] and "pw@" not in health["pex"]["error"]
        assert srv.get("policy")[0] == 200  # the engine serves the rest of the API
        deadline = time.monotonic() + 30
        while "PAS workers not started" not in srv.log_tail(400) and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = [line for line in srv.log_tail(400).splitlines() if "PAS workers not started" in line]
        assert len(lines) == 1 and "is unavailable" in lines[0] and "Traceback" not in srv.log_tail(400)
