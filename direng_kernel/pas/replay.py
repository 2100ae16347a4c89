"""Replay a run from its passport and compare.

A passport names everything a run depended on: the commit and the uncommitted diff, the lane
notebook (stored as an artifact, so a later edit of the lane cannot change the replay), the
parameters, the provider responses. Replay verifies every referenced artifact first (and
refuses with the hash that failed), restores a separate git worktree at the commit with the
diff applied — never touching the user's tree —, re-runs the recorded notebook there with the
same parameters while the lane helpers serve the recorded provider responses instead of
calling a model, and compares output artifacts (by content hash) and KPIs. The report says
which differ; deterministic lanes replay identically.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from ..errors import DirEngError

VOLATILE_OUTPUTS = {"output.ipynb"}  # executed notebooks carry timings; compared by their artifacts instead


class ReplayRefused(DirEngError):
    pass


class OutputComparison(BaseModel):
    name: str
    original: str | None
    replay: str | None

    @property
    def same(self) -> bool:
        return self.original == self.replay


class ReplayReport(BaseModel):
    run_id: str
    replay_run_id: str | None = None
    dry_run: bool = False
    match: bool = False
    status: str = ""
    error: str | None = None
    kpis_original: dict[str, float] = Field(default_factory=dict)
    kpis_replay: dict[str, float] = Field(default_factory=dict)
    outputs: list[OutputComparison] = Field(default_factory=list)
    report_path: str | None = None

    def summary(self) -> str:
        if self.dry_run:
            return f"run {self.run_id}: passport and artifacts verified; replayable"
        lines = [f"replay of {self.run_id} ({self.replay_run_id}): {'MATCH' if self.match else 'DIFFERENT'}"
                 + (f" — replay {self.status}: {self.error}" if self.error else "")]
        for name in sorted(set(self.kpis_original) | set(self.kpis_replay)):
            a, b = self.kpis_original.get(name), self.kpis_replay.get(name)
            lines.append(f"  kpi {name}: {a} → {b}" + ("" if a == b else "  (differs)"))
        for o in self.outputs:
            lines.append(f"  output {o.name}: {'same' if o.same else f'{o.original} → {o.replay}'}")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def replay(run_id: str, *, root: str | Path, store: str | Path | None = None, dry_run: bool = False) -> ReplayReport:
    from ..config import IndexSettings
    from ..pex.store import TaskStore
    from . import gitstate
    from .artifacts import ArtifactStore
    from .executor import Executor
    from .passport import PassportStore

    settings = IndexSettings.for_root(root, store)
    artifacts, passports = ArtifactStore(settings.store), PassportStore(settings.store)
    passport = passports.load(run_id)
    problems = passports.verify(passport, artifacts)
    if problems:
        raise ReplayRefused(f"cannot replay {run_id}: " + "; ".join(problems))
    if passport.status not in ("succeeded", "failed"):
        raise ReplayRefused(f"cannot replay {run_id}: it ended {passport.status!r}")
    report = ReplayReport(run_id=run_id, dry_run=dry_run, kpis_original=passport.kpis)
    from ..security import audit

    audit.record("replay", run_id=run_id, dry_run=dry_run, lane=passport.lane)
    if dry_run:
        report.match = True
        return report

    work = settings.store / "replays" / f"{run_id}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    tree = work / "worktree"
    gitstate.restore_worktree(settings.root, passport.git.get("commit"), passport.git.get("diff_sha256"),
                              artifacts, tree)
    try:
        notebook = next(ref for ref in passport.inputs if ref.name.startswith("lane/"))
        lane_nb = work / Path(notebook.name).name
        lane_nb.write_bytes(artifacts.get_bytes(notebook.sha256))
        responses = work / "recorded_responses"
        responses.mkdir()
        for ref in passport.provider_responses:
            (responses / Path(ref.name).name).write_bytes(artifacts.get_bytes(ref.sha256))
        replay_store = work / "store"
        tasks = TaskStore.for_store(replay_store)
        task, _ = tasks.create_task(title=f"replay of {run_id}", brief="", lane=passport.lane,
                                    parameters=passport.parameters, rehearsal=True)
        for state in ("estimated", "approved"):
            from ..models import TaskState

            tasks.transition(task.id, TaskState(state))
        tasks.enqueue(task.id)
        executor = Executor(tree, replay_store, tasks, notebooks={passport.lane: lane_nb},
                            extra_env={"DIRENG_REPLAY": "1", "DIRENG_RECORDED_RESPONSES": str(responses)})
        run = tasks.claim(executor.worker_id, {passport.lane: 1})
        executor.execute(run)
        replayed = PassportStore(replay_store).load(run["id"])
        copy = ArtifactStore(replay_store)
        for ref in replayed.outputs:  # keep the replay's outputs beside the original's
            if ref.name not in VOLATILE_OUTPUTS:
                artifacts.put_bytes(copy.get_bytes(ref.sha256), ref.name, ref.media_type)
    finally:
        subprocess.run(["git", "-C", str(settings.root), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)
    original = {o.name: o.sha256 for o in passport.outputs if o.name not in VOLATILE_OUTPUTS}
    again = {o.name: o.sha256 for o in replayed.outputs if o.name not in VOLATILE_OUTPUTS}
    report.replay_run_id = replayed.run_id
    report.status, report.error = replayed.status, replayed.error
    report.kpis_replay = replayed.kpis
    report.outputs = [OutputComparison(name=n, original=original.get(n), replay=again.get(n))
                      for n in sorted(set(original) | set(again))]
    report.match = (replayed.status == passport.status and replayed.kpis == passport.kpis
                    and all(o.same for o in report.outputs))
    path = settings.store / "replays" / f"{run_id}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{int(time.time()*1000)%1000}.json"
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    report.report_path = str(path)
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    return report
