"""A task's sizes, measured when PEX creates it: the features PLMS's size model scales with.

Which sizes a lane records is PLMS's table (`plms.features.lane_features`); here is one measurer
per feature name (`MEASURERS`), each reading the repository and the task's parameters (the lane
notebook's defaults under the task's own). A size that cannot be measured (no git, no such file)
is left out, which the model reads as "the lane's usual". Measuring never fails a task: the
orchestrator logs and goes on.

Repository files and lines come from the code index when it has the repository (its `files`
rows) and reflects HEAD, else from a walk with the index's own file rules (`discovery.discover`):
the run refreshes the index first, so a commit since the last refresh is part of its work. Changed
lines are `git diff --numstat` of the task's base_ref..head_ref when its lane takes them, else from
the indexed commit to the work tree (what the index refresh before the run re-reads). Patch lines
are git's count of the patch (`git apply --numstat`). Inputs are the files matching data_glob that
the lane reads: listed by the index's file rules (ignore files honoured), the first `max_samples`.
"""

from __future__ import annotations

import ast
import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..plms.features import lane_features

log = logging.getLogger(__name__)
GIT_TIMEOUT_S = 10.0
MAX_INPUT_FILES = 100_000  # a glob over more than this is counted up to here


@dataclass
class SizeContext:
    """What the measurers read: the repository, the task's parameters, the index's file rows."""

    root: Path
    parameters: dict
    index_rows: Optional[Callable[[], list[tuple]]] = None  # (path, language, lines, has_errors)
    indexed_commit: Optional[Callable[[], Optional[str]]] = None
    _repo: Optional[tuple[int, int]] = field(default=None, repr=False)
    _inputs: Optional[list[tuple[str, int]]] = field(default=None, repr=False)

    def repo(self) -> tuple[int, int]:
        """(files, lines) of the repository, computed once."""
        if self._repo is None:
            rows = self.index_rows() if self.index_rows and self._index_current() else []
            if rows:
                self._repo = (len(rows), sum(int(r[2] or 0) for r in rows))
            else:
                self._repo = _walk(self.root)
        return self._repo

    def _index_current(self) -> bool:
        """Whether the index's files are the repository's: it reflects HEAD (as `Workbench.status`
        says fresh). A commit since the last refresh adds or drops files that the run, refreshing
        first, will see, so the sizes are walked instead. Without git, the index's are taken."""
        if self.indexed_commit is None:
            return True
        head = _git(self.root, "rev-parse", "--verify", "-q", "HEAD")
        return head is None or head.strip() == (self.indexed_commit() or "")

    def inputs(self) -> list[tuple[str, int]]:
        """(path, bytes) of the files the task's data_glob names, computed once (see `_inputs`)."""
        if self._inputs is None:
            self._inputs = _inputs(self)
        return self._inputs


def _walk(root: Path) -> tuple[int, int]:
    from ..config import IndexSettings
    from ..discovery import discover, read_text

    found = discover(root, IndexSettings.for_root(root).max_file_bytes)
    lines = 0
    for candidate in found.files:
        data, _ = read_text(root, candidate)
        lines += data.count(b"\n") if data else 0
    return len(found.files), lines


def _git(root: Path, *args: str) -> Optional[str]:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _numstat(out: Optional[str]) -> Optional[float]:
    """Lines added + deleted in `git diff --numstat` output (binary files count 0)."""
    if out is None:
        return None
    total = 0
    for line in out.splitlines():
        added, deleted, *_ = line.split("\t") + ["", ""]
        total += (int(added) if added.isdigit() else 0) + (int(deleted) if deleted.isdigit() else 0)
    return float(total)


def _changed_lines(ctx: SizeContext) -> Optional[float]:
    p = ctx.parameters
    paths = [str(x) for x in p.get("paths") or []] if isinstance(p.get("paths"), list) else []
    if p.get("base_ref") and p.get("head_ref"):
        return _numstat(_git(ctx.root, "diff", "--numstat", f"{p['base_ref']}..{p['head_ref']}", "--", *paths))
    commit = ctx.indexed_commit() if ctx.indexed_commit else None
    return _numstat(_git(ctx.root, "diff", "--numstat", commit or "HEAD", "--"))


