"""The planner's model: per-lane log-normal run times with a conjugate Bayesian update.

Idea: a lane's durations are log-normal, so x = log(duration) is Normal(mu, sigma^2) with
both unknown. With a Normal-Inverse-Gamma prior NIG(mu0, kappa0, alpha0, beta0) the posterior
after each run is again NIG (a four-number update, `NIG.update`), and the posterior predictive
of the next x is a Student-t with 2*alpha degrees of freedom, location mu and scale
sqrt(beta*(kappa+1)/(alpha*kappa)). The estimate is exp of its 0.5 and 0.9 quantiles; the
t's heavy tails widen the band honestly while a lane has few runs.

Hygiene: only succeeded, non-rehearsal runs calibrate (`is_calibrating`). Below `min_n` such
runs a lane is `prior_only` and answers with its documented prior (`priors.py`) alone.
Drift: the last `recent_k` runs are scored against the p10-p90 band predicted from the runs
before them; `drift_out` (default 3 of 5) or more outside on the *same* side flags drift (a
shift moves runs one way; on stable data it fires on ~2-4 % of windows in simulation).
Tokens and cost use the same update on log scale over the runs with a positive value, mixed
with the share of runs at zero (a hurdle model); they are 0 while the lane is prior-only, as
there is no token or cost prior. Scaling with task size is `scaling.py`'s (it wraps this model).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Iterable, Optional

from pydantic import BaseModel, Field, field_validator

from ..errors import DirEngError
from ..models import Estimate
from .priors import PRIORS, LanePrior

MIN_DURATION_S = 1e-3  # a run recorded as 0 s is logged as 1 ms, not log(0)
CALIBRATING_STATUS = "succeeded"


class RunRecord(BaseModel):
    """One finished run as PEX stores it: the planner's only input."""

    lane: str
    duration_s: float = Field(ge=0)
    tokens: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0)
    status: str  # succeeded | failed | cancelled | interrupted
    rehearsal: bool = False  # a dry run: never calibrates
    finished_at: datetime
    size: Optional[float] = None  # older single size; unused (the sizes are `features`)
    #: the task's sizes as PEX measured them at creation (`plms/features.py`), used by the size model
    features: dict[str, float] = Field(default_factory=dict)

    @field_validator("features")
    @classmethod
    def _sizes(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, x in v.items() if not math.isfinite(x) or x < 0]
        if bad:
            raise ValueError(f"sizes must be finite and >= 0: {', '.join(sorted(bad))}")
        return v


