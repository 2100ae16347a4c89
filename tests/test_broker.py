"""Model broker: policy validation, the CLI, both wire protocols, retries, fallback, budgets,
data rules and the usage ledger — over real sockets to the FAKE model server in fake_providers.py."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fake_providers import FakeModelServer, FakeReply

from direng_kernel.broker import Broker, BrokerError, Policy, PolicyError, ProviderError
from direng_kernel.broker.budget import UsageRecord, estimate_tokens
from direng_kernel.broker.policy import default_policy, load_policy, load_schema, schema_path, validate_policy
from direng_kernel.cli import policy_cmd
from direng_kernel.models import LANES, ChatMessage, ProviderRequest, ProviderResponse, ToolCall, ToolSpec, Usage

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "policy" / "model_broker_example.json"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=timezone.utc)
SEARCH_TOOL = ToolSpec(name="search", description="search the code index",
                       parameters={"type": "object", "properties": {"query": {"type": "string"}},
                                   "required": ["query"]})


# -- helpers -------------------------------------------------------------------------------

class FakeLocal:
    """Stand-in for DirEng's embedded local provider (in-process, records what it was asked)."""

    name = "local"

    def __init__(self, fail: Exception | None = None):
        self.requests: list[ProviderRequest] = []
        self.fail = fail

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.requests.append(request)
        if self.fail:
            raise self.fail
        return ProviderResponse(content="local answer",
                                usage=Usage(provider="local", model="retrieval", input_tokens=3, output_tokens=4))


def example() -> dict:
    return json.loads(EXAMPLE.read_text())


def oa(server: FakeModelServer, *, external: bool = False, prices=(0.0, 0.0), key_env: str | None = None) -> dict:
    p = {"type": "openai", "base_url": server.url + "/v1", "external": external,
         "prices": {"input_per_1k": prices[0], "output_per_1k": prices[1]}}
    if key_env:
        p["api_key_env"] = key_env
    return p


def an(server: FakeModelServer, *, prices=(0.0, 0.0), key_env: str = "FAKE_ANTHROPIC_KEY") -> dict:
    return {"type": "anthropic", "base_url": server.url, "api_key_env": key_env, "external": True,
            "prices": {"input_per_1k": prices[0], "output_per_1k": prices[1]}}


def route(provider: str, model: str = "m") -> dict:
    return {"provider": provider, "model": model}


def make_policy(providers: dict, chat: dict, *, validate: bool = True) -> Policy:
    data = {"version": 1, "providers": {"local": {"type": "local", "external": False}, **providers},
            "lanes": {"chat": chat}}
    if validate:
        assert validate_policy(data) == []
    return Policy.model_validate(data)


def ask(text: str = "where is the session created?", **kw) -> ProviderRequest:
    return ProviderRequest(lane=kw.pop("lane", "chat"), messages=[ChatMessage(role="user", content=text)], **kw)


@pytest.fixture
def server():
    with FakeModelServer() as s:
        yield s


@pytest.fixture
def server2():
    with FakeModelServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "test-anthropic-key")
    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-openai-key")


# -- policy: the example, the default, the schema -----------------------------------------

def test_example_policy_is_valid_and_routes_every_lane_locally():
    data = example()
    assert validate_policy(data) == []
    policy = load_policy(EXAMPLE)
    for lane in LANES:
        resolved = policy.resolve(lane)
        assert resolved is not None and resolved.chain[0].provider == "local"
        assert policy.providers[resolved.chain[0].provider].type == "local"
    types = {policy.providers[r.provider].type for lane in LANES for r in policy.resolve(lane).chain[1:]}
    assert types == {"openai", "anthropic"}
    assert policy.providers["anthropic"].api_key_env == "ANTHROPIC_API_KEY"
    chat = policy.resolve("chat")
    assert (chat.timeout_s, chat.retries) == (30, 2)
    # budgets merge field-wise with the defaults
    assert chat.budgets.tokens_per_task == 100000 and chat.budgets.tokens_per_day == 2000000
    assert policy.resolve("Code-Impl").data.may_see_secrets is True
    assert policy.resolve("Code-Impl").data.on_flagged == "block"  # inherited


