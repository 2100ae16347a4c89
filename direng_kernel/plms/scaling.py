"""Estimates that scale: log(duration) regressed on task size per lane, slopes pooled across
lanes, kept only for the lanes where it predicts better than the per-lane model.

Idea. Per lane, y = log(duration) = a + sum_j b_j (z_j - c_j) + e with z_j = log(1 + size_j) of
the lane's features (`features.LANE_FEATURES`: repository lines, patch lines, input bytes, ...),
c_j their mean over the lane's runs, e ~ N(0, s2). It is a Bayesian linear regression with a
Normal-Inverse-Gamma prior (`regression.NIGRegression`): the intercept and s2 have the lane's
documented prior (`priors.py`, as the per-lane model), each slope b_j the *pooled* prior from the
other lanes that record feature j (empirical Bayes: DerSimonian-Laird over the lanes'
least-squares slopes, `regression.pool_slope`). A young lane therefore scales by the elasticity the other
lanes agree on, and a lane with many runs by its own. The estimate is the p50/p90 of the
Student-t posterior predictive at the task's sizes, exp'd. A missing size sits at the lane's
mean (it moves nothing); a size the lane has never varied is scaled by the pooled slope alone.

Choosing per lane. `compare` replays the history in `finished_at` order (rolling origin, one
step: every calibrating run is predicted by both models from the runs before it, then observed;
runs while the lane is prior-only are not scored). `decide` keeps the size model for a lane only
when on those held-out predictions its p90 covers >= 80 % of actuals, its p10-p90 band is at
least 5 % narrower (mean log(p90/p10)) and its mean |log(actual/p50)| is no worse. A lane with
fewer than `MIN_SCORED` scored runs is decided on all lanes' scores pooled (so a young lane can
use the size model when it wins overall); with too few anywhere, the per-lane model stays.
Decisions are recomputed from the history each time a planner is built (`ScaledPlanner`).

Explanation. The estimate names what drove it: the sizes whose term moves the estimate by >=
10 % (their factor against the lane's usual size), and "young lane" while the lane has fewer than
`YOUNG_N` runs, e.g. "p90 240 s: 12k-line repo (x1.9 the usual 3.4k), young lane (7 runs; size
effect from 4 other lanes)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

import numpy as np
from pydantic import BaseModel

from ..models import Estimate
from .estimate import MIN_DURATION_S, NIG, Planner, RunRecord, _t_ppf, _ts, is_calibrating
from .features import FEATURES, Feature, lane_features, log_size
from .priors import LanePrior
from .regression import NIGRegression, SlopeFit, ols_slopes, pool_slope

MIN_COVERAGE = 0.8   # the size model's held-out p90 coverage must stay at or above this
SHARPER_BY = 0.05    # ... its band must be at least this much narrower
MIN_SCORED = 10      # a lane with fewer held-out scores is decided on all lanes' scores
YOUNG_N = 20         # below this many runs the explanation says "young lane"
DRIVER_FACTOR = 1.1  # a size is named when it moves the estimate by at least 10 %
QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class _Lane:
    names: tuple[str, ...]
    prior: NIG
    ys: list[float] = field(default_factory=list)
    zs: list[tuple] = field(default_factory=list)  # per run, log(1 + size) per name (None: missing)
    _ols: Optional[dict[str, SlopeFit]] = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(y, centred sizes with missing ones at 0, centres; NaN centre: never recorded)."""
        y = np.asarray(self.ys, dtype=float)
        Z = np.array(self.zs, dtype=float).reshape(len(self.ys), len(self.names))
        present = ~np.isnan(Z)
        counts = present.sum(axis=0)
        centres = np.where(counts > 0, np.nansum(Z, axis=0) / np.maximum(counts, 1), np.nan)
        Zc = np.where(present, Z - centres, 0.0)
        return y, Zc, centres

    def ols(self, lane: str) -> dict[str, SlopeFit]:
        """This lane's least-squares slopes (features it has varied), for the other lanes' priors."""
        if self._ols is None:
            self._ols = {}
            if self.ys:
                y, Zc, _ = self.arrays()
                active = [j for j in range(len(self.names)) if Zc[:, j].std() > 1e-6]
                if active:
                    X = np.column_stack([np.ones(len(y)), Zc[:, active]])
                    fit = ols_slopes(X, y)
                    if fit is not None:
                        coef, var, _ = fit
                        self._ols = {self.names[j]: SlopeFit(lane, float(coef[i + 1]), float(var[i + 1]))
                                     for i, j in enumerate(active)}
        return self._ols


