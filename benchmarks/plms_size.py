"""Estimates that scale: the size model (plms/scaling.py) against the per-lane model, on recorded
histories and on synthetic ones, in the same run.

Both models are scored on the same held-out predictions: every calibrating run against each
model's estimate from the runs before it (rolling origin, one step; a lane is scored from its 6th
run). Per history: p90 coverage (share of actuals <= p90, nominal 0.9, floor 0.8), p10-p90 share
(nominal 0.8), band width as the mean p90/p10 ratio, mean |log(actual/p50)|, and which model each
lane keeps (of the lanes with scored runs). "chosen" scores every lane with the model it keeps (the choice is made on these same
held-out runs, so it is an upper bound for the choice itself).

Recorded histories: every `pex.sqlite3` under the stores given with `--store DIR` (default: the
repository's `.direng/` and anything under benchmarks/); "none found" is said, not hidden.
`benchmarks/plms_record.py` records one (real lane runs of varied sizes, in
benchmarks/.cache/plms_history/). Each is printed as the synthetic ones are, for all its lanes and
per lane, with the least-squares slope of log(duration) on log(1 + size) of each of the lane's
sizes alone and its r² (how much the durations depend on size at all).

Synthetic (known parameters, seeds 0..S-1): per lane log(duration) = a + b (log(1 + size) - log 1e4)
+ 0.35 noise, sizes log-uniform 1e3..1e5, 60 runs per lane, five lanes:
  * scale:      every lane scales, b ~ U(0.5, 0.9);
  * one-flat:   as scale, but graph-ops does not depend on size (b = 0);
  * flat:       no lane depends on size (b = 0): the size model should be kept nowhere;
  * young:      three lanes of 60 runs with b = 0.8, graph-ops with 7: |log p50 - log true median|
                of both models at four sizes (does the young lane borrow the slope?).

    python benchmarks/plms_size.py [--seeds 5] [--store DIR ...]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from direng_kernel.plms.estimate import Planner, RunRecord
from direng_kernel.plms.features import lane_features
from direng_kernel.plms.scaling import ScaledPlanner, compare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "plms_size.json"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
REF = math.log(1e4)
LANES = ["code-impl", "code-api-design", "vector-ops", "narrative", "graph-ops"]


def lane_runs(rng, lane, n, a, b, sigma=0.35, start=0):
    out = []
    for k in range(n):
        feats = {f: float(np.exp(rng.uniform(math.log(1e3), math.log(1e5)))) for f in lane_features(lane)}
        y = a + b * (math.log1p(feats[lane_features(lane)[0]]) - REF) + sigma * rng.standard_normal()
        out.append(RunRecord(lane=lane, duration_s=math.exp(y), status="succeeded", features=feats,
                             finished_at=T0 + timedelta(minutes=10 * (start + k), seconds=int(rng.integers(0, 60)))))
    return out


def synthetic(kind: str, seed: int) -> list[RunRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for lane in LANES:
        b = 0.0 if kind == "flat" or (kind == "one-flat" and lane == "graph-ops") else rng.uniform(0.5, 0.9)
        out += lane_runs(rng, lane, 60, rng.uniform(2.5, 4.5), b)
    return out


def summary(records: list[RunRecord]) -> dict:
    t = time.perf_counter()
    comparison = compare(records)
    seconds = time.perf_counter() - t
    decisions = comparison.decide()
    scores = comparison.scores
    if not scores:
        return {"runs": len(records), "scored": 0, "compare_s": round(seconds, 3)}

    def figures(rows, model):
        a = np.array([r["actual"] for r in rows])
        p10, p50, p90 = (np.array([r[f"{model}_p{q}"] for r in rows]) for q in (10, 50, 90))
        return {"within_p90": round(float(np.mean(a <= p90)), 3),
                "within_p10_p90": round(float(np.mean((p10 <= a) & (a <= p90))), 3),
                "band_ratio": round(float(np.exp(np.mean(np.log(p90 / p10)))), 2),
                "mean_abs_log_err": round(float(np.mean(np.abs(np.log(a / p50)))), 3)}

    chosen = [{**r, **{f"chosen_p{q}": r[f"{decisions[r['lane']].model}_p{q}"] for q in (10, 50, 90)}}
              for r in scores]
    per_lane = {lane: {"scored": len(rows), "lane_model": figures(rows, "lane"), "size_model": figures(rows, "size"),
                       "chosen": figures(rows, "chosen"), "elasticity": elasticity(records, lane)}
                for lane in sorted({r["lane"] for r in chosen}) for rows in [[r for r in chosen if r["lane"] == lane]]}
    return {"runs": len(records), "scored": len(scores), "compare_s": round(seconds, 3),
            "lane_model": figures(scores, "lane"), "size_model": figures(scores, "size"),
            "chosen": figures(chosen, "chosen"), "per_lane": per_lane,
            "size_kept": sorted(lane for lane, d in decisions.items() if d.model == "size" and d.scored),
            "decisions": {lane: {"model": d.model, "basis": d.basis, "scored": d.scored, "reason": d.reason}
                          for lane, d in decisions.items() if d.scored or d.model == "size"}}


def elasticity(records: list[RunRecord], lane: str) -> dict:
    """Per size of the lane, alone: the least-squares slope of log(duration) on log(1 + size) over
    the lane's calibrating runs, and its r² (how much of the spread that size explains)."""
    runs = [r for r in records if r.lane == lane and r.status == "succeeded" and not r.rehearsal]
    out = {}
    for name in lane_features(lane):
        pts = [(math.log1p(r.features[name]), math.log(max(r.duration_s, 1e-3))) for r in runs
               if isinstance(r.features.get(name), (int, float))]
        if len(pts) < 3 or np.ptp([x for x, _ in pts]) == 0:
            continue
        x, y = np.array(pts).T
        slope, icpt = np.polyfit(x, y, 1)
        resid = y - (slope * x + icpt)
        r2 = 1 - float(resid.var()) / float(y.var()) if y.var() > 0 else 0.0
        out[name] = {"slope": round(float(slope), 3), "r2": round(r2, 3), "n": len(pts),
                     "range": [round(float(np.expm1(x.min()))), round(float(np.expm1(x.max())))]}
    return out


