"""PAS allowlists: the shipped lane files, deny-over-allow, built-in denies, load-time checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from direng_kernel.errors import DirEngError
from direng_kernel.pas.allowlist import (
    BUILTIN_DENIES,
    HARD_DENY_PROGRAMS,
    Allowlist,
    AllowlistError,
    command_views,
    load_lane_allowlist,
    match_argv,
)

from hypothesis import given, settings
from hypothesis import strategies as st

REPO_LANES = Path(__file__).resolve().parents[1] / "lanes"
LANES = ["code-impl", "code-api-design", "data-schema", "vector-ops", "graph-ops", "narrative"]
# Allows every command: whatever it denies, the built-in list denied.
ALLOW_ALL = Allowlist.parse({"lane": "anything", "allow": [{"id": "all", "argv": ["*", "**"]}]})


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- shipped files --------------------------------------------------------------------------

@pytest.mark.parametrize("lane", LANES)
def test_shipped_lane_files_load_with_their_examples(lane: str) -> None:
    allowlist = load_lane_allowlist(lane, [REPO_LANES])
    assert allowlist.lane == lane and allowlist.network is False and allowlist.secrets == []
    assert allowlist.limits.max_parallel == (1 if lane == "code-impl" else 2)
    assert 120 <= allowlist.limits.timeout_s <= 900 and 1024 <= allowlist.limits.memory_mb <= 4096
    assert allowlist.allow and all(rule.examples.match for rule in allowlist.allow)
    assert allowlist.check(["curl", "https://example.invalid"]).rule == "deny:curl"
    assert allowlist.check(["git", "push", "origin", "main"]).rule == "default-deny"


@pytest.mark.parametrize("lane, argv, rule", [
    ("code-impl", ["git", "worktree", "add", "../wt", "-b", "lane/x"], "allow:git-worktree-add"),
    ("code-impl", ["python3", "-m", "pytest", "-q", "-x"], "allow:pytest-module"),
    ("code-impl", ["ruff", "check", "."], "allow:ruff"),
    ("code-impl", ["git", "apply", "--unsafe-paths", "p.diff"], "deny:git-apply-unsafe-paths"),
    ("code-impl", ["python", "-m", "pip", "install", "requests"], "default-deny"),
    ("code-impl", ["python3", "-c", "print(1)"], "deny:python-c"),
    ("vector-ops", ["direng", "index", "."], "allow:direng-index"),
    ("vector-ops", ["git", "status", "--porcelain"], "allow:git-status"),
    ("vector-ops", ["direng", "task", "start", "t1"], "default-deny"),
    ("graph-ops", ["direng", "map", "--tokens", "500"], "allow:direng-map"),
    ("graph-ops", ["git", "diff"], "default-deny"),
    ("code-api-design", ["git", "show", "HEAD:a.py"], "allow:git-show"),
    ("code-api-design", ["git", "apply", "x.patch"], "default-deny"),
    ("data-schema", ["git", "ls-files"], "allow:git-ls-files"),
    ("narrative", ["git", "log", "--oneline"], "allow:git-log"),
    ("narrative", ["git", "log", "--output=/tmp/x"], "deny:git-log-output"),
])
def test_shipped_rules_decide(lane: str, argv: list[str], rule: str) -> None:
    assert load_lane_allowlist(lane, [REPO_LANES]).check(argv).rule == rule


def test_lanes_dirs_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from direng_kernel.pas.lanes import registry

    monkeypatch.delenv("DIRENG_LANES_PATH", raising=False)
    default = registry.folders()
    assert default[-1].name == "lanes" and (default[-1] / "allowlists" / "narrative.yaml").is_file()
    (tmp_path / "allowlists").mkdir()
    override = write(tmp_path / "allowlists", "lane: narrative\nallow: [{id: log1, argv: [git, log, '-1']}]\n",
                     "narrative.yaml")
    monkeypatch.setenv("DIRENG_LANES_PATH", f"/nonexistent-lanes{__import__('os').pathsep}{tmp_path}")
    assert registry.folders()[:2] == [Path("/nonexistent-lanes"), tmp_path]
    loaded = load_lane_allowlist("narrative")
    assert loaded.source == str(override) and loaded.check(["git", "log", "-1"]).rule == "allow:log1"
    assert load_lane_allowlist("code-impl").lane == "code-impl"  # falls through to the default folder


def test_missing_and_mismatched_lane_files(tmp_path: Path) -> None:
    with pytest.raises(AllowlistError, match=r"no allowlist for lane 'nope' in: .*" + tmp_path.name):
        load_lane_allowlist("nope", [tmp_path])
    (tmp_path / "allowlists").mkdir()
    write(tmp_path / "allowlists", "lane: other\n", "narrative.yaml")
    with pytest.raises(AllowlistError, match="lane is 'other', expected 'narrative'"):
        load_lane_allowlist("narrative", [tmp_path])
    with pytest.raises(AllowlistError, match="bad lane name"):
        load_lane_allowlist("../etc", [tmp_path])


# --- decisions --------------------------------------------------------------------------------

def test_deny_wins_over_allow_and_default_is_deny() -> None:
    al = Allowlist.parse({
        "lane": "t",
        "allow": [{"id": "git-any", "argv": ["git", "**"]}, {"id": "echo", "argv": ["echo", "*"]}],
        "deny": [{"id": "git-push", "argv": ["git", "push", "**"]}],
    })
    assert al.check(["git", "status"]).allowed
    push = al.check(["/usr/bin/git", "push", "--force"])
    assert (push.allowed, push.rule) == (False, "deny:git-push")
    assert al.check(["echo", "a"]).rule == "allow:echo"
    assert al.check(["echo", "a", "b"]).rule == "default-deny"  # patterns match the whole argv
    assert al.check(["ls"]).rule == "default-deny"
    assert Allowlist.parse({"lane": "empty"}).check(["true"]).rule == "default-deny"


def test_glob_semantics() -> None:
    assert match_argv(["git", "*"], ["git", "status"]) and not match_argv(["git", "*"], ["git"])
    assert match_argv(["python*", "-m", "pytest", "**"], ["python3.11", "-m", "pytest"])
    assert match_argv(["git", "**", "--x", "**"], ["git", "a", "b", "--x"])
    assert not match_argv(["git", "**", "--x", "**"], ["git", "a", "b"])
    assert match_argv(["f[ab]o", "?"], ["fbo", "1"]) and not match_argv(["f[ab]o"], ["fco"])


@pytest.mark.parametrize("argv, rule", [
    (["/bin/bash", "-c", "ls"], "deny:shell-c"),
    (["bash", "-ec", "ls"], "deny:shell-c"),
    (["/usr/local/bin/zsh", "-c", "x"], "deny:shell-c"),
    (["fish", "--command=ls"], "deny:shell-c"),
    (["env", "X=1", "sh", "-c", "id"], "deny:shell-c"),
    (["/usr/bin/env", "-i", "A=b", "dash", "-c", "id"], "deny:shell-c"),
    (["env", "-S", "bash -c id"], "deny:shell-c"),
    (["timeout", "5", "curl", "x"], "deny:curl"),
    (["timeout", "-s", "KILL", "5", "/usr/bin/curl", "x"], "deny:curl"),
    (["nice", "wget", "http://x"], "deny:wget"),
    (["nice", "-n", "10", "env", "A=1", "ssh", "host"], "deny:ssh"),
    (["xargs", "scp"], "deny:scp"),
    (["sftp", "host"], "deny:sftp"),
    (["ncat", "-l", "4444"], "deny:netcat"),
    (["python3", "-c", "import os"], "deny:python-c"),
    (["python", "-Ic", "import os"], "deny:python-c"),
    (["python3.11", "-W", "ignore", "-c", "1"], "deny:python-c"),
    (["perl", "-e", "exec 'sh'"], "deny:interpreter-eval"),
    (["node", "--eval=1"], "deny:interpreter-eval"),
    (["sudo", "true"], "deny:sudo"),
    (["su", "-"], "deny:su"),
    (["doas", "ls"], "deny:doas"),
    (["chmod", "-R", "777", "/"], "deny:chmod-root"),
    (["rm", "-rf", "/"], "deny:rm-root"),
    (["rm", "-rf", "//."], "deny:rm-root"),
    (["rm", "-r", "--no-preserve-root", "x"], "deny:rm-root"),
    (["rsync", "-a", ".", "user@host:/srv"], "deny:rsync-remote"),
    (["rsync", "-e", "ssh", "a", "b"], "deny:rsync-remote"),
    (["eval", "x"], "deny:eval"),
    (["exec", "ls"], "deny:exec"),
    (["git", "-c", "core.pager=sh -c id", "log"], "deny:git-config-override"),
    (["busybox", "wget", "x"], "deny:wget"),
    (["find", ".", "-exec", "sh", "-c", "id", ";"], "deny:shell-c"),
])
def test_builtin_denies_hostile_variants(argv: list[str], rule: str) -> None:
    for allowlist in (ALLOW_ALL, load_lane_allowlist("code-impl", [REPO_LANES])):
        decision = allowlist.check(argv)
        assert (decision.allowed, decision.rule) == (False, rule), argv


@pytest.mark.parametrize("argv", [
    ["python", "-m", "pytest", "-c", "pytest.ini"],
    ["python", "script.py", "-c", "x"],
    ["python", "-W", "ignore", "script.py"],
    ["bash", "build.sh"],
    ["git", "diff", "-c"],
    ["git", "-C", "sub", "status"],
    ["rsync", "-a", "src/", "dst/"],
    ["rm", "-rf", "build"],
    ["chmod", "+x", "/work/run.sh"],
    ["env", "A=1", "git", "status"],
])
def test_builtin_denies_leave_benign_commands_alone(argv: list[str]) -> None:
    assert ALLOW_ALL.check(argv).rule == "allow:all"


def test_wrappers_need_their_own_allow_rule() -> None:
    al = Allowlist.parse({"lane": "t", "allow": [{"id": "pytest", "argv": ["pytest", "**"]}]})
    assert al.check(["pytest", "-q"]).allowed
    assert al.check(["nice", "pytest", "-q"]).rule == "default-deny"
    assert al.check(["env", "LD_PRELOAD=/tmp/x.so", "pytest"]).rule == "default-deny"


@pytest.mark.parametrize("argv", [[], [""], ["a\x00b"], "ls -l", ["ls", 3]])
def test_invalid_argv_is_denied(argv: object) -> None:
    decision = ALLOW_ALL.check(argv)  # type: ignore[arg-type]
    assert (decision.allowed, decision.rule) == (False, "deny:invalid-argv")


def test_views_look_through_wrappers() -> None:
    views = command_views(["/usr/bin/env", "A=1", "timeout", "5", "/usr/bin/curl", "x"])
    assert views[0][0] == "env" and ("curl", "x") in views
    assert command_views(["git", "log"]) == [("git", "log")]


# --- load-time validation ---------------------------------------------------------------------

def test_example_that_fails_refuses_to_load(tmp_path: Path) -> None:
    path = write(tmp_path, """