@dataclass
class Driver:
    """One size's part in an estimate: its value, the lane's usual value, the factor it applies."""

    feature: Feature
    value: float
    usual: float
    factor: float

    def text(self) -> str:
        return f"{self.feature.describe(self.value)} (×{self.factor:.2g} the usual {self.feature.amount(self.usual)})"


@dataclass
class Prediction:
    loc: float
    scale: float
    df: float
    n: int
    drivers: list[Driver]
    pooled: int  # other lanes whose slopes informed this lane's prior (the most over its features)

    def quantile(self, q: float) -> float:
        """Quantile q of the predictive duration, seconds."""
        return math.exp(self.loc + _t_ppf(self.df, q) * self.scale)


class SizeModel:
    """Per-lane Bayesian regressions of log(duration) on log sizes, slopes pooled across lanes."""

    def __init__(self, priors: Mapping[str, LanePrior]):
        self._lanes = {lane: _Lane(lane_features(lane), NIG(*p.nig())) for lane, p in priors.items()}

    def observe(self, record: RunRecord) -> bool:
        """Fold in a finished run; False when it does not calibrate (or its lane is unknown)."""
        st = self._lanes.get(record.lane)
        if st is None or not is_calibrating(record):
            return False
        st.ys.append(math.log(max(record.duration_s, MIN_DURATION_S)))
        st.zs.append(tuple(log_size(record.features, name) for name in st.names))
        st._ols = None
        return True

    def n(self, lane: str) -> int:
        return len(self._lanes[lane].ys)

    def hyperprior(self, lane: str) -> dict[str, tuple[float, float, int]]:
        """Per feature of the lane: (prior mean, prior variance, other lanes pooled) of its slope
        (`regression.pool_slope`)."""
        names = self._lanes[lane].names
        fits = [st.ols(other) for other, st in self._lanes.items()]
        return {name: pool_slope([f[name] for f in fits if name in f], lane) for name in names}

    def _fit(self, lane: str):
        st = self._lanes[lane]
        y, Zc, centres = st.arrays()
        cols = [j for j in range(len(st.names)) if np.isfinite(centres[j])]
        hyper = self.hyperprior(lane)
        means = np.array([hyper[st.names[j]][0] for j in cols])
        # Slope priors are variances of w; the NIG prior is in units of s2: divide by the lane's
        # residual spread under the pooled slopes (the prior is on the elasticity, not on s2).
        X = np.column_stack([np.ones(len(y)), Zc[:, cols]])
        resid = y - Zc[:, cols] @ means if cols else y
        s2_ref = float(resid.var(ddof=1)) if len(y) >= 3 else 0.0
        if s2_ref <= 1e-6:
            s2_ref = st.prior.beta * (st.prior.kappa + 1) / (st.prior.alpha * st.prior.kappa)
        prior = NIGRegression(
            m=np.concatenate([[st.prior.mu], means]),
            V=np.diag([1.0 / st.prior.kappa] + [hyper[st.names[j]][1] / s2_ref for j in cols]),
            a=st.prior.alpha, b=st.prior.beta)
        return prior.posterior(X, y), cols, centres, hyper

    def predict(self, lane: str, features: Optional[Mapping[str, float]] = None) -> Prediction:
        """The Student-t predictive of log(duration) for a task of this lane with these sizes."""
        st = self._lanes[lane]
        post, cols, centres, hyper = self._fit(lane)
        features = features or {}
        x, drivers = [1.0], []
        for i, j in enumerate(cols):
            name = st.names[j]
            z = log_size(features, name)
            dz = 0.0 if z is None else z - centres[j]
            x.append(dz)
            factor = math.exp(post.m[i + 1] * dz)
            if z is not None and max(factor, 1 / factor) >= DRIVER_FACTOR:
                drivers.append(Driver(FEATURES[name], math.expm1(z), math.expm1(centres[j]), factor))
        loc, scale, df = post.predictive(np.array(x))
        drivers.sort(key=lambda d: -abs(math.log(d.factor)))
        pooled = max((hyper[st.names[j]][2] for j in cols), default=0)
        return Prediction(loc, scale, df, len(st.ys), drivers, pooled)


