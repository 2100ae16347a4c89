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
import urllib.request

import jwt
import pytest

from conftest import FIXTURES
from direng_kernel import sse
from direng_kernel.client import HttpClient
from fake_providers import FakeModelServer, FakeReply, route_chat_to
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
        # streams end after 1 s, so following a task's events takes several connections
        with running_server(tmp_path_factory.mktemp("e2e-rest"), "--DirEngExtension.watch=False",
                            "--DirEngExtension.stream_max_seconds=1") as srv:
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


def stream_events(server, task_id: str, last_id: str | None) -> list[sse.Event]:
    """One connection to the task's event stream (resuming after `last_id`), read to its end."""
    req = urllib.request.Request(f"{server.url}/direng/api/tasks/{task_id}/events/stream",
                                 headers={"Authorization": f"token {server.token}", "Accept": sse.MEDIA_TYPE,
                                          **({"Last-Event-ID": last_id} if last_id else {})})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith(sse.MEDIA_TYPE)
        return list(sse.parse(resp))


@pytest.mark.slow
@pytest.mark.e2e("GET /tasks/{id}/events/stream")
def test_the_event_stream_resumes_after_the_last_id_and_loses_nothing(server):
    """The server ends each stream after 1 s (`stream_max_seconds`); a client that reconnects with
    the last id it saw (as EventSource does) gets every event of the run exactly once, then `end`."""
    tid = approved(server, mode="sleep", seconds=3)
    ok(server, "POST", f"tasks/{tid}/start")
    seen: list[dict] = []
    last_id, connections, end = None, 0, None
    while end is None and connections < 200:
        connections += 1
        for event in stream_events(server, tid, last_id):
            if event.event == "end":
                end = event.json()
            else:
                assert event.event == "task" and event.id == str(event.json()["seq"])
                seen.append(event.json())
                last_id = event.id
    assert end is not None and end["state"] == "succeeded", (end, seen[-3:])
    assert connections >= 3, "the run outlasted one stream: it had to resume"
    everything = ok(server, "GET", f"tasks/{tid}/events")["events"]
    assert [e["seq"] for e in seen] == [e["seq"] for e in everything] and end["last_seq"] == everything[-1]["seq"]
    assert seen == everything
    # resuming after the end replays nothing and ends at once; an unknown task is a plain 404
    assert [e.event for e in stream_events(server, tid, last_id)] == ["end"]
    status, reply = server.get("tasks/no-such-task/events/stream")
    assert status == 404 and reply["code"] == "task_not_found", reply


@pytest.mark.slow
@pytest.mark.e2e("POST /tasks/{id}/retry", "POST /tasks/{id}/change_lane", "POST /tasks/{id}/raise_budget")
def test_an_escalated_task_is_answered_over_http(server):
    """A denied command escalates the run (the test lane's `denied` mode): retry runs it again, and
    change_lane moves it; a p90 over the lane's threshold escalates the estimate: raise_budget accepts it."""
    tid = approved(server, mode="denied")
    ok(server, "POST", f"tasks/{tid}/start")
    task = wait_for(server, tid, FINAL | {"escalated"})
    assert task["state"] == "escalated" and task["escalation"]["kind"] == "denied", task
    assert task["escalation"]["evidence"]["argv"][0] == "curl"
    refused = ok(server, "POST", f"tasks/{tid}/raise_budget", {"factor": 2}, expect=400)
    assert "does not answer this escalation" in refused["message"]
    assert ok(server, "POST", f"tasks/{tid}/retry")["state"] in ("queued", "running", "escalated")
    again = wait_for(server, tid, FINAL | {"escalated"})
    assert again["state"] == "escalated" and again["run_id"] != task["run_id"]
    assert ok(server, "POST", f"tasks/{tid}/change_lane", {"lane": ""}, expect=400)["message"] == "'lane' must be a lane id"
    moved = ok(server, "POST", f"tasks/{tid}/change_lane", {"lane": "graph-ops"})
    assert (moved["state"], moved["lane"], moved["escalation"]) == ("estimated", "graph-ops", None)

    original = ok(server, "GET", "policy")["policy"]
    changed = json.loads(json.dumps(original))
    changed["lanes"]["Narrative"]["escalate_p90_s"] = 100  # the test lane's prior p90 is 240 s
    assert ok(server, "POST", "policy", {"policy": changed, "apply": True})["applied"] is True
    try:
        task = ok(server, "POST", "tasks", {"title": "a long one", "lane": "narrative"}, expect=201)
        escalated = ok(server, "POST", f"tasks/{task['id']}/estimate")
        assert escalated["state"] == "escalated" and escalated["escalation"]["kind"] == "estimate"
        accepted = ok(server, "POST", f"tasks/{task['id']}/raise_budget", {"factor": 3})
        assert (accepted["state"], accepted["budget_factor"]) == ("estimated", 3)
    finally:
        assert ok(server, "POST", "policy", {"policy": original, "apply": True})["applied"] is True


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
    before = ok(server, "POST", "chat", {"message": QUESTION, "session": "route-before"})
    assert before["intent"] == "ask" and before["provider"] == "local"
    seen = len(fake_model.requests)
    with route_chat_to(server, fake_model):
        assert ok(server, "GET", "policy")["policy"]["lanes"]["chat"]["primary"] == \
            {"provider": "fake-openai", "model": "fake-model"}
        fake_model.reply(FakeReply(content="Cards are charged in `charge_card` (shop/payment.py:10-14).",
                                   input_tokens=120, output_tokens=30))
        after = ok(server, "POST", "chat", {"message": QUESTION, "session": "route-after"})
        assert after["provider"] == "fake-openai", after
        assert [(u["provider"], u["model"]) for u in after["usages"]] == [("fake-openai", "fake-model")]
        assert "charge_card" in after["markdown"]
        assert len(fake_model.requests) == seen + 1 and fake_model.requests[-1].body["model"] == "fake-model"
        assert fake_model.requests[-1].headers["authorization"] == "Bearer fake-key-for-the-test"
    again = ok(server, "POST", "chat", {"message": QUESTION, "session": "route-restored"})
    assert again["provider"] == "local" and len(fake_model.requests) == seen + 1  # back on the old route


