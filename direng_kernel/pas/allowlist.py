"""Per-lane command allowlists: which argv a lane may run, deny first, default deny.

A lane's YAML file (`lanes/allowlists/<lane>.yaml`) lists `allow` and `deny` rules. A rule is
an argv pattern matched element by element: a literal, an fnmatch glob for one argument
(`*`, `?`, `[...]`), or `**` for any run of arguments (zero or more). argv[0] is compared by
its basename, so `/usr/bin/curl` is `curl`. A built-in deny list (shells with `-c`, network
clients, privilege tools, `python -c`, ...) always applies on top of the file's denies, and it
also looks through wrappers (`env A=1 …`, `nice …`, `timeout 5 …`, `xargs …`) at the command
they run. Allow rules are matched on the literal argv only: a wrapper must itself be allowed.
Every rule's `examples` are checked when the file loads, so a file documents itself and cannot
silently drift from what it means.

Environment variables are allowlisted too: a command may set only the names the file's `env`
list allows (fnmatch globs), and never one of `BUILTIN_ENV_DENIES` — variables that make a
program load or run other code (`PATH`, `LD_PRELOAD`, `PYTHONPATH`, `GIT_CONFIG_*`,
`GIT_EXTERNAL_DIFF`, …), which no file can allow. See docs/lanes-security.md.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt, StrictStr, ValidationError,
    field_validator, model_validator,
)

from ..errors import DirEngError
from .lanes import LANE_ID_RE as _LANE_RE
from .lanes import Lane
from .lanes import registry as lane_registry

MAX_ARGS = 4096
_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class AllowlistError(DirEngError):
    """An allowlist file that is missing, unparsable, invalid, or whose examples misbehave."""


# --- patterns ---------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _elem_re(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _glob_problem(pattern: str) -> str | None:
    """Why one pattern element is not a valid glob, or None."""
    if pattern == "":
        return "empty pattern"
    if "**" in pattern and pattern != "**":
        return "'**' must be a whole element"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                j += 1
            if j >= len(pattern):
                return "unclosed '['"
            i = j
        i += 1
    return None


def match_argv(pattern: Sequence[str], argv: Sequence[str]) -> bool:
    """Whole-argv match: each element is a glob for one argument, `**` any run of arguments."""
    n = len(argv)
    pos = {0}
    for p in pattern:
        if p == "**":
            pos = set(range(min(pos), n + 1))
        else:
            rx = _elem_re(p)
            pos = {i + 1 for i in pos if i < n and rx.match(argv[i])}
        if not pos:
            return False
    return n in pos


def _base(arg: str) -> str:
    return posixpath.basename(arg.rstrip("/")) or arg


def _norm(argv: Sequence[str]) -> tuple[str, ...]:
    return (_base(argv[0]), *argv[1:]) if argv else ()


def show_argv(argv: Sequence[str], limit: int = 200) -> str:
    """argv as one shell-quoted line (newlines escaped), shortened to `limit` characters."""
    text = shlex.join(str(a) for a in argv).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- wrappers: commands that run another command ------------------------------------------

WRAPPERS = frozenset({
    "env", "nice", "timeout", "nohup", "setsid", "stdbuf", "ionice", "chrt", "taskset", "time",
    "command", "builtin", "xargs", "busybox", "flock", "strace", "ltrace", "unbuffer", "watch",
    "chroot", "nsenter", "unshare", "runuser", "setpriv", "find", "exec", "sudo", "doas",
})


def _split_string(args: Sequence[str], j: int) -> tuple[list[str], int] | None:
    """`env -S 'cmd args'` / `--split-string=…` at args[j]: the split command and where the rest starts."""
    tok = args[j]
    if tok.startswith("--split-string"):
        value, rest = (tok.split("=", 1)[1], j + 1) if "=" in tok else (args[j + 1] if j + 1 < len(args) else "", j + 2)
    elif tok.startswith("-") and not tok.startswith("--") and "S" in tok:
        value = tok[tok.index("S") + 1:]
        value, rest = (value, j + 1) if value else (args[j + 1] if j + 1 < len(args) else "", j + 2)
    else:
        return None
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    return words, rest


def command_views(argv: Sequence[str], _depth: int = 0) -> list[tuple[str, ...]]:
    """The argv plus every command a leading wrapper may run (all later suffixes), normalized.

    Deliberately over-approximate: for `timeout -s KILL 5 curl x` every suffix is a view, so
    deny rules need not know each wrapper's option syntax.
    """
    views = [_norm(argv)]
    if argv and _base(argv[0]) in WRAPPERS:
        views += [_norm(argv[j:]) for j in range(1, len(argv)) if argv[j]]
        if _depth < 3:
            for j in range(1, len(argv)):
                split = _split_string(argv, j)
                if split and split[0]:
                    views += command_views([*split[0], *argv[split[1]:]], _depth + 1)
    return views


# --- built-in denies ----------------------------------------------------------------------

_SHELL_RE = re.compile(r"^\w*sh[\d.]*$")
_PYTHON_RE = re.compile(r"^(i?python|pypy)[\d.]*$")
_EVAL_FLAGS = {"perl": "eE", "ruby": "e", "node": "ep", "nodejs": "ep", "php": "r", "lua": "e"}
_EVAL_RE = re.compile(r"^(perl|ruby|node|nodejs|php|lua)[\d.]*$")


def _short_flags(tok: str) -> str:
    """The letters of a short-option cluster (`-xc` → `xc`), or '' for anything else."""
    return tok[1:] if len(tok) > 1 and tok[0] == "-" and tok[1] != "-" else ""


def _shell_c(args: Sequence[str]) -> bool:
    for tok in args:
        if tok.startswith("--"):
            if tok.startswith(("--command", "--init-command")):
                return True
        elif tok[:1] in ("-", "+") and any(ch in "cC" for ch in tok[1:]):
            return True
    return False


def _python_c(args: Sequence[str]) -> bool:
    """CPython's own option scan: True when `-c` comes before `-m`, a script, or `-`."""
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--check-hash-based-pycs":
            i += 2
            continue
        if tok in ("-", "--") or not tok.startswith("-"):
            return False
        if not tok.startswith("--"):
            for k, ch in enumerate(tok[1:], start=2):
                if ch == "c":
                    return True
                if ch == "m":
                    return False
                if ch in "WX":
                    i += k == len(tok)  # the value is the next argument
                    break
        i += 1
    return False


