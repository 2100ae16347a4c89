"""Where a lane's papermill process runs: what an executor backend is, and the local one.

`pas.executors` picks the backend `DIRENG_EXECUTOR` names (`local`, the default, defined here;
`dask`, in `pas.dask_backend`). Whatever the backend, the executor claims the run, streams its
records, enforces cancellation and the lane's wall timeout and writes the passport
(`pas.executor`); a backend only starts the process (`launch`) and hands back a `LaneProcess` to wait on, kill and describe. The papermill
command and its launch under the lane's rlimits are built in one place, `start_papermill`, which
both a local cold run and a dask worker call.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol
from urllib.parse import urlsplit

from ..errors import DirEngError
from .pool import ENGINE_NAME, KernelPool, PoolKey, hand_over, pool_size

log = logging.getLogger(__name__)

EXECUTOR_ENV = "DIRENG_EXECUTOR"
KERNEL = "python3"  # the kernel lane notebooks run on (papermill -k)
#: What a lane process never inherits from its host: the API's URL and tokens (a lane gets its
#: own narrow token), Jupyter's, and the per-lane variables the executor sets itself.
_NOT_INHERITED = ("DIRENG_SERVER", "DIRENG_TOKEN", "JPY_")
_SET_PER_LANE = ("DIRENG_LANE_ALLOWLIST", "DIRENG_LANE_ROUTE", "DIRENG_BUDGET_FACTOR")


class ExecutorUnavailable(DirEngError):
    """The configured executor backend cannot run lanes: unknown, not installed, or unreachable."""

    error_code = "executor_unavailable"


class WorkerLost(DirEngError):
    """The machine running a lane went away mid-run: the run is interrupted, not failed."""


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed `DIRENG_EXECUTOR`: the backend kind, the address after the scheme, the URL."""

    kind: str
    address: str = ""
    url: str = "local"

    @classmethod
    def parse(cls, url: str | None) -> "ExecutorSpec":
        raw = (url or "").strip()
        if not raw or raw == "local":
            return cls("local")
        parts = urlsplit(raw)
        if not parts.scheme or not parts.netloc:
            raise ExecutorUnavailable(f"{EXECUTOR_ENV}={raw!r} is not an executor URL: use 'local' or "
                                      "dask://HOST:PORT")
        return cls(parts.scheme, parts.netloc + parts.path, raw)


@dataclass
class LaneJob:
    """One lane run as a backend gets it. `env` is the whole environment for a process on this
    host; `lane_vars` is the part that is the run's own (another host adds its own base, see
    `host_env`). `files` maps the run's lane files (`notebook`, `allowlist`) to (path, sha256),
    so a worker can check it runs the very files the passport names."""

    run_id: str
    task_id: str
    lane: str
    notebook: Path
    output: Path
    run_dir: Path
    log: Path
    root: Path
    parameters: dict
    env: dict[str, str]
    lane_vars: dict[str, str]
    limits: dict
    pool_key: Optional[PoolKey] = None
    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    namespace: str = ""  # who shares the lane's cluster-wide slots (the store)

    @property
    def timeout_s(self) -> float:
        return float(self.limits.get("timeout_s", 600))

    @property
    def max_parallel(self) -> int:
        return max(1, int(self.limits.get("max_parallel", 1)))


class LaneProcess(Protocol):
    """A launched lane run, wherever it runs."""

    pid: Optional[int]  # a process on this host the task store may stop; None elsewhere
    failure: Optional[str]  # set when the backend failed the run itself (papermill never ran)

    def wait(self, timeout: float) -> Optional[int]:
        """The papermill exit status, or None while it runs; `WorkerLost` when its machine went."""

    def running_for(self) -> Optional[float]:
        """Seconds since the lane started (None while it waits for a worker)."""

    def kill(self) -> None: ...

    def where(self) -> dict:
        """The passport's `executor` record: `{"kind": ..., ...}`."""

    def close(self) -> None:
        """After the run (the kernel pool refills, the cluster forgets the run)."""


class Backend(Protocol):
    kind: str

    def check(self) -> None:
        """Raise `ExecutorUnavailable` (one line) when lanes cannot run now."""

    def health(self) -> dict:
        """`{"ok", "kind", "address", "workers", "error"}` for `GET /direng/api/health`."""

    def slots(self) -> int:
        """How many runs this backend can run at once (the executor's worker threads)."""

    def start(self, store_dir: Path) -> None:
        """A serving executor starts (the kernel pool, a connection)."""

    def launch(self, job: LaneJob) -> LaneProcess: ...

    def close(self) -> None: ...


