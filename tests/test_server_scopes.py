"""DirEng tokens against a real `jupyter server`: every `/direng/api/` endpoint and method needs
its scope (403 naming it without, the normal answer with it), invalid tokens are 401s that never
fall back to Jupyter's login, Jupyter's own token still works, the JWKS verifies minted tokens,
lane tokens cannot approve or change policy, and kernels get a KERNEL_SCOPES JWT.

The server and this test share one keys directory (`DIRENG_KEYS_DIR`), so tokens minted here
are signed by the server's keys.
"""

from __future__ import annotations

import json
import time
import uuid
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import jwt
import pytest
import yaml

from direng_kernel import sse
from direng_kernel.models import PROPOSAL_ACTIONS, TASK_ACTIONS
from direng_kernel.security.scopes import ALL_SCOPES, KERNEL_SCOPES, LANE_SCOPES
from direng_kernel.security.tokens import current_username, mint, verify
from test_server import run_in_kernel, running_server

pytestmark = pytest.mark.timeout(180)

USER = current_username()
REPO = Path(__file__).resolve().parents[1]


# -- fixtures and helpers ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIRENG_KEYS_DIR", str(path))  # the server inherits it
        yield path


@pytest.fixture(scope="module")
def server(tmp_path_factory, keys_dir):
    with running_server(tmp_path_factory.mktemp("scoped-server"), "--DirEngExtension.watch=False",
                        "--DirEngExtension.run_tasks=False") as srv:
        yield srv


@pytest.fixture(scope="module")
def reader_task(server) -> str:
    """A new task that only reads look at: it never moves."""
    return fresh_task(server, "new")


def token_for(keys_dir, scopes, subject: str = USER, **kw) -> str:
    return mint(subject, list(scopes), ttl_s=kw.pop("ttl_s", 600), keys_dir=keys_dir, **kw)


def call(server, method: str, path: str, body=None, auth: str | None = None,
         headers: dict | None = None) -> tuple[int, dict, Message]:
    """(status, JSON reply, headers (case-insensitive)); `auth` is the whole Authorization header value."""
    url = server.url + (path if path.startswith("/") else "/direng/api/" + path)
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    if auth is not None:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.headers.get("Content-Type", "").startswith(sse.MEDIA_TYPE):  # an event stream: its events
                return resp.status, [(e.event, e.json()) for e in sse.parse(resp)], resp.headers
            return resp.status, json.loads(resp.read() or b"null"), resp.headers
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text), err.headers
        except ValueError:
            pytest.fail(f"{method} {path} → {err.code} with a non-JSON body: {text[:300]!r}")


