"""Attack run (issue 8): `kill -9` of a cold `direng index` must not leave processes behind.

The cold index runs secret/PII detection in spawned pool workers. Killed with SIGKILL, the parent
cannot shut them down; they used to sit on their call queue forever (each holds its write end),
keeping `multiprocessing.resource_tracker` alive with them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import git, run_cli

pytestmark = pytest.mark.slow
FILES = 600  # above the indexer's pool threshold (400), and several seconds of cold indexing


def _big_repo(root: Path) -> Path:
    for i in range(FILES):
        pkg = root / f"pkg{i % 30:02d}"
        pkg.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(
            f'def handler_{i}_{j}(request, limit={j}):\n'
            f'    """Handle request {j} of module {i}: validate the payload, then store it."""\n'
            f'    items = [x for x in request.get("items", []) if x]\n'
            f'    return {{"module": {i}, "count": len(items[:limit]), "note": "batch {i}-{j}"}}\n'
            for j in range(15))
        (pkg / f"mod{i:04d}.py").write_text(f'"""Module {i} of the generated service."""\n\n{body}\n')
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "generated")
    return root


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return "?"


def test_kill_9_of_a_cold_index_leaves_no_orphans(tmp_path):
    root = _big_repo(tmp_path / "repo")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "index", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    parent = psutil.Process(proc.pid)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            children = parent.children(recursive=True)
            if sum("spawn_main" in _cmd(c) for c in children) >= 2:
                break
            time.sleep(0.1)
        workers = [c for c in children if "spawn_main" in _cmd(c)]
        assert len(workers) >= 2, f"the index never started its detection workers: {[_cmd(c) for c in children]}"
        time.sleep(1.5)  # let the workers finish bootstrapping and pick up detection work
        children = _alive(parent.children(recursive=True))
        assert proc.poll() is None, "the index finished before it could be killed: make the repository bigger"
        assert any("resource_tracker" in _cmd(c) for c in children), [_cmd(c) for c in children]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [_cmd(p) for p in _alive(children)] == []
    finally:
        for p in _alive(children):
            p.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    done = run_cli("index", str(root), "--json", timeout=600)  # the store survived the kill
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] + report["unchanged"] == FILES and report["syntax_errors"] == 0
