"""PLMS, the planner: forecasts how long a lane task takes (and what it uses) from run history.

Durations, tokens and cost are log-normal per lane; a conjugate Normal-Inverse-Gamma prior on
the log scale is updated by every calibrated run (succeeded, not a rehearsal), and the estimate
is the p50/p90 of the Student-t posterior predictive. Below a minimum number of runs the
documented per-lane prior (`priors.py`) answers instead. `estimate.py` holds the model and the
drift detector, `calibration.py` the prequential calibration report, `plot.py` its figure.
Estimates that scale with task size: `features.py` (which sizes per lane), `regression.py` (Bayesian
linear regression, slopes pooled across lanes), `scaling.py` (the size model, its held-out
comparison with the per-lane model and the per-lane choice, explanations); `history.py` reads run
history, skipping and counting corrupt rows.
Lane routing that learns: `keywords.py` (the rules), `corrections.py` (the routing book of
decisions and corrections), `routing.py` (the lane classifier, asking when unsure); see docs/plms.md.
"""
