"""Edits as proposals: nothing touches the user's files until the user applies one.

A proposal is one JSON file under `<store>/proposals/` (written atomically), made by a
generative provider's `propose_cell_edit` / `propose_file_patch` tools or from a diff the user
gave (a diff headed `+++ b/NB.ipynb cell N`, as DirEng shows cell edits, proposes cell edits; any
other is a file patch). Two kinds:

- **cell**: a notebook cell's new source. It remembers the cell's source when proposed; applying
  refuses when the cell changed since (the notebook moved under the proposal), else writes the
  new source and records its provenance in the cell's metadata (`direng`: proposal id, provider,
  model, contract version, time), keeping the rest of the notebook as it was.
- **file**: a unified diff. It goes through the Code-Impl lane first (a proposed task: the patch
  applies in a worktree, the repository's tests and linter run as its gates) and is offered for
  the working tree only once that task succeeded; applying runs `git apply --check` first and
  refuses, naming the conflicting paths, when the working tree moved since.

Every path is confined to the root. Deciding a proposal twice, or one that does not exist, is a
clear error.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import confined
from ..errors import DirEngError, NotFoundError
from ..models import Proposal, Task

_DIFF_PATH = re.compile(r"^\+\+\+ (?:b/)?(\S+)", re.M)
#: A section of a diff against one notebook cell, headed as `cell_diff` writes it (`+++ b/nb.ipynb cell 3`):
#: the format DirEng shows a cell edit in is the format it takes one in.
_CELL_HEADER = re.compile(r"^\+\+\+ (?:b/)?(\S+\.ipynb) cell (\d+)\s*$", re.M)
_SECTION = re.compile(r"^--- .*\n(?=\+\+\+ )", re.M)
_APPLY_ERROR = re.compile(r"^error: (?:patch failed: )?([^:\n]+)", re.M)


class ProposalError(DirEngError):
    """A proposal that cannot be made or applied (the message says why)."""


class ProposalNotFound(NotFoundError):
    pass


def _now() -> datetime:
    return datetime.now(timezone.utc)


def cell_diff(old: str, new: str, path: str, cell: int) -> str:
    """What a cell edit changes, as a unified diff (cells need not end with a newline)."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{path} cell {cell}", f"b/{path} cell {cell}",
                                 lineterm="")
    return "\n".join(lines) + "\n"


def patch_paths(diff: str) -> list[str]:
    """The files a unified diff writes (its `+++` lines; /dev/null for deletions is left out)."""
    return [p for p in dict.fromkeys(_DIFF_PATH.findall(diff)) if p != "/dev/null"]


