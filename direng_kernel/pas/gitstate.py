"""The code a run saw: git commit plus uncommitted changes, captured and restorable.

`capture` records the commit, branch, origin URL (credentials stripped) and whether the tree
is dirty, and stores the *whole* uncommitted state as one binary-safe patch artifact:
`git diff HEAD --binary` (staged and unstaged changes to tracked files) followed by one
`git diff --no-index --binary /dev/null FILE` per untracked, non-ignored file, which is the
patch `git add -N` would give without touching the user's index. `restore_worktree` checks
the commit out into a separate `git worktree` and `git apply`s that patch there, so the
user's own working tree and index are never modified.

Outside git (a plain directory) there is nothing to check out: `commit` is None and the
capture records `content_sha256` instead, the artifact id of a manifest listing the sha256
of every file under the root (`sha256  path` lines, sorted; `.git`, the DirEng store and
caches skipped). It identifies the content but cannot restore it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from ..errors import DirEngError
from .artifacts import ArtifactStore

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: base of an unborn HEAD
# Never let user config (noprefix, external diff drivers, textconv, colour) change the patch.
_DIFF = ("diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames",
         "--src-prefix=a/", "--dst-prefix=b/")
_SKIP_DIRS = {".git", ".hg", ".svn", ".direng", "__pycache__", ".ipynb_checkpoints", ".venv",
              "node_modules", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


class GitStateError(DirEngError):
    """A git operation needed to capture or restore code state failed."""


def _git(cwd: Path, *args: str, ok: tuple[int, ...] = (0,), input: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(cwd), *args], input=input, capture_output=True,
                              env={**os.environ, "LC_ALL": "C"})
    except OSError as err:
        raise GitStateError(f"cannot run git: {err}") from err
    if proc.returncode not in ok:
        msg = (proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise GitStateError(f"git {args[0]} failed in {cwd}: {msg}")
    return proc.stdout


def _git_str(cwd: Path, *args: str) -> Optional[str]:
    try:
        out = _git(cwd, *args).decode(errors="replace").strip()
    except GitStateError:
        return None
    return out or None


def strip_credentials(url: Optional[str]) -> Optional[str]:
    """Drop secrets from a remote URL: all userinfo for http(s)/ftp, the password otherwise.

    `https://user:token@host/x` → `https://host/x`; `ssh://git:pw@host/x` → `ssh://git@host/x`;
    scp-style `git@host:x` and local paths are returned unchanged.
    """
    if not url:
        return url
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if parts.scheme.lower() in ("http", "https", "ftp", "ftps"):
        netloc = host
    else:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc))


def _excluded(rel: str, prefixes: list[str]) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in prefixes)


def _file_sections(patch: bytes) -> list[bytes]:
    """Split a patch into per-file sections (a line starting `diff --git ` never occurs inside
    a section: text lines start with ' ', '+', '-' or '\\', base85 lines never hold a space)."""
    return [s for s in re.split(rb"(?m)^(?=diff --git )", patch) if s]


def worktree_patch(top: Path, commit: Optional[str], exclude: list[str]) -> bytes:
    """The uncommitted state of the work tree at `top` as one binary-safe patch (read-only).

    Sections are sorted by their header, so the same tree gives the same bytes (and artifact
    id) whether a new file is staged or untracked.
    """
    sections = _file_sections(_git(top, *_DIFF, commit or EMPTY_TREE, "--"))
    untracked = _git(top, "ls-files", "-z", "--others", "--exclude-standard").split(b"\0")
    for raw in untracked:
        rel = os.fsdecode(raw)
        if raw and not _excluded(rel, exclude):
            sections += _file_sections(_git(top, *_DIFF, "--no-index", "--", "/dev/null", rel, ok=(0, 1)))
    return b"".join(sorted(sections, key=lambda s: s.split(b"\n", 1)[0]))


def _content_manifest(root: Path, exclude: list[str]) -> bytes:
    lines: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS
                             and not _excluded((base / d).relative_to(root).as_posix(), exclude))
        for name in filenames:
            p = base / name
            rel = p.relative_to(root).as_posix()
            if _excluded(rel, exclude):
                continue
            if p.is_symlink():
                digest = hashlib.sha256(os.fsencode(os.readlink(p))).hexdigest()
            elif p.is_file():
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                digest = h.hexdigest()
            else:
                continue
            lines.append(f"{digest}  {rel}\n")
    return "".join(sorted(lines, key=lambda line: line[66:])).encode("utf-8", "surrogateescape")


def _store_prefixes(top: Path, store: ArtifactStore) -> list[str]:
    try:
        return [store.root.resolve().relative_to(top.resolve()).as_posix()]
    except ValueError:
        return []


def capture(root: Path | str, store: ArtifactStore) -> dict:
    """Record the code state of `root` for a passport's `git` field (see the module doc).

    Keys: vcs ("git" | None), root (the work-tree top), subdir (root within it), commit,
    branch (None when detached), remote (origin, credentials stripped), dirty, diff_sha256
    (None when clean) and diff_size; for a plain directory also content_sha256.
    """
    root = Path(root).resolve()
    top_s = _git_str(root, "rev-parse", "--show-toplevel")
    if top_s is None:
        exclude = _store_prefixes(root, store) + [".direng"]
        ref = store.put_bytes(_content_manifest(root, exclude), "content.sha256sums", "text/plain")
        return {"vcs": None, "root": str(root), "subdir": "", "commit": None, "branch": None,
                "remote": None, "dirty": None, "diff_sha256": None, "diff_size": 0,
                "content_sha256": ref.sha256}
    top = Path(top_s)
    commit = _git_str(top, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    patch = worktree_patch(top, commit, _store_prefixes(top, store) + [".direng"])
    diff_sha = store.put_bytes(patch, "git.diff", "text/x-diff").sha256 if patch else None
    subdir = root.relative_to(top.resolve()).as_posix() if root != top.resolve() else ""
    return {"vcs": "git", "root": str(top), "subdir": "" if subdir == "." else subdir,
            "commit": commit, "branch": _git_str(top, "symbolic-ref", "--short", "-q", "HEAD"),
            "remote": strip_credentials(_git_str(top, "remote", "get-url", "origin")),
            "dirty": bool(patch), "diff_sha256": diff_sha, "diff_size": len(patch)}


def restore_worktree(root: Path | str, commit: str, diff_sha: Optional[str], store: ArtifactStore,
                     dest: Path | str) -> Path:
    """Check `commit` out into a new detached worktree at `dest` and apply the captured patch.

    `dest` must not exist or be an empty directory. The repository gains a worktree entry
    (remove it with `git worktree remove DEST`); its own working tree and index are untouched.
    On a failed apply the new worktree is removed again.
    """
    root, dest = Path(root), Path(dest).absolute()
    if not commit:
        raise GitStateError("cannot restore a worktree without a commit (the run was not in git)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise GitStateError(f"cannot restore into {dest}: it exists and is not an empty directory")
    if _git_str(root, "rev-parse", "--verify", "-q", f"{commit}^{{commit}}") is None:
        raise GitStateError(f"commit {commit} is not in the repository at {root} (fetch it first)")
    patch = store.get_bytes(diff_sha) if diff_sha else b""  # verified before anything changes
    _git(root, "worktree", "add", "--detach", "-q", str(dest), commit)
    if patch:
        try:
            _git(dest, "apply", "--binary", "--whitespace=nowarn", "-", input=patch)
        except GitStateError as err:
            _git(root, "worktree", "remove", "--force", str(dest), ok=(0, 1, 128))
            raise GitStateError(f"cannot apply the captured diff {diff_sha} to {commit}: {err}") from err
    return dest


__all__ = ["EMPTY_TREE", "GitStateError", "capture", "restore_worktree", "strip_credentials", "worktree_patch"]