def _interp_eval(prog: str, args: Sequence[str]) -> bool:
    flags = _EVAL_FLAGS[re.sub(r"[\d.]+$", "", prog)]
    return any(tok.split("=", 1)[0] in ("--eval", "--print") or any(ch in flags for ch in _short_flags(tok))
               for tok in args)


def _is_root(tok: str) -> bool:
    path = tok.rstrip("*")
    return path.startswith("/") and posixpath.normpath("/" + path.lstrip("/")) == "/"


def _operands(args: Sequence[str]) -> list[str]:
    return [a for a in args if not a.startswith("-")]


def _rsync_remote(args: Sequence[str]) -> bool:
    for tok in args:
        if tok.startswith("--rsh") or "e" in _short_flags(tok) or "::" in tok or tok.startswith("rsync://"):
            return True
        if re.match(r"^[^/-][^/]*:", tok):
            return True
    return False


def _git_config_override(args: Sequence[str]) -> bool:
    """`git -c k=v …`, `--config-env`, `--exec-path=` before the subcommand (config runs programs)."""
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "-c" or tok.startswith(("--config-env", "--exec-path=")):
            return True
        if tok in ("-C", "--git-dir", "--work-tree", "--namespace"):
            i += 2
            continue
        if not tok.startswith("-"):
            return False
        i += 1
    return False


@dataclass(frozen=True)
class BuiltinDeny:
    """A deny rule that every lane gets: `test(program_basename, args)`."""

    id: str
    what: str
    test: Callable[[str, Sequence[str]], bool]


def _prog(*names: str) -> Callable[[str, Sequence[str]], bool]:
    names_set = frozenset(names)
    return lambda prog, args: prog in names_set