# Every endpoint and method: (method, path with {task} for the test task, body, the scope it needs)
ENDPOINTS = [
    ("GET", "health", None, "index:read"),
    ("GET", "index/status", None, "index:read"),
    ("POST", "index/refresh", None, "index:write"),
    ("GET", "search?q=charge+card&k=3", None, "index:read"),
    ("GET", "graph/charge_card", None, "index:read"),
    ("GET", "path?from=checkout&to=charge_card", None, "index:read"),
    ("GET", "map?tokens=64", None, "index:read"),
    ("POST", "chat", {"message": "what calls charge_card?", "session": "scopes"}, "index:read"),
    ("POST", "chat/reset", {"session": "scopes"}, "index:read"),
    ("GET", "chat/history?session=scopes", None, "index:read"),
    ("GET", "policy", None, "index:read"),
    ("POST", "policy", {"policy": {}}, "policy:admin"),  # validate only: never applied
    ("GET", "symbols/complete?prefix=Cart.", None, "index:read"),
    ("GET", "symbols/inspect?symbol=charge_card", None, "index:read"),
    ("GET", "tasks", None, "tasks:read"),
    ("POST", "tasks", {"title": "scoped create", "lane": "graph-ops", "idempotency_key": "scopes-k"}, "tasks:write"),
    ("GET", "tasks/{task}", None, "tasks:read"),
    ("POST", "tasks/{task}/estimate", None, "tasks:write"),
    ("POST", "tasks/{task}/approve", None, "runs:execute"),
    ("POST", "tasks/{task}/start", None, "runs:execute"),
    ("POST", "tasks/{task}/cancel", None, "tasks:write"),
    ("GET", "tasks/{task}/events?after=0", None, "tasks:read"),
    ("GET", "tasks/{task}/events/stream?after=0", None, "tasks:read"),  # of a cancelled task: ends at once
    ("POST", "tasks/{task}/retry", None, "runs:execute"),  # the three answers to an escalation: a task
    ("POST", "tasks/{task}/change_lane", {"lane": "graph-ops"}, "tasks:write"),  # that is not escalated
    ("POST", "tasks/{task}/raise_budget", {"factor": 2}, "runs:execute"),  # is a 400, and does not move
    ("GET", "proposals", None, "index:read"),
    ("GET", "proposals/prop-000000000000", None, "index:read"),  # no such proposal: a 404
    ("POST", "proposals/prop-000000000000/apply", None, "runs:execute"),
    ("POST", "proposals/prop-000000000000/reject", None, "tasks:write"),
    ("GET", "runs", None, "tasks:read"),
    ("GET", "plms/history", None, "tasks:read"),
    ("GET", "plms/calibration?plot=0", None, "tasks:read"),
    ("POST", "plms/route", {"title": "find dead code in the shop package"}, "tasks:read"),
    ("GET", "plms/overrides", None, "tasks:read"),
    ("POST", "plms/overrides", {"accept": "ovr-00000000"}, "policy:admin"),  # no such proposal: a 404
    ("GET", "runs/run-nope", None, "tasks:read"),
    ("POST", "runs/run-nope/replay", {"dry_run": True}, "runs:replay"),
    ("GET", "pas/health", None, "tasks:read"),
]


#: A task action → (the state its task must be in, the state it leaves). `start` answers with the
#: task queued; this server owns no workers (`run_tasks=False`), so PEX runs it in a thread of the
#: server at once, and by the next read it may be running or done already (`AFTER`).
ACTIONS = {"estimate": ("new", "estimated"), "approve": ("estimated", "approved"),
           "start": ("approved", "queued"), "cancel": ("new", "cancelled"),
           "retry": ("new", "new"), "change_lane": ("new", "new"), "raise_budget": ("new", "new"),
           "events/stream": ("cancelled", "cancelled")}
AFTER = {"queued": {"queued", "running", "succeeded"}}
ROUTE_TO = {"new": [], "estimated": ["estimate"], "approved": ["estimate", "approve"], "cancelled": ["cancel"]}


def fresh_task(server, state: str) -> str:
    """A new narrative task, driven (with the server's Jupyter token) to `state`."""
    status, task = server.post("tasks", {"title": "document the shop package", "lane": "narrative"})
    assert status == 201, task
    for action in ROUTE_TO[state]:
        status, task = server.post(f"tasks/{task['id']}/{action}")
        assert status == 200, task
    assert task["state"] == state
    return task["id"]


def prepare(server, path: str, body, reader_task: str) -> tuple[str, object, str | None, tuple[str, str] | None]:
    """One call of an ENDPOINTS entry: (path, body, task id, (state before, state after)). Every call
    that moves a task gets its own, in the state its action needs (reads share `reader_task`), and
    every create its own idempotency key, so each answer is exact whatever order the tests run in."""
    task_id = states = None
    if "{task}" in path:
        rest = path.split("/", 2)
        action = rest[2].split("?")[0] if len(rest) > 2 else None
        states = ACTIONS.get(action, ("new", "new"))
        task_id = fresh_task(server, states[0]) if action in ACTIONS else reader_task
        path = path.replace("{task}", task_id)
    if isinstance(body, dict) and "idempotency_key" in body:
        body = {**body, "idempotency_key": f"scopes-{uuid.uuid4().hex}"}
    return path, body, task_id, states


def expected_status(method: str, path: str) -> int:
    """The normal answer of an endpoint in ENDPOINTS (there is no run `run-nope`; a fresh
    idempotency key creates a task)."""
    if "run-nope" in path or "prop-000000000000" in path or (method, path) == ("POST", "plms/overrides"):
        return 404
    if path.split("?")[0].rsplit("/", 1)[-1] in ("retry", "change_lane", "raise_budget"):
        return 400  # the task is not escalated
    if method == "POST" and path == "tasks":
        return 201
    return 200


