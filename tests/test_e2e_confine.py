"""Path confinement on a real tree: `..` traversal, a sibling folder sharing the root's name as a
prefix, absolute paths, symlinks inside the root and symlinks (file, folder, absolute, relative,
looping) that leave it, and hard links, for

* `direng_kernel.direng.tools.confine` (every path a model's tool call names),
* the no-follow reader and writer in `direng_kernel.confined` (run folders, repository reads),
* a model's `read_file_range` tool calls end to end: a FAKE OpenAI-protocol server
  (tests/fake_providers.py) asks for the files, DirEng answers through its real broker and tools,
* `direng index` / `direng search` as subprocesses: nothing outside the root is indexed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from direng_kernel import confined
from direng_kernel.direng.tools import ToolBox, ToolError, confine

SECRET = "TOPSECRET-zebra-4242"
OUTSIDE_CODE = f'def exfiltrate_quuxword():\n    """Never indexed, never read."""\n    return "{SECRET}"\n'
INSIDE_CODE = 'def inside_helper():\n    """Adds one to nothing."""\n    return 1\n'


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """base/repo (the root), base/outside and base/repo-evil (its name has the root's as a prefix)."""
    base = tmp_path_factory.mktemp("confine")
    root = base / "repo"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text(INSIDE_CODE)
    (root / "pkg" / "sub" / "b.py").write_text("def deeper():\n    return 2\n")
    for folder in ("outside", "repo-evil"):
        (base / folder).mkdir()
        (base / folder / "secret.py").write_text(OUTSIDE_CODE)
    links = {
        "pkg/alias.py": "a.py",                                    # a file link inside the root
        "inner": "pkg",                                            # a folder link inside the root
        "pkg/up": "..",                                            # back to the root itself
        "leak.py": "../outside/secret.py",                         # a relative file link out
        "abs_leak.py": str(base / "outside" / "secret.py"),        # an absolute file link out
        "linkdir": "../outside",                                   # a folder link out
        "pkg/escape": "../..",                                     # a folder link to the root's parent
        "loop.py": "loop.py",                                      # a link to itself
        "loopa.py": "loopb.py", "loopb.py": "loopa.py",            # two links to each other
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return root


ALLOWED = [
    ("pkg/a.py", "pkg/a.py"),
    ("./pkg/a.py", "pkg/a.py"),
    ("pkg/../pkg/a.py", "pkg/a.py"),
    ("pkg/sub/../a.py", "pkg/a.py"),
    ("pkg/alias.py", "pkg/a.py"),            # in-root links resolve to their target
    ("inner/sub/b.py", "pkg/sub/b.py"),
    ("pkg/up/pkg/a.py", "pkg/a.py"),
    ("pkg/not_written_yet.py", "pkg/not_written_yet.py"),
    (".", ""),
]

REFUSED = [
    "../outside/secret.py",
    "pkg/../../outside/secret.py",
    "pkg/sub/../../../outside/secret.py",
    "../repo-evil/secret.py",               # shares the root's path as a string prefix
    "missing/../../repo-evil/secret.py",
    "leak.py",
    "abs_leak.py",
    "linkdir/secret.py",
    "inner/../linkdir/secret.py",
    "pkg/escape/outside/secret.py",
    "pkg/up/../outside/secret.py",
    "/etc/passwd",
    "",
    "pkg/a.py\x00.txt",
]


@pytest.mark.parametrize("rel,expected", ALLOWED)
def test_confine_resolves_paths_that_stay_inside(tree, rel, expected):
    assert confine(tree, rel) == (tree.resolve() / expected if expected else tree.resolve())


@pytest.mark.parametrize("rel", REFUSED)
def test_confine_refuses_paths_that_leave_the_root(tree, rel):
    if rel and "\x00" not in rel and not rel.startswith("/"):
        target = os.path.realpath(tree / rel)  # the case is real: the path does lead out
        assert not target.startswith(str(tree.resolve()) + os.sep), target
    with pytest.raises(ToolError):
        confine(tree, rel)


def test_confine_refuses_an_absolute_path_even_inside_the_root(tree):
    with pytest.raises(ToolError, match="absolute"):
        confine(tree, str(tree.resolve() / "pkg" / "a.py"))


@pytest.mark.parametrize("rel", ["loop.py", "loopa.py", "loopb.py/x.py"])
def test_confine_refuses_a_symlink_loop_with_a_tool_error(tree, rel):
    with pytest.raises(ToolError):
        confine(tree, rel)


# -- the no-follow reader and writer ---------------------------------------------------------------

def test_repository_reads_follow_only_links_that_stay_inside(tree):
    assert confined.read_text(tree, "pkg/alias.py") == INSIDE_CODE
    assert confined.read_text(tree, "inner/sub/b.py").startswith("def deeper")
    for rel in ("leak.py", "abs_leak.py", "linkdir/secret.py", "pkg/escape/outside/secret.py"):
        with pytest.raises(confined.ConfinementError):
            confined.read_bytes(tree, rel)


def test_run_folder_reads_follow_no_link_at_all(tree):
    assert confined.read_text(tree, "pkg/sub/b.py", follow_links=False).startswith("def deeper")
    with pytest.raises(confined.ConfinementError, match="is a symlink"):
        confined.read_bytes(tree, "pkg/alias.py", follow_links=False)  # even one that stays inside
    with pytest.raises(confined.ConfinementError, match="folder on the way"):
        confined.read_bytes(tree, "inner/sub/b.py", follow_links=False)
    with pytest.raises(confined.ConfinementError, match="'..'"):
        confined.read_bytes(tree, "pkg/sub/../a.py", follow_links=False)
    with pytest.raises(confined.ConfinementError):
        confined.read_bytes(tree, "loop.py", follow_links=False)


def test_writes_replace_planted_links_instead_of_writing_through_them(tmp_path):
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    run_dir.mkdir()
    outside.mkdir()
    target = outside / "victim.txt"
    target.write_text("original")
    os.symlink(target, run_dir / "out.txt")
    os.symlink(outside, run_dir / "linked")
    os.link(target, run_dir / "hard.txt")  # a hard link: the same inode as the outside file
    written = confined.write_bytes(run_dir, "out.txt", b"from the lane")
    assert written == run_dir.resolve() / "out.txt" and not written.is_symlink()
    assert written.read_bytes() == b"from the lane" and target.read_text() == "original"
    with pytest.raises(confined.ConfinementError):
        confined.write_bytes(run_dir, "linked/dropped.txt", b"x")
    assert not (outside / "dropped.txt").exists()
    with pytest.raises(confined.ConfinementError):
        confined.write_bytes(run_dir, "../outside/victim.txt", b"x")
    with pytest.raises(confined.ConfinementError, match="hard link"):
        confined.append_bytes(run_dir, "hard.txt", b"appended")
    with pytest.raises(confined.ConfinementError):
        confined.append_bytes(run_dir, "linked/log.txt", b"x")
    assert target.read_text() == "original" and not (outside / "log.txt").exists()
    confined.append_bytes(run_dir, "log.txt", b"one\n")
    confined.append_bytes(run_dir, "log.txt", b"two\n")
    assert (run_dir / "log.txt").read_bytes() == b"one\ntwo\n"


# -- a model's tool calls, end to end ------------------------------------------------------------------

@pytest.fixture(scope="module")
def workbench(tree):
    from direng_kernel.workbench import Workbench

    wb = Workbench(tree, store=tree.parent / "store")
    wb.index()
    yield wb
    wb.close()


def chat_with_tool_reads(workbench, tmp_path, monkeypatch, paths: list[str]):
    """DirEng asked a question while a FAKE model reads `paths` with read_file_range, then answers;
    returns (answer, {path: the tool result the model got back}, every request the model received)."""
    from direng_kernel.broker.broker import Broker
    from direng_kernel.broker.policy import Policy
    from direng_kernel.direng.assistant import DirEng, LocalProvider
    from fake_providers import FakeModelServer, FakeReply

    monkeypatch.setenv("FAKE_OPENAI_KEY", "test-key")
    with FakeModelServer() as server:
        calls = [{"id": f"c{i}", "name": "read_file_range", "arguments": {"path": p}} for i, p in enumerate(paths)]
        server.reply(FakeReply(content="", tool_calls=calls), FakeReply(content="Done reading."))
        policy = Policy.model_validate({"version": 1, "providers": {
            "local": {"type": "local", "external": False},
            "fake-openai": {"type": "openai", "base_url": server.url, "api_key_env": "FAKE_OPENAI_KEY",
                            "external": True}},
            "lanes": {"chat": {"primary": {"provider": "fake-openai", "model": "fake-model"}, "retries": 0}}})
        d = DirEng(workbench)
        d.broker = Broker(policy, local_factory=lambda: LocalProvider(d), usage_log=tmp_path / "usage.jsonl")
        answer = d.chat("read these files for me please")
        requests = [json.dumps(r.body) for r in server.requests]
        second = server.requests[1].body if len(server.requests) > 1 else {"messages": []}
    results = {paths[int(m["tool_call_id"][1:])]: m["content"] for m in second["messages"] if m["role"] == "tool"}
    return answer, results, requests


def test_model_tool_reads_stay_inside_the_root(workbench, tmp_path, monkeypatch):
    outside = ["leak.py", "abs_leak.py", "linkdir/secret.py", "../outside/secret.py", "../repo-evil/secret.py",
               "pkg/escape/outside/secret.py", str(workbench.root.parent / "outside" / "secret.py")]
    answer, results, requests = chat_with_tool_reads(workbench, tmp_path, monkeypatch, [*outside, "pkg/alias.py"])
    assert answer.provider == "fake-openai" and answer.markdown == "Done reading."
    for path in outside:
        assert results[path].startswith("error:"), (path, results[path])
    assert "def inside_helper" in results["pkg/alias.py"]  # a link inside the root is fine
    assert not any(SECRET in body or "exfiltrate" in body for body in requests)  # nothing from outside reached it


def test_a_looping_link_read_by_the_model_comes_back_as_an_error(workbench, tmp_path, monkeypatch):
    answer, results, _ = chat_with_tool_reads(workbench, tmp_path, monkeypatch, ["loop.py", "pkg/a.py"])
    assert results["loop.py"].startswith("error:") and "def inside_helper" in results["pkg/a.py"]
    assert answer.markdown == "Done reading."


def test_toolbox_reads_through_confine(workbench):
    tools = ToolBox(workbench)
    assert "def inside_helper" in tools.read_file_range("inner/../pkg/alias.py", 1, 3)
    for rel in ("leak.py", "linkdir/secret.py", "../outside/secret.py"):
        with pytest.raises(ToolError):
            tools.read_file_range(rel)


# -- the indexer, through the CLI ---------------------------------------------------------------------------

def direng(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.e2e("direng index", "direng search")
def test_index_never_follows_links_out_of_the_root(tree, tmp_path):
    store = str(tmp_path / "cli-store")
    proc = direng("index", str(tree), "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    indexed = set(report["changed_paths"])
    assert {"pkg/a.py", "pkg/sub/b.py"} <= indexed
    assert not indexed & {"leak.py", "abs_leak.py", "loop.py", "loopa.py", "loopb.py"}
    assert not any(p.startswith(("linkdir/", "inner/", "pkg/up/", "pkg/escape/")) for p in indexed), indexed
    assert report["skipped"].get("symlink outside root") == 2  # leak.py and abs_leak.py
    hits = json.loads(direng("search", "exfiltrate quuxword", "--root", str(tree), "--store", store,
                             "--mode", "bm25", "--json").stdout)
    assert hits == []  # only the file outside the root has these words
    assert SECRET not in direng("search", SECRET, "--root", str(tree), "--store", store, "--json").stdout