HARD_DENY_PROGRAMS = frozenset({
    "curl", "wget", "ssh", "scp", "sftp", "nc", "ncat", "netcat", "socat", "telnet",
    "sudo", "su", "doas", "pkexec", "eval", "exec",
})

BUILTIN_DENIES: tuple[BuiltinDeny, ...] = (
    BuiltinDeny("shell-c", "a shell running a code string (-c)", lambda p, a: bool(_SHELL_RE.match(p)) and _shell_c(a)),
    BuiltinDeny("python-c", "python running a code string (-c)",
                lambda p, a: bool(_PYTHON_RE.match(p)) and _python_c(a)),
    BuiltinDeny("interpreter-eval", "an interpreter running a code string (-e, -r, --eval)",
                lambda p, a: bool(_EVAL_RE.match(p)) and _interp_eval(p, a)),
    *(BuiltinDeny(n, f"network client {n}", _prog(n)) for n in ("curl", "wget", "ssh", "scp", "sftp")),
    BuiltinDeny("netcat", "raw socket tool (nc, ncat, netcat, socat, telnet)",
                _prog("nc", "ncat", "netcat", "socat", "telnet")),
    BuiltinDeny("rsync-remote", "rsync to or from a remote host", lambda p, a: p == "rsync" and _rsync_remote(a)),
    *(BuiltinDeny(n, f"privilege tool {n}", _prog(n)) for n in ("sudo", "su", "doas", "pkexec")),
    BuiltinDeny("chmod-root", "chmod/chown/chgrp of /",
                lambda p, a: p in ("chmod", "chown", "chgrp") and any(map(_is_root, _operands(a)))),
    BuiltinDeny("rm-root", "rm of / (or --no-preserve-root)",
                lambda p, a: p == "rm" and ("--no-preserve-root" in a or any(map(_is_root, _operands(a))))),
    *(BuiltinDeny(n, f"shell builtin {n} (runs a code string)", _prog(n)) for n in ("eval", "exec")),
    BuiltinDeny("git-config-override", "git -c/--config-env/--exec-path= (config can run programs)",
                lambda p, a: p == "git" and _git_config_override(a)),
)


# Variables that make a program load or run code of someone else's choosing, or that the
# sandbox itself owns (PATH is the trusted one, HOME and TMPDIR the scratch folder).
BUILTIN_ENV_DENIES: tuple[tuple[str, str], ...] = (
    ("PATH", "the sandbox resolves programs through its trusted PATH"),
    ("HOME", "the sandbox sets it to the scratch folder"),
    ("TMPDIR", "the sandbox sets it to the scratch folder"),
    ("LD_*", "loads shared libraries into the program"),
    ("DYLD_*", "loads shared libraries into the program"),
    ("PYTHONPATH", "imports modules (sitecustomize.py) from anywhere"),
    ("PYTHONSTARTUP", "runs a file at start-up"),
    ("PYTHONHOME", "replaces the standard library"),
    ("PYTHONUSERBASE", "adds a site-packages folder"),
    ("PYTHONINSPECT", "opens an interpreter after the program"),
    ("PYTHONBREAKPOINT", "runs a callable on breakpoint()"),
    ("PYTHONEXECUTABLE", "changes sys.executable"),
    ("GIT_CONFIG*", "git configuration (equivalent to the denied `git -c`)"),
    ("GIT_EXTERNAL_DIFF", "runs a program for every diff"),
    ("GIT_EXEC_PATH", "replaces git's own programs"),
    ("GIT_SSH*", "runs a program to connect"),
    ("GIT_PROXY_COMMAND", "runs a program to connect"),
    ("GIT_ASKPASS", "runs a program for credentials"),
    ("GIT_EDITOR", "runs an editor"),
    ("GIT_SEQUENCE_EDITOR", "runs an editor"),
    ("GIT_PAGER", "runs a pager"),
    ("GIT_TEMPLATE_DIR", "installs hooks"),
    ("EDITOR", "runs an editor"),
    ("VISUAL", "runs an editor"),
    ("PAGER", "runs a pager"),
    ("BASH_ENV", "a file every bash sources"),
    ("ENV", "a file every sh sources"),
    ("BASH_FUNC_*", "exported shell functions"),
    ("PERL5OPT", "options (-M modules) for every perl"),
    ("PERL5LIB", "imports modules from anywhere"),
    ("PERLLIB", "imports modules from anywhere"),
    ("RUBYOPT", "options (-r libraries) for every ruby"),
    ("RUBYLIB", "imports libraries from anywhere"),
    ("NODE_OPTIONS", "options (--require) for every node"),
    ("NODE_PATH", "imports modules from anywhere"),
)


