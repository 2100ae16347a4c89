"""PAS on a Dask cluster: each lane run is a task on a `distributed` scheduler.

    DIRENG_EXECUTOR=dask://HOST:PORT          (dask+tls://HOST:PORT: TLS, certificates from dask's config)

The executor claims the run from PEX's queue as always (so the lane's `max_parallel` counts every
run of the store, on every server), then submits `run_lane` to the scheduler. On the worker that
picks it up, `run_lane`:

1. takes one of the lane's slots on the cluster, a `distributed.Semaphore` per store and lane with
   `max_parallel` leases (a lost worker's lease only ends when the scheduler times it out, so a
   run still dying on a lost worker keeps its slot);
2. marks the run started with its worker's address (a `distributed.Variable` the executor created
   empty when it submitted the run). A second attempt
   — the scheduler re-running the task because its first worker died — finds the mark and returns
   without running: a lost run is PEX's to re-queue (idempotent lanes) or fail, never re-run
   behind its back;
3. finds the lane's files: the very paths the server used when they hold the same bytes (a shared
   file system, the same install), else the worker's own lane registry's files with the same
   sha256 — or fails the run, naming what is missing;
4. starts papermill exactly as a local cold run does (`backends.start_papermill`: the same
   command, rlimits, session, allowlist and sandbox inside), tied to the worker's life
   (`PR_SET_PDEATHSIG`), with the worker's environment plus the run's own variables;
5. kills its process group when the run is cancelled (a `distributed.Event` the executor sets),
   outlives the lane's timeout, or its task is released.

Workers must see the repository and the DirEng store at the same paths as the server (one host,
or a shared file system): the lane reads the index and writes its run folder there, and the
executor streams events and KPIs and stores the artifacts from that folder, as for a local run.

Client side, `DaskRun` waits on the task's future, learns the worker's address from the mark,
and raises `WorkerLost` when that worker leaves the cluster mid-run (or the scheduler's retry
reports it). Connecting has a timeout: an unreachable scheduler is one `ExecutorUnavailable` line.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Optional

from ..errors import DirEngError
from .backends import EXECUTOR_ENV, ExecutorUnavailable, LaneJob, WorkerLost, host_env, kill_group, start_papermill

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_ENV = "DIRENG_DASK_CONNECT_TIMEOUT"
CONNECT_TIMEOUT_S = 5.0  # seconds to reach the scheduler (DIRENG_DASK_CONNECT_TIMEOUT overrides)
KILL_WAIT_S = 10.0  # how long a kill waits for the worker to report the lane stopped
POLL_S = 1.0  # how often a worker looks for a cancel while the lane runs
_PR_SET_PDEATHSIG = 1
try:  # looked up now: a preexec_fn should do no more than call it
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the lane outlives a killed worker until its timeout
    _prctl = None


def scheduler_address(address: str, tls: bool = False) -> str:
    """`HOST:PORT` as distributed spells it (`tcp://…`, `tls://…`); a full address is kept."""
    return address if "://" in address else f"{'tls' if tls else 'tcp'}://{address}"


def task_key(run_id: str) -> str:
    return f"direng-lane-{run_id}"


def _started_name(run_id: str) -> str:
    return f"direng-started-{run_id}"


def _cancel_name(run_id: str) -> str:
    return f"direng-cancel-{run_id}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- the worker side -----------------------------------------------------------------------------------


def _die_with_worker() -> None:
    """In the lane's child: SIGKILL when the worker thread that started it dies (kill -9 of the
    worker), instead of running on unseen in a session of its own."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _same(path: Optional[Path], sha256: str) -> bool:
    from .passport import notebook_sha256

    try:
        return path is not None and path.is_file() and notebook_sha256(path) == sha256
    except OSError:
        return False