def task_state(server, task_id: str) -> str:
    status, task = server.get(f"tasks/{task_id}")
    assert status == 200, task
    return task["state"]


def _route_key(pattern: str) -> str:
    """A route pattern as the docs write it (the same mapping as test_server's OpenAPI check)."""
    return (pattern.replace("(.+)", "{symbol}").replace(f"({'|'.join(TASK_ACTIONS)})", "{action}")
            .replace(f"({'|'.join(PROPOSAL_ACTIONS)})", "{action}")
            .replace(r"([\w-]+)", "{id}"))


def _endpoint_key(method: str, path: str) -> tuple[str, str]:
    path = "/" + path.split("?")[0]
    parts = path.split("/")
    if parts[1] == "graph":
        path = "/graph/{symbol}"
    elif parts[1] in ("tasks", "runs", "proposals") and len(parts) > 2:
        parts[2] = "{id}"
        if parts[1] in ("tasks", "proposals") and len(parts) > 3 and parts[3] != "events":  # events(/stream) stay
            parts[3] = "{action}"
        path = "/".join(parts)
    return path, method.lower()


# -- declarations (no server) ------------------------------------------------------------------------

def test_every_handler_method_declares_a_known_scope_matching_the_docs():
    from direng_kernel.server.handlers import API_PREFIX, routes
    from direng_kernel.server.handlers.proposals import PROPOSAL_SCOPES
    from direng_kernel.server.handlers.tasks import ACTION_SCOPES

    spec = yaml.safe_load((REPO / "docs" / "api.yaml").read_text())
    for pattern, handler in routes():
        path = _route_key(pattern[len(API_PREFIX):])
        for method in ("get", "post", "put", "patch", "delete"):
            if method not in vars(handler):
                continue
            documented = spec["paths"][path][method].get("x-required-scope")
            if getattr(handler, "public", False):
                assert path == "/.well-known/jwks.json" and documented is None
                continue
            declared = handler.scopes.get(method.upper())
            assert declared in ALL_SCOPES, (path, method)
            if path == "/tasks/{id}/{action}":
                assert documented == ACTION_SCOPES
                assert set(ACTION_SCOPES.values()) <= set(ALL_SCOPES)
            elif path == "/proposals/{id}/{action}":
                assert documented == PROPOSAL_SCOPES and set(PROPOSAL_SCOPES) == set(PROPOSAL_ACTIONS)
                assert set(PROPOSAL_SCOPES.values()) <= set(ALL_SCOPES)
            else:
                assert documented == declared, (path, method)


def test_the_endpoint_table_covers_every_route():
    from direng_kernel.server.handlers import API_PREFIX, routes

    served = {(_route_key(p[len(API_PREFIX):]), m) for p, h in routes() for m in ("get", "post", "put", "delete")
              if m in vars(h) and not getattr(h, "public", False)}
    assert {_endpoint_key(m, p) for m, p, _, _ in ENDPOINTS} == served


# -- every endpoint, every method ------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body,scope", ENDPOINTS, ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in ENDPOINTS])
def test_endpoint_needs_its_scope(server, keys_dir, reader_task, method, path, body, scope):
    template, expected = path, expected_status(method, path)
    path, body, task_id, states = prepare(server, template, body, reader_task)

    others = [s for s in ALL_SCOPES if s != scope]
    status, data, headers = call(server, method, path, body, auth=f"Bearer {token_for(keys_dir, others)}")
    assert status == 403, data
    assert data == {"status": 403, "code": "insufficient_scope", "message": f"missing scope {scope!r}", "missing_scope": scope}
    assert f'scope="{scope}"' in headers.get("WWW-Authenticate", "")
    if task_id:  # refused: the task did not move
        assert task_state(server, task_id) == states[0]

    # with the scope: the normal answer, and the action's effect (a create with the same key as the
    # refused call creates: the refusal did not)
    status, data, _ = call(server, method, path, body, auth=f"Bearer {token_for(keys_dir, [scope])}")
    assert status == expected, (status, data)
    if task_id:
        assert task_state(server, task_id) in AFTER.get(states[1], {states[1]})
        if states[0] != states[1]:
            assert data["id"] == task_id and data["state"] == states[1]

    good = token_for(keys_dir, ALL_SCOPES)
    status, data, headers = call(server, method, path, body, auth=f"Bearer {good[:-6]}AAAAAA")
    assert status == 401, data
    assert data["status"] == 401 and data["message"] == "invalid token: bad signature"
    assert "invalid_token" in headers.get("WWW-Authenticate", "")

    # Jupyter's own token has every scope: the same answer and effect on a fresh task
    path, body, task_id, states = prepare(server, template, body, reader_task)
    status, data, _ = call(server, method, path, body, auth=f"token {server.token}")
    assert status == expected, (status, data)
    if task_id:
        assert task_state(server, task_id) in AFTER.get(states[1], {states[1]})


