"""Run a lane's allowed commands in a sandbox: bubblewrap where it works, rlimits otherwise.

Every command first goes through the lane's `Allowlist`; a denied one raises `CommandDenied`
and is never started. An allowed one runs with the lane's resource limits (RLIMIT_AS from
`memory_mb`, RLIMIT_CPU from `cpu_s`) and a wall-clock timeout that kills its whole process
group. Under bubblewrap it also gets a read-only view of `/`, a private scratch `/var/tmp`, `/dev` and
`/proc`, write access only to the given `writable` folders, no network (a private loopback
only) unless the lane allows it, its own user/pid/ipc namespaces with every capability
dropped, and it dies with its parent. `probe()` picks the mode once per process;
`DIRENG_SANDBOX=off|rlimits|bwrap` overrides it.

Programs are found through a fixed trusted PATH (`trusted_path()`), never the caller's: a bare
name is resolved there, an absolute argv[0] must lie in one of its folders, and a relative one
(`bin/git`, `./python3`) is refused — so a program a lane or its tests planted can never pass
for an allowed one by its basename. The resolved path is what runs. See docs/lanes-security.md.
"""

from __future__ import annotations

import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from ..errors import DirEngError
from .allowlist import Allowlist, Decision, Limits, show_argv

SANDBOX_ENV = "DIRENG_SANDBOX"
OUTPUT_LIMIT = 1 << 20  # bytes kept of stdout and of stderr each
DENIED_RETURNCODE = 126
Mode = Literal["bubblewrap", "rlimits-only", "off"]

# Namespaces and mounts of every bubblewrap run (and of the probe, so a passing probe means
# runs work). --unshare-user + --cap-drop ALL: a root caller must not keep CAP_SYS_ADMIN,
# or the sandbox could simply remount / read-write.
# The private scratch space is a tmpfs over /var/tmp, not /tmp: the host's /tmp stays visible
# (read-only), because checkouts, virtualenvs and git worktrees often live there (CI clones
# into /tmp) and hiding it would hide the very interpreter and repository a lane runs.
SCRATCH = "/var/tmp" if os.path.isdir("/var/tmp") else "/tmp"
_BWRAP_BASE = (
    "--unshare-user", "--cap-drop", "ALL", "--unshare-pid", "--unshare-ipc",
    "--die-with-parent", "--new-session",
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", SCRATCH,
)


class SandboxError(DirEngError):
    """The sandbox cannot run a command as asked (bad mode, cwd, writable path, network)."""


class CommandDenied(DirEngError):
    """The lane's allowlist refused the command; it was not run. Carries the decision and a result."""

    def __init__(self, argv: Sequence[str], decision: Decision, result: "CommandResult"):
        self.argv = list(argv)
        self.decision = decision
        self.result = result
        super().__init__(f"command denied by rule {decision.rule}: {show_argv(argv)}")


class SandboxInfo(BaseModel):
    """Which sandbox runs commands here, and why (goes into the run passport)."""

    model_config = ConfigDict(frozen=True)
    mode: Mode
    reason: str
    bwrap: str | None = None
    bwrap_version: str | None = None


class CommandResult(BaseModel):
    """One command's outcome; stdout/stderr keep the first OUTPUT_LIMIT bytes each."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    sandbox: str
    denied_by: str | None = None
    timed_out: bool = False
    network: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False


# --- choosing the mode --------------------------------------------------------------------

@lru_cache(maxsize=1)
def _detect() -> SandboxInfo:
    """Is bwrap on PATH, and does a sandbox with all our namespaces actually start here?"""
    path = shutil.which("bwrap")
    if not path:
        return SandboxInfo(mode="rlimits-only", reason="bwrap not installed")
    try:
        proc = subprocess.run([path, *_BWRAP_BASE, "--unshare-net", "true"], cwd="/", capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return SandboxInfo(mode="rlimits-only", reason=f"bwrap failed to start: {err}", bwrap=path)
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"bwrap exited with status {proc.returncode}"
        return SandboxInfo(mode="rlimits-only", reason=reason, bwrap=path)
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        version = None
    return SandboxInfo(mode="bubblewrap", reason="bwrap works here", bwrap=path, bwrap_version=version)


def reset_probe() -> None:
    """Forget the cached detection (after installing bwrap, or in tests that change PATH)."""
    _detect.cache_clear()


def probe() -> SandboxInfo:
    """The sandbox mode for this process: the cached detection, unless `DIRENG_SANDBOX` forces
    one (`off`: no namespaces, no rlimits; `rlimits`; `bwrap`: an error if it does not work)."""
    raw = os.environ.get(SANDBOX_ENV, "")
    choice = raw.strip().lower()
    if choice in ("", "auto"):
        return _detect()
    if choice in ("off", "none"):
        return SandboxInfo(mode="off", reason=f"{SANDBOX_ENV}={raw}: no sandbox and no rlimits, only the timeout")
    if choice in ("rlimits", "rlimits-only"):
        return SandboxInfo(mode="rlimits-only", reason=f"{SANDBOX_ENV}={raw}")
    if choice in ("bwrap", "bubblewrap"):
        info = _detect()
        if info.mode != "bubblewrap":
            raise SandboxError(f"{SANDBOX_ENV}={raw} but bubblewrap is unusable here: {info.reason}")
        return info.model_copy(update={"reason": f"{SANDBOX_ENV}={raw}"})
    raise SandboxError(f"{SANDBOX_ENV}={raw!r}: expected off, rlimits or bwrap")


# --- programs -------------------------------------------------------------------------------

TRUSTED_PATH_ENV = "DIRENG_TRUSTED_PATH"
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def trusted_path() -> tuple[str, ...]:
    """Folders programs may come from: `DIRENG_TRUSTED_PATH` if set, else the running
    interpreter's folder (lanes run `sys.executable -m pytest`) and the system folders."""
    raw = os.environ.get(TRUSTED_PATH_ENV)
    dirs = raw.split(os.pathsep) if raw else [os.path.dirname(os.path.abspath(sys.executable)), *SYSTEM_PATH]
    return tuple(dict.fromkeys(os.path.normpath(d) for d in dirs if d and os.path.isabs(d)))