def _patch_lines(ctx: SizeContext) -> Optional[float]:
    text = ctx.parameters.get("patch") or ""
    source = ctx.parameters.get("patch_file") or ""
    if not str(text).strip() and source:
        path = Path(source) if Path(source).is_absolute() else ctx.root / source
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return None
    if not str(text).strip():
        return None  # no patch yet (the lane asks its model for one): size unknown
    # git's own count (a removed `-- comment` line reads `--- comment`, an added `++i` `+++i`:
    # only a hunk-aware reader tells them from file headers); `--numstat` alone applies nothing.
    try:
        proc = subprocess.run(["git", "apply", "--numstat", "-"], input=str(text), capture_output=True,
                              text=True, timeout=GIT_TIMEOUT_S, cwd=ctx.root)
        if proc.returncode == 0:
            return _numstat(proc.stdout)
    except (OSError, subprocess.TimeoutExpired):
        pass
    # git cannot read it (the lane will refuse it too): its +/- lines, headers left out
    return float(sum(1 for line in str(text).splitlines()
                     if line[:1] in "+-" and not line.startswith(("+++", "---"))))


def _inputs(ctx: SizeContext) -> list[tuple[str, int]]:
    """The files matching data_glob that the lane reads: those the index's file rules list
    (`.gitignore`/`.direngignore` honoured, as the data-schema lane lists them, with no size cap),
    in path order, the first `max_samples` when the task has that parameter."""
    from ..discovery import discover

    pattern = str(ctx.parameters.get("data_glob") or "")
    if not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        return []
    root = ctx.root.resolve()
    matched = set()
    for path in root.glob(pattern):
        matched.add(path.relative_to(root).as_posix())
        if len(matched) >= MAX_INPUT_FILES:
            break
    if not matched:
        return []
    listed = sorted((c.path, c.size) for c in discover(root, max_file_bytes=1 << 62).files if c.path in matched)
    cap = ctx.parameters.get("max_samples")
    return listed[: int(cap)] if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap >= 0 else listed


def _input_bytes(ctx: SizeContext) -> Optional[float]:
    files = ctx.inputs()
    return float(sum(size for _, size in files)) if files else None


def _input_files(ctx: SizeContext) -> Optional[float]:
    files = ctx.inputs()
    return float(len(files)) if files else None


MEASURERS: dict[str, Callable[[SizeContext], Optional[float]]] = {
    "repo_files": lambda ctx: float(ctx.repo()[0]),
    "repo_lines": lambda ctx: float(ctx.repo()[1]),
    "changed_lines": _changed_lines,
    "patch_lines": _patch_lines,
    "input_files": _input_files,
    "input_bytes": _input_bytes,
}


def notebook_defaults(notebook: Path) -> dict:
    """The literal defaults of a lane notebook's `parameters` cell ({} when it has none)."""
    try:
        nb = json.loads(Path(notebook).read_text())
    except (OSError, ValueError):
        return {}
    for cell in nb.get("cells", []):
        if "parameters" in (cell.get("metadata") or {}).get("tags", []):
            src = cell.get("source", "")
            try:
                tree = ast.parse("".join(src) if isinstance(src, list) else src)
            except SyntaxError:
                return {}
            out = {}
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        out[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
            return out
    return {}


def measure(lane: str, ctx: SizeContext) -> dict[str, float]:
    """The lane's sizes for this task; sizes that cannot be measured are left out."""
    out = {}
    for name in lane_features(lane):
        fn = MEASURERS.get(name)
        if fn is None:
            continue
        try:
            value = fn(ctx)
        except (OSError, ValueError) as exc:
            log.warning("could not measure %s for a %s task: %s", name, lane, exc)
            continue
        if value is not None:
            out[name] = value
    return out
