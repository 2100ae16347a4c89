"""DirEng hands large work to PEX: a chat message (or a generative provider's `delegate` tool
call) becomes a proposed task — created and estimated, run only once approved — and DirEng relays
its progress and result. Real engine, real lane run with papermill; the generative provider is
the FAKE OpenAI-protocol server (tests/fake_providers.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import make_repo, run_cli
from direng_kernel.direng.router import is_work, route
from direng_kernel.engine import Engine
from fake_providers import FakeModelServer, FakeReply
from test_direng import generative


@pytest.mark.parametrize("text", [
    "document the shop package", "please document the payment module", "find dead code",
    "refactor checkout to use Cart.total", "fix the rounding bug in shipping_cost", "re-index the repository",
    "report the breaking API changes since v1", "can you document the shop package", "delegate: tidy the docs",
])
def test_requests_for_work_are_large(text):
    assert route(text).name == "delegate"


@pytest.mark.parametrize("text,intent", [
    ("how do I document the shop package?", "ask"), ("what calls charge_card?", "callers"),
    ("find charge_card", "search"), ("explain Cart.total", "explain"), ("is checkout refactored?", "ask"),
    ("documentation of charge_card", "ask"), ("fixtures for the payment tests", "ask"), ("status", "status"),
    ("task task-0123456789ab", "task"), ("how is task task-0123456789ab going?", "task"),
])
def test_questions_and_lookups_stay_small(text, intent):
    assert not is_work(text) or intent == "task"
    assert route(text).name == intent


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    e = Engine(make_repo(tmp_path_factory.mktemp("deleg") / "repo"), watch=False)
    e.index()
    yield e
    e.stop()


@pytest.mark.slow
def test_chat_proposes_a_task_that_runs_only_when_approved_and_relays_the_result(engine):
    answer = engine.chat("document the shop package", session="deleg")
    task = answer.proposed_task
    assert answer.intent == "delegate" and task is not None
    assert (task.lane, task.state.value) == ("narrative", "estimated") and task.estimate.duration_p90_s > 0
    assert f"direng task approve {task.id}" in answer.markdown and "Nothing runs until you approve" in answer.markdown
    assert engine.runs() == []  # proposed, not run
    waiting = engine.chat(f"task {task.id}", session="deleg").markdown
    assert "estimated" in waiting and "Waiting for approval" in waiting

    engine.task_action(task.id, "approve")
    assert engine.run_task(task.id).state.value == "succeeded"
    report = engine.chat(f"how is task {task.id} going?", session="deleg")
    (run,) = engine.runs()
    assert report.intent == "task" and "succeeded" in report.markdown and run["id"] in report.markdown
    assert "docs_coverage" in report.markdown and "cost" in report.markdown
    assert f".direng/runs/{run['id']}/output.ipynb" in report.markdown
    assert f".direng/passports/{run['id']}.json" in report.markdown
    from direng_kernel import contracts

    assert engine.passport(run["id"]).contracts == {contracts.PEX: contracts.load(contracts.PEX).version}
    assert "I know no task `task-000000000000`" in engine.chat("task task-000000000000").markdown
    assert engine.chat("what calls charge_card?").proposed_task is None  # small stays direct


def test_a_generative_provider_delegates_through_the_delegate_tool(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-key")
    with FakeModelServer() as server, generative(engine.direng, server) as direng:
        server.reply(FakeReply(content="", tool_calls=[{"id": "d1", "name": "delegate", "arguments": {
                         "brief": "write the API reference of the shop package", "title": "API reference"}}]),
                     FakeReply(content="I proposed a task to write the API reference; approve it to run."))
        answer = direng.chat("the shop package needs an API reference", session="gen-deleg")
        offered = {t["function"]["name"] for t in server.requests[0].body["tools"]}
        tool_result = next(m for m in server.requests[1].body["messages"] if m["role"] == "tool")
    assert "delegate" in offered
    task = answer.proposed_task
    assert answer.intent == "delegate" and task.title == "API reference" and task.state.value == "estimated"
    assert task.id in tool_result["content"] and "approval" in tool_result["content"]


@pytest.mark.e2e("direng ask", "direng chat")
def test_direng_ask_and_chat_on_a_terminal(engine):
    root = str(engine.root)
    proc = run_cli("ask", "what", "calls", "charge_card?", "--root", root)
    assert proc.returncode == 0, proc.stderr
    assert "checkout" in proc.stdout and "sources:" in proc.stdout and "shop/payment.py:10-14" in proc.stdout
    proc = run_cli("ask", "find dead code", "--root", root, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"markdown", "citations", "proposed_task"}
    assert data["proposed_task"]["lane"] == "graph-ops" and data["proposed_task"]["state"] == "estimated"
    chat = subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "chat", "--root", root],
                          input="what calls charge_card?\n\nexplain no_such_symbol_here\nquit\nstatus\n",
                          capture_output=True, text=True, timeout=120)
    assert chat.returncode == 0, chat.stderr
    assert "checkout" in chat.stdout and "I don't know a symbol named" in chat.stdout
    assert "Index of" not in chat.stdout  # the `status` after `quit` was not answered
