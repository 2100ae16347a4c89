"""Kernel pool: lane runners started ahead of their runs, so a run skips papermill's and the
kernel's start-up.

A cold lane run starts `python -m papermill`, which imports papermill and starts a kernel: about
3 s before the first cell, most of a short run. The pool keeps, per lane, runners
(`pas.runner`) that have done that already, under the lane's resource limits and with the lane's
environment less what is particular to a run (`RUN_KEYS`). A run takes one and hands it the job;
the runner moves its kernel into the run (cwd and exact environment) and executes the notebook
through the same papermill engine a cold run uses (`pas.engine`).

Isolation: a runner, and its kernel, serve exactly one run and then exit; the pool starts a fresh
one for the next run (`refill`). A runner is only handed a run whose lane, kernel, limits and
lane environment are the ones it was started with (`PoolKey`); one started for other settings
(the policy or allowlist changed) is stopped instead. Runners are started for a lane only once a
run of it ended here, so an idle lane costs nothing.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

ENGINE_NAME = "direng"  # DirEng's papermill engine (`pas.engine`, entry point `papermill.engine`)
POOL_ENV = "DIRENG_KERNEL_POOL"  # runners kept warm per lane (0: no pool)
#: Environment a lane run gets that is its own, set when the run is handed over (see lane_env).
RUN_KEYS = frozenset({"DIRENG_RUN_DIR", "DIRENG_RUN_ID", "DIRENG_TASK_ID", "DIRENG_SERVER_URL", "DIRENG_TOKEN",
                      "DIRENG_BUDGET_FACTOR"})


def pool_size(default: int = 1) -> int:
    """Runners to keep per lane: `$DIRENG_KERNEL_POOL`, else `default`; a bad value is 0 (off)."""
    raw = os.environ.get(POOL_ENV)
    if raw is None or not raw.strip():
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        log.warning("%s=%r is not a number: no kernel pool", POOL_ENV, raw)
        return 0


@dataclass(frozen=True)
class PoolKey:
    """What a runner was started for; it only serves a run with the same."""

    lane: str
    kernel: str
    env: str  # the lane environment less RUN_KEYS, as sorted JSON
    limits: str  # the lane's resource limits, as sorted JSON

    @classmethod
    def of(cls, lane: str, kernel: str, env: dict[str, str], limits: dict) -> "PoolKey":
        return cls(lane, kernel, json.dumps(base_env(env), sort_keys=True), json.dumps(limits, sort_keys=True))


def base_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in RUN_KEYS}


class KernelPool:
    """Runners per `PoolKey`; `take` one for a run, `refill` after it, `close` at the end."""

    def __init__(self, store_dir: Path, size: int, preexec: Callable[[dict], Callable[[], None]]):
        self.size = size
        self.dir = Path(store_dir) / "pool"
        self._preexec = preexec  # limits → the preexec_fn applying them (the sandbox's rlimits)
        self._runners: dict[PoolKey, list[subprocess.Popen]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def take(self, key: PoolKey) -> subprocess.Popen | None:
        """A live runner started for `key` (it may still be starting its kernel: the job waits in
        its stdin), else None. Runners of the same lane started for other settings are stopped."""
        found, stale = None, []
        with self._lock:
            for other in [k for k in self._runners if k.lane == key.lane and k != key]:
                stale += self._runners.pop(other)
            ready = self._runners.get(key, [])
            while ready and found is None:
                proc = ready.pop(0)
                found = proc if proc.poll() is None else None
        for proc in stale:
            _stop(proc)
        return found

    def refill(self, key: PoolKey) -> None:
        """Start runners for `key` until `size` wait for it."""
        with self._lock:
            if self._closed:
                return
            ready = [p for p in self._runners.get(key, []) if p.poll() is None]
            while len(ready) < self.size:
                ready.append(self._spawn(key))
            self._runners[key] = ready

    def _spawn(self, key: PoolKey) -> subprocess.Popen:
        self.dir.mkdir(parents=True, exist_ok=True)
        limits = json.loads(key.limits)
        # Until it has a job a runner writes to the pool's log: the kernel's own start-up messages.
        with open(self.dir / f"{key.lane}.log", "a") as out:
            proc = subprocess.Popen([sys.executable, "-m", "direng_kernel.pas.runner", key.kernel],
                                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                                    env=json.loads(key.env), start_new_session=True, text=True,
                                    preexec_fn=self._preexec(limits))
        log.debug("kernel pool: runner %d started for lane %s", proc.pid, key.lane)
        return proc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            runners = [p for ps in self._runners.values() for p in ps]
            self._runners.clear()
        for proc in runners:
            _stop(proc)


def hand_over(proc: subprocess.Popen, job: dict) -> None:
    """Give a runner its job (one JSON line); it starts as soon as its kernel is up."""
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.close()


def _stop(proc: subprocess.Popen) -> None:
    """End of input shuts the runner's kernel down cleanly; a runner that does not go is killed."""
    try:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
