"""One client interface, two transports: the server's REST API, or an engine in this process.

Kernels started by a Jupyter server with the DirEng extension inherit `DIRENG_SERVER_URL` and
`DIRENG_TOKEN`, so `connect()` talks to the server's engine (shared index, refresh daemon,
broker). Anywhere else — plain IPython, papermill, CI — or when the server does not answer,
it builds the same engine in-process on the git root of the working directory (or `root`),
with a one-line notice saying so. The caller never sees the difference: both return the
same pydantic models.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import DirEngError, NotIndexedError, UnknownSymbolError
from .models import Answer, ChatMessage, GraphResult, Hit, IndexReport, IndexStatus, Task, TaskEvent

log = logging.getLogger(__name__)


class ServerError(DirEngError):
    """The server answered with an error."""


class InProcessClient:
    transport = "in-process"

    def __init__(self, root: str | Path, store: str | Path | None = None, link_base: str | None = None,
                 policy_path: str | Path | None = None):
        from .engine import Engine

        policy_path = policy_path or os.environ.get("DIRENG_POLICY")
        self.engine = Engine(root, store=store, policy_path=policy_path, link_base=link_base)
        self.root = self.engine.root

    def health(self) -> dict:
        return self.engine.health()

    def status(self) -> IndexStatus:
        return self.engine.status()

    def index(self, progress: bool = False) -> IndexReport:
        return self.engine.refresh(progress=progress)

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        return self.engine.search(query, k=k, mode=mode)

    def graph(self, symbol: str, direction: str = "both", depth: int = 1, max_nodes: int = 150,
              code: bool = False) -> tuple[GraphResult, dict[str, str]]:
        g = self.engine.graph(symbol, direction=direction, depth=depth, max_nodes=max_nodes)
        return g, (self.engine.code([n.id for n in g.nodes]) if code else {})

    def chat(self, message: str, session: str = "default") -> Answer:
        return self.engine.chat(message, session=session)

    def history(self, session: str = "default") -> list[ChatMessage]:
        return self.engine.history(session)

    def reset(self, session: str = "default") -> None:
        self.engine.reset(session)

    def complete(self, prefix: str, limit: int = 30) -> list[str]:
        return self.engine.complete(prefix, limit)

    def inspect(self, symbol: str) -> dict:
        return self.engine.inspect(symbol)

    # -- delegation --
    def new_task(self, title: str, brief: str = "", lane: str | None = None, parameters: dict | None = None,
                 idempotency_key: str | None = None) -> Task:
        return self.engine.new_task(title, brief, lane, parameters, idempotency_key)[0]

    def task_action(self, task_id: str, action: str) -> Task:
        return self.engine.task_action(task_id, action)

    def task(self, task_id: str) -> Task:
        return self.engine.task(task_id)

    def task_events(self, task_id: str, after: int = 0) -> list[TaskEvent]:
        return self.engine.task_events(task_id, after)

    def runs(self) -> list[dict]:
        return self.engine.runs()

    def store_dir(self) -> str:
        return str(self.engine.workbench.settings.store)

    def watch(self):
        """Start the refresh daemon in this process (returns it; `.stop()` ends it)."""
        from .index.refresh import RefreshDaemon

        return RefreshDaemon(self.engine.workbench).start()


class HttpClient:
    transport = "server"

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60):
        self.base = base_url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.root = None

    def _request(self, method: str, path: str, params: dict | None = None, body: dict | None = None,
                 timeout: float | None = None):
        url = urllib.parse.urljoin(self.base, path)
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                payload = json.loads(err.read() or b"{}")
            except ValueError:
                payload = {}
            message = payload.get("message") or f"HTTP {err.code}"
            if err.code == 404 and "suggestions" in payload:
                name = message.split("'")[1] if "'" in message else message
                raise UnknownSymbolError(name, payload["suggestions"]) from None
            if err.code == 409:
                raise NotIndexedError(message) from None
            raise ServerError(message) from None

    def health(self, timeout: float | None = None) -> dict:
        return self._request("GET", "health", timeout=timeout)

    def status(self) -> IndexStatus:
        return IndexStatus.model_validate(self._request("GET", "index/status"))

    def index(self, progress: bool = False) -> IndexReport:
        return IndexReport.model_validate(self._request("POST", "index/refresh", timeout=3600))

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        data = self._request("GET", "search", {"q": query, "k": k, "mode": mode})
        return [Hit.model_validate(h) for h in data["hits"]]

    def graph(self, symbol: str, direction: str = "both", depth: int = 1, max_nodes: int = 150,
              code: bool = False) -> tuple[GraphResult, dict[str, str]]:
        data = self._request("GET", "graph/" + urllib.parse.quote(symbol, safe=""),
                             {"direction": direction, "depth": depth, "max_nodes": max_nodes, "code": int(code)})
        snippets = data.pop("code", {}) or {}
        return GraphResult.model_validate(data), snippets

    def chat(self, message: str, session: str = "default") -> Answer:
        return Answer.model_validate(self._request("POST", "chat", body={"message": message, "session": session}))

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
                 idempotency_key: str | None = None) -> Task:
        body = {"title": title, "brief": brief, "lane": lane, "parameters": parameters or {},
                "idempotency_key": idempotency_key}
        return Task.model_validate(self._request("POST", "tasks", body=body))

    def task_action(self, task_id: str, action: str) -> Task:
        return Task.model_validate(self._request("POST", f"tasks/{task_id}/{action}", body={}))

    def task(self, task_id: str) -> Task:
        return Task.model_validate(self._request("GET", f"tasks/{task_id}"))

    def task_events(self, task_id: str, after: int = 0) -> list[TaskEvent]:
        data = self._request("GET", f"tasks/{task_id}/events", {"after": after})
        return [TaskEvent.model_validate(e) for e in data["events"]]

    def runs(self) -> list[dict]:
        return self._request("GET", "runs")["runs"]

    def store_dir(self) -> str:
        return str(Path(self.root or ".") / ".direng")


def default_root(start: str | Path | None = None) -> Path:
    """The git work tree containing `start` (default: the working directory), else `start` itself."""
    from .index import git

    here = Path(start or os.getcwd()).resolve()
    return git.work_tree(here) or here


def connect(root: str | Path | None = None, *, prefer_server: bool = True, notices: list[str] | None = None):
    """A client: the server named by DIRENG_SERVER_URL if it answers, else an in-process engine."""
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
    return InProcessClient(root or os.environ.get("DIRENG_ROOT") or default_root(), link_base=os.getcwd())
