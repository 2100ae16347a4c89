"""One application API (`Client`), two transports: the server's REST API, or the engine itself.

`Client` is the API every surface (magics, kernel, CLI, delegation widget) programs against.
`Engine` satisfies it directly — it is the in-process transport — and `HttpClient` satisfies it
over the server's REST API, rebuilding the same pydantic models and the same exceptions (from
the reply's structured `code`, never from its message text).

Kernels started by a Jupyter server with the DirEng extension inherit `DIRENG_SERVER_URL` and
`DIRENG_TOKEN`, so `connect()` talks to the server's engine (shared index, refresh daemon,
broker). Anywhere else — plain IPython, papermill, CI, the CLI — or when the server does not
answer, it builds the engine in-process on the git root of the working directory (or `root`),
with a one-line notice saying so.

A one-shot caller (each `direng` command: `connect(one_shot=True)`) gets a `DaemonClient` when a
long-running engine — `direng index --watch`, or a Jupyter server's — owns the store's unix
socket (`daemon_socket.py`). It is a third transport of the same protocol: the index queries
(`daemon_socket.SERVED`) go to the daemon, which has everything loaded; every other call, and
every call once the daemon is gone (killed, stale socket), goes to an in-process engine built
on first need — silently, removing the stale socket. The daemon answers only what is read-only,
so answering it again in-process after a lost reply is always safe.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from pydantic import TypeAdapter

from . import daemon_socket, sse
from .config import IndexSettings
from .errors import DirEngError, from_reply
from .index import git
from .models import (DEFAULT_GRAPH_DIRECTION, DEFAULT_SEARCH_MODE, Answer, ChatMessage, GraphNode, GraphResult, Hit,
                     IndexReport, IndexStatus, LaneOverride, NotebookContext, OnEvent, OverrideProposal, Passport,
                     Proposal, ReplayReport, RoutingDecision, Task, TaskEvent)

log = logging.getLogger(__name__)

_HITS = TypeAdapter(list[Hit])  # hits are dataclasses (records.py): validated from JSON as the models are


@runtime_checkable
class Client(Protocol):
    """The application API. Both transports return the same models and raise the same errors."""

    transport: str  # "in-process" | "server"

    def health(self) -> dict: ...
    def status(self) -> IndexStatus: ...
    def index(self, progress: bool = False, dense: bool = False) -> IndexReport: ...
    def search(self, query: str, k: int = 10, mode: str = DEFAULT_SEARCH_MODE) -> list[Hit]: ...
    def graph(self, symbol: str, direction: str = DEFAULT_GRAPH_DIRECTION, depth: int = 1, max_nodes: int = 150,
              code: bool = False) -> GraphResult: ...
    def path(self, source: str, target: str) -> list[GraphNode]: ...
    def repo_map(self, tokens: int = 1024, focus: list[str] | None = None) -> str: ...
    def chat(self, message: str, session: str = "default", context: NotebookContext | None = None,
             on_event: OnEvent | None = None) -> Answer: ...
    def history(self, session: str = "default") -> list[ChatMessage]: ...
    def reset(self, session: str = "default") -> None: ...
    def complete(self, prefix: str, limit: int = 30) -> list[str]: ...
    def inspect(self, symbol: str) -> dict: ...
    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None, rehearsal: bool = False) -> Task: ...
    def task_action(self, task_id: str, action: str, *, lane: str | None = None,
                    factor: float | None = None) -> Task: ...
    def task(self, task_id: str) -> Task: ...
    def tasks(self) -> list[Task]: ...
    def task_events(self, task_id: str, after: int = 0) -> list[TaskEvent]: ...
    def runs(self) -> list[dict]: ...
    def plms_history(self) -> list[dict]: ...
    def plms_calibration(self, plot: bool = True) -> dict: ...
    def route(self, title: str, brief: str = "") -> RoutingDecision: ...
    def lane_overrides(self, min_repeats: int = 3) -> list[OverrideProposal]: ...
    def accept_override(self, override_id: str) -> LaneOverride: ...
    def passport(self, run_id: str) -> Passport: ...
    def replay(self, run_id: str, dry_run: bool = False) -> ReplayReport: ...
    def pas_health(self) -> dict: ...
    def proposals(self) -> list[Proposal]: ...
    def proposal(self, proposal_id: str) -> Proposal: ...
    def proposal_action(self, proposal_id: str, action: str) -> Proposal: ...


class HttpClient:
    """`Client` over the server's REST API (`docs/api.yaml`)."""

    transport = "server"

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60):
        self.base = base_url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.root = None

    def _open(self, method: str, path: str, params: dict | list | None = None, body: dict | None = None,
              timeout: float | None = None, stream: bool = False):
        """The open response (a context manager), or the server's error rebuilt as an exception."""
        url = urllib.parse.urljoin(self.base, path)
        if params:
            pairs = params.items() if isinstance(params, dict) else params
            url += "?" + urllib.parse.urlencode([(k, v) for k, v in pairs if v is not None])
        from urllib import error as urlerror, request as urlrequest  # http.client, email, ssl: only for HTTP

        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urlrequest.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        if stream:
            req.add_header("Accept", sse.MEDIA_TYPE)
        if self.token:
            req.add_header("Authorization", f"token {self.token}")
        try:
            return urlrequest.urlopen(req, timeout=timeout or self.timeout)
        except urlerror.HTTPError as err:
            try:
                payload = json.loads(err.read() or b"{}")
            except ValueError:
                payload = {}
            raise from_reply(err.code, payload if isinstance(payload, dict) else {}) from None

    def _request(self, method: str, path: str, params: dict | list | None = None, body: dict | None = None,
                 timeout: float | None = None):
        with self._open(method, path, params, body, timeout) as resp:
            return json.loads(resp.read() or b"null")

    def health(self, timeout: float | None = None) -> dict:
        return self._request("GET", "health", timeout=timeout)

    def status(self) -> IndexStatus:
        return IndexStatus.model_validate(self._request("GET", "index/status"))

    def index(self, progress: bool = False, dense: bool = False) -> IndexReport:
        return IndexReport.model_validate(self._request("POST", "index/refresh", body={"dense": dense}, timeout=3600))

    def search(self, query: str, k: int = 10, mode: str = DEFAULT_SEARCH_MODE) -> list[Hit]:
        data = self._request("GET", "search", {"q": query, "k": k, "mode": mode})
        return _HITS.validate_python(data["hits"])

    def graph(self, symbol: str, direction: str = DEFAULT_GRAPH_DIRECTION, depth: int = 1, max_nodes: int = 150,
              code: bool = False) -> GraphResult:
        data = self._request("GET", "graph/" + urllib.parse.quote(symbol, safe=""),
                             {"direction": direction, "depth": depth, "max_nodes": max_nodes, "code": int(code)})
        return GraphResult.model_validate(data)

    def path(self, source: str, target: str) -> list[GraphNode]:
        data = self._request("GET", "path", {"from": source, "to": target})
        return [GraphNode.model_validate(n) for n in data["nodes"]]

    def repo_map(self, tokens: int = 1024, focus: list[str] | None = None) -> str:
        return self._request("GET", "map", [("tokens", tokens)] + [("focus", f) for f in focus or []])["map"]

    def chat(self, message: str, session: str = "default", context: NotebookContext | None = None,
             on_event: OnEvent | None = None) -> Answer:
        body = {"message": message, "session": session}
        if context is not None:
            body["context"] = context.model_dump(mode="json")
        if on_event is None:
            return Answer.model_validate(self._request("POST", "chat", body=body))
        with self._open("POST", "chat", body={**body, "stream": True}, stream=True) as resp:
            for event in sse.parse(resp):
                payload = event.json()
                if event.event == "answer":
                    return Answer.model_validate(payload)
                if event.event == "error":
                    raise from_reply(int(payload.get("status") or 500), payload)
                on_event(event.event, payload)
        raise DirEngError("the server's chat stream ended without an answer")

    def history(self, session: str = "default") -> list[ChatMessage]:
        data = self._request("GET", "chat/history", {"session": session})
        return [ChatMessage.model_validate(m) for m in data["messages"]]

    def reset(self, session: str = "default") -> None:
        self._request("POST", "chat/reset", body={"session": session})

    def complete(self, prefix: str, limit: int = 30) -> list[str]:
        return self._request("GET", "symbols/complete", {"prefix": prefix, "limit": limit})["matches"]

    def inspect(self, symbol: str) -> dict:
        return self._request("GET", "symbols/inspect", {"symbol": symbol})

    # -- delegation --
    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None, rehearsal: bool = False) -> Task:
        body = {"title": title, "brief": brief, "lane": lane, "parameters": parameters or {},
                "idempotency_key": idempotency_key, "rehearsal": rehearsal}
        return Task.model_validate(self._request("POST", "tasks", body=body))

    def task_action(self, task_id: str, action: str, *, lane: str | None = None,
                    factor: float | None = None) -> Task:
        body = {k: v for k, v in (("lane", lane), ("factor", factor)) if v is not None}
        return Task.model_validate(self._request("POST", f"tasks/{task_id}/{action}", body=body))

    def task(self, task_id: str) -> Task:
        return Task.model_validate(self._request("GET", f"tasks/{task_id}"))

    def tasks(self) -> list[Task]:
        return [Task.model_validate(t) for t in self._request("GET", "tasks")["tasks"]]

    def task_events(self, task_id: str, after: int = 0) -> list[TaskEvent]:
        data = self._request("GET", f"tasks/{task_id}/events", {"after": after})
        return [TaskEvent.model_validate(e) for e in data["events"]]

    def runs(self) -> list[dict]:
        return self._request("GET", "runs")["runs"]

    def plms_history(self) -> list[dict]:
        return self._request("GET", "plms/history")["runs"]

    def plms_calibration(self, plot: bool = True) -> dict:
        return self._request("GET", "plms/calibration", {"plot": int(plot)})

    def route(self, title: str, brief: str = "") -> RoutingDecision:
        return RoutingDecision.model_validate(self._request("POST", "plms/route", body={"title": title, "brief": brief}))

    def lane_overrides(self, min_repeats: int = 3) -> list[OverrideProposal]:
        data = self._request("GET", "plms/overrides", {"min_repeats": min_repeats})
        return [OverrideProposal.model_validate(p) for p in data["overrides"]]

    def accept_override(self, override_id: str) -> LaneOverride:
        data = self._request("POST", "plms/overrides", body={"accept": override_id})
        return LaneOverride.model_validate(data["override"])

    def passport(self, run_id: str) -> Passport:
        return Passport.model_validate(self._request("GET", f"runs/{run_id}"))

    def replay(self, run_id: str, dry_run: bool = False) -> ReplayReport:
        return ReplayReport.model_validate(
            self._request("POST", f"runs/{run_id}/replay", body={"dry_run": dry_run}, timeout=3600))

    def pas_health(self) -> dict:
        return self._request("GET", "pas/health")

    def proposals(self) -> list[Proposal]:
        return [Proposal.model_validate(p) for p in self._request("GET", "proposals")["proposals"]]

    def proposal(self, proposal_id: str) -> Proposal:
        return Proposal.model_validate(self._request("GET", f"proposals/{urllib.parse.quote(proposal_id, safe='')}"))

    def proposal_action(self, proposal_id: str, action: str) -> Proposal:
        path = f"proposals/{urllib.parse.quote(proposal_id, safe='')}/{action}"
        return Proposal.model_validate(self._request("POST", path, body={}))


