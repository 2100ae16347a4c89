"""The engine one process hosts: index + refresh daemon + DirEng + model broker.

The Jupyter server extension owns one `Engine`; without a server, the magics, kernel and CLI
use one in-process. `Engine` is itself the in-process transport of the application API
(`client.Client`): the REST handlers call the same methods, and `HttpClient` rebuilds the same
pydantic models from their replies, so a surface never knows which one it holds.

A long-running engine (`direng index --watch`, the Jupyter server's) also answers the index
queries of one-shot CLI processes on the store's unix socket (`serve_socket`,
`daemon_socket.py`). A `one_shot` engine is the CLI's own when no such daemon runs: it
memory-maps the static matrix and leaves MiniLM out of hybrid queries unless asked
(`dense_queries`), saying so in `notices` — loading torch and chromadb would cost it seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from .errors import DirEngError, NotFoundError
from .models import (DEFAULT_GRAPH_DIRECTION, DEFAULT_SEARCH_MODE, PROPOSAL_ACTIONS, TASK_ACTIONS, Answer, ChatMessage,
                     GraphNode, GraphResult, Hit, IndexReport, IndexStatus, LaneChoice, LaneOverride, NotebookContext,
                     OnEvent, OverrideProposal, Proposal, RoutingDecision, Task)
from .workbench import Workbench

# The broker, DirEng, PAS and the audit log are imported where they are first used: a one-shot
# `direng search` needs none of them, and importing them all cost about a fifth of its time.
log = logging.getLogger(__name__)


class Engine:
    transport = "in-process"

    def __init__(self, root: str | Path, store: str | Path | None = None, policy_path: str | Path | None = None,
                 watch: bool = False, link_base: str | None = None, *, one_shot: bool = False,
                 dense_queries: bool | None = None, notices: list[str] | None = None):
        self.workbench = Workbench(root, store, static_cache=one_shot)
        self.root = self.workbench.root
        self.one_shot = one_shot
        # Hybrid queries embed the query with MiniLM: always in a long-running engine, only when
        # asked in a one-shot one (it would load torch, the model and chromadb for one query).
        self.dense_queries = (not one_shot) if dense_queries is None else dense_queries
        self.notices = notices if notices is not None else []
        self.policy_path = Path(policy_path) if policy_path else None
        self._policy = None
        self.policy_errors: list[str] = []
        self._broker = None
        self._direng = None
        self._link_base = link_base
        self._daemon = None
        self._workers = None
        self._orchestrator = None
        self._watch = watch
        self._socket = None
        self._socket_thread: threading.Thread | None = None
        self._socket_closed = False
        self._vectors_note: str | None = None  # why hybrid searches go without MiniLM, while they do
        self._lock = threading.RLock()
        if self.policy_path is not None:  # a policy file is checked now (errors show at start);
            self.load_policy()            # the default policy is built when first needed

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> "Engine":
        """Start the refresh daemon (which also builds the index if there is none)."""
        if self._watch and self._daemon is None:
            from .index.refresh import RefreshDaemon

            self._daemon = RefreshDaemon(self.workbench).start()
        return self

    def start_workers(self, url: str | None = None) -> "Engine":
        """Run PAS workers in this process and claim the store's queue (the server does this)."""
        from .pex.orchestrator import claim_server

        if self._workers is None:
            self._workers = self.orchestrator.executor.start()
            claim_server(self.workbench.settings.store, url)
        return self

    def watch(self) -> "Engine":
        """Keep this engine's index fresh in the background (the refresh daemon); `stop()` ends it."""
        self._watch = True
        return self.start()

    def watch_forever(self) -> None:
        """Refresh this engine's index on every change until interrupted (`direng index --watch`),
        answering one-shot CLI processes on the store's socket meanwhile."""
        from .index.refresh import RefreshDaemon  # watchdog and the embedding models: only when watching

        self._long_lived()
        self.check_vectors()
        daemon = RefreshDaemon(self.workbench)
        self.serve_socket(warm=True, after=daemon.first_refresh)
        try:
            daemon.run_forever()
        finally:
            self.close_socket()

    def _long_lived(self) -> None:
        self.one_shot = False
        self.dense_queries = True
        self.workbench.set_static_cache(False)

    def serve_socket(self, *, warm: bool = False, after: threading.Event | None = None) -> None:
        """Answer the index queries of one-shot CLI processes on `<store>/daemon.sock`, from a
        background thread: once `after` is set (the refresh daemon's first pass) and, with
        `warm`, the static matrix and MiniLM are loaded — until then one-shot commands answer
        in-process, which is faster than waiting for a cold daemon. Nothing happens when
        another live process serves the store already."""
        self._long_lived()
        with self._lock:
            if self._socket is not None or self._socket_thread is not None:
                return
            self._socket_closed = False
            self._socket_thread = threading.Thread(target=self._start_socket, args=(warm, after),
                                                   name="direng-socket-start", daemon=True)
            self._socket_thread.start()

    def _start_socket(self, warm: bool, after: threading.Event | None) -> None:
        from .daemon_socket import SocketServer

        if after is not None:
            after.wait()
        if warm:
            self._warm()
        server = SocketServer(self, self.workbench.settings.store)
        with self._lock:
            if self._socket_closed:
                return
            try:
                if server.start():
                    self._socket = server
            except OSError as exc:
                log.warning("cannot serve %s on a unix socket: %s", self.workbench.settings.store, exc)

    def _warm(self) -> None:
        """Load what queries need — the static matrix and model, MiniLM when there are vectors."""
        try:
            if not self.workbench.is_indexed:
                return
            self.workbench.searcher.warm()
            if self.workbench.store.has_dense():
                from .index.embed import embed_dense
                from .index.vectors import recorded_encoder

                embed_dense(["warm up"], encoder=recorded_encoder(self.workbench.store))
                self.workbench.vectors()
        except Exception as exc:  # noqa: BLE001 — the first query loads them instead
            log.warning("warming the search models failed: %s", exc)

    def close_socket(self) -> None:
        with self._lock:
            self._socket_closed = True
            server, self._socket = self._socket, None
            self._socket_thread = None
        if server is not None:
            server.close()

    def stop(self) -> None:
        self.close_socket()
        if self._daemon is not None:
            self._daemon.stop()
            self._daemon = None
        if self._workers is not None:
            from .pex.orchestrator import release_server

            self._workers.stop()
            self._workers = None
            release_server(self.workbench.settings.store)

    # -- policy and broker ------------------------------------------------------
    @property
    def policy(self):
        with self._lock:
            if self._policy is None:
                self.load_policy()
            return self._policy

    @policy.setter
    def policy(self, value) -> None:
        self._policy = value

    def load_policy(self) -> None:
        """Load the policy file; an invalid one keeps the previous valid policy and is reported."""
        from .broker.policy import policy_for

        if self.policy_path is None:
            self._policy = self._policy or policy_for(None)
            return
        try:
            policy = policy_for(self.policy_path, self._extra_lane_routes())
        except DirEngError as exc:
            self.policy_errors = [str(exc)]
            log.error("policy %s rejected, keeping the previous one: %s", self.policy_path, exc)
            self._policy = self._policy or policy_for(None)
            return
        self._policy, self.policy_errors = policy, []
        self._drop_broker()

    def validate_policy(self, data: dict) -> list[dict]:
        from .broker.policy import validate_policy

        return [i.model_dump() if hasattr(i, "model_dump") else dict(i)
                for i in validate_policy(data, self._extra_lane_routes())]

    @staticmethod
    def _extra_lane_routes() -> list[str]:
        """Policy route names of user lanes (PAS's lane registry): valid policy lanes besides `models.LANES`."""
        from .pas.lanes import registry

        return registry.extra_routes()

    def apply_policy(self, data: dict) -> list[dict]:
        """Validate and, when clean, switch to (and save) the new policy."""
        from .broker.policy import Policy
        from .security import audit

        issues = self.validate_policy(data)
        if issues:
            return issues
        with self._lock:
            self.policy = Policy.model_validate(data)
            self.policy_errors = []
            self._drop_broker()
            audit.record("policy.change", policy_sha256=self.policy.hash,
                         path=str(self.policy_path) if self.policy_path else None)
            if self.policy_path:
                tmp = self.policy_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=2))
                tmp.replace(self.policy_path)
        return []

    def _drop_broker(self) -> None:
        """A new policy means a new broker; close the old one's HTTP clients."""
        if self._broker is not None:
            self._broker.close()
        self._broker = None
        if self._direng is not None:
            self._direng.broker = self.broker

    @property
    def broker(self):
        with self._lock:
            if self._broker is None:
                from .broker.broker import Broker
                from .direng.assistant import LocalProvider

                usage_log = self.workbench.settings.store / "usage.jsonl"
                self._broker = Broker(self.policy, local_factory=lambda: LocalProvider(self.direng),
                                      usage_log=usage_log)
            return self._broker

    @property
    def direng(self):
        with self._lock:
            if self._direng is None:
                from .direng.assistant import DirEng

                # DirEng hands large work to PEX: the orchestrator is built when first needed.
                self._direng = DirEng(self.workbench, broker=None, link_base=self._link_base,
                                      tasks=lambda: self.orchestrator, proposals=self.proposal_store)
                self._direng.broker = self.broker
            return self._direng

    # -- the API every surface uses --------------------------------------------
    def health(self) -> dict:
        daemon = self._daemon
        pex = self._pex_health()
        vectors = self.vectors_health()
        executor = self.executor_health()
        return {
            "status": "ok" if not self.policy_errors and pex["ok"] and vectors["ok"] and executor["ok"] else "degraded",
            "root": str(self.root),
            "store": str(self.workbench.settings.store),
            "indexed": self.workbench.is_indexed,
            "policy": {"path": str(self.policy_path) if self.policy_path else None,
                       "valid": not self.policy_errors, "errors": self.policy_errors},
            "daemon": {"running": daemon is not None, "refreshes": getattr(daemon, "refreshes", 0),
                       "last_error": getattr(daemon, "last_error", None)},
            "pex": pex,
            "vectors": vectors,
            "executor": executor,
        }

    def executor_health(self) -> dict:
        """Where lanes run (`DIRENG_EXECUTOR`, `pas.executors`) and whether it answers: the serving
        workers' backend when they run, else the configured one, asked once (bounded by its
        connect timeout)."""
        from .pas.executors import health

        workers = self._workers
        return health(workers.backend if workers is not None else None)

    def vectors_health(self, timeout: float | None = None) -> dict:
        """Where the MiniLM vectors live and whether that answers: a chroma server (`DIRENG_VECTORS`)
        is asked for its heartbeat (within HEALTH_TIMEOUT_S, or `timeout`); the embedded store is a
        folder, nothing to ask."""
        from .index.vector_location import HEALTH_TIMEOUT_S, VectorStoreError, collection_name, locate, ping

        info = {"ok": True, "location": None, "collection": None, "error": None}
        store_dir = self.workbench.settings.store
        try:
            location = locate(store_dir)
            info["location"] = location.describe()
            if self.workbench.is_indexed:
                info["collection"] = collection_name(location, self.workbench.store.get_meta("store_id"), store_dir)
            ping(location, HEALTH_TIMEOUT_S if timeout is None else timeout)
        except VectorStoreError as exc:
            info.update(ok=False, error=str(exc))
        return info

    def check_vectors(self) -> bool:
        """At start-up: say in one line when the vector server does not answer (the engine runs on;
        hybrid search leaves MiniLM out and the filling waits for the server)."""
        from .index.vector_location import CONNECT_TIMEOUT_S

        info = self.vectors_health(CONNECT_TIMEOUT_S)  # at start-up a slow answer is no failure
        if not info["ok"]:
            log.error("DirEng: MiniLM vectors unavailable: %s", info["error"])
        return info["ok"]

    def _pex_health(self) -> dict:
        """Where PEX's task store lives and whether it answers. A database server (`DIRENG_PEX_DB`)
        is asked (bounded by its connect timeout); the SQLite file only once PEX has opened it."""
        from .pex.db import locate

        info = {"ok": True, "db": None, "error": None}
        try:
            location = locate(self.workbench.settings.store)
            info["db"] = location.describe()
            if not location.is_sqlite or self._orchestrator is not None:
                self.orchestrator.tasks.ping()
        except DirEngError as exc:
            info.update(ok=False, error=str(exc))
        return info

    def status(self) -> IndexStatus:
        return self.workbench.status()

    def index(self, progress: bool = False, dense: bool = False) -> IndexReport:
        return self.workbench.index(progress=progress, dense=dense)

    def search(self, query: str, k: int = 10, mode: str = DEFAULT_SEARCH_MODE) -> list[Hit]:
        from .index.vector_location import VectorStoreError

        try:
            hits = self.workbench.search(query, k=k, mode=mode, dense=self.dense_queries)
        except VectorStoreError as exc:
            if mode != "hybrid":  # MiniLM was the point of a dense search: say why it failed
                raise
            # The other rankings still answer: left out, with the reason (health says it too).
            hits = self.workbench.search(query, k=k, mode=mode, dense=False)
            note = f"MiniLM vectors were left out of this search: {exc}"
            if not self.one_shot:  # a long-lived engine logs it (once while it lasts); a CLI prints notices
                if note != self._vectors_note:
                    log.warning("%s", note)
                self._vectors_note = note
            elif note not in self.notices:
                self.notices.append(note)
            return hits
        self._vectors_note = None
        self.notices.extend(n for n in self.workbench.left_out(mode, self.dense_queries) if n not in self.notices)
        return hits

    def graph(self, symbol: str, direction: str = DEFAULT_GRAPH_DIRECTION, depth: int = 1, max_nodes: int = 150,
              code: bool = False) -> GraphResult:
        """The neighbourhood of `symbol`; with `code`, also its nodes' source excerpts (`result.code`)."""
        result = self.workbench.graph(symbol, direction=direction, depth=depth, max_nodes=max_nodes)
        if code:
            result.code = self._code([n.id for n in result.nodes])
        return result

    def path(self, source: str, target: str) -> list[GraphNode]:
        """The shortest call/import path from `source` to `target` (empty when there is none)."""
        return self.workbench.shortest_path(source, target)

    def repo_map(self, tokens: int = 1024, focus: list[str] | None = None) -> str:
        """A ranked outline of the repository within about `tokens` tokens, centred on `focus`."""
        return self.workbench.repo_map(max_tokens=tokens, focus=focus or [])

    def _code(self, node_ids: list[str], max_lines: int = 40) -> dict[str, str]:
        """Source snippets for graph nodes (for the graph widget's click-to-see-code)."""
        out = {}
        for nid in node_ids:
            if "::" not in nid:
                continue
            path, qual = nid.split("::", 1)
            span = self.workbench.store.symbol_location(path, qual)
            if span:  # a notebook's symbol: the excerpt is its cell's code
                out[nid] = self.direng.composer.excerpt(path, span[0], span[1], max_lines, cell=span[2])
        return out

    def chat(self, message: str, session: str = "default", context: NotebookContext | None = None,
             on_event: OnEvent | None = None) -> Answer:
        return self.direng.chat(message, session=session, context=context, on_event=on_event)

    def history(self, session: str = "default") -> list[ChatMessage]:
        return self.direng.history(session)

    def reset(self, session: str = "default") -> None:
        self.direng.reset(session)

    def complete(self, prefix: str, limit: int = 30) -> list[str]:
        """Qualified symbol names starting with `prefix` (case-sensitive first, then not)."""
        if not self.workbench.is_indexed:
            return []
        names = self.workbench.store.qualnames_starting(prefix, limit * 3)
        exact = [n for n in names if n.startswith(prefix)]
        return (exact + [n for n in names if n not in exact])[:limit]

    def inspect(self, symbol: str) -> dict:
        """Signature, docstring, location and callers of a symbol (for Shift+Tab)."""
        g = self.workbench.graph(symbol, direction="callers", depth=1, max_nodes=20)
        center = next(n for n in g.nodes if n.id == g.center)
        doc = self.workbench.store.symbol_docstring(center.path, center.name) if center.path else ""
        return {"symbol": center.name, "kind": center.kind, "path": center.path, "start_line": center.start_line,
                "end_line": center.end_line, "cell": center.cell, "signature": center.signature, "docstring": doc,
                "callers": [f"{n.name} ({n.path}:{'' if n.cell is None else f'cell {n.cell}:'}{n.start_line})"
                            for n in g.nodes if n.id != g.center]}

    # -- edits DirEng proposes (applied only on the user's word) -----------------
    @property
    def proposal_store(self):
        from .direng.proposals import ProposalStore

        return ProposalStore(self.root, self.workbench.settings.store)

    def proposals(self) -> list[Proposal]:
        return self.proposal_store.list()

    def proposal(self, proposal_id: str) -> Proposal:
        return self.proposal_store.get(proposal_id)

    def proposal_action(self, proposal_id: str, action: str) -> Proposal:
        """`apply` (a patch only once its Code-Impl task succeeded) or `reject`, audited."""
        from .security import audit

        if action not in PROPOSAL_ACTIONS:
            raise DirEngError(f"unknown proposal action {action!r}; actions: {', '.join(PROPOSAL_ACTIONS)}")
        store = self.proposal_store
        if action == "reject":
            done = store.reject(proposal_id)
        else:
            done = store.apply(proposal_id, task_state=lambda tid: self.orchestrator.status(tid).state.value)
        audit.record(f"proposal.{action}", proposal_id=done.id, kind=done.kind, path=done.path, paths=done.paths)
        return done

    # -- delegation (PEX → PLMS / PAS) -------------------------------------------
    @property
    def orchestrator(self):
        with self._lock:
            if self._orchestrator is None:
                from .pex.orchestrator import Orchestrator

                # The engine's workbench goes to the executor: the engine and its lanes share one index.
                self._orchestrator = Orchestrator(self.root, self.workbench.settings.store,
                                                  policy_path=self.policy_path, workbench=self.workbench,
                                                  policy=lambda: self.policy)
            return self._orchestrator

    def create_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                    idempotency_key: str | None = None, rehearsal: bool = False) -> tuple[Task, bool]:
        """(task, created): an idempotency key that was seen before returns its task, not created."""
        return self.orchestrator.new_task(title, brief, lane, parameters, idempotency_key, rehearsal=rehearsal)

    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None, rehearsal: bool = False) -> Task:
        return self.create_task(title, brief, lane, parameters, idempotency_key, rehearsal)[0]

    def task_action(self, task_id: str, action: str, *, lane: str | None = None, factor: float | None = None) -> Task:
        """`action` on the task; `change_lane` needs `lane`, `raise_budget` takes `factor` (2)."""
        orch = self.orchestrator
        if action not in TASK_ACTIONS:
            raise DirEngError(f"unknown task action {action!r}; actions: {', '.join(TASK_ACTIONS)}")
        if action == "start":  # PEX decides who runs it: the server's workers, or a thread of this process
            return orch.start(task_id, "background")
        if action == "estimate":  # a lane here moves the task before approval (recorded as a correction)
            return orch.estimate(task_id, lane=lane)
        if action == "change_lane":
            if not lane:
                raise DirEngError("change_lane needs the lane to move the task to")
            return orch.change_lane(task_id, lane)
        if action == "raise_budget":
            return orch.raise_budget(task_id, 2.0 if factor is None else factor)
        return getattr(orch, action)(task_id)

    def run_task(self, task_id: str, follow: bool = False) -> Task:
        """Start a task and see it through from this process (`direng task start`): it returns when
        the task ends — or, while a server owns the store, once the server's workers have it,
        unless `follow`. Only the in-process transport can do this; PEX decides who runs it."""
        return self.orchestrator.start(task_id, "here", follow=follow)

    def task(self, task_id: str):
        return self.orchestrator.status(task_id)

    def tasks(self):
        return self.orchestrator.tasks.list_tasks()

    def task_events(self, task_id: str, after: int = 0):
        self.orchestrator.tasks.get_task(task_id)
        return self.orchestrator.tasks.events(task_id, after)

    def runs(self) -> list[dict]:
        return self.orchestrator.tasks.list_runs()

    def plms_history(self) -> list[dict]:
        """PLMS's input: the finished runs as history records (`plms.estimate.RunRecord`), oldest first."""
        return [r.model_dump(mode="json") for r in self.orchestrator.tasks.run_records()]

    def plms_calibration(self, plot: bool = True) -> dict:
        """PLMS's calibration report (one row per lane) and, with `plot`, its figure as a base64 PNG."""
        import base64
        import io

        from .plms.calibration import calibration_report

        records = self.orchestrator.tasks.run_records()
        lanes = json.loads(calibration_report(records).to_json(orient="records"))  # NaN → null
        out = {"runs": len(records), "lanes": lanes, "png": None}
        if plot:
            from .plms.plot import figure

            buf = io.BytesIO()
            figure(records).savefig(buf, format="png", dpi=90)
            out["png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        return out

    # -- lane routing (PLMS's classifier, the policy's lane overrides) -------------------
    def route(self, title: str, brief: str = "") -> RoutingDecision:
        """The lane PEX would give a task with this title and brief, the top two with their reasons,
        and whether to ask the user (answer by creating the task with the picked `lane`: PEX
        records it as a labelled example, `asked`)."""
        from .plms.keywords import route_lane
        from .plms.routing import UNCERTAIN_MARGIN

        text = f"{title} {brief}".strip()
        if not text:
            raise DirEngError("a routing needs a title or a brief")
        decision = self.orchestrator.route(text)
        if decision is None:  # the classifier is unavailable: the keyword rules, as PEX does then
            lane = route_lane(text)
            decision = RoutingDecision(lane=lane, candidates=[LaneChoice(lane=lane, probability=1.0, reasons=[
                "the keyword rules (the lane classifier is unavailable)"])], margin=1.0, threshold=UNCERTAIN_MARGIN,
                uncertain=False)
        return decision

    def lane_overrides(self, min_repeats: int = 3) -> list[OverrideProposal]:
        """Lane overrides learned from the routing book's repeated misroutes (with their evidence),
        then those in the policy that no longer have evidence; `accepted` when in the policy."""
        from .plms.overrides import propose

        orch = self.orchestrator
        in_force = list(self.policy.lane_overrides)
        out = propose(orch.routing.history().records, orch.lanes.ids(), in_force, min_repeats=min_repeats)
        proposed = {p.override.id for p in out}
        return out + [OverrideProposal(override=o, briefs=[], accepted=True) for o in in_force if o.id not in proposed]

    def accept_override(self, override_id: str) -> LaneOverride:
        """Write a proposed lane override into the policy: validated, applied and saved like any
        policy change (`apply_policy`, audited `policy.change`), and audited `routing.override.accept`."""
        import difflib

        from .broker.policy import PolicyError
        from .plms.overrides import with_override
        from .security import audit

        with self._lock:
            proposals = {p.override.id: p for p in self.lane_overrides()}
            found = proposals.get(override_id)
            if found is None:
                close = difflib.get_close_matches(str(override_id), list(proposals), n=3, cutoff=0.5)
                raise NotFoundError(f"no proposed lane override {override_id!r}"
                                    + (f"; closest: {', '.join(close)}" if close else
                                       f"; proposed: {', '.join(proposals) or 'none'}"))
            if found.accepted:
                raise DirEngError(f"lane override {override_id} is in the policy already")
            document = self.policy.model_dump(mode="json", by_alias=True, exclude_unset=True)
            issues = self.apply_policy(with_override(document, found.override))
            if issues:
                first = issues[0]
                raise PolicyError(f"lane override {override_id} would make the policy invalid: "
                                  f"{first.get('pointer') or '/'}: {first.get('message')}")
            audit.record("routing.override.accept", override_id=override_id, lane=found.override.lane,
                         words=found.override.words, routed=found.override.routed,
                         corrections=found.override.corrections, policy_sha256=self.policy.hash,
                         path=str(self.policy_path) if self.policy_path else None)
        return found.override

    def passport(self, run_id: str):
        from .pas.passport import PassportStore

        return PassportStore(self.workbench.settings.store).load(run_id)

    def replay(self, run_id: str, dry_run: bool = False):
        """Replay a run through PEX's lifecycle (`Orchestrator.replay`)."""
        return self.orchestrator.replay(run_id, dry_run=dry_run)

    def pas_health(self) -> dict:
        from .pas.allowlist import lane_limits
        from .pas.executor import check_lane
        from .pas.sandbox import probe

        info = probe()
        registry = self.orchestrator.lanes
        lanes = {}
        for lane in registry.ids():  # the built-in lanes, then user lanes
            try:
                spec = registry.get(lane)
                check_lane(spec)
                lanes[lane] = {"ok": True, "limits": lane_limits(spec)}
            except DirEngError as exc:
                lanes[lane] = {"ok": False, "error": str(exc)}
        runs = self.orchestrator.tasks.list_runs(1000)
        return {"status": "ok" if all(v["ok"] for v in lanes.values()) else "degraded",
                "sandbox": {"mode": info.mode, "reason": getattr(info, "reason", None)},
                "workers": {"running": self._workers is not None},
                "queue": {"queued": sum(r["state"] == "queued" for r in runs),
                          "running": sum(r["state"] == "running" for r in runs)},
                "lanes": lanes}