# -- what makes a token invalid, over HTTP ---------------------------------------------------------------

def test_invalid_tokens_are_401_and_never_fall_back_to_jupyter(server, keys_dir):
    now = time.time()
    cases = {
        "expired": token_for(keys_dir, ALL_SCOPES, ttl_s=60, now=now - 3600),
        "not yet valid": token_for(keys_dir, ALL_SCOPES, now=now + 600),
        "for user 'someone-else'": token_for(keys_dir, ALL_SCOPES, subject="someone-else"),
        "wrong audience": token_for(keys_dir, ALL_SCOPES, audience="not-direng"),
        "wrong issuer": token_for(keys_dir, ALL_SCOPES, issuer="not-direng"),
        "not a JWT": "not-a-jwt",
        "not accepted": jwt.encode({"sub": USER, "scope": "index:read"}, "s" * 32, algorithm="HS256"),
    }
    for expected, token in cases.items():
        for scheme in ("Bearer", "bearer", "token"):
            if scheme == "token" and expected == "not a JWT":
                continue  # `token <non-JWT>` is Jupyter's own token: a 403 from Jupyter
            status, data, _ = call(server, "GET", "health", auth=f"{scheme} {token}")
            assert status == 401, (expected, scheme, data)
            assert data["message"].startswith("invalid token: ") and expected in data["message"], data
    # a Bearer value is always a DirEng token: even the server's own token is refused there
    status, data, _ = call(server, "GET", "health", auth=f"Bearer {server.token}")
    assert status == 401 and "not a JWT" in data["message"]
    # no credentials at all, or a wrong Jupyter token: Jupyter's answer, as before
    assert call(server, "GET", "health")[0] == 403
    assert call(server, "GET", "health", auth="token not-the-token")[0] == 403


def test_kernel_style_token_header_and_xsrf(server, keys_dir):
    reader = token_for(keys_dir, ["index:read"])
    assert call(server, "GET", "search?q=charge", auth=f"token {reader}")[0] == 200
    status, data, _ = call(server, "POST", "index/refresh", auth=f"token {reader}")
    assert status == 403 and data["missing_scope"] == "index:write"
    # a POST with a JWT needs no XSRF token, even with a stray browser cookie around
    status, data, _ = call(server, "POST", "chat/reset", {"session": "x"}, auth=f"Bearer {reader}",
                           headers={"Cookie": "_xsrf=abc"})
    assert (status, data) == (200, {"ok": True})


def test_direng_tokens_grant_nothing_outside_the_direng_api(server, keys_dir):
    token = token_for(keys_dir, ALL_SCOPES)
    for auth in (f"Bearer {token}", f"token {token}"):
        assert call(server, "GET", "/api/kernels", auth=auth)[0] == 403
    assert call(server, "GET", "/api/kernels", auth=f"token {server.token}")[0] == 200


# -- lanes, kernels, JWKS ---------------------------------------------------------------------------------

