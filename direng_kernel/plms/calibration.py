"""Is the planner calibrated? Score each run against the estimate made *before* it.

Prequential scoring: replay the history in `finished_at` order; for each calibrating run
(succeeded, not a rehearsal) take the lane's band from the runs before it, score the actual,
then observe it. Runs while the lane is still prior-only are not scored (they test the
prior, not the model) but still update the posterior. Per lane the report gives:

* `within_p90`: share of scored actuals <= the p90 estimate ("within the p90 band";
  nominal 0.90);
* `within_p10_p90`: share inside p10..p90 (nominal 0.80);
* `mean_abs_log_err`: mean |log(actual / p50)| (0.1 is about 10 % off);
* `drift`, `prior_only`, `p50_s`, `p90_s`: the lane's estimate now.

Records of lanes the planner does not know are left out of the report.
"""

from __future__ import annotations

import math
from typing import Iterable

from .estimate import MIN_DURATION_S, Planner, RunRecord, _ts, is_calibrating

COLUMNS = ["lane", "n", "scored", "within_p90", "within_p10_p90", "mean_abs_log_err",
           "drift", "prior_only", "p50_s", "p90_s"]


def prequential(records: Iterable[RunRecord], min_n: int = 5, recent_k: int = 5,
                **kwargs) -> tuple[Planner, list[dict]]:
    """Replay `records`; return the final planner and one score dict per scored run."""
    planner = Planner(min_n=min_n, recent_k=recent_k, **kwargs)
    scores = []
    for r in sorted(records, key=lambda r: _ts(r.finished_at)):
        if r.lane not in planner.priors:
            continue
        score = None
        if is_calibrating(r) and not planner.prior_only(r.lane):
            p10, p90 = planner.band(r.lane)
            p50 = planner.quantile(r.lane, 0.5)
            actual = max(r.duration_s, MIN_DURATION_S)
            score = {"lane": r.lane, "actual": actual, "p10": p10, "p50": p50, "p90": p90,
                     "le_p90": actual <= p90, "in_band": p10 <= actual <= p90,
                     "abs_log_err": abs(math.log(actual / p50)), "at": r.finished_at}
            scores.append(score)
        planner.observe(r)
        if score is not None:
            score["drift"] = planner.drift(r.lane)  # the alarm as it stands once this run is in
    return planner, scores


def calibration_report(records: Iterable[RunRecord], min_n: int = 5, recent_k: int = 5, **kwargs):
    """One row per lane (pandas.DataFrame, columns `COLUMNS`); NaN shares when nothing scored."""
    import pandas as pd

    planner, scores = prequential(records, min_n=min_n, recent_k=recent_k, **kwargs)
    by_lane = pd.DataFrame(scores, columns=["lane", "le_p90", "in_band", "abs_log_err"])
    rows = []
    for lane in planner.lanes:
        s, est = by_lane[by_lane.lane == lane], planner.estimate(lane)
        rows.append({
            "lane": lane, "n": est.n_history, "scored": len(s),
            "within_p90": s.le_p90.mean() if len(s) else math.nan,
            "within_p10_p90": s.in_band.mean() if len(s) else math.nan,
            "mean_abs_log_err": s.abs_log_err.mean() if len(s) else math.nan,
            "drift": est.drift, "prior_only": est.prior_only,
            "p50_s": est.duration_p50_s, "p90_s": est.duration_p90_s,
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def within_band_share(records: Iterable[RunRecord], lane: str, min_n: int = 5,
                      two_sided: bool = False) -> float:
    """Prequential share of the lane's actuals <= p90 (or inside p10..p90 with two_sided)."""
    planner, scores = prequential(records, min_n=min_n)
    planner.state(lane)  # unknown lane: UnknownLaneError
    hits = [s["in_band" if two_sided else "le_p90"] for s in scores if s["lane"] == lane]
    return sum(hits) / len(hits) if hits else math.nan
