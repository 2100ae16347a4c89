"""The PAS artifact store, git state capture/restore and `direng artifacts`, on real files and repos."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import commit_all, git, make_repo
from direng_kernel.cli import artifacts_cmd
from direng_kernel.pas.artifacts import (
    ArtifactCorrupt, ArtifactMissing, ArtifactStore, InvalidArtifactId, validate_sha,
)
from direng_kernel.pas.gitstate import capture, restore_worktree, strip_credentials

BINARY = bytes(range(256)) * 8 + b"\x00\xff\x00"


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


def _tamper(store: ArtifactStore, sha: str, data: bytes = b"tampered") -> None:
    p = store.path(sha)
    os.chmod(p, 0o644)
    p.write_bytes(data)
    os.chmod(p, 0o444)


# -- store ----------------------------------------------------------------------------------


def test_put_get_round_trip_layout_and_read_only(store: ArtifactStore, tmp_path: Path):
    ref = store.put_bytes(b"hello\n", "out/hello.txt")
    sha = hashlib.sha256(b"hello\n").hexdigest()
    assert (ref.sha256, ref.name, ref.size, ref.media_type) == (sha, "out/hello.txt", 6, "text/plain")
    assert store.path(sha) == tmp_path / "store" / "artifacts" / "objects" / sha[:2] / sha[2:]
    assert store.get_bytes(sha) == b"hello\n" and store.exists(sha)
    with store.open(sha) as f:
        assert f.read() == b"hello\n"
    assert stat.S_IMODE(store.path(sha).stat().st_mode) == 0o444
    store.verify(sha)
    assert store.verify_all() == [] and list(store.iter_shas()) == [sha]


def test_put_file_streams_binary_and_dedups(store: ArtifactStore, tmp_path: Path):
    src = tmp_path / "blob.bin"
    src.write_bytes(BINARY * 700)  # > 1 MiB: more than one streamed chunk
    ref = store.put_file(src)
    assert ref.name == "blob.bin" and ref.size == len(BINARY) * 700
    assert ref.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert store.get_bytes(ref.sha256) == src.read_bytes()
    before = store.path(ref.sha256).stat()
    again = store.put_bytes(src.read_bytes(), "other-name")
    assert again.sha256 == ref.sha256 and again.name == "other-name"
    after = store.path(ref.sha256).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)  # not rewritten
    assert len(list(store.iter_shas())) == 1 and store.temp_files() == []


def test_tamper_detected_on_read_and_by_verify_all(store: ArtifactStore):
    sha = store.put_bytes(b"original", "a").sha256
    _tamper(store, sha)
    for read in (store.get_bytes, store.verify, store.open):
        with pytest.raises(ArtifactCorrupt, match=sha):
            read(sha)
    with pytest.raises(ArtifactCorrupt, match=sha):  # write-once: verified, not silently rewritten
        store.put_bytes(b"original", "a")
    problems = store.verify_all()
    assert [(p.kind, p.sha256) for p in problems] == [("corrupt", sha)]
    assert sha in str(problems[0]) and "\n" not in str(problems[0])


def test_writable_object_is_reported(store: ArtifactStore):
    sha = store.put_bytes(b"x", "x").sha256
    os.chmod(store.path(sha), 0o644)
    assert [(p.kind, p.sha256) for p in store.verify_all()] == [("permissions", sha)]


@pytest.mark.parametrize("bad", ["../etc/passwd", "A" * 64, "ab" * 31, "g" * 64, "", "a" * 65,
                                 "../" + "a" * 61, None])
def test_invalid_ids_refused(store: ArtifactStore, bad):
    with pytest.raises(InvalidArtifactId):
        validate_sha(bad)
    for op in (store.path, store.get_bytes, store.exists, store.open):
        with pytest.raises(InvalidArtifactId):
            op(bad)


def test_missing_artifact_named(store: ArtifactStore):
    sha = "0" * 64
    with pytest.raises(ArtifactMissing, match=sha):
        store.get_bytes(sha)
    assert not store.exists(sha)


def test_crash_mid_write_leaves_temp_reported_and_cleaned(store: ArtifactStore):
    # A real process dies between writing the temp file and renaming it into place.
    code = ("import os, sys; from direng_kernel.pas.artifacts import ArtifactStore;"
            "os.replace = lambda *a: os._exit(3);"
            "ArtifactStore(sys.argv[1]).put_bytes(b'half-written', 'x')")
    proc = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True)
    assert proc.returncode == 3
    sha = hashlib.sha256(b"half-written").hexdigest()
    assert not store.exists(sha) and len(store.temp_files()) == 1
    problems = store.verify_all()
    assert [p.kind for p in problems] == ["temp"]
    assert store.gc_temp(min_age_s=3600) == []  # too young: might be a write in progress
    leftover = store.temp_files()
    assert store.gc_temp() == leftover
    assert store.temp_files() == [] and store.verify_all() == []
    assert store.put_bytes(b"half-written", "x").sha256 == sha and store.get_bytes(sha) == b"half-written"


def test_stray_files_reported(store: ArtifactStore):
    store.put_bytes(b"ok", "ok")
    (store.objects / "README").write_text("not an object")
    assert [p.kind for p in store.verify_all()] == ["stray"]


def test_export_with_manifest(store: ArtifactStore, tmp_path: Path):
    a = store.put_bytes(b"alpha", "a.txt")
    b = store.put_bytes(BINARY, "b.bin")
    manifest = store.export([a, b.sha256], tmp_path / "out")
    data = json.loads(manifest.read_text())
    assert manifest == tmp_path / "out" / "manifest.json"
    assert [e["sha256"] for e in data["artifacts"]] == [a.sha256, b.sha256]
    assert data["artifacts"][0]["name"] == "a.txt" and "name" not in data["artifacts"][1]
    assert (tmp_path / "out" / a.sha256).read_bytes() == b"alpha"
    assert (tmp_path / "out" / b.sha256).read_bytes() == BINARY
    every = json.loads(store.export(None, tmp_path / "all").read_text())["artifacts"]
    assert sorted(e["sha256"] for e in every) == sorted([a.sha256, b.sha256])
    _tamper(store, a.sha256)
    with pytest.raises(ArtifactCorrupt, match=a.sha256):
        store.export([a.sha256], tmp_path / "bad")
    assert not (tmp_path / "bad" / a.sha256).exists()


# -- git state ------------------------------------------------------------------------------


def _tree_snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts and ".direng" not in p.relative_to(root).parts}


def test_capture_dirty_repo_and_restore_into_worktree(tmp_path: Path):
    repo = make_repo(tmp_path / "repo")
    (repo / "data.bin").write_bytes(BINARY)
    (repo / "gone.txt").write_text("to be deleted\n")
    head = commit_all(repo, "add binary")
    git(repo, "remote", "add", "origin", "https://alice:s3cret-token@example.com/org/repo.git")
    tracked = next(p for p in sorted(repo.rglob("*.py")) if ".git" not in p.parts)
    tracked.write_text(tracked.read_text() + "\n# modified, not committed\n")
    (repo / "data.bin").write_bytes(BINARY[::-1] + b"\x00changed")  # modified binary
    (repo / "gone.txt").unlink()
    (repo / "new dir").mkdir()
    (repo / "new dir" / "untracked ü.txt").write_text("brand new\n")
    (repo / "new.bin").write_bytes(b"\x00\x01\x02" * 100)  # untracked binary
    (repo / "empty.txt").write_bytes(b"")
    (repo / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(repo / "tool.sh", 0o755)
    (repo / "staged.txt").write_text("staged only\n")
    git(repo, "add", "staged.txt")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "noise.log").write_text("ignored\n")
    store = ArtifactStore(repo / ".direng")  # the store inside the repo is never captured
    store.put_bytes(b"seed", "seed")
    status_before = git(repo, "status", "--porcelain")
    index_before = (repo / ".git" / "index").read_bytes()
    before = _tree_snapshot(repo)

    state = capture(repo, store)
    assert state["commit"] == head and state["branch"] == "main" and state["dirty"] is True
    assert state["remote"] == "https://example.com/org/repo.git"
    assert "s3cret" not in json.dumps(state)
    patch = store.get_bytes(state["diff_sha256"])
    assert b"GIT binary patch" in patch and b".direng" not in patch and b"noise.log" not in patch
    assert (repo / ".git" / "index").read_bytes() == index_before  # index untouched by capture
    assert git(repo, "status", "--porcelain") == status_before

    dest = restore_worktree(repo, state["commit"], state["diff_sha256"], store, tmp_path / "replay")
    restored = _tree_snapshot(dest)
    expected = {k: v for k, v in before.items() if k != "noise.log"}
    assert restored == expected
    assert os.access(dest / "tool.sh", os.X_OK)
    assert _tree_snapshot(repo) == before  # the user's working tree is untouched
    assert git(repo, "status", "--porcelain") == status_before
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    # the replayed tree captures to the same patch
    assert capture(dest, ArtifactStore(tmp_path / "s2"))["diff_sha256"] == state["diff_sha256"]


def test_capture_clean_repo_and_restore_without_diff(tmp_path: Path, store: ArtifactStore):
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "--detach")
    state = capture(repo, store)
    assert state["dirty"] is False and state["diff_sha256"] is None and state["branch"] is None
    assert state["remote"] is None and state["vcs"] == "git"
    dest = restore_worktree(repo, state["commit"], None, store, tmp_path / "wt")
    assert _tree_snapshot(dest) == _tree_snapshot(repo)


def test_restore_refuses_nonempty_dest_and_unknown_commit(tmp_path: Path, store: ArtifactStore):
    from direng_kernel.pas.gitstate import GitStateError

    repo = make_repo(tmp_path / "repo")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(GitStateError, match="not an empty directory"):
        restore_worktree(repo, head, None, store, tmp_path / "busy")
    with pytest.raises(GitStateError, match="not in the repository"):
        restore_worktree(repo, "1" * 40, None, store, tmp_path / "wt")


def test_plain_directory_records_content_hash(tmp_path: Path, store: ArtifactStore):
    plain = make_repo(tmp_path / "plain", commit=False)
    state = capture(plain, store)
    assert state["commit"] is None and state["vcs"] is None and state["diff_sha256"] is None
    manifest = store.get_bytes(state["content_sha256"]).decode()
    assert "README.md" in manifest and all(len(line.split("  ", 1)[0]) == 64 for line in manifest.splitlines())
    assert capture(plain, store)["content_sha256"] == state["content_sha256"]
    (plain / "README.md").write_text("changed\n")
    assert capture(plain, store)["content_sha256"] != state["content_sha256"]


@pytest.mark.parametrize("url,clean", [
    ("https://user:token@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://ghp_abc123@github.com/o/r.git", "https://github.com/o/r.git"),
    ("http://u:p@host:8080/r", "http://host:8080/r"),
    ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
    ("ssh://git@host/r.git", "ssh://git@host/r.git"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ("/srv/repos/r.git", "/srv/repos/r.git"),
    (None, None),
])
def test_strip_credentials(url, clean):
    assert strip_credentials(url) == clean


# -- CLI ------------------------------------------------------------------------------------


def _ns(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"root": ".", "store": None, "json": False, "shas": [], "all": False, **kw})


def test_cli_verify_and_export(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("DIRENG_STORE", raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    store = ArtifactStore(root / ".direng")
    a = store.put_bytes(b"alpha", "a").sha256
    b = store.put_bytes(b"beta", "b").sha256

    assert artifacts_cmd.run(_ns(artifacts_command="verify", root=str(root))) == 0
    assert "ok: 2 artifacts" in capsys.readouterr().out

    assert artifacts_cmd.run(_ns(artifacts_command="export", root=str(root), shas=[a], to=str(tmp_path / "x"))) == 0
    assert json.loads((tmp_path / "x" / "manifest.json").read_text())["artifacts"][0]["sha256"] == a
    assert artifacts_cmd.run(_ns(artifacts_command="export", root=str(root), all=True, to=str(tmp_path / "y"))) == 0
    assert {p.name for p in (tmp_path / "y").iterdir()} == {a, b, "manifest.json"}
    capsys.readouterr()

    assert artifacts_cmd.run(_ns(artifacts_command="export", root=str(root), shas=["../etc/passwd"],
                                 to=str(tmp_path / "z"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("direng: error: invalid artifact id") and err.count("\n") == 1
    assert artifacts_cmd.run(_ns(artifacts_command="export", root=str(root), to=str(tmp_path / "z"))) == 2

    _tamper(store, b)
    capsys.readouterr()
    assert artifacts_cmd.run(_ns(artifacts_command="verify", store=str(root / ".direng"), json=True)) == 1
    problems = json.loads(capsys.readouterr().out)
    assert [(p["kind"], p["sha256"]) for p in problems] == [("corrupt", b)]


def test_cli_parser_round_trip(tmp_path: Path):
    parser = argparse.ArgumentParser(prog="direng")
    sub = parser.add_subparsers(dest="command")
    artifacts_cmd.add_parser(sub)
    args = parser.parse_args(["artifacts", "export", "a" * 64, "--to", str(tmp_path), "--root", str(tmp_path)])
    assert args.artifacts_command == "export" and args.shas == ["a" * 64] and not args.all
    args = parser.parse_args(["artifacts", "verify", "--store", str(tmp_path / "s"), "--json"])
    assert args.json and args.store == str(tmp_path / "s")
    assert artifacts_cmd.run(args) == 0  # an empty store has no problems
