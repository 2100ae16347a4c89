"""PEX, the orchestrator: tasks from brief to result.

    new ──estimate──► estimated ──approve──► approved ──start──► queued ──worker──► running ──► done

A brief is routed to a lane by its wording unless the user names one; PLMS estimates it from
the lane's calibrated history; the user approves; starting queues a run that a PAS worker
claims. `Orchestrator.start` is the one place that decides which worker that is (the server's,
a live worker already holding the run, or this process's); see its docstring. Every step is an
event in the task's log, which the magics, CLI and REST API follow live; what a start decided
is a `progress` event with `data.note`, which the CLI prints even when not following.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Literal

from ..errors import DirEngError
from ..models import LANE_IDS, TERMINAL_STATES, Estimate, Task, TaskState
from .store import TaskStore, pid_alive

Worker = Literal["none", "here", "background"]
POLL_S = 0.5        # how often a start waiting on another worker looks at the task
RECONCILE_S = 2.0   # ... and reconciles, so that a lost worker's run comes back to it

ROUTES: list[tuple[str, re.Pattern]] = [
    ("code-impl", re.compile(r"\b(patch|diff|apply|implement|fix|refactor|change the code)\b", re.I)),
    ("code-api-design", re.compile(r"\b(breaking|public api|api surface|api changes?|compatib)", re.I)),
    ("data-schema", re.compile(r"\b(schema|json|data files?|validate (the )?data|pydantic models?)\b", re.I)),
    ("graph-ops", re.compile(r"\b(cycles?|dead code|unused|unreferenced|central|dependency graph|call graph)\b", re.I)),
    ("vector-ops", re.compile(r"\b(re-?index|refresh|freshness|embeddings?)\b", re.I)),
    ("narrative", re.compile(r"\b(document|docs|documentation|reference|explain the api|write up)\b", re.I)),
]


class UnknownLane(DirEngError):
    pass


def check_lane(lane: str) -> None:
    """The lane's notebook, allowlist and gates all load, or the DirEngError saying which file is
    wrong: checked when a task is created and again when it starts, so a broken file is one clear
    line then, not a run that crashes the executor."""
    from ..pas.allowlist import load_lane_allowlist
    from ..pas.executor import check_parameters_cell, lane_notebook
    from ..pas.gates import load_gates

    check_parameters_cell(lane_notebook(lane))
    load_lane_allowlist(lane)
    load_gates(lane)


def route_lane(brief: str) -> str:
    """The lane whose keyword comes first in the brief (the verb usually leads: "document the
    public API" is narrative, "report breaking changes in the API" is API design); narrative
    when nothing matches."""
    found = [(m.start(), i, lane) for i, (lane, pattern) in enumerate(ROUTES) if (m := pattern.search(brief))]
    return min(found)[2] if found else "narrative"


class Orchestrator:
    def __init__(self, root: str | Path, store_dir: str | Path, tasks: TaskStore | None = None,
                 policy_path: str | Path | None = None):
        self.root = Path(root).resolve()
        self.store_dir = Path(store_dir).resolve()
        self.tasks = tasks or TaskStore.for_store(self.store_dir)
        self.policy_path = policy_path
        self._executor = None

    @property
    def executor(self):
        if self._executor is None:
            from ..pas.executor import Executor

            self._executor = Executor(self.root, self.store_dir, self.tasks, policy_path=self.policy_path)
        return self._executor

    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None, rehearsal: bool = False) -> tuple[Task, bool]:
        lane = lane or route_lane(f"{title} {brief}")
        if lane not in LANE_IDS:
            raise UnknownLane(f"unknown lane {lane!r}; lanes: {', '.join(LANE_IDS)}")
        if parameters is not None and not isinstance(parameters, dict):
            raise DirEngError("parameters must be a JSON object")
        check_lane(lane)
        return self.tasks.create_task(title=title, brief=brief, lane=lane, parameters=parameters or {},
                                      idempotency_key=idempotency_key, rehearsal=rehearsal)

    def estimate(self, task_id: str) -> Task:
        from ..plms.estimate import Planner

        task = self.tasks.get_task(task_id)
        estimate: Estimate = Planner.from_history(self.tasks.run_records()).estimate(task.lane)
        return self.tasks.transition(task_id, TaskState.estimated,
                                     f"estimated p50 {estimate.duration_p50_s:.1f}s, p90 {estimate.duration_p90_s:.1f}s"
                                     + (" (prior: too few runs)" if estimate.prior_only else ""), estimate=estimate)

    def approve(self, task_id: str) -> Task:
        return self.tasks.transition(task_id, TaskState.approved, "approved")

    def start(self, task_id: str, worker: Worker = "none", *, follow: bool = False,
              timeout: float | None = None) -> Task:
        """Queue an approved task, or attach to it when it is already queued or running.

        Lost runs are reconciled first (an expired lease, or a worker process gone from this host),
        and the lane's files are checked. Then who runs it:
          a live worker holds its run   → that worker;
          a server owns the store       → the server's workers, in queue order (a note says how
                                          many runs are ahead);
          otherwise                     → this process, as `worker` allows: "here" runs it now,
                                          "background" in a thread, "none" leaves it queued for
                                          the caller's own worker.
        "here" returns when the task ends — following whoever holds it, and taking it over if
        that worker is lost — except that while a server owns the store it returns once the task
        is queued or attached, unless `follow`. A finished task is returned as it is."""
        from ..pas.executor import IDEMPOTENT_LANES

        self.tasks.get_task(task_id)  # an unknown id is NotFoundError before anything is touched
        self.tasks.reconcile(IDEMPOTENT_LANES)
        task = self.tasks.get_task(task_id)
        if task.state in TERMINAL_STATES:
            return task
        check_lane(task.lane)
        if task.state == TaskState.running:
            self._note(task_id, f"already running on {self._holder(task)}" + (
                "; following it (this process takes over if that worker is lost)" if worker == "here" else ""))
        elif task.state == TaskState.queued:
            self._note(task_id, "already queued; attaching to it")
        else:
            self.tasks.enqueue(task_id)
        if worker == "here":
            return self._see_through(task_id, follow=follow, timeout=timeout)
        task = self.tasks.get_task(task_id)
        if self._holder(task) is not None:
            self._say_where(task, set())
        elif worker == "background":
            threading.Thread(target=self._see_through, args=(task_id,), name=f"direng-run-{task_id}",
                             daemon=True).start()
        return task

    def run_here(self, task_id: str, timeout: float | None = None) -> Task:
        """See a queued task to its end from this process (running it here unless another worker holds it)."""
        return self._see_through(task_id, follow=True, timeout=timeout)

    def _holder(self, task: Task) -> str | None:
        """Who runs the task if not a worker of this call: its run's worker, or the store's server."""
        if task.state == TaskState.running and task.run_id:
            return self.tasks.get_run(task.run_id)["worker"] or "another worker"
        if task.state == TaskState.queued and (owner := server_owner(self.store_dir)):
            return f"the server (pid {owner['pid']})"
        return None

    def _note(self, task_id: str, message: str) -> None:
        self.tasks.add_event(task_id, "progress", message, {"note": True})

    def _say_where(self, task: Task, said: set[str]) -> None:
        """A note, once, when a queued task waits: behind other runs, or for a slot of its lane."""
        if task.state != TaskState.queued or not task.run_id:
            return
        if (holder := self._holder(task)) is not None:
            ahead = self.tasks.queued_ahead(task.run_id)
            message = (f"{ahead} queued run{'s' if ahead != 1 else ''} ahead of it; {holder} takes them in order"
                       if ahead else f"queued for {holder}")
        else:
            cap = self.executor.max_parallel().get(task.lane, 1)
            running = self.tasks.running_by_lane().get(task.lane, 0)
            if running < cap:
                return
            message = f"waiting for a free {task.lane} slot: {running} running (max_parallel {cap})"
        if message not in said:
            said.add(message)
            self._note(task.id, message)

    def _see_through(self, task_id: str, follow: bool = False, timeout: float | None = None) -> Task:
        """Until the task ends: claim its run here whenever nobody else holds it, else wait for
        whoever does (unless `follow`, a server owning the store is left to it), reconciling so
        that a lost worker's run comes back here. Only this task's run is claimed: it never waits for, nor
        runs, unrelated backlog."""
        from ..pas.executor import IDEMPOTENT_LANES, LEASE_S

        deadline = time.monotonic() + timeout if timeout else None
        said: set[str] = set()
        reconciled = time.monotonic()
        while True:
            task = self.tasks.get_task(task_id)
            if task.state in TERMINAL_STATES or (deadline and time.monotonic() > deadline):
                return task
            holder = self._holder(task)
            if holder is None and task.state == TaskState.queued:
                run = self.tasks.claim(self.executor.worker_id, self.executor.max_parallel(), LEASE_S,
                                       task_id=task_id)
                if run is not None:
                    self.executor.execute_safely(run)
                    continue
            self._say_where(task, said)
            if holder is not None and not follow and server_owner(self.store_dir):
                return task  # the server sees it through, taking over from a lost worker too
            time.sleep(POLL_S)
            if time.monotonic() - reconciled > RECONCILE_S:
                self.tasks.reconcile(IDEMPOTENT_LANES)
                reconciled = time.monotonic()

    def cancel(self, task_id: str) -> Task:
        return self.tasks.request_cancel(task_id)

    def status(self, task_id: str) -> Task:
        return self.tasks.get_task(task_id)


SERVER_FILE = "pex-server.json"


def server_owner(store_dir: Path) -> dict | None:
    """The live server process whose workers run this store's queue, if any."""
    try:
        info = json.loads((Path(store_dir) / SERVER_FILE).read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid > 0 and pid_alive(pid) else None


def claim_server(store_dir: Path, url: str | None) -> None:
    (Path(store_dir) / SERVER_FILE).write_text(json.dumps({"pid": os.getpid(), "url": url}))


def release_server(store_dir: Path) -> None:
    (Path(store_dir) / SERVER_FILE).unlink(missing_ok=True)
