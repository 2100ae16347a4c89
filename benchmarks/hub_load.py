"""DirEng under JupyterHub, loaded: concurrent warm searches through the Hub's proxy.

A real `jupyterhub` (tests/hub_server.py: the example config docs/deploy/jupyterhub_config.py,
the PyPI configurable-http-proxy, SimpleLocalProcessSpawner, loopback ports, a temp dir) with
`--users` users, each with their own server indexing a git copy of tests/fixtures/sample_repo.
After a warm-up, `--searchers` threads per user send `GET /user/NAME/direng/api/search` with
that user's Hub token (`custom:direng:index:read`) through the proxy for `--duration` seconds,
each request after the previous one's answer. Reports, overall and per user: requests, errors
(any non-200 or failed request), throughput and the p50/p95/max latency of the searches.
Prints a table and writes benchmarks/results/hub_load.json.

    python benchmarks/hub_load.py [--duration 60] [--users 2] [--searchers 8] [--watch]

Every request goes to 127.0.0.1; the run stops by itself after `--duration` (and at most
`--max-requests` requests per searcher).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the Hub harness the tests use
sys.path.insert(0, str(HERE))

from hub_server import Hub  # noqa: E402
from results import write  # noqa: E402

from direng_kernel.config import user_cache_dir  # noqa: E402
from direng_kernel.security.scopes import hub_scope  # noqa: E402

QUERIES = ["charge the card", "shipping cost", "cart total", "payment retry", "format a price", "http server",
           "order model", "what calls charge_card", "discount rules", "parse the request"]
USER_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))] if values else float("nan")


def git_copy(dest: Path) -> None:
    shutil.copytree(REPO / "tests" / "fixtures" / "sample_repo", dest)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", "-C", str(dest), "-c", "user.name=Bench", "-c", "user.email=bench@example.com",
                        "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


def searcher(hub: Hub, user: str, token: str, offset: int, deadline: float, max_requests: int,
             out: list[tuple[str, float, bool]]) -> None:
    """Search until the deadline, one request at a time; (user, seconds, ok) per request."""
    url = hub.direng_url(user, "search")
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0),
                      headers={"Authorization": f"token {token}"}) as client:
        for i in range(max_requests):
            if time.monotonic() >= deadline:
                break
            query = QUERIES[(offset + i) % len(QUERIES)]
            started = time.perf_counter()
            try:
                ok = client.get(url, params={"q": query, "k": 10}).status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append((user, time.perf_counter() - started, ok))


def summary(samples: list[tuple[str, float, bool]], seconds: float) -> dict:
    good = [s * 1000 for _, s, ok in samples if ok]
    return {"requests": len(samples), "errors": sum(1 for *_, ok in samples if not ok),
            "throughput_rps": round(len(samples) / seconds, 1) if seconds else None,
            "p50_ms": round(percentile(good, 0.50), 1), "p95_ms": round(percentile(good, 0.95), 1),
            "max_ms": round(max(good), 1) if good else None,
            "mean_ms": round(statistics.fmean(good), 1) if good else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=2, choices=range(1, len(USER_NAMES) + 1), metavar="N")
    parser.add_argument("--searchers", type=int, default=8, help="concurrent searchers per user (default 8)")
    parser.add_argument("--warmup", type=int, default=10, help="searches per user before the load (default 10)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per searcher, a bound on the loop")
    parser.add_argument("--watch", action="store_true",
                        help="run each server's refresh daemon, as the example config does (it also fills "
                             "MiniLM vectors while idle); default off, to measure the searches alone")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "hub_load.json")
    args = parser.parse_args()

    users = USER_NAMES[:args.users]
    work = Path(tempfile.mkdtemp(prefix="direng-hub-load-"))
    env = {"DIRENG_CACHE_DIR": str(user_cache_dir()), "DIRENG_KERNEL_POOL": "0"}  # the distilled static model
    started = time.monotonic()
    try:
        with Hub(work, server_env=env, server_args=(f"--DirEngExtension.watch={args.watch}",)) as hub:
            tokens = {}
            for user in users:
                git_copy(hub.home(user) / "repo")
                hub.add_user(user)
                tokens[user] = hub.token(user, [f"access:servers!user={user}", f"{hub_scope('index:read')}!user={user}"])
                hub.api("POST", f"users/{user}/server", expect=(201, 202))
            for user in users:
                hub.wait_server(user, ready=True, timeout=180)
                hub.wait_indexed(user, tokens[user], timeout=180)
            ready_s = time.monotonic() - started
            for user in users:  # warm: every query once on every server, then some more
                for i in range(max(args.warmup, len(QUERIES))):
                    status, _ = hub.call(user, "GET", f"search?q={QUERIES[i % len(QUERIES)]}", tokens[user])
                    if status != 200:
                        print(f"warm-up search on {user}'s server answered {status}", file=sys.stderr)
                        return 1
            samples: list[tuple[str, float, bool]] = []
            deadline = time.monotonic() + args.duration
            threads = [threading.Thread(target=searcher, args=(hub, user, tokens[user], n, deadline,
                                                                args.max_requests, samples), daemon=True)
                       for user in users for n in range(args.searchers)]
            load_started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(args.duration + 60)
            seconds = time.monotonic() - load_started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {"benchmark": "hub_load", "users": len(users), "searchers_per_user": args.searchers,
              "duration_s": args.duration, "measured_s": round(seconds, 1), "watch": args.watch,
              "hub_and_servers_ready_s": round(ready_s, 1),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "overall": summary(samples, seconds),
              "per_user": {user: summary([s for s in samples if s[0] == user], seconds) for user in users}}
    print(f"hub_load: {len(users)} users x {args.searchers} searchers, {seconds:.1f}s of warm searches "
          f"through the proxy (hub + servers ready in {ready_s:.1f}s)")
    print(f"{'':8} {'requests':>9} {'errors':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, row in [("overall", result["overall"]), *result["per_user"].items()]:
        print(f"{name:8} {row['requests']:>9} {row['errors']:>7} {row['throughput_rps']:>7} {row['p50_ms']:>8} "
              f"{row['p95_ms']:>8} {row['max_ms']!s:>8}")
    write(args.out, result)
    return 0 if result["overall"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