# -- the papermill process (local cold runs and dask workers) -------------------------------------


def host_env() -> dict[str, str]:
    """This host's environment as a lane process inherits it (see `_NOT_INHERITED`)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED) and k not in _SET_PER_LANE}


def papermill_argv(notebook: Path, output: Path, run_dir: Path, parameters: dict) -> list[str]:
    """`python -m papermill` for a lane run, through DirEng's engine, in the run folder."""
    return [sys.executable, "-m", "papermill", str(notebook), str(output), "-k", KERNEL, "--cwd", str(run_dir),
            "-y", json.dumps(parameters), "--engine", ENGINE_NAME, "--no-progress-bar", "--log-level", "WARNING"]


def start_papermill(notebook: Path, output: Path, run_dir: Path, parameters: dict, env: dict[str, str],
                    limits: dict, log_path: Path,
                    preexec: Callable[[], None] | None = None) -> subprocess.Popen:
    """Start a lane's papermill process: its own session (so its whole tree can be killed), the
    lane's rlimits applied in the child (`sandbox.apply_process_limits`), output to `log_path`.
    `preexec` runs in the child after the limits (a dask worker ties the child's life to its own)."""
    from .sandbox import apply_process_limits

    def child() -> None:
        apply_process_limits(limits)
        if preexec is not None:
            preexec()

    with open(log_path, "w") as err:
        return subprocess.Popen(papermill_argv(notebook, output, run_dir, parameters), stdout=err,
                                stderr=subprocess.STDOUT, cwd=run_dir, start_new_session=True, env=env,
                                preexec_fn=child)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a lane's whole process group (papermill, its kernel, their commands) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# -- the local backend -------------------------------------------------------------------------------


class LocalProcess:
    """A papermill process on this host (cold, or a kernel-pool runner handed the job)."""

    def __init__(self, proc: subprocess.Popen, warm: bool, done: Callable[[], None]):
        self.proc, self.pid, self.warm, self.failure = proc, proc.pid, warm, None
        self._t0 = time.perf_counter()
        self._done = done

    def wait(self, timeout: float) -> Optional[int]:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def running_for(self) -> Optional[float]:
        return time.perf_counter() - self._t0

    def kill(self) -> None:
        kill_group(self.proc)

    def where(self) -> dict:
        return {"kind": "local", "host": socket.gethostname(), "kernel": "warm" if self.warm else "cold"}

    def close(self) -> None:
        self._done()


class LocalBackend:
    """Lanes in processes of this host: a kernel-pool runner when one waits for the lane (a
    serving executor), else a cold `python -m papermill`."""

    kind = "local"

    def __init__(self, kernel_pool: int | None = None):
        self.pool_size = pool_size() if kernel_pool is None else kernel_pool
        self.pool: KernelPool | None = None

    def check(self) -> None:
        return None

    def health(self) -> dict:
        return {"ok": True, "kind": self.kind, "address": None, "workers": None, "error": None}

    def slots(self) -> int:
        return 0  # no opinion: the executor's own concurrency

    def start(self, store_dir: Path) -> None:
        if self.pool_size > 0 and self.pool is None:
            from .sandbox import apply_process_limits

            self.pool = KernelPool(store_dir, self.pool_size, lambda limits: (lambda: apply_process_limits(limits)))

    def launch(self, job: LaneJob) -> LocalProcess:
        pool, key = self.pool, job.pool_key
        proc = pool.take(key) if pool is not None and key is not None else None
        warm = proc is not None
        if warm:  # papermill and the kernel are up already
            hand_over(proc, {"input": str(job.notebook), "output": str(job.output), "parameters": job.parameters,
                             "cwd": str(job.run_dir), "env": job.env, "log": str(job.log)})
        else:  # cold: the same engine, in a papermill process of its own
            proc = start_papermill(job.notebook, job.output, job.run_dir, job.parameters, job.env, job.limits,
                                   job.log)

        def done() -> None:
            if pool is not None and key is not None:
                pool.refill(key)  # the next run of this lane starts warm; this runner is done

        return LocalProcess(proc, warm, done)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


__all__ = ["Backend", "EXECUTOR_ENV", "ExecutorSpec", "ExecutorUnavailable", "KERNEL", "LaneJob", "LaneProcess",
           "LocalBackend", "WorkerLost", "host_env", "kill_group", "papermill_argv", "start_papermill"]