class DaemonClient:
    """`Client` for a one-shot process while a daemon owns the store's socket: the index queries
    go to the daemon, everything else (and everything once the daemon is gone) to `fallback()`,
    an in-process engine built on first need."""

    transport = "daemon"

    def __init__(self, store_dir: str | Path, fallback: Callable[[], Client], timeout: float = 30):
        self.store_dir = Path(store_dir)
        self.path = daemon_socket.socket_path(self.store_dir)
        self._make_fallback = fallback
        self._fallback: Client | None = None
        self._gone = False
        self.timeout = timeout
        self.root: str | None = None

    @property
    def fallback(self) -> Client:
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback

    def __getattr__(self, name: str) -> Any:
        # The calls no daemon serves (index, chat, tasks, ...): the in-process engine's own.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.fallback, name)

    def _call(self, method: str, params: dict) -> Any:
        """The daemon's result (JSON), or the fallback's answer (a model) when the daemon is gone."""
        if not self._gone:
            try:
                reply = daemon_socket.request(self.path, method, params, timeout=self.timeout)
            except daemon_socket.DaemonGone as exc:
                log.debug("the daemon of %s is gone (%s): answering in-process", self.store_dir, exc)
                self._gone = True
                daemon_socket.remove_stale(self.store_dir)
            else:
                if "error" in reply:
                    err = reply["error"] if isinstance(reply["error"], dict) else {}
                    raise from_reply(int(err.get("status") or 500), err)
                return reply["result"]
        return _Local(getattr(self.fallback, method)(**params))

    def health(self) -> dict:
        out = self._call("health", {})
        return out.value if isinstance(out, _Local) else out

    def status(self) -> IndexStatus:
        out = self._call("status", {})
        return out.value if isinstance(out, _Local) else IndexStatus.model_validate(out)

    def search(self, query: str, k: int = 10, mode: str = DEFAULT_SEARCH_MODE) -> list[Hit]:
        out = self._call("search", {"query": query, "k": k, "mode": mode})
        return out.value if isinstance(out, _Local) else _HITS.validate_python(out)

    def graph(self, symbol: str, direction: str = DEFAULT_GRAPH_DIRECTION, depth: int = 1, max_nodes: int = 150,
              code: bool = False) -> GraphResult:
        out = self._call("graph", {"symbol": symbol, "direction": direction, "depth": depth,
                                   "max_nodes": max_nodes, "code": code})
        return out.value if isinstance(out, _Local) else GraphResult.model_validate(out)

    def path(self, source: str, target: str) -> list[GraphNode]:
        out = self._call("path", {"source": source, "target": target})
        return out.value if isinstance(out, _Local) else [GraphNode.model_validate(n) for n in out]

    def repo_map(self, tokens: int = 1024, focus: list[str] | None = None) -> str:
        out = self._call("repo_map", {"tokens": tokens, "focus": focus})
        return out.value if isinstance(out, _Local) else str(out)

    def complete(self, prefix: str, limit: int = 30) -> list[str]:
        out = self._call("complete", {"prefix": prefix, "limit": limit})
        return out.value if isinstance(out, _Local) else [str(n) for n in out]

    def inspect(self, symbol: str) -> dict:
        out = self._call("inspect", {"symbol": symbol})
        return out.value if isinstance(out, _Local) else out