# -- comparison and the per-lane choice ------------------------------------------------------

class ModelScores(BaseModel):
    """One model's held-out scores on a lane: p90 coverage, mean band width, mean |log err|."""

    within_p90: float
    within_p10_p90: float
    band_log_width: float  # mean log(p90 / p10)
    mean_abs_log_err: float


class Decision(BaseModel):
    """Which model answers for a lane, and the held-out figures it was decided on."""

    lane: str
    model: str  # "lane" | "size"
    basis: str  # "lane" (its own held-out runs) | "pooled" (all lanes') | "none" (too few scored)
    scored: int  # the lane's own scored runs
    lane_scores: Optional[ModelScores] = None
    size_scores: Optional[ModelScores] = None
    reason: str = ""


def _scores(rows: list[dict], model: str) -> ModelScores:
    a = np.array([r["actual"] for r in rows])
    p10, p50, p90 = (np.array([r[f"{model}_p{q}"] for r in rows]) for q in (10, 50, 90))
    return ModelScores(within_p90=float(np.mean(a <= p90)), within_p10_p90=float(np.mean((p10 <= a) & (a <= p90))),
                       band_log_width=float(np.mean(np.log(p90 / p10))),
                       mean_abs_log_err=float(np.mean(np.abs(np.log(a / p50)))))


def _wins(lane_s: ModelScores, size_s: ModelScores) -> tuple[bool, str]:
    if size_s.within_p90 < MIN_COVERAGE:
        return False, f"size model's p90 covers {size_s.within_p90:.0%} < {MIN_COVERAGE:.0%}"
    if size_s.band_log_width > (1 - SHARPER_BY) * lane_s.band_log_width:
        return False, "size model's band is not sharper"
    if size_s.mean_abs_log_err > lane_s.mean_abs_log_err:
        return False, "size model's p50 is further off"
    ratio = math.exp(size_s.band_log_width) / math.exp(lane_s.band_log_width)
    return True, f"p90/p10 {ratio:.2f}× the per-lane band's ratio, p90 covers {size_s.within_p90:.0%}"


@dataclass
class Comparison:
    """The replay of both models: the final per-lane planner and size model, and per scored run
    both models' p10/p50/p90 (`lane_p10`, ..., `size_p90`) with the actual."""

    planner: Planner
    size: SizeModel
    scores: list[dict]

    def decide(self) -> dict[str, Decision]:
        """The model each lane uses, from the held-out scores (see the module docstring)."""
        pooled = (_scores(self.scores, "lane"), _scores(self.scores, "size")) if len(self.scores) >= MIN_SCORED else None
        out = {}
        for lane in self.planner.lanes:
            rows = [s for s in self.scores if s["lane"] == lane]
            if not any(s["sized"] for s in rows) and rows:
                out[lane] = Decision(lane=lane, model="lane", basis="lane", scored=len(rows),
                                     lane_scores=_scores(rows, "lane"), size_scores=_scores(rows, "size"),
                                     reason="no sizes recorded for its runs")
                continue
            if len(rows) >= MIN_SCORED:
                basis, (ls, ss) = "lane", (_scores(rows, "lane"), _scores(rows, "size"))
            elif pooled is not None:
                basis, (ls, ss) = "pooled", pooled
            else:
                out[lane] = Decision(lane=lane, model="lane", basis="none", scored=len(rows),
                                     lane_scores=_scores(rows, "lane") if rows else None,
                                     size_scores=_scores(rows, "size") if rows else None,
                                     reason=f"fewer than {MIN_SCORED} held-out runs")
                continue
            win, why = _wins(ls, ss)
            out[lane] = Decision(lane=lane, model="size" if win else "lane", basis=basis, scored=len(rows),
                                 lane_scores=ls, size_scores=ss,
                                 reason=why + (" (all lanes' held-out runs)" if basis == "pooled" else ""))
        return out