def builtin_env_deny(name: str) -> str | None:
    """Why no allowlist may let a command set `name`, or None."""
    return next((why for pattern, why in BUILTIN_ENV_DENIES if fnmatch.fnmatchcase(name, pattern)), None)


# --- models -------------------------------------------------------------------------------

class Examples(BaseModel):
    """argvs a rule must match / must not match; checked when the file loads."""

    model_config = ConfigDict(extra="forbid")
    match: list[list[StrictStr]] = Field(default_factory=list)
    no_match: list[list[StrictStr]] = Field(default_factory=list)

    @field_validator("match", "no_match")
    @classmethod
    def _non_empty(cls, value: list[list[str]]) -> list[list[str]]:
        if any(not ex for ex in value):
            raise ValueError("an example argv is empty")
        return value


class Rule(BaseModel):
    """One allow or deny rule: an id and an argv pattern."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=_ID_RE)
    argv: list[StrictStr]
    description: str = ""
    examples: Examples = Field(default_factory=Examples)

    @field_validator("argv")
    @classmethod
    def _valid_pattern(cls, argv: list[str]) -> list[str]:
        if not argv:
            raise ValueError("empty argv")
        if argv[0] == "**" or "/" in argv[0]:
            raise ValueError(f"argv[0] {argv[0]!r} must name a program (a basename or a glob of one)")
        for i, elem in enumerate(argv):
            problem = _glob_problem(elem)
            if problem:
                raise ValueError(f"bad glob argv[{i}] {elem!r}: {problem}")
        return argv

    def matches(self, view: Sequence[str]) -> bool:
        """Does this rule match one normalized argv (argv[0] already a basename)?"""
        return match_argv(self.argv, view)


class Limits(BaseModel):
    """Resource limits for the lane's commands and its process."""

    model_config = ConfigDict(extra="forbid")
    timeout_s: StrictInt = Field(default=600, gt=0, le=86_400)
    memory_mb: StrictInt = Field(default=2048, ge=64, le=1_048_576)
    cpu_s: StrictInt = Field(default=600, gt=0, le=86_400)
    max_parallel: StrictInt = Field(default=1, ge=1, le=64)


class Decision(BaseModel):
    """The verdict on one argv: `rule` is `allow:<id>`, `deny:<id>`, or `default-deny`."""

    model_config = ConfigDict(frozen=True)
    allowed: bool
    rule: str
    reason: str


