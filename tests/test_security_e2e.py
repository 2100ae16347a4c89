"""A fake AWS key and a fake credit card planted in a repository never leave it.

Index it, chat about it, run a lane over it: neither value may appear anywhere under the store
directory (index, vectors, task store, run folders, artifacts, passports, logs) nor in any answer
or output notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import commit_all, make_repo
from direng_kernel.models import TaskState

pytestmark = pytest.mark.slow
AWS_KEY = "AKIAQ3EGRA7PLANTED7X"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY9"
CARD = "4111 1111 1111 1111"
CARD_DIGITS = CARD.replace(" ", "")


def leaked(root: Path) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in (AWS_KEY, AWS_SECRET, CARD, CARD_DIGITS):
                if value.encode() in data:
                    hits.append(f"{path}: {value[:6]}…")
    return hits


def test_planted_secret_and_card_never_reach_the_store_or_outputs(tmp_path):
    from direng_kernel.engine import Engine

    repo = make_repo(tmp_path / "repo")
    (repo / "shop" / "settings.py").write_text(
        '"""Deployment settings for the shop."""\n\n'
        f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n'
        f'AWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"\n\n\n'
        "def test_card():\n"
        f'    """The card used in payment tests: {CARD}."""\n'
        f'    return "{CARD}"\n')
    commit_all(repo, "settings")
    engine = Engine(repo)
    engine.index()
    engine.workbench.fill_dense()
    answers = [engine.chat("where are the AWS deployment settings?"), engine.chat("explain test_card"),
               engine.chat("search card used in payment tests")]
    for answer in answers:
        text = answer.model_dump_json()
        assert AWS_KEY not in text and AWS_SECRET not in text and CARD not in text and CARD_DIGITS not in text
    assert "settings.py" in answers[0].markdown  # still found, only the values are hidden
    orch = engine.orchestrator
    task, _ = orch.new_task("document the public API", "", "narrative", {})
    orch.estimate(task.id)
    orch.approve(task.id)
    orch.start(task.id)
    done = orch.run_here(task.id, timeout=300)
    assert done.state == TaskState.succeeded, done.error
    store = repo / ".direng"
    assert (store / "runs" / done.run_id / "output.ipynb").exists()
    assert leaked(store) == []


def test_security_events_are_audited_and_the_chain_verifies(tmp_path, monkeypatch):
    import json as _json

    from conftest import FIXTURES, run_cli
    from direng_kernel.engine import Engine
    from direng_kernel.security import audit
    from direng_kernel.security.vault import Vault

    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("DIRENG_AUDIT_LOG", str(log))
    monkeypatch.setenv("DIRENG_LANES_PATH", str(FIXTURES / "test_lanes"))
    repo = make_repo(tmp_path / "repo")
    minted = run_cli("token", "mint", "--scope", "index:read", "--ttl", "600")
    assert minted.returncode == 0, minted.stderr
    Vault().set("DEPLOY_TOKEN", "s3cr3t-deploy-value")
    assert Vault().get("DEPLOY_TOKEN") == "s3cr3t-deploy-value"
    engine = Engine(repo, policy_path=tmp_path / "policy.json")
    policy = _json.loads((FIXTURES.parent.parent / "policy" / "model_broker_example.json").read_text())
    assert engine.apply_policy(policy) == []
    orch = engine.orchestrator
    for mode in ("denied", "quick"):
        task, _ = orch.new_task("t", "", "narrative", {"mode": mode})
        orch.estimate(task.id)
        orch.approve(task.id)
        orch.start(task.id)
        done = orch.run_here(task.id, timeout=300)
    engine.replay(done.run_id, dry_run=True)
    events = [r["event"] for r in audit.read_records(log)]
    for expected in ("token.issue", "secret.access", "policy.change", "command.denied", "replay"):
        assert expected in events, events
    assert "s3cr3t-deploy-value" not in log.read_text()
    check = run_cli("audit", "verify", "--log", str(log))
    assert check.returncode == 0, check.stdout + check.stderr
    lines = log.read_text().splitlines()
    record = _json.loads(lines[1])
    record["actor"] = "mallory"
    lines[1] = _json.dumps(record)
    log.write_text("\n".join(lines) + "\n")
    tampered = run_cli("audit", "verify", "--log", str(log))
    assert tampered.returncode == 1 and "2" in tampered.stdout + tampered.stderr