def test_lane_token_cannot_approve_start_or_change_policy(server, keys_dir):
    lane = f"Bearer {token_for(keys_dir, LANE_SCOPES)}"
    status, task = server.post("tasks", {"title": "lane approval attempt", "lane": "graph-ops"})
    assert status == 201
    assert server.post(f"tasks/{task['id']}/estimate")[0] == 200
    for action in ("approve", "start"):
        status, data, _ = call(server, "POST", f"tasks/{task['id']}/{action}", auth=lane)
        assert status == 403 and data["missing_scope"] == "runs:execute"
    status, data, _ = call(server, "POST", "policy", {"policy": {}, "apply": True}, auth=lane)
    assert status == 403 and data["missing_scope"] == "policy:admin"
    status, data, _ = call(server, "POST", "tasks", {"title": "lane-made"}, auth=lane)
    assert status == 403 and data["missing_scope"] == "tasks:write"
    assert server.get(f"tasks/{task['id']}")[1]["state"] == "estimated"  # nothing happened
    # what a lane may do
    assert call(server, "GET", f"tasks/{task['id']}", auth=lane)[1]["state"] == "estimated"
    assert call(server, "GET", "search?q=charge+card", auth=lane)[0] == 200
    # a kernel's scopes can approve and start it
    kernel = f"Bearer {token_for(keys_dir, KERNEL_SCOPES)}"
    assert call(server, "POST", f"tasks/{task['id']}/approve", auth=kernel)[1]["state"] == "approved"
    assert call(server, "POST", f"tasks/{task['id']}/start", auth=kernel)[1]["state"] in ("queued", "running")
    status, data, _ = call(server, "POST", "policy", {"policy": {}}, auth=kernel)
    assert status == 403 and data["missing_scope"] == "policy:admin"


def test_jwks_serves_the_keys_that_verify_tokens(server, keys_dir):
    token = token_for(keys_dir, ["index:read"])
    for auth in (None, "Bearer garbage"):  # public: no credentials needed, bad ones ignored
        status, doc, headers = call(server, "GET", ".well-known/jwks.json", auth=auth)
        assert status == 200 and doc["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in doc["keys"] if k["kid"] == kid)
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig" and "d" not in jwk
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    claims = jwt.decode(token, public, algorithms=["RS256"], audience="direng", issuer="direng-workbench")
    assert claims["sub"] == USER


KERNEL_PROBE = """
import json, os, urllib.request, urllib.error
from direng_kernel.client import connect
token = os.environ.get("DIRENG_TOKEN")
req = urllib.request.Request(os.environ["DIRENG_SERVER_URL"] + "/policy", data=b'{"policy": {}}', method="POST",
                             headers={"Authorization": "token " + token, "Content-Type": "application/json"})
try:
    policy_status = urllib.request.urlopen(req, timeout=30).status
except urllib.error.HTTPError as err:
    policy_status = err.code
hits = [h.path for h in connect().search("charge a credit card", k=3)]
print("PROBE" + json.dumps({"token": token, "hits": hits, "policy_status": policy_status}))
"""


def test_kernel_token_is_a_short_lived_jwt_with_kernel_scopes(server, keys_dir):
    probe = json.loads(run_in_kernel(server, KERNEL_PROBE).split("PROBE", 1)[1])
    token = probe["token"]
    assert token != server.token and token.count(".") == 2
    claims = verify(token, keys_dir=keys_dir, user=USER)
    assert claims.scopes == KERNEL_SCOPES
    assert claims.expires_at - claims.issued_at == 12 * 3600
    assert "shop/payment.py" in probe["hits"]  # the client's `token <jwt>` header is accepted
    assert probe["policy_status"] == 403  # ... and scoped: a kernel cannot change the policy


def test_rotation_while_the_server_runs(server, keys_dir):
    from direng_kernel.security.keys import rotate_keys

    before = token_for(keys_dir, ["index:read"])
    new_kid = rotate_keys(keys_dir)
    after = token_for(keys_dir, ["index:read"])
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    for token in (before, after):  # the server re-reads the rotated key set by itself
        assert call(server, "GET", "health", auth=f"Bearer {token}")[0] == 200
    kids = {k["kid"] for k in call(server, "GET", ".well-known/jwks.json")[1]["keys"]}
    assert {jwt.get_unverified_header(before)["kid"], new_kid} <= kids
