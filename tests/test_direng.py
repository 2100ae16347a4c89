"""DirEng end to end: routing, local answers, and a generative provider's tool-calling loop."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_repo
from direng_kernel.broker.broker import Broker
from direng_kernel.broker.policy import Policy, validate_policy
from direng_kernel.direng.assistant import DirEng, LocalProvider
from direng_kernel.direng.router import route
from direng_kernel.direng.tools import ToolBox, ToolError, confine
from direng_kernel.models import ToolCall
from direng_kernel.workbench import Workbench
from fake_providers import FakeModelServer, FakeReply


@pytest.fixture(scope="module")
def wb(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("direng") / "repo")
    w = Workbench(root)
    w.index()
    return w


@pytest.mark.parametrize("text,intent,arg", [
    ("what calls charge_card?", "callers", "charge_card"),
    ("callers of `Cart.total`", "callers", "Cart.total"),
    ("what does checkout call?", "callees", "checkout"),
    ("graph of DiscountCart", "graph", "DiscountCart"),
    ("explain Cart.total", "explain", "Cart.total"),
    ("what is the retry policy?", "ask", "what is the retry policy?"),
    ("search tax rate", "search", "tax rate"),
    ("status", "status", ""),
    ("help", "help", ""),
])
def test_router(text, intent, arg):
    got = route(text)
    assert (got.name, got.arg) == (intent, arg)


def test_local_answers_cite_real_symbols(wb):
    d = DirEng(wb)
    ans = d.chat("how do we compute the total with tax?")
    assert ans.intent == "ask" and ans.provider == "local"
    assert "shop/models.py" in ans.markdown and any(h.symbol == "Cart.total" for h in ans.citations)
    ans = d.chat("what calls charge_card?")
    assert "`checkout`" in ans.markdown and "shop/payment.py:17-20" in ans.markdown
    ans = d.chat("explain Cart")
    assert "shopping cart" in ans.markdown.lower() and "```python" in ans.markdown
    ans = d.chat("explain NoSuchThing")
    assert "don't know a symbol named `NoSuchThing`" in ans.markdown


def test_memory_is_bounded_visible_and_clearable(wb):
    d = DirEng(wb)
    for i in range(30):
        d.chat(f"search tax {i}", session="s1")
    assert len(d.history("s1")) == 40 and d.history("s1")[-2].content == "search tax 29"
    assert d.history("other") == []
    d.reset("s1")
    assert d.history("s1") == []


def test_tools_are_confined_to_the_root(wb):
    tools = ToolBox(wb)
    assert "def charge_card" in tools.read_file_range("shop/payment.py", 10, 12)
    for bad in ("../outside.py", "/etc/passwd", "shop/../../x"):
        with pytest.raises(ToolError):
            confine(wb.root, bad)
    assert tools.call(ToolCall(id="1", name="read_file_range", arguments={"path": "/etc/passwd"})).startswith("error:")
    assert tools.call(ToolCall(id="2", name="rm_rf", arguments={})) == "error: unknown tool 'rm_rf'"
    assert "charge_card" in tools.call(ToolCall(id="3", name="graph_neighbours", arguments={"symbol": "checkout"}))
    assert "initial" in tools.git_log()


def generative_policy(server: FakeModelServer) -> Policy:
    data = {"version": 1, "providers": {
        "local": {"type": "local", "external": False},
        "fake-openai": {"type": "openai", "base_url": server.url, "api_key_env": "FAKE_OPENAI_KEY",
                        "external": True, "prices": {"input_per_1k": 1.0, "output_per_1k": 2.0}}},
        "lanes": {"chat": {"primary": {"provider": "fake-openai", "model": "fake-model"},
                           "fallbacks": [{"provider": "local", "model": "retrieval"}], "retries": 0}}}
    assert validate_policy(data) == []
    return Policy.model_validate(data)


@contextmanager
def generative(direng: DirEng, server: FakeModelServer):
    """`direng`'s broker routed to the FAKE model `server` for the block (the FAKE_OPENAI_KEY
    environment variable must be set), and the broker it had restored afterwards."""
    saved = direng.broker
    direng.broker = Broker(generative_policy(server), local_factory=lambda: LocalProvider(direng), usage_log=None)
    try:
        yield direng
    finally:
        direng.broker = saved


def test_generative_provider_uses_tools_then_answers(wb, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-key")
    with FakeModelServer() as server:
        server.reply(
            FakeReply(content="", tool_calls=[{"id": "c1", "name": "search", "arguments": {"query": "charge card"}}]),
            FakeReply(content="Cards are charged in `charge_card` (shop/payment.py:10-14)."),
        )
        d = DirEng(wb)
        d.broker = Broker(generative_policy(server), local_factory=lambda: LocalProvider(d),
                          usage_log=tmp_path / "usage.jsonl")
        ans = d.chat("how are cards charged")
        assert ans.provider == "fake-openai" and len(ans.usages) == 2
        assert [(h.path, h.symbol) for h in ans.citations] == [("shop/payment.py", "charge_card")]
        second = server.requests[1].body
        tool_msg = next(m for m in second["messages"] if m["role"] == "tool")
        assert tool_msg["tool_call_id"] == "c1" and "shop/payment.py:10-14" in tool_msg["content"]
        assert {t["function"]["name"] for t in second["tools"]} >= {"search", "read_file_range", "git_diff"}
        usage = [json.loads(line) for line in (tmp_path / "usage.jsonl").read_text().splitlines()]
        assert len(usage) == 2


def test_provider_down_falls_back_to_local_answer(wb, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-key")
    with FakeModelServer() as server:
        server.fail(500, times=3)
        d = DirEng(wb)
        d.broker = Broker(generative_policy(server), local_factory=lambda: LocalProvider(d),
                          usage_log=tmp_path / "usage.jsonl")
        ans = d.chat("how are cards charged")
        assert ans.provider == "local"  # the policy's fallback chain: fake-openai failed, local answered
        assert "charge_card" in ans.markdown


def test_model_tool_commands_go_through_the_chat_allowlist(wb):
    tools = ToolBox(wb)
    assert "initial" in tools.git_log() and "##" in tools.git_status()
    with pytest.raises(ToolError, match="denied by rule"):
        tools._git("-c", "core.pager=touch /tmp/owned", "log")  # a git config override is never allowed
    with pytest.raises(ToolError, match="denied by rule"):
        tools._git("push", "origin")  # not in the chat allowlist: default deny


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_confine_never_lets_a_path_leave_the_root(tmp_path_factory, rel):
    root = tmp_path_factory.getbasetemp() / "confine-root"
    root.mkdir(exist_ok=True)
    try:
        resolved = confine(root, rel)
    except ToolError:
        return
    assert resolved == root.resolve() or resolved.is_relative_to(root.resolve())
