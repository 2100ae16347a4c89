"""PAS sandbox: real processes under bubblewrap and under rlimits only; no mocks."""

from __future__ import annotations

import ast
import fcntl
import functools
import json
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import detected_sandbox, expected_sandbox_mode, require_bwrap
from direng_kernel.errors import DirEngError
from direng_kernel.pas.allowlist import Allowlist, Limits
from direng_kernel.pas.sandbox import (
    OUTPUT_LIMIT,
    SCRATCH,
    CommandDenied,
    SandboxError,
    SandboxInfo,
    apply_process_limits,
    probe,
    reset_probe,
    run_command,
)

SCRIPTS = {
    "hello.py": "import os, sys\nprint('hello', os.getcwd(), *sys.argv[1:])\n",
    # The parent sleeps; its child, which would outlive a plain kill of the parent, holds an
    # exclusive lock on argv[1] for as long as it lives (the kernel drops the lock with it).
    "tree.py": """
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "child.py", sys.argv[1]])
        while not os.path.exists(sys.argv[1] + ".locked"):
            time.sleep(0.01)
        print("started", flush=True)
        time.sleep(60)
    """,
    "child.py": """
        import fcntl, sys, time
        held = open(sys.argv[1], "w")
        fcntl.flock(held, fcntl.LOCK_EX)
        open(sys.argv[1] + ".locked", "w").close()
        time.sleep(60)
    """,
    "alloc.py": "data = bytearray(2 * 1024 ** 3)\nprint('allocated')\n",
    "spin.py": "while True:\n    pass\n",
    "write.py": """
        import sys
        for path in sys.argv[1:]:
            try:
                open(path, "w").write("x")
                print(path, "ok")
            except OSError as err:
                print(path, type(err).__name__, err.strerror)
    """,
    "connect.py": """
        import socket, sys
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
        except OSError as err:
            print("refused", type(err).__name__)
            sys.exit(3)
        print("connected")
    """,
    "big.py": "import sys\nsys.stdout.write('x' * 3_000_000)\n",
    "env.py": "import json, os, sys\nprint(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))\n",
    "limits.py": "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU))\n",
}


def lane(network: bool = False, **limits: Any) -> Allowlist:
    """A test lane: python runs script files; echo; touch is allowed but also denied."""
    return Allowlist.parse({
        "lane": "test",
        "network": network,
        "env": ["FOO"],
        "limits": {"timeout_s": 60, "memory_mb": 512, "cpu_s": 60, **limits},
        "allow": [
            {"id": "script", "argv": ["python*", "*.py", "**"], "examples": {"match": [["python3", "x.py"]]}},
            {"id": "echo", "argv": ["echo", "**"]},
            {"id": "touch", "argv": ["touch", "*"]},
            {"id": "missing", "argv": ["no-such-program-direng"]},
        ],
        "deny": [{"id": "no-touch", "argv": ["touch", "**"]}],
    })


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    for name, body in SCRIPTS.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    (tmp_path / "work").mkdir()
    return tmp_path