class Allowlist(BaseModel):
    """A lane's allowlist: network and secret grants, limits, allow and deny rules."""

    model_config = ConfigDict(extra="forbid")
    lane: str = Field(pattern=_LANE_RE)
    network: StrictBool = False
    secrets: list[StrictStr] = Field(default_factory=list)
    env: list[StrictStr] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    allow: list[Rule] = Field(default_factory=list)
    deny: list[Rule] = Field(default_factory=list)
    _source: str = PrivateAttr(default="<memory>")

    @model_validator(mode="after")
    def _unique_ids(self) -> "Allowlist":
        for kind, rules in (("allow", self.allow), ("deny", self.deny)):
            seen: set[str] = set()
            for rule in rules:
                if rule.id in seen:
                    raise ValueError(f"rule {kind}:{rule.id}: duplicate id")
                seen.add(rule.id)
        for name in self.secrets:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", name):
                raise ValueError(f"secrets: bad secret name {name!r}")
        for pattern in self.env:
            if not re.match(r"^[A-Za-z0-9_*?]+$", pattern):
                raise ValueError(f"env: bad variable name or glob {pattern!r}")
            why = builtin_env_deny(pattern) or next(
                (f"matches {p}: {w}" for p, w in BUILTIN_ENV_DENIES if fnmatch.fnmatchcase(p.rstrip("*"), pattern)), None)
            if why:
                raise ValueError(f"env: {pattern} can never be allowed ({why})")
        return self

    @property
    def source(self) -> str:
        """Where this allowlist came from (a file path, or `<memory>`)."""
        return self._source

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Allowlist":
        """Read, validate and self-check a YAML allowlist file; AllowlistError names file and rule."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as err:
            raise AllowlistError(f"{p}: cannot read allowlist: {err.strerror or err}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise AllowlistError(f"{p}: invalid YAML{where}: {getattr(err, 'problem', None) or err}") from None
        return cls.parse(data, source=str(p))

    @classmethod
    def parse(cls, data: Any, source: str = "<memory>") -> "Allowlist":
        """Validate a decoded allowlist (a dict) and check every rule's examples."""
        if not isinstance(data, dict):
            raise AllowlistError(f"{source}: an allowlist must be a mapping (lane, network, limits, allow, deny)")
        try:
            allowlist = cls.model_validate(data)
        except ValidationError as err:
            raise AllowlistError(_explain(err, data, source)) from None
        allowlist._source = source
        allowlist._check_examples()
        return allowlist

    def check(self, argv: Sequence[str]) -> Decision:
        """Decide one argv: invalid → deny; any deny (file, then built-in, through wrappers) → deny;
        an allow rule matching the literal argv → allow; otherwise default deny."""
        if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
            return Decision(allowed=False, rule="deny:invalid-argv", reason="argv must be a list of strings")
        args = list(argv)
        problem = _argv_problem(args)
        if problem:
            return Decision(allowed=False, rule="deny:invalid-argv", reason=problem)
        views = command_views(args)
        for view in views:
            for rule in self.deny:
                if rule.matches(view):
                    return Decision(allowed=False, rule=f"deny:{rule.id}",
                                    reason=f"deny rule of {self._source}{_via(view, views)}")
        for view in views:
            for builtin in BUILTIN_DENIES:
                if builtin.test(view[0], view[1:]):
                    return Decision(allowed=False, rule=f"deny:{builtin.id}",
                                    reason=f"built-in deny: {builtin.what}{_via(view, views)}")
        for rule in self.allow:
            if rule.matches(views[0]):
                return Decision(allowed=True, rule=f"allow:{rule.id}", reason=f"allow rule of {self._source}")
        return Decision(allowed=False, rule="default-deny", reason=f"no allow rule of {self._source} matches")

    def check_env(self, env: dict[str, str] | None) -> Decision:
        """Decide the variables a command asks to set: built-in denies first, then `env`."""
        for name in env or {}:
            if not isinstance(name, str):
                return Decision(allowed=False, rule="deny:invalid-env", reason="env names must be strings")
            why = builtin_env_deny(name)
            if why:
                return Decision(allowed=False, rule=f"deny:env-{name}", reason=f"built-in env deny: {name} {why}")
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.env):
                return Decision(allowed=False, rule="default-deny-env",
                                reason=f"{name}: not in the env list of {self._source}")
        return Decision(allowed=True, rule="allow:env", reason=f"env list of {self._source}")

    def _check_examples(self) -> None:
        for kind, rules in (("allow", self.allow), ("deny", self.deny)):
            for rule in rules:
                def fail(example: list[str], what: str) -> AllowlistError:
                    return AllowlistError(f"{self._source}: rule {kind}:{rule.id}: example {json.dumps(example)} {what}")

                for ex in rule.examples.match:
                    hit = rule.matches(_norm(ex)) if kind == "allow" else any(rule.matches(v) for v in command_views(ex))
                    if not hit:
                        raise fail(ex, "should match but does not")
                    decision = self.check(ex)
                    if kind == "allow" and not decision.allowed:
                        raise fail(ex, f"matches but is denied by {decision.rule}")
                for ex in rule.examples.no_match:
                    hit = rule.matches(_norm(ex)) if kind == "allow" else any(rule.matches(v) for v in command_views(ex))
                    if hit:
                        raise fail(ex, "should not match but does")


