"""Concurrent requests never see each other's state.

One `DirEng` serves every chat of a Jupyter server. These tests send many chats at once — to a
real server over HTTP, and to one in-process `DirEng` whose broker routes to an external
provider (the FAKE model server of fake_providers.py, standing in for a remote API) — and check
that each answer cites what its own question found and that the data rules decided on each
message's own content.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_repo
from direng_kernel.broker.broker import Broker
from direng_kernel.broker.policy import Policy, validate_policy
from direng_kernel.direng.assistant import DirEng, LocalProvider
from direng_kernel.workbench import Workbench
from fake_providers import FakeModelServer

pytestmark = pytest.mark.timeout(300)

QUESTIONS = [
    "how are credit cards charged?",
    "how is the shipping cost computed?",
    "how do we compute the cart total with tax?",
    "what is a discount cart?",
    "where does the payment gateway decline a charge?",
    "how are orders shipped to an address?",
]


def cited(reply: dict) -> list[tuple]:
    return [(c["path"], c.get("symbol"), c["start_line"], c["end_line"]) for c in reply["citations"]]


@pytest.mark.slow
def test_concurrent_chats_over_the_server_cite_their_own_question(tmp_path):
    from test_server import running_server

    with running_server(tmp_path, "--DirEngExtension.watch=False", "--DirEngExtension.run_tasks=False") as srv:
        messages = [QUESTIONS[i % len(QUESTIONS)] for i in range(24)]

        def ask(item):
            i, message = item
            status, reply = srv.post("chat", {"message": message, "session": f"c{i}-{len(message)}"})
            assert status == 200, reply
            return reply

        alone = {q: ask((100 + n, q)) for n, q in enumerate(QUESTIONS)}
        assert len({tuple(cited(r)) for r in alone.values()}) == len(QUESTIONS), "questions must differ in what they cite"
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(ask, enumerate(messages)))
        wrong = [(m, cited(r)[:2]) for m, r in zip(messages, together) if cited(r) != cited(alone[m])]
        assert not wrong, f"{len(wrong)} of {len(messages)} answers cite another question's hits: {wrong[:3]}"
        assert all(r["markdown"] == alone[m]["markdown"] for m, r in zip(messages, together))


def flagged_policy(server: FakeModelServer) -> Policy:
    data = {"version": 1, "providers": {
        "local": {"type": "local", "external": False},
        "remote": {"type": "openai", "base_url": server.url, "api_key_env": "FAKE_OPENAI_KEY", "external": True}},
        "lanes": {"chat": {"primary": {"provider": "remote", "model": "m"},
                           "fallbacks": [{"provider": "local", "model": "retrieval"}], "retries": 0,
                           "data": {"on_flagged": "redact"}}}}
    assert validate_policy(data) == []
    return Policy.model_validate(data)


def test_data_rules_hold_under_concurrency(tmp_path, monkeypatch):
    """A message holding a secret never reaches the external provider, even while clean messages
    are routed there at the same moment (and every clean one does get there)."""
    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-key")
    wb = Workbench(make_repo(tmp_path / "repo"))
    wb.index()
    # Long messages: scanning them takes long enough for the threads to interleave mid-chat.
    notes = " ".join(f"line {k} of the order notes" for k in range(400))
    messages = []
    for i in range(32):
        nonce = f"nonce{i:02d}q"
        if i % 2:
            messages.append((nonce, True, f"{nonce} is AKIA2E5XQ7RTY3KLM4PZ our key? how are cards charged {notes}"))
        else:
            messages.append((nonce, False, f"{nonce} how are cards charged {notes}"))
    with FakeModelServer() as server:
        d = DirEng(wb)
        d.broker = Broker(flagged_policy(server), local_factory=lambda: LocalProvider(d), usage_log=None)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda m: d.chat(m[2], session=m[0]), messages))
        sent = " ".join(str(r.body) for r in server.requests)
    reached = set(re.findall(r"nonce\d\dq", sent))
    secret = {n for n, is_secret, _ in messages if is_secret}
    clean = {n for n, is_secret, _ in messages if not is_secret}
    assert not reached & secret, f"messages holding a secret reached the external provider: {sorted(reached & secret)}"
    assert reached == clean
    for (nonce, is_secret, _), answer in zip(messages, answers):
        assert answer.provider == ("local" if is_secret else "remote"), nonce
        assert "AKIA2E5XQ7RTY3KLM4PZ" not in answer.markdown
    wb.close()
