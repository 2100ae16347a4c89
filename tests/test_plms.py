"""PLMS on synthetic histories drawn from known log-normals (seeded), bounds derived from those
distributions (not from the seeds), plus its CLI over a real task store."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from argparse import Namespace
from datetime import datetime, timedelta, timezone
from statistics import NormalDist

import numpy as np
import pytest

from direng_kernel.cli import plms_cmd
from direng_kernel.models import LANE_IDS, TaskState
from direng_kernel.plms.calibration import calibration_report, prequential, within_band_share
from direng_kernel.plms.estimate import Planner, RunRecord, UnknownLaneError
from direng_kernel.plms.priors import PRIORS

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def runs(lane, median, sigma, n, seed, start=0, **kw):
    """n succeeded runs of `lane` with log-normal(log median, sigma) durations, one a minute."""
    rng = np.random.default_rng(seed)
    return [RunRecord(lane=lane, duration_s=float(d), status="succeeded",
                      finished_at=T0 + timedelta(minutes=start + i), **kw)
            for i, d in enumerate(median * np.exp(rng.normal(0, sigma, n)))]


Z90 = NormalDist().inv_cdf(0.9)  # the standard normal's 0.9 quantile


def true_p90(median: float, sigma: float) -> float:
    """The 0.9 quantile of log-normal(log median, sigma)."""
    return median * math.exp(Z90 * sigma)


def se_log_p90(sigma: float, n: int) -> float:
    """Sampling error (log scale) of a p90 estimated from n log-normal runs: mean and spread both."""
    return sigma * math.sqrt((1 + Z90**2 / 2) / n)


def log_close(value: float, truth: float, tolerance: float) -> bool:
    return abs(math.log(value / truth)) < tolerance


def test_priors_cover_every_lane_and_prior_only_repeats_them():
    assert set(PRIORS) == set(LANE_IDS)
    planner = Planner()
    for lane, prior in PRIORS.items():
        assert prior.median_s > 3 and prior.p90_s > prior.median_s and prior.source
        est = planner.estimate(lane)
        assert est.prior_only and est.n_history == 0 and not est.drift
        assert est.duration_p50_s == pytest.approx(prior.median_s, rel=1e-3)
        assert est.duration_p90_s == pytest.approx(prior.p90_s, rel=1e-3)
        assert (est.tokens_p50, est.tokens_p90, est.cost_p50, est.cost_p90) == (0, 0, 0.0, 0.0)
        p10, p90 = planner.band(lane)
        assert p10 < est.duration_p50_s < p90


@pytest.mark.parametrize("min_n", [5, 8])
def test_prior_until_min_n_then_posterior(min_n):
    history = runs("graph-ops", 400.0, 0.3, min_n, seed=1)  # far from the 13 s prior
    planner = Planner(min_n=min_n)
    prior = planner.estimate("graph-ops")
    for i, r in enumerate(history[:-1], 1):
        planner.observe(r)
        est = planner.estimate("graph-ops")
        assert est.prior_only and est.n_history == i
        assert est.duration_p50_s == prior.duration_p50_s  # the documented prior, untouched
    planner.observe(history[-1])
    est = planner.estimate("graph-ops")
    assert not est.prior_only and est.n_history == min_n
    # Conjugate update: the posterior median is the runs' geometric mean pulled towards the prior
    # median by the prior's weight, kappa0 runs against min_n real ones (priors.py: 0.1 run).
    logs = np.log([r.duration_s for r in history])
    gm, prior_median = math.exp(logs.mean()), PRIORS["graph-ops"].median_s
    kappa0 = PRIORS["graph-ops"].kappa0
    assert prior_median < est.duration_p50_s <= gm * 1.001
    assert abs(math.log(est.duration_p50_s / gm)) <= kappa0 / (kappa0 + min_n) * math.log(gm / prior_median) + 1e-3
    # the band is at least as wide as the runs' own spread (Student-t tails, and a prior far off)
    assert est.duration_p90_s > est.duration_p50_s * math.exp(Z90 * logs.std(ddof=1))


@pytest.mark.parametrize("lane,median,sigma", [("code-impl", 240.0, 0.5), ("data-schema", 8.0, 0.3),
                                               ("narrative", 35.0, 0.8)])
def test_estimates_converge_to_true_median(lane, median, sigma):
    history = runs(lane, median, sigma, 200, seed=7)
    at20 = Planner.from_history(history[:20]).estimate(lane)
    at200 = Planner.from_history(history).estimate(lane)
    assert abs(math.log(at20.duration_p50_s / median)) < 3 * sigma / math.sqrt(20)
    assert abs(math.log(at200.duration_p50_s / median)) < 3 * sigma / math.sqrt(200)
    logs = np.log([r.duration_s for r in history])
    plug_in_p90 = math.exp(logs.mean() + Z90 * logs.std(ddof=1))  # what 200 runs say
    assert abs(math.log(at200.duration_p90_s / plug_in_p90)) < 0.03
    assert log_close(at200.duration_p90_s, true_p90(median, sigma), 3.5 * se_log_p90(sigma, 200))
    assert at200.n_history == 200 and not at200.prior_only


def test_p90_band_holds_next_actuals_prequentially():
    """After 20 runs, each next actual is scored against the estimate from the runs before it.

    The shares must be their nominal values (0.90 and 0.80) within 4 binomial standard errors,
    counting the 2000 scores as 1000 (scores of one history share its posterior): a property of
    a calibrated predictive, not of these seeds."""
    le, inside, total = 0, 0, 0
    for seed, (lane, median, sigma) in enumerate([("code-impl", 120, 0.4), ("vector-ops", 60, 0.6),
                                                  ("graph-ops", 5, 0.2), ("narrative", 300, 0.9)] * 5):
        _, scores = prequential(runs(lane, median, sigma, 120, seed=100 + seed))
        after20 = scores[15:]  # scoring starts at run 6 (min_n=5); skip to run 21
        le += sum(s["le_p90"] for s in after20)
        inside += sum(s["in_band"] for s in after20)
        total += len(after20)
    assert total == 20 * 100
    assert le / total >= 0.80  # the product target: share of actuals within the p90 band (actual <= p90)
    effective = total / 2
    assert abs(le / total - 0.90) <= 4 * math.sqrt(0.90 * 0.10 / effective)
    assert abs(inside / total - 0.80) <= 4 * math.sqrt(0.80 * 0.20 / effective)  # p10..p90


def test_rehearsals_and_failed_runs_do_not_move_the_estimate():
    history = runs("code-api-design", 50.0, 0.4, 12, seed=3)
    planner = Planner.from_history(history)
    before = planner.estimate("code-api-design")
    noise = [RunRecord(lane="code-api-design", duration_s=d, status=s, rehearsal=reh,
                       finished_at=T0 + timedelta(hours=1, minutes=i))
             for i, (d, s, reh) in enumerate([(0.5, "succeeded", True), (5000.0, "succeeded", True),
                                              (9000.0, "failed", False), (1.0, "cancelled", False),
                                              (7000.0, "interrupted", False), (3000.0, "failed", True)] * 3)]
    assert not any(planner.observe(r) for r in noise)
    assert planner.estimate("code-api-design") == before
    assert Planner.from_history(history + noise).estimate("code-api-design") == before


@pytest.mark.parametrize("factor", [3.0, 1 / 3])
def test_drift_flagged_when_the_distribution_shifts(factor):
    for seed in range(20):
        stable = runs("vector-ops", 60.0, 0.3, 25, seed=seed)
        shifted = runs("vector-ops", 60.0 * factor, 0.3, 5, seed=1000 + seed, start=25)
        assert Planner.from_history(stable + shifted).estimate("vector-ops").drift, seed


def test_no_drift_on_stable_data():
    flagged = 0
    for seed in range(50):
        history = runs("code-impl", 90.0, 0.5, 60, seed=500 + seed)
        planner = Planner()
        for i, r in enumerate(history, 1):
            planner.observe(r)
            if i >= 30 and i % 10 == 0:  # four disjoint windows per history: 200 checks
                flagged += planner.estimate("code-impl").drift
    # Documented: on stable data drift fires on ~2-4 % of windows. The 200 windows are disjoint,
    # so allow the upper rate plus 3 binomial standard errors.
    checks, rate = 200, 0.04
    assert flagged <= checks * rate + 3 * math.sqrt(checks * rate * (1 - rate))
    stable = runs("code-impl", 90.0, 0.5, 40, seed=2)
    assert not Planner.from_history(stable).estimate("code-impl").drift


def test_drift_needs_calibrated_reference_and_is_configurable():
    few = runs("narrative", 30.0, 0.2, 4, seed=1) + runs("narrative", 300.0, 0.2, 5, seed=2, start=4)
    assert not Planner.from_history(few).estimate("narrative").drift  # 4 runs before the window < min_n
    mixed = runs("narrative", 30.0, 0.2, 20, seed=1) + [
        RunRecord(lane="narrative", duration_s=d, status="succeeded", finished_at=T0 + timedelta(minutes=20 + i))
        for i, d in enumerate([90.0, 90.0, 30.0, 30.0, 30.0])]
    assert not Planner.from_history(mixed).estimate("narrative").drift  # 2 of 5 out
    assert Planner.from_history(mixed, drift_out=2).estimate("narrative").drift
    with pytest.raises(ValueError):
        Planner(recent_k=5, drift_out=6)


def test_unknown_lane_raises_a_clear_error():
    planner = Planner()
    with pytest.raises(UnknownLaneError, match=r"unknown lane 'code_impl'.*did you mean 'code-impl'"):
        planner.estimate("code_impl")
    with pytest.raises(UnknownLaneError, match="known lanes: code-api-design, code-impl"):
        planner.observe(RunRecord(lane="chat", duration_s=1, status="succeeded", finished_at=T0))
    with pytest.raises(ValueError):  # also a ValueError (and a DirEngError for the CLI)
        within_band_share([], "nope")


def test_tokens_and_cost_share_the_machinery():
    rng = np.random.default_rng(11)
    hist = [RunRecord(lane="narrative", duration_s=30, status="succeeded", finished_at=T0 + timedelta(minutes=i),
                      tokens=int(2000 * math.exp(rng.normal(0, 0.3))), cost=0.01 * math.exp(rng.normal(0, 0.3)))
            for i in range(60)]
    assert Planner.from_history(hist[:4]).estimate("narrative").tokens_p50 == 0  # prior-only: no token prior
    est = Planner.from_history(hist).estimate("narrative")
    # tokens and cost are log-normal(log 2000 / log 0.01, 0.3) over 60 runs: the same bounds as durations
    for p50, p90, truth in ((est.tokens_p50, est.tokens_p90, 2000), (est.cost_p50, est.cost_p90, 0.01)):
        assert log_close(p50, truth, 3 * 0.3 / math.sqrt(60))
        assert log_close(p90, true_p90(truth, 0.3), 3.5 * se_log_p90(0.3, 60))
    offline = runs("graph-ops", 10, 0.2, 10, seed=4)  # tokens 0: stays 0
    e = Planner.from_history(offline).estimate("graph-ops")
    assert (e.tokens_p50, e.tokens_p90, e.cost_p90) == (0, 0, 0.0)
    # Half the runs call a model: p50 is zero, p90 is a real token count.
    def half_calling(n: int):
        return [r.model_copy(update={"tokens": 1000 if i % 2 else 0, "finished_at": T0 + timedelta(minutes=i)})
                for i, r in enumerate((offline * n)[:n * 10])]

    e = Planner.from_history(half_calling(2)).estimate("graph-ops")
    assert e.tokens_p50 == 0 and e.tokens_p90 > 1000  # every calling run used 1000: only the prior spreads
    more = Planner.from_history(half_calling(8)).estimate("graph-ops")
    assert more.tokens_p50 == 0 and 1000 < more.tokens_p90 < e.tokens_p90  # ... and it washes out


def test_run_record_accepts_pex_values():
    r = RunRecord(lane="code-impl", duration_s=0.0, status=TaskState.succeeded, finished_at=datetime(2025, 1, 1))
    assert r.status == "succeeded"
    planner = Planner(min_n=1)
    assert planner.observe(r) and planner.estimate("code-impl").duration_p50_s > 0  # 0 s logged as 1 ms
    with pytest.raises(ValueError):
        RunRecord(lane="code-impl", duration_s=-1, status="succeeded", finished_at=T0)


def test_from_history_orders_by_finished_at():
    history = runs("data-schema", 10.0, 0.2, 20, seed=5) + runs("data-schema", 40.0, 0.2, 5, seed=6, start=20)
    shuffled = list(reversed(history))
    assert Planner.from_history(shuffled).estimate("data-schema") == Planner.from_history(history).estimate("data-schema")
    assert Planner.from_history(shuffled).estimate("data-schema").drift


def _mixed_history():
    h = runs("code-impl", 120, 0.4, 40, seed=21) + runs("graph-ops", 6, 0.3, 30, seed=22) \
        + runs("data-schema", 15, 0.3, 3, seed=23) \
        + runs("vector-ops", 50, 0.3, 25, seed=24) + runs("vector-ops", 200, 0.3, 5, seed=25, start=25)
    h.append(RunRecord(lane="code-impl", duration_s=9999, status="failed", finished_at=T0))
    h.append(RunRecord(lane="not-a-lane", duration_s=1, status="succeeded", finished_at=T0))  # left out
    return h


def test_calibration_report_one_row_per_lane():
    df = calibration_report(_mixed_history())
    assert list(df.lane) == list(LANE_IDS) and len(df) == 6
    row = df.set_index("lane")
    ci = row.loc["code-impl"]  # 40 succeeded runs from log-normal(log 120, 0.4), the first 5 unscored
    assert ci["n"] == 40 and ci["scored"] == 35
    scored, sigma = 35, 0.4
    assert ci["within_p90"] >= 0.90 - 3 * math.sqrt(0.90 * 0.10 / scored)  # nominal, less 3 standard errors
    assert 0.80 - 3 * math.sqrt(0.80 * 0.20 / scored) <= ci["within_p10_p90"] <= ci["within_p90"]
    # |log error| of a normal: mean sigma*sqrt(2/pi), sd sigma*sqrt(1 - 2/pi); early estimates add
    # their own error (at most a factor sqrt(1 + 1/5) with 5 runs behind them)
    mean_abs, sd_abs = sigma * math.sqrt(2 / math.pi), sigma * math.sqrt(1 - 2 / math.pi)
    tolerance = 3 * sd_abs / math.sqrt(scored)
    assert mean_abs - tolerance < ci["mean_abs_log_err"] < mean_abs * math.sqrt(1 + 1 / 5) + tolerance
    assert log_close(ci["p50_s"], 120, 3 * sigma / math.sqrt(40))
    assert log_close(ci["p90_s"], true_p90(120, sigma), 3.5 * se_log_p90(sigma, 40))
    assert row.loc["vector-ops", "drift"] and not row.loc["code-impl", "drift"]
    assert row.loc["data-schema", "prior_only"] and row.loc["data-schema", "scored"] == 0
    assert math.isnan(row.loc["data-schema", "within_p90"]) and row.loc["narrative", "n"] == 0
    assert within_band_share(_mixed_history(), "code-impl") == row.loc["code-impl", "within_p90"]
    assert within_band_share(_mixed_history(), "code-impl", two_sided=True) == row.loc["code-impl", "within_p10_p90"]
    assert math.isnan(within_band_share(_mixed_history(), "narrative"))


def test_report_formatting():
    df = calibration_report(_mixed_history())
    data = report_json = plms_cmd.report_json(df)
    json.dumps(data)  # plain types only
    ci = next(r for r in data if r["lane"] == "code-impl")
    assert set(ci) == {"lane", "n", "scored", "within_p90", "within_p10_p90", "mean_abs_log_err",
                       "drift", "prior_only", "p50_s", "p90_s"}
    assert isinstance(ci["n"], int) and isinstance(ci["drift"], bool) and 0.8 <= ci["within_p90"] <= 1
    assert next(r for r in report_json if r["lane"] == "narrative")["within_p90"] is None
    text = plms_cmd.format_report(df)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["lane", "n", "scored", "<=p90"]
    assert len(lines) == 1 + 6 + 1
    vec = next(line for line in lines if line.startswith("vector-ops"))
    assert "DRIFT" in vec and "%" in vec
    assert "prior" in next(line for line in lines if line.startswith("narrative"))
    assert " - " in next(line for line in lines if line.startswith("narrative"))


def _args(**kw):
    ns = Namespace(command="plms", plms_command="calibration", root=".", json=False)
    ns.__dict__.update(kw)
    return ns


def test_cli_without_task_store(capsys, tmp_path):
    assert plms_cmd.run(_args(root=str(tmp_path))) == 1
    err = capsys.readouterr().err
    assert err == f"direng: error: no task store at {tmp_path}\n"
    assert not (tmp_path / ".direng").exists()  # asking does not create one
    assert plms_cmd.run(_args(root=str(tmp_path / "missing"))) == 1


def finished_run(store, lane: str, state: TaskState, seconds: float = 0.0, rehearsal: bool = False) -> dict:
    """One run through the real task store, as PEX and the executor move it: a task is created,
    estimated, approved and queued; a worker claims the run, works `seconds`, and finishes it."""
    task, _ = store.create_task(title=f"{lane} run", brief="", lane=lane, parameters={}, rehearsal=rehearsal)
    store.transition(task.id, TaskState.estimated)
    store.transition(task.id, TaskState.approved)
    run_id = store.enqueue(task.id)
    run = store.claim("test-worker:1", {lane: 1}, lease_s=30, task_id=task.id)
    assert run is not None and run["id"] == run_id
    time.sleep(seconds)
    store.finish(run_id, state, error=None if state == TaskState.succeeded else state.value)
    return store.get_run(run_id)


def test_cli_reads_the_real_run_history(capsys, tmp_path):
    from direng_kernel.pex.store import TaskStore

    store = TaskStore.for_root(tmp_path)
    waits = [0.05, 0.1, 0.2, 0.3] * 2
    done = [finished_run(store, "graph-ops", TaskState.succeeded, w) for w in waits]
    # none of these calibrates: a failure, a cancellation, a rehearsal
    for state, rehearsal in ((TaskState.failed, False), (TaskState.cancelled, False), (TaskState.succeeded, True)):
        finished_run(store, "graph-ops", state, 0.0, rehearsal=rehearsal)
    finished_run(store, "narrative", TaskState.succeeded, 0.0)

    assert plms_cmd.run(_args(root=str(tmp_path), json=True)) == 0
    report = {r["lane"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(report) == list(LANE_IDS)
    graph = report["graph-ops"]
    assert (graph["n"], graph["scored"], graph["prior_only"]) == (len(waits), len(waits) - 5, False)
    durations = [r["duration_s"] for r in done]
    assert all(d >= w for d, w in zip(durations, waits))  # the store timed the real work
    # the estimate comes from those runs (a prior median of 13 s is worth 0.1 run); the report
    # rounds to 0.1 s
    assert round(min(durations), 1) <= graph["p50_s"] <= round(max(durations), 1)
    assert graph["p90_s"] > graph["p50_s"]
    assert report["narrative"]["n"] == 1 and report["narrative"]["prior_only"]
    assert all(report[lane]["n"] == 0 for lane in LANE_IDS if lane not in ("graph-ops", "narrative"))

    assert plms_cmd.run(_args(root=str(tmp_path))) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("graph-ops")).split()
    assert row[1:3] == [str(len(waits)), str(len(waits) - 5)] and "prior" not in row


def test_cli_parser_and_light_import():
    import argparse

    parser = argparse.ArgumentParser(prog="direng")
    plms_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plms", "calibration", "--root", "/x", "--json"])
    assert (args.command, args.plms_command, args.root, args.json) == ("plms", "calibration", "/x", True)
    code = "import sys, direng_kernel.cli.plms_cmd; print(sorted(m for m in ('pandas', 'scipy', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
