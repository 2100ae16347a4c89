"""The Jupyter server extension, end to end: a real `jupyter server` subprocess on a git copy
of the sample repository, called over HTTP with and without Jupyter's token.

One server (module-scoped) runs the refresh daemon and answers every endpoint; a second one,
started with an invalid policy file and no indexing, shows that a bad policy degrades
`health` instead of stopping the server, and that queries before the first index are 409s.
A kernel started through `/api/kernels` proves kernels inherit the server's URL and token:
inside it, `direng_kernel.client.connect()` picks the server transport by itself.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from conftest import expected_sandbox_mode, make_repo
from direng_kernel.models import PROPOSAL_ACTIONS, TASK_ACTIONS

pytestmark = pytest.mark.timeout(240)

READY_TIMEOUT = 60
INDEX_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `jupyter server` (or, with `app="jupyterlab"`, a JupyterLab) subprocess with the DirEng
    extension, and an HTTP helper for it."""

    def __init__(self, root: Path, workdir: Path, *extra: str, app: str = "jupyter_server"):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime_dir = workdir / "runtime"
        self.log_path = workdir / "server.log"
        env = dict(os.environ)
        for name in ("DIRENG_SERVER_URL", "DIRENG_TOKEN", "DIRENG_ROOT", "DIRENG_STORE", "DIRENG_POLICY"):
            env.pop(name, None)
        env.update(JUPYTER_RUNTIME_DIR=str(self.runtime_dir), JUPYTER_CONFIG_DIR=str(workdir / "config"),
                   JUPYTERLAB_SETTINGS_DIR=str(workdir / "lab-settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(workdir / "lab-workspaces"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
        cmd = [sys.executable, "-m", app, f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={self.token}", "--ServerApp.open_browser=False",
               "--allow-root", f"--ServerApp.root_dir={root}",
               *([] if any(e.startswith("--ServerApp.jpserver_extensions") for e in extra)
                 else ['--ServerApp.jpserver_extensions={"direng_kernel": True}']), *extra]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def request(self, method: str, path: str, params: dict | None = None, body=None, token: str | None = "",
                raw: bytes | None = None, base: str | None = None, timeout: float = 60,
                headers: dict | None = None) -> tuple[int, dict]:
        """(status, JSON reply); `token=""` means this server's token, `None` no token at all."""
        url = (base or self.url + "/direng/api").rstrip("/") + "/" + path.lstrip("/")
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if method == "POST" and data is None:
            data = b""
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        token = self.token if token == "" else token
        if token is not None:
            req.add_header("Authorization", f"token {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                return err.code, json.loads(text)
            except ValueError:
                pytest.fail(f"{method} {path} → {err.code} with a non-JSON body: {text[:300]!r}")

    def get(self, path: str, **params) -> tuple[int, dict]:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body=None, **kw) -> tuple[int, dict]:
        return self.request("POST", path, body=body, **kw)

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, data = self.request("GET", "health", timeout=5)
                if status == 200:
                    return data
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.25)
        pytest.fail(f"/direng/api/health did not answer within {READY_TIMEOUT}s:\n{self.log_tail()}")

    def wait_indexed(self) -> dict:
        deadline = time.monotonic() + INDEX_TIMEOUT
        while time.monotonic() < deadline:
            status, data = self.get("index/status")
            if status == 200 and data["files"] > 0 and self.get("health")[1].get("indexed"):
                return data
            time.sleep(0.25)
        pytest.fail(f"the index was not built within {INDEX_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@contextmanager
def running_server(work: Path, *extra: str, root: Path | None = None, indexed: bool = True,
                   app: str = "jupyter_server") -> Iterator[Server]:
    """A server on `root` (default: a fresh copy of the sample repository in `work`), ready — and
    indexed, unless `indexed` is False — and stopped afterwards."""
    srv = Server(root or make_repo(work / "repo"), work, *extra, app=app)
    try:
        srv.wait_ready()
        if indexed:
            srv.wait_indexed()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("server"), "--DirEngExtension.watch=True") as srv:
        yield srv


@pytest.fixture(scope="module")
def bad_policy_server(tmp_path_factory):
    """No daemon, no indexing on start, and a policy file that is not even JSON."""
    work = tmp_path_factory.mktemp("badpolicy")
    root = make_repo(work / "repo")
    bad = work / "bad-policy.json"
    bad.write_text('{"providers": [ this is not json')
    srv = Server(root, work, f"--DirEngExtension.policy_file={bad}", "--DirEngExtension.watch=False",
                 "--DirEngExtension.index_on_start=False")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


# -- health, index ---------------------------------------------------------------------------------

@pytest.mark.e2e("GET /health")
def test_health(server):
    status, data = server.get("health")
    assert status == 200
    assert data["status"] == "ok" and data["indexed"] is True
    assert Path(data["root"]) == server.root.resolve()
    assert data["version"]
    assert data["policy"]["valid"] is True and data["policy"]["errors"] == []
    assert data["daemon"]["running"] is True


def test_kernel_env_points_at_this_server(server):
    _, data = server.get("health")
    env = data["kernel_env"]
    assert env["DIRENG_SERVER_URL"] == f"{server.url}/direng/api"
    assert env["DIRENG_TOKEN_SET"] is True and "DIRENG_TOKEN" not in env  # never the token itself
    assert Path(env["DIRENG_ROOT"]) == server.root.resolve()
    status, again = server.request("GET", "health", base=env["DIRENG_SERVER_URL"])
    assert status == 200 and again["root"] == data["root"]


@pytest.mark.e2e("GET /index/status")
def test_index_status(server):
    status, data = server.get("index/status")
    assert status == 200
    assert data["files"] >= 8 and data["symbols"] > 10 and data["chunks"] > 0
    assert Path(data["root"]) == server.root.resolve()
    assert data["head_commit"]


# -- search ----------------------------------------------------------------------------------------

def test_search(server):
    status, data = server.get("search", q="charge a credit card", k=5)
    assert status == 200
    hits = data["hits"]
    assert 0 < len(hits) <= 5
    assert any(h["path"] == "shop/payment.py" and h["symbol"] == "charge_card" for h in hits[:3])
    assert {"path", "symbol", "start_line", "end_line", "score", "kind"} <= set(hits[0])


def test_search_modes(server):
    status, data = server.get("search", q="charge_card", mode="bm25", k=3)
    assert status == 200 and data["hits"][0]["path"] == "shop/payment.py"


@pytest.mark.parametrize("params", [{}, {"q": "  "}, {"q": "x", "k": "many"}, {"q": "x", "k": "0"},
                                    {"q": "x", "mode": "psychic"}])
def test_search_bad_input_is_400(server, params):
    status, data = server.get("search", **params)
    assert status == 400
    assert data["status"] == 400 and data["message"]


# -- graph ------------------------------------------------------------------------------------------

@pytest.mark.e2e("GET /graph/{symbol}")
def test_graph_callers(server):
    status, data = server.get("graph/charge_card", direction="callers")
    assert status == 200
    names = {n["name"] for n in data["nodes"]}
    assert "checkout" in names
    assert data["center"].endswith("charge_card")
    assert any(e["kind"] == "calls" for e in data["edges"])
    assert "code" not in data


def test_graph_path_encoded_symbol_with_code(server):
    symbol = "shop/payment.py::charge_card"
    quoted = urllib.parse.quote(symbol, safe="")
    status, data = server.get(f"graph/{quoted}", direction="callers", code=1)
    assert status == 200, data
    assert data["center"] == symbol
    assert "def charge_card" in data["code"][symbol]
    # the same symbol with a literal '/' in the path also reaches the handler
    status, plain = server.get(f"graph/{urllib.parse.quote(symbol)}", direction="callers")
    assert status == 200 and plain["center"] == symbol


def test_graph_unknown_symbol_is_404_with_suggestions(server):
    status, data = server.get("graph/charge_crad")
    assert status == 404
    assert data["status"] == 404 and "unknown symbol" in data["message"]
    assert "charge_card" in " ".join(data["suggestions"])


@pytest.mark.parametrize("params", [{"direction": "sideways"}, {"depth": "-1"}, {"max_nodes": "x"},
                                    {"code": "maybe"}])
def test_graph_bad_input_is_400(server, params):
    status, data = server.get("graph/charge_card", **params)
    assert status == 400 and data["message"]


# -- chat --------------------------------------------------------------------------------------------

@pytest.mark.e2e("POST /chat", "GET /chat/history", "POST /chat/reset")
def test_chat_history_reset(server):
    status, answer = server.post("chat", {"message": "what calls charge_card?", "session": "t-chat"})
    assert status == 200
    assert "shop/payment.py" in answer["markdown"]
    assert answer["intent"] and isinstance(answer["citations"], list)

    status, data = server.get("chat/history", session="t-chat")
    assert status == 200
    roles = [m["role"] for m in data["messages"]]
    assert "user" in roles and "assistant" in roles
    assert any("charge_card" in m["content"] for m in data["messages"] if m["role"] == "user")

    assert server.post("chat/reset", {"session": "t-chat"}) == (200, {"ok": True})
    assert server.get("chat/history", session="t-chat") == (200, {"messages": []})


def test_chat_bad_body_is_400(server):
    assert server.post("chat", raw=b"{not json")[0] == 400
    assert server.post("chat", {"session": "x"})[0] == 400
    assert server.post("chat", ["a list"])[0] == 400


# -- symbols -----------------------------------------------------------------------------------------

@pytest.mark.e2e("GET /symbols/complete")
def test_complete(server):
    status, data = server.get("symbols/complete", prefix="Cart.")
    assert status == 200
    assert "Cart.total" in data["matches"]
    assert all(m.lower().startswith("cart.") for m in data["matches"])


@pytest.mark.e2e("GET /symbols/inspect")
def test_inspect(server):
    status, data = server.get("symbols/inspect", symbol="charge_card")
    assert status == 200
    assert data["path"] == "shop/payment.py"
    assert "credit card" in data["docstring"]
    assert any("checkout" in c for c in data["callers"])
    status, data = server.get("symbols/inspect", symbol="no_such_thing_anywhere")
    assert status == 404 and "suggestions" in data
    assert server.get("symbols/inspect")[0] == 400


# -- policy ------------------------------------------------------------------------------------------

def _broken(policy: dict) -> dict:
    """The same keys with values of the wrong type."""
    wrong = {dict: 42, list: "not a list", str: ["not", "a", "string"], int: "NaN", float: "NaN", bool: "yes"}
    return {k: wrong.get(type(v), {"unexpected": True}) for k, v in policy.items()}


def test_policy_get_and_validate(server):
    status, data = server.get("policy")
    assert status == 200
    assert data["valid"] is True and data["errors"] == [] and data["path"] is None
    policy = data["policy"]
    assert isinstance(policy, dict) and policy

    status, ok = server.post("policy", {"policy": policy})
    assert status == 200 and ok == {"valid": True, "issues": [], "applied": False}

    status, bad = server.post("policy", {"policy": _broken(policy)})
    assert status == 200
    assert bad["valid"] is False and bad["applied"] is False and bad["issues"]
    assert all("message" in issue for issue in bad["issues"])

    # applying a changed policy switches to it (the next GET shows it, the change is audited) ...
    from direng_kernel.broker.policy import Policy
    from direng_kernel.security.audit import read_records

    changed = {**policy, "description": f"changed by the test {secrets.token_hex(4)}"}
    status, applied = server.post("policy", {"policy": changed, "apply": True})
    assert (status, applied) == (200, {"valid": True, "issues": [], "applied": True})
    status, now = server.get("policy")
    assert status == 200 and now["policy"] == changed and now["valid"] is True
    changes = [r for r in read_records() if r["event"] == "policy.change"]
    assert changes and changes[-1]["data"]["policy_sha256"] == Policy.model_validate(changed).hash
    # ... an invalid one with apply: true changes nothing ...
    status, refused = server.post("policy", {"policy": _broken(policy), "apply": True})
    assert status == 200 and refused["applied"] is False and refused["valid"] is False
    assert server.get("policy")[1]["policy"] == changed
    # ... and applying the original brings it back (other tests share this server)
    assert server.post("policy", {"policy": policy, "apply": True})[1]["applied"] is True
    assert server.get("policy")[1]["policy"] == policy


def test_policy_bad_body_is_400(server):
    assert server.post("policy", raw=b"this is not json")[0] == 400
    assert server.post("policy", {"policy": "nope"})[0] == 400
    assert server.post("policy", {"policy": {}, "apply": "please"})[0] == 400


# -- refresh: a new file becomes searchable ----------------------------------------------------------

@pytest.mark.e2e("POST /index/refresh")
def test_refresh_makes_new_file_searchable(server):
    (server.root / "shop" / "refunds.py").write_text(
        '"""Refunds."""\n\n\ndef issue_refund(order_id: str, amount_cents: int) -> str:\n'
        '    """Refund a customer\'s order back to the original credit card."""\n'
        '    return f"refund-{order_id}-{amount_cents}"\n')
    status, report = server.post("index/refresh")
    assert status == 200
    assert Path(report["root"]) == server.root.resolve() and "seconds" in report
    status, data = server.get("search", q="issue_refund refund order", k=5)
    assert status == 200
    assert any(h["path"] == "shop/refunds.py" and h["symbol"] == "issue_refund" for h in data["hits"])


# -- auth ----------------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "health", None), ("GET", "index/status", None), ("POST", "index/refresh", None),
    ("GET", "search?q=card", None), ("GET", "graph/charge_card", None), ("POST", "chat", {"message": "hi"}),
    ("POST", "chat/reset", {}), ("GET", "chat/history", None), ("GET", "policy", None),
    ("POST", "policy", {"policy": {}}), ("GET", "symbols/complete?prefix=C", None),
    ("GET", "symbols/inspect?symbol=charge_card", None),
]