class ProposalStore:
    def __init__(self, root: Path, store_dir: Path):
        self.root = Path(root).resolve()
        self.dir = Path(store_dir) / "proposals"
        self._lock = threading.Lock()

    # -- storage --------------------------------------------------------------------------
    def _save(self, p: Proposal) -> Proposal:
        self.dir.mkdir(parents=True, exist_ok=True)
        confined.write_bytes(self.dir, f"{p.id}.json", p.model_dump_json(indent=1).encode("utf-8"))
        return p

    def get(self, proposal_id: str) -> Proposal:
        if not re.fullmatch(r"prop-[0-9a-f]{12}", proposal_id or ""):
            raise ProposalNotFound(f"no proposal {proposal_id!r}")
        try:
            return Proposal.model_validate_json(confined.read_text(self.dir, f"{proposal_id}.json"))
        except (confined.ConfinementError, OSError):
            raise ProposalNotFound(f"no proposal {proposal_id!r}") from None

    def list(self) -> list[Proposal]:
        out = []
        for f in sorted(self.dir.glob("prop-*.json")) if self.dir.is_dir() else []:
            try:
                out.append(Proposal.model_validate_json(f.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # a damaged record is not a proposal
        return sorted(out, key=lambda p: p.created_at, reverse=True)

    # -- making ---------------------------------------------------------------------------
    def propose_cell(self, notebook: str, cell: int, new_source: str, *, provider: str = "local", model: str = "",
                     contract_version: str | None = None) -> Proposal:
        rel = self._relative(notebook)
        if not rel.endswith(".ipynb"):
            raise ProposalError(f"{notebook} is not a notebook (.ipynb)")
        nb = self._read_notebook(rel)
        if not isinstance(cell, int) or isinstance(cell, bool) or not 0 <= cell < len(nb.cells):
            raise ProposalError(f"{rel} has no cell {cell} (it has {len(nb.cells)}, numbered from 0)")
        old = nb.cells[cell].source
        p = Proposal(id=f"prop-{uuid.uuid4().hex[:12]}", kind="cell", path=rel, cell=cell, new_source=new_source,
                     old_source=old, diff=cell_diff(old, new_source, rel, cell), paths=[rel], provider=provider,
                     model=model, contract_version=contract_version, created_at=_now())
        return self._save(p)

    def propose_cell_diff(self, diff: str, **who) -> list[Proposal]:
        """Cell proposals from a unified diff whose sections are headed `--- a/NB.ipynb cell N` /
        `+++ b/NB.ipynb cell N` (one proposal per section). Each section is applied to the cell's
        current source with `git apply` (in a scratch folder, not the repository); one that does
        not apply is refused with git's words naming the hunk."""
        starts = [m.start() for m in _SECTION.finditer(diff)]
        sections = [diff[a:b] for a, b in zip(starts, starts[1:] + [len(diff)])]
        targets = [_CELL_HEADER.search(sec) for sec in sections]
        if not sections or not all(targets):
            raise ProposalError("a cell edit is a unified diff headed `--- a/NB.ipynb cell N` / "
                                "`+++ b/NB.ipynb cell N` per cell; give file patches in a diff of their own")
        made = []
        for sec, target in zip(sections, targets):
            rel, cell = self._relative(target.group(1)), int(target.group(2))
            nb = self._read_notebook(rel)
            if not cell < len(nb.cells):
                raise ProposalError(f"{rel} has no cell {cell} (it has {len(nb.cells)}, numbered from 0)")
            new = _patched(nb.cells[cell].source, sec, f"{rel} cell {cell}")
            made.append((rel, cell, new))
        return [self.propose_cell(rel, cell, new, **who) for rel, cell, new in made]

    def propose_patch(self, diff: str, *, task: Callable[[str, list[str]], Task], provider: str = "local",
                      model: str = "", contract_version: str | None = None) -> Proposal:
        """A file patch; `task(diff, paths)` creates its Code-Impl task (proposed, not run)."""
        if not diff.strip() or not diff.lstrip().startswith(("diff --git", "--- ", "Index: ")):
            raise ProposalError("a patch must be a unified diff (as `git diff` writes it)")
        paths = patch_paths(diff)
        if not paths:
            raise ProposalError("the patch names no file it writes (no `+++ b/PATH` line)")
        for path in paths:
            self._relative(path)  # every path inside the root, or a clear refusal
        t = task(diff, paths)
        p = Proposal(id=f"prop-{uuid.uuid4().hex[:12]}", kind="file", path=paths[0], paths=paths, diff=diff,
                     task_id=t.id, provider=provider, model=model, contract_version=contract_version,
                     created_at=_now())
        return self._save(p)

    # -- deciding -------------------------------------------------------------------------
    def reject(self, proposal_id: str) -> Proposal:
        with self._lock:
            p = self._open(proposal_id)
            return self._save(p.model_copy(update={"state": "rejected", "decided_at": _now()}))

    def apply(self, proposal_id: str, *, task_state: Callable[[str], str] | None = None) -> Proposal:
        with self._lock:
            p = self._open(proposal_id)
            if p.kind == "cell":
                self._apply_cell(p)
            else:
                self._apply_patch(p, task_state)
            return self._save(p.model_copy(update={"state": "applied", "decided_at": _now()}))

    def _open(self, proposal_id: str) -> Proposal:
        p = self.get(proposal_id)
        if p.state != "proposed":
            raise ProposalError(f"proposal {p.id} was {p.state} already")
        return p

    def _apply_cell(self, p: Proposal) -> None:
        import nbformat

        nb = self._read_notebook(p.path)
        if p.cell is None or p.cell >= len(nb.cells) or nb.cells[p.cell].source != p.old_source:
            raise ProposalError(f"cell {p.cell} of {p.path} changed since the proposal: propose the edit again")
        cell = nb.cells[p.cell]
        cell.source = p.new_source
        cell.metadata["direng"] = {"proposal": p.id, "provider": p.provider, "model": p.model,
                                   "contract_version": p.contract_version, "applied_at": _now().isoformat()}
        confined.write_bytes(self.root, p.path, nbformat.writes(nb).encode("utf-8"))

    def _apply_patch(self, p: Proposal, task_state: Callable[[str], str] | None) -> None:
        state = task_state(p.task_id) if task_state and p.task_id else None
        if state != "succeeded":
            raise ProposalError(f"the patch's Code-Impl task {p.task_id} is {state or 'unknown'}: a patch is "
                                "offered for the working tree only once it applied and passed its gates there")
        check = self._git("apply", "--check", "-", stdin=p.diff)
        if check.returncode != 0:
            conflicts = list(dict.fromkeys(_APPLY_ERROR.findall(check.stderr))) or p.paths
            raise ProposalError(f"the working tree moved since the proposal: the patch does not apply to "
                                f"{', '.join(conflicts)} ({check.stderr.strip().splitlines()[0][:200]})")
        done = self._git("apply", "-", stdin=p.diff)
        if done.returncode != 0:
            raise ProposalError(f"git apply failed: {done.stderr.strip()[:300]}")

    # -- helpers --------------------------------------------------------------------------
    def _relative(self, path: str) -> str:
        try:
            parts = confined.relative_parts(self.root, path, follow_links=False)
        except confined.ConfinementError as exc:
            raise ProposalError(f"{path}: {exc}") from None
        if not parts:
            raise ProposalError(f"{path} is the root folder, not a file")
        return "/".join(parts)

    def _read_notebook(self, rel: str):
        import nbformat

        try:
            return nbformat.reads(confined.read_text(self.root, rel, follow_links=False), as_version=4)
        except (confined.ConfinementError, OSError) as exc:
            raise ProposalError(f"cannot read {rel}: {exc}") from None
        except (ValueError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
            raise ProposalError(f"{rel} is not a readable notebook: {str(exc)[:200]}") from None

    def _git(self, *args: str, stdin: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=self.root, input=stdin, capture_output=True, text=True,
                              timeout=60)


def is_cell_diff(diff: str) -> bool:
    """Whether a diff the user gave edits notebook cells (see `ProposalStore.propose_cell_diff`)."""
    return _CELL_HEADER.search(diff) is not None


def _patched(source: str, section: str, label: str) -> str:
    """`source` with one diff section applied by `git apply` in a scratch folder (cells need not end
    with a newline: one is added for git and taken off again)."""
    import tempfile

    body = section.split("\n", 2)[2] if section.count("\n") >= 2 else ""
    patch = "--- a/cell\n+++ b/cell\n" + body
    with tempfile.TemporaryDirectory(prefix="direng-cell-") as tmp:
        target = Path(tmp) / "cell"
        target.write_text(source if source.endswith("\n") or not source else source + "\n", encoding="utf-8")
        # the ceiling keeps git from finding a repository above the scratch folder (TMPDIR may lie in one)
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(tmp).parent)}
        done = subprocess.run(["git", "apply", "-"], cwd=tmp, input=patch if patch.endswith("\n") else patch + "\n",
                              capture_output=True, text=True, timeout=60, env=env)
        if done.returncode != 0:
            failed = re.search(r"patch failed: cell:(\d+)", done.stderr)
            hunk = next((h for h in re.findall(r"^@@ -(\d+)[^\n]*", body, re.M) if failed and h == failed.group(1)),
                        None)
            where = (f"the hunk `@@ -{failed.group(1)}` does not match its lines" if failed and hunk
                     else done.stderr.strip().splitlines()[0][:200] if done.stderr.strip() else "git apply refused it")
            raise ProposalError(f"the diff does not apply to {label}: {where}")
        new = target.read_text(encoding="utf-8")
    return new if source.endswith("\n") else new.removesuffix("\n")


def proposal_summary(p: Proposal) -> str:
    """One proposal in Markdown: what it changes, the diff, and how to decide it."""
    what = (f"cell {p.cell} of `{p.path}`" if p.kind == "cell"
            else f"{len(p.paths)} file{'s' if len(p.paths) != 1 else ''} ({', '.join(f'`{x}`' for x in p.paths)})")
    gate = (f" It first runs through the Code-Impl lane as task `{p.task_id}` (tests and linter as gates); "
            "approve that task, and once it succeeded the patch can be applied." if p.kind == "file" else "")
    return (f"**Proposal `{p.id}`** ({p.state}): an edit of {what}.{gate}\n\n```diff\n{p.diff.rstrip()}\n```\n\n"
            f"Apply it with `%direng apply {p.id}` (or Accept in the DirEng panel), reject it with "
            f"`%direng reject {p.id}`; nothing changes until then.")
