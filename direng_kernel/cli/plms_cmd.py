"""`direng plms calibration [--root ROOT] [--json] [--plot FILE.png]`: how well PLMS's estimates fit the runs.

Reads the run history from PEX's task store under ROOT, replays it prequentially (each run
scored against the estimate made before it) and prints one row per lane: calibrated runs,
share of actuals within the p90 estimate, share inside p10..p90, mean |log error|, drift and
the current p50/p90. `--plot` also writes the figure of `plms/plot.py` (matplotlib, Agg).
Imports nothing heavy until it runs; pandas comes in with the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from ..config import IndexSettings


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `plms` (with its `calibration` subcommand) to a subparsers object."""
    p = sub.add_parser("plms", help="the planner: estimates and their calibration")
    p.set_defaults(run=run)
    psub = p.add_subparsers(dest="plms_command", metavar="SUBCOMMAND")
    psub.required = True
    c = psub.add_parser("calibration", help="prequential calibration report, one row per lane")
    c.add_argument("--root", default=".", help="the workbench root holding the task store (default: .)")
    c.add_argument("--json", action="store_true", help="print the report as a JSON list")
    c.add_argument("--plot", default=None, metavar="FILE.png",
                   help="also draw predicted p50/p90 vs actual and p90 coverage over time, drift alarms marked")
    from .plms_size_cmd import add_parser as add_size  # `direng plms size`: the size model, per lane

    add_size(psub)
    from .plms_overrides_cmd import add_parser as add_overrides  # `direng plms overrides`: learned lane overrides

    add_overrides(psub)
    return p


def _num(v, digits: int = 3):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)


def report_json(df) -> list[dict]:
    """The report as plain JSON-able dicts: NaN becomes None, numpy scalars plain numbers."""
    out = []
    for row in df.to_dict("records"):
        out.append({
            "lane": str(row["lane"]), "n": int(row["n"]), "scored": int(row["scored"]),
            "within_p90": _num(row["within_p90"]), "within_p10_p90": _num(row["within_p10_p90"]),
            "mean_abs_log_err": _num(row["mean_abs_log_err"]),
            "drift": bool(row["drift"]), "prior_only": bool(row["prior_only"]),
            "p50_s": _num(row["p50_s"], 1), "p90_s": _num(row["p90_s"], 1),
        })
    return out


def format_report(df) -> str:
    """A fixed-width table; '-' where nothing was scored, 'prior' for prior-only lanes."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.0f}%"

    header = ("lane", "n", "scored", "<=p90", "p10-p90", "|log err|", "p50", "p90", "flags")
    rows = [header]
    for r in report_json(df):
        flags = ",".join(f for f, on in (("prior", r["prior_only"]), ("DRIFT", r["drift"])) if on)
        err = "-" if r["mean_abs_log_err"] is None else f"{r['mean_abs_log_err']:.2f}"
        rows.append((r["lane"], str(r["n"]), str(r["scored"]), pct(r["within_p90"]),
                     pct(r["within_p10_p90"]), err, f"{r['p50_s']:.1f}s", f"{r['p90_s']:.1f}s", flags))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 or i == len(header) - 1 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.append("shares are prequential (each run against the estimate before it; prior-only runs "
                 "unscored); nominal: <=p90 90%, p10-p90 80%")
    return "\n".join(lines)


def _has_store(root: str) -> bool:
    """Is there a PEX database under ROOT? (TaskStore.for_root would create an empty one.)"""
    if not Path(root).is_dir():
        return False
    if os.environ.get("DIRENG_PEX_DB"):  # a database server (pex/db.py): TaskStore finds the store's schema
        return True
    try:
        from ..pex.store import DB_NAME
    except ImportError:  # PEX without a DB_NAME: let TaskStore decide
        return True
    return (IndexSettings.for_root(root).store / DB_NAME).exists()


def load_history(root: str):
    """ROOT's run history (`plms.history.RunHistory`), the corrupt rows it skipped said on
    stderr; None, with the error said, when ROOT has no task store."""
    if not _has_store(root):
        print(f"direng: error: no task store at {root}", file=sys.stderr)
        return None
    from ..pex.store import TaskStore

    history = TaskStore.for_root(root).run_history()
    if history.skipped:
        print(f"direng: skipped {history.skipped} corrupt run history row(s)", file=sys.stderr)
    return history


def run(args: argparse.Namespace) -> int:
    """Run the parsed `plms` command; returns the exit code."""
    if getattr(args, "plms_command", None) == "size":
        from .plms_size_cmd import run as run_size

        return run_size(args, load_history)
    if getattr(args, "plms_command", None) == "overrides":
        from .plms_overrides_cmd import run as run_overrides

        return run_overrides(args)
    if getattr(args, "plms_command", None) != "calibration":
        print("direng: error: plms: choose a subcommand: calibration, size or overrides", file=sys.stderr)
        return 2
    history = load_history(getattr(args, "root", "."))
    if history is None:
        return 1
    from ..plms.calibration import calibration_report

    records = history.records
    df = calibration_report(records)
    if getattr(args, "plot", None):
        from ..plms.plot import save

        print(f"wrote {save(records, args.plot)}", file=sys.stderr)
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(report_json(df), indent=2) + "\n")
    else:
        sys.stdout.write(format_report(df) + "\n")
    return 0