@pytest.mark.parametrize("method,path,body", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_no_token_is_rejected(server, method, path, body):
    status, data = server.request(method, path, body=body, token=None)
    assert status in (401, 403)
    assert data["status"] == status and data["message"]


@pytest.mark.parametrize("path", ["health", "search?q=card", "policy"])
def test_wrong_token_is_rejected(server, path):
    status, _ = server.request("GET", path, token="not-" + server.token)
    assert status in (401, 403)


# -- kernels inherit the server ----------------------------------------------------------------------

KERNEL_PROBE = """
import json, os
from direng_kernel.client import connect
_c = connect()
print("PROBE" + json.dumps({
    "url": os.environ.get("DIRENG_SERVER_URL"), "token": os.environ.get("DIRENG_TOKEN"),
    "root": os.environ.get("DIRENG_ROOT"), "transport": _c.transport,
    "hits": [h.path for h in _c.search("charge a credit card", k=3)]}))
"""


def run_in_kernel(server, code: str) -> str:
    from jupyter_client import BlockingKernelClient

    status, kernel = server.post("/api/kernels", {"name": "python3"}, base=server.url)
    assert status == 201, kernel
    client = None
    try:
        connection_file = server.runtime_dir / f"kernel-{kernel['id']}.json"
        deadline = time.monotonic() + 30
        while not connection_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for attempt in range(3):
            client = BlockingKernelClient()
            client.load_connection_file(str(connection_file))
            client.start_channels()
            try:
                client.wait_for_ready(timeout=60)
                break
            except RuntimeError as err:
                # "died" can be a heartbeat missed while the kernel starts on a loaded machine:
                # connect again while the server still has the kernel alive
                client.stop_channels()
                status, info = server.request("GET", f"/api/kernels/{kernel['id']}", base=server.url)
                if attempt == 2 or "died" not in str(err) or status != 200 or info.get("execution_state") == "dead":
                    client = None
                    pytest.fail(f"kernel {kernel['id']} not ready ({info}): {err}\n{server.log_tail(30)}")
        out: list[str] = []

        def on_output(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = client.execute_interactive(code, timeout=60, output_hook=on_output)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text
        return text
    finally:
        if client is not None:
            client.stop_channels()
        server.request("DELETE", f"/api/kernels/{kernel['id']}", base=server.url)


def test_kernel_reaches_server_without_setup(server):
    text = run_in_kernel(server, KERNEL_PROBE)
    probe = json.loads(text.split("PROBE", 1)[1])
    assert probe["url"] == f"{server.url}/direng/api"
    assert probe["token"] != server.token and probe["token"].count(".") == 2  # a scoped JWT, not the server's
    assert Path(probe["root"]) == server.root.resolve()
    assert probe["transport"] == "server"
    assert "shop/payment.py" in probe["hits"]


# -- a bad policy file, and a server that has not indexed yet ------------------------------------------

def test_invalid_policy_file_degrades_health(bad_policy_server):
    srv = bad_policy_server
    status, data = srv.get("health")
    assert status == 200
    assert data["status"] == "degraded"
    assert data["policy"]["valid"] is False and data["policy"]["errors"]
    assert data["policy"]["path"].endswith("bad-policy.json")
    assert data["daemon"]["running"] is False
    status, policy = srv.get("policy")
    assert status == 200 and policy["valid"] is False and policy["errors"]
    assert policy["policy"]  # the default policy is in force meanwhile


def test_not_indexed_is_409_until_refresh(bad_policy_server):
    srv = bad_policy_server
    status, data = srv.get("search", q="charge a credit card")
    assert status == 409 and data["status"] == 409 and "not indexed" in data["message"]
    assert srv.get("graph/charge_card")[0] == 409
    status, report = srv.post("index/refresh")
    assert status == 200 and report["added"] >= 8
    status, data = srv.get("search", q="charge a credit card")
    assert status == 200 and data["hits"][0]["path"] == "shop/payment.py"


# -- error replies, in process ------------------------------------------------------------------------

def _error_reply(exc: BaseException, status: int) -> tuple[int, dict]:
    """What a DirEng handler writes for `exc` (tornado's own send_error path, no server)."""
    from unittest.mock import MagicMock

    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
    from tornado.web import Application

    from direng_kernel.server.handlers.base import DirEngHandler

    conn = MagicMock()
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/direng/api/x", "HTTP/1.1"),
                                 headers=HTTPHeaders({"Host": "127.0.0.1"}), connection=conn)
    handler = DirEngHandler(Application(), request)
    handler._transforms = []  # set by tornado's request dispatch, which this bypasses
    try:
        raise exc
    except BaseException:
        handler.send_error(status, exc_info=sys.exc_info())
    start_line, _headers, chunk = conn.write_headers.call_args.args
    return start_line.code, json.loads(chunk)


def test_unexpected_exception_is_one_line_json_500():
    code, data = _error_reply(RuntimeError("boom\n  File 'secret.py', line 3"), 500)
    assert code == 500
    assert data == {"status": 500, "code": "internal", "message": "internal error: RuntimeError: boom"}


def test_engine_errors_map_to_statuses():
    from direng_kernel.errors import NotIndexedError, StoreError, UnknownSymbolError
    from direng_kernel.server.handlers.base import to_api_error

    cases = [(NotIndexedError("not indexed yet"), 409, {"code": "not_indexed"}),
             (UnknownSymbolError("chrage", ["charge_card"]), 404,
              {"code": "unknown_symbol", "name": "chrage", "suggestions": ["charge_card"]}),
             (StoreError("store is unreadable"), 400, {"code": "store_unreadable"})]
    for exc, status, extra in cases:
        api = to_api_error(exc)
        assert _error_reply(api, api.status_code) == (status, {"status": status, "message": str(exc), **extra})


def test_error_replies_rebuild_the_same_exception_on_the_client():
    """What crosses the HTTP boundary is structured: the client rebuilds the engine's exception
    from `code` (and `name`, `suggestions`), never by splitting the message."""
    from direng_kernel.errors import (NotFoundError, NotIndexedError, RemoteError, UnknownSymbolError,
                                      from_reply)
    from direng_kernel.pex.store import TaskNotFound
    from direng_kernel.server.handlers.base import to_api_error

    for exc in (UnknownSymbolError("it's 'odd'", ["charge_card", "Cart.total"]), NotIndexedError("no index"),
                TaskNotFound("no task 't-1'")):
        api = to_api_error(exc)
        status, payload = _error_reply(api, api.status_code)
        back = from_reply(status, payload)
        assert str(back) == str(exc)
        if isinstance(exc, UnknownSymbolError):
            assert type(back) is UnknownSymbolError
            assert (back.name, back.suggestions) == (exc.name, exc.suggestions)  # a quote in the name survives
        elif isinstance(exc, NotIndexedError):
            assert type(back) is NotIndexedError
        else:
            assert isinstance(back, NotFoundError) and back.code == "task_not_found"
    other = from_reply(400, {"status": 400, "code": "illegal_transition", "message": "cannot approve a new task"})
    assert isinstance(other, RemoteError) and other.code == "illegal_transition" and other.status == 400


def test_openapi_documents_every_route():
    from direng_kernel.server.handlers import API_PREFIX, routes

    spec = yaml.safe_load((Path(__file__).parents[1] / "docs" / "api.yaml").read_text())
    assert spec["openapi"].startswith("3.1")
    served = set()
    for pattern, handler in routes():
        path = (pattern[len(API_PREFIX):].replace("(.+)", "{symbol}")
                .replace(f"({'|'.join(TASK_ACTIONS)})", "{action}")
                .replace(f"({'|'.join(PROPOSAL_ACTIONS)})", "{action}").replace(r"([\w-]+)", "{id}"))
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(handler):
                served.add((path, method))
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops
                  if method in ("get", "post", "put", "patch", "delete")}
    assert served == documented


