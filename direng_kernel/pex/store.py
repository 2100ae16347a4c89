"""PEX's durable state: tasks, runs, events and KPIs through SQLAlchemy Core, in SQLite or PostgreSQL.

SQLite (the default, `<store>/pex.sqlite3`) runs in WAL mode with a busy timeout and every
write transaction starts with `BEGIN IMMEDIATE`, so concurrent workers serialize cleanly.
PostgreSQL (`DIRENG_PEX_DB`, see `pex/db.py`; the store's tables in a schema of its own) gets
the same guarantee from transaction-scoped advisory locks: every write takes the store's lock
exclusively, as `BEGIN IMMEDIATE` does, except claims, which share it so that servers claim in
parallel — each takes its candidate lanes' locks (in one order, so no deadlock) to keep the
lanes' parallelism exact across servers, then the oldest queued run with `SELECT … FOR UPDATE
SKIP LOCKED`. Workers claim runs atomically (one UPDATE guarded by the
run's state and the lane's parallelism) and hold a lease they renew with heartbeats; a worker
that dies stops renewing, and `reconcile()` turns its run `interrupted` — re-queued when the
lane is idempotent. A kill -9 therefore loses no task and leaves no half-written row.

A worker is named `host:pid` (the executor's default), so a run whose worker process is gone
from this host is reconciled at once instead of when its lease runs out, and its lane process —
papermill, in a session of its own, orphaned by the kill — is stopped. Runs held on other hosts,
or by workers named otherwise, wait for their lease.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from ..errors import NotFoundError
from ..security.scrub import scrub, scrub_obj
from ..processes import pid_alive
from ..models import RUN_FINAL_STATES, SETTLED_STATES, Escalation, Estimate, Task, TaskEvent, TaskState
from . import states
from .db import DB_NAME, Location, PexDatabaseError, create_engine, locate, unreachable

__all__ = ["DB_NAME", "PexDatabaseError", "TaskNotFound", "TaskStore"]
log = logging.getLogger(__name__)
meta = sa.MetaData()
tasks = sa.Table(
    "tasks", meta,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("title", sa.String, nullable=False),
    sa.Column("brief", sa.Text, default=""),
    sa.Column("lane", sa.String, nullable=False),
    sa.Column("parameters", sa.Text, default="{}"),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("idempotency_key", sa.String, unique=True, nullable=True),
    sa.Column("estimate", sa.Text, nullable=True),
    sa.Column("run_id", sa.String, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("rehearsal", sa.Boolean, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("escalation", sa.Text, nullable=True),  # an Escalation's JSON while the task is escalated
    sa.Column("budget_factor", sa.Float, nullable=True),  # budgets raised for this task (an escalation's choice)
    sa.Column("size", sa.Text, nullable=True),  # the task's sizes as JSON (pex/size.py), for PLMS's size model
)
#: Columns added after a store was first created: (table, column), added on open with their
#: type in the table above.
ADDED_COLUMNS = [("tasks", "escalation"), ("tasks", "budget_factor"), ("tasks", "size")]
runs = sa.Table(
    "runs", meta,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("task_id", sa.String, nullable=False, index=True),
    sa.Column("lane", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False, index=True),
    sa.Column("attempt", sa.Integer, default=1),
    sa.Column("worker", sa.String, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("tokens", sa.Integer, default=0),
    sa.Column("cost", sa.Float, default=0.0),
    sa.Column("rehearsal", sa.Boolean, default=False),
    sa.Column("cancel_requested", sa.Boolean, default=False),
    sa.Column("sandbox", sa.String, nullable=True),
    sa.Column("output_notebook", sa.String, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)
events = sa.Table(
    "events", meta,
    sa.Column("task_id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("message", sa.Text, default=""),
    sa.Column("data", sa.Text, default="{}"),
)
kpis = sa.Table(
    "kpis", meta,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
)


class TaskNotFound(NotFoundError):
    pass


def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, timezone.utc) if ts is not None else None


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _local_pid(worker: str | None) -> int | None:
    """The pid of a worker named `host:pid` on this host; None for any other worker."""
    host, _, pid = (worker or "").rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() and int(pid) > 0 else None


def worker_alive(worker: str | None) -> bool | None:
    """Whether a run's worker process lives; None when this host cannot tell (lease only)."""
    pid = _local_pid(worker)
    return None if pid is None else pid_alive(pid)


