"""PAS's executor: claim queued runs and execute their lane notebooks with papermill.

Each run gets its own folder under `<store>/runs/<run_id>/`. The lane notebook is executed by
papermill in a separate process (papermill does not run in threads) under the lane's resource
limits (rlimits on the process tree, a wall timeout, the queue honouring `max_parallel`), with
commands inside the notebook going through the lane's allowlist and sandbox (`pas.lane`).
While it runs, the worker renews its lease, streams the lane's log/KPI lines as task events and
stops the process group when the task is cancelled or times out. Afterwards it stores outputs
in the content-addressed store, evaluates the lane's quality gates, and writes the passport.

Everything a sandboxed program could have written is untrusted: those programs may write only
`<run>/work`, the lane's records lie outside it, and the executor reads records and artifacts
through `direng_kernel.confined` — inside the run folder, never through a link — and scrubs
every artifact before it is stored. A record naming anything else fails the run.

The executor knows lanes only through the lane registry (`pas.lanes`) and the task lifecycle
only through the run queue it is handed; it never imports PEX. The orchestrator hands it the
queue, the workbench, who serves the store and how to mint a lane's token (see `Executor`).

Where the papermill process runs is its backend's business (`pas.backends`, chosen by
`DIRENG_EXECUTOR` in `pas.executors`): this host (the default) or a worker of a Dask cluster
(`pas.dask_backend`).
Claims, streaming, cancellation, the wall timeout, gates and passports are the same either way.
A run whose machine was lost mid-run (`WorkerLost`) ends its lease at once, so reconciliation
marks it interrupted and re-queues it when its lane is idempotent, as for a lost local worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from .. import confined, contracts
from ..errors import DirEngError
from ..models import SETTLED_STATES, ArtifactRef, Escalation, Passport, Task, TaskState
from ..security.scrub import scrub, scrub_obj
from .allowlist import lane_limits
from .backends import KERNEL, Backend, ExecutorUnavailable, LaneJob, WorkerLost, host_env
from .executors import select_backend
from .gates import read_gates
from .lane import ESCALATIONS, WORK_DIR
from .lanes import Lane, LaneRegistry, check_parameters_cell
from .lanes import registry as default_lanes
from .pool import PoolKey

log = logging.getLogger(__name__)
SERVE_RETRY_S = 5.0  # a worker whose task store failed waits this long before it asks again
LEASE_S = 30.0
HEARTBEAT_S = 1.0


def _record_kernelspec(run_dir: Path, name: str, kernel: str) -> None:
    """Write into the executed notebook the kernelspec it ran on. papermill's `-k` picks the kernel
    but keeps the lane notebook's `kernelspec`, whose display name ("Python 3") is not the
    installed spec's ("Python 3 (ipykernel)"); JupyterLab writes the real one as the notebook's
    kernel starts, so an output notebook opened from the tasks panel showed as unsaved. Read and
    written confined (the run folder is the lane's), and best effort: never a reason to fail a run."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
        nb = nbformat.reads(confined.read_text(run_dir, name, follow_links=False), as_version=4)
        want = {"display_name": spec.display_name, "language": spec.language, "name": kernel}
        if nb.metadata.get("kernelspec") != want:
            nb.metadata["kernelspec"] = want
            confined.write_bytes(run_dir, name, nbformat.writes(nb).encode())
    except Exception as exc:  # noqa: BLE001 — no such kernelspec, a notebook the lane broke: leave it
        log.debug("kernelspec of %s left as it is: %s", name, exc)


def _contracts() -> dict[str, str]:
    """The agent contracts a model consulted by a lane works under (name → version); a missing
    or unversioned contract is left out (the lane then consults no model, `pas.complete`)."""
    try:
        return {contracts.PEX: contracts.load(contracts.PEX).version}
    except contracts.ContractError:
        return {}


def _records(run_dir: Path, name: str) -> list[dict]:
    """The JSON lines of a run-folder record (what does not parse is not evidence)."""
    try:
        text = confined.read_text(run_dir, name, follow_links=False)  # the lane wrote the run folder
    except (confined.ConfinementError, OSError):
        return []
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def escalation_of(run_dir: Path, run_id: str, state: TaskState, failures: list[str], kpis: dict,
                  gates, attempt: int) -> Optional[Escalation]:
    """Whether the run's end is for the user to decide rather than a failure, and the evidence.

    In this order: a command the allowlist denied (when the run failed: the lane did not get
    past it), a model call refused for its budget (`pas.escalate`, whatever the lane made of it
    without the model), a failed quality gate while the gates file allows retries and this was
    one of the first `retries` runs. A cancelled run is never escalated."""
    if state == TaskState.cancelled:
        return None
    now = datetime.now(timezone.utc)
    denied = [r for r in _records(run_dir, "commands.jsonl") if r.get("denied")]
    if state == TaskState.failed and denied:
        last = denied[-1]
        return Escalation(kind="denied", message=f"a command was denied: {last['denied']}", run_id=run_id, at=now,
                          evidence={"argv": last.get("argv"), "rule": last["denied"], "denied_commands": len(denied)},
                          options=["retry", "change_lane", "cancel"])
    budget = [r for r in _records(run_dir, ESCALATIONS) if r.get("kind") == "budget"]
    if budget:
        last = budget[-1]
        return Escalation(kind="budget", message=str(last.get("message") or "over budget"), run_id=run_id, at=now,
                          evidence=last.get("evidence") if isinstance(last.get("evidence"), dict) else {},
                          options=["raise_budget", "retry", "change_lane", "cancel"])
    if failures and attempt <= gates.retries:
        return Escalation(kind="gate_failed", message="quality gate failed: " + "; ".join(failures), run_id=run_id,
                          at=now, evidence={"failures": failures, "kpis": kpis, "gates": [str(g) for g in gates.gates],
                                            "attempt": attempt, "retries": gates.retries},
                          options=["retry", "change_lane", "cancel"])
    return None


class RunQueue(Protocol):
    """What the executor needs of the task store it is handed (PEX's `TaskStore` is one)."""

    def get_task(self, task_id: str) -> Task: ...
    def claim(self, worker: str, max_parallel: dict[str, int], lease_s: float = ...,
              task_id: Optional[str] = ...) -> Optional[dict]: ...
    def heartbeat(self, run_id: str, lease_s: float = ..., pid: Optional[int] = ...) -> bool: ...
    def finish(self, run_id: str, state: TaskState, *, error: Optional[str] = ...,
               kpi_values: Optional[dict] = ..., **fields: Any) -> None: ...
    def add_event(self, task_id: str, kind: str, message: str = ..., data: Optional[dict] = ...) -> int: ...
    def reconcile(self, idempotent_lanes: set[str], now: Optional[float] = ...) -> list[str]: ...


class Index(Protocol):
    """The code index the executor refreshes before a run (a `Workbench`)."""

    def index(self) -> Any: ...


class RunFolderError(DirEngError):
    """A run folder whose records or artifacts are not what the lane wrote (a link, a path outside)."""


def check_lane(lane: Lane, notebook: Optional[Path] = None) -> None:
    """The lane can run: its notebook (or the `notebook` standing in for it, e.g. a replay's
    recorded one) has a parameters cell, and its allowlist, limits and gates load — or the
    DirEngError naming the file that is wrong."""
    check_parameters_cell(notebook or lane.notebook)
    lane_limits(lane)
    read_gates(lane.gates, lane.id)


def _read_jsonl(run_dir: Path, name: str) -> list[dict]:
    """A record file of the run, read without following links (RunFolderError if one is planted)."""
    try:
        text = confined.read_text(run_dir, name, follow_links=False)
    except FileNotFoundError:
        return []
    except (confined.ConfinementError, OSError) as exc:
        raise RunFolderError(f"run record {name} refused: {exc}") from None
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _error_line(stderr: str) -> str:
    """The exception papermill reports, as one line (`CommandDenied: command denied by rule …`)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ("Error" in ln or "Exception" in ln or "Denied" in ln) and ":" in ln and not ln.startswith(("File ", "^")):
            return ln[:500]
    return (lines[-1] if lines else "lane failed")[:500]


TEXT_SUFFIXES = {".ipynb", ".json", ".jsonl", ".md", ".txt", ".log", ".html", ".csv", ".patch", ".py", ".yaml", ".yml"}


def scrub_run_dir(run_dir: Path) -> None:
    """Redact every text file the lane left in its run folder (output notebook, logs, reports) in
    place. `work/` is skipped (artifacts from there are scrubbed as they are stored), and so is
    anything that is not a plain file: a link is never followed, let alone written through."""
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if rel.parts[0] == WORK_DIR or path.suffix not in TEXT_SUFFIXES or not path.is_file() or path.is_symlink():
            continue
        try:
            data = confined.read_bytes(run_dir, rel, follow_links=False, limit=50_000_001)
            text = data.decode("utf-8")
        except (confined.ConfinementError, UnicodeDecodeError, OSError):
            continue
        if len(data) > 50_000_000:
            continue
        clean = scrub(text, path.name)
        if clean != text:
            confined.write_bytes(run_dir, rel, clean.encode("utf-8"))


def scrub_artifact(data: bytes, name: str) -> bytes:
    """An artifact's bytes with secrets and PII redacted when it is text (binary is kept as is)."""
    if b"\x00" in data[:8192]:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    clean = scrub(text, name)
    return data if clean == text else clean.encode("utf-8")


class Executor:
    """Runs the lanes of one store's queue. It is handed everything outside PAS it needs:

    - `tasks`: the run queue (PEX's task store; see `RunQueue`);
    - `workbench`: the code index refreshed before each run (the engine's, shared with its
      lanes; None: no refresh);
    - `server_url`: a callable giving the URL of the server that owns the store, if one does,
      and `lane_token`: a callable minting a lane's token for `ttl_s` seconds — with both, a
      lane gets `DIRENG_SERVER_URL` and a narrow `DIRENG_TOKEN` to read the API;
    - `lanes`: the lane registry (default: `pas.lanes.registry`);
    - `backend`: where lane processes run (default: the one `DIRENG_EXECUTOR` names, see
      `pas.executors`; `kernel_pool` sizes the local backend's pool).
    The orchestrator (PEX) builds it with all of these."""

    def __init__(self, root: str | Path, store_dir: str | Path, tasks: RunQueue, *, worker_id: str | None = None,
                 policy_path: str | Path | None = None, concurrency: int = 2,
                 notebooks: dict[str, Path] | None = None, extra_env: dict[str, str] | None = None,
                 workbench: Index | None = None, server_url: Callable[[], Optional[str]] | None = None,
                 lane_token: Callable[[int], str] | None = None, lanes: LaneRegistry | None = None,
                 kernel_pool: int | None = None, backend: Backend | None = None):
        from .artifacts import ArtifactStore
        from .passport import PassportStore

        self.root = Path(root).resolve()
        self.store_dir = Path(store_dir).resolve()
        self.tasks = tasks
        self.workbench = workbench
        self.server_url = server_url
        self.lane_token = lane_token
        self.lanes = lanes if lanes is not None else default_lanes
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.policy_path = str(policy_path) if policy_path else os.environ.get("DIRENG_POLICY")
        self.concurrency = concurrency
        self.notebooks = notebooks or {}  # lane → notebook, overriding the lane folders (replay)
        self.extra_env = extra_env or {}
        self.artifacts = ArtifactStore(self.store_dir)
        self.passports = PassportStore(self.store_dir)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The local backend keeps runners warm per lane once the workers serve (`start`); a
        # one-shot drain runs cold.
        self.backend = backend if backend is not None else select_backend(kernel_pool=kernel_pool)
        # Who shares a lane's slots on a cluster: this store's runs, whichever server submits them.
        self.namespace = hashlib.sha256(str(self.store_dir).encode()).hexdigest()[:12]
        self._index_lock = threading.Lock()

    @property
    def kernel_pool(self) -> int:
        """Runners the local backend keeps warm per lane (0 for other backends, or no pool)."""
        return int(getattr(self.backend, "pool_size", 0))

    @kernel_pool.setter
    def kernel_pool(self, size: int) -> None:
        if hasattr(self.backend, "pool_size"):  # takes effect at the next `start`
            self.backend.pool_size = size

    # -- configuration ----------------------------------------------------------
    def limits(self, lane: str) -> dict:
        return lane_limits(self.lanes.get(lane))

    def idempotent_lanes(self) -> set[str]:
        return self.lanes.idempotent()

    def max_parallel(self) -> dict[str, int]:
        out = {}
        for lane in self.lanes.ids():
            try:
                out[lane] = int(self.limits(lane).get("max_parallel", 1))
            except DirEngError:
                out[lane] = 1
        return out

    # -- worker loop ------------------------------------------------------------
    def run_once(self) -> bool:
        """Claim and execute one queued run; False when nothing was claimable. Nothing is claimed
        while the backend cannot run lanes (`ExecutorUnavailable`, raised)."""
        self.backend.check()
        run = self.tasks.claim(self.worker_id, self.max_parallel(), LEASE_S)
        if run is None:
            return False
        self.execute_safely(run)
        return True

    def execute_safely(self, run: dict) -> None:
        """`execute`, with any failure recorded on the run instead of raised: a broken run must not
        kill the worker. A DirEngError (a broken lane file, …) is one line, anything else a traceback."""
        try:
            self.execute(run)
        except DirEngError as exc:
            log.error("run %s failed: %s", run["id"], exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self.tasks.finish(run["id"], TaskState.failed, error=str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("run %s crashed the executor", run["id"])
            self.tasks.finish(run["id"], TaskState.failed, error=f"executor error: {type(exc).__name__}: {exc}")

    def drain(self, until_task: str | None = None, timeout: float | None = None) -> None:
        """Run queued work in this process until the queue is empty (or `until_task` settles:
        ends, or escalates to the user)."""
        deadline = time.time() + timeout if timeout else None
        self.tasks.reconcile(self.idempotent_lanes())
        while not (deadline and time.time() > deadline):
            if until_task and self.tasks.get_task(until_task).state.value in SETTLED_STATES:
                return
            if not self.run_once():
                if until_task is None:
                    return
                time.sleep(0.2)

    def start(self) -> "Executor":
        """Background workers (the server's): `concurrency` threads (or as many as the backend can
        run at once, when more), each running one lane at a time. A backend that cannot run lanes
        is `ExecutorUnavailable` here, before any thread starts. A stopped executor can be started again."""
        self.backend.check()
        self._stop.clear()
        self._threads = [t for t in self._threads if t.is_alive()]
        self.tasks.reconcile(self.idempotent_lanes())
        self.backend.start(self.store_dir)
        for i in range(max(self.concurrency, self.backend.slots())):
            t = threading.Thread(target=self._serve, name=f"direng-pas-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _serve(self) -> None:
        last_reconcile = 0.0
        while not self._stop.is_set():
            try:
                if time.time() - last_reconcile > LEASE_S:
                    self.tasks.reconcile(self.idempotent_lanes())
                    last_reconcile = time.time()
                if not self.run_once():
                    self._stop.wait(0.5)
            except ExecutorUnavailable as exc:  # the cluster went away: nothing is claimed meanwhile
                log.warning("PAS worker: %s; retrying in %s s", exc, SERVE_RETRY_S)
                self._stop.wait(SERVE_RETRY_S)
            except Exception as exc:  # noqa: BLE001 — the task store went away (a database restart):
                # keep the worker; its claims' leases run out and reconciliation takes them back
                log.warning("PAS worker: the task store failed (%s: %s); retrying in %s s",
                            type(exc).__name__, exc, SERVE_RETRY_S)
                self._stop.wait(SERVE_RETRY_S)

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        self.backend.close()

    # -- one run ----------------------------------------------------------------
    def execute(self, run: dict) -> None:
        from . import gitstate
        from .passport import environment, notebook_sha256, render_replay_notebook
        from .sandbox import probe

        run_id, task_id, lane = run["id"], run["task_id"], run["lane"]
        task = self.tasks.get_task(task_id)
        run_dir = self.store_dir / "runs" / run_id
        (run_dir / WORK_DIR).mkdir(parents=True, exist_ok=True)
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        spec = self.lanes.get(lane)
        nb = self.notebooks.get(lane) or spec.notebook
        check_parameters_cell(nb)
        files = self._lane_files(lane, nb)  # what the passport names, hashed before anything runs
        limits = lane_limits(spec)
        sandbox_mode = probe().mode
        notebook_ref = self.artifacts.put_file(nb, name=f"lane/{nb.name}")
        passport = Passport(
            run_id=run_id, task_id=task_id, lane=lane, lane_notebook_sha256=notebook_sha256(nb),
            parameters=scrub_obj(task.parameters), git=gitstate.capture(self.root, self.artifacts),
            environment=environment(self.artifacts), policy_sha256=self._policy_hash(), inputs=[notebook_ref],
            sandbox=sandbox_mode, contracts=_contracts(), started_at=started, executor={"kind": self.backend.kind},
        )
        self.passports.save(passport)
        self.tasks.add_event(task_id, "log", f"lane {lane} starting (sandbox: {sandbox_mode})",
                             {"run_id": run_id, "sandbox": sandbox_mode})
        # Renew the lease before the refresh: a long cold index must not look like a lost worker.
        self.tasks.heartbeat(run_id, LEASE_S)
        self._ensure_index(task_id)
        # the budgets the user raised for this task (an escalation's choice) reach the lane's model calls
        env = {**self.extra_env, **({"DIRENG_BUDGET_FACTOR": f"{task.budget_factor:g}"}
                                    if task.budget_factor != 1.0 else {})}
        result = self.run_notebook(run_id, task_id, lane, nb, run_dir, task.parameters, limits, env, files=files)
        passport.timings = {"total_s": round(time.perf_counter() - t0, 3), "notebook_s": result["seconds"]}
        passport.executor = result["executor"]
        state, error = result["state"], scrub(result.get("error") or "") or None
        if state == TaskState.interrupted:
            scrub_run_dir(run_dir)
            self.passports.save(passport.model_copy(update={"status": state.value, "error": error,
                                                            "finished_at": datetime.now(timezone.utc)}))
            self._lost(run_id, task_id, error or "the lane's worker was lost")
            return
        try:
            kpi_values = self._kpis(run_dir)
            scrub_run_dir(run_dir)  # before anything from the run is stored: no secret or PII value persists
            outputs = self._collect_outputs(run_dir, result.get("output_nb"))
            responses = [self._put(run_dir, Path("provider_responses") / p.name, f"provider_responses/{p.name}")
                         for p in sorted((run_dir / "provider_responses").glob("*.json"))]
        except RunFolderError as exc:
            # Something other than the lane wrote its records or artifacts: nothing of the run is trusted.
            kpi_values, outputs, responses = {}, [], []
            state, error = TaskState.failed, scrub(str(exc))
        gates, failures = read_gates(spec.gates, lane), []
        if state == TaskState.succeeded:
            verdict = gates.evaluate(kpi_values)
            if not verdict.passed:
                failures = verdict.failures
                state, error = TaskState.failed, "quality gate failed: " + "; ".join(failures)
        escalation = escalation_of(run_dir, run_id, state, failures, kpi_values, gates,
                                   attempt=int(run.get("attempt") or 1))
        passport = passport.model_copy(update={
            "kpis": kpi_values, "outputs": outputs, "provider_responses": responses, "status": state.value,
            "error": error, "escalation": escalation, "finished_at": datetime.now(timezone.utc)})
        self.passports.save(passport)
        render_replay_notebook(passport, run_dir, root=self.root)  # `papermill replay.ipynb` replays headless
        out_nb = next((o.sha256 for o in outputs if o.name == "output.ipynb"), None)
        if error:
            self.tasks.add_event(task_id, "error", error, {"run_id": run_id})
        self.tasks.finish(run_id, state, error=error, kpi_values=kpi_values, sandbox=sandbox_mode,
                          output_notebook=out_nb, escalation=escalation)

    def _lost(self, run_id: str, task_id: str, error: str) -> None:
        """The machine running the lane went away: end the run's lease now and reconcile, so the
        one rule for lost runs applies (interrupted; re-queued when the lane is idempotent)."""
        self.tasks.add_event(task_id, "error", error, {"run_id": run_id})
        self.tasks.heartbeat(run_id, -1.0)
        self.tasks.reconcile(self.idempotent_lanes())

    def _policy_hash(self) -> str | None:
        from ..broker.policy import policy_for

        try:
            return policy_for(self.policy_path, self.lanes.extra_routes()).hash
        except DirEngError:
            return None

    def _ensure_index(self, task_id: str) -> None:
        """Lanes read the code index; refresh it first so a run sees the code it is about.

        One refresh at a time: worker threads share the workbench they were handed, and a lock."""
        if self.workbench is None:
            self.tasks.add_event(task_id, "progress", "index not refreshed: this executor has no workbench")
            return
        with self._index_lock:
            report = self.workbench.index()
        self.tasks.add_event(task_id, "progress", f"index refreshed: {len(report.changed_paths)} changed file(s)")

    def lane_env(self, run_id: str, task_id: str, lane: str, run_dir: Path, extra: dict | None = None) -> dict:
        """The whole environment of a lane process on this host: this host's (`backends.host_env`)
        and the run's own variables (`lane_vars`)."""
        return {**host_env(), **self.lane_vars(run_id, task_id, lane, run_dir, extra)}

    def lane_vars(self, run_id: str, task_id: str, lane: str, run_dir: Path, extra: dict | None = None) -> dict:
        """The variables that are the run's own, whichever host runs it (a dask worker adds them to
        its own environment)."""
        env = {"DIRENG_ROOT": str(self.root), "DIRENG_STORE": str(self.store_dir), "DIRENG_RUN_DIR": str(run_dir),
               "DIRENG_LANE": lane, "DIRENG_RUN_ID": run_id, "DIRENG_TASK_ID": task_id, "PYTHONUNBUFFERED": "1"}
        if self.policy_path:
            env["DIRENG_POLICY"] = self.policy_path
        # The lane process needs its own record's allowlist and policy route, whatever registered it;
        # only a task whose budget was raised gets DIRENG_BUDGET_FACTOR (in `extra`).
        try:
            spec = self.lanes.get(lane)
        except DirEngError:
            spec = None
        if spec is not None:
            env["DIRENG_LANE_ROUTE"] = spec.route
            if spec.allowlist is not None:
                env["DIRENG_LANE_ALLOWLIST"] = str(spec.allowlist)
        # A lane may read the API (index, tasks) with a token of its own: short-lived and too
        # narrow to approve tasks or change the policy. Who serves the store and the token are
        # the orchestrator's to say.
        url = self.server_url() if self.server_url is not None else None
        if url and self.lane_token is not None:
            limit = float(self.limits(lane).get("timeout_s", 600))
            env["DIRENG_SERVER_URL"] = url
            env["DIRENG_TOKEN"] = self.lane_token(int(limit) + 300)
        env.update(extra or {})
        return env

    def _lane_files(self, lane: str, nb: Path) -> dict[str, tuple[str, str]]:
        """The lane files a run uses, with their hashes: a worker elsewhere checks it has the same."""
        from .passport import notebook_sha256

        files = {"notebook": (str(nb), notebook_sha256(nb))}
        allowlist = self.lanes.get(lane).allowlist
        if allowlist is not None and allowlist.is_file():
            files["allowlist"] = (str(allowlist), notebook_sha256(allowlist))
        return files

    def run_notebook(self, run_id: str, task_id: str, lane: str, nb: Path, run_dir: Path, parameters: dict,
                     limits: dict, extra_env: dict | None = None,
                     files: dict[str, tuple[str, str]] | None = None) -> dict:
        """Execute a lane notebook in a papermill process, wherever the backend starts it; returns
        state, error, seconds, output path and the passport's `executor` record. A lost worker is
        the state `interrupted`."""
        out_nb = run_dir / "output.ipynb"
        params = {**parameters, "root": str(self.root), "run_dir": str(run_dir)}
        lane_vars = self.lane_vars(run_id, task_id, lane, run_dir, extra_env)
        env = {**host_env(), **lane_vars}
        key = PoolKey.of(lane, KERNEL, {k: v for k, v in env.items() if k not in (extra_env or {})}, limits)
        timeout = float(limits.get("timeout_s", 600))
        stderr_path = run_dir / "papermill.log"
        job = LaneJob(run_id=run_id, task_id=task_id, lane=lane, notebook=nb, output=out_nb, run_dir=run_dir,
                      log=stderr_path, root=self.root, parameters=params, env=env, lane_vars=lane_vars,
                      limits=dict(limits), pool_key=key, files=files or self._lane_files(lane, nb),
                      namespace=self.namespace)
        t0 = time.perf_counter()
        proc = self.backend.launch(job)
        streamed = {"events.jsonl": 0, "kpis.jsonl": 0}
        state, error, rc = None, None, None
        try:
            while True:
                try:
                    rc = proc.wait(HEARTBEAT_S)
                except WorkerLost as exc:
                    state, error = TaskState.interrupted, str(exc)
                    break
                try:
                    self._stream(task_id, run_dir, streamed)
                except RunFolderError as exc:
                    proc.kill()
                    state, error = TaskState.failed, str(exc)
                    break
                if rc is not None or proc.failure:
                    break
                if not self.tasks.heartbeat(run_id, LEASE_S, pid=proc.pid):
                    proc.kill()
                    state, error = TaskState.cancelled, "cancelled by user"
                    break
                running = proc.running_for()
                if running is not None and running > timeout:  # a run waiting for a worker is not timed yet
                    proc.kill()
                    state, error = TaskState.failed, f"timed out after {timeout:g} s (lane limit)"
                    break
            seconds = round(time.perf_counter() - t0, 3)
            log.info("run %s of lane %s ran on %s", run_id, lane, proc.where())
            if state is None:
                try:
                    self._stream(task_id, run_dir, streamed)
                except RunFolderError as exc:
                    state, error = TaskState.failed, str(exc)
            if state is None and proc.failure:
                state, error = TaskState.failed, proc.failure
            elif state is None:
                if rc == 0:
                    state = TaskState.succeeded
                else:
                    text = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
                    if rc is not None and rc < 0 and -rc in (signal.SIGKILL, signal.SIGSEGV) or "MemoryError" in text \
                            or "Kernel died" in text or "DeadKernelError" in text:
                        error = f"out of memory or killed (limit {limits.get('memory_mb')} MB): {_error_line(text)}"
                    else:
                        error = _error_line(text)
                    state = TaskState.failed
            if out_nb.exists() and state != TaskState.interrupted:
                _record_kernelspec(run_dir, out_nb.name, KERNEL)
            return {"state": state, "error": error, "seconds": seconds, "executor": proc.where(),
                    "output_nb": out_nb if out_nb.exists() else None}
        finally:
            proc.close()

    def _stream(self, task_id: str, run_dir: Path, seen: dict[str, int]) -> None:
        """Forward new lines of the lane's log and KPI files as task events."""
        for name, kind in (("events.jsonl", "log"), ("kpis.jsonl", "kpi")):
            lines = _read_jsonl(run_dir, name)
            for rec in lines[seen[name]:]:
                msg = rec.get("message") if kind == "log" else f"{rec.get('name')} = {rec.get('value')}"
                self.tasks.add_event(task_id, kind, scrub(str(msg)), scrub_obj(rec))
            seen[name] = len(lines)

    @staticmethod
    def _kpis(run_dir: Path) -> dict[str, float]:
        out = {}
        for rec in _read_jsonl(run_dir, "kpis.jsonl"):
            try:
                out[str(rec["name"])] = float(rec["value"])
            except (KeyError, TypeError, ValueError):
                raise RunFolderError(f"kpis.jsonl holds a record the lane did not write: {str(rec)[:200]}") from None
        return out

    def _put(self, run_dir: Path, rel: str | Path, name: str) -> ArtifactRef:
        """Store one file of the run: inside the run folder, no link followed, scrubbed."""
        try:
            data = confined.read_bytes(run_dir, rel, follow_links=False)
        except (confined.ConfinementError, OSError) as exc:
            raise RunFolderError(f"artifact {name} refused: {exc}") from None
        return self.artifacts.put_bytes(scrub_artifact(data, name), name=name)

    def _collect_outputs(self, run_dir: Path, output_nb: Path | None) -> list[ArtifactRef]:
        refs = []
        for rec in _read_jsonl(run_dir, "outputs.jsonl"):
            rel = rec.get("path")
            if not isinstance(rel, str) or not rel:
                raise RunFolderError(f"outputs.jsonl holds a record the lane did not write: {str(rec)[:200]}")
            name = rec.get("name") if isinstance(rec.get("name"), str) and rec.get("name") else Path(rel).name
            refs.append(self._put(run_dir, rel, name))
        if output_nb is not None:
            refs.append(self._put(run_dir, "output.ipynb", "output.ipynb"))
        return refs