def test_default_policy_is_all_local_and_valid():
    policy = default_policy()
    assert validate_policy(policy.model_dump(mode="json", by_alias=True, exclude_none=True)) == []
    assert {lane: [r.label for r in policy.resolve(lane).chain] for lane in LANES} == \
        {lane: ["local/retrieval"] for lane in LANES}
    assert all(not p.external for p in policy.providers.values())


def test_policy_hash_is_canonical(tmp_path):
    data = example()
    h = load_policy(EXAMPLE).hash
    assert len(h) == 64 and int(h, 16) >= 0
    reordered = tmp_path / "p.json"
    reordered.write_text(json.dumps(dict(reversed(list(data.items()))), indent=7))
    assert load_policy(reordered).hash == h
    data["lanes"]["chat"]["retries"] = 3
    assert Policy.model_validate(data).hash != h


def test_schema_is_found_and_is_2020_12():
    from jsonschema import Draft202012Validator

    path = schema_path()
    assert path.is_file() and path.name == "model_broker.schema.json"
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def _set(path: str, value):
    def mutate(d: dict) -> None:
        *parents, last = path.split("/")
        for p in parents:
            d = d[int(p)] if isinstance(d, list) else d[p]
        if value is KeyError:
            del d[last]
        elif isinstance(d, list):
            d.append(value) if last == "+" else d.__setitem__(int(last), value)
        else:
            d[last] = value
    return mutate


BROKEN = [
    # (what, mutation, pointer, kind)
    ("missing version", _set("version", KeyError), "/version", "schema"),
    ("wrong version", _set("version", 2), "/version", "schema"),
    ("unknown top-level key", _set("extra", True), "/extra", "schema"),
    ("timeout not a number", _set("lanes/chat/timeout_s", "fast"), "/lanes/chat/timeout_s", "schema"),
    ("negative budget", _set("lanes/chat/budgets/money_per_day", -1), "/lanes/chat/budgets/money_per_day", "schema"),
    ("bad data action", _set("lanes/Narrative/data/on_flagged", "warn"), "/lanes/Narrative/data/on_flagged", "schema"),
    ("provider without external", _set("providers/ollama/external", KeyError), "/providers/ollama/external", "schema"),
    ("local marked external", _set("providers/local/external", True), "/providers/local/external", "schema"),
    ("inline api key", _set("providers/anthropic/api_key", "sk-ant-SECRET-VALUE-1"), "/providers/anthropic/api_key",
     "schema"),
    ("key in api_key_env", _set("providers/anthropic/api_key_env", "sk_live_SECRETVALUE1"),
     "/providers/anthropic/api_key_env", "semantic"),
    ("unknown lane", _set("lanes/Code-Implementation", {"primary": route("local", "retrieval")}),
     "/lanes/Code-Implementation", "semantic"),
    ("unknown provider", _set("lanes/chat/primary/provider", "openia"), "/lanes/chat/primary/provider", "semantic"),
    ("fallback equals primary", _set("lanes/chat/fallbacks/0", route("local", "retrieval")),
     "/lanes/chat/fallbacks/0", "semantic"),
    ("fallback repeated", _set("lanes/chat/fallbacks/+", route("ollama", "llama3.1:8b")),
     "/lanes/chat/fallbacks/2", "semantic"),
    ("task tokens over day tokens", _set("lanes/chat/budgets/tokens_per_day", 1000),
     "/lanes/chat/budgets/tokens_per_task", "semantic"),
    ("default task money over day money", _set("defaults/budgets/money_per_task", 20),
     "/defaults/budgets/money_per_task", "semantic"),
    ("secrets lane to external", _set("lanes/Code-Impl/fallbacks/+", route("anthropic", "claude")),
     "/lanes/Code-Impl/fallbacks/1/provider", "semantic"),
    ("pii lane to external", _set("lanes/Data-Schema/primary", route("anthropic", "claude")),
     "/lanes/Data-Schema/primary/provider", "semantic"),
    ("external not allowed", _set("lanes/Vector-Ops/fallbacks", [route("anthropic", "claude")]),
     "/lanes/Vector-Ops/fallbacks/0/provider", "semantic"),
]