@pytest.fixture(params=["bwrap", "rlimits"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "bwrap":
        require_bwrap()  # a failure, not a skip, where bubblewrap is required
    monkeypatch.setenv("DIRENG_SANDBOX", request.param)
    return {"bwrap": "bubblewrap", "rlimits": "rlimits-only"}[request.param]


def run_script(scripts: Path, name: str, *args: str, allowlist: Allowlist | None = None, **kw: Any):
    kw.setdefault("writable", [scripts / "work"])
    return run_command([sys.executable, name, *args], cwd=scripts, allowlist=allowlist or lane(),
                       env=kw.pop("env", None), **kw)


# --- probe ------------------------------------------------------------------------------------

def test_probe_detects_a_mode_and_env_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    info = detected_sandbox()
    assert info.mode == expected_sandbox_mode() and info.mode in ("bubblewrap", "rlimits-only") and info.reason
    if shutil.which("bwrap") is None:
        assert info.reason == "bwrap not installed"
    if info.mode == "bubblewrap":
        assert info.bwrap and info.bwrap_version and info.bwrap_version.startswith("bubblewrap")
    monkeypatch.setenv("DIRENG_SANDBOX", "rlimits")
    assert probe().mode == "rlimits-only"
    monkeypatch.setenv("DIRENG_SANDBOX", "off")
    assert probe().mode == "off"
    monkeypatch.setenv("DIRENG_SANDBOX", "chroot")
    with pytest.raises(SandboxError, match="expected off, rlimits or bwrap"):
        probe()
    monkeypatch.setenv("DIRENG_SANDBOX", "bwrap")
    if info.mode == "bubblewrap":
        assert probe().mode == "bubblewrap"
    else:
        with pytest.raises(SandboxError, match="bubblewrap is unusable here"):
            probe()


def test_probe_falls_back_when_bwrap_is_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DIRENG_SANDBOX", raising=False)
    reset_probe()
    try:
        assert probe() == SandboxInfo(mode="rlimits-only", reason="bwrap not installed")
        monkeypatch.setenv("DIRENG_SANDBOX", "bwrap")
        with pytest.raises(SandboxError, match="DIRENG_SANDBOX=bwrap but bubblewrap is unusable here: bwrap not installed"):
            probe()
    finally:
        reset_probe()


# --- running and denying ------------------------------------------------------------------------

def test_allowed_command_runs_and_returns_output(scripts: Path, mode: str) -> None:
    result = run_command(["echo", "hello"], cwd=scripts, writable=[], allowlist=lane(), env=None)
    assert (result.returncode, result.stdout, result.sandbox) == (0, "hello\n", mode)
    assert not result.timed_out and result.denied_by is None and result.network is False
    script = run_script(scripts, "hello.py", "a b")
    assert script.returncode == 0 and script.stdout == f"hello {scripts.resolve()} a b\n"


def test_denied_command_raises_and_never_starts(scripts: Path, mode: str) -> None:
    target = scripts / "work" / "created"
    with pytest.raises(CommandDenied) as err:
        run_command(["touch", str(target)], cwd=scripts, writable=[scripts / "work"], allowlist=lane(), env=None)
    assert str(err.value) == f"command denied by rule deny:no-touch: touch {target}"
    assert isinstance(err.value, DirEngError) and not target.exists()
    assert (err.value.result.denied_by, err.value.result.returncode) == ("deny:no-touch", 126)
    with pytest.raises(CommandDenied, match=r"^command denied by rule deny:curl: curl https://example.invalid/x$"):
        run_command(["curl", "https://example.invalid/x"], cwd=scripts, writable=[], allowlist=lane(), env=None)
    with pytest.raises(CommandDenied, match="rule deny:python-c"):
        run_command([sys.executable, "-c", "open('x','w')"], cwd=scripts, writable=[], allowlist=lane(), env=None)
    with pytest.raises(CommandDenied, match="rule default-deny"):
        run_command(["ls"], cwd=scripts, writable=[], allowlist=lane(), env=None)


def lock_is_free(path: Path, wait_s: float = 10) -> bool:
    """Can this process take the exclusive lock on `path` (within `wait_s`)? Only once every
    process holding it is gone."""
    with open(path) as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)


def test_timeout_kills_the_whole_process_tree(scripts: Path, mode: str) -> None:
    """(How soon the tree dies after the timeout: benchmarks/safety_bench.py.)"""
    lock = scripts / "work" / "grandchild.lock"
    result = run_script(scripts, "tree.py", str(lock), timeout_s=3)
    assert result.timed_out and result.returncode != 0 and result.stdout == "started\n"
    assert (scripts / "work" / "grandchild.lock.locked").exists()  # the grandchild ran and took the lock
    assert lock_is_free(lock)  # ... and is gone: it would hold the lock for a minute


def test_lane_timeout_caps_a_longer_requested_one(scripts: Path, mode: str) -> None:
    result = run_script(scripts, "spin.py", allowlist=lane(timeout_s=1), timeout_s=240)
    # spin.py never ends: the lane's 1 s, not the requested 240 s, ended it
    assert result.timed_out and result.returncode != 0 and result.duration_s < 120


def test_memory_limit_stops_a_large_allocation(scripts: Path, mode: str) -> None:
    result = run_script(scripts, "alloc.py", allowlist=lane(memory_mb=256))
    assert result.returncode != 0 and "MemoryError" in result.stderr and "allocated" not in result.stdout
    assert not result.timed_out


def test_cpu_limit_stops_a_busy_loop(scripts: Path, mode: str) -> None:
    result = run_script(scripts, "spin.py", allowlist=lane(cpu_s=1, timeout_s=60))
    # spin.py never ends by itself: the 1 s CPU limit killed it before the 60 s wall timeout
    assert result.returncode != 0 and not result.timed_out


def test_environment_is_not_inherited(scripts: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIRENG_TEST_SECRET", "s3cret")
    result = run_script(scripts, "env.py", "DIRENG_TEST_SECRET", "FOO", "HOME", env={"FOO": "bar"})
    assert json.loads(result.stdout) == {"DIRENG_TEST_SECRET": None, "FOO": "bar", "HOME": SCRATCH}


def test_output_is_truncated_to_the_limit(scripts: Path, mode: str) -> None:
    result = run_script(scripts, "big.py")
    assert result.returncode == 0 and len(result.stdout) == OUTPUT_LIMIT and result.stdout_truncated
    assert not result.stderr_truncated


def test_bad_requests_are_sandbox_errors(scripts: Path) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        run_command(["echo"], cwd=scripts / "absent", writable=[], allowlist=lane(), env=None)
    with pytest.raises(SandboxError, match="writable path .* does not exist"):
        run_command(["echo"], cwd=scripts, writable=[scripts / "absent"], allowlist=lane(), env=None)
    with pytest.raises(SandboxError, match="refusing to make / writable"):
        run_command(["echo"], cwd=scripts, writable=[Path("/")], allowlist=lane(), env=None)
    with pytest.raises(SandboxError, match="network: false"):
        run_command(["echo"], cwd=scripts, writable=[], allowlist=lane(), env=None, network=True)


def test_a_program_missing_from_the_trusted_path_is_denied(scripts: Path, mode: str) -> None:
    with pytest.raises(CommandDenied) as err:
        run_command(["no-such-program-direng"], cwd=scripts, writable=[], allowlist=lane(), env=None)
    assert err.value.decision.rule == "deny:untrusted-program" and "no-such-program-direng" in err.value.result.stderr


def test_apply_process_limits_as_preexec_fn(scripts: Path) -> None:
    def run(preexec: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "limits.py"], cwd=scripts, preexec_fn=preexec, capture_output=True, text=True)

    def observed(preexec: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        (memory, cpu) = ast.literal_eval(run(preexec).stdout.strip().replace(") (", "), ("))
        return memory, cpu

    def check(memory: tuple[int, int], cpu: tuple[int, int]) -> None:
        assert memory == (300 * 2**20, 300 * 2**20)  # 300 MB of address space, soft and hard
        # 7 CPU seconds, then SIGXCPU; a finite hard limit above it, so a process that ignores
        # SIGXCPU is still killed
        assert cpu[0] == 7 and 7 < cpu[1] != resource.RLIM_INFINITY

    check(*observed(functools.partial(apply_process_limits, Limits(memory_mb=300, cpu_s=7))))
    limits = {"timeout_s": 60, "memory_mb": 300, "cpu_s": 7, "max_parallel": 1}  # the dict form works too
    check(*observed(lambda: apply_process_limits(limits)))

    def lowered_first() -> None:  # a hard limit below the lane's: capped, never raises
        resource.setrlimit(resource.RLIMIT_AS, (200 * 2**20, 200 * 2**20))
        apply_process_limits(limits)
        apply_process_limits({"memory_mb": "lots"})  # unusable limits are skipped, not raised

    out = run(lowered_first)
    assert out.returncode == 0 and out.stdout.startswith("(209715200, 209715200)")


# --- bubblewrap only --------------------------------------------------------------------------

@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A real host folder outside the sandbox's scratch tmpfs and outside the test's writable dirs."""
    base = next((p for p in (Path.home(), Path("/tmp")) if p.is_dir() and p != Path(SCRATCH)), None)
    path = Path(tempfile.mkdtemp(prefix="direng-sbx-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_bwrap_root_is_read_only_and_writable_dirs_are_writable(
    scripts: Path, outside_dir: Path, bubblewrap: SandboxInfo
) -> None:
    inside, outside, cwd_file = scripts / "work" / "in.txt", outside_dir / "out.txt", scripts / "cwd.txt"
    private_tmp = Path(SCRATCH) / f"direng-sbx-{uuid.uuid4().hex}.txt"
    result = run_script(scripts, "write.py", str(inside), str(outside), str(cwd_file), str(private_tmp))
    lines = result.stdout.splitlines()
    assert lines[0] == f"{inside} ok"
    assert lines[1] == f"{outside} OSError Read-only file system"
    assert lines[2] == f"{cwd_file} OSError Read-only file system"
    assert lines[3] == f"{private_tmp} ok"  # the sandbox's own scratch dir ...
    assert inside.read_text() == "x" and not outside.exists() and not cwd_file.exists()
    assert not private_tmp.exists()  # ... is not the host's


def test_bwrap_unshares_the_network(
    scripts: Path, bubblewrap: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # on the host's loopback, outside the sandbox
        port = str(server.getsockname()[1])
        offline = run_script(scripts, "connect.py", port)
        assert (offline.returncode, offline.stdout, offline.network) == (3, "refused ConnectionRefusedError\n", False)
        online = run_script(scripts, "connect.py", port, allowlist=lane(network=True))
        assert (online.returncode, online.stdout, online.network) == (0, "connected\n", True)
        monkeypatch.setenv("DIRENG_SANDBOX", "rlimits")  # documented: rlimits-only does not isolate the network
        assert run_script(scripts, "connect.py", port).stdout == "connected\n"