# -- delegation over REST: the server's PAS workers run the task ---------------------------------

@pytest.mark.e2e("POST /tasks", "POST /tasks/{id}/estimate", "POST /tasks/{id}/approve", "POST /tasks/{id}/start",
                 "GET /tasks/{id}", "GET /tasks/{id}/events", "GET /runs", "GET /runs/{id}", "POST /runs/{id}/replay")
def test_tasks_rest_lifecycle_with_idempotency_key(server):
    body = {"title": "document the public API of the shop package"}
    status, task = server.request("POST", "tasks", body=body)
    assert status == 201 and task["lane"] == "narrative" and task["state"] == "new", (task, server.log_tail(60))
    keyed = {"title": "keyed", "lane": "graph-ops"}
    first = server.request("POST", "tasks", body=keyed, headers={"Idempotency-Key": "rest-k"})
    again = server.request("POST", "tasks", body=keyed | {"title": "other"}, headers={"Idempotency-Key": "rest-k"})
    assert first[0] == 201 and again[0] == 200 and first[1]["id"] == again[1]["id"]
    assert again[1]["title"] == "keyed"

    tid = task["id"]
    assert server.post(f"tasks/{tid}/approve")[0] == 400  # must be estimated first
    status, est = server.post(f"tasks/{tid}/estimate")
    assert status == 200 and est["state"] == "estimated" and est["estimate"]["duration_p90_s"] > 0
    assert server.post(f"tasks/{tid}/approve")[1]["state"] == "approved"
    assert server.post(f"tasks/{tid}/start")[1]["state"] in ("queued", "running")
    seen, deadline, state = 0, time.monotonic() + 180, None
    messages = []
    while time.monotonic() < deadline:
        _, data = server.get(f"tasks/{tid}/events", after=seen)
        for ev in data["events"]:
            seen = ev["seq"]
            messages.append(ev["message"])
        state = server.get(f"tasks/{tid}")[1]["state"]
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.3)
    assert state == "succeeded", messages
    assert any(m.startswith("running on") for m in messages)  # the server's worker claimed it
    run_id = server.get(f"tasks/{tid}")[1]["run_id"]
    runs = server.get("runs")[1]["runs"]
    assert any(r["id"] == run_id and r["kpis"].get("docs_coverage") is not None for r in runs)
    status, passport = server.get(f"runs/{run_id}")
    assert status == 200 and passport["lane"] == "narrative" and passport["status"] == "succeeded"
    assert passport["sandbox"] == expected_sandbox_mode()
    status, report = server.post(f"runs/{run_id}/replay", {"dry_run": True})
    assert status == 200 and report["match"] is True


def test_tasks_rest_bad_input(server):
    assert server.get("tasks/task-nope")[0] == 404
    assert server.get("runs/run-nope")[0] == 404
    assert server.post("tasks", {"title": "x", "lane": "nope"})[0] == 400
    assert server.post("tasks", {"brief": "no title"})[0] == 400
    assert server.post("tasks", {"title": "x", "parameters": [1]})[0] == 400


@pytest.mark.e2e("GET /pas/health")
def test_pas_health(server):
    status, health = server.get("pas/health")
    assert status == 200 and health["workers"]["running"] is True
    assert health["sandbox"]["mode"] == expected_sandbox_mode()  # bubblewrap wherever it is required
    assert set(health["lanes"]) == {"code-impl", "code-api-design", "data-schema", "vector-ops", "graph-ops",
                                     "narrative"}
