"""Lane overrides learned from repeated misroutes (`plms/overrides.py`): proposed with their
evidence from the routing book, accepted into the policy through the policy's own validation and
apply path (audited), honoured by the router before the classifier; invalid overrides and lanes
that are not registered are refused with the closest lane names. Through the engine, the CLI
(`direng plms overrides`) and the REST API of a real `jupyter server`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import make_repo
from direng_kernel.broker.policy import Policy, default_policy, load_policy, validate_policy
from direng_kernel.engine import Engine
from direng_kernel.errors import NotFoundError
from direng_kernel.models import LANE_IDS, LaneOverride
from direng_kernel.plms.corrections import RoutingBook, UnknownCorrectionLane
from direng_kernel.plms.overrides import matching, override_id, propose, tokens
from direng_kernel.plms.routing import Router
from direng_kernel.security import audit

TAUGHT = ["tidy the module layout", "tidy the package layout of shop", "tidy up the layout of the cart module"]
#: the rules send it to narrative ("document" comes first), and so does the classifier without corrections
PROBE = "document and tidy the layout of the billing module"


def teach(book: RoutingBook, briefs=TAUGHT, routed: str = "narrative", chosen: str = "graph-ops") -> None:
    for brief in briefs:
        book.record("task_new", brief, routed, chosen, LANE_IDS)


@pytest.fixture()
def isolated_audit(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("DIRENG_AUDIT_LOG", str(path))
    return path


def test_repeated_misroutes_propose_an_override_with_its_evidence(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    teach(book, TAUGHT[:2])
    book.record("task_new", "write up the release notes", "narrative", "narrative", LANE_IDS)  # agreed: no misroute
    book.record("routed", "tidy layout", "narrative", "narrative", LANE_IDS)  # the router's own: not a label
    assert propose(book.history().records, LANE_IDS) == []  # twice is not yet a rule

    teach(book, TAUGHT[2:])
    [proposal] = propose(book.history().records, LANE_IDS)
    o = proposal.override
    assert (o.words, o.lane, o.routed, o.corrections) == (["layout", "tidy"], "graph-ops", "narrative", 3)
    assert o.id == override_id("graph-ops", ["tidy", "layout"]) and o.id.startswith("ovr-")
    assert proposal.briefs == TAUGHT and proposal.conflicts == [] and not proposal.accepted
    assert [p.override.id for p in propose(book.history().records, LANE_IDS, existing=[o])] == [o.id]
    assert propose(book.history().records, LANE_IDS, existing=[o])[0].accepted
    assert propose(book.history().records, LANE_IDS, min_repeats=4) == []


def test_an_override_the_user_contradicts_is_not_proposed(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    teach(book)
    teach(book, ["tidy the layout of the docs", "tidy the readme layout"], chosen="code-impl")
    assert propose(book.history().records, LANE_IDS) == []  # 3 of 5 corrections with the words: below 0.8
    # a correction to a lane that is no longer registered teaches nothing
    lanes_then = [*LANE_IDS, "perf-lab"]
    for i in range(3):
        book.record("task_new", f"profile the hot path {i}", "narrative", "perf-lab", lanes_then)
    assert [p.override.lane for p in propose(book.history().records, lanes_then)] == ["perf-lab"]
    assert propose(book.history().records, LANE_IDS) == []


def engine_with_lessons(tmp_path, policy_name: str = "policy.json") -> Engine:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, policy_path=tmp_path / policy_name)
    teach(engine.orchestrator.routing)
    return engine


def test_accepting_writes_a_valid_policy_and_an_audit_entry_and_the_router_honours_it(tmp_path, isolated_audit):
    engine = engine_with_lessons(tmp_path)
    try:
        before = engine.route(PROBE)
        assert before.lane == "narrative" and before.override is None
        [proposal] = engine.lane_overrides()
        override = engine.accept_override(proposal.override.id)
        assert override == proposal.override

        written = json.loads((tmp_path / "policy.json").read_text())
        assert validate_policy(written) == []
        assert load_policy(tmp_path / "policy.json").lane_overrides == [override]
        assert engine.policy.lane_overrides == [override]
        events = {r["event"]: r for r in audit.read_records(isolated_audit)}
        assert events["policy.change"]["data"]["policy_sha256"] == engine.policy.hash
        accepted = events["routing.override.accept"]["data"]
        assert (accepted["override_id"], accepted["lane"], accepted["words"], accepted["corrections"]) == \
            (override.id, "graph-ops", ["layout", "tidy"], 3)

        # the router asks the override first: the classifier alone still says narrative
        assert Router.from_book(engine.orchestrator.routing, LANE_IDS).decide(PROBE).lane == "narrative"
        after = engine.route(PROBE)
        assert (after.lane, after.override, after.uncertain) == ("graph-ops", override.id, False)
        assert "policy lane override" in after.candidates[0].reasons[0]
        task = engine.new_task(PROBE)
        assert task.lane == "graph-ops"
        last = engine.orchestrator.routing.history().records[-1]
        assert (last.source, last.routed, last.chosen) == ("routed", "graph-ops", "graph-ops")
        # a brief without every word of it is the classifier's
        assert engine.route("document the layout of the billing module").override is None

        assert engine.lane_overrides()[0].accepted
        with pytest.raises(Exception, match="in the policy already"):
            engine.accept_override(override.id)
        with pytest.raises(NotFoundError, match="closest: " + override.id):
            engine.accept_override(override.id[:-1] + "x")
    finally:
        engine.stop()


def test_policy_without_overrides_hashes_as_before():
    policy = default_policy()
    data = policy.model_dump(mode="json", exclude={"schema_ref", "lane_overrides"})
    import hashlib

    assert policy.hash == hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"),
                                                    ensure_ascii=False).encode()).hexdigest()
    with_one = Policy.model_validate({**policy.model_dump(mode="json", by_alias=True, exclude_unset=True),
                                      "lane_overrides": [{"id": "ovr-1", "words": ["tidy"], "lane": "graph-ops"}]})
    assert with_one.hash != policy.hash


def _with(overrides: list) -> dict:
    return {**default_policy().model_dump(mode="json", by_alias=True, exclude_unset=True), "lane_overrides": overrides}


def test_an_invalid_override_is_refused_with_the_closest_lane_names(tmp_path, isolated_audit):
    good = {"id": "ovr-1", "words": ["tidy", "layout"], "lane": "graph-ops"}
    assert validate_policy(_with([good])) == []
    issues = {(i.pointer, i.kind): i.message for i in validate_policy(_with([
        {**good, "lane": "grph-ops"},
        {"id": "ovr-2", "words": [], "lane": "narrative"},
        {"id": "ovr-3", "words": ["Tidy Up"], "lane": "narrative"},
        {"id": "ovr-1", "words": ["tidy", "layout"], "lane": "code-impl", "extra": 1},
    ]))}
    assert "unknown lane 'grph-ops'" in issues[("/lane_overrides/0/lane", "semantic")]
    assert "closest: graph-ops" in issues[("/lane_overrides/0/lane", "semantic")]
    assert ("/lane_overrides/1/words", "schema") in issues
    assert ("/lane_overrides/2/words/0", "schema") in issues
    assert ("/lane_overrides/3/extra", "schema") in issues
    assert "used twice" in issues[("/lane_overrides/3/id", "semantic")]
    # a user lane's id is a lane an override may name
    assert validate_policy(_with([{**good, "lane": "perf-lab"}]), extra_lanes=["perf-lab"]) == []

    # applied through the engine: refused, nothing changes, nothing is written
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, policy_path=tmp_path / "p.json")
    try:
        hash_before = engine.policy.hash
        assert engine.apply_policy(_with([{**good, "lane": "grph-ops"}]))
        assert engine.policy.hash == hash_before and not (tmp_path / "p.json").exists()
    finally:
        engine.stop()


def test_a_correction_or_override_naming_an_unknown_lane_never_routes_there(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    with pytest.raises(UnknownCorrectionLane) as err:
        book.record("task_new", "tidy the layout", "narrative", "grph-ops", LANE_IDS)
    assert err.value.closest[0] == "graph-ops" and "closest: graph-ops" in str(err.value)
    assert book.history().records == []

    gone = LaneOverride(id="ovr-gone", words=["profile"], lane="perf-lab")
    here = LaneOverride(id="ovr-here", words=["profile", "checkout"], lane="code-impl")
    assert matching("profile the checkout", [gone, here], LANE_IDS) == here
    assert matching("profile the checkout", [gone, here], [*LANE_IDS, "perf-lab"]) == gone
    assert matching("profile the cart", [gone, here], LANE_IDS) is None
    assert tokens("Re-index the API's Embeddings!") == {"re-index", "the", "api's", "embeddings"}

    # the orchestrator with a policy whose override names a lane that is not registered: the classifier routes
    from direng_kernel.pex.orchestrator import Orchestrator

    root = make_repo(tmp_path / "repo")
    policy = Policy.model_validate(_with([gone.model_dump()]))
    orch = Orchestrator(root, root / ".direng", policy=lambda: policy)
    decision = orch.route("profile the checkout hot path")
    assert decision.override is None and decision.lane in LANE_IDS


def plms_cli(root, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "plms", "overrides", "--root", str(root),
                           *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.slow
@pytest.mark.e2e("direng plms overrides")
def test_the_cli_lists_the_proposals_and_accepts_one_into_the_policy_file(tmp_path, isolated_audit):
    import os

    root = make_repo(tmp_path / "repo")
    teach(RoutingBook.for_store(root / ".direng"))
    env = {k: v for k, v in os.environ.items() if k not in ("DIRENG_POLICY", "DIRENG_SERVER_URL")}
    listed = plms_cli(root, env=env)
    assert listed.returncode == 0, listed.stderr
    oid = override_id("graph-ops", ["layout", "tidy"])
    assert f"{oid}  layout + tidy  narrative -> graph-ops  (3 corrections)" in listed.stdout
    assert all(repr(b) in listed.stdout for b in TAUGHT)

    refused = plms_cli(root, "--accept", oid, env=env)
    assert refused.returncode == 1 and "--policy FILE" in refused.stderr
    policy = tmp_path / "policy.json"
    accepted = plms_cli(root, "--accept", oid, "--policy", str(policy), "--json", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["id"] == oid
    assert [o.id for o in load_policy(policy).lane_overrides] == [oid]
    assert "routing.override.accept" in [r["event"] for r in audit.read_records(isolated_audit)]
    again = plms_cli(root, "--json", env={**env, "DIRENG_POLICY": str(policy)})
    assert [p["accepted"] for p in json.loads(again.stdout)] == [True]
    unknown = plms_cli(root, "--accept", "ovr-nope", "--policy", str(policy), env=env)
    assert unknown.returncode == 1 and "no proposed lane override 'ovr-nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr + refused.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.e2e("POST /plms/route", "GET /plms/overrides", "POST /plms/overrides", "GET /plms/calibration")
def test_routing_and_overrides_over_rest(tmp_path, isolated_audit):
    from direng_kernel.client import HttpClient
    from test_server import running_server

    root = make_repo(tmp_path / "repo")
    book = RoutingBook.for_store(root / ".direng")
    teach(book)
    for lane in ("graph-ops", "code-impl"):  # the user has put this brief in both lanes: the router is unsure
        book.record("task_new", "rework the module layout", "narrative", lane, LANE_IDS)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(default_policy().model_dump(mode="json", by_alias=True, exclude_unset=True)))
    (tmp_path / "srv").mkdir()
    with running_server(tmp_path / "srv", f"--DirEngExtension.policy_file={policy}", "--DirEngExtension.watch=False",
                        "--DirEngExtension.run_tasks=False", root=root, indexed=False) as srv:
        status, unsure = srv.post("plms/route", {"title": "rework the module layout"})
        assert status == 200 and unsure["uncertain"], unsure
        assert {c["lane"] for c in unsure["candidates"]} == {"graph-ops", "code-impl"}
        assert all(c["reasons"] for c in unsure["candidates"]) and unsure["margin"] < unsure["threshold"]
        for bad in ({}, {"title": 3}, {"title": " ", "brief": ""}, {"title": "x" * 20_001}):
            status, err = srv.post("plms/route", bad)
            assert status == 400 and err["code"] == "bad_request", (bad, err)

        status, listed = srv.get("plms/overrides")
        assert status == 200 and [p["override"]["words"] for p in listed["overrides"]] == [["layout", "tidy"]]
        assert listed["overrides"][0]["briefs"] == TAUGHT
        oid = listed["overrides"][0]["override"]["id"]
        assert srv.post("plms/overrides", {"accept": "ovr-nope"})[0] == 404
        assert srv.post("plms/overrides", {})[0] == 400
        status, done = srv.post("plms/overrides", {"accept": oid})
        assert status == 200 and done["override"]["id"] == oid and done["saved"] == str(policy), done
        assert [o.id for o in load_policy(policy).lane_overrides] == [oid]
        status, routed = srv.post("plms/route", {"title": PROBE})
        assert (routed["lane"], routed["override"]) == ("graph-ops", oid)

        http = HttpClient(srv.url + "/direng/api", srv.token)
        assert http.route(PROBE).override == oid and http.lane_overrides()[0].accepted
        status, cal = srv.get("plms/calibration")
        assert status == 200 and cal["runs"] == 0 and len(cal["lanes"]) >= 6 and cal["png"]
        import base64

        assert base64.b64decode(cal["png"]).startswith(b"\x89PNG")
        assert http.plms_calibration(plot=False)["png"] is None
    events = [r["event"] for r in audit.read_records(isolated_audit)]
    assert "policy.change" in events and "routing.override.accept" in events
