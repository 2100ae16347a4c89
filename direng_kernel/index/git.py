"""The few git facts the index needs, from the git CLI (no library: it is always there)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def work_tree(root: Path) -> Path | None:
    """The top of the git work tree containing `root`, or None outside git."""
    top = _git(root, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def head_commit(root: Path) -> str | None:
    """Full SHA of HEAD, or None (not a repo, or a repo without commits)."""
    return _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")


def commit_time(root: Path, sha: str) -> float | None:
    """Committer time of a commit, as a UNIX timestamp."""
    out = _git(root, "show", "-s", "--format=%ct", sha)
    return float(out) if out and out.isdigit() else None


def commits_between(root: Path, old: str, new: str) -> int | None:
    out = _git(root, "rev-list", "--count", f"{old}..{new}")
    return int(out) if out and out.isdigit() else None


def head_ref_path(root: Path) -> list[Path]:
    """Files whose change means HEAD moved: the HEAD file and the ref it points to."""
    git_dir = _git(root, "rev-parse", "--absolute-git-dir")
    if not git_dir:
        return []
    paths = [Path(git_dir) / "HEAD"]
    ref = _git(root, "symbolic-ref", "-q", "HEAD")
    if ref:
        paths.append(Path(git_dir) / ref)
    return paths