def _stop_lane(run) -> None:
    """Kill the process group of a lost run's lane, if that pid is still that run's papermill
    (it runs in its own session, so its worker's death left it running)."""
    if not run.pid or run.pid <= 0 or _local_pid(run.worker) is None:
        return
    try:
        if run.id.encode() not in Path(f"/proc/{run.pid}/cmdline").read_bytes() or os.getpgid(run.pid) != run.pid:
            return  # the pid was reused by something else
        os.killpg(run.pid, signal.SIGKILL)
        log.info("stopped the orphaned lane process %d of run %s", run.pid, run.id)
    except OSError:
        pass


class TaskStore:
    """The task store at `url` (a SQLAlchemy URL or a `db.Location`); `schema` holds its tables
    on PostgreSQL (default: the database's search path). An unreachable database is a
    `PexDatabaseError` here, at once — never a hang."""

    def __init__(self, url: "str | Location", schema: str | None = None):
        self.location = url if isinstance(url, Location) else Location(url, schema)
        self.engine = create_engine(self.location)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _on_connect(dbapi_conn, _record):
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @sa.event.listens_for(self.engine, "begin")
            def _on_begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            with self._write() as conn:  # one server creates a new store; the others wait, then see it
                if self.location.schema:
                    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {self._quoted_schema()}")
                meta.create_all(conn)
                self._add_columns(conn)
        except sa.exc.DBAPIError as exc:  # refused, timed out, no such database, no right to create the schema
            self.engine.dispose()
            raise unreachable(self.location, exc) from None
        if not self.location.is_sqlite:
            log.info("PEX task store: %s", self.location.describe())

    def _quoted_schema(self) -> str:
        return self.engine.dialect.identifier_preparer.quote_schema(self.location.schema)

    @contextmanager
    def _write(self, shared: bool = False):
        """A write transaction. SQLite: `BEGIN IMMEDIATE` (the `begin` listener). PostgreSQL: the
        store's advisory lock first — exclusive, like SQLite's write lock, or `shared` for claims,
        which keep themselves apart with lane locks and SKIP LOCKED."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
                conn.execute(sa.text(f"SELECT {fn}(hashtext(:key)::bigint)"), {"key": self._lock_key()})
            yield conn

    def _lock_key(self) -> str:
        return f"direng-pex:{self.location.schema or ''}"

    def _lock_lanes(self, conn, lanes) -> None:
        """PostgreSQL: hold the claim locks of `lanes` till commit, in sorted order (two claimers
        wanting the same lanes queue up instead of deadlocking). Two-key locks: a space apart
        from the store's one-key lock."""
        for lane in sorted(lanes):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:store), hashtext(:lane))"),
                         {"store": self._lock_key(), "lane": lane})

    def _add_columns(self, conn) -> None:
        """Columns newer than the store, added in the set-up transaction (existing rows get NULL,
        which every reader takes as "none")."""
        inspector = sa.inspect(conn)
        for table, column in ADDED_COLUMNS:
            have = {c["name"] for c in inspector.get_columns(table, schema=self.location.schema)}
            if column not in have:
                sql_type = meta.tables[table].c[column].type.compile(dialect=conn.dialect)
                name = f"{self._quoted_schema()}.{table}" if self.location.schema else table
                conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {column} {sql_type}")

    def ping(self) -> None:
        """One round trip to the database (for `health`); a PexDatabaseError when it fails."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:  # timeouts, refused, gone
            raise unreachable(self.location, exc) from None

    def describe(self) -> str:
        """Where this store lives (URL without password, and schema)."""
        return self.location.describe()

    def close(self) -> None:
        self.engine.dispose()

    @classmethod
    def for_store(cls, store_dir: Path) -> "TaskStore":
        """The store of `store_dir`: `DIRENG_PEX_DB` when set (see `pex/db.py`), else its SQLite file."""
        store_dir = Path(store_dir)
        location = locate(store_dir)
        if location.is_sqlite:
            store_dir.mkdir(parents=True, exist_ok=True)
        return cls(location)

    @classmethod
    def for_root(cls, root: str | Path, store: str | Path | None = None) -> "TaskStore":
        from ..config import IndexSettings

        return cls.for_store(IndexSettings.for_root(root, store).store)

    # -- tasks ------------------------------------------------------------------
    def _task(self, row) -> Task:
        return Task(
            id=row.id, title=row.title, brief=row.brief or "", lane=row.lane,
            parameters=json.loads(row.parameters or "{}"), state=TaskState(row.state),
            idempotency_key=row.idempotency_key,
            estimate=Estimate.model_validate_json(row.estimate) if row.estimate else None,
            run_id=row.run_id, error=row.error, created_at=_utc(row.created_at), updated_at=_utc(row.updated_at),
            escalation=Escalation.model_validate_json(row.escalation)
            if row.escalation and row.state == TaskState.escalated.value else None,
            budget_factor=row.budget_factor or 1.0,
        )

    def create_task(self, *, title: str, brief: str, lane: str, parameters: dict,
                    idempotency_key: str | None = None, rehearsal: bool = False) -> tuple[Task, bool]:
        """(task, created): the same idempotency key returns the task it created before."""
        now = time.time()
        with self._write() as conn:
            if idempotency_key:
                row = conn.execute(sa.select(tasks).where(tasks.c.idempotency_key == idempotency_key)).first()
                if row:
                    return self._task(row), False
            task_id = _new_id("task")
            conn.execute(tasks.insert().values(
                id=task_id, title=scrub(title), brief=scrub(brief), lane=lane,
                parameters=json.dumps(scrub_obj(parameters), sort_keys=True),
                state=TaskState.new.value, idempotency_key=idempotency_key, rehearsal=rehearsal,
                created_at=now, updated_at=now))
            self._event(conn, task_id, "state", "new", {"state": "new", "lane": lane})
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one()
        return self._task(row), True

    @staticmethod
    def _row(conn, task_id: str):
        row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).first()
        if row is None:
            raise TaskNotFound(f"no task {task_id!r}")
        return row

    def get_task(self, task_id: str) -> Task:
        with self.engine.connect() as conn:
            return self._task(self._row(conn, task_id))

    def list_tasks(self, limit: int = 200) -> list[Task]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tasks).order_by(tasks.c.created_at.desc()).limit(limit)).all()
        return [self._task(r) for r in rows]

    def transition(self, task_id: str, new: TaskState, message: str = "", conn=None, **fields) -> Task:
        """Move a task, refusing illegal transitions; records a `state` event in the same transaction."""
        def apply(c):
            row = self._row(c, task_id)
            states.check(task_id, TaskState(row.state), new)
            values = {"state": new.value, "updated_at": time.time()}
            if "estimate" in fields:
                values["estimate"] = fields.pop("estimate").model_dump_json()
            esc = fields.pop("escalation", None)
            values["escalation"] = esc.model_dump_json() if esc is not None and new == TaskState.escalated else None
            values.update(fields)
            c.execute(tasks.update().where(tasks.c.id == task_id).values(**values))
            self._event(c, task_id, "state", message or new.value, {"state": new.value})
            return self._task(c.execute(sa.select(tasks).where(tasks.c.id == task_id)).one())

        if conn is not None:
            return apply(conn)
        with self._write() as c:
            return apply(c)

    # -- events -----------------------------------------------------------------
    def _event(self, conn, task_id: str, kind: str, message: str = "", data: dict | None = None) -> int:
        message, data = scrub(message), scrub_obj(data or {})
        seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))
                           .where(events.c.task_id == task_id)).scalar_one() + 1
        conn.execute(events.insert().values(task_id=task_id, seq=seq, at=time.time(), kind=kind,
                                            message=message, data=json.dumps(data or {})))
        return seq

    def add_event(self, task_id: str, kind: str, message: str = "", data: dict | None = None) -> int:
        with self._write() as conn:
            return self._event(conn, task_id, kind, message, data)

    def events(self, task_id: str, after: int = 0) -> list[TaskEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.task_id == task_id, events.c.seq > after)
                                .order_by(events.c.seq)).all()
        return [TaskEvent(task_id=r.task_id, seq=r.seq, at=_utc(r.at), kind=r.kind, message=r.message or "",
                          data=json.loads(r.data or "{}")) for r in rows]

    def follow(self, task_id: str, poll: float = 0.2, timeout: float | None = None) -> Iterator[TaskEvent]:
        """Yield events as they are written until the task settles (a final state, or escalated)."""
        seen, deadline = 0, (time.time() + timeout) if timeout else None
        while True:
            batch = self.events(task_id, seen)
            for ev in batch:
                seen = ev.seq
                yield ev
            task = self.get_task(task_id)
            if task.state.value in SETTLED_STATES and not batch:
                return
            if deadline and time.time() > deadline:
                return
            time.sleep(poll)

    # -- runs -------------------------------------------------------------------
    def enqueue(self, task_id: str, message: str = "queued") -> str:
        """Create a run for an approved (or interrupted) task and queue both, atomically."""
        with self._write() as conn:
            return self._enqueue(conn, task_id, message)

    def _enqueue(self, conn, task_id: str, message: str) -> str:
        row = self._row(conn, task_id)
        attempt = conn.execute(sa.select(sa.func.count()).select_from(runs)
                               .where(runs.c.task_id == task_id)).scalar_one() + 1
        run_id = _new_id("run")
        conn.execute(runs.insert().values(id=run_id, task_id=task_id, lane=row.lane, state="queued", attempt=attempt,
                                          created_at=time.time(), rehearsal=bool(row.rehearsal)))
        self.transition(task_id, TaskState.queued, message, conn=conn, run_id=run_id)
        return run_id

    def set_budget_factor(self, task_id: str, factor: float) -> None:
        with self._write() as conn:
            self._row(conn, task_id)
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(budget_factor=factor,
                                                                            updated_at=time.time()))
            self._event(conn, task_id, "log", f"budgets raised: x{factor:g} the lane's", {"budget_factor": factor})

    def claim(self, worker: str, max_parallel: dict[str, int], lease_s: float = 30.0,
              task_id: str | None = None) -> dict | None:
        """Atomically take the oldest queued run (of `task_id` only, if given) whose lane has a free
        slot; None when there is none. The lanes' slots count every worker of the store, on every
        server sharing it."""
        with self._write(shared=True) as conn:
            query = sa.select(runs).where(runs.c.state == "queued")
            if task_id is not None:
                query = query.where(runs.c.task_id == task_id)
            if self.dialect == "postgresql":
                run = self._pick_locked(conn, query, max_parallel)
                candidates = [run] if run is not None else []
            else:  # BEGIN IMMEDIATE: this transaction is the only writer, a plain scan is exact
                running = self._running_by_lane(conn)
                candidates = [r for r in conn.execute(query.order_by(runs.c.created_at)).all()
                              if running.get(r.lane, 0) < max_parallel.get(r.lane, 1)]
            for run in candidates:
                now = time.time()
                done = conn.execute(runs.update().where(runs.c.id == run.id, runs.c.state == "queued").values(
                    state="running", worker=worker, lease_until=now + lease_s, started_at=now)).rowcount
                if done:
                    self.transition(run.task_id, TaskState.running, f"running on {worker}", conn=conn)
                    return dict(conn.execute(sa.select(runs).where(runs.c.id == run.id)).one()._mapping)
        return None

    def _pick_locked(self, conn, query, max_parallel: dict[str, int]):
        """PostgreSQL: the oldest queued run of a lane with a free slot, locked (`FOR UPDATE SKIP
        LOCKED`: rows another transaction holds are passed over, never waited on). The candidate
        lanes' locks come first, so the running counts read next stay true until commit."""
        lanes = conn.execute(query.with_only_columns(runs.c.lane).distinct()).scalars().all()
        if not lanes:
            return None
        self._lock_lanes(conn, lanes)
        running = self._running_by_lane(conn)  # read after the locks: every earlier claim has committed
        free = [lane for lane in lanes if running.get(lane, 0) < max_parallel.get(lane, 1)]
        if not free:
            return None
        return conn.execute(query.where(runs.c.lane.in_(free)).order_by(runs.c.created_at).limit(1)
                            .with_for_update(skip_locked=True)).first()

    @staticmethod
    def _running_by_lane(conn) -> dict[str, int]:
        return dict(conn.execute(sa.select(runs.c.lane, sa.func.count()).where(runs.c.state == "running")
                                 .group_by(runs.c.lane)).all())

    def running_by_lane(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return self._running_by_lane(conn)

    def queued_ahead(self, run_id: str) -> int:
        """How many queued runs a worker taking runs in order would take before this one."""
        with self.engine.connect() as conn:
            created = conn.execute(sa.select(runs.c.created_at).where(runs.c.id == run_id)).scalar()
            if created is None:
                return 0
            return conn.execute(sa.select(sa.func.count()).select_from(runs).where(
                runs.c.state == "queued", runs.c.created_at < created)).scalar_one()

    def heartbeat(self, run_id: str, lease_s: float = 30.0, pid: int | None = None) -> bool:
        """Renew a lease; False when the run was cancelled (the worker should stop it)."""
        with self._write() as conn:
            values = {"lease_until": time.time() + lease_s}
            if pid is not None:
                values["pid"] = pid
            conn.execute(runs.update().where(runs.c.id == run_id, runs.c.state == "running").values(**values))
            return not conn.execute(sa.select(runs.c.cancel_requested).where(runs.c.id == run_id)).scalar_one()

    def finish(self, run_id: str, state: TaskState, *, error: str | None = None, kpi_values: dict | None = None,
               escalation: Escalation | None = None, **fields) -> None:
        """Record a run's end and move its task in one transaction; with `escalation` the run
        ended `state` (failed) and the task waits, escalated, for the user's choice."""
        with self._write() as conn:
            run = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one()
            if run.state != "running":
                return  # already reconciled (e.g. interrupted) or cancelled
            now = time.time()
            error = scrub(error) if error else error
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                state=state.value, finished_at=now, duration_s=now - (run.started_at or now), error=error, **fields))
            if kpi_values:  # replaced, portably: the run's row is ours alone in this transaction
                conn.execute(kpis.delete().where(kpis.c.run_id == run_id, kpis.c.name.in_(list(kpi_values))))
                conn.execute(kpis.insert(), [{"run_id": run_id, "name": name, "value": value}
                                             for name, value in kpi_values.items()])
            if escalation is not None:
                self.transition(run.task_id, TaskState.escalated, f"escalated: {escalation.message}", conn=conn,
                                error=error, escalation=escalation)
            else:
                self.transition(run.task_id, state, error or state.value, conn=conn, error=error)

    def request_cancel(self, task_id: str) -> Task:
        with self._write() as conn:
            task = self._task(self._row(conn, task_id))
            if task.state == TaskState.running and task.run_id:
                conn.execute(runs.update().where(runs.c.id == task.run_id).values(cancel_requested=True))
                self._event(conn, task_id, "log", "cancel requested; stopping the lane")
                return task
            if task.state == TaskState.queued and task.run_id:
                conn.execute(runs.update().where(runs.c.id == task.run_id).values(state="cancelled",
                                                                                   finished_at=time.time()))
            return self.transition(task_id, TaskState.cancelled, "cancelled by user", conn=conn)

    def reconcile(self, idempotent_lanes: set[str], now: float | None = None) -> list[str]:
        """Runs whose lease expired, or whose worker process is gone from this host, become
        interrupted; idempotent lanes' tasks are re-queued, the others fail. One transaction, so
        a crash here cannot leave a task interrupted with nobody to move it on."""
        now = now or time.time()
        touched, lost = [], []
        with self._write() as conn:
            for run in conn.execute(sa.select(runs).where(runs.c.state == "running")).all():
                if run.lease_until is not None and run.lease_until < now:
                    why = "worker lost (lease expired)"
                elif worker_alive(run.worker) is False:
                    why = f"worker lost (process {_local_pid(run.worker)} is gone)"
                else:
                    continue
                conn.execute(runs.update().where(runs.c.id == run.id).values(state="interrupted", finished_at=now,
                                                                             error=why))
                lost.append(run)
                task = self._task(self._row(conn, run.task_id))
                if task.state != TaskState.running or task.run_id != run.id:
                    continue  # the task has moved on without this run
                self.transition(run.task_id, TaskState.interrupted, why, conn=conn)
                if task.lane in idempotent_lanes:
                    self._enqueue(conn, run.task_id, "re-queued after interruption (idempotent lane)")
                else:
                    self.transition(run.task_id, TaskState.failed, "interrupted; lane is not idempotent, not re-run",
                                    conn=conn, error="interrupted; not re-run (lane is not idempotent)")
                touched.append(run.task_id)
        for run in lost:
            _stop_lane(run)
        return touched

    def get_run(self, run_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise TaskNotFound(f"no run {run_id!r}")
        return dict(row._mapping)

    def list_runs(self, limit: int = 500) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)).all()
            values = conn.execute(sa.select(kpis)).all()
        by_run: dict[str, dict] = {}
        for k in values:
            by_run.setdefault(k.run_id, {})[k.name] = k.value
        return [dict(r._mapping) | {"kpis": by_run.get(r.id, {})} for r in rows]

    # -- task sizes (PLMS's size model) ------------------------------------------
    def set_task_size(self, task_id: str, size: dict[str, float]) -> None:
        """Record the task's sizes (`pex/size.py`), replacing earlier ones."""
        with self._write() as conn:
            self._row(conn, task_id)
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(size=json.dumps(size, sort_keys=True)))

    def task_size(self, task_id: str) -> dict[str, float]:
        """The task's recorded sizes ({} when none were, or they do not read back)."""
        with self.engine.connect() as conn:
            raw = self._row(conn, task_id).size
        try:
            size = json.loads(raw) if raw else {}
        except ValueError:
            log.warning("task %s: its recorded sizes do not parse; estimating without them", task_id)
            return {}
        return size if isinstance(size, dict) else {}

    def run_history(self):
        """Finished runs as PLMS history (`plms.history.RunHistory`), each with its task's sizes;
        a row that does not validate is skipped and counted."""
        from ..plms.history import read_history

        with self.engine.connect() as conn:
            sizes = dict(conn.execute(sa.select(tasks.c.id, tasks.c.size).where(tasks.c.size.is_not(None))).all())
        rows = []
        for r in reversed(self.list_runs(100_000)):
            if r["finished_at"] is None or r["state"] not in RUN_FINAL_STATES:
                continue
            try:
                features = json.loads(sizes[r["task_id"]]) if r["task_id"] in sizes else {}
            except ValueError:
                features = None  # not a JSON object: the row is reported corrupt below
            rows.append({"lane": r["lane"], "duration_s": r["duration_s"] or 0.0, "tokens": r["tokens"] or 0,
                         "cost": r["cost"] or 0.0, "status": r["state"], "rehearsal": bool(r["rehearsal"]),
                         "finished_at": _utc(r["finished_at"]) if isinstance(r["finished_at"], (int, float))
                         else r["finished_at"], "features": features})
        return read_history(rows)

    def run_records(self):
        """Finished runs as PLMS history records (corrupt rows skipped: see `run_history`)."""
        return self.run_history().records