@pytest.mark.parametrize("what,mutate,ptr,kind", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_policies_point_at_the_problem(what, mutate, ptr, kind):
    data = example()
    if what == "external not allowed":
        data["lanes"]["Vector-Ops"]["data"] = {"external_allowed": False}
    mutate(data)
    issues = validate_policy(data)
    assert {i.pointer for i in issues} == {ptr}, [str(i) for i in issues]
    assert any(i.kind == kind for i in issues)
    assert all(i.message for i in issues)


def test_inline_credentials_are_never_echoed(tmp_path, capsys):
    data = example()
    data["providers"]["anthropic"]["api_key"] = "sk-ant-SECRET-VALUE-1"
    data["providers"]["ollama"]["api_key_env"] = "sk-proj-SECRET-VALUE-2"
    issues = validate_policy(data)
    assert {i.pointer for i in issues} == {"/providers/anthropic/api_key", "/providers/ollama/api_key_env"}
    assert "environment variable" in " ".join(i.message for i in issues)
    f = tmp_path / "leaky.json"
    f.write_text(json.dumps(data))
    assert policy_cmd.run(argparse.Namespace(policy_command="validate", file=str(f), json=False)) == 1
    with pytest.raises(PolicyError) as err:
        load_policy(f)
    out = capsys.readouterr().out + str(err.value) + json.dumps([i.model_dump() for i in issues])
    assert "SECRET-VALUE" not in out


def test_validate_rejects_non_objects():
    assert [(i.pointer, i.kind) for i in validate_policy([1, 2])] == [("", "schema")]


def test_load_policy_errors_are_one_line(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "version": 1,\n  "providers": {,}\n}')
    with pytest.raises(PolicyError, match=r"line 3, column 17"):
        load_policy(bad)
    invalid = tmp_path / "invalid.json"
    data = example()
    data["lanes"]["chat"]["primary"]["provider"] = "ghost"
    data["lanes"]["chat"]["timeout_s"] = -5
    invalid.write_text(json.dumps(data))
    with pytest.raises(PolicyError) as err:
        load_policy(invalid)
    assert "\n" not in str(err.value) and "/lanes/chat/timeout_s" in str(err.value) and "1 more issue" in str(err.value)
    assert [i.pointer for i in err.value.issues] == ["/lanes/chat/timeout_s", "/lanes/chat/primary/provider"]


# -- the CLI -------------------------------------------------------------------------------

def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="direng")
    sub = parser.add_subparsers(dest="command")
    policy_cmd.add_parser(sub)
    return policy_cmd.run(parser.parse_args(argv))


