"""Task-size features, as data: which sizes each lane's run time is regressed on, and how each
size reads in an explanation ("12k-line repo").

PEX measures a task's features when the task is created (`pex/size.py`, one measurer per feature
name) and stores them with the task; its runs carry them into PLMS's history (`RunRecord.features`).
The size model (`plms/scaling.py`) regresses log(duration) on log(1 + value) of the lane's
features. A lane not in `LANE_FEATURES` (a user lane) uses `DEFAULT_FEATURES`. Adding a feature is
a row here plus a measurer in `pex/size.py`; nothing else is wired per lane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class Feature:
    """One size: `unit` and `noun` make its explanation ("12k-line repo", "2.1 MB input")."""

    name: str
    unit: str  # "line", "file", or "byte" (bytes read as kB/MB)
    noun: str
    help: str

    def amount(self, value: float) -> str:
        """The size alone: "12k", "2.1 MB"."""
        return _bytes(value) if self.unit == "byte" else _count(value)

    def describe(self, value: float) -> str:
        if self.unit == "byte":
            return f"{_bytes(value)} {self.noun}"
        return f"{_count(value)}-{self.unit} {self.noun}"


def _count(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            x = v / div
            return f"{x:.1f}{suffix}" if x < 10 else f"{x:.0f}{suffix}"
    return f"{v:.0f}"


def _bytes(v: float) -> str:
    for div, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if v >= div:
            return f"{v / div:.1f} {suffix}"
    return f"{v:.0f} B"


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("repo_files", "file", "repo", "files of the repository (the index's, else a walk)"),
    Feature("repo_lines", "line", "repo", "lines of the repository's files"),
    Feature("changed_lines", "line", "change",
            "lines added + deleted: base_ref..head_ref when the task names them, else since the indexed commit"),
    Feature("patch_lines", "line", "patch", "lines added + deleted by the task's patch (or patch_file)"),
    Feature("input_files", "file", "input", "files matching the task's data_glob"),
    Feature("input_bytes", "byte", "input", "bytes of the files matching data_glob"),
)}

LANE_FEATURES: dict[str, tuple[str, ...]] = {
    "code-impl": ("repo_lines", "patch_lines"),        # tests scale with the repo, review with the patch
    "code-api-design": ("repo_lines", "changed_lines"),  # the diff it designs from
    "data-schema": ("input_files", "input_bytes"),     # sampling and inference over the inputs
    "vector-ops": ("repo_lines", "changed_lines"),     # embedding: what the refresh re-reads
    "graph-ops": ("repo_files", "repo_lines"),         # the graph's nodes and edges
    "narrative": ("repo_files",),                      # one section per module
}
DEFAULT_FEATURES: tuple[str, ...] = ("repo_files", "repo_lines")


def lane_features(lane: str) -> tuple[str, ...]:
    """The feature names the lane's run time is regressed on."""
    return LANE_FEATURES.get(lane, DEFAULT_FEATURES)


def log_size(features: Mapping[str, float], name: str) -> Optional[float]:
    """log(1 + value) of a recorded feature; None when it is missing or not a finite size."""
    v = features.get(name)
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return math.log1p(v)
