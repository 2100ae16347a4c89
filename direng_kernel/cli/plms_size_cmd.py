"""`direng plms size [--root ROOT] [--json] [--lane LANE --size NAME=VALUE ...]`: the size model
against the per-lane model, per lane, on the store's history.

One row per lane: held-out (rolling-origin) p90 coverage, band width (p90/p10) and |log err| of
both models, and the model the lane uses with the reason. With `--lane` it also prints that
lane's estimate for a task of the given sizes, with what drove it. Corrupt history rows are
skipped and counted (on stderr). Imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys


def add_parser(psub) -> argparse.ArgumentParser:
    """Add `size` to `direng plms`'s subcommands."""
    s = psub.add_parser("size", help="the size model against the per-lane model, and which one each lane uses")
    s.add_argument("--root", default=".", help="the workbench root holding the task store (default: .)")
    s.add_argument("--json", action="store_true", help="print the comparison (and estimate) as JSON")
    s.add_argument("--lane", default=None, help="also estimate a task of this lane")
    s.add_argument("--size", action="append", default=[], metavar="NAME=VALUE",
                   help="a size of that task (repeatable), e.g. repo_lines=12000; see plms/features.py")
    return s


def _sizes(items: list[str]) -> dict[str, float]:
    import difflib

    from ..plms.features import FEATURES

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if name.strip() not in FEATURES:
            close = difflib.get_close_matches(name.strip(), FEATURES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SystemExit(f"direng: error: unknown size {name.strip()!r} (sizes: {', '.join(FEATURES)}){hint}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"direng: error: --size wants NAME=NUMBER, not {item!r}") from None
        if not sep or not math.isfinite(out[name.strip()]) or out[name.strip()] < 0:
            raise SystemExit(f"direng: error: --size wants NAME=NUMBER (>= 0), not {item!r}")
    return out


def _ratio(scores) -> str:
    return "-" if scores is None else f"{math.exp(scores.band_log_width):.1f}x"


def _pct(scores) -> str:
    return "-" if scores is None else f"{100 * scores.within_p90:.0f}%"


def _err(scores) -> str:
    return "-" if scores is None else f"{scores.mean_abs_log_err:.2f}"


def format_decisions(decisions: dict, n_runs: dict[str, int]) -> str:
    """A fixed-width table of the decisions (`plms.scaling.Decision`), one row per lane."""
    header = ("lane", "n", "scored", "model", "basis", "<=p90 lane", "<=p90 size", "p90/p10 lane",
              "p90/p10 size", "|err| lane", "|err| size", "why")
    rows = [header]
    for lane, d in decisions.items():
        rows.append((lane, str(n_runs.get(lane, 0)), str(d.scored), d.model, d.basis, _pct(d.lane_scores),
                     _pct(d.size_scores), _ratio(d.lane_scores), _ratio(d.size_scores), _err(d.lane_scores),
                     _err(d.size_scores), d.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i in (0, 3, 4, len(header) - 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.append("held-out: each run against both models' estimates from the runs before it; the size model "
                 "is kept where its p90 covers >= 80 %, its band is >= 5 % narrower and its p50 no further off")
    return "\n".join(lines)


def run(args: argparse.Namespace, load_history) -> int:
    """Run `direng plms size`; `load_history(root)` reads ROOT's run history (None: no store)."""
    history = load_history(getattr(args, "root", "."))
    if history is None:
        return 1
    from ..plms.estimate import UnknownLaneError
    from ..plms.scaling import ScaledPlanner

    planner = ScaledPlanner.from_history(history.records)
    n_runs = {lane: planner.planner.n_history(lane) for lane in planner.planner.lanes}
    estimate = None
    if args.lane:
        try:
            estimate = planner.estimate(args.lane, _sizes(args.size))
        except UnknownLaneError as exc:
            print(f"direng: error: {exc}", file=sys.stderr)
            return 1
    if getattr(args, "json", False):
        out = {"skipped": history.skipped,
               "lanes": [d.model_dump(mode="json") | {"n": n_runs.get(lane, 0)} for lane, d in planner.decisions.items()]}
        if estimate is not None:
            out["estimate"] = estimate.model_dump(mode="json")
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    sys.stdout.write(format_decisions(planner.decisions, n_runs) + "\n")
    if estimate is not None:
        sys.stdout.write(f"\n{estimate.lane}: p50 {estimate.duration_p50_s:.1f}s, p90 {estimate.duration_p90_s:.1f}s "
                         f"({estimate.model} model) — {estimate.explanation}\n")
    return 0
