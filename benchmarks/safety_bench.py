"""How fast the safety machinery answers: the speed checks that used to be assertions in tests.

The tests keep the behaviour (a timed-out command is reported `timed_out` and its whole process
tree is gone, a stalled provider falls back, a key at the end of a large text is found, ...);
how long each of those takes depends on the machine and its load, so it is measured here:

  * sandbox (per mode: bubblewrap where it works, and rlimits-only) — a command that forks a
    grandchild and sleeps, killed by a 1.5 s timeout: wall time of `run_command`, and until the
    grandchild is gone; a busy loop capped by a 1 s lane timeout while 120 s were asked for; a
    busy loop stopped by a 1 s CPU limit;
  * broker — a provider stalled for 3 s with a 0.3 s route timeout: time to the fallback's answer;
  * lane timeout — a test lane that sleeps 60 s under its 20 s limit, run end to end through PEX
    and PAS's executor: time until the run failed, and until its last process was gone;
  * secrets — scanning 400 KB of source with a key at the end; redacting 375 KB of text with 200
    known secrets; learning 600 values one by one, redacting after each;
  * PII — `find_pii` over 1 MB of source and letters.

Each figure is the median (and max) of `--repeat` runs; `target` is the bound the old tests
asserted (on the 2-core dev box). Prints a table and writes benchmarks/results/safety_bench.json;
`--check` exits 1 when a median misses its target.

    python benchmarks/safety_bench.py [--repeat 3] [--skip-lane] [--check]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TESTS = REPO / "tests"
RESULTS = HERE / "results" / "safety_bench.json"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key id

# Per-user state (keys, vault, audit log) goes to a scratch folder, never the user's own.
_SCRATCH = Path(tempfile.mkdtemp(prefix="safety-bench-"))
for _name, _sub in (("DIRENG_KEYS_DIR", "keys"), ("DIRENG_VAULT_DIR", "vault"), ("DIRENG_AUDIT_LOG", "audit.jsonl")):
    os.environ[_name] = str(_SCRATCH / _sub)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("DIRENG_SANDBOX", None)


def say(msg: str) -> None:
    print(f"[safety_bench] {msg}", file=sys.stderr, flush=True)


def measure(fn: Callable[[], dict[str, float]], repeat: int) -> dict[str, Any]:
    """Run `fn` `repeat` times; each run returns named seconds. Median and max of each."""
    runs = [fn() for _ in range(repeat)]
    return {key: {"median_s": round(statistics.median(r[key] for r in runs), 4),
                  "max_s": round(max(r[key] for r in runs), 4)} for key in runs[0]}


# -- sandbox ------------------------------------------------------------------------------------

SCRIPTS = {
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
    "spin.py": "while True:\n    pass\n",
}


def _lane(**limits: Any):
    from direng_kernel.pas.allowlist import Allowlist

    return Allowlist.parse({"lane": "bench", "network": False,
                            "limits": {"timeout_s": 60, "memory_mb": 512, "cpu_s": 60, **limits},
                            "allow": [{"id": "script", "argv": ["python*", "*.py", "**"]}]})


def _wait_lock_free(path: Path, limit_s: float = 30) -> float:
    """Seconds until nobody holds the lock on `path` any more (the grandchild is dead)."""
    t0 = time.perf_counter()
    with open(path) as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return time.perf_counter() - t0
            except BlockingIOError:
                if time.perf_counter() - t0 > limit_s:
                    raise RuntimeError(f"the grandchild still holds {path} after {limit_s} s") from None
                time.sleep(0.005)


def sandbox_bench(mode: str, repeat: int) -> dict[str, Any]:
    from direng_kernel.pas.sandbox import run_command

    os.environ["DIRENG_SANDBOX"] = mode
    work = Path(tempfile.mkdtemp(prefix="safety-bench-sbx-"))
    try:
        for name, body in SCRIPTS.items():
            (work / name).write_text(textwrap.dedent(body))
        (work / "rw").mkdir()

        def run(script: str, *args: str, **kw: Any):
            return run_command([sys.executable, script, *args], cwd=work, writable=[work / "rw"],
                               allowlist=kw.pop("allowlist", None) or _lane(), env=None, **kw)

        def tree_kill() -> dict[str, float]:
            lock = work / "rw" / f"tree-{time.monotonic_ns()}.lock"
            t0 = time.perf_counter()
            result = run("tree.py", str(lock), timeout_s=1.5)
            returned = time.perf_counter() - t0
            assert result.timed_out and result.stdout == "started\n", result
            gone = _wait_lock_free(lock)
            return {"run_command_s": returned, "tree_gone_after_return_s": gone}

        def lane_cap() -> dict[str, float]:
            result = run("spin.py", allowlist=_lane(timeout_s=1), timeout_s=120)
            assert result.timed_out, result
            return {"duration_s": result.duration_s}

        def cpu_limit() -> dict[str, float]:
            result = run("spin.py", allowlist=_lane(cpu_s=1, timeout_s=60))
            assert result.returncode != 0 and not result.timed_out, result
            return {"duration_s": result.duration_s}

        return {"timeout_1.5s_tree": measure(tree_kill, repeat), "lane_timeout_1s_of_120s": measure(lane_cap, repeat),
                "cpu_limit_1s": measure(cpu_limit, repeat)}
    finally:
        os.environ.pop("DIRENG_SANDBOX", None)
        shutil.rmtree(work, ignore_errors=True)


# -- broker -------------------------------------------------------------------------------------

def broker_bench(repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(TESTS))
    from fake_providers import FakeModelServer

    from direng_kernel.broker import Broker, Policy
    from direng_kernel.models import ChatMessage, ProviderRequest

    def provider(server: FakeModelServer) -> dict:
        return {"type": "openai", "base_url": server.url + "/v1", "external": False,
                "prices": {"input_per_1k": 0.0, "output_per_1k": 0.0}}

    def fallback() -> dict[str, float]:
        with FakeModelServer() as slow, FakeModelServer() as fast:
            slow.stall(3.0)
            policy = Policy.model_validate({
                "version": 1, "providers": {"local": {"type": "local", "external": False},
                                            "slow": provider(slow), "b": provider(fast)},
                "lanes": {"chat": {"primary": {"provider": "slow", "model": "m"},
                                   "fallbacks": [{"provider": "b", "model": "m"}], "timeout_s": 0.3, "retries": 2}}})
            request = ProviderRequest(lane="chat", messages=[ChatMessage(role="user", content="where?")])
            t0 = time.perf_counter()
            response = Broker(policy, None, None).complete(request)
            elapsed = time.perf_counter() - t0
            assert response.usage.provider == "b", response
            return {"fallback_answer_s": elapsed}

    return {"stalled_3s_timeout_0.3s": measure(fallback, repeat)}


# -- a lane timeout, end to end -------------------------------------------------------------------

def _lane_processes(run_id: str) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DIRENG_RUN_ID") == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def lane_timeout_bench(repeat: int) -> dict[str, Any]:
    import threading

    from direng_kernel.models import TaskState
    from direng_kernel.pex.orchestrator import Orchestrator

    os.environ["DIRENG_LANES_PATH"] = str(TESTS / "fixtures" / "test_lanes")

    def once() -> dict[str, float]:
        work = Path(tempfile.mkdtemp(prefix="safety-bench-lane-"))
        try:
            root = work / "repo"
            shutil.copytree(TESTS / "fixtures" / "sample_repo", root)
            for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
                subprocess.run(["git", "-C", str(root), "-c", "user.name=b", "-c", "user.email=b@b", *args], check=True)
            orch = Orchestrator(root, root / ".direng")
            task, _ = orch.new_task("bench", "", "narrative", {"mode": "sleep", "seconds": 60})
            orch.estimate(task.id)
            orch.approve(task.id)
            orch.start(task.id)
            t0 = time.perf_counter()
            worker = threading.Thread(target=orch.run_here, args=(task.id, 300))
            worker.start()
            worker.join(300)
            failed = time.perf_counter() - t0
            done = orch.status(task.id)
            assert done.state == TaskState.failed and "timed out" in (done.error or ""), done
            while _lane_processes(done.run_id):
                if time.perf_counter() - t0 > failed + 30:
                    raise RuntimeError("lane processes outlived the run by 30 s")
                time.sleep(0.05)
            gone = time.perf_counter() - t0
            run = orch.tasks.get_run(done.run_id)
            return {"run_failed_s": failed, "processes_gone_s": gone, "run_duration_s": run["duration_s"]}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    try:
        return {"sleep_60s_limit_20s": measure(once, repeat)}
    finally:
        os.environ.pop("DIRENG_LANES_PATH", None)


# -- secrets and PII ------------------------------------------------------------------------------

def secrets_bench(repeat: int) -> dict[str, Any]:
    from direng_kernel.security.redact import Redactor
    from direng_kernel.security.redact import marker_digest as digest
    from direng_kernel.security.secrets import scan_text

    source = "".join(p.read_text() for p in sorted((REPO / "direng_kernel").rglob("*.py")))
    text = (source * 2)[:400_000] + f'\nAWS = "{AWS_KEY_ID}"\n'
    scan_text("warm = 1")

    def scan() -> dict[str, float]:
        t0 = time.perf_counter()
        findings = scan_text(text, "big.py")
        elapsed = time.perf_counter() - t0
        assert any(f._value == AWS_KEY_ID for f in findings)
        return {"scan_s": elapsed}

    def many_secrets() -> dict[str, float]:
        r = Redactor()
        for i in range(200):
            r.add_secret(f"S{i}", f"secret-{i:04d}-{digest(str(i))}")
        plain = "ordinary text with no secrets in it at all, just words and numbers 12345. " * 5000
        r.redact("warm")
        t0 = time.perf_counter()
        assert r.redact(plain) == plain
        assert r.redact(plain + " secret-0199-" + digest("199")).endswith("[secret:S199]")
        return {"redact_twice_s": time.perf_counter() - t0}

    def learn_one_by_one() -> dict[str, float]:
        r = Redactor()
        t0 = time.perf_counter()
        for i in range(600):
            value = f"tok{i:04d}-{digest(str(i))}{digest(str(-i))}"
            r.add_value(value)
            r.redact(f"chunk {value} end")
        return {"learn_and_redact_600_s": time.perf_counter() - t0}

    return {"scan_400kb": measure(scan, repeat), "redact_375kb_200_secrets": measure(many_secrets, repeat),
            "learn_600_values": measure(learn_one_by_one, repeat)}


def pii_bench(repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(TESTS))
    from test_pii import LETTER, NEGATIVE_SOURCES

    from direng_kernel.security.pii import find_pii

    chunk = "\n".join((REPO / rel).read_text(encoding="utf-8") for rel in NEGATIVE_SOURCES) + "\n" + LETTER
    text = (chunk * (1_000_000 // len(chunk) + 1))[:1_000_000]
    find_pii(text[:10_000])  # warm up

    def scan() -> dict[str, float]:
        t0 = time.perf_counter()
        found = find_pii(text)
        elapsed = time.perf_counter() - t0
        assert any(f.kind == "credit_card" for f in found)
        return {"find_pii_s": elapsed}

    return {"find_pii_1mb": measure(scan, repeat)}


# -- the table --------------------------------------------------------------------------------------

# (section, case, figure) → the bound the tests used to assert, in seconds
TARGETS = {
    ("sandbox", "timeout_1.5s_tree", "run_command_s"): 4.5,
    ("sandbox", "lane_timeout_1s_of_120s", "duration_s"): 4.0,
    ("sandbox", "cpu_limit_1s", "duration_s"): 20.0,
    ("broker", "stalled_3s_timeout_0.3s", "fallback_answer_s"): 2.5,
    ("lane", "sleep_60s_limit_20s", "run_failed_s"): 60.0,
    ("secrets", "scan_400kb", "scan_s"): 4.0,
    ("secrets", "redact_375kb_200_secrets", "redact_twice_s"): 2.0,
    ("secrets", "learn_600_values", "learn_and_redact_600_s"): 10.0,
    ("pii", "find_pii_1mb", "find_pii_s"): 1.0,
}


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for section, cases in results.items():
        if section == "meta":
            continue
        for sub, figures in cases.items():
            if "error" in figures:
                out.append({"section": section, "case": sub, "figure": "-", "error": figures["error"]})
                continue
            for figure, stats in figures.items():
                base = section.split(":")[0]
                target = TARGETS.get((base, sub, figure))
                out.append({"section": section, "case": sub, "figure": figure, **stats, "target_s": target,
                            "ok": None if target is None else stats["median_s"] <= target})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-lane", action="store_true", help="skip the end-to-end lane timeout (~25 s a run)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a median misses its target")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from direng_kernel.pas.sandbox import probe

    detected = probe()
    results: dict[str, Any] = {"meta": {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(), "repeat": args.repeat,
        "sandbox_detected": detected.mode, "sandbox_reason": detected.reason}}

    def step(key: str, fn: Callable[[], dict[str, Any]]) -> None:
        say(key)
        try:
            results[key] = fn()
        except Exception as err:  # noqa: BLE001 - a failed step is recorded; the others still run
            results[key] = {"failed": {"error": f"{type(err).__name__}: {err}"}}
            say(f"  {key} failed: {type(err).__name__}: {err}")

    modes = (["bwrap"] if detected.mode == "bubblewrap" else []) + ["rlimits"]
    for mode in modes:
        step(f"sandbox:{mode}", lambda mode=mode: sandbox_bench(mode, args.repeat))
    step("broker", lambda: broker_bench(args.repeat))
    if not args.skip_lane:
        step("lane", lambda: lane_timeout_bench(max(1, min(args.repeat, 2))))
    step("secrets", lambda: secrets_bench(args.repeat))
    step("pii", lambda: pii_bench(args.repeat))

    table = rows(results)
    results["table"] = table
    print(f"{'section':<16} {'case':<26} {'figure':<26} {'median':>8} {'max':>8} {'target':>7}  ok")
    for r in table:
        if "error" in r:
            print(f"{r['section']:<16} {r['case']:<26} FAILED: {r['error']}")
            continue
        target = "" if r["target_s"] is None else f"{r['target_s']:.1f}"
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print(f"{r['section']:<16} {r['case']:<26} {r['figure']:<26} {r['median_s']:>8.3f} {r['max_s']:>8.3f} "
              f"{target:>7}  {ok}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    shutil.rmtree(_SCRATCH, ignore_errors=True)
    missed = [r for r in table if r.get("ok") is False or "error" in r]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