def compare(records: Iterable[RunRecord], min_n: int = 5, recent_k: int = 5,
            priors: Optional[dict[str, LanePrior]] = None) -> Comparison:
    """Replay `records` in order; score every calibrating run (once its lane is past min_n) with
    both models' estimates from the runs before it, then observe it in both."""
    planner = Planner(min_n=min_n, recent_k=recent_k, priors=priors)
    size = SizeModel(planner.priors)
    scores = []
    for r in sorted(records, key=lambda r: _ts(r.finished_at)):
        if r.lane not in planner.priors:
            continue
        if is_calibrating(r) and not planner.prior_only(r.lane):
            pred = size.predict(r.lane, r.features)
            row = {"lane": r.lane, "actual": max(r.duration_s, MIN_DURATION_S), "at": r.finished_at,
                   "sized": any(log_size(r.features, n) is not None for n in lane_features(r.lane))}
            for q in QUANTILES:
                row[f"lane_p{round(q * 100)}"] = planner.quantile(r.lane, q)
                row[f"size_p{round(q * 100)}"] = pred.quantile(q)
            scores.append(row)
        planner.observe(r)
        size.observe(r)
    return Comparison(planner, size, scores)


# -- the planner that answers with the chosen model ------------------------------------------

def _secs(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


class ScaledPlanner:
    """PLMS's estimates with the model each lane won: the per-lane one (`Planner`) or the size
    model at the task's sizes. Drift, tokens and cost always come from the per-lane model."""

    def __init__(self, comparison: Comparison):
        self.comparison = comparison
        self.planner = comparison.planner
        self.size = comparison.size
        self.decisions = comparison.decide()

    @classmethod
    def from_history(cls, records: Iterable[RunRecord], min_n: int = 5, recent_k: int = 5,
                     priors: Optional[dict[str, LanePrior]] = None) -> "ScaledPlanner":
        return cls(compare(records, min_n=min_n, recent_k=recent_k, priors=priors))

    def estimate(self, lane: str, features: Optional[Mapping[str, float]] = None) -> Estimate:
        """The lane's estimate for a task of these sizes, with the model used and why."""
        est = self.planner.estimate(lane)  # UnknownLaneError for a lane without a prior
        if est.prior_only:
            why = f"the lane's prior ({est.n_history} of {self.planner.min_n} runs so far)"
            return est.model_copy(update={"explanation": f"p90 {_secs(est.duration_p90_s)}: {why}"})
        decision = self.decisions.get(lane)
        if decision is None or decision.model != "size":
            why = f"{est.n_history} runs of the lane"
            if decision is not None and decision.reason:
                why += f"; per-lane model kept: {decision.reason}"
            return est.model_copy(update={"explanation": f"p90 {_secs(est.duration_p90_s)}: {why}"})
        pred = self.size.predict(lane, features)
        p50, p90 = pred.quantile(0.5), pred.quantile(0.9)
        parts = [d.text() for d in pred.drivers] or ["the lane's usual size"]
        if pred.n < YOUNG_N:
            borrowed = f"; size effect from {pred.pooled} other lane{'s' * (pred.pooled != 1)}" if pred.pooled else ""
            parts.append(f"young lane ({pred.n} runs{borrowed})")
        return est.model_copy(update={
            "duration_p50_s": round(p50, 3), "duration_p90_s": round(p90, 3), "model": "size",
            "explanation": f"p90 {_secs(p90)}: " + ", ".join(parts)})

    def band(self, lane: str, features: Optional[Mapping[str, float]] = None) -> tuple[float, float]:
        """The p10-p90 band in seconds of the model the lane uses."""
        decision = self.decisions.get(lane)
        if self.planner.prior_only(lane) or decision is None or decision.model != "size":
            return self.planner.band(lane)
        pred = self.size.predict(lane, features)
        return pred.quantile(0.1), pred.quantile(0.9)
