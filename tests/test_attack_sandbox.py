"""Regression tests for the holes an attack run found in the sandbox boundary and answer-time reads.

Each test replays the attack against the real components — bubblewrap, papermill lane runs through
PAS's executor, the allowlists shipped in `lanes/`, a real index, a real Jupyter server — and
checks that it no longer gets through:

1. a hostile patch whose tests plant a link at `tests.txt` and forge `outputs.jsonl` records,
2. planted programs that pass an allowlist by basename, and environment variables that run code,
3. an indexed file swapped for a link to a file outside the repository after indexing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import git, make_repo, require_bwrap
from direng_kernel import confined
from direng_kernel.models import TaskState
from direng_kernel.pas.allowlist import Allowlist, AllowlistError, load_lane_allowlist
from direng_kernel.pas.sandbox import CommandDenied, run_command

pytestmark = pytest.mark.timeout(600)


# -- 1. a hostile patch against the code-impl lane ---------------------------------------------

HOSTILE_TEST = '''
"""Passes, but tries to reach out of the sandbox through the run folder on the way."""
import json
import os
from pathlib import Path

VICTIM = {victim!r}
SECRET = {secret!r}


def test_reach_out():
    here = Path.cwd()
    for folder in [here, *list(here.parents)[:4]]:
        for attempt in (
            lambda: os.symlink(VICTIM, folder / "tests.txt"),
            lambda: os.symlink(VICTIM, folder / "lint.txt"),
            lambda: (folder / "outputs.jsonl").open("a").write(
                json.dumps({{"path": SECRET, "name": "stolen", "size": 1}}) + "\\n"),
            lambda: (folder / "outputs.jsonl").open("a").write(
                json.dumps({{"path": os.path.relpath(SECRET, folder), "name": "stolen2", "size": 1}}) + "\\n"),
            lambda: os.symlink(SECRET, folder / "stolen.txt"),
        ):
            try:
                attempt()
            except OSError:
                pass
'''


def hostile_patch(repo: Path, victim: Path, secret: Path) -> str:
    """A patch adding the hostile test module, as `git diff` writes it."""
    (repo / "test_hostile.py").write_text(HOSTILE_TEST.format(victim=str(victim), secret=str(secret)))
    git(repo, "add", "-N", "test_hostile.py")
    diff = git(repo, "diff") + "\n"
    git(repo, "reset", "-q", "test_hostile.py")
    (repo / "test_hostile.py").unlink()
    return diff


@pytest.fixture
def impl_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "calc" / "__init__.py").write_text('def add(a, b):\n    """Add two numbers."""\n    return a + b\n')
    (repo / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "initial")
    return repo


def run_code_impl(repo: Path, patch: str):
    from direng_kernel.pex.orchestrator import Orchestrator

    orch = Orchestrator(repo, repo / ".direng")
    task, _ = orch.new_task("apply the patch", "", "code-impl", {"patch": patch, "lint": "none"})
    orch.estimate(task.id)
    orch.approve(task.id)
    orch.start(task.id)
    return orch, orch.run_here(task.id, timeout=400)


def stored_blobs(store: Path) -> list[bytes]:
    return [p.read_bytes() for p in (store / "artifacts").rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["bwrap", "rlimits"])
def test_hostile_patch_cannot_write_through_or_steal_via_the_run_folder(impl_repo, tmp_path, monkeypatch, sandbox):
    if sandbox == "bwrap":
        require_bwrap()
    # rlimits-only isolates nothing, so the hostile tests *can* write the run folder there: the
    # lane and the executor alone must then refuse what they planted.
    monkeypatch.setenv("DIRENG_SANDBOX", sandbox)
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's own content\n")
    secret = tmp_path / "vault.key"
    secret.write_text("-----BEGIN PRIVATE KEY-----\nnot-really-but-sensitive-0123456789\n-----END PRIVATE KEY-----\n")
    orch, task = run_code_impl(impl_repo, hostile_patch(impl_repo, victim, secret))

    assert victim.read_text() == "the victim's own content\n", "tests.txt was written through a planted link"
    blobs = stored_blobs(impl_repo / ".direng")
    assert blobs, "the run stored no artifacts at all"
    assert not any(b"not-really-but-sensitive" in blob for blob in blobs), "an outside file was stored as an artifact"
    names = {o.name for o in orch.executor.passports.load(task.run_id).outputs}
    assert not {"stolen", "stolen2", "stolen.txt"} & names
    if sandbox == "bwrap":
        # Inside bubblewrap the run folder is read-only: every attempt failed and the run is clean.
        assert task.state == TaskState.succeeded, task.error
        assert {"tests.txt", "change.patch"} <= names
    else:
        # Without isolation the forged records are caught: the run fails, naming what it refused.
        assert task.state == TaskState.failed and "refused" in (task.error or ""), task.error


def test_lane_writes_replace_a_planted_link_instead_of_writing_through(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (run / "tests.txt").symlink_to(victim)
    confined.write_bytes(run, "tests.txt", b"report")
    assert victim.read_text() == "keep" and (run / "tests.txt").read_text() == "report"
    assert not (run / "tests.txt").is_symlink()
    os.link(victim, run / "hard.txt")  # a hard link is replaced too, never truncated
    confined.write_bytes(run, "hard.txt", b"x")
    assert victim.read_text() == "keep"
    (run / "sub").symlink_to(tmp_path)
    with pytest.raises(confined.ConfinementError):
        confined.write_bytes(run, "sub/evil.txt", b"x")
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(confined.ConfinementError):
        confined.read_bytes(run, "tests.txt/../../victim", follow_links=False)
    (run / "link.jsonl").symlink_to(victim)
    with pytest.raises(confined.ConfinementError):
        confined.append_bytes(run, "link.jsonl", b"{}\n")
    with pytest.raises(confined.ConfinementError):
        confined.read_bytes(run, "link.jsonl", follow_links=False)
    assert victim.read_text() == "keep"


# -- 2. planted programs and code-running environment variables --------------------------------

@pytest.fixture
def planted(tmp_path):
    """Scripts named like allowed programs, each leaving a marker when it runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ran"
    for name in ("git", "python3-evil", "pytest", "evil-diff"):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        script.chmod(0o755)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'a').write('sitecustomize\\n')\n")
    return bin_dir, site, marker