class UnknownLaneError(DirEngError, ValueError):
    """A lane the planner has no prior for."""

    def __init__(self, lane: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(lane, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown lane {lane!r} (known lanes: {', '.join(known)}){hint}")
        self.lane = lane


def is_calibrating(record: RunRecord) -> bool:
    """Only succeeded real runs say how long the lane takes; the rest would bias the fit."""
    return record.status == CALIBRATING_STATUS and not record.rehearsal


def _t_ppf(df: float, q: float) -> float:
    from scipy.special import stdtrit  # lighter than scipy.stats

    return float(stdtrit(df, q))


@dataclass
class NIG:
    """Normal-Inverse-Gamma belief about (mu, sigma^2) of a log-scale quantity."""

    mu: float
    kappa: float  # pseudo-runs behind mu (0: flat prior on the location)
    alpha: float  # 2*alpha pseudo-runs behind sigma^2
    beta: float
    n: int = 0  # real observations folded in

    def update(self, x: float) -> None:
        """Fold in one observation (the exact conjugate update, one run at a time)."""
        k1 = self.kappa + 1
        self.beta += self.kappa * (x - self.mu) ** 2 / (2 * k1)
        self.mu = (self.kappa * self.mu + x) / k1
        self.kappa, self.alpha, self.n = k1, self.alpha + 0.5, self.n + 1

    def folded(self, xs: Iterable[float]) -> "NIG":
        out = replace(self)
        for x in xs:
            out.update(x)
        return out

    def quantile(self, q: float) -> float:
        """Quantile q of the Student-t posterior predictive of the next x (log scale)."""
        scale = math.sqrt(self.beta * (self.kappa + 1) / (self.alpha * self.kappa))
        return self.mu + _t_ppf(2 * self.alpha, q) * scale


def _weak_nig() -> NIG:
    """Prior for log(tokens), log(cost): flat location; a weak spread (beta/alpha = 0.25, 2 pseudo-runs)."""
    return NIG(mu=0.0, kappa=0.0, alpha=1.0, beta=0.25)


@dataclass
class LaneState:
    prior: NIG
    post: NIG
    logs: list[float] = field(default_factory=list)  # calibrated log durations, in order
    tokens: NIG = field(default_factory=_weak_nig)  # over runs with tokens > 0
    cost: NIG = field(default_factory=_weak_nig)  # over runs with cost > 0


def _hurdle_quantile(nig: NIG, n: int, q: float) -> float:
    """Quantile of 'zero with prob 1-p, else log-normal-ish', p = positive runs / all runs."""
    p = nig.n / n if n else 0.0
    if nig.n == 0 or q <= 1 - p:
        return 0.0
    return math.exp(nig.quantile((q - (1 - p)) / p))


def _ts(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


class Planner:
    """Per-lane posteriors over run time, tokens and cost; `observe` runs, `estimate` lanes."""

    def __init__(self, min_n: int = 5, recent_k: int = 5, drift_out: int = 3,
                 priors: Optional[dict[str, LanePrior]] = None):
        if min_n < 0 or recent_k < 1 or not 1 <= drift_out <= recent_k:
            raise ValueError("need min_n >= 0, recent_k >= 1 and 1 <= drift_out <= recent_k")
        self.min_n, self.recent_k, self.drift_out = min_n, recent_k, drift_out
        self.priors = dict(PRIORS if priors is None else priors)
        self._lanes: dict[str, LaneState] = {}
        for lane, prior in self.priors.items():
            nig = NIG(*prior.nig())
            self._lanes[lane] = LaneState(prior=nig, post=replace(nig))

    @classmethod
    def from_history(cls, records: Iterable[RunRecord], min_n: int = 5, recent_k: int = 5,
                     **kwargs) -> "Planner":
        """A planner that has observed `records` in order of `finished_at`."""
        planner = cls(min_n=min_n, recent_k=recent_k, **kwargs)
        for record in sorted(records, key=lambda r: _ts(r.finished_at)):
            planner.observe(record)
        return planner

    @property
    def lanes(self) -> list[str]:
        return list(self._lanes)

    def state(self, lane: str) -> LaneState:
        try:
            return self._lanes[lane]
        except KeyError:
            raise UnknownLaneError(lane, self._lanes) from None

    def observe(self, record: RunRecord) -> bool:
        """Update the lane's posterior with a finished run; False when it does not calibrate."""
        st = self.state(record.lane)
        if not is_calibrating(record):
            return False
        x = math.log(max(record.duration_s, MIN_DURATION_S))
        st.post.update(x)
        st.logs.append(x)
        if record.tokens > 0:
            st.tokens.update(math.log(record.tokens))
        if record.cost > 0:
            st.cost.update(math.log(record.cost))
        return True

    def n_history(self, lane: str) -> int:
        return len(self.state(lane).logs)

    def prior_only(self, lane: str) -> bool:
        return self.n_history(lane) < self.min_n

    def predictive(self, lane: str) -> NIG:
        """The belief the estimate comes from: the prior alone below min_n, else the posterior."""
        st = self.state(lane)
        return st.prior if len(st.logs) < self.min_n else st.post

    def quantile(self, lane: str, q: float) -> float:
        """Duration quantile q in seconds of the lane's predictive distribution."""
        return math.exp(self.predictive(lane).quantile(q))

    def band(self, lane: str, lo: float = 0.1, hi: float = 0.9) -> tuple[float, float]:
        """The calibrated p10-p90 duration band in seconds (Estimate carries only p50/p90)."""
        return self.quantile(lane, lo), self.quantile(lane, hi)

    def drift(self, lane: str) -> bool:
        """Did >= drift_out of the last recent_k runs fall on the same side outside the p10-p90
        band that the runs before them predicted? Needs min_n (at least 1) runs before them."""
        st = self.state(lane)
        k = self.recent_k
        if len(st.logs) - k < max(self.min_n, 1):
            return False
        ref = st.prior.folded(st.logs[:-k])
        lo, hi = ref.quantile(0.1), ref.quantile(0.9)
        recent = st.logs[-k:]
        return max(sum(x < lo for x in recent), sum(x > hi for x in recent)) >= self.drift_out

    def estimate(self, lane: str) -> Estimate:
        """p50/p90 of duration (and of tokens and cost once calibrated) for the next run."""
        st = self.state(lane)
        n, prior_only = len(st.logs), len(st.logs) < self.min_n
        tok = cost = (0.0, 0.0)
        if not prior_only:
            tok = tuple(_hurdle_quantile(st.tokens, n, q) for q in (0.5, 0.9))
            cost = tuple(_hurdle_quantile(st.cost, n, q) for q in (0.5, 0.9))
        return Estimate(
            lane=lane,
            duration_p50_s=round(self.quantile(lane, 0.5), 3),
            duration_p90_s=round(self.quantile(lane, 0.9), 3),
            tokens_p50=int(round(tok[0])), tokens_p90=int(round(tok[1])),
            cost_p50=round(cost[0], 6), cost_p90=round(cost[1], 6),
            n_history=n, prior_only=prior_only, drift=self.drift(lane),
        )
