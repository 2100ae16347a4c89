"""PLMS estimates that scale with task size (plms/scaling.py, plms/regression.py, pex/size.py).

Synthetic histories have known parameters: per lane log(duration) = a + b (log(1 + size) - log 1e4)
+ sigma * noise. Every claim is checked against the data the test generates: coverage, band
widths and errors come from the models' own held-out (rolling-origin) predictions."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import make_repo

from direng_kernel.cli.main import main
from direng_kernel.direng.compose import estimate_line
from direng_kernel.models import Task
from direng_kernel.plms.estimate import NIG, Planner, RunRecord
from direng_kernel.plms.features import lane_features
from direng_kernel.plms.history import read_history
from direng_kernel.plms.priors import PRIORS
from direng_kernel.plms.regression import NIGRegression
from direng_kernel.plms.scaling import MIN_COVERAGE, ScaledPlanner, SizeModel, compare

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
REF = math.log(1e4)
SIZED = ["code-impl", "code-api-design", "vector-ops", "narrative", "graph-ops"]


def lane_runs(rng, lane, n, a, b, sigma, start=0, lo=1e3, hi=1e5):
    """n runs of `lane`: every feature of the lane log-uniform in [lo, hi]; the first one drives
    the duration with elasticity b."""
    out = []
    for k in range(n):
        feats = {f: float(np.exp(rng.uniform(math.log(lo), math.log(hi)))) for f in lane_features(lane)}
        y = a + b * (math.log1p(feats[lane_features(lane)[0]]) - REF) + sigma * rng.standard_normal()
        out.append(RunRecord(lane=lane, duration_s=math.exp(y), status="succeeded", features=feats,
                             finished_at=T0 + timedelta(minutes=10 * (start + k), seconds=int(rng.integers(0, 60)))))
    return out


def history(seed, slopes=None, n=60, sigma=0.35):
    rng = np.random.default_rng(seed)
    slopes = slopes or {}
    out = []
    for lane in SIZED:
        out += lane_runs(rng, lane, n, rng.uniform(2.5, 4.5), slopes.get(lane, rng.uniform(0.5, 0.9)), sigma)
    return out


def test_the_regression_with_only_an_intercept_is_the_per_lane_model():
    prior = NIG(*PRIORS["narrative"].nig())
    xs = np.log([30.0, 41.0, 25.0, 60.0, 33.0, 28.0])
    post = NIGRegression(np.array([prior.mu]), np.array([[1 / prior.kappa]]), prior.alpha, prior.beta).posterior(
        np.ones((len(xs), 1)), xs)
    loc, scale, df = post.predictive(np.array([1.0]))
    nig = prior.folded(xs)
    assert loc == pytest.approx(nig.mu)
    assert df == pytest.approx(2 * nig.alpha)
    assert scale == pytest.approx(math.sqrt(nig.beta * (nig.kappa + 1) / (nig.alpha * nig.kappa)))


def test_the_size_model_covers_the_p90_and_is_sharper_where_size_matters():
    for seed in range(3):
        comparison = compare(history(seed))
        scores = comparison.scores
        # held-out p90 coverage over the whole history (5 lanes x 55 scored runs)
        assert np.mean([s["actual"] <= s["size_p90"] for s in scores]) >= MIN_COVERAGE
        decisions = comparison.decide()
        for lane in SIZED:
            d = decisions[lane]
            assert d.basis == "lane" and d.scored >= 50
            assert d.size_scores.band_log_width < 0.8 * d.lane_scores.band_log_width, (seed, lane, d)
            assert d.size_scores.mean_abs_log_err < d.lane_scores.mean_abs_log_err, (seed, lane, d)
            # kept exactly where it also covers (a lane's 55 runs can fall under 80 % by chance)
            assert (d.model == "size") == (d.size_scores.within_p90 >= MIN_COVERAGE), (seed, lane, d)
        assert sum(d.model == "size" for d in decisions.values()) >= 4


def test_a_young_lane_borrows_the_other_lanes_slope():
    rng = np.random.default_rng(7)
    b, a_young, sigma = 0.8, 3.2, 0.3
    old = []  # three lanes of 60 runs, all scaling with repo_lines by b
    for i, lane in enumerate(["code-impl", "code-api-design", "vector-ops"]):
        old += lane_runs(rng, lane, 60, 2.5 + 0.5 * i, b, sigma)
    young = lane_runs(rng, "graph-ops", 7, a_young, b, sigma, start=60)  # 7 runs, the same elasticity
    planner = ScaledPlanner.from_history(old + young)
    lane_only = Planner.from_history(old + young)
    errs_size, errs_lane = [], []
    for lines in (1.5e3, 5e3, 3e4, 8e4):
        truth = a_young + b * (math.log1p(lines) - REF)  # log of the true median
        est = planner.estimate("graph-ops", {"repo_lines": lines})
        assert est.model == "size"
        errs_size.append(abs(math.log(est.duration_p50_s) - truth))
        errs_lane.append(abs(math.log(lane_only.estimate("graph-ops").duration_p50_s) - truth))
    assert np.mean(errs_size) < np.mean(errs_lane)
    assert planner.decisions["graph-ops"].basis == "pooled"  # 2 scored runs of its own: all lanes decide
    est = planner.estimate("graph-ops", {"repo_lines": 8e4})
    assert "80k-line repo" in est.explanation and "young lane (7 runs; size effect from 3 other lanes)" in est.explanation


def test_a_lane_whose_durations_do_not_depend_on_size_keeps_the_per_lane_model():
    for seed in range(3):
        records = history(seed, slopes={"graph-ops": 0.0})
        planner = ScaledPlanner.from_history(records)
        d = planner.decisions["graph-ops"]
        assert d.model == "lane" and d.basis == "lane", (seed, d)
        # per lane: the lanes that scale keep the size model (but for one that misses 80 % by chance)
        assert sum(planner.decisions[lane].model == "size" for lane in SIZED if lane != "graph-ops") >= 3
        est = planner.estimate("graph-ops", {"repo_files": 9e4, "repo_lines": 9e4})
        assert est.model == "lane"
        assert est.duration_p90_s == Planner.from_history(records).estimate("graph-ops").duration_p90_s
        assert "per-lane model kept" in est.explanation


def test_the_explanation_names_the_sizes_that_drove_the_estimate():
    planner = ScaledPlanner.from_history(history(1))
    usual = planner.estimate("code-impl", {})
    big = planner.estimate("code-impl", {"repo_lines": 300_000})
    assert big.model == "size" and big.duration_p90_s > 2 * usual.duration_p90_s
    assert big.explanation.startswith(f"p90 {big.duration_p90_s:.0f} s: 300k-line repo (×")
    assert "usual size" in usual.explanation
    # a size is named exactly when its term moves the estimate by >= 10 % (patch_lines: only if its
    # fitted slope, which the synthetic durations do not depend on, happens to be that large)
    pred = planner.size.predict("code-impl", {"repo_lines": 300_000, "patch_lines": 1e5})
    assert "repo_lines" in {d.feature.name for d in pred.drivers}
    assert all(max(d.factor, 1 / d.factor) >= 1.1 for d in pred.drivers)
    line = estimate_line(Task(id="task-1", title="t", lane="code-impl", estimate=big, created_at=T0, updated_at=T0))
    assert "scaled by task size" in line and "Why: p90" in line and "300k-line repo" in line


def test_missing_sizes_sit_at_the_lanes_usual():
    planner = ScaledPlanner.from_history(history(2))
    assert planner.estimate("vector-ops", {}).duration_p50_s == planner.estimate(
        "vector-ops", {"changed_lines": float("nan")}).duration_p50_s


def test_prior_only_lanes_say_so():
    est = ScaledPlanner.from_history([]).estimate("narrative", {"repo_files": 10})
    assert est.prior_only and est.model == "lane" and "the lane's prior (0 of 5 runs" in est.explanation


def test_corrupt_history_rows_are_skipped_and_counted():
    good = {"lane": "narrative", "duration_s": 3.0, "status": "succeeded", "finished_at": T0.isoformat()}
    rows = [good, {**good, "duration_s": -1}, {**good, "finished_at": "yesterday"}, {**good, "features": [1]},
            {**good, "features": {"repo_lines": -5}}, "not a row", {**good, "features": {"repo_lines": 10.0}}]
    h = read_history(rows)
    assert h.skipped == 5 and len(h.records) == 2 and h.records[1].features == {"repo_lines": 10.0}


def _finished_task(orch, lane, parameters, duration=None):
    from direng_kernel.models import TaskState

    task, _ = orch.new_task("t", "b", lane=lane, parameters=parameters)
    store = orch.tasks
    store.transition(task.id, TaskState.estimated)
    store.transition(task.id, TaskState.approved)
    run_id = store.enqueue(task.id)
    store.claim("w", {lane: 1})
    store.finish(run_id, TaskState.succeeded)
    return task, run_id


def test_pex_records_sizes_at_creation_and_the_history_carries_them(tmp_path):
    from direng_kernel.pex.orchestrator import Orchestrator

    root = make_repo(tmp_path / "repo")
    (root / "data").mkdir()
    for i in range(3):
        (root / "data" / f"r{i}.json").write_text(json.dumps({"i": i, "pad": "x" * 100}))
    orch = Orchestrator(root, root / ".direng")
    patch = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-a = 1\n+a = 2\n+b = 3\n"
    impl, impl_run = _finished_task(orch, "code-impl", {"patch": patch})
    schema, _ = _finished_task(orch, "data-schema", {})  # the lane notebook's default data_glob
    size = orch.tasks.task_size(impl.id)
    assert size["patch_lines"] == 3 and size["repo_lines"] > 0
    files = sorted((root / "data").glob("*.json"))
    assert orch.tasks.task_size(schema.id) == {"input_files": 3, "input_bytes": sum(p.stat().st_size for p in files)}
    history = orch.tasks.run_history()
    assert history.skipped == 0 and [r.features for r in history.records] == [size, orch.tasks.task_size(schema.id)]
    # a corrupt row is skipped and counted, the others still read
    with sqlite3.connect(root / ".direng" / "pex.sqlite3") as db:
        db.execute("UPDATE runs SET duration_s = -4 WHERE id = ?", (impl_run,))
    history = orch.tasks.run_history()
    assert history.skipped == 1 and [r.lane for r in history.records] == ["data-schema"]
    with sqlite3.connect(root / ".direng" / "pex.sqlite3") as db:
        db.execute("UPDATE tasks SET size = '{oops' WHERE id = ?", (schema.id,))
    assert orch.tasks.run_history().skipped == 2 and orch.tasks.task_size(schema.id) == {}
    # the estimate carries the model and its explanation
    task, _ = orch.new_task("t2", "b", lane="data-schema", parameters={})
    task = orch.estimate(task.id)
    assert task.estimate.model == "lane" and task.estimate.explanation.startswith("p90 ")


def test_cli_plms_size_compares_the_models(tmp_path, capsys):
    from direng_kernel.models import TaskState
    from direng_kernel.pex.store import TaskStore

    root = tmp_path / "root"
    root.mkdir()
    store = TaskStore.for_root(root)
    rng = np.random.default_rng(3)
    for rec in lane_runs(rng, "vector-ops", 25, 3.0, 0.8, 0.3):
        task, _ = store.create_task(title="t", brief="", lane="vector-ops", parameters={})
        store.set_task_size(task.id, rec.features)
        store.transition(task.id, TaskState.estimated)
        store.transition(task.id, TaskState.approved)
        run_id = store.enqueue(task.id)
        store.claim("w", {"vector-ops": 1})
        store.finish(run_id, TaskState.succeeded)
    # durations are the store's clock (all ~0 s); the comparison and the estimate still answer
    assert main(["plms", "size", "--root", str(root), "--json", "--lane", "vector-ops",
                 "--size", "repo_lines=12000"]) == 0
    out = json.loads(capsys.readouterr().out)
    lanes = {d["lane"]: d for d in out["lanes"]}
    assert out["skipped"] == 0 and lanes["vector-ops"]["n"] == 25 and lanes["vector-ops"]["scored"] == 20
    assert out["estimate"]["lane"] == "vector-ops" and out["estimate"]["explanation"].startswith("p90 ")
    assert main(["plms", "size", "--root", str(root)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:5] == ["lane", "n", "scored", "model", "basis"]
    assert main(["plms", "size", "--root", str(tmp_path / "nowhere")]) == 1
    with pytest.raises(SystemExit, match="unknown size 'repo_line'.*did you mean 'repo_lines'"):
        main(["plms", "size", "--root", str(root), "--lane", "vector-ops", "--size", "repo_line=3"])


def test_size_model_ignores_runs_that_do_not_calibrate():
    m = SizeModel(PRIORS)
    r = RunRecord(lane="narrative", duration_s=5, status="failed", finished_at=T0, features={"repo_files": 3})
    assert not m.observe(r) and m.n("narrative") == 0
    assert m.observe(r.model_copy(update={"status": "succeeded"})) and m.n("narrative") == 1


def test_repo_sizes_include_commits_made_since_the_last_refresh(tmp_path):
    """The run refreshes the index before it works, so a task's repository sizes are the tree at
    HEAD, not the index's rows from before the last commit."""
    from conftest import commit_all

    from direng_kernel.pex.orchestrator import Orchestrator
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path / "repo")
    wb = Workbench(root)
    wb.index()
    orch = Orchestrator(root, root / ".direng", workbench=wb)
    before, _ = orch.new_task("map it", "", lane="graph-ops")
    sizes = orch.tasks.task_size(before.id)
    (root / "shop" / "grown.py").write_text("".join(f"def f{i}():\n    return {i}\n\n" for i in range(100)))
    commit_all(root, "grow")
    after, _ = orch.new_task("map it again", "", lane="graph-ops")
    assert orch.tasks.task_size(after.id) == {"repo_files": sizes["repo_files"] + 1,
                                               "repo_lines": sizes["repo_lines"] + 300}
    wb.index()  # refreshed: the index's rows again, and the same sizes
    again, _ = orch.new_task("map it once more", "", lane="graph-ops")
    assert orch.tasks.task_size(again.id) == orch.tasks.task_size(after.id)
    wb.close()