def test_cli_valid_policy(capsys):
    assert _cli(["policy", "validate", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip() == f"ok: {EXAMPLE} is a valid policy"
    assert _cli(["policy", "validate", str(EXAMPLE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_invalid_policy_lists_pointers(tmp_path, capsys):
    data = example()
    data["lanes"]["chat"]["primary"]["provider"] = "ghost"
    data["lanes"]["Narrative"]["budgets"]["money_per_task"] = "lots"
    f = tmp_path / "p.json"
    f.write_text(json.dumps(data))
    assert _cli(["policy", "validate", str(f)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["/lanes/Narrative/budgets/money_per_task: 'lots' is not of type 'number', 'null'",
                     "/lanes/chat/primary/provider: unknown provider 'ghost' (defined: anthropic, local, ollama)"]
    assert _cli(["policy", "validate", str(f), "--json"]) == 1
    issues = json.loads(capsys.readouterr().out)
    assert [(i["pointer"], i["kind"]) for i in issues] == [("/lanes/Narrative/budgets/money_per_task", "schema"),
                                                           ("/lanes/chat/primary/provider", "semantic")]


def test_cli_missing_or_broken_file_is_one_line_on_stderr(tmp_path, capsys):
    assert _cli(["policy", "validate", str(tmp_path / "missing.json")]) == 1
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1 and "not found" in out.err
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1,,}')
    assert _cli(["policy", "validate", str(broken), "--json"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and "invalid JSON at line 1, column 15" in out.err and len(out.err.strip().splitlines()) == 1


def test_cli_and_broker_imports_stay_light():
    code = ("import sys, direng_kernel.cli.policy_cmd, direng_kernel.broker; "
            "heavy = {'httpx', 'jsonschema'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    res = subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "policy", "validate", str(EXAMPLE)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and "is a valid policy" in res.stdout


# -- wire protocols ------------------------------------------------------------------------

def test_openai_wire_text_usage_and_cost(server):
    server.reply(FakeReply(content="It is created in `client.py`.", input_tokens=1200, output_tokens=300))
    policy = make_policy({"ollama": oa(server, prices=(0.5, 2.0), key_env="FAKE_OPENAI_KEY")},
                         {"primary": route("ollama", "llama3.1:8b")})
    broker = Broker(policy, None, None)
    req = ProviderRequest(messages=[ChatMessage(role="system", content="be brief"),
                                    ChatMessage(role="user", content="where?")], max_output_tokens=64, temperature=0.2)
    resp = broker.complete(req)
    assert resp.content == "It is created in `client.py`." and resp.tool_calls == [] and resp.finish_reason == "stop"
    u = resp.usage
    assert (u.provider, u.model, u.input_tokens, u.output_tokens) == ("ollama", "llama3.1:8b", 1200, 300)
    assert u.cost == pytest.approx(1.2 * 0.5 + 0.3 * 2.0) and u.latency_ms > 0
    [got] = server.requests
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == "Bearer test-openai-key"
    assert got.body == {"model": "llama3.1:8b", "max_tokens": 64, "temperature": 0.2,
                        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "where?"}]}


def test_openai_wire_tool_calls_and_tool_results(server):
    server.reply(FakeReply(content="", tool_calls=[{"id": "call_1", "name": "search",
                                                    "arguments": {"query": "Session", "k": 3}}]),
                 FakeReply(content="Found it."))
    broker = Broker(make_policy({"oai": oa(server)}, {"primary": route("oai")}), None, None)
    first = broker.complete(ProviderRequest(messages=[ChatMessage(role="user", content="find Session")],
                                            tools=[SEARCH_TOOL]))
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == [ToolCall(id="call_1", name="search", arguments={"query": "Session", "k": 3})]
    assert server.requests[0].body["tools"] == [{"type": "function", "function": {
        "name": "search", "description": "search the code index", "parameters": SEARCH_TOOL.parameters}}]
    assert "authorization" not in server.requests[0].headers  # no api_key_env: no credentials sent
    history = [ChatMessage(role="user", content="find Session"),
               ChatMessage(role="assistant", content="", tool_calls=first.tool_calls),
               ChatMessage(role="tool", name="search", tool_call_id="call_1", content="client.py:10-40 Session")]
    second = broker.complete(ProviderRequest(messages=history, tools=[SEARCH_TOOL]))
    assert second.content == "Found it."
    sent = server.requests[1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "search", "arguments": '{"query": "Session", "k": 3}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "client.py:10-40 Session"}


def test_anthropic_wire_system_tools_tool_use_and_results(server):
    server.reply(FakeReply(content="Let me search.", tool_calls=[{"id": "toolu_1", "name": "search",
                                                                  "arguments": {"query": "Session"}}],
                           input_tokens=2000, output_tokens=100))
    broker = Broker(make_policy({"claude": an(server, prices=(3.0, 15.0))},
                                {"primary": route("claude", "claude-sonnet-4-5")}), None, None)
    history = [ChatMessage(role="system", content="You are DirEng."),
               ChatMessage(role="user", content="find Session and Client"),
               ChatMessage(role="assistant", content="", tool_calls=[
                   ToolCall(id="toolu_0", name="search", arguments={"query": "Session"}),
                   ToolCall(id="toolu_9", name="search", arguments={"query": "Client"})]),
               ChatMessage(role="tool", name="search", tool_call_id="toolu_0", content="a.py:1-9"),
               ChatMessage(role="tool", name="search", tool_call_id="toolu_9", content="b.py:3-4")]
    resp = broker.complete(ProviderRequest(messages=history, tools=[SEARCH_TOOL], max_output_tokens=500))
    assert resp.content == "Let me search." and resp.finish_reason == "tool_calls"
    assert resp.tool_calls == [ToolCall(id="toolu_1", name="search", arguments={"query": "Session"})]
    assert (resp.usage.provider, resp.usage.input_tokens, resp.usage.output_tokens) == ("claude", 2000, 100)
    assert resp.usage.cost == pytest.approx(2.0 * 3.0 + 0.1 * 15.0)
    [got] = server.requests
    assert got.path == "/v1/messages"
    assert got.headers["x-api-key"] == "test-anthropic-key" and got.headers["anthropic-version"] == "2023-06-01"
    body = got.body
    assert body["system"] == "You are DirEng." and body["max_tokens"] == 500 and body["model"] == "claude-sonnet-4-5"
    assert body["tools"] == [{"name": "search", "description": "search the code index",
                              "input_schema": SEARCH_TOOL.parameters}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "find Session and Client"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_0", "name": "search", "input": {"query": "Session"}},
            {"type": "tool_use", "id": "toolu_9", "name": "search", "input": {"query": "Client"}}]},
        {"role": "user", "content": [  # both results in ONE user turn
            {"type": "tool_result", "tool_use_id": "toolu_0", "content": "a.py:1-9"},
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "b.py:3-4"}]}]


def test_missing_key_env_falls_back_without_sending(server, monkeypatch):
    monkeypatch.delenv("FAKE_ANTHROPIC_KEY")
    local = FakeLocal()
    broker = Broker(make_policy({"claude": an(server)}, {"primary": route("claude"), "fallbacks": [route("local")]}),
                    lambda: local, None)
    assert broker.complete(ask()).content == "local answer"
    assert server.requests == [] and len(local.requests) == 1


# -- retries and fallback ------------------------------------------------------------------

def test_retries_429_then_succeeds(server):
    server.fail(429, times=2, retry_after=0).reply(FakeReply(content="third time"))
    broker = Broker(make_policy({"oai": oa(server)}, {"primary": route("oai"), "retries": 2}), None, None)
    assert broker.complete(ask()).content == "third time"
    assert len(server.requests) == 3
    [row] = broker.usage_summary()
    assert (row["calls"], row["errors"], row["input_tokens"]) == (3, 2, 10)


def test_retries_exhausted_then_fallback(server, server2):
    server.fail(429, times=5, retry_after=0)
    server2.reply(FakeReply(content="from the fallback"))
    broker = Broker(make_policy({"a": oa(server), "b": oa(server2)},
                                {"primary": route("a"), "fallbacks": [route("b")], "retries": 1}), None, None,
                    backoff_s=0)
    resp = broker.complete(ask())
    assert resp.content == "from the fallback" and resp.usage.provider == "b"
    assert len(server.requests) == 2 and len(server2.requests) == 1


def test_500_falls_back_and_4xx_is_not_retried(server, server2):
    server.fail(500).fail(400)
    broker = Broker(make_policy({"a": oa(server), "b": oa(server2)},
                                {"primary": route("a"), "fallbacks": [route("b")], "retries": 0}), None, None)
    assert broker.complete(ask()).usage.provider == "b"
    strict = Broker(make_policy({"a": oa(server), "b": oa(server2)},
                                {"primary": route("a"), "fallbacks": [route("b")], "retries": 3}), None, None)
    assert strict.complete(ask()).usage.provider == "b"
    assert len(server.requests) == 2  # one 500 (retries 0), one 400 (never retried)


def test_timeout_falls_back(server, server2):
    server.stall(3.0)
    broker = Broker(make_policy({"slow": oa(server), "b": oa(server2)},
                                {"primary": route("slow"), "fallbacks": [route("b")], "timeout_s": 0.3,
                                 "retries": 2}), None, None)
    resp = broker.complete(ask())
    # the stalled provider would have answered after 3 s: "b" answering means the 0.3 s timeout fired
    # (how fast the fallback is: benchmarks/safety_bench.py)
    assert resp.usage.provider == "b" and resp.content == "ok"
    assert len(server.requests) == 1 and len(server2.requests) == 1  # a timeout moves on; it is not retried


def test_chain_exhausted_lists_every_route(server):
    server.fail(503)
    local = FakeLocal(fail=ProviderError("index is not built"))
    policy = make_policy({"a": oa(server), "claude": an(server, key_env="NOT_SET_ANYWHERE")},
                         {"primary": route("local", "retrieval"), "fallbacks": [route("a", "m1"), route("claude", "c")],
                          "retries": 0})
    with pytest.raises(BrokerError) as err:
        Broker(policy, lambda: local, None).complete(ask())
    msg = str(err.value)
    assert "no route could serve the request (3 tried)" in msg and "\n" not in msg
    assert [a.route for a in err.value.attempts] == ["local/retrieval", "a/m1", "claude/c"]
    reasons = [a.reason for a in err.value.attempts]
    assert reasons[0] == "index is not built" and "HTTP 503" in reasons[1] and "NOT_SET_ANYWHERE" in reasons[2]
    assert all(r in msg for r in reasons)


def test_unconfigured_lane_and_missing_local_factory():
    policy = make_policy({}, {"primary": route("local", "retrieval")})
    with pytest.raises(BrokerError, match="lane 'Narrative' is not configured"):
        Broker(policy, lambda: FakeLocal(), None).complete(ask(lane="Narrative"))
    with pytest.raises(BrokerError, match="no local provider is available"):
        Broker(policy, None, None).complete(ask())


# -- budgets -------------------------------------------------------------------------------

def test_token_budget_is_enforced_before_the_call(server):
    broker = Broker(make_policy({"a": oa(server)}, {"primary": route("a"), "budgets": {"tokens_per_task": 100}}),
                    None, None)
    req = ask("x" * 40, max_output_tokens=200)
    assert estimate_tokens(req) == (10, 200)
    with pytest.raises(BrokerError, match=r"over budget: tokens_per_task is 100.*could need 210"):
        broker.complete(req, task_id="t1")
    assert server.requests == []
    assert broker.complete(ask("x" * 40, max_output_tokens=50), task_id="t1").content == "ok"


def test_money_budget_skips_an_expensive_provider(server, server2):
    policy = make_policy({"pricey": oa(server, prices=(10.0, 10.0)), "cheap": oa(server2, prices=(0.01, 0.01))},
                         {"primary": route("pricey"), "fallbacks": [route("cheap")],
                          "budgets": {"money_per_task": 0.5}})
    resp = Broker(policy, None, None).complete(ask("y" * 400, max_output_tokens=100))  # ~200 tokens: 2.0 vs 0.002
    assert resp.usage.provider == "cheap" and resp.usage.cost == pytest.approx(0.015 * 0.01)
    assert server.requests == [] and len(server2.requests) == 1


def test_per_task_budget_accumulates(server):
    server.reply(*[FakeReply(input_tokens=100, output_tokens=200) for _ in range(5)])
    broker = Broker(make_policy({"a": oa(server)}, {"primary": route("a"), "budgets": {"tokens_per_task": 1000}}),
                    None, None)
    req = ask("z" * 40, max_output_tokens=300)  # worst case 310 tokens; actual 300
    for _ in range(3):
        broker.complete(req, task_id="t1")  # 300, 600, 900 used
    with pytest.raises(BrokerError, match="task 't1' used 900"):
        broker.complete(req, task_id="t1")
    assert len(server.requests) == 3
    broker.complete(req, task_id="t2")  # another task has its own budget
    assert len(server.requests) == 4


def test_per_day_ledger_is_reloaded_from_the_log(server, tmp_path):
    log = tmp_path / "usage.jsonl"
    yesterday = (NOW - timedelta(days=1)).date().isoformat()
    log.write_text(UsageRecord(ts="x", day=yesterday, lane="chat", provider="a", model="m",
                               input_tokens=10**6).model_dump_json() + "\n" + "not json\n")
    server.reply(*[FakeReply(input_tokens=100, output_tokens=200) for _ in range(3)])
    policy = make_policy({"a": oa(server, prices=(1.0, 1.0))},
                         {"primary": route("a"), "budgets": {"tokens_per_day": 1000}})
    req = ask("w" * 40, max_output_tokens=400)  # worst case 410 tokens; actual 300
    first = Broker(policy, None, log, clock=lambda: NOW)
    first.complete(req, task_id="t1")
    first.complete(req, task_id="t2")  # yesterday's million tokens do not count today
    lines = [json.loads(line) for line in log.read_text().splitlines()[2:]]
    assert [(r["day"], r["task_id"], r["input_tokens"], r["output_tokens"], r["ok"]) for r in lines] == \
        [("2025-03-14", "t1", 100, 200, True), ("2025-03-14", "t2", 100, 200, True)]
    assert lines[0]["cost"] == pytest.approx(0.3) and lines[0]["policy_hash"] == policy.hash

    again = Broker(policy, None, log, clock=lambda: NOW)  # a restart: totals come back from the log
    assert again.ledger.day_totals("chat", "2025-03-14").tokens == 600
    with pytest.raises(BrokerError, match=r"tokens_per_day is 1000; lane today \(2025-03-14\) used 600"):
        again.complete(req, task_id="t3")
    assert len(server.requests) == 2
    tomorrow = Broker(policy, None, log, clock=lambda: NOW + timedelta(days=1))
    assert tomorrow.complete(req).content == "ok"
    rows = {(r["provider"], r["model"]): r for r in tomorrow.usage_summary()}
    assert rows[("a", "m")]["calls"] == 4 and rows[("a", "m")]["input_tokens"] == 10**6 + 300


def test_usage_summary_per_lane_and_provider(server):
    local = FakeLocal()
    data = {"version": 1, "providers": {"local": {"type": "local", "external": False}, "a": oa(server)},
            "lanes": {"chat": {"primary": route("a")}, "Narrative": {"primary": route("local", "retrieval")}}}
    broker = Broker(Policy.model_validate(data), lambda: local, None)
    broker.complete(ask())
    broker.complete(ask())
    resp = broker.complete(ask(lane="Narrative"))
    assert (resp.usage.provider, resp.usage.model) == ("local", "retrieval")
    summary = broker.usage_summary()
    assert [(r["lane"], r["provider"], r["calls"], r["tokens"]) for r in summary] == \
        [("Narrative", "local", 1, 7), ("chat", "a", 2, 30)]


# -- data rules ----------------------------------------------------------------------------

def test_flagged_content_never_reaches_an_external_provider_redact(server):
    local = FakeLocal()
    broker = Broker(make_policy({"claude": an(server)},
                                {"primary": route("claude"), "fallbacks": [route("local", "retrieval")],
                                 "data": {"on_flagged": "redact"}}), lambda: local, None)
    resp = broker.complete(ask("password=hunter2"), content_flags={"secret"})
    assert resp.content == "local answer" and server.requests == []
    assert broker.complete(ask("harmless")).usage.provider == "claude"  # unflagged content may go out
    assert len(server.requests) == 1


def test_redact_with_only_external_routes_asks_for_redaction(server):
    broker = Broker(make_policy({"claude": an(server)}, {"primary": route("claude"), "data": {"on_flagged": "redact"}}),
                    None, None)
    with pytest.raises(BrokerError) as err:
        broker.complete(ask("ssn 123-45-6789"), content_flags={"pii"})
    assert err.value.needs_redaction and "must be redacted" in str(err.value)
    assert "lanes.chat.data.on_flagged = redact" in str(err.value) and server.requests == []


def test_block_refuses_flagged_content_naming_the_rule(server):
    local = FakeLocal(fail=ProviderError("local engine busy"))
    broker = Broker(make_policy({"claude": an(server)},
                                {"primary": route("local", "retrieval"), "fallbacks": [route("claude")],
                                 "data": {"on_flagged": "block"}}), lambda: local, None)
    with pytest.raises(BrokerError, match=r"blocked by rule lanes\.chat\.data\.on_flagged = block") as err:
        broker.complete(ask("AKIA..."), content_flags={"secret"})
    assert not err.value.needs_redaction and [a.route for a in err.value.attempts] == ["local/retrieval", "claude/m"]
    assert server.requests == [] and len(local.requests) == 1


def test_sensitive_lane_refuses_external_even_with_an_unvalidated_policy(server):
    policy = make_policy({"claude": an(server)}, {"primary": route("claude"), "data": {"may_see_secrets": True}},
                         validate=False)
    assert [i.pointer for i in validate_policy(policy.model_dump(mode="json", by_alias=True, exclude_none=True))] \
        == ["/lanes/chat/primary/provider"]
    with pytest.raises(BrokerError, match="external provider refused: the lane may_see_secrets"):
        Broker(policy, None, None).complete(ask())
    assert server.requests == []