def resolve_program(program: str) -> str | None:
    """The absolute path that runs for argv[0], or None when it is not a trusted program."""
    dirs = trusted_path()
    if "/" not in program:
        found = shutil.which(program, path=os.pathsep.join(dirs))
        return os.path.normpath(found) if found else None
    if not os.path.isabs(program) or os.path.normpath(program) != program.rstrip("/") or ".." in program.split("/"):
        return None
    if os.path.dirname(program) in dirs and os.path.isfile(program) and os.access(program, os.X_OK):
        return program
    return None


def _deny(argv: Sequence[str], decision: Decision) -> "CommandDenied":
    result = CommandResult(argv=[str(a) for a in argv], returncode=DENIED_RETURNCODE, stdout="",
                           stderr=decision.reason, duration_s=0.0, sandbox="not-run", denied_by=decision.rule)
    return CommandDenied(result.argv, decision, result)


# --- limits ---------------------------------------------------------------------------------

def apply_process_limits(limits: Limits | Mapping[str, Any]) -> None:
    """Set RLIMIT_AS (memory_mb), RLIMIT_CPU (cpu_s; hard limit 5 s later) and no core dumps on
    the *current* process: call it in the child, e.g.
    `Popen(..., preexec_fn=functools.partial(apply_process_limits, lane.limits))`.
    Accepts a `Limits` or its dict. Never raises: a limit above the existing hard limit is
    capped to it, and anything that cannot be set is skipped."""
    try:
        memory_mb = int(limits.memory_mb if isinstance(limits, Limits) else limits.get("memory_mb", 2048))
        cpu_s = int(limits.cpu_s if isinstance(limits, Limits) else limits.get("cpu_s", 600))
    except Exception:  # noqa: BLE001 - a preexec_fn must never raise
        return
    memory = memory_mb * 1024 * 1024
    for res, soft, hard in ((resource.RLIMIT_AS, memory, memory), (resource.RLIMIT_CPU, cpu_s, cpu_s + 5),
                            (resource.RLIMIT_CORE, 0, 0)):
        try:
            _, current_hard = resource.getrlimit(res)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError):
            pass


# --- running --------------------------------------------------------------------------------

