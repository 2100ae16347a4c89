"""PLMS's lane routing that learns: the routing book (decisions and corrections from the three
sources), the classifier (seeded by the keyword rules, refitted on corrections, registered lanes
only), bad input (unknown lanes, corrupt rows), and the uncertain-margin prompt of `direng task
new` (a real CLI subprocess answering on stdin). Real classifier, real stores, no mocks."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from conftest import make_repo
from direng_kernel.models import CORRECTION_SOURCES, LANE_IDS, TaskState
from direng_kernel.pas.lanes import UnknownLane
from direng_kernel.pex.orchestrator import Orchestrator
from direng_kernel.plms.corrections import DB_NAME, RoutingBook, UnknownCorrectionLane
from direng_kernel.plms.keywords import SEED_UNMATCHED, route_lane, seed_briefs
from direng_kernel.plms.routing import UNCERTAIN_MARGIN, Router

#: Briefs that are not seeds: the test_pex routing table, and wordings the seeds do not spell.
UNSEEN = ["document the public API of the http module", "find import cycles and dead code",
          "apply this patch and run the tests", "report breaking changes in the public API since v1",
          "infer a JSON schema from the sample data files", "refresh the index", "make checkout faster",
          "which functions are never called", "write release notes", "update embeddings after the move",
          "the docs for the json loader", "fix the flaky refresh test", "is the cart module central?",
          "validate data against the contract", "reindex after the rename and explain the api"]

AMBIGUOUS = "tidy the module layout"


@pytest.fixture(scope="module")
def seeded() -> Router:
    return Router(lanes=LANE_IDS)


def test_day_one_routes_as_the_keyword_rules(seeded):
    briefs = UNSEEN + [b for b, _ in seed_briefs()]
    disagree = [(b, seeded.decide(b).lane, route_lane(b)) for b in briefs if seeded.decide(b).lane != route_lane(b)]
    assert not disagree
    # and it is sure of them: day one asks nothing of a brief the rules route
    assert not [b for b in UNSEEN if seeded.decide(b).uncertain]


def orchestrator(tmp_path) -> Orchestrator:
    root = make_repo(tmp_path / "repo")
    return Orchestrator(root, root / ".direng")


def test_every_decision_and_each_kind_of_correction_is_recorded(tmp_path):
    orch = orchestrator(tmp_path)
    auto, _ = orch.new_task("find dead code", "mail bob@example.com with the list")
    assert auto.lane == "graph-ops"
    named, _ = orch.new_task("make checkout faster", "", "code-impl")          # the router says narrative
    moved, _ = orch.new_task("write the changelog", "")
    orch.estimate(moved.id, lane="narrative")                                  # no change: not a correction
    orch.estimate(moved.id, lane="code-api-design")                           # a lane change before approval
    # a lane named for a brief the (refitted) classifier is unsure of is recorded as its answer
    then = orch.route("speed up search")
    wrong, _ = orch.new_task("speed up search", "", "vector-ops")
    assert orch.cancel(wrong.id).state == TaskState.cancelled
    again, _ = orch.new_task("speed up search", "", "code-impl")               # re-created in another lane
    history = orch.routing.history()
    got = [(r.source, r.routed, r.chosen, r.task_id) for r in history.records]
    assert got == [
        ("routed", "graph-ops", "graph-ops", auto.id),
        ("task_new", route_lane("make checkout faster"), "code-impl", named.id),
        ("routed", "narrative", "narrative", moved.id),
        ("approval", "narrative", "code-api-design", moved.id),
        ("asked" if then.uncertain else "task_new", then.lane, "vector-ops", wrong.id),
        ("recreated", "vector-ops", "code-impl", again.id),
    ]
    assert history.skipped == 0 and all(r.at.tzinfo is not None for r in history.records)
    assert "bob@example.com" not in history.records[0].brief and "find dead code" in history.records[0].brief
    assert [r.source for r in history.corrections()] == [s for s, *_ in got if s in CORRECTION_SOURCES]


def test_a_lane_change_answering_an_escalation_is_a_correction(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "providers": {"local": {"type": "local", "external": False}},
                                  "lanes": {"Narrative": {"primary": {"provider": "local", "model": "retrieval"},
                                                          "escalate_p90_s": 5}}}))
    root = make_repo(tmp_path / "repo")
    orch = Orchestrator(root, root / ".direng", policy_path=policy)
    task, _ = orch.new_task("write up the release", "")
    assert orch.estimate(task.id).state == TaskState.escalated
    orch.change_lane(task.id, "graph-ops")
    last = orch.routing.history().records[-1]
    assert (last.source, last.routed, last.chosen, last.task_id) == ("escalation", "narrative", "graph-ops", task.id)


def test_the_classifier_is_refitted_as_corrections_arrive(tmp_path):
    orch = orchestrator(tmp_path)
    family = ["tidy the module layout", "tidy the package layout", "tidy the folder layout",
              "tidy the import layout", "tidy the test layout"]
    held_out = "tidy the source layout"
    before = orch.route(held_out)
    assert before.lane == route_lane(held_out) == "narrative" and before.corrections == 0
    for brief in family:
        orch.new_task(brief, "", "graph-ops")
    after = orch.route(held_out)
    assert after.corrections == len(family) and after.lane == "graph-ops"
    assert any("which you put in graph-ops" in r for r in after.candidates[0].reasons)
    # a brief far from the corrections still routes as the rules do
    assert orch.route("apply this patch and run the tests").lane == "code-impl"


def test_conflicting_corrections_make_the_router_ask(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    for lane in ("graph-ops", "code-impl"):
        book.record("task_new", AMBIGUOUS, "narrative", lane, LANE_IDS)
    decision = Router.from_book(book, LANE_IDS).decide(AMBIGUOUS)
    assert decision.uncertain and decision.margin < UNCERTAIN_MARGIN == decision.threshold
    assert {c.lane for c in decision.candidates} == {"graph-ops", "code-impl"}
    assert all(c.reasons for c in decision.candidates)


def test_a_correction_to_an_unknown_lane_is_refused_with_the_closest_names(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    with pytest.raises(UnknownCorrectionLane) as err:
        book.record("task_new", "x", "narrative", "grph-ops", LANE_IDS)
    assert err.value.closest[0] == "graph-ops" and "closest: graph-ops" in str(err.value)
    assert book.history().records == []
    orch = orchestrator(tmp_path)
    with pytest.raises(UnknownLane, match="code-impl"):
        orch.new_task("x", "", "code-iml")
    assert orch.routing.history().records == []


def test_corrupt_rows_are_skipped_and_counted(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    good = book.record("task_new", "find dead code", "graph-ops", "graph-ops", LANE_IDS)
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.executemany("INSERT INTO routing (at, source, brief, routed, chosen) VALUES (?, ?, ?, ?, ?)", [
            ("not a time", "task_new", "b", "narrative", "graph-ops"),
            (good.at.isoformat(), "guessed", "b", "narrative", "graph-ops"),
            (good.at.isoformat(), "task_new", "b", "narrative", b"\xff\xfe"),  # a blob, not a lane
        ])
    history = book.history()
    assert history.skipped == 3 and history.records == [good]
    assert Router.from_book(book, LANE_IDS).decide("find dead code").lane == "graph-ops"


def test_the_classifier_never_routes_to_a_lane_that_is_not_registered(tmp_path):
    book = RoutingBook.for_store(tmp_path)
    lanes_then = [*LANE_IDS, "perf-lab"]
    for i in range(6):
        book.record("task_new", f"profile the checkout hot path {i}", "narrative", "perf-lab", lanes_then)
    assert Router.from_book(book, lanes_then).decide("profile the checkout hot path").lane == "perf-lab"
    now = Router.from_book(book, LANE_IDS)  # perf-lab is gone
    for brief in ["profile the checkout hot path", *UNSEEN]:
        decision = now.decide(brief)
        assert decision.lane in LANE_IDS and {c.lane for c in decision.candidates} <= set(LANE_IDS)
    without_fallback = [lane for lane in LANE_IDS if lane != "narrative"]
    for brief in SEED_UNMATCHED:
        assert Router(lanes=without_fallback).decide(brief).lane in without_fallback


def cli(root, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "task", *args, "--root", str(root)],
                          input=stdin, capture_output=True, text=True, timeout=180)


def test_task_new_asks_when_unsure_and_the_answer_is_a_labelled_example(tmp_path):
    root = make_repo(tmp_path / "repo")
    for lane in ("graph-ops", "code-impl"):  # the user has said both of this brief
        assert cli(root, "new", "--title", AMBIGUOUS, "--lane", lane).returncode == 0
    book = RoutingBook.for_store(root / ".direng")
    decision = Router.from_book(book, LANE_IDS).decide(AMBIGUOUS)
    assert decision.uncertain
    second = decision.candidates[1].lane

    asked = cli(root, "new", "--title", AMBIGUOUS, "--ask", "--json", stdin="2\n")
    assert asked.returncode == 0, asked.stderr
    assert "unsure which lane fits" in asked.stderr
    for c in decision.candidates:  # both lanes, each with its reasons
        assert f"{c.lane}: p=" in asked.stderr and "which you put in" in asked.stderr
    task = json.loads(asked.stdout)
    assert task["lane"] == second
    last = book.history().records[-1]
    assert (last.source, last.chosen, last.task_id) == ("asked", second, task["id"])

    # the other lane once more: two votes each, unsure again. Without a terminal and without --ask
    # it routes as it would have (no question), says it was unsure, and records the router's decision
    other = decision.candidates[0].lane
    assert cli(root, "new", "--title", AMBIGUOUS, "--lane", other).returncode == 0
    now = Router.from_book(book, LANE_IDS)
    assert now.corrections == 4 and now.decide(AMBIGUOUS).uncertain
    quiet = cli(root, "new", "--title", AMBIGUOUS, "--json", stdin="")
    assert quiet.returncode == 0 and "unsure which lane fits" not in quiet.stderr
    assert f"routed to {now.decide(AMBIGUOUS).lane}, unsure" in quiet.stderr
    assert json.loads(quiet.stdout)["lane"] == now.decide(AMBIGUOUS).lane
    assert book.history().records[-1].source == "routed"

    bad = cli(root, "new", "--title", AMBIGUOUS, "--ask", stdin="grph-ops\n")
    assert bad.returncode != 0 and "graph-ops" in bad.stderr and "Traceback" not in bad.stderr
