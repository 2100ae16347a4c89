"""Run passports: environment capture, store round trip, corruption, migration, verification, replay notebook."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import papermill
import pytest

from conftest import make_repo
from direng_kernel.models import ArtifactRef, Passport
from direng_kernel.pas.artifacts import ArtifactStore
from direng_kernel.pas.gitstate import capture
from direng_kernel.pas.passport import (
    CURRENT_SCHEMA, InvalidRunId, PassportCorrupt, PassportMissing, PassportSchemaError, PassportStore,
    _migrate, environment, installed_packages, notebook_sha256, render_replay_notebook,
)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[PassportStore, ArtifactStore]:
    return PassportStore(tmp_path / ".direng"), ArtifactStore(tmp_path / ".direng")


def _passport(artifacts: ArtifactStore, run_id: str = "run-0001", **kw) -> Passport:
    out = artifacts.put_bytes(b'{"rows": 3}\n', "out/result.json")
    resp = artifacts.put_bytes(b"provider said hi", "responses/0.json")
    inp = artifacts.put_bytes(b"a,b\n1,2\n", "in/data.csv")
    return Passport(
        run_id=run_id, task_id="task-1", lane="code-impl", lane_notebook_sha256="f" * 64,
        parameters={"n": 3, "name": "ü"}, environment=environment(artifacts), policy_sha256="e" * 64,
        provider_responses=[resp], inputs=[inp], outputs=[out], kpis={"accuracy": 0.93},
        timings={"total_s": 1.5}, sandbox="rlimits-only", status="succeeded",
        started_at=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        finished_at=datetime(2024, 5, 1, 12, 0, 2, tzinfo=timezone.utc), **kw,
    )


def test_environment_lock_hash_and_artifact(stores):
    _, artifacts = stores
    env = environment(artifacts)
    assert env["python"] == platform.python_version() and env["implementation"] == platform.python_implementation()
    lock = artifacts.get_bytes(env["lock_sha256"]).decode()
    packages = installed_packages()
    assert lock == "".join(f"{p}\n" for p in packages) and packages == sorted(set(packages))
    assert any(p.startswith("pydantic==") for p in packages)
    assert env["lock_sha256"] == hashlib.sha256(lock.encode()).hexdigest() == environment()["lock_sha256"]


def test_notebook_sha256(tmp_path: Path):
    nb = tmp_path / "lane.ipynb"
    nb.write_bytes(b'{"cells": []}')
    assert notebook_sha256(nb) == hashlib.sha256(b'{"cells": []}').hexdigest()


def test_save_load_round_trip(stores, tmp_path: Path):
    passports, artifacts = stores
    repo = make_repo(tmp_path / "repo")
    (repo / "README.md").write_text("dirty\n")
    p = _passport(artifacts, git=capture(repo, artifacts))
    path = passports.save(p)
    assert path == tmp_path / ".direng" / "passports" / "run-0001.json"
    assert path.read_text().startswith("{\n  ")  # pretty
    assert json.loads(path.read_text())["schema_version"] == CURRENT_SCHEMA
    loaded = passports.load("run-0001")
    assert loaded == p
    passports.save(_passport(artifacts, run_id="run-0000"))
    assert passports.list() == ["run-0000", "run-0001"]
    assert not list(path.parent.glob(".tmp-*"))
    assert passports.verify(loaded, artifacts) == []


@pytest.mark.parametrize("content,problem", [
    ('{"run_id": "run-9", "task_id": ', "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"schema_version": 1, "run_id": "run-9", "lane": "x"}', "task_id"),
    ('{"schema_version": 1, "run_id": "other", "task_id": "t", "lane": "x", "lane_notebook_sha256": "f"}',
     "records run id 'other'"),
    ('{"schema_version": "one"}', "schema_version"),
    (b"\xff\xfe\x00garbage", "unreadable"),
])
def test_corrupt_passport(stores, content, problem):
    passports, _ = stores
    passports.dir.mkdir(parents=True)
    path = passports.dir / "run-9.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PassportCorrupt) as info:
        passports.load("run-9")
    message = str(info.value)
    assert "run-9" in message and problem in message and "\n" not in message


def test_missing_newer_and_invalid_ids(stores):
    passports, _ = stores
    with pytest.raises(PassportMissing, match="nope"):
        passports.load("nope")
    passports.dir.mkdir(parents=True)
    (passports.dir / "future.json").write_text(json.dumps({"schema_version": CURRENT_SCHEMA + 1, "run_id": "future"}))
    with pytest.raises(PassportSchemaError, match="future.*newer than this DirEng"):
        passports.load("future")
    for bad in ("../etc/passwd", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(InvalidRunId):
            passports.load(bad)


def test_migration_from_v0(stores):
    passports, artifacts = stores
    sha = artifacts.put_bytes(b"old output", "out.txt").sha256
    v0 = {"id": "old-run", "task": "t-7", "lane": "narrative", "notebook_sha256": "a" * 64,
          "commit": "c" * 40, "branch": "main", "dirty": False, "python": "3.10.1", "platform": "Linux",
          "artifacts": [{"sha": sha, "name": "out.txt", "size": 10}], "status": "succeeded",
          "kpis": {"words": 120}}
    migrated = _migrate(dict(v0))
    assert migrated["schema_version"] == 1 and "id" not in migrated and "artifacts" not in migrated
    passports.dir.mkdir(parents=True)
    (passports.dir / "old-run.json").write_text(json.dumps(v0))
    p = passports.load("old-run")
    assert (p.run_id, p.task_id, p.lane, p.lane_notebook_sha256) == ("old-run", "t-7", "narrative", "a" * 64)
    assert p.git == {"commit": "c" * 40, "branch": "main", "dirty": False}
    assert p.environment == {"python": "3.10.1", "platform": "Linux"}
    assert p.outputs == [ArtifactRef(sha256=sha, name="out.txt", size=10)] and p.kpis == {"words": 120.0}
    assert passports.verify(p, artifacts) == []
    passports.save(p)  # saving writes the current schema
    assert json.loads((passports.dir / "old-run.json").read_text())["schema_version"] == CURRENT_SCHEMA


def test_verify_finds_missing_corrupt_and_wrong_size(stores):
    passports, artifacts = stores
    p = _passport(artifacts)
    gone = ArtifactRef(sha256="0" * 64, name="gone.bin", size=1)
    p.outputs.append(gone)
    p.inputs.append(ArtifactRef(sha256="../../etc/passwd", name="evil", size=1))
    p.git = {"commit": None, "diff_sha256": "1" * 64}
    wrong = p.provider_responses[0]
    p.provider_responses[0] = wrong.model_copy(update={"size": wrong.size + 1})
    problems = passports.verify(p, artifacts)
    assert len(problems) == 4
    assert any("outputs[1] gone.bin" in s and "0" * 64 in s and "missing" in s for s in problems)
    assert any("git.diff_sha256" in s and "1" * 64 in s for s in problems)
    assert any("invalid artifact id" in s for s in problems)
    assert any(wrong.sha256 in s and "size" in s for s in problems)
    target = artifacts.path(p.outputs[0].sha256)
    target.chmod(0o644)
    target.write_bytes(b"tampered")
    assert any("corrupt" in s and p.outputs[0].sha256 in s for s in passports.verify(p, artifacts))


def test_replay_notebook_is_papermill_ready(stores, tmp_path: Path):
    _, artifacts = stores
    p = _passport(artifacts, git={"root": "/srv/repo \"quoted\"", "commit": "c" * 40, "dirty": True})
    path = render_replay_notebook(p, tmp_path / "replay")
    assert path == tmp_path / "replay" / "replay.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    namespace: dict = {}
    exec(tagged[0].source, namespace)
    assert (namespace["run_id"], namespace["root"], namespace["dry_run"]) == ("run-0001", '/srv/repo "quoted"', False)
    assert 'run_id = "run-0001"' in tagged[0].source
    call = nb.cells[nb.cells.index(tagged[0]) + 1].source
    assert "from direng_kernel.pex.orchestrator import replay" in call
    assert "report = replay(run_id, root=root, dry_run=dry_run)" in call
    assert render_replay_notebook(p, tmp_path / "x.ipynb", root=tmp_path) == tmp_path / "x.ipynb"
    assert f"root = {json.dumps(str(tmp_path))}" in nbformat.read(tmp_path / "x.ipynb", as_version=4).cells[1].source
    params = papermill.inspect_notebook(str(path))
    assert set(params) == {"run_id", "root", "dry_run"}