def print_recorded(store: str, s: dict) -> None:
    """The comparison table of a recorded history: all lanes, then each lane with its sizes' slopes."""
    print(f"\n{store}: {s['runs']} runs, {s['scored']} scored, {s.get('skipped', 0)} skipped rows")
    if not s["scored"]:
        return
    print(f"{'lane':<16} {'scored':>6} {'model':<6} {'<=p90':>6} {'p10-p90':>8} {'p90/p10':>8} {'|err|':>6}  "
          "kept / slope on log size (r², range)")
    rows = [("all lanes", s["scored"], s)] + [(lane, v["scored"], v) for lane, v in s["per_lane"].items()]
    for name, n, v in rows:
        for m in ("lane_model", "size_model", "chosen"):
            a = v[m]
            if name == "all lanes":
                tail = f"size model kept in {', '.join(s['size_kept']) or 'no lane'}" if m == "chosen" else ""
            else:
                d = s["decisions"].get(name, {})
                tail = (f"{d.get('model', 'lane')} ({d.get('basis', '?')}): {d.get('reason', '')}" if m == "chosen" else
                        ", ".join(f"{f} {e['slope']:+.2f} ({e['r2']:.2f}; {e['range'][0]:,}..{e['range'][1]:,})"
                                  for f, e in v["elasticity"].items()) if m == "size_model" else "")
            print(f"{name if m == 'lane_model' else '':<16} {n if m == 'lane_model' else '':>6} {m.split('_')[0]:<6} "
                  f"{a['within_p90']:>6.1%} {a['within_p10_p90']:>8.1%} {a['band_ratio']:>7.2f}x "
                  f"{a['mean_abs_log_err']:>6.3f}  {tail}")