def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    writable: Sequence[Path],
    allowlist: Allowlist,
    env: Mapping[str, str] | None = None,
    network: bool | None = None,
    timeout_s: float | None = None,
) -> CommandResult:
    """Check `argv` against the allowlist, then run it in the sandbox and collect its result.

    The environment is NOT inherited: the trusted PATH, HOME and TMPDIR = the scratch dir, a
    UTF-8 locale, plus those of `env` that the allowlist's `env` list allows (any other is
    denied). argv[0] is resolved through the trusted PATH and runs by that absolute path.
    `network` and `timeout_s` can only narrow what the lane allows. Raises CommandDenied
    (never started) or SandboxError (bad cwd/writable/network request); a program that exits
    non-zero, is killed, or times out is a result, not an error.
    """
    args = list(argv) if isinstance(argv, (list, tuple)) else [argv]
    decision = allowlist.check(args)
    if not decision.allowed:
        raise _deny(args, decision)
    env_decision = allowlist.check_env(env)
    if not env_decision.allowed:
        raise _deny(args, env_decision)
    program = resolve_program(args[0])
    if program is None:
        raise _deny(args, Decision(allowed=False, rule="deny:untrusted-program",
                                   reason=f"{args[0]} is not a program on the trusted PATH "
                                          f"({os.pathsep.join(trusted_path())})"))

    net = allowlist.network if network is None else network
    if net and not allowlist.network:
        raise SandboxError(f"lane {allowlist.lane} has network: false; a command cannot ask for the network")
    limit = float(allowlist.limits.timeout_s if timeout_s is None else min(timeout_s, allowlist.limits.timeout_s))
    if limit <= 0:
        raise SandboxError(f"timeout must be positive, got {timeout_s}")
    workdir = Path(cwd).resolve()
    if not workdir.is_dir():
        raise SandboxError(f"working directory {workdir} does not exist")
    rw = [Path(p).resolve() for p in writable]
    for path in rw:
        if not path.exists():
            raise SandboxError(f"writable path {path} does not exist")
        if path == Path("/"):
            raise SandboxError("refusing to make / writable")
    trusted = trusted_path()
    for path in rw:
        if any(Path(d) == path or Path(d).is_relative_to(path) for d in trusted):
            raise SandboxError(f"writable path {path} holds a trusted program folder")
    full_env = {**(env or {}), "PATH": os.pathsep.join(trusted), "HOME": SCRATCH, "TMPDIR": SCRATCH}
    full_env.setdefault("LANG", "C.UTF-8")
    full_env.setdefault("LC_ALL", "C.UTF-8")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in full_env.items()):
        raise SandboxError("env keys and values must be strings")

    info = probe()
    run_argv = [program, *args[1:]]
    cmd = _bwrap_argv(info.bwrap or "bwrap", run_argv, workdir, rw, net) if info.mode == "bubblewrap" else run_argv
    preexec = None if info.mode == "off" else functools.partial(apply_process_limits, allowlist.limits)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=workdir, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
    except OSError as err:
        return CommandResult(argv=args, returncode=127, stdout="", stderr=f"cannot run {args[0]}: {err.strerror or err}",
                             duration_s=round(time.monotonic() - start, 3), sandbox=info.mode, network=net)
    out, err_out, timed_out = _collect(proc, start + limit)
    return CommandResult(
        argv=args, returncode=proc.returncode, stdout=out[0], stderr=err_out[0],
        duration_s=round(time.monotonic() - start, 3), sandbox=info.mode, timed_out=timed_out, network=net,
        stdout_truncated=out[1], stderr_truncated=err_out[1],
    )


def _bwrap_argv(bwrap: str, argv: list[str], cwd: Path, writable: list[Path], network: bool) -> list[str]:
    """bwrap command line: base isolation, then binds parent-first so nested ones stack."""
    binds = [(p, "--bind") for p in dict.fromkeys(writable)]
    scratch = Path(SCRATCH)
    if (cwd == scratch or scratch in cwd.parents) and not any(cwd == p or p in cwd.parents for p in writable):
        binds.append((cwd, "--ro-bind"))  # the scratch dir is a fresh tmpfs: keep a cwd under it visible
    cmd = [bwrap, *_BWRAP_BASE]
    for path, flag in sorted(binds, key=lambda b: len(b[0].parts)):
        cmd += [flag, str(path), str(path)]
    if not network:
        cmd.append("--unshare-net")
    return [*cmd, "--chdir", str(cwd), "--", *argv]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited_unreaped(pid: int) -> bool:
    """Has the child exited? (WNOWAIT: it stays a zombie, so its group id cannot be reused yet.)"""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _collect(proc: subprocess.Popen[bytes], deadline: float) -> tuple[tuple[str, bool], tuple[str, bool], bool]:
    """Read both pipes (keeping OUTPUT_LIMIT bytes each) until EOF and exit, or kill the group at
    the deadline. Stragglers left in the group after a normal exit are killed too."""
    assert proc.stdout is not None and proc.stderr is not None
    bufs: dict[IO[bytes], bytearray] = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    dropped: dict[IO[bytes], int] = {proc.stdout: 0, proc.stderr: 0}
    timed_out = False
    give_up: float | None = None
    with selectors.DefaultSelector() as sel:
        for pipe in bufs:
            sel.register(pipe, selectors.EVENT_READ)
        while sel.get_map():
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                _kill_group(proc)
                give_up = now + 2.0  # a process that escaped the group may still hold a pipe
            if give_up is not None and now >= give_up:
                break
            for key, _ in sel.select(max((give_up or deadline) - now, 0.0)):
                pipe = key.fileobj
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(pipe)
                    continue
                buf = bufs[pipe]  # type: ignore[index]
                room = max(OUTPUT_LIMIT - len(buf), 0)
                buf += chunk[:room]
                dropped[pipe] += len(chunk) - min(room, len(chunk))  # type: ignore[index]
    for pipe in bufs:
        pipe.close()
    while not timed_out and not _exited_unreaped(proc.pid):
        if time.monotonic() >= deadline:
            timed_out = True
        else:
            time.sleep(0.01)
    _kill_group(proc)
    proc.wait()
    out, err = ((bufs[p].decode("utf-8", "replace"), dropped[p] > 0) for p in (proc.stdout, proc.stderr))
    return out, err, timed_out