@pytest.mark.e2e("POST /chat")
def test_chat_hands_large_work_to_pex_as_a_proposed_task(server):
    answer = ok(server, "POST", "chat", {"message": "find dead code in the shop package", "session": "deleg"})
    task = answer["proposed_task"]
    assert answer["intent"] == "delegate" and task["lane"] == "graph-ops" and task["state"] == "estimated"
    assert task["estimate"]["duration_p90_s"] >= task["estimate"]["duration_p50_s"] > 0
    assert ok(server, "GET", f"tasks/{task['id']}")["state"] == "estimated"  # created, not run
    assert task["id"] in ok(server, "POST", "chat", {"message": f"task {task['id']}", "session": "deleg"})["markdown"]
    assert ok(server, "POST", "chat", {"message": "what calls charge_card?"})["proposed_task"] is None
    ok(server, "POST", f"tasks/{task['id']}/cancel")


PATCH = ("--- a/shop/shipping.py\n+++ b/shop/shipping.py\n@@ -1,3 +1,3 @@\n"
         '-"""Shipping cost estimates by destination zone."""\n+"""Shipping cost estimates by zone."""\n'
         " \n from shop import payment\n")


@pytest.mark.e2e("GET /proposals", "GET /proposals/{id}", "POST /proposals/{id}/apply", "POST /proposals/{id}/reject")
def test_a_patch_given_in_chat_is_a_proposal_decided_over_http(server):
    answer = ok(server, "POST", "chat", {"message": f"apply this\n```diff\n{PATCH}```", "session": "proposals"})
    (p,) = answer["proposals"]
    assert p["kind"] == "file" and p["state"] == "proposed" and answer["proposed_task"]["lane"] == "code-impl"
    assert p["id"] in [x["id"] for x in ok(server, "GET", "proposals")["proposals"]]
    assert ok(server, "GET", f"proposals/{p['id']}")["diff"] == PATCH
    refused = ok(server, "POST", f"proposals/{p['id']}/apply", expect=400)
    assert "is estimated" in refused["message"]  # its Code-Impl task has not run: the working tree is untouched
    assert "(in cents)" not in (server.root / "shop" / "shipping.py").read_text()
    assert ok(server, "POST", f"proposals/{p['id']}/reject")["state"] == "rejected"
    assert "rejected already" in ok(server, "POST", f"proposals/{p['id']}/reject", expect=400)["message"]
    assert ok(server, "GET", "proposals/prop-000000000000", expect=404)["code"] == "proposal_not_found"
    ok(server, "POST", f"tasks/{answer['proposed_task']['id']}/cancel")


@pytest.mark.e2e("POST /chat")
def test_a_generative_answer_streams_as_it_is_written(server, fake_model):
    """`"stream": true`: the text arrives in pieces while the model is still writing, redacted as it
    goes, and ends with the same Answer a plain request gets."""
    client = HttpClient(server.url + "/direng/api", token=server.token)
    text = ("Cards are charged in `charge_card` (shop/payment.py:10-14). The test key AKIAIOSFODNN7EXAMPLE "
            "is never shown. " + "The basket is priced first, then the card is charged once. " * 3)
    with route_chat_to(server, fake_model):
        fake_model.reply(FakeReply(content=text, piece_chars=6, piece_delay_s=0.05, output_tokens=60))
        events: list[tuple[float, str, dict]] = []
        answer = client.chat(QUESTION, session="stream", on_event=lambda k, p: events.append((time.monotonic(), k, p)))
        done = time.monotonic()
        assert fake_model.requests[-1].body["stream"] is True
    deltas = [(t, p["text"]) for t, k, p in events if k == "delta"]
    assert len(deltas) >= 5, events
    assert done - deltas[0][0] > 0.5, "the first piece came only with the answer: nothing streamed"
    shown = "".join(t for _, t in deltas)
    assert "AKIAIOSFODNN7EXAMPLE" not in json.dumps(events) and "AKIAIOSFODNN7EXAMPLE" not in answer.markdown
    assert answer.provider == "fake-openai" and shown == answer.markdown
    # the local provider answers whole; a bad flag is refused before any stream opens
    later: list = []
    local = client.chat(QUESTION, session="stream-local", on_event=lambda k, p: later.append(k))
    assert local.provider == "local" and "charge_card" in local.markdown and later == []
    status, reply = server.request("POST", "chat", body={"message": QUESTION, "stream": "yes"})
    assert status == 400 and reply["message"] == "'stream' must be true or false"


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


@pytest.mark.slow
@pytest.mark.e2e("GET /plms/history")
def test_plms_history_holds_each_finished_run(server):
    before = ok(server, "GET", "plms/history")["runs"]
    tid = approved(server, mode="quick")
    ok(server, "POST", f"tasks/{tid}/start")
    task = wait_for(server, tid, FINAL)
    assert task["state"] == "succeeded", task
    runs = ok(server, "GET", "plms/history")["runs"]
    assert len(runs) == len(before) + 1  # oldest first: the new run is last
    last = runs[-1]
    assert (last["lane"], last["status"], last["rehearsal"]) == ("narrative", "succeeded", False)
    assert last["duration_s"] > 0 and last["finished_at"]