@pytest.mark.parametrize("argv", [
    ["{bin}/git", "status"],
    ["{bin}/python3-evil", "-m", "pytest", "-q"],
    ["{bin}/pytest", "-q"],
    ["bin/git", "status"],
    ["./bin/git", "status"],
    ["/usr/bin/../../{bin}/git", "status"],
])
def test_allowed_basename_from_an_untrusted_folder_is_denied(planted, tmp_path, bubblewrap, argv):
    bin_dir, _, marker = planted
    argv = [a.format(bin=str(bin_dir).lstrip("/") if a.startswith("/usr") else bin_dir) for a in argv]
    allowlist = load_lane_allowlist("code-impl")
    assert allowlist.check(argv).allowed, "the attack needs an argv the allowlist itself accepts"
    with pytest.raises(CommandDenied) as err:
        run_command(argv, cwd=tmp_path, writable=[], allowlist=allowlist)
    assert err.value.decision.rule == "deny:untrusted-program"
    assert not marker.exists()


def test_trusted_programs_still_run_by_their_resolved_path(tmp_path, bubblewrap):
    git(tmp_path, "init", "-q")
    result = run_command(["git", "status", "--porcelain"], cwd=tmp_path, writable=[],
                         allowlist=load_lane_allowlist("chat"))
    assert result.returncode == 0, result.stderr
    result = run_command(["/usr/bin/git", "status"], cwd=tmp_path, writable=[], allowlist=load_lane_allowlist("chat"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("make_env", [
    lambda b, s: {"PATH": f"{b}:/usr/bin:/bin"},
    lambda b, s: {"GIT_EXTERNAL_DIFF": f"{b}/evil-diff"},
    lambda b, s: {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "diff.external", "GIT_CONFIG_VALUE_0": f"{b}/evil-diff"},
    lambda b, s: {"GIT_CONFIG_PARAMETERS": f"'diff.external={b}/evil-diff'"},
    lambda b, s: {"PYTHONPATH": str(s)},
    lambda b, s: {"LD_PRELOAD": f"{b}/evil.so"},
    lambda b, s: {"SOMETHING_UNLISTED": "1"},
], ids=["PATH", "GIT_EXTERNAL_DIFF", "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "PYTHONPATH", "LD_PRELOAD",
        "unlisted"])
def test_environment_that_runs_code_is_denied(planted, impl_repo, bubblewrap, make_env):
    bin_dir, site, marker = planted
    (impl_repo / "calc" / "__init__.py").write_text("changed = 1\n")
    env = make_env(bin_dir, site)
    for argv in (["git", "diff"], [sys.executable, "-m", "pytest", "-q", "--co"]):
        with pytest.raises(CommandDenied) as err:
            run_command(argv, cwd=impl_repo, writable=[], allowlist=load_lane_allowlist("code-impl"), env=env)
        assert err.value.decision.rule.startswith(("deny:env-", "default-deny-env"))
    assert not marker.exists()


def test_listed_environment_variables_pass(impl_repo, bubblewrap):
    result = run_command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=impl_repo,
                         writable=[], allowlist=Allowlist.parse({
                             "lane": "t", "env": ["PYTHONDONTWRITEBYTECODE"],
                             "allow": [{"id": "pytest", "argv": ["python*", "-m", "pytest", "**"]}]}),
                         env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("env", [["PATH"], ["LD_*"], ["GIT_*"], ["*"], ["PYTHON*"], ["GIT_CONFIG_COUNT"]])
def test_an_allowlist_cannot_allow_code_running_variables(env):
    with pytest.raises(AllowlistError, match="can never be allowed"):
        Allowlist.parse({"lane": "t", "env": env})


# -- 3. a file swapped for a link after indexing -----------------------------------------------

OUTSIDE = "root:x:0:0:OUTSIDE-MARKER-a81f:/root:/bin/bash\n" * 40


@pytest.fixture
def swapped(tmp_path):
    """An indexed repository whose shop/payment.py is then replaced by a link to an outside file."""
    from direng_kernel.workbench import Workbench

    repo = make_repo(tmp_path / "repo")
    wb = Workbench(repo)
    wb.index()
    wb.close()
    outside = tmp_path / "passwd"
    outside.write_text(OUTSIDE)
    target = repo / "shop" / "payment.py"
    target.unlink()
    target.symlink_to(outside)
    return repo


PROMPTS = ["how do we charge a credit card?", "explain charge_card", "what calls charge_card?",
           "where is the payment error raised?", "search charge card gateway"]


def test_swapped_link_never_reaches_answers_in_process(swapped):
    from direng_kernel.direng.tools import ToolBox, ToolError
    from direng_kernel.engine import Engine

    engine = Engine(swapped, watch=False)
    try:
        answers = [engine.chat(p, session=f"s{i}").markdown for i, p in enumerate(PROMPTS)]
        assert any("payment.py" in a for a in answers), "the prompts no longer reach the swapped file"
        assert not any("OUTSIDE-MARKER" in a for a in answers)
        code = engine.graph("shop/payment.py::charge_card", depth=1, code=True).code
        assert code, "no excerpts came back, so nothing was checked"
        assert not any("OUTSIDE-MARKER" in c for c in code.values())
        with pytest.raises(ToolError):
            ToolBox(engine.workbench).read_file_range("shop/payment.py", 1, 10)
    finally:
        engine.stop()


@pytest.mark.slow
def test_swapped_link_never_reaches_answers_over_the_server(swapped, tmp_path):
    from test_server import running_server

    with running_server(tmp_path, "--DirEngExtension.watch=False", "--DirEngExtension.index_on_start=False",
                        "--DirEngExtension.run_tasks=False", root=swapped, indexed=False) as srv:
        replies = [srv.post("chat", {"message": p, "session": f"s{i}"}) for i, p in enumerate(PROMPTS)]
        assert all(status == 200 for status, _ in replies), replies
        assert any("payment.py" in json.dumps(body) for _, body in replies)
        assert not any("OUTSIDE-MARKER" in json.dumps(body) for _, body in replies)
        status, data = srv.get("graph/shop%2Fpayment.py%3A%3Acharge_card", code="1", direction="both")
        assert status == 200, data
        assert "OUTSIDE-MARKER" not in json.dumps(data)

def test_reindex_after_the_swap_drops_the_file_and_never_stores_its_target(swapped):
    from direng_kernel.workbench import Workbench

    wb = Workbench(swapped)
    wb.index()
    assert not any(h.path == "shop/payment.py" for h in wb.search("charge card", k=20))
    wb.close()
    for path in (swapped / ".direng").rglob("*"):
        if path.is_file():
            assert b"OUTSIDE-MARKER" not in path.read_bytes(), path


def test_discovery_race_is_closed_by_the_no_follow_reader(tmp_path):
    """The link appears between discovery and reading: the read itself refuses it."""
    from direng_kernel.discovery import discover, read_text

    repo = make_repo(tmp_path / "repo")
    found = {c.path: c for c in discover(repo, 1 << 20).files}
    outside = tmp_path / "secret.py"
    outside.write_text(OUTSIDE)
    (repo / "shop" / "payment.py").unlink()
    (repo / "shop" / "payment.py").symlink_to(outside)
    data, why = read_text(repo, found["shop/payment.py"])
    assert data is None and why == "symlink outside root"
