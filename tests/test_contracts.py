"""Versioned agent contracts: the generative providers' system prompts (docs/contracts/)."""

from __future__ import annotations

import json

import pytest

from direng_kernel import contracts
from direng_kernel.broker.broker import Broker
from direng_kernel.direng.assistant import DirEng, LocalProvider
from fake_providers import FakeModelServer, FakeReply
from test_direng import generative_policy, wb  # noqa: F401 — the indexed sample, a fixture


def test_both_contracts_load_with_their_version():
    for name in (contracts.DIRENG, contracts.PEX):
        c = contracts.load(name)
        assert c.path.name == f"{name}.md" and c.text.startswith("# ")
        assert len(c.version) == len("YYYY-MM-DD-NNN") and f"Version: {c.version}" in c.text
        for heading in ("Identity", "Responsibilities", "Tools", "Citation rules", "Data rules", "Quality gates",
                        "Escalation", "Example exchange"):
            assert f"## {heading}" in c.text, (name, heading)


def test_a_missing_or_unversioned_contract_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRENG_CONTRACTS_DIR", str(tmp_path))
    with pytest.raises(contracts.ContractError, match=r"DIRENG_SYSTEM_PROMPT\.md not found"):
        contracts.load(contracts.DIRENG)
    (tmp_path / "DIRENG_SYSTEM_PROMPT.md").write_text("# DirEng\n\nno version line here\n")
    with pytest.raises(contracts.ContractError, match="has no 'Version: YYYY-MM-DD-NNN' line"):
        contracts.load(contracts.DIRENG)


@pytest.fixture()
def generative(wb, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-key")
    with FakeModelServer() as server:
        d = DirEng(wb)
        d.broker = Broker(generative_policy(server), local_factory=lambda: LocalProvider(d),
                          usage_log=tmp_path / "usage.jsonl")
        yield d, server, tmp_path / "usage.jsonl"


def test_a_provider_request_carries_the_contract_and_the_usage_its_version(generative):
    d, server, usage_log = generative
    server.reply(FakeReply(content="Cards are charged in `charge_card` (shop/payment.py:10-14)."))
    answer = d.chat("how are cards charged", session="contract")
    contract = contracts.load(contracts.DIRENG)
    system = server.requests[0].body["messages"][0]
    assert answer.provider == "fake-openai"
    assert system["role"] == "system" and system["content"] == contract.text
    (record,) = [json.loads(line) for line in usage_log.read_text().splitlines()]
    assert record["contract_version"] == contract.version


def test_without_a_contract_no_model_is_asked_and_the_index_still_answers(generative, tmp_path, monkeypatch):
    d, server, _ = generative
    monkeypatch.setenv("DIRENG_CONTRACTS_DIR", str(tmp_path / "nowhere"))
    answer = d.chat("how are cards charged", session="no-contract")
    assert server.requests == []
    assert answer.provider == "local" and "charge_card" in answer.markdown
    assert any("DIRENG_SYSTEM_PROMPT.md not found" in n for n in answer.notices)
