"""Per-lane priors for duration: what PLMS says before a lane has enough calibrated runs.

Each prior is stated the way people think about run times, a median and a p90 in seconds, and
is turned into a Normal-Inverse-Gamma prior on log(duration) whose *prior predictive* has
exactly that median and p90 (so a prior-only estimate repeats the numbers below verbatim).

Where the numbers come from: every lane run pays a fixed overhead, measured on the dev box
(2 cores) as 2.9-3.5 s for `papermill` on a one-cell notebook (interpreter and papermill
import, kernel start, numpy/pandas/scipy import), 0.6-0.9 s when papermill is already
imported. On top of that the medians add the typical work of the lane. That work part is an
ENGINEERING GUESS, not a measurement: no lane has real history yet. The p90s are wide on
purpose (a model call can take ten times the median). Replace them with medians and p90s
from `direng plms calibration` once each lane has run a few dozen times.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

OVERHEAD_S = 3.0  # measured: papermill + kernel start + scientific imports (see above)


@dataclass(frozen=True)
class LanePrior:
    """A lane's duration prior: median and p90 in seconds, and how many runs it is worth.

    `kappa0` is the weight of the prior median in runs (0.1) and `2 * alpha0` that of the prior
    spread (1 run). Both are small on purpose: the numbers are guesses, so they answer while
    the lane is `prior_only` and barely move a calibrated estimate (in simulation a prior
    median 10x off still leaves the p90 covering ~0.90 of actuals after 20 runs; with
    kappa0=1, alpha0=2 it over-covered at 0.97-0.99).
    """

    median_s: float
    p90_s: float
    source: str = ""
    kappa0: float = 0.1
    alpha0: float = 0.5

    def nig(self) -> tuple[float, float, float, float]:
        """(mu0, kappa0, alpha0, beta0) on log seconds, matching median_s and p90_s exactly."""
        from scipy.special import stdtrit

        t90 = float(stdtrit(2 * self.alpha0, 0.9))
        scale = math.log(self.p90_s / self.median_s) / t90  # predictive scale on the log scale
        beta0 = scale**2 * self.alpha0 * self.kappa0 / (self.kappa0 + 1)
        return math.log(self.median_s), self.kappa0, self.alpha0, beta0


PRIORS: dict[str, LanePrior] = {
    # Guess: one or two model calls writing a patch plus running a focused test subset.
    "code-impl": LanePrior(OVERHEAD_S + 90, 600, "overhead + guessed 90 s of generation and tests"),
    # Guess: one model call producing an interface sketch, no test run.
    "code-api-design": LanePrior(OVERHEAD_S + 45, 300, "overhead + guessed 45 s for one design call"),
    # Guess: schema inference over a sample of rows with pandas; little model time.
    "data-schema": LanePrior(OVERHEAD_S + 20, 120, "overhead + guessed 20 s of sampling and inference"),
    # Guess: embedding a few thousand chunks with MiniLM on CPU; scales with corpus size.
    "vector-ops": LanePrior(OVERHEAD_S + 40, 300, "overhead + guessed 40 s of CPU embedding"),
    # Guess: networkx over the code graph (thousands of nodes): seconds.
    "graph-ops": LanePrior(OVERHEAD_S + 10, 60, "overhead + guessed 10 s of graph work"),
    # Guess: one or two model calls writing prose with citations.
    "narrative": LanePrior(OVERHEAD_S + 30, 240, "overhead + guessed 30 s of generation"),
}

#: The prior of a lane that has none above (a user lane registered with PAS's lane registry):
#: overhead plus a guessed minute of work, with a wide p90.
DEFAULT_PRIOR = LanePrior(OVERHEAD_S + 60, 600, "overhead + guessed 60 s: a lane without a prior of its own")