class _Local:
    """An answer the in-process fallback gave (already a model), told apart from the daemon's JSON."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def default_root(start: str | Path | None = None) -> Path:
    """The git work tree containing `start` (default: the working directory), else `start` itself."""
    here = Path(start or os.getcwd()).resolve()
    return git.work_tree(here) or here


def connect(root: str | Path | None = None, *, store: str | Path | None = None, prefer_server: bool = True,
            notices: list[str] | None = None, one_shot: bool = False, dense_queries: bool = False) -> Client:
    """A client: the server named by DIRENG_SERVER_URL if it answers (and no `root` was asked
    for), else an engine in this process.

    `one_shot`: the caller runs one command and exits (the CLI). Then a daemon owning the
    store's socket answers the index queries (`DaemonClient`; `DIRENG_DAEMON=off` never asks
    one), and the in-process engine is a `one_shot` one: hybrid queries leave MiniLM out unless
    `dense_queries`, noting it in `notices`."""
    url = os.environ.get("DIRENG_SERVER_URL")
    if prefer_server and url and root is None:
        client = HttpClient(url, os.environ.get("DIRENG_TOKEN"))
        try:
            health = client.health(timeout=3)
            client.root = health.get("root")
            return client
        except (OSError, DirEngError, ValueError) as exc:
            msg = f"DirEng server at {url} is unreachable ({exc}); using an in-process engine instead"
            log.warning(msg)
            if notices is not None:
                notices.append(msg)
    root = root or os.environ.get("DIRENG_ROOT") or default_root()

    def engine() -> Client:
        from .engine import Engine  # the in-process transport pulls in the whole engine: only when chosen

        return Engine(root, store=store, policy_path=os.environ.get("DIRENG_POLICY"), link_base=os.getcwd(),
                      one_shot=one_shot, dense_queries=dense_queries if one_shot else None, notices=notices)

    if one_shot and os.environ.get("DIRENG_DAEMON", "").lower() not in ("0", "off", "no", "false"):
        store_dir = IndexSettings.for_root(root, store).store
        if daemon_socket.socket_path(store_dir).exists():
            client = DaemonClient(store_dir, engine)
            client.root = str(Path(root).expanduser().resolve())
            return client
    return engine()
