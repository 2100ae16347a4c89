"""The helpers a lane notebook uses: `from direng_kernel.pas import lane as pas`.

A lane runs in a papermill kernel started by PAS's executor, which describes the run through
environment variables (`DIRENG_ROOT`, `DIRENG_STORE`, `DIRENG_RUN_DIR`, `DIRENG_LANE`,
`DIRENG_RUN_ID`, `DIRENG_TASK_ID`, `DIRENG_REPLAY`). Everything a lane reports goes into
plain files in its run folder, which the executor reads while and after the lane runs:

- `commands.jsonl` — every program the lane ran (`run_command`, the only way to run one),
- `kpis.jsonl` — its KPIs (`kpi`), checked against the lane's quality gates,
- `outputs.jsonl` — its artifacts (`artifact`), moved into the content-addressed store,
- `events.jsonl` — its log lines (`log`), streamed as task events,
- `provider_responses/NNN.json` — model responses (`complete`), served again on replay.

Sandboxed programs may write only below `work_dir` (`<run folder>/work`), never the run
folder itself: so what a hostile program writes can never pose as one of these records, and
every file the lane writes here goes through `direng_kernel.confined` (no-follow, atomic), so a
planted link is replaced, never written through.

Lanes must be deterministic for the same repository state (a replay compares outputs by hash),
so nothing here stamps times or random ids into what a lane produces; only `commands.jsonl`,
which is a diagnostic and never an artifact, records durations.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from pathlib import Path
from typing import Iterable, Optional, Sequence

from pydantic import BaseModel

from .. import confined
from ..errors import DirEngError

WORK_DIR = "work"
KPI_NAME = re.compile(r"^[a-z0-9_]+$")
_lock = threading.Lock()
_responses_served = 0  # replay: how many recorded responses this process has served


class LaneContextError(DirEngError):
    """A lane helper was called outside a lane run (the executor's environment is missing)."""


class LaneError(DirEngError):
    """A lane helper was misused: a bad KPI, an artifact outside the run folder, …"""


class LaneContext(BaseModel):
    """Where this lane run lives, from the executor's environment."""

    root: Path
    store: Path
    run_dir: Path
    lane: str
    run_id: str = ""
    task_id: str = ""
    replay: bool = False
    policy: Optional[Path] = None
    recorded_responses: Optional[Path] = None
    allowlist: Optional[Path] = None  # the lane's allowlist file, as the executor's lane registry found it
    route: str = ""  # the lane's broker policy route name, likewise

    @property
    def work_dir(self) -> Path:
        """The one folder of the run that sandboxed programs may write (worktrees, scratch)."""
        return self.run_dir / WORK_DIR


def context() -> LaneContext:
    """The current run, from `DIRENG_*` variables; LaneContextError outside a lane run."""
    env = os.environ
    missing = [v for v in ("DIRENG_ROOT", "DIRENG_RUN_DIR", "DIRENG_LANE") if not env.get(v)]
    if missing:
        raise LaneContextError(
            f"not inside a lane run: {', '.join(missing)} not set (PAS's executor sets DIRENG_ROOT, "
            "DIRENG_STORE, DIRENG_RUN_DIR, DIRENG_LANE, DIRENG_RUN_ID and DIRENG_TASK_ID when it runs a lane)")
    root = Path(env["DIRENG_ROOT"]).expanduser().resolve()
    run_dir = Path(env["DIRENG_RUN_DIR"]).expanduser().resolve()
    if not run_dir.is_dir():
        raise LaneContextError(f"DIRENG_RUN_DIR {run_dir} is not a directory")
    if env.get("DIRENG_STORE"):
        store = Path(env["DIRENG_STORE"]).expanduser().resolve()
    else:
        from ..config import IndexSettings

        store = IndexSettings.for_root(root).store
    recorded = env.get("DIRENG_RECORDED_RESPONSES")
    return LaneContext(
        root=root, store=store, run_dir=run_dir, lane=env["DIRENG_LANE"],
        run_id=env.get("DIRENG_RUN_ID", ""), task_id=env.get("DIRENG_TASK_ID", ""),
        replay=env.get("DIRENG_REPLAY", "") == "1",
        policy=Path(env["DIRENG_POLICY"]).expanduser() if env.get("DIRENG_POLICY") else None,
        recorded_responses=Path(recorded).expanduser() if recorded else None,
        allowlist=Path(env["DIRENG_LANE_ALLOWLIST"]) if env.get("DIRENG_LANE_ALLOWLIST") else None,
        route=env.get("DIRENG_LANE_ROUTE", ""),
    )


def lane_allowlist():
    """This run's allowlist: the file the executor named (`DIRENG_LANE_ALLOWLIST`), else the one
    the lane registry finds for the lane (a lane run by hand)."""
    from .allowlist import load_lane_allowlist, read_lane_allowlist

    ctx = context()
    return read_lane_allowlist(ctx.allowlist, ctx.lane) if ctx.allowlist else load_lane_allowlist(ctx.lane)


def _append(name: str, record: dict) -> None:
    line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    with _lock:
        confined.append_bytes(context().run_dir, name, line.encode("utf-8"))


# -- log and KPIs ---------------------------------------------------------------------------


def log(message: str, **data) -> None:
    """A log line for the task's event stream (`events.jsonl`); also printed to the notebook."""
    message = str(message)
    print(message, flush=True)
    _append("events.jsonl", {"message": message, **({"data": data} if data else {})})


def kpi(name: str, value: float) -> float:
    """Record KPI `name` (`[a-z0-9_]+`) as a finite number (`kpis.jsonl`); returns the float."""
    if not isinstance(name, str) or not KPI_NAME.match(name):
        raise LaneError(f"bad KPI name {name!r}: use lower-case letters, digits and underscores")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            raise LaneError(f"KPI {name}: value must be a number, got {type(value).__name__}") from None
    value = float(value)
    if not math.isfinite(value):
        raise LaneError(f"KPI {name}: value must be finite, got {value}")
    _append("kpis.jsonl", {"name": name, "value": value})
    return value


# -- artifacts -----------------------------------------------------------------------------


def artifact(path: str | os.PathLike, name: Optional[str] = None) -> Path:
    """Declare a file this run produced as an output artifact (`outputs.jsonl`).

    The file must lie inside the run folder and be reached without a symlink; anything else —
    `..`, a link, a special file — is refused. `name` defaults to the path relative to the run
    folder, which is how the passport labels it. The executor checks the same again when it
    stores the file, since a sandboxed program may have changed `work_dir` since."""
    ctx = context()
    try:
        parts = confined.relative_parts(ctx.run_dir, path, follow_links=False)
        os.close(confined.open_file(ctx.run_dir, Path(*parts), follow_links=False))
    except confined.ConfinementError as exc:
        raise LaneError(f"artifact {path} refused: it is outside the run folder {ctx.run_dir}, reached through "
                        f"a link, or not a plain file ({exc})") from None
    except OSError as exc:
        raise LaneError(f"artifact {path} does not exist or is not readable: {exc.strerror or exc}") from None
    rel = Path(*parts)
    resolved = ctx.run_dir / rel
    label = name or rel.as_posix()
    _append("outputs.jsonl", {"path": rel.as_posix(), "name": label, "size": resolved.lstat().st_size})
    return resolved


# -- commands ------------------------------------------------------------------------------


def run_command(argv: Sequence[str], cwd: str | os.PathLike | None = None,
                writable: Iterable[str | os.PathLike] = (), *, timeout_s: float | None = None,
                check: bool = False, env: dict | None = None):
    """Run a program through the lane's allowlist and sandbox; the only way a lane runs one.

    `cwd` defaults to the repository root; the run's `work_dir` is always writable, `writable`
    adds more — but never the run folder itself nor a folder holding it, where the lane keeps its
    records. A command the allowlist refuses raises `CommandDenied` naming the rule (and fails
    the run unless the lane catches it). Every command — denied ones included — is recorded in
    `commands.jsonl`. With `check`, a non-zero exit raises LaneError with the command's stderr.
    Returns the sandbox's `CommandResult` (argv, returncode, stdout, stderr, duration_s, …).
    """
    from .sandbox import CommandDenied
    from .sandbox import run_command as sandbox_run

    ctx = context()
    argv = [str(a) for a in argv]
    workdir = Path(cwd).resolve() if cwd is not None else ctx.root
    paths = [ctx.work_dir, *(Path(w).resolve() for w in writable)]
    for path in paths[1:]:
        if path == ctx.run_dir or ctx.run_dir.is_relative_to(path) or (
                path.is_relative_to(ctx.run_dir) and not path.is_relative_to(ctx.work_dir)):
            raise LaneError(f"writable path {path} would let the command write the run folder's records; "
                            f"sandboxed programs write only under {ctx.work_dir}")
    ctx.work_dir.mkdir(exist_ok=True)
    record: dict = {"argv": argv, "cwd": str(workdir)}
    try:
        result = sandbox_run(argv, cwd=workdir, writable=paths, allowlist=lane_allowlist(),
                             env=env, timeout_s=timeout_s)
    except CommandDenied as exc:
        record.update(denied=str(exc))
        _append("commands.jsonl", record)
        from ..security import audit

        audit.record("command.denied", actor=f"lane:{ctx.lane}", run_id=ctx.run_id, argv=argv, reason=str(exc))
        raise
    record.update(returncode=result.returncode, duration_s=round(float(result.duration_s or 0.0), 3),
                  sandbox=str(getattr(result, "sandbox", "")), timed_out=bool(getattr(result, "timed_out", False)))
    _append("commands.jsonl", record)
    if check and result.returncode != 0:
        raise LaneError(f"`{' '.join(argv)}` exited with {result.returncode}: {_text(result.stderr).strip()[-2000:]}")
    return result


def secret(name: str) -> str:
    """A vault secret, for lanes whose allowlist names it (`secrets: [NAME]`); refused otherwise.

    The value is registered with the redactor first, so it can never reach an output, an
    event, a log or the passport — only the marker `[secret:NAME]` can."""
    from ..security.scrub import register_secret
    from ..security.vault import Vault

    ctx = context()
    if name not in lane_allowlist().secrets:
        raise LaneError(f"lane {ctx.lane} may not read secret {name!r}: its allowlist does not name it")
    value = Vault().get(name)
    register_secret(name, value)
    return value


def _text(data) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else (data or "")


# -- the index -----------------------------------------------------------------------------


def workbench():
    """The code index of the run's repository (`direng_kernel.workbench.Workbench`)."""
    from ..workbench import Workbench

    ctx = context()
    return Workbench(ctx.root, ctx.store)


# -- models --------------------------------------------------------------------------------


def policy_lane(lane: str) -> str:
    """The broker policy's name for a lane (`code-impl` → `Code-Impl`; a user lane's route from the
    lane registry); a name that is none of these is taken as it is."""
    from ..models import LANES
    from .lanes import registry

    builtin = {name.lower(): name for name in LANES}.get(lane.lower())
    if builtin is not None:
        return builtin
    try:
        return registry.get(lane).route
    except DirEngError:
        return lane


def complete(prompt: str, lane: Optional[str] = None, *, system: Optional[str] = None,
             max_output_tokens: int = 1024) -> Optional[str]:
    """A generative model's answer to `prompt`, or None when the lane has no model.

    The lane's route comes from the broker policy (`DIRENG_POLICY`, else the embedded
    default). When its primary provider is `local` (the default) nothing is called and the
    result is None: lanes do their real work without a model and use this only to add to it.
    Each response is recorded as `provider_responses/NNN.json`; on replay (`DIRENG_REPLAY=1`)
    the recorded responses (`DIRENG_RECORDED_RESPONSES`) are served in order instead, and
    None once they run out. A broker failure is logged and gives None.
    """
    global _responses_served
    ctx = context()
    out_dir = ctx.run_dir / "provider_responses"
    if ctx.replay:
        recorded = sorted(ctx.recorded_responses.glob("*.json")) if ctx.recorded_responses else []
        with _lock:
            index = _responses_served
            if index >= len(recorded):
                return None
            _responses_served += 1
        raw = recorded[index].read_bytes()
        # the replay's passport records it again
        confined.write_bytes(ctx.run_dir, f"provider_responses/{index + 1:03d}.json", raw)
        return json.loads(raw).get("response", {}).get("content") or ""

    from ..broker import Broker, BrokerError
    from ..broker.policy import policy_for
    from ..models import ChatMessage, ProviderRequest

    from .lanes import registry

    routes = [*registry.extra_routes(), *([ctx.route] if ctx.route else [])]
    policy = policy_for(ctx.policy, routes)
    name = policy_lane(lane) if lane else (ctx.route or policy_lane(ctx.lane))
    resolved = policy.resolve(name)
    if resolved is None or not resolved.chain:
        return None
    primary = policy.providers.get(resolved.chain[0].provider)
    if primary is None or primary.type == "local":
        return None
    from .. import contracts

    try:  # the model works under PEX's contract, then whatever the lane adds
        contract = contracts.load(contracts.PEX)
    except contracts.ContractError as exc:
        log(f"model not consulted for lane {name}: {exc}")
        return None
    messages = [ChatMessage(role="system", content=contract.text),
                *([ChatMessage(role="system", content=system)] if system else []),
                ChatMessage(role="user", content=prompt)]
    request = ProviderRequest(lane=name, messages=messages, max_output_tokens=max_output_tokens, temperature=0.0,
                              contract_version=contract.version)
    factor = float(os.environ.get("DIRENG_BUDGET_FACTOR") or 1.0)
    broker = Broker(policy, usage_log=ctx.run_dir / "provider_usage.jsonl", budget_factor=factor)
    try:
        response = broker.complete(request, task_id=ctx.task_id or None)
    except BrokerError as exc:
        log(f"model unavailable for lane {name}: {exc}")
        over = [a for a in exc.attempts if a.reason.startswith("over budget")]
        if over:  # the run goes on without the model; PEX escalates it at the end (raise the budget?)
            escalate("budget", f"a model call of lane {name} would exceed its budget",
                     {"lane": name, "refusals": [f"{a.route}: {a.reason}" for a in over],
                      "budgets": resolved.budgets.model_dump(), "budget_factor": factor})
        return None
    finally:
        broker.close()
    with _lock:
        number = len(list(out_dir.glob("*.json"))) + 1 if out_dir.is_dir() else 1
        record = {"lane": name, "request": request.model_dump(mode="json"),
                  "response": response.model_dump(mode="json")}
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        confined.write_bytes(ctx.run_dir, f"provider_responses/{number:03d}.json", text.encode("utf-8"))
    return response.content


ESCALATIONS = "escalations.jsonl"


def escalate(kind: str, message: str, evidence: dict) -> None:
    """Ask PEX to escalate this run to the user when it ends (`escalations.jsonl` in the run
    folder; the executor reads it): `kind` is one of models.ESCALATION_KINDS."""
    _append(ESCALATIONS, {"kind": kind, "message": message, "evidence": evidence})


# -- small helpers lanes share ------------------------------------------------------------


def save_text(relpath: str, text: str) -> Path:
    """Write `text` to `run_dir/relpath` (folders created, atomically, never through a link)."""
    try:
        return confined.write_bytes(context().run_dir, relpath, text.encode("utf-8"))
    except confined.ConfinementError as exc:
        raise LaneError(f"cannot write {relpath}: {exc}") from None


def write_text(relpath: str, text: str, *, name: Optional[str] = None) -> Path:
    """`save_text`, then declare the file an artifact."""
    return artifact(save_text(relpath, text), name=name)


def write_json(relpath: str, data, *, name: Optional[str] = None) -> Path:
    """Write `data` as canonical JSON (sorted keys, 2-space indent) and declare it an artifact."""
    return write_text(relpath, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", name=name)
