"""PLMS, the planner: forecasts how long a lane task takes (and what it uses) from run history.

Durations, tokens and cost are log-normal per lane; a conjugate Normal-Inverse-Gamma prior on
the log scale is updated by every calibrated run (succeeded, not a rehearsal), and the estimate
is the p50/p90 of the Student-t posterior predictive. Below a minimum number of runs the
documented per-lane prior (`priors.py`) answers instead. `estimate.py` holds the model and the
drift detector, `calibration.py` the prequential calibration report, `plot.py` its figure.
Lane routing that learns: `keywords.py` (the rules), `corrections.py` (the routing book of
decisions and corrections), `routing.py` (the lane classifier, asking when unsure); see docs/plms.md.
"""
