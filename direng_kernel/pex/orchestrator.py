"""PEX, the orchestrator: tasks from brief to result.

    new ──estimate──► estimated ──approve──► approved ──start──► queued ──worker──► running ──► done

A brief is routed to a lane by its wording unless the user names one; PLMS estimates it from
the lane's calibrated history; the user approves; starting queues a run that a PAS worker (the
server's, or this process's with `follow`) claims. Every step is an event in the task's log,
which the magics, CLI and REST API follow live.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DirEngError
from ..models import LANE_IDS, Estimate, Task, TaskState
from .store import TaskStore

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
        from ..pas.executor import check_parameters_cell, lane_notebook

        check_parameters_cell(lane_notebook(lane))
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

    def start(self, task_id: str) -> Task:
        self.tasks.enqueue(task_id)
        return self.tasks.get_task(task_id)

    def run_here(self, task_id: str, timeout: float | None = None) -> Task:
        """Execute queued work with a worker in this process until the task ends."""
        self.executor.drain(until_task=task_id, timeout=timeout)
        return self.tasks.get_task(task_id)

    def cancel(self, task_id: str) -> Task:
        return self.tasks.request_cancel(task_id)

    def status(self, task_id: str) -> Task:
        return self.tasks.get_task(task_id)


SERVER_FILE = "pex-server.json"


def server_owner(store_dir: Path) -> dict | None:
    """The live server process whose workers run this store's queue, if any."""
    import json
    import os

    path = Path(store_dir) / SERVER_FILE
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return info


def claim_server(store_dir: Path, url: str | None) -> None:
    import json
    import os

    (Path(store_dir) / SERVER_FILE).write_text(json.dumps({"pid": os.getpid(), "url": url}))


def release_server(store_dir: Path) -> None:
    (Path(store_dir) / SERVER_FILE).unlink(missing_ok=True)
