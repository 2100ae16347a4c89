"""PEX, the orchestrator: tasks from brief to result.

    new ──estimate──► estimated ──approve──► approved ──start──► queued ──worker──► running ──► done

A brief is routed to a lane by its wording (PLMS's lane classifier, `plms/routing.py`, every routing
recorded in its routing book) unless the user names one; PLMS estimates it from
the lane's calibrated history; the user approves; starting queues a run that a PAS worker
claims. `Orchestrator.start` is the one place that decides which worker that is (the server's,
a live worker already holding the run, or this process's); see its docstring. Every step is an
event in the task's log, which the magics, CLI and REST API follow live; what a start decided
is a `progress` event with `data.note`, which the CLI prints even when not following.

PEX owns the task lifecycle, PAS runs lanes: the orchestrator builds the executor and hands it
everything outside PAS it needs — the task store, the workbench whose index it refreshes (the
engine's, when the engine built the orchestrator), the URL of the server that owns the store (from
the ownership file, `pex-server.json`, kept here) and a way to mint a lane's token. Lanes are
looked up in PAS's lane registry (`pas.lanes`). A replay is a task too: `Orchestrator.replay`
runs it through the same lifecycle and executor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Optional

from ..errors import DirEngError
from ..models import SETTLED_STATES, TERMINAL_STATES, Escalation, Estimate, ReplayReport, Task, TaskState
from ..pas.lanes import LaneRegistry, UnknownLane
from ..pas.lanes import registry as default_lanes
from ..plms.keywords import ROUTES, route_lane  # the rules (they seed the lane classifier)
from ..processes import pid_alive
from .store import TaskStore

if TYPE_CHECKING:
    from ..pas.executor import Executor

__all__ = ["ROUTES", "Orchestrator", "UnknownLane", "check_lane", "claim_server", "release_server", "replay", "route_lane",
           "server_owner"]

log = logging.getLogger(__name__)

Worker = Literal["none", "here", "background"]
POLL_S = 0.5        # how often a start waiting on another worker looks at the task
RECONCILE_S = 2.0   # ... and reconciles, so that a lost worker's run comes back to it



def check_lane(lane: str, lanes: LaneRegistry = default_lanes, notebook: Optional[Path] = None) -> None:
    """The lane is registered and its notebook (or the `notebook` standing in for it), allowlist
    and gates all load, or the DirEngError saying which file is wrong: checked when a task is
    created and again when it starts, so a broken file is one clear line then, not a run that
    crashes the executor."""
    from ..pas.executor import check_lane as check_lane_files

    check_lane_files(lanes.get(lane), notebook)


def _mint_lane_token(ttl_s: int) -> str:
    from ..security.tokens import mint_lane_token

    return mint_lane_token(ttl_s=ttl_s)


class Orchestrator:
    """Tasks of one store, from brief to result.

    `workbench`: the code index the executor refreshes before each run — the engine passes its
    own, so the engine and its lanes share one (default: one for `root` and `store_dir`, made
    when first needed). `lanes`: the lane registry (default `pas.lanes.registry`).
    `server_url`: who serves the store's queue, as a callable giving a URL or None (default: the
    ownership file, see `server_owner`); `lane_token`: mints a lane's API token for `ttl_s`
    seconds (default: `security.tokens.mint_lane_token`). `notebooks` and `extra_env` go to the
    executor (a replay's recorded notebook and environment). `policy`: the host's live broker
    policy, for the lanes' escalation thresholds (default: the policy file's)."""

    def __init__(self, root: str | Path, store_dir: str | Path, tasks: TaskStore | None = None,
                 policy_path: str | Path | None = None, *, workbench=None, lanes: LaneRegistry | None = None,
                 server_url: Callable[[], Optional[str]] | None = None,
                 lane_token: Callable[[int], str] | None = None,
                 notebooks: dict[str, Path] | None = None, extra_env: dict[str, str] | None = None,
                 policy: Callable[[], object] | None = None):
        self.root = Path(root).resolve()
        self._policy = policy  # the host's live policy (a server's, changed by POST /policy), else the file's
        self.store_dir = Path(store_dir).resolve()
        self.tasks = tasks or TaskStore.for_store(self.store_dir)
        self.policy_path = policy_path
        self.lanes = lanes if lanes is not None else default_lanes
        self.server_url = server_url if server_url is not None else self._owner_url
        self.lane_token = lane_token if lane_token is not None else _mint_lane_token
        self._workbench = workbench
        self._notebooks = dict(notebooks or {})
        self._extra_env = dict(extra_env or {})
        self._executor = None
        self._routing = None
        self._lock = threading.Lock()

    @property
    def workbench(self):
        """The code index runs refresh first: the one handed in, else this store's."""
        with self._lock:
            if self._workbench is None:
                from ..workbench import Workbench

                self._workbench = Workbench(self.root, self.store_dir)
            return self._workbench

    @property
    def executor(self) -> "Executor":
        """PAS's executor for this store, handed the task store, workbench, server URL and lane tokens."""
        if self._executor is None:
            from ..pas.executor import Executor

            workbench = self.workbench
            with self._lock:
                if self._executor is None:
                    self._executor = Executor(
                        self.root, self.store_dir, self.tasks, policy_path=self.policy_path,
                        notebooks=self._notebooks, extra_env=self._extra_env, workbench=workbench,
                        server_url=self.server_url, lane_token=self.lane_token, lanes=self.lanes)
        return self._executor

    def _owner_url(self) -> Optional[str]:
        """The URL of the live server that owns this store, if one does (and said where it listens)."""
        owner = server_owner(self.store_dir)
        return owner.get("url") if owner else None

    def reconcile(self, now: float | None = None) -> list[str]:
        """Lost runs become interrupted: re-queued when the registry says their lane is idempotent,
        failed otherwise. The ids of the tasks moved."""
        return self.tasks.reconcile(self.lanes.idempotent(), now=now)

    def _check_lane(self, lane: str) -> None:
        check_lane(lane, self.lanes, self._notebooks.get(lane))

    @property
    def routing(self):
        """PLMS's routing book for this store (decisions and corrections)."""
        from ..plms.corrections import RoutingBook

        with self._lock:
            if self._routing is None:
                self._routing = RoutingBook.for_store(self.store_dir)
            return self._routing

    def route(self, text: str):
        """The policy's first lane override whose words are all in `text` (`plms/overrides.py`),
        else PLMS's lane classifier's decision (fitted on this store's corrections), or None when
        it cannot answer (then the keyword rules route, as before the classifier)."""
        from ..plms.overrides import matching, override_decision
        from ..plms.routing import UNCERTAIN_MARGIN, router_for

        if (override := matching(text, self._lane_overrides(), self.lanes.ids())) is not None:
            return override_decision(override, UNCERTAIN_MARGIN)
        try:
            return router_for(self.routing, self.lanes.ids()).decide(text)
        except Exception as exc:  # noqa: BLE001 — the classifier is a refinement: a failure of its own
            # (its model files, scikit-learn, the routing book) must never fail a task's creation
            log.warning("lane classifier unavailable (%s: %s); routing by the keyword rules",
                        type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            return None

    def _lane_overrides(self) -> list:
        """The lane overrides of the policy in force (none when the policy file does not load)."""
        from ..broker.policy import policy_for

        try:
            policy = self._policy() if self._policy is not None else policy_for(self.policy_path,
                                                                                 self.lanes.extra_routes())
        except DirEngError as exc:
            log.warning("no lane overrides: %s", exc)
            return []
        return list(getattr(policy, "lane_overrides", None) or [])

    def _record_routing(self, task: Task, source: str, routed: str) -> None:
        """One routing record for the task: a decision, or a correction the classifier learns from."""
        try:
            self.routing.record(source, f"{task.title} {task.brief}".strip(), routed, task.lane,
                                self.lanes.ids(), task_id=task.id)
        except Exception as exc:  # sqlite errors too: a routing record must never stop a task
            log.warning("could not record the routing of %s: %s", task.id, exc)

    def _recreated_from(self, title: str, brief: str, lane: str) -> Task | None:
        """A cancelled task with the same title and brief in another lane: this one re-creates it."""
        return next((t for t in self.tasks.list_tasks() if t.state == TaskState.cancelled and t.title == title
                     and t.brief == brief and t.lane != lane), None)

    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None, rehearsal: bool = False) -> tuple[Task, bool]:
        """Create a task in `lane`, or in the lane PLMS's classifier routes it to. Every creation
        is recorded in the routing book: the router's decision, or — when a lane is named — a
        correction (`task_new`; `asked` when the classifier was unsure of this brief; `recreated`
        when a cancelled task with this title and brief was in another lane)."""
        text = f"{title} {brief}".strip()
        decision = self.route(text) if not rehearsal else None
        routed = decision.lane if decision is not None else route_lane(text)
        chosen = lane or routed
        self.lanes.get(chosen)  # UnknownLane naming the lanes there are (and the closest one)
        if parameters is not None and not isinstance(parameters, dict):
            raise DirEngError("parameters must be a JSON object")
        self._check_lane(chosen)
        source, previous = "routed", None
        if lane is not None and not rehearsal:
            previous = self._recreated_from(title, brief, lane)
            source = "recreated" if previous else "asked" if decision is not None and decision.uncertain else "task_new"
        task, created = self.tasks.create_task(title=title, brief=brief, lane=chosen, parameters=parameters or {},
                                               idempotency_key=idempotency_key, rehearsal=rehearsal)
        if created and not rehearsal:
            self._record_routing(task, source, previous.lane if previous else routed)
            self._record_size(task.id, chosen, task.parameters)
        return task, created

    def _record_size(self, task_id: str, lane: str, parameters: dict,
                     recorded: dict[str, float] | None = None) -> dict[str, float]:
        """Measure and store the task's sizes for PLMS's size model (`pex/size.py`); a failure is
        logged, never the task's."""
        from .size import SizeContext, measure, notebook_defaults

        try:
            wb = self.workbench
            indexed = wb.is_indexed
            spec = self.lanes.get(lane)
            ctx = SizeContext(self.root, {**notebook_defaults(self._notebooks.get(lane, spec.notebook)), **parameters},
                              index_rows=wb.store.file_rows if indexed else None,
                              indexed_commit=(lambda: wb.store.get_meta("indexed_commit")) if indexed else None)
            size = {**(recorded or {}), **measure(lane, ctx)}
            self.tasks.set_task_size(task_id, size)
            return size
        except Exception as exc:  # sqlite, git, a lane gone: sizes must never stop a task
            log.warning("could not record the sizes of %s: %s", task_id, exc)
            return dict(recorded or {})

    def _planner(self, lane: str):
        """PLMS's planner over this store's history, each lane answering with the model it won
        (per-lane, or scaled by task size: `plms/scaling.py`); lanes without a prior of their
        own (user lanes) get the generic one."""
        from ..plms.priors import DEFAULT_PRIOR, PRIORS
        from ..plms.scaling import ScaledPlanner

        records = self.tasks.run_records()
        others = {lane, *self.lanes.ids(), *(r.lane for r in records)} - set(PRIORS)
        priors = {**PRIORS, **dict.fromkeys(sorted(others), DEFAULT_PRIOR)} if others else None
        return ScaledPlanner.from_history(records, priors=priors)

    def _task_size(self, task: Task, lane: str) -> dict[str, float]:
        """The task's recorded sizes, measured again when none is a size `lane` scales with
        (its lane changed, or it predates sizes)."""
        from ..plms.features import lane_features

        size = self.tasks.task_size(task.id)
        if not set(lane_features(lane)) & set(size):
            size = self._record_size(task.id, lane, task.parameters, size)
        return size

    def estimate(self, task_id: str, lane: str | None = None) -> Task:
        """PLMS's estimate (for `lane`, when the lane changes). A p90 above the lane's
        `escalate_p90_s` in the policy (times the task's budget factor) escalates the task."""
        task = self.tasks.get_task(task_id)
        if lane and lane != task.lane and task.state in (TaskState.new, TaskState.estimated):
            self.lanes.get(lane)
            self._record_routing(task.model_copy(update={"lane": lane}), "approval", task.lane)
        lane = lane or task.lane
        estimate: Estimate = self._planner(lane).estimate(lane, self._task_size(task, lane))
        task = self.tasks.transition(task_id, TaskState.estimated,
                                     f"estimated p50 {estimate.duration_p50_s:.1f}s, p90 {estimate.duration_p90_s:.1f}s"
                                     + (" (prior: too few runs)" if estimate.prior_only else ""), estimate=estimate,
                                     lane=lane)
        threshold = self._p90_threshold(lane)
        if threshold is not None and estimate.duration_p90_s > threshold * task.budget_factor:
            limit = threshold * task.budget_factor
            escalation = Escalation(
                kind="estimate", at=datetime.now(timezone.utc),
                message=f"the p90 estimate {estimate.duration_p90_s:.1f}s is above the lane's threshold {limit:g}s",
                evidence={"estimate": estimate.model_dump(mode="json"), "escalate_p90_s": threshold,
                          "budget_factor": task.budget_factor},
                options=["raise_budget", "change_lane", "cancel"])
            task = self.tasks.transition(task_id, TaskState.escalated, f"escalated: {escalation.message}",
                                         escalation=escalation)
        return task

    def _p90_threshold(self, lane: str) -> float | None:
        from ..broker.policy import policy_for

        try:
            policy = self._policy() if self._policy is not None else policy_for(self.policy_path,
                                                                                 self.lanes.extra_routes())
        except DirEngError:
            return None
        resolved = policy.resolve(self.lanes.get(lane).route) if policy is not None else None
        return resolved.escalate_p90_s if resolved is not None else None

    def approve(self, task_id: str) -> Task:
        return self.tasks.transition(task_id, TaskState.approved, "approved")

    # -- answering an escalation (each a legal transition, each audited) ----------------------
    def _escalated(self, task_id: str, choice: str) -> Task:
        task = self.tasks.get_task(task_id)
        if task.state != TaskState.escalated or task.escalation is None:
            raise DirEngError(f"task {task_id} is {task.state.value}, not escalated: there is nothing to {choice}")
        if choice not in task.escalation.options:
            raise DirEngError(f"task {task_id}: {choice} does not answer this escalation ({task.escalation.kind}); "
                              f"the choices are {', '.join(task.escalation.options)}")
        return task

    def _audit(self, task: Task, choice: str, **details) -> None:
        from ..security import audit
        from ..security.tokens import current_username

        audit.record("task.escalation.answered", actor=current_username(), task_id=task.id, choice=choice,
                     kind=task.escalation.kind if task.escalation else None, lane=task.lane, **details)

    def retry(self, task_id: str) -> Task:
        """Run the escalated task again (its run escalated), or estimate it again (its estimate did)."""
        task = self._escalated(task_id, "retry")
        self._audit(task, "retry")
        if task.escalation.kind == "estimate":
            return self.estimate(task_id)
        self.tasks.enqueue(task_id, "retry after escalation")
        return self.tasks.get_task(task_id)

    def change_lane(self, task_id: str, lane: str) -> Task:
        """Move the escalated task to another lane; it is estimated there and waits for approval."""
        task = self._escalated(task_id, "change_lane")
        self.lanes.get(lane)  # UnknownLane naming the lanes there are
        self._check_lane(lane)
        self._audit(task, "change_lane", to_lane=lane)
        if lane != task.lane:
            self._record_routing(task.model_copy(update={"lane": lane}), "escalation", task.lane)
        return self.estimate(task_id, lane=lane)

    def raise_budget(self, task_id: str, factor: float = 2.0) -> Task:
        """Multiply the task's budgets by `factor`: after a run, the task runs again with them;
        after an estimate, the p90 threshold is raised with them and the task is re-estimated."""
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not 1.0 < factor <= 100.0:
            raise DirEngError(f"factor must be a number above 1 and at most 100, got {factor!r}")
        task = self._escalated(task_id, "raise_budget")
        new_factor = round(task.budget_factor * factor, 6)
        self._audit(task, "raise_budget", factor=factor, budget_factor=new_factor)
        self.tasks.set_budget_factor(task_id, new_factor)
        if task.escalation.kind == "estimate":
            return self.estimate(task_id)
        self.tasks.enqueue(task_id, f"budgets raised x{new_factor:g}; running again")
        return self.tasks.get_task(task_id)

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
        self.tasks.get_task(task_id)  # an unknown id is NotFoundError before anything is touched
        self.reconcile()
        task = self.tasks.get_task(task_id)
        if task.state.value in SETTLED_STATES:  # ended, or waiting for the user's answer to an escalation
            return task
        self._check_lane(task.lane)
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
        from ..pas.executor import LEASE_S

        deadline = time.monotonic() + timeout if timeout else None
        said: set[str] = set()
        reconciled = time.monotonic()
        while True:
            task = self.tasks.get_task(task_id)
            if task.state.value in SETTLED_STATES or (deadline and time.monotonic() > deadline):
                return task
            holder = self._holder(task)
            if holder is None and task.state == TaskState.queued:
                self.executor.backend.check()  # an unreachable cluster is one error, and nothing claimed
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
                self.reconcile()
                reconciled = time.monotonic()

    def cancel(self, task_id: str) -> Task:
        return self.tasks.request_cancel(task_id)

    def status(self, task_id: str) -> Task:
        return self.tasks.get_task(task_id)

    def replay(self, run_id: str, dry_run: bool = False) -> ReplayReport:
        """Replay a finished run from its passport and compare (`pas.replay` has the PAS side).

        The passport and every artifact it references are verified first (a dry run stops
        there). Then the run's inputs are restored under `<store>/replays/` — a git worktree at
        the recorded commit and diff, the recorded notebook and provider responses — and the
        replay is a task in a store of its own there: created (a rehearsal), estimated,
        approved, started and run to its end by an executor of this lifecycle, with the
        worktree's own index and no server; its outputs are kept beside the original's and
        compared with them."""
        from ..pas import replay as pas_replay
        from ..workbench import Workbench

        passport, artifacts = pas_replay.open_passport(run_id, self.store_dir, dry_run=dry_run)
        if dry_run:
            return pas_replay.dry_run_report(passport)
        with pas_replay.restored(passport, self.root, self.store_dir, artifacts) as stage:
            workbench = Workbench(stage.tree, stage.store)
            try:
                again = Orchestrator(stage.tree, stage.store, workbench=workbench, lanes=self.lanes,
                                     server_url=lambda: None, lane_token=self.lane_token,
                                     notebooks={passport.lane: stage.notebook}, extra_env=stage.env)
                task, _ = again.new_task(f"replay of {run_id}", "", passport.lane, passport.parameters,
                                         rehearsal=True)
                again.estimate(task.id)
                again.approve(task.id)
                done = again.start(task.id, "here")
            finally:
                workbench.close()
            if done.state not in TERMINAL_STATES or not done.run_id or \
                    not (stage.store / "passports" / f"{done.run_id}.json").is_file():
                raise DirEngError(f"replay of {run_id} did not run: {done.error or done.state.value}")
            replayed = pas_replay.collect(stage, done.run_id, artifacts)
        return pas_replay.compare(passport, replayed, self.store_dir)


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


def replay(run_id: str, *, root: str | Path, store: str | Path | None = None, dry_run: bool = False) -> ReplayReport:
    """`Orchestrator(root, store).replay(run_id, dry_run)`: what a passport's `replay.ipynb` calls."""
    from ..config import IndexSettings

    settings = IndexSettings.for_root(root, store)
    return Orchestrator(settings.root, settings.store).replay(run_id, dry_run=dry_run)