def test_patch_lines_are_counted_as_git_counts_them(tmp_path):
    from direng_kernel.pex.size import SizeContext, measure

    # a removed SQL comment reads `--- ...` and an added `++i` reads `+++i`: lines, not file headers
    patch = ("diff --git a/q.sql b/q.sql\n--- a/q.sql\n+++ b/q.sql\n@@ -1,3 +1,3 @@\n"
             "--- the old comment\n+-- the new comment\n SELECT 1;\n-x\n+++i\n")
    assert measure("code-impl", SizeContext(tmp_path, {"patch": patch}))["patch_lines"] == 4
    (tmp_path / "change.patch").write_text(patch)
    assert measure("code-impl", SizeContext(tmp_path, {"patch_file": "change.patch"}))["patch_lines"] == 4
    assert "patch_lines" not in measure("code-impl", SizeContext(tmp_path, {"patch": ""}))


def test_data_inputs_are_the_files_the_lane_reads(tmp_path):
    """data-schema reads the matching files its file listing keeps (ignore files honoured), the
    first max_samples of them: the sizes count those, not every file the glob matches."""
    from direng_kernel.pex.orchestrator import Orchestrator

    root = make_repo(tmp_path / "repo")
    for folder, n in (("data/orders", 5), ("data/raw", 3)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            (root / folder / f"r{i}.json").write_text(json.dumps({"i": i, "pad": "x" * (10 * i)}))
    (root / "data" / "raw" / "big.json").write_text(json.dumps({"pad": "y" * 50_000}))
    (root / ".gitignore").write_text("data/raw/\n")
    orch = Orchestrator(root, root / ".direng")
    kept = sorted((root / "data" / "orders").glob("*.json"))
    task, _ = orch.new_task("infer", "", lane="data-schema")  # the notebook's data_glob and max_samples
    assert orch.tasks.task_size(task.id) == {"input_files": 5, "input_bytes": sum(p.stat().st_size for p in kept)}
    capped, _ = orch.new_task("infer two", "", lane="data-schema", parameters={"max_samples": 2})
    assert orch.tasks.task_size(capped.id) == {"input_files": 2,
                                                "input_bytes": sum(p.stat().st_size for p in kept[:2])}
