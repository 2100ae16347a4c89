"""The DataFrames the surfaces show, built once: `%direng runs`, `direng runs`, exports."""

from __future__ import annotations


def run_row(run: dict) -> dict:
    """A run record with its KPIs flattened into `kpi.NAME` columns."""
    return {k: v for k, v in run.items() if k != "kpis"} | {f"kpi.{k}": v for k, v in (run.get("kpis") or {}).items()}


def runs_frame(runs: list[dict]):
    """Runs as a pandas DataFrame, one row per run, KPIs as `kpi.*` columns."""
    import pandas as pd  # heavy: only when a table is asked for

    return pd.DataFrame([run_row(r) for r in runs])
