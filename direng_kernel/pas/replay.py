"""Replay's PAS side: check a passport, restore what the run saw, compare the outcome.

A passport names everything a run depended on: the commit and the uncommitted diff, the lane
notebook (stored as an artifact, so a later edit of the lane cannot change the replay), the
parameters, the provider responses. Replay verifies every referenced artifact first (and
refuses with the hash that failed), restores a separate git worktree at the commit with the
diff applied — never touching the user's tree —, re-runs the recorded notebook there with the
same parameters while the lane helpers serve the recorded provider responses instead of
calling a model, and compares output artifacts (by content hash) and KPIs. The report says
which differ; deterministic lanes replay identically.

The replay itself is a task like any other: `Orchestrator.replay` (PEX) creates it in the
replay's own store, and estimates, approves, claims and runs it with the executor, through the
same lifecycle. This module holds the parts around it, each given what it needs:
`open_passport` → `restored` (a context) → [the orchestrator runs the task] → `collect` →
`compare`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import DirEngError
from ..models import OutputComparison, Passport, ReplayReport

if TYPE_CHECKING:
    from .artifacts import ArtifactStore

VOLATILE_OUTPUTS = {"output.ipynb"}  # executed notebooks carry timings; compared by their artifacts instead


class ReplayRefused(DirEngError):
    pass


def open_passport(run_id: str, store: str | Path, *, dry_run: bool = False) -> tuple[Passport, "ArtifactStore"]:
    """The passport of a run that can be replayed, and the store of its artifacts: every
    artifact it references verifies (ReplayRefused naming the hash that fails) and the run
    ended. Records the replay in the audit log."""
    from ..security import audit
    from .artifacts import ArtifactStore
    from .passport import PassportStore

    artifacts, passports = ArtifactStore(Path(store)), PassportStore(Path(store))
    passport = passports.load(run_id)
    problems = passports.verify(passport, artifacts)
    if problems:
        raise ReplayRefused(f"cannot replay {run_id}: " + "; ".join(problems))
    if passport.status not in ("succeeded", "failed"):
        raise ReplayRefused(f"cannot replay {run_id}: it ended {passport.status!r}")
    audit.record("replay", run_id=run_id, dry_run=dry_run, lane=passport.lane)
    return passport, artifacts


def dry_run_report(passport: Passport) -> ReplayReport:
    """The report of a dry run: the passport and its artifacts verified, nothing re-run."""
    return ReplayReport(run_id=passport.run_id, dry_run=True, match=True, kpis_original=passport.kpis)


@dataclass(frozen=True)
class ReplayStage:
    """Where a replay runs: the restored worktree, the recorded lane notebook and provider
    responses, and a store of its own (its index, task, run folder and passport)."""

    work: Path
    tree: Path
    notebook: Path
    responses: Path

    @property
    def store(self) -> Path:
        return self.work / "store"

    @property
    def env(self) -> dict[str, str]:
        """What the lane process needs to serve the recorded responses instead of calling a model."""
        return {"DIRENG_REPLAY": "1", "DIRENG_RECORDED_RESPONSES": str(self.responses)}


@contextmanager
def restored(passport: Passport, root: str | Path, store: str | Path, artifacts: "ArtifactStore") -> Iterator[ReplayStage]:
    """Restore a run's inputs under `<store>/replays/`: a separate git worktree of `root` at the
    recorded commit with the recorded diff applied (the user's tree is never touched), the
    recorded lane notebook and provider responses. The worktree is removed on exit."""
    from . import gitstate

    root, store = Path(root), Path(store)
    work = store / "replays" / f"{passport.run_id}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    tree = work / "worktree"
    gitstate.restore_worktree(root, passport.git.get("commit"), passport.git.get("diff_sha256"), artifacts, tree)
    try:
        notebook = next(ref for ref in passport.inputs if ref.name.startswith("lane/"))
        lane_nb = work / Path(notebook.name).name
        lane_nb.write_bytes(artifacts.get_bytes(notebook.sha256))
        responses = work / "recorded_responses"
        responses.mkdir()
        for ref in passport.provider_responses:
            (responses / Path(ref.name).name).write_bytes(artifacts.get_bytes(ref.sha256))
        yield ReplayStage(work=work, tree=tree, notebook=lane_nb, responses=responses)
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)


def collect(stage: ReplayStage, replay_run_id: str, artifacts: "ArtifactStore") -> Passport:
    """The replay run's passport; its outputs are kept beside the original's in `artifacts`."""
    from .artifacts import ArtifactStore
    from .passport import PassportStore

    replayed = PassportStore(stage.store).load(replay_run_id)
    copy = ArtifactStore(stage.store)
    for ref in replayed.outputs:
        if ref.name not in VOLATILE_OUTPUTS:
            artifacts.put_bytes(copy.get_bytes(ref.sha256), ref.name, ref.media_type)
    return replayed


def compare(passport: Passport, replayed: Passport, store: str | Path) -> ReplayReport:
    """The verdict: `match` when the replay ended as the original did with the same KPIs and
    the same output artifacts (by content hash); the report lists what differs and is saved
    under `<store>/replays/`."""
    report = ReplayReport(run_id=passport.run_id, kpis_original=passport.kpis)
    original = {o.name: o.sha256 for o in passport.outputs if o.name not in VOLATILE_OUTPUTS}
    again = {o.name: o.sha256 for o in replayed.outputs if o.name not in VOLATILE_OUTPUTS}
    report.replay_run_id = replayed.run_id
    report.status, report.error = replayed.status, replayed.error
    report.kpis_replay = replayed.kpis
    report.outputs = [OutputComparison(name=n, original=original.get(n), replay=again.get(n))
                      for n in sorted(set(original) | set(again))]
    report.match = (replayed.status == passport.status and replayed.kpis == passport.kpis
                    and all(o.same for o in report.outputs))
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{int(time.time()*1000)%1000}"
    path = Path(store) / "replays" / f"{passport.run_id}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    report.report_path = str(path)
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    return report
