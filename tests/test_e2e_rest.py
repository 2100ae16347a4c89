"""End to end over HTTP against a real `jupyter server` with the DirEng extension: what
`docs/api.yaml` promises for tasks, runs, policy and search, and what the CLI does when that
server owns the store.

One server for the module (test_server's `running_server()`), started with the test lanes
(tests/fixtures/test_lanes) on DIRENG_LANES_PATH and the key of a FAKE OpenAI-protocol model
server (tests/fake_providers.py, on 127.0.0.1) in its environment; its PAS workers run the
lanes with papermill. CLI commands run as subprocesses on the server's root.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import jwt
import pytest

from conftest import FIXTURES
from fake_providers import FakeModelServer, FakeReply
from test_server import running_server

pytestmark = [pytest.mark.timeout(300)]
FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def fake_model():
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake_model):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIRENG_LANES_PATH", str(FIXTURES / "test_lanes"))  # the server and the CLI both see it
        mp.setenv("FAKE_OPENAI_KEY", "fake-key-for-the-test")
        with running_server(tmp_path_factory.mktemp("e2e-rest"), "--DirEngExtension.watch=False") as srv:
            yield srv


def direng(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def ok(server, method: str, path: str, body=None, expect: int = 200, **kw):
    status, data = server.request(method, path, body=body, **kw)
    assert status == expect, (method, path, status, data)
    return data


def wait_for(server, task_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        task = ok(server, "GET", f"tasks/{task_id}")
        if task["state"] in states or time.monotonic() > deadline:
            return task
        time.sleep(0.2)


def approved(server, **parameters) -> str:
    task = ok(server, "POST", "tasks", {"title": "a test lane run", "lane": "narrative", "parameters": parameters},
              expect=201)
    assert ok(server, "POST", f"tasks/{task['id']}/estimate")["state"] == "estimated"
    assert ok(server, "POST", f"tasks/{task['id']}/approve")["state"] == "approved"
    return task["id"]


# -- tasks ------------------------------------------------------------------------------------------

@pytest.mark.e2e("GET /tasks", "POST /tasks")
def test_get_tasks_lists_the_created_tasks_newest_first(server):
    first = ok(server, "POST", "tasks", {"title": "document the public API of the shop package"}, expect=201)
    second = ok(server, "POST", "tasks", {"title": "find dead code", "lane": "graph-ops",
                                          "brief": "unused functions", "parameters": {"depth": 2}}, expect=201)
    tasks = ok(server, "GET", "tasks")["tasks"]
    ids = [t["id"] for t in tasks]
    assert first["id"] in ids and second["id"] in ids
    assert ids.index(second["id"]) < ids.index(first["id"])  # newest first
    listed = next(t for t in tasks if t["id"] == second["id"])
    assert (listed["lane"], listed["state"], listed["brief"], listed["parameters"]) == \
        ("graph-ops", "new", "unused functions", {"depth": 2})
    assert next(t for t in tasks if t["id"] == first["id"])["lane"] == "narrative"  # routed from the title


@pytest.mark.slow
@pytest.mark.e2e("POST /tasks/{id}/cancel", "POST /tasks/{id}/start", "GET /tasks/{id}", "GET /tasks/{id}/events",
                 "GET /runs")
def test_cancel_stops_a_running_task(server):
    tid = approved(server, mode="sleep", seconds=18)  # under the test lane's 20 s limit
    assert ok(server, "POST", f"tasks/{tid}/start")["state"] in ("queued", "running")
    deadline, messages, seen = time.monotonic() + 120, [], 0
    while time.monotonic() < deadline and not any("test lane in mode sleep" in m for m in messages):
        for ev in ok(server, "GET", f"tasks/{tid}/events", params={"after": seen})["events"]:
            seen = ev["seq"]
            messages.append(ev["message"])
        time.sleep(0.2)
    assert any("test lane in mode sleep" in m for m in messages), messages  # the lane is inside its sleep
    assert ok(server, "GET", f"tasks/{tid}")["state"] == "running"
    asked_at = time.monotonic()
    ok(server, "POST", f"tasks/{tid}/cancel")
    task = wait_for(server, tid, FINAL, timeout=60)
    took = time.monotonic() - asked_at
    assert task["state"] == "cancelled", task
    assert took < 15, f"the lane was not stopped: the task ended {took:.1f}s after the cancel"
    events = ok(server, "GET", f"tasks/{tid}/events")["events"]
    assert any(e["message"].startswith("cancel requested") for e in events)
    assert any(e["kind"] == "state" and e["data"].get("state") == "cancelled" for e in events), events
    run = next(r for r in ok(server, "GET", "runs")["runs"] if r["id"] == task["run_id"])
    assert run["state"] == "cancelled"
    assert ok(server, "POST", f"tasks/{tid}/start")["state"] == "cancelled"  # a final state is kept


@pytest.fixture(scope="module")
def served_run(server) -> dict:
    """A task created, approved and started with the CLI while the server owns the store."""
    root = str(server.root)
    created = direng("task", "new", "--title", "document the shop package", "--lane", "narrative",
                     "--param", "mode=quick", "--json", "--root", root)
    assert created.returncode == 0, created.stderr
    task = json.loads(created.stdout)
    for action in ("estimate", "approve"):
        proc = direng("task", action, task["id"], "--root", root)
        assert proc.returncode == 0, proc.stderr
    start = direng("task", "start", task["id"], "--follow", "--root", root)
    return {"task": task, "start": start}


@pytest.mark.slow
@pytest.mark.e2e("direng task start")
def test_cli_start_hands_the_task_to_the_server_that_owns_the_store(server, served_run):
    start, tid = served_run["start"], served_run["task"]["id"]
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith(f"{tid}  succeeded"), start.stdout
    server_worker = f"{socket.gethostname()}:{server.proc.pid}"
    # --follow streamed the events: the server's worker ran it, not the CLI's process
    assert f"running on {server_worker}" in start.stderr, start.stderr
    assert "test lane in mode quick" in start.stderr
    task = ok(server, "GET", f"tasks/{tid}")
    assert task["state"] == "succeeded" and task["run_id"]
    run = next(r for r in ok(server, "GET", "runs")["runs"] if r["id"] == task["run_id"])
    assert run["worker"] == server_worker and run["state"] == "succeeded"


@pytest.mark.slow
@pytest.mark.e2e("POST /runs/{id}/replay", "GET /runs/{id}")
def test_replay_without_dry_run_reruns_and_matches(server, served_run):
    run_id = ok(server, "GET", f"tasks/{served_run['task']['id']}")["run_id"]
    passport = ok(server, "GET", f"runs/{run_id}")
    assert passport["status"] == "succeeded" and passport["kpis"] == {"done": 1.0}
    report = ok(server, "POST", f"runs/{run_id}/replay", {"dry_run": False}, timeout=240)
    assert report["run_id"] == run_id and report["dry_run"] is False
    assert report["match"] is True, report
    assert report["replay_run_id"] and report["replay_run_id"] != run_id  # it really ran again
    assert report["kpis_replay"] == report["kpis_original"] == {"done": 1.0}


# -- policy: a changed route ------------------------------------------------------------------------------

QUESTION = "how does the shop charge a customer's credit card?"


@pytest.mark.e2e("GET /policy", "POST /policy", "POST /chat")
def test_applying_a_changed_policy_changes_the_route(server, fake_model):
    original = ok(server, "GET", "policy")["policy"]
    before = ok(server, "POST", "chat", {"message": QUESTION, "session": "route-before"})
    assert before["intent"] == "ask" and before["provider"] == "local"
    assert fake_model.requests == []

    changed = json.loads(json.dumps(original))
    changed["providers"]["fake-openai"] = {"type": "openai", "base_url": fake_model.url,
                                           "api_key_env": "FAKE_OPENAI_KEY", "external": True,
                                           "prices": {"input_per_1k": 1.0, "output_per_1k": 2.0}}
    changed["lanes"]["chat"] = {"primary": {"provider": "fake-openai", "model": "fake-model"},
                                "fallbacks": [{"provider": "local", "model": "retrieval"}], "retries": 0}
    assert ok(server, "POST", "policy", {"policy": changed, "apply": True}) == \
        {"valid": True, "issues": [], "applied": True}
    assert ok(server, "GET", "policy")["policy"]["lanes"]["chat"]["primary"] == \
        {"provider": "fake-openai", "model": "fake-model"}
    try:
        fake_model.reply(FakeReply(content="Cards are charged in `charge_card` (shop/payment.py:10-14).",
                                   input_tokens=120, output_tokens=30))
        after = ok(server, "POST", "chat", {"message": QUESTION, "session": "route-after"})
        assert after["provider"] == "fake-openai", after
        assert [(u["provider"], u["model"]) for u in after["usages"]] == [("fake-openai", "fake-model")]
        assert "charge_card" in after["markdown"]
        assert len(fake_model.requests) == 1 and fake_model.requests[0].body["model"] == "fake-model"
        assert fake_model.requests[0].headers["authorization"] == "Bearer fake-key-for-the-test"
    finally:
        assert ok(server, "POST", "policy", {"policy": original, "apply": True})["applied"] is True
    again = ok(server, "POST", "chat", {"message": QUESTION, "session": "route-restored"})
    assert again["provider"] == "local" and len(fake_model.requests) == 1  # back on the old route


# -- search and auth -----------------------------------------------------------------------------------------

@pytest.mark.e2e("GET /search")
def test_search_static_mode(server):
    query = {"q": "bill the customer's credit card", "mode": "static", "k": 5}
    hits = ok(server, "GET", "search", params=query)["hits"]
    assert 0 < len(hits) <= 5
    assert all(h["sources"] == ["static"] for h in hits), hits
    assert ("shop/payment.py", "charge_card") in [(h["path"], h["symbol"]) for h in hits[:3]]
    bm25 = ok(server, "GET", "search", params={"q": "charge_card", "mode": "bm25", "k": 3})["hits"]
    assert bm25 and all(h["sources"] == ["bm25"] for h in bm25)


@pytest.mark.e2e("GET /.well-known/jwks.json", "direng token mint")
def test_a_cli_minted_token_verifies_against_the_served_jwks_and_is_scoped(server):
    # the CLI and the server share the keys directory (DIRENG_KEYS_DIR, set by conftest)
    proc = direng("token", "mint", "--scope", "tasks:read", "--ttl", "300")
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip().splitlines()[-1]
    doc = ok(server, "GET", ".well-known/jwks.json", token=None)  # public: no credentials
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(next(k for k in doc["keys"] if k["kid"] == kid)))
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="direng", issuer="direng-workbench")
    assert claims["scope"] == "tasks:read"
    bearer = {"Authorization": f"Bearer {token}"}
    assert "tasks" in ok(server, "GET", "tasks", token=None, headers=bearer)
    status, data = server.request("POST", "tasks", {"title": "x"}, token=None, headers=bearer)
    assert status == 403 and data["missing_scope"] == "tasks:write"
