"""The engine one process hosts: index + refresh daemon + DirEng + model broker.

The Jupyter server extension owns one `Engine`; without a server, the magics, kernel and CLI
build one in-process (see `client.py`). Every method returns pydantic models or plain JSON-able
data, so the REST handlers and the in-process client share the same shapes.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from .errors import DirEngError
from .models import Answer, ChatMessage, GraphResult, Hit, IndexReport, IndexStatus
from .workbench import Workbench

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, root: str | Path, store: str | Path | None = None, policy_path: str | Path | None = None,
                 watch: bool = False, link_base: str | None = None):
        self.workbench = Workbench(root, store)
        self.root = self.workbench.root
        self.policy_path = Path(policy_path) if policy_path else None
        self.policy = None
        self.policy_errors: list[str] = []
        self._broker = None
        self._direng = None
        self._link_base = link_base
        self._daemon = None
        self._workers = None
        self._orchestrator = None
        self._watch = watch
        self._lock = threading.RLock()
        self.load_policy()

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

    def stop(self) -> None:
        if self._daemon is not None:
            self._daemon.stop()
            self._daemon = None
        if self._workers is not None:
            from .pex.orchestrator import release_server

            self._workers.stop()
            self._workers = None
            release_server(self.workbench.settings.store)

    # -- policy and broker ------------------------------------------------------
    def load_policy(self) -> None:
        """Load the policy file; an invalid one keeps the previous valid policy and is reported."""
        from .broker.policy import default_policy, load_policy

        if self.policy_path is None:
            self.policy = self.policy or default_policy()
            return
        try:
            policy = load_policy(self.policy_path)
        except DirEngError as exc:
            self.policy_errors = [str(exc)]
            log.error("policy %s rejected, keeping the previous one: %s", self.policy_path, exc)
            self.policy = self.policy or default_policy()
            return
        self.policy, self.policy_errors = policy, []
        self._drop_broker()

    def validate_policy(self, data: dict) -> list[dict]:
        from .broker.policy import validate_policy

        return [i.model_dump() if hasattr(i, "model_dump") else dict(i) for i in validate_policy(data)]

    def apply_policy(self, data: dict) -> list[dict]:
        """Validate and, when clean, switch to (and save) the new policy."""
        issues = self.validate_policy(data)
        if issues:
            return issues
        from .broker.policy import Policy

        with self._lock:
            self.policy = Policy.model_validate(data)
            self.policy_errors = []
            self._drop_broker()
            from .security import audit

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

                self._direng = DirEng(self.workbench, broker=None, link_base=self._link_base)
                self._direng.broker = self.broker
            return self._direng

    # -- the API every surface uses --------------------------------------------
    def health(self) -> dict:
        daemon = self._daemon
        return {
            "status": "ok" if not self.policy_errors else "degraded",
            "root": str(self.root),
            "indexed": self.workbench.is_indexed,
            "policy": {"path": str(self.policy_path) if self.policy_path else None,
                       "valid": not self.policy_errors, "errors": self.policy_errors},
            "daemon": {"running": daemon is not None, "refreshes": getattr(daemon, "refreshes", 0),
                       "last_error": getattr(daemon, "last_error", None)},
        }

    def status(self) -> IndexStatus:
        return self.workbench.status()

    def refresh(self, progress: bool = False) -> IndexReport:
        return self.workbench.index(progress=progress)

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        return self.workbench.search(query, k=k, mode=mode)

    def graph(self, symbol: str, direction: str = "both", depth: int = 1, max_nodes: int = 150) -> GraphResult:
        return self.workbench.graph(symbol, direction=direction, depth=depth, max_nodes=max_nodes)

    def code(self, node_ids: list[str], max_lines: int = 40) -> dict[str, str]:
        """Source snippets for graph nodes (for the graph widget's click-to-see-code)."""
        out = {}
        for nid in node_ids:
            if "::" not in nid:
                continue
            path, qual = nid.split("::", 1)
            row = self.workbench.store.db.execute(
                "SELECT start_line, end_line FROM symbols WHERE path=? AND qualname=?", (path, qual)).fetchone()
            if row:
                out[nid] = self.direng.composer.excerpt(path, row[0], row[1], max_lines)
        return out

    def chat(self, message: str, session: str = "default") -> Answer:
        return self.direng.chat(message, session=session)

    def history(self, session: str = "default") -> list[ChatMessage]:
        return self.direng.history(session)

    def reset(self, session: str = "default") -> None:
        self.direng.reset(session)

    def complete(self, prefix: str, limit: int = 30) -> list[str]:
        """Qualified symbol names starting with `prefix` (case-sensitive first, then not)."""
        if not self.workbench.is_indexed:
            return []
        like = prefix.replace("%", "").replace("_", r"\_") + "%"
        rows = self.workbench.store.db.execute(
            r"SELECT DISTINCT qualname FROM symbols WHERE qualname LIKE ? ESCAPE '\' ORDER BY length(qualname), "
            "qualname LIMIT ?", (like, limit * 3)).fetchall()
        names = [r[0] for r in rows]
        exact = [n for n in names if n.startswith(prefix)]
        return (exact + [n for n in names if n not in exact])[:limit]

    def inspect(self, symbol: str) -> dict:
        """Signature, docstring, location and callers of a symbol (for Shift+Tab)."""
        g = self.workbench.graph(symbol, direction="callers", depth=1, max_nodes=20)
        center = next(n for n in g.nodes if n.id == g.center)
        doc = ""
        if center.path:
            row = self.workbench.store.db.execute(
                "SELECT docstring FROM symbols WHERE path=? AND qualname=?", (center.path, center.name)).fetchone()
            doc = row[0] if row else ""
        return {"symbol": center.name, "kind": center.kind, "path": center.path, "start_line": center.start_line,
                "end_line": center.end_line, "signature": center.signature, "docstring": doc,
                "callers": [f"{n.name} ({n.path}:{n.start_line})" for n in g.nodes if n.id != g.center]}

    # -- delegation (PEX → PLMS / PAS) -------------------------------------------
    @property
    def orchestrator(self):
        with self._lock:
            if self._orchestrator is None:
                from .pex.orchestrator import Orchestrator

                self._orchestrator = Orchestrator(self.root, self.workbench.settings.store,
                                                  policy_path=self.policy_path)
            return self._orchestrator

    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None) -> tuple:
        return self.orchestrator.new_task(title, brief, lane, parameters, idempotency_key)

    def task_action(self, task_id: str, action: str):
        orch = self.orchestrator
        if action not in ("estimate", "approve", "start", "cancel"):
            raise DirEngError(f"unknown task action {action!r}")
        if action == "start":  # PEX decides who runs it: the server's workers, or a thread of this process
            return orch.start(task_id, "background")
        return getattr(orch, action)(task_id)

    def task(self, task_id: str):
        return self.orchestrator.status(task_id)

    def tasks(self):
        return self.orchestrator.tasks.list_tasks()

    def task_events(self, task_id: str, after: int = 0):
        self.orchestrator.tasks.get_task(task_id)
        return self.orchestrator.tasks.events(task_id, after)

    def runs(self) -> list[dict]:
        return self.orchestrator.tasks.list_runs()

    def passport(self, run_id: str):
        from .pas.passport import PassportStore

        return PassportStore(self.workbench.settings.store).load(run_id)

    def replay(self, run_id: str, dry_run: bool = False):
        from .pas.replay import replay

        return replay(run_id, root=self.root, store=self.workbench.settings.store, dry_run=dry_run)

    def pas_health(self) -> dict:
        from .models import LANE_IDS
        from .pas.allowlist import load_lane_allowlist
        from .pas.executor import check_parameters_cell, lane_notebook
        from .pas.sandbox import probe

        info = probe()
        lanes = {}
        for lane in LANE_IDS:
            try:
                check_parameters_cell(lane_notebook(lane))
                limits = load_lane_allowlist(lane).limits.model_dump()
                lanes[lane] = {"ok": True, "limits": limits}
            except DirEngError as exc:
                lanes[lane] = {"ok": False, "error": str(exc)}
        runs = self.orchestrator.tasks.list_runs(1000)
        return {"status": "ok" if all(v["ok"] for v in lanes.values()) else "degraded",
                "sandbox": {"mode": info.mode, "reason": getattr(info, "reason", None)},
                "workers": {"running": self._workers is not None},
                "queue": {"queued": sum(r["state"] == "queued" for r in runs),
                          "running": sum(r["state"] == "running" for r in runs)},
                "lanes": lanes}
