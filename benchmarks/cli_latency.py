"""Latency of one-shot `direng` processes on a large real codebase, as ratios to `direng --help`.

Measured in one run, on scratch copies of a pinned corpus (default: Django 5.1.4, >100k lines;
see ``corpora.py``), each case a fresh child process timed with ``wait4`` (wall, user, system
CPU, peak RSS):

    help                      `direng --help` (Python start-up and the CLI's own imports)
    search, static store      `direng search Q` on an index without MiniLM vectors
    search, MiniLM store      the same on an index where part of the chunks have MiniLM vectors
                              (a one-shot process leaves them out and says so)
    search --dense            the same, asking for MiniLM in-process (torch, model, chromadb)
    watch: help               `direng --help` while `direng index --watch` runs on the MiniLM store
    watch: search             `direng search Q` while the watcher runs: answered on its socket
                              (a version without one answers in-process)
    watch: search, in-process the same with DIRENG_DAEMON=off: the one-shot path beside a
                              watcher that is filling MiniLM vectors (the contention case)

Cases without the watcher are interleaved round-robin, so load from elsewhere on the machine
spreads over all of them; ratios divide a case's p50 by the p50 of `direng --help` measured in
the same block. The watcher is started once its MiniLM filling has been seen running.

    python benchmarks/cli_latency.py                           # Django (first run: indexes, minutes)
    python benchmarks/cli_latency.py --runs 15 --json-output   # `direng search --json` instead of the table
    python benchmarks/cli_latency.py --code /tmp/old --label before   # another checkout's package
    python benchmarks/cli_latency.py --parts --runs 7          # what each change costs or saves
    python benchmarks/cli_latency.py --ab-fill --runs 7        # the watcher's filling: shipped vs plain

`--code DIR` puts DIR first on PYTHONPATH of every child (e.g. ``git archive HEAD~1
direng_kernel | tar -x -C DIR``), so two versions are measured on the same stores;
`--watcher-code DIR` does it for the watcher alone (today's one-shot search beside an older
watcher: what the watcher's side of a change is worth).

Results: a pandas DataFrame on stdout and JSON in ``benchmarks/results/cli_latency.json``
(``cli_latency-<corpus>[-<label>].json`` otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import corpora  # noqa: E402
import results  # noqa: E402
from index_bench import DJANGO_QUERIES, direng_cmd, pct  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = corpora.CACHE_DIR / "bench-work" / "cli-latency"
GENERIC_QUERIES = ["where is the configuration loaded", "how are errors reported to the caller",
                   "where is the main entry point", "how is input parsed", "where are results cached"]


# -- processes ----------------------------------------------------------------------------

def child_env(code: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Measure what an installed package does: bytecode is cached after the first run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for k, v in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("ANONYMIZED_TELEMETRY", "False"),
                 ("TOKENIZERS_PARALLELISM", "false")):
        env.setdefault(k, v)
    for name in [n for n in env if n.startswith("DIRENG_") and n not in ("DIRENG_CACHE_DIR",)]:
        del env[name]
    if code is not None:
        env["PYTHONPATH"] = str(code) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def run_once(cmd: list[str], env: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=tempfile.gettempdir())
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            raise
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    return {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024,
            "rc": os.waitstatus_to_exitcode(status), "stderr": stderr[-600:], "stdout_head": stdout[:200]}


class Case:
    def __init__(self, name: str, args: list[str], env: dict[str, str], block: str):
        self.name, self.args, self.env, self.block = name, args, env, block
        self.samples: list[dict[str, Any]] = []

    def cmd(self, query: str) -> list[str]:
        return [*direng_cmd(), *[query if a == "{q}" else a for a in self.args]]

    def run(self, query: str) -> dict[str, Any]:
        sample = run_once(self.cmd(query), self.env)
        if sample["rc"] != 0:
            raise SystemExit(f"{self.name}: exit {sample['rc']}: {sample['stderr']}")
        self.samples.append(sample)
        return sample

    def summary(self) -> dict[str, Any]:
        walls = [s["wall_s"] * 1000 for s in self.samples]
        return {"case": self.name, "block": self.block, "runs": len(walls), "p50_ms": pct(walls, 50),
                "p95_ms": pct(walls, 95), "min_ms": min(walls), "max_ms": max(walls),
                "user_ms": statistics.median(s["user_s"] * 1000 for s in self.samples),
                "sys_ms": statistics.median(s["sys_s"] * 1000 for s in self.samples),
                "rss_mb": statistics.median(s["rss_mb"] for s in self.samples),
                "notes": sorted({ln for s in self.samples for ln in s["stderr"].splitlines() if "note:" in ln})}


# -- stores -------------------------------------------------------------------------------

def store_counts(root: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{root / '.direng' / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        return {"files": q("SELECT count(*) FROM files"), "lines": q("SELECT coalesce(sum(lines), 0) FROM files"),
                "chunks": q("SELECT count(*) FROM chunks"),
                "minilm_chunks": q("SELECT count(*) FROM chunks WHERE dense=1")}
    finally:
        db.close()


def prepare_stores(corpus: str, minilm_chunks: int, fresh: bool, env: dict[str, str]) -> tuple[Path, Path]:
    """`static/` (indexed, no MiniLM) and `minilm/` (the same plus `minilm_chunks` MiniLM vectors),
    reused between runs unless `fresh`."""
    src = corpora.fetch(corpus)
    base = WORK_DIR / corpus
    static, minilm = base / "static", base / "minilm"
    marker = base / "ready.json"
    want = {"corpus": src.name, "minilm_chunks": minilm_chunks}
    if not fresh and marker.exists() and json.loads(marker.read_text()) == want:
        return static, minilm
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    shutil.copytree(src, static, symlinks=True, ignore=shutil.ignore_patterns(".direng"))
    print(f"indexing {static} (once) ...", file=sys.stderr)
    r = run_once([*direng_cmd(), "index", str(static)], env, timeout=3600)
    if r["rc"] != 0:
        raise SystemExit(f"index failed: {r['stderr']}")
    shutil.copytree(static, minilm, symlinks=True)
    print(f"filling {minilm_chunks} MiniLM vectors in {minilm} (once) ...", file=sys.stderr)
    code = ("import sys; from direng_kernel.workbench import Workbench; "
            "print(Workbench(sys.argv[1]).fill_dense(limit=int(sys.argv[2])))")
    r = run_once([sys.executable, "-c", code, str(minilm), str(minilm_chunks)], env, timeout=7200)
    if r["rc"] != 0:
        raise SystemExit(f"MiniLM fill failed: {r['stderr']}")
    marker.write_text(json.dumps(want))
    return static, minilm


# -- the watcher --------------------------------------------------------------------------

def package_dir(code: Path | None) -> Path:
    if code is not None:
        return code / "direng_kernel"
    import direng_kernel

    return Path(direng_kernel.__file__).parent


def start_watcher(root: Path, env: dict[str, str], socket: bool, timeout: float = 600) -> tuple[subprocess.Popen, dict]:
    """`direng index ROOT --watch`, returned once its MiniLM filling is running (and, for a
    version with the socket, once that answers)."""
    log = (root.parent / f"{root.name}.watch.log").open("wb")
    # Ctrl-C must reach it even when this script runs in the background (where SIGINT is ignored).
    proc = subprocess.Popen([*direng_cmd(), "index", str(root), "--watch"], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.perf_counter()
    sock = root / ".direng" / "daemon.sock"
    dense0 = store_counts(root)["minilm_chunks"]
    info: dict[str, Any] = {"socket": False}
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the watcher exited with {proc.returncode}")
        filling = store_counts(root)["minilm_chunks"] > dense0
        info["socket"] = sock.exists()
        if filling and (info["socket"] or not socket):
            break
        time.sleep(0.5)
    info["ready_s"] = time.perf_counter() - t0
    return proc, info


def stop_watcher(proc: subprocess.Popen) -> str:
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10)):
        try:
            proc.send_signal(sig)
            proc.wait(wait)
            return sig.name
        except subprocess.TimeoutExpired:
            continue
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return "SIGKILL"


# -- what each change is worth --------------------------------------------------------------

# Each part: (name, setup code, timed code), run in fresh child processes; the timed code's own
# milliseconds are what counts (Python start-up is the same for every part).
_EMBED = "from direng_kernel.index import embed; d = embed.prepare_static()"
_STORE = ("import numpy as np; from direng_kernel.index.store import IndexStore; s = IndexStore(STORE); "
          "q = np.ones(256, np.float32)")
PARTS = [
    ("static model: model2vec StaticModel (import + load + 1 query)", _EMBED,
     "from model2vec import StaticModel; StaticModel.from_pretrained(str(d)).encode(['where are passwords hashed'])"),
    ("static model: StaticEncoder (import + load + 1 query)", _EMBED,
     "embed.StaticEncoder(d).encode(['where are passwords hashed'])"),
    ("static matrix: from SQLite (+ 1 product)", _STORE, "ids, paths, m = s.static_matrix(); (m @ q).argmax()"),
    ("static matrix: memory-mapped cache (+ 1 product)",
     _STORE + "; g = s.get_meta('generation'); "
     "s.load_static_cache(g) or s.write_static_cache(g, *s.static_matrix()[::2])",
     "ids, m = s.load_static_cache(g); (m @ q).argmax()"),
    ("import direng_kernel.engine", "", "import direng_kernel.engine"),
    ("import direng_kernel.client", "", "import direng_kernel.client"),
    ("import direng_kernel.security.scrub (the CLI's log filter, now on first record)", "",
     "import direng_kernel.security.scrub"),
    ("dense_ids, 10 lookups of 100 chunks: dense=1 AND id IN (...)",
     "from direng_kernel.index.store import IndexStore; s = IndexStore(STORE); "
     "ids = [r[0] for r in s.db.execute('SELECT id FROM chunks WHERE dense=1 LIMIT 100')]; "
     "sql = 'SELECT id FROM chunks WHERE dense=1 AND id IN (%s)' % ','.join('?' * len(ids))",
     "[s.db.execute(sql, ids).fetchall() for _ in range(10)]"),
    ("dense_ids, 10 lookups of 100 chunks: +dense=1 AND id IN (...)",
     "from direng_kernel.index.store import IndexStore; s = IndexStore(STORE); "
     "ids = [r[0] for r in s.db.execute('SELECT id FROM chunks WHERE dense=1 LIMIT 100')]; "
     "sql = 'SELECT id FROM chunks WHERE +dense=1 AND id IN (%s)' % ','.join('?' * len(ids))",
     "[s.db.execute(sql, ids).fetchall() for _ in range(10)]"),
]


def measure_parts(store: Path, code: Path | None, runs: int) -> list[dict[str, Any]]:
    rows = []
    for name, setup, timed in PARTS:
        if code is not None and ("StaticEncoder" in timed or "cache" in name):
            continue  # the older package has neither
        prog = (f"import time, pathlib; STORE = pathlib.Path({str(store)!r})\n{setup}\n"
                f"t = time.perf_counter()\n{timed}\nprint((time.perf_counter() - t) * 1000)")
        times = []
        for _ in range(runs):
            p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=child_env(code),
                               cwd=tempfile.gettempdir(), timeout=600)
            if p.returncode:
                raise SystemExit(f"{name}: {p.stderr[-800:]}")
            times.append(float(p.stdout.strip().splitlines()[-1]))
        rows.append({"part": name, "runs": runs, "p50_ms": pct(times, 50), "min_ms": min(times)})
    return rows


# -- the watcher's side, A/B -----------------------------------------------------------------

# The shipped watcher with its MiniLM filling at normal priority and never pausing for queries.
_PLAIN_WATCHER = (
    "import sys, direng_kernel.index.refresh as r, direng_kernel.workbench as w; "
    "r.lower_thread_priority = lambda: False; w.Workbench.busy_answering = lambda self, quiet=0.0: False; "
    "from direng_kernel.cli.main import main; sys.argv = ['direng', 'index', sys.argv[1], '--watch']; sys.exit(main())")


def ab_fill(minilm: Path, runs: int, queries: list[str]) -> dict[str, Any]:
    """Served and in-process searches beside the shipped watcher and beside a "plain" one (the
    same code, filling at normal priority, never pausing); two alternating blocks of each."""
    watched = minilm.parent / "watch-ab"
    shutil.rmtree(watched, ignore_errors=True)
    shutil.copytree(minilm, watched, symlinks=True)
    served_env, local_env = child_env(None), child_env(None, {"DIRENG_DAEMON": "off"})
    raw = {v: {"served_ms": [], "in_process_ms": [], "help_ms": [], "fill_per_s": []} for v in ("plain", "shipped")}
    for _ in range(2):
        for variant in ("plain", "shipped"):
            cmd = ([*direng_cmd(), "index", str(watched), "--watch"] if variant == "shipped"
                   else [sys.executable, "-c", _PLAIN_WATCHER, str(watched)])
            log = (watched.parent / f"watch-ab-{variant}.log").open("wb")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=served_env, start_new_session=True,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            try:
                c0, t0 = store_counts(watched)["minilm_chunks"], time.perf_counter()
                while not ((watched / ".direng" / "daemon.sock").exists()
                           and store_counts(watched)["minilm_chunks"] > c0):
                    if proc.poll() is not None or time.perf_counter() - t0 > 600:
                        raise SystemExit(f"the {variant} watcher did not start")
                    time.sleep(0.5)
                c0, t0 = store_counts(watched)["minilm_chunks"], time.perf_counter()
                for i in range(runs):
                    raw[variant]["help_ms"].append(run_once([*direng_cmd(), "--help"], served_env)["wall_s"] * 1000)
                    r = run_once([*direng_cmd(), "search", queries[i % len(queries)], "--root", str(watched)], served_env)
                    raw[variant]["served_ms"].append(r["wall_s"] * 1000)
                time.sleep(2)  # let the filling resume
                for i in range(runs):
                    r = run_once([*direng_cmd(), "search", queries[i % len(queries)], "--root", str(watched)], local_env)
                    raw[variant]["in_process_ms"].append(r["wall_s"] * 1000)
                raw[variant]["fill_per_s"].append((store_counts(watched)["minilm_chunks"] - c0)
                                                  / (time.perf_counter() - t0))
            finally:
                stop_watcher(proc)
                log.close()
    p50 = {v: {k: (pct(x, 50) if k != "fill_per_s" else x) for k, x in d.items()} for v, d in raw.items()}
    return {"p50": p50, "raw": raw}


# -- main ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="django")
    ap.add_argument("--runs", type=int, default=11, help="runs per case (default 11)")
    ap.add_argument("--dense-runs", type=int, default=3, help="runs of `search --dense` (slow; 0 skips it)")
    ap.add_argument("--minilm-chunks", type=int, default=4000, help="MiniLM vectors in the MiniLM store")
    ap.add_argument("--json-output", action="store_true", help="time `direng search --json` instead of the table")
    ap.add_argument("--skip-watch", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="rebuild the scratch stores")
    ap.add_argument("--code", type=Path, help="measure the package found in this directory (PYTHONPATH)")
    ap.add_argument("--watcher-code", type=Path,
                    help="run the watcher from this directory's package instead (the clients stay on --code)")
    ap.add_argument("--label", default="", help="suffix of the results file")
    ap.add_argument("--parts", action="store_true",
                    help="instead: what each change costs or saves, in fresh processes (imports, loads, queries)")
    ap.add_argument("--ab-fill", action="store_true",
                    help="instead: the watcher's filling as shipped (nice 19, pausing for queries) against normal "
                         "priority without pauses, alternating")
    args = ap.parse_args(argv)

    env = child_env(args.code)
    if args.ab_fill:
        _static, minilm = prepare_stores(args.corpus, args.minilm_chunks, args.fresh, env)
        data = ab_fill(minilm, args.runs, DJANGO_QUERIES if args.corpus == "django" else GENERIC_QUERIES)
        print(json.dumps(data["p50"], indent=1))
        data.update(benchmark="cli_latency --ab-fill", started=datetime.now(timezone.utc).isoformat(),
                    loadavg=os.getloadavg())
        results.write(RESULTS_DIR / "cli_latency-ab-fill.json", data)
        return 0
    if args.parts:
        import pandas as pd

        _static, minilm = prepare_stores(args.corpus, args.minilm_chunks, args.fresh, env)
        rows = measure_parts(minilm / ".direng", args.code, args.runs)
        with pd.option_context("display.width", 200, "display.max_colwidth", 90, "display.max_columns", 10,
                               "display.precision", 2):
            print(pd.DataFrame(rows).set_index("part"))
        name = "cli_latency-parts" + (f"-{args.label}" if args.label else "")
        results.write(RESULTS_DIR / f"{name}.json", {
            "benchmark": "cli_latency --parts", "corpus": args.corpus, "started": datetime.now(timezone.utc).isoformat(),
            "code": str(args.code) if args.code else "installed package", "loadavg": os.getloadavg(), "parts": rows})
        return 0
    has_socket = (package_dir(args.code) / "daemon_socket.py").exists()  # and `search --dense`
    static, minilm = prepare_stores(args.corpus, args.minilm_chunks, args.fresh, env)
    queries = DJANGO_QUERIES if args.corpus == "django" else GENERIC_QUERIES
    out = ["--json"] if args.json_output else []
    search = ["search", "{q}", "-k", "10", *out]
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc)

    no_watch = [Case("help", ["--help"], env, "no watcher"),
                Case("search, static store", [*search, "--root", str(static)], env, "no watcher"),
                Case("search, MiniLM store", [*search, "--root", str(minilm)], env, "no watcher")]
    for case in no_watch:  # warm-up: bytecode, page cache, the stores' static-matrix cache
        case.run(queries[-1])
        case.samples.clear()
    for i in range(args.runs):
        for case in no_watch:
            case.run(queries[i % len(queries)])
    cases = list(no_watch)
    if args.dense_runs and has_socket:
        dense = Case("search --dense, MiniLM store", [*search, "--root", str(minilm), "--dense"], env, "no watcher")
        for i in range(args.dense_runs):
            dense.run(queries[i % len(queries)])
        cases.append(dense)

    watch_info: dict[str, Any] = {}
    if not args.skip_watch:
        watched = minilm.parent / "watch"
        shutil.rmtree(watched, ignore_errors=True)
        shutil.copytree(minilm, watched, symlinks=True)
        watcher_code = args.watcher_code or args.code
        watcher_socket = (package_dir(watcher_code) / "daemon_socket.py").exists()
        proc, watch_info = start_watcher(watched, child_env(watcher_code), watcher_socket)
        watch_info["watcher_code"] = str(watcher_code) if watcher_code else "installed package"
        try:
            before = store_counts(watched)["minilm_chunks"]
            served = [Case("watch: help", ["--help"], env, "watcher"),
                      Case("watch: search", [*search, "--root", str(watched)], env, "watcher")]
            for case in served:
                case.run(queries[-1])
                case.samples.clear()
            for i in range(args.runs):
                for case in served:
                    case.run(queries[i % len(queries)])
            time.sleep(3)  # the filling resumes once queries stop
            local = Case("watch: search, in-process", [*search, "--root", str(watched)],
                         child_env(args.code, {"DIRENG_DAEMON": "off"}), "watcher")
            filled0 = store_counts(watched)["minilm_chunks"]
            t = time.perf_counter()
            for i in range(args.runs):
                local.run(queries[i % len(queries)])
            watch_info["filled_during_in_process_runs"] = store_counts(watched)["minilm_chunks"] - filled0
            watch_info["in_process_block_s"] = time.perf_counter() - t
            watch_info["filled_during_measurements"] = store_counts(watched)["minilm_chunks"] - before
            cases += [*served, local]
        finally:
            watch_info["stopped_by"] = stop_watcher(proc)
            watch_info["socket_left_behind"] = (watched / ".direng" / "daemon.sock").exists()

    rows = [c.summary() for c in cases]
    help_p50 = {r["block"]: r["p50_ms"] for r in rows if r["case"].endswith("help")}
    for r in rows:
        r["ratio_p50_to_help"] = r["p50_ms"] / help_p50[r["block"]]
        r["ratio_p95_to_help_p50"] = r["p95_ms"] / help_p50[r["block"]]

    import pandas as pd

    frame = pd.DataFrame(rows).set_index("case")
    cols = ["runs", "p50_ms", "p95_ms", "ratio_p50_to_help", "ratio_p95_to_help_p50", "user_ms", "sys_ms", "rss_mb"]
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 2):
        print(frame[cols])
    for r in rows:
        for note in r["notes"]:
            print(f"{r['case']}: {note}")
    data = {
        "benchmark": "cli_latency", "corpus": args.corpus, "started": started.isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "code": str(args.code) if args.code else "installed package", "has_socket": has_socket,
        "command": "python benchmarks/cli_latency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "output": "json" if args.json_output else "table",
        "stores": {"static": store_counts(static), "minilm": store_counts(minilm)},
        "watch": watch_info, "cases": rows,
        "samples": {c.name: [{k: v for k, v in s.items() if k not in ("stdout_head",)} for s in c.samples]
                    for c in cases},
    }
    name = "cli_latency" + ("" if args.corpus == "django" else f"-{args.corpus}") + (f"-{args.label}" if args.label else "")
    results.write(RESULTS_DIR / f"{name}.json", data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