def _argv_problem(args: list[Any]) -> str | None:
    if not args:
        return "empty argv"
    if len(args) > MAX_ARGS:
        return f"argv has more than {MAX_ARGS} arguments"
    if not all(isinstance(a, str) for a in args):
        return "argv must be a list of strings"
    if not args[0]:
        return "argv[0] is empty"
    if any("\x00" in a for a in args):
        return "argv contains a NUL byte"
    return None


def _via(view: tuple[str, ...], views: list[tuple[str, ...]]) -> str:
    return "" if view is views[0] else f" (wrapped command: {show_argv(view)})"


def _explain(err: ValidationError, data: dict[str, Any], source: str) -> str:
    """The first validation error as one line naming the file and, where there is one, the rule."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains a missing key
    first = errors[0]
    loc = list(first["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] in ("allow", "deny") and isinstance(loc[1], int):
        raw = data.get(loc[0])
        item = raw[loc[1]] if isinstance(raw, list) and loc[1] < len(raw) else None
        rid = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"#{loc[1] + 1}"
        where = f"rule {loc[0]}:{rid}: "
        loc = loc[2:]
    path = ".".join(str(part) for part in loc)
    if first["type"] == "extra_forbidden":
        what = f"unknown key {path!r}"
    else:
        msg = str(first["msg"]).removeprefix("Value error, ")
        what = f"{path}: {msg}" if path else msg
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {where}{what}{more}"


# --- finding a lane's file ----------------------------------------------------------------

def read_lane_allowlist(path: str | os.PathLike[str], lane: str) -> Allowlist:
    """Load one lane's allowlist file, which must say it is for `lane`."""
    allowlist = Allowlist.load(path)
    if allowlist.lane != lane:
        raise AllowlistError(f"{path}: lane is {allowlist.lane!r}, expected {lane!r}")
    return allowlist


def lane_allowlist(lane: Lane) -> Allowlist:
    """A lane record's allowlist (AllowlistError naming the file when it is missing or wrong)."""
    if lane.allowlist is None:
        where = ", ".join(str(f) for f in lane.folders) or "(registered without one)"
        raise AllowlistError(f"no allowlist for lane {lane.id!r} in: {where}")
    return read_lane_allowlist(lane.allowlist, lane.id)


def lane_limits(lane: Lane) -> dict:
    """timeout_s, memory_mb, cpu_s, max_parallel of a lane: its allowlist's `limits`, with the
    record's own `limits` over them."""
    limits = lane_allowlist(lane).limits
    if lane.limits:
        try:
            limits = Limits.model_validate({**limits.model_dump(), **dict(lane.limits)})
        except ValidationError as err:
            raise AllowlistError(f"lane {lane.id!r}: limits: {err.errors()[0]['msg']}") from None
    return limits.model_dump()


def load_lane_allowlist(lane: str, folders: Sequence[Path] | None = None) -> Allowlist:
    """Load `<folder>/allowlists/<lane>.yaml` from the first folder that has it: of `folders`,
    by default of the lane registry's search path (`pas.lanes`; a registered lane record's own
    file). Also for names that are no lane, such as DirEng's `chat` tools."""
    if not re.match(_LANE_RE, lane):
        raise AllowlistError(f"bad lane name {lane!r}")
    if folders is None:
        path, search = lane_registry.allowlist_path(lane)
    else:
        search = list(folders)
        path = next((p for f in search if (p := Path(f) / "allowlists" / f"{lane}.yaml").is_file()), None)
    if path is None:
        raise AllowlistError(f"no allowlist for lane {lane!r} in: {', '.join(str(f) for f in search) or '(no folders)'}")
    return read_lane_allowlist(path, lane)