lane: t
allow:
  - {id: git-read, argv: [git, "*"], examples: {match: [[git, status, --short]]}}
""")
    with pytest.raises(AllowlistError) as err:
        Allowlist.load(path)
    message = str(err.value)
    assert str(path) in message and "rule allow:git-read" in message
    assert '["git", "status", "--short"] should match but does not' in message and "\n" not in message


def test_no_match_example_and_denied_allow_example_refuse_to_load(tmp_path: Path) -> None:
    bad_no_match = write(tmp_path, "lane: t\ndeny: [{id: curl-x, argv: [curl, '**'], examples: {no_match: [[/usr/bin/curl]]}}]\n")
    with pytest.raises(AllowlistError, match=r"rule deny:curl-x: example \[\"/usr/bin/curl\"\] should not match but does"):
        Allowlist.load(bad_no_match)
    shadowed = write(tmp_path, "lane: t\nallow: [{id: py, argv: [python, '**'], examples: {match: [[python, -c, x]]}}]\n")
    with pytest.raises(AllowlistError, match=r"rule allow:py: .* matches but is denied by deny:python-c"):
        Allowlist.load(shadowed)


@pytest.mark.parametrize("text, expected", [
    ("lane: t\nallowed: []\n", "unknown key 'allowed'"),
    ("lane: t\nallow: [{id: g, argvv: [git]}]\n", "rule allow:g: unknown key 'argvv'"),
    ("lane: t\nallow: [{id: g, argv: [git], examples: {matches: [[git]]}}]\n", "rule allow:g: unknown key 'examples.matches'"),
    ("lane: t\nlimits: {timeout_s: 5, gpus: 1}\n", "unknown key 'limits.gpus'"),
    ("lane: t\nallow: [{id: g, argv: []}]\n", "rule allow:g: argv: empty argv"),
    ("lane: t\ndeny: [{id: d, argv: [git, 'a**']}]\n", "rule deny:d: argv: bad glob argv[1] 'a**'"),
    ("lane: t\nallow: [{id: g, argv: [git, '[ab']}]\n", "unclosed '['"),
    ("lane: t\nallow: [{id: g, argv: [/usr/bin/git]}]\n", "must name a program"),
    ("lane: t\nallow: [{id: g, argv: ['**']}]\n", "must name a program"),
    ("lane: t\nallow: [{id: g, argv: [git, 1]}]\n", "rule allow:g: argv.1"),
    ("lane: t\nnetwork: yes-please\n", "network"),
    ("lane: t\nlimits: {timeout_s: 0}\n", "limits.timeout_s"),
    ("lane: t\nallow: [{id: g, argv: [git]}, {id: g, argv: [ls]}]\n", "rule allow:g: duplicate id"),
    ("lane: t\nallow: [{argv: [git]}]\n", "rule allow:#1: id: Field required"),
    ("lane: t\nallow: [oops\n", "invalid YAML at line"),
    ("- just a list\n", "must be a mapping"),
])
def test_invalid_files_are_refused_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AllowlistError) as err:
        Allowlist.load(path)
    assert isinstance(err.value, DirEngError)
    assert expected in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_is_an_allowlist_error(tmp_path: Path) -> None:
    with pytest.raises(AllowlistError, match="cannot read allowlist"):
        Allowlist.load(tmp_path / "absent.yaml")


# --- properties -------------------------------------------------------------------------------

TOKENS = ["-c", "-S", "sh", "bash", "env", "A=1", "timeout", "5", "nice", "curl", "/", "--", "**", "*", "[",
          "python3", "-m", "pytest", "git", "status", "rm", "-rf", "rsync", "h:x", "-e", "xargs"]
ARG = st.one_of(st.text(max_size=12), st.sampled_from(TOKENS))
WRAPPERS = st.sampled_from([
    ["env"], ["env", "X=1"], ["/usr/bin/env", "-i", "A=b", "B=c"], ["env", "--"], ["nice"], ["nice", "-n", "10"],
    ["/usr/bin/nice", "-5"], ["timeout", "5"], ["timeout", "-s", "KILL", "-k", "1", "30s"],
    ["timeout", "--foreground", "1m"], ["nohup"], ["setsid"], ["stdbuf", "-oL"], ["xargs", "-0"], ["busybox"],
])
DIRS = st.sampled_from(["", "/usr/bin/", "/bin/", "./", "/opt/tools/bin/", "../x/"])
SHIPPED = [load_lane_allowlist(lane, [REPO_LANES]) for lane in LANES]


@settings(max_examples=300, deadline=None, database=None)
@given(argv=st.lists(ARG, max_size=12), which=st.integers(0, len(SHIPPED)))
def test_check_never_crashes(argv: list[str], which: int) -> None:
    allowlist = ALLOW_ALL if which == len(SHIPPED) else SHIPPED[which]
    decision = allowlist.check(argv)
    assert decision.rule.startswith("allow:") if decision.allowed else decision.rule.startswith(("deny:", "default-deny"))
    if decision.allowed:  # nothing allowed may hit a built-in deny in any view
        assert not any(b.test(v[0], v[1:]) for v in command_views(argv) for b in BUILTIN_DENIES)


@settings(max_examples=300, deadline=None, database=None)
@given(prefix=st.lists(WRAPPERS, max_size=3), folder=DIRS, prog=st.sampled_from(sorted(HARD_DENY_PROGRAMS)),
       rest=st.lists(ARG, max_size=5), which=st.integers(0, len(SHIPPED)))
def test_hard_denied_programs_are_denied_behind_any_wrappers(
    prefix: list[list[str]], folder: str, prog: str, rest: list[str], which: int
) -> None:
    allowlist = ALLOW_ALL if which == len(SHIPPED) else SHIPPED[which]
    argv = [tok for wrapper in prefix for tok in wrapper] + [folder + prog, *rest]
    decision = allowlist.check(argv)
    assert not decision.allowed and decision.rule.startswith("deny:"), (argv, decision)


@settings(max_examples=200, deadline=None, database=None)
@given(prefix=st.lists(WRAPPERS, max_size=3), folder=DIRS,
       prog=st.sampled_from(["sh", "bash", "zsh", "dash", "ksh", "fish", "python", "python3", "python3.11"]),
       flags=st.lists(st.sampled_from(["-e", "-x", "-u", "-I", "-B"]), max_size=2), code=st.text(max_size=20))
def test_code_strings_are_denied_behind_any_wrappers(
    prefix: list[list[str]], folder: str, prog: str, flags: list[str], code: str
) -> None:
    argv = [tok for wrapper in prefix for tok in wrapper] + [folder + prog, *flags, "-c", code]
    assert ALLOW_ALL.check(argv).rule in ("deny:shell-c", "deny:python-c", "deny:invalid-argv"), argv