def _resolve(job: LaneJob, worker: str) -> tuple[dict[str, Path], Optional[str]]:
    """The lane files this worker runs ({"notebook": path, "allowlist": path}), or why it cannot."""
    from .lanes import registry

    try:
        mine = registry.get(job.lane)
    except DirEngError:
        mine = None
    found: dict[str, Path] = {}
    for name, (path, sha) in job.files.items():
        theirs = Path(path)
        if _same(theirs, sha):
            found[name] = theirs
            continue
        local = getattr(mine, name, None) if mine is not None else None
        if _same(local, sha):
            found[name] = Path(local)
            continue
        where = f"its lane folders ({', '.join(map(str, registry.folders()))})"
        return {}, (f"dask worker {worker} has no {name} of lane {job.lane!r} matching the server's "
                    f"({theirs.name}, sha256 {sha[:12]}): not at {theirs}, nor in {where}. Install the same lanes "
                    "on every worker, or put them on a shared folder named by DIRENG_LANES_PATH")
    return found, None


def _released(worker) -> bool:
    """Whether the scheduler no longer wants this task (its client went, or it was cancelled)."""
    try:
        from distributed.worker import thread_state

        ts = worker.state.tasks.get(thread_state.key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten")
    except Exception:  # noqa: BLE001 — internals moved: rely on the cancel event and the timeout
        return False


def run_lane(job: LaneJob) -> dict:
    """The dask task of one lane run (see the module docstring). Returns `{"worker", "rc"}`, or
    `{"worker", "failure"}` when the lane could not start here, or `{"worker", "lost"}` when an
    earlier attempt of this run started on a worker that is gone."""
    from distributed import Event, Semaphore, Variable, get_worker

    worker = get_worker()
    address = worker.address
    slots = Semaphore(max_leases=job.max_parallel, name=f"direng-{job.namespace}-{job.lane}-{job.max_parallel}")
    if not slots.acquire(timeout=job.timeout_s):
        return {"worker": address, "failure": f"no free {job.lane} slot on the dask cluster within "
                                              f"{job.timeout_s:g} s (max_parallel {job.max_parallel})"}
    try:
        started = Variable(_started_name(job.run_id))
        try:
            earlier = started.get(timeout=10)  # "" since the executor submitted the run
        except TimeoutError:  # the executor has forgotten the run (it was cancelled)
            return {"worker": address, "failure": "the run was withdrawn before it started"}
        if earlier:
            return {"worker": address, "lost": earlier}
        started.set(address)
        if not Path(job.run_dir).is_dir() or not Path(job.root).is_dir():
            return {"worker": address, "failure": (
                f"dask worker {address} does not see the run folder {job.run_dir} or the repository {job.root}: "
                "workers need the repository and the DirEng store at the same paths (one host, or a shared "
                "file system)")}
        files, problem = _resolve(job, address)
        if problem:
            return {"worker": address, "failure": problem}
        env = {**host_env(), **job.lane_vars}
        if "allowlist" in files:
            env["DIRENG_LANE_ALLOWLIST"] = str(files["allowlist"])
        proc = start_papermill(files["notebook"], Path(job.output), Path(job.run_dir), job.parameters, env,
                               job.limits, Path(job.log), preexec=_die_with_worker)
        log.info("dask worker %s: run %s of lane %s started (pid %d)", address, job.run_id, job.lane, proc.pid)
        cancel = Event(_cancel_name(job.run_id))
        deadline = time.monotonic() + job.timeout_s + 30  # the executor times it first; this is the backstop
        while proc.poll() is None:
            try:
                stop = cancel.wait(timeout=POLL_S)
            except Exception:  # noqa: BLE001 — the scheduler went away: the deadline still holds
                time.sleep(POLL_S)
                stop = False
            if stop or time.monotonic() > deadline or _released(worker):
                kill_group(proc)
                break
        return {"worker": address, "rc": proc.wait()}
    finally:
        try:
            slots.release()
        except Exception:  # noqa: BLE001 — the lease ends with its timeout on the scheduler
            log.debug("dask worker %s: the %s slot was not released", address, job.lane)


# -- the client side -----------------------------------------------------------------------------------


class DaskRun:
    """A lane run submitted to the cluster (the executor's `LaneProcess`)."""

    pid = None  # the lane process is on a worker: the task store never signals it

    def __init__(self, backend: "DaskBackend", client, future, job: LaneJob):
        from distributed import Event, Variable

        self.backend, self.client, self.future, self.job = backend, client, future, job
        self.failure: Optional[str] = None
        self.worker: Optional[str] = None
        self._submitted = time.monotonic()
        self._started: Optional[float] = None
        self._mark = Variable(_started_name(job.run_id), client=client)
        self._cancel = Event(_cancel_name(job.run_id), client=client)

    def wait(self, timeout: float) -> Optional[int]:
        from distributed import KilledWorker

        try:
            out = self.future.result(timeout=timeout)
        except TimeoutError:
            self._watch()
            return None
        except KilledWorker as exc:
            raise WorkerLost(f"the dask worker running lane {self.job.lane} died mid-run "
                             f"({self.worker or 'worker unknown'}): {_first_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 — the task itself crashed, or the scheduler went
            if self.worker is not None and self.worker not in self.backend.workers():
                raise WorkerLost(f"dask worker {self.worker} died mid-run") from None
            self.failure = f"the dask task of run {self.job.run_id} failed: {type(exc).__name__}: {_first_line(exc)}"
            return None
        self.worker = out.get("worker") if not out.get("lost") else self.worker or out["lost"]
        if out.get("lost"):
            raise WorkerLost(f"dask worker {out['lost']} died mid-run (the scheduler's retry on {out.get('worker')} "
                             "was stopped: PEX decides whether the run goes again)")
        if out.get("failure"):
            self.failure = out["failure"]
            return None
        return int(out["rc"])

    def _watch(self) -> None:
        """While the task is pending: learn where it started; notice that worker leaving."""
        if self.worker is None:
            try:
                self.worker = self._mark.get(timeout=5) or None
            except Exception:  # noqa: BLE001 — a scheduler hiccup: ask again next time
                return
            if self.worker is not None:
                self._started = time.monotonic()
            elif time.monotonic() - self._submitted > self.job.timeout_s:
                self.failure = (f"no dask worker started the run within {self.job.timeout_s:g} s "
                                f"({len(self.backend.workers())} worker(s) at {self.backend.address})")
                self.future.cancel()
            return
        elif self.worker not in self.backend.workers():
            raise WorkerLost(f"dask worker {self.worker} died mid-run")

    def running_for(self) -> Optional[float]:
        return None if self._started is None else time.monotonic() - self._started

    def kill(self) -> None:
        """Have the worker kill the lane's process group, and wait (bounded) for it to say so."""
        try:
            self._cancel.set()
            self.future.result(timeout=KILL_WAIT_S)
        except Exception:  # noqa: BLE001 — gone, failed or slow: the task is dropped either way
            pass
        self.future.cancel()

    def where(self) -> dict:
        return {"kind": "dask", "worker": self.worker, "scheduler": self.backend.address}

    def close(self) -> None:
        """The cluster forgets the run: its task, its start mark, its cancel event."""
        self.future.cancel()
        if self.client.status != "running":
            return
        for forget in (self._mark.delete, self._cancel.clear):
            try:
                forget()
            except Exception:  # noqa: BLE001 — the scheduler forgets them when it restarts
                log.debug("run %s: the scheduler kept its marks", self.job.run_id)


_clients: dict[str, object] = {}  # scheduler address → this process's client of it
_users: dict[str, int] = {}
_clients_lock = threading.Lock()


def _close_quietly(client) -> None:
    try:
        client.close(timeout=2)
    except Exception:  # noqa: BLE001 — a client of a dead scheduler: nothing to close cleanly
        pass


def _shared_client(address: str, timeout: float):
    """One client per scheduler per process, shared by every executor in it (a server's, each
    replay's): a new one only when there is none or the last one lost its scheduler."""
    from distributed import Client

    with _clients_lock:
        client = _clients.get(address)
        if client is None or client.status != "running":
            if client is not None:
                _close_quietly(client)
            client = _clients[address] = Client(address, timeout=timeout, set_as_default=False, name="direng-pas")
        _users[address] = _users.get(address, 0) + 1
        return client


def _release(address: str) -> None:
    """A backend is done with its client; the last one closes it."""
    with _clients_lock:
        _users[address] = _users.get(address, 1) - 1
        if _users[address] <= 0:
            _users.pop(address, None)
            client = _clients.pop(address, None)
            if client is not None:
                _close_quietly(client)


class DaskBackend:
    """Lane runs as tasks on the `distributed` scheduler at `address`. A subclass may override
    `_connect` (another way to reach a cluster: dask-gateway, docs/deploy.md)."""

    kind = "dask"

    def __init__(self, address: str, connect_timeout: float | None = None, tls: bool = False):
        self.address = scheduler_address(address, tls)
        if connect_timeout is None:
            try:
                connect_timeout = float(os.environ.get(CONNECT_TIMEOUT_ENV) or CONNECT_TIMEOUT_S)
            except ValueError:
                raise ExecutorUnavailable(f"{CONNECT_TIMEOUT_ENV} must be a number of seconds") from None
        self.connect_timeout = connect_timeout
        self._client = None
        self._lock = threading.Lock()

    def _connect(self):
        """A connected `distributed.Client` (this process's shared one), within `connect_timeout`."""
        return _shared_client(self.address, self.connect_timeout)

    def _disconnect(self, client) -> None:
        _release(self.address)

    def client(self):
        """The connected client, connecting when there is none (or it lost the scheduler)."""
        with self._lock:
            if self._client is not None and self._client.status == "running":
                return self._client
            if self._client is not None:
                stale, self._client = self._client, None
                self._disconnect(stale)
            try:
                self._client = self._connect()
            except Exception as exc:  # noqa: BLE001 — OSError, TimeoutError, a refused handshake
                raise ExecutorUnavailable(
                    f"Dask scheduler {self.address} is unreachable: {_first_line(exc)} (connect timeout "
                    f"{self.connect_timeout:g} s; set {EXECUTOR_ENV}, or unset it for the local executor)") from None
            return self._client

    def check(self) -> None:
        self.client()

    def workers(self) -> dict[str, dict]:
        """The cluster's workers (address → info), as the scheduler last reported them."""
        try:
            return dict(self.client().scheduler_info(n_workers=-1).get("workers", {}))
        except ExecutorUnavailable:
            return {}

    def health(self) -> dict:
        info = {"ok": True, "kind": self.kind, "address": self.address, "workers": None, "error": None}
        try:
            info["workers"] = len(self.client().scheduler_info(n_workers=-1).get("workers", {}))
        except ExecutorUnavailable as exc:
            info.update(ok=False, error=str(exc))
        return info

    def slots(self) -> int:
        """The cluster's worker threads now (a serving executor runs that many runs at once)."""
        return min(64, sum(int(w.get("nthreads", 1)) for w in self.workers().values()))

    def start(self, store_dir: Path) -> None:
        self.check()

    def launch(self, job: LaneJob) -> DaskRun:
        from distributed import Variable

        client = self.client()
        # The worker brings its own environment; only the run's variables travel.
        wire = dataclasses.replace(job, env={}, pool_key=None)
        # The start mark exists before the task does ("": not started), so nobody waits on it.
        Variable(_started_name(job.run_id), client=client).set("")
        future = client.submit(run_lane, wire, key=task_key(job.run_id), pure=False, retries=0)
        return DaskRun(self, client, future, job)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            self._disconnect(client)


__all__ = ["CONNECT_TIMEOUT_S", "DaskBackend", "DaskRun", "run_lane", "scheduler_address", "task_key"]
