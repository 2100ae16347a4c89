"""Bayesian linear regression with a Normal-Inverse-Gamma prior, and the empirical-Bayes pooling
of slopes across lanes that gives each lane its prior.

Regression: y = X w + e, e ~ N(0, s2). Prior w | s2 ~ N(m0, s2 V0), s2 ~ InvGamma(a0, b0). The
posterior is again NIG (`NIGRegression.posterior`, closed form):

    L = V0^-1 + X'X      m = L^-1 (V0^-1 m0 + X'y)      a = a0 + n/2
    b = b0 + (|y - X m|^2 + (m - m0)' V0^-1 (m - m0)) / 2

and the predictive of y at x is a Student-t with 2a degrees of freedom, location x'm and scale
sqrt(b/a (1 + x' L^-1 x)). With X a column of ones and V0 = 1/kappa0 this is exactly the per-lane
NIG model of `estimate.py`.

Pooling (`pool_slope`): every lane with enough runs gives a least-squares slope per feature and its
variance; the DerSimonian-Laird random-effects estimate over all of them gives tau^2, how much
lanes' slopes differ, and the *other* lanes' slopes, weighted by 1/(var + tau^2), the pooled mean.
A lane's prior on that slope is N(pooled mean, tau^2 + var(pooled mean)), the predictive of a new
lane's slope. So a lane with few
runs borrows the slope the others agree on, and a lane with many runs overrides it with its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

#: tau^2 from one other lane only (cannot be estimated): lanes' elasticities differ by ~0.5.
TAU2_ONE_LANE = 0.25
#: floor of tau^2: however well lanes agree, a new lane may differ by ~0.1.
TAU2_MIN = 0.01
#: the slope prior when no other lane informs it: an elasticity of 0 +- 1.
NO_POOL = (0.0, 1.0)


@dataclass
class NIGRegression:
    """NIG belief about (w, s2): w | s2 ~ N(m, s2 V), s2 ~ InvGamma(a, b)."""

    m: np.ndarray
    V: np.ndarray
    a: float
    b: float

    def posterior(self, X: np.ndarray, y: np.ndarray) -> "NIGRegression":
        """The exact conjugate update with all rows of X, y at once."""
        L0 = np.linalg.inv(self.V)
        L = L0 + X.T @ X
        V = np.linalg.inv(L)
        m = V @ (L0 @ self.m + X.T @ y)
        r, d = y - X @ m, m - self.m
        b = self.b + 0.5 * (float(r @ r) + float(d @ L0 @ d))
        return NIGRegression(m=m, V=V, a=self.a + 0.5 * len(y), b=b)

    def predictive(self, x: np.ndarray) -> tuple[float, float, float]:
        """(location, scale, degrees of freedom) of the Student-t predictive of y at x."""
        scale = np.sqrt(self.b / self.a * (1.0 + float(x @ self.V @ x)))
        return float(x @ self.m), float(scale), 2.0 * self.a


@dataclass(frozen=True)
class SlopeFit:
    """A lane's least-squares slope of one feature and its sampling variance."""

    lane: str
    slope: float
    var: float


def ols_slopes(X: np.ndarray, y: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray, float]]:
    """(coefficients, their variances, residual variance) by least squares; None with fewer than
    p + 2 rows (no residual spread to speak of) or a rank-deficient design."""
    n, p = X.shape
    if n < p + 2:
        return None
    XtX = X.T @ X
    if np.linalg.matrix_rank(XtX) < p:
        return None
    coef = np.linalg.solve(XtX, X.T @ y)
    r = y - X @ coef
    s2 = max(float(r @ r) / (n - p), 1e-6)
    return coef, s2 * np.diag(np.linalg.inv(XtX)), s2


def _tau2(fits: Sequence[SlopeFit]) -> float:
    """DerSimonian-Laird between-lane variance of the slopes (`TAU2_ONE_LANE` from one lane)."""
    if len(fits) < 2:
        return TAU2_ONE_LANE
    b, w = np.array([f.slope for f in fits]), 1.0 / np.array([f.var for f in fits])
    fixed = float(w @ b / w.sum())
    q = float(w @ (b - fixed) ** 2)
    return max(TAU2_MIN, (q - (len(fits) - 1)) / (w.sum() - (w @ w) / w.sum()))


def pool_slope(fits: Sequence[SlopeFit], lane: str) -> tuple[float, float, int]:
    """(prior mean, prior variance, lanes pooled) of `lane`'s slope. tau^2 comes from every
    lane's fit, the lane's own included (a lane unlike the others must widen its own prior);
    the mean from the other lanes only (the lane's data enters once, in its posterior).
    `NO_POOL` when no other lane has a fit."""
    fits = [f for f in fits if np.isfinite(f.slope) and np.isfinite(f.var) and f.var > 0]
    others = [f for f in fits if f.lane != lane]
    if not others:
        return NO_POOL[0], NO_POOL[1], 0
    tau2 = _tau2(fits) if len(fits) > 1 else TAU2_ONE_LANE
    ws = 1.0 / (np.array([f.var for f in others]) + tau2)
    mean = float(ws @ np.array([f.slope for f in others]) / ws.sum())
    return mean, tau2 + 1.0 / float(ws.sum()), len(others)