def young(seed: int) -> dict:
    rng = np.random.default_rng(100 + seed)
    records = []
    for i, lane in enumerate(["code-impl", "code-api-design", "vector-ops"]):
        records += lane_runs(rng, lane, 60, 2.5 + 0.5 * i, 0.8, 0.3)
    records += lane_runs(rng, "graph-ops", 7, 3.2, 0.8, 0.3, start=60)
    scaled, plain = ScaledPlanner.from_history(records), Planner.from_history(records)
    err_size, err_lane = [], []
    for lines in (1.5e3, 5e3, 3e4, 8e4):
        truth = 3.2 + 0.8 * (math.log1p(lines) - REF)
        err_size.append(abs(math.log(scaled.estimate("graph-ops", {"repo_lines": lines}).duration_p50_s) - truth))
        err_lane.append(abs(math.log(plain.estimate("graph-ops").duration_p50_s) - truth))
    return {"size_model_err": float(np.mean(err_size)), "lane_model_err": float(np.mean(err_lane)),
            "model": scaled.decisions["graph-ops"].model,
            "explanation": scaled.estimate("graph-ops", {"repo_lines": 8e4}).explanation}


def recorded(stores: list[Path]) -> dict:
    from direng_kernel.pex.store import DB_NAME, TaskStore

    found = sorted({p.parent for s in stores if s.exists() for p in s.rglob(DB_NAME)})
    out = {"searched": [str(s) for s in stores], "stores": {}}
    for store in found:
        history = TaskStore.for_store(store).run_history()
        out["stores"][str(store)] = {"skipped": history.skipped, **summary(history.records)}
    if not found:
        out["note"] = "no recorded histories found: no pex.sqlite3 under the searched stores"
    return out


def mean_of(results: list[dict], model: str) -> dict:
    keys = ("within_p90", "within_p10_p90", "band_ratio", "mean_abs_log_err")
    return {k: round(float(np.mean([r[model][k] for r in results])), 3) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--store", action="append", type=Path, default=None)
    args = ap.parse_args()
    stores = args.store or [HERE.parent / ".direng", HERE]
    out = {"recorded": recorded(stores), "synthetic": {}}
    rec = out["recorded"]
    print("recorded histories:", rec.get("note") or ", ".join(rec["stores"]))
    for store, s in rec["stores"].items():
        print_recorded(store, s)
    print(f"\n{'history':<10} {'model':<6} {'<=p90':>6} {'p10-p90':>8} {'p90/p10':>8} {'|err|':>6}  size model kept in")
    for kind in ("scale", "one-flat", "flat"):
        results = [summary(synthetic(kind, seed)) for seed in range(args.seeds)]
        agg = {m: mean_of(results, m) for m in ("lane_model", "size_model", "chosen")}
        kept = [len(r["size_kept"]) for r in results]
        flat_kept = [r["decisions"].get("graph-ops", {}).get("model") for r in results]
        out["synthetic"][kind] = {"seeds": args.seeds, "mean": agg, "size_kept_per_seed": kept,
                                  "graph_ops_model_per_seed": flat_kept,
                                  "compare_s_per_history": round(float(np.mean([r["compare_s"] for r in results])), 3),
                                  "runs_per_history": results[0]["runs"], "per_seed": results}
        for m in ("lane_model", "size_model", "chosen"):
            a = agg[m]
            print(f"{kind:<10} {m.split('_')[0]:<6} {a['within_p90']:>6.1%} {a['within_p10_p90']:>8.1%} "
                  f"{a['band_ratio']:>7.2f}x {a['mean_abs_log_err']:>6.3f}"
                  + (f"  {kept} of 5 lanes per seed" if m == "chosen" else ""))
        print(f"{'':<10} replay of both models over {results[0]['runs']} runs: "
              f"{out['synthetic'][kind]['compare_s_per_history']:.2f} s")
    ys = [young(seed) for seed in range(args.seeds)]
    out["synthetic"]["young"] = {
        "seeds": args.seeds, "size_model_err": round(float(np.mean([y["size_model_err"] for y in ys])), 3),
        "lane_model_err": round(float(np.mean([y["lane_model_err"] for y in ys])), 3),
        "size_model_used": sum(y["model"] == "size" for y in ys), "example": ys[0]["explanation"]}
    y = out["synthetic"]["young"]
    print(f"\nyoung lane (7 runs): |log p50 - log true median| size {y['size_model_err']:.3f}, "
          f"per-lane {y['lane_model_err']:.3f}; size model used in {y['size_model_used']} of {args.seeds}")
    print(f"  e.g. {y['example']}")
    write(OUT, out)


if __name__ == "__main__":
    main()
