"""PEX escalates instead of failing: a gate fails while the lane allows a retry, a command is
denied, a budget would be exceeded, or the p90 estimate is above the lane's threshold. The task
waits, `escalated`, with the evidence; each answer (retry, change lane, raise budget, cancel) is
a legal transition and is audited. Real papermill runs of the test lane (tests/fixtures/test_lanes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES, make_repo
from direng_kernel.errors import DirEngError
from direng_kernel.models import TaskState
from direng_kernel.pas.passport import PassportStore
from direng_kernel.pex import states
from direng_kernel.pex.orchestrator import Orchestrator
from direng_kernel.security import audit
from fake_providers import FakeModelServer

pytestmark = pytest.mark.slow
S = TaskState


def test_the_state_table_has_escalation_and_its_answers():
    assert S.escalated in states.TRANSITIONS[S.running] and S.escalated in states.TRANSITIONS[S.estimated]
    assert states.TRANSITIONS[S.escalated] == {S.queued, S.estimated, S.cancelled}
    for illegal in (S.succeeded, S.approved, S.running, S.failed):
        with pytest.raises(states.IllegalTransition):
            states.check("t", S.escalated, illegal)


@pytest.fixture()
def lanes(tmp_path, monkeypatch):
    """The test lanes, with gates that allow one retry."""
    folder = tmp_path / "lanes"
    shutil.copytree(FIXTURES / "test_lanes", folder)
    gates = folder / "gates" / "narrative.yaml"
    gates.write_text(gates.read_text() + "retries: 1\n")
    monkeypatch.setenv("DIRENG_LANES_PATH", str(folder))
    return folder


def orchestrator(tmp_path, policy=None) -> Orchestrator:
    root = make_repo(tmp_path / "repo")
    return Orchestrator(root, root / ".direng", policy_path=policy)


def run(orch: Orchestrator, **params):
    task, _ = orch.new_task("test", "t", "narrative", params)
    orch.estimate(task.id)
    orch.approve(task.id)
    return orch.start(task.id, "here")


def test_a_failed_gate_escalates_while_retries_remain_then_fails(tmp_path, lanes):
    orch = orchestrator(tmp_path)
    task = run(orch, mode="bad_kpi")
    assert task.state == S.escalated and task.escalation.kind == "gate_failed"
    assert task.escalation.evidence["kpis"] == {"done": 0.0} and "done == 1" in task.escalation.evidence["gates"][0]
    assert set(task.escalation.options) == {"retry", "change_lane", "cancel"}
    passport = PassportStore(orch.store_dir).load(task.run_id)
    assert passport.escalation.kind == "gate_failed" and passport.status == "failed"
    with pytest.raises(DirEngError, match="raise_budget does not answer this escalation"):
        orch.raise_budget(task.id)
    again = orch.retry(task.id)
    assert again.state == S.queued and again.run_id != task.run_id
    done = orch.start(task.id, "here")
    assert done.state == S.failed and "quality gate failed" in done.error  # the one retry is used up
    records = [r for r in audit.read_records() if r.get("event") == "task.escalation.answered"]
    assert any(r["data"].get("task_id") == task.id and r["data"].get("choice") == "retry" for r in records)


def test_a_denied_command_escalates_with_the_rule_and_can_change_lane_or_cancel(tmp_path, lanes):
    orch = orchestrator(tmp_path)
    task = run(orch, mode="denied")
    assert task.state == S.escalated and task.escalation.kind == "denied"
    assert task.escalation.evidence["argv"][0] == "curl" and task.escalation.evidence["rule"]
    moved = orch.change_lane(task.id, "graph-ops")
    assert (moved.state, moved.lane) == (S.estimated, "graph-ops") and moved.estimate.lane == "graph-ops"
    with pytest.raises(DirEngError, match="not escalated"):
        orch.retry(task.id)


def test_a_p90_above_the_lanes_threshold_escalates_and_a_raised_budget_accepts_it(tmp_path, lanes):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "providers": {"local": {"type": "local", "external": False}},
                                  "lanes": {"Narrative": {"primary": {"provider": "local", "model": "retrieval"},
                                                          "escalate_p90_s": 5}}}))
    orch = orchestrator(tmp_path, policy)
    task, _ = orch.new_task("test", "t", "narrative", {"mode": "quick"})
    task = orch.estimate(task.id)
    assert task.state == S.escalated and task.escalation.kind == "estimate"
    assert task.escalation.evidence["escalate_p90_s"] == 5 and "raise_budget" in task.escalation.options
    with pytest.raises(DirEngError, match="factor must be a number above 1"):
        orch.raise_budget(task.id, 0.5)
    accepted = orch.raise_budget(task.id, 1e2)
    assert accepted.state == S.estimated and accepted.budget_factor == 100
    assert orch.approve(task.id).state == S.approved
    other, _ = orch.new_task("test", "t", "narrative", {"mode": "quick"})
    assert orch.estimate(other.id).state == S.escalated
    assert orch.cancel(other.id).state == S.cancelled  # cancel answers an escalation too


def test_a_model_call_over_budget_escalates_and_a_raised_budget_runs_again(tmp_path, lanes, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "k")
    with FakeModelServer() as fake:
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"version": 1, "providers": {
            "fake": {"type": "openai", "base_url": fake.url, "api_key_env": "FAKE_OPENAI_KEY", "external": False}},
            "lanes": {"Narrative": {"primary": {"provider": "fake", "model": "m"}, "budgets": {"tokens_per_task": 50}}}}))
        orch = orchestrator(tmp_path, policy)
        task = run(orch, mode="model")
        assert task.state == S.escalated and task.escalation.kind == "budget", (task.state, task.error)
        assert fake.requests == []  # refused before the call
        assert task.escalation.evidence["budgets"]["tokens_per_task"] == 50
        assert "over budget" in task.escalation.evidence["refusals"][0]
        queued = orch.raise_budget(task.id, 100)
        assert queued.state == S.queued and queued.budget_factor == 100
        done = orch.start(task.id, "here")
        assert done.state == S.succeeded and len(fake.requests) == 1


@pytest.mark.e2e("direng task retry", "direng task change_lane", "direng task raise_budget")
def test_the_cli_shows_an_escalation_and_answers_it(tmp_path, lanes):
    root = make_repo(tmp_path / "repo")

    def cli(*args, env=None, expect=0):
        proc = subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", *args, "--root", str(root)],
                              capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
        assert proc.returncode == expect, (args, proc.stdout, proc.stderr)
        return proc.stdout

    tid = json.loads(cli("task", "new", "--title", "t", "--lane", "narrative", "--param", "mode=denied", "--json"))["id"]
    cli("task", "estimate", tid)
    cli("task", "approve", tid)
    out = cli("task", "start", tid, expect=1)  # escalated: not a success
    assert "escalated (denied)" in out and f"direng task retry {tid}" in out and "--lane LANE" in out
    assert "queued" in cli("task", "retry", tid)  # (running it again: test_a_failed_gate_…, over HTTP in test_e2e_rest)

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "providers": {"local": {"type": "local", "external": False}},
                                  "lanes": {"Narrative": {"primary": {"provider": "local", "model": "retrieval"},
                                                          "escalate_p90_s": 5}}}))
    env = {"DIRENG_POLICY": str(policy)}
    slow = json.loads(cli("task", "new", "--title", "slow", "--lane", "narrative", "--json", env=env))["id"]
    assert "escalated (estimate)" in cli("task", "estimate", slow, env=env)
    raised = json.loads(cli("task", "raise_budget", slow, "--factor", "100", "--json", env=env))
    assert (raised["state"], raised["budget_factor"]) == ("estimated", 100)
    other = json.loads(cli("task", "new", "--title", "other", "--lane", "narrative", "--json", env=env))["id"]
    cli("task", "estimate", other, env=env)
    moved = json.loads(cli("task", "change_lane", other, "--lane", "graph-ops", "--json", env=env))
    assert (moved["state"], moved["lane"]) == ("estimated", "graph-ops")
