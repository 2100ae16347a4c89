"""Cold index of a large corpus, stage by stage, old code against new in one run.

Each run is a child process that indexes a scratch copy of the corpus from nothing
(`Workbench(root).index()`, what `direng index` does) and reports its wall time, peak RSS
and the seconds per stage: read (find, read, hash), scrub (secret/PII detection and redaction,
as far as the indexing process waits on it), parse, chunk, static_vectors, store (the write
transactions), graph (edges and ranks). Variants, interleaved so that machine load hits them
alike:

    baseline     the engine of `--baseline-ref` (default HEAD: `git archive` of direng_kernel);
                 its stages are timed by wrapping the functions the indexer calls (the same
                 boundaries the new indexer times itself)
    screen-off   this tree with DIRENG_SECRET_SCREEN=0: every secret detector on every line
    after        this tree as it is (`IndexReport.stages`)

The load average is recorded beside every run: on a shared machine the figures move with it.

    python benchmarks/cold_index.py                       # Django 5.1.4, one run of each
    python benchmarks/cold_index.py --runs 2 --variants baseline,after
    python benchmarks/cold_index.py --corpus requests     # quick check

Results: a table on stdout and ``benchmarks/results/cold_index.json``
(``cold_index-<corpus>.json`` for other corpora).
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import corpora  # noqa: E402
import results  # noqa: E402
from index_bench import _child_env, _json_or_none, measure  # noqa: E402

STAGES = ("read", "scrub", "parse", "chunk", "static_vectors", "store", "graph")
VARIANTS = ("baseline", "screen-off", "after")

# Runs in the child. An engine without `IndexReport.stages` gets its stages timed by wrapping
# what the indexer calls; the read stage is the rest of the run in both cases.
CHILD = r'''
import contextlib, json, sys, time
from collections import defaultdict
root = sys.argv[1]
t0 = time.perf_counter()
from direng_kernel.workbench import Workbench
from direng_kernel.models import IndexReport
import direng_kernel.index.indexer as ix
from direng_kernel.index.store import IndexStore
wrapped = "stages" not in IndexReport.model_fields
spent = defaultdict(float)
if wrapped:
    depth = {"graph": 0}
    def timed(stage, fn):
        def run(*a, **k):
            t = time.perf_counter()
            if stage == "graph":
                depth["graph"] += 1
            try:
                return fn(*a, **k)
            finally:
                if stage == "graph":
                    depth["graph"] -= 1
                spent[stage] += time.perf_counter() - t
        return run
    for name, stage in (("scrub_many", "scrub"), ("finish_scrub", "scrub"), ("submit_detection", "scrub"),
                        ("parse_source", "parse"), ("_notebook", "parse"), ("chunks_for", "chunk"),
                        ("embed_static", "static_vectors"), ("recompute_edges", "graph"),
                        ("_refresh_ranks", "graph")):
        if hasattr(ix, name):
            setattr(ix, name, timed(stage, getattr(ix, name)))
    transaction = IndexStore.transaction
    @contextlib.contextmanager
    def timed_transaction(self):
        t = time.perf_counter()
        try:
            with transaction(self) as db:
                yield db
        finally:
            if not depth["graph"]:
                spent["store"] += time.perf_counter() - t
    IndexStore.transaction = timed_transaction
imported = time.perf_counter() - t0
wb = Workbench(root)
report = wb.index(progress=False)
counts = wb.store.counts()
wb.close()
stages = dict(report.stages) if not wrapped else {k: round(v, 3) for k, v in spent.items()}
if wrapped:
    stages["read"] = round(max(0.0, report.seconds - sum(spent.values())), 3)
import direng_kernel
print(json.dumps({"code": direng_kernel.__file__, "seconds": report.seconds, "stages": stages, "timed_by": "wrappers" if wrapped else "indexer",
                  "import_s": imported, "added": report.added, "chunks": counts["chunks"],
                  "symbols": counts["symbols"], "files": counts["files"]}))
'''


def baseline_code(ref: str, into: Path) -> Path:
    """`direng_kernel` as of `ref`, unpacked under `into` (a PYTHONPATH entry)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "direng_kernel"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def one_run(variant: str, root: Path, base: Path | None) -> dict[str, Any]:
    shutil.rmtree(root / ".direng", ignore_errors=True)
    env = _child_env()
    env.pop("DIRENG_SECRET_SCREEN", None)
    if variant == "baseline":
        env["PYTHONPATH"] = os.pathsep.join([str(base), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if variant == "screen-off":
        env["DIRENG_SECRET_SCREEN"] = "0"
    load_before = os.getloadavg()
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)  # `measure` passes _child_env(), built from os.environ
    try:
        # cwd: not the repository, whose direng_kernel `-c` would import first (sys.path[0] = cwd)
        r = measure([sys.executable, "-c", CHILD, str(root)], timeout=3600, cwd=root.parent)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out = _json_or_none(r["stdout"]) or {}
    return {"variant": variant, "wall_s": round(r["wall_s"], 2), "peak_rss_mb": round(r["peak_rss_mb"]),
            "rc": r["rc"], "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], **out,
            "stderr_tail": r["stderr_tail"][-1500:] if r["rc"] else ""}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant and r["rc"] == 0]
        if not mine:
            continue
        out[variant] = {
            "runs": len(mine),
            "wall_s": statistics.median(r["wall_s"] for r in mine),
            "index_s": statistics.median(r["seconds"] for r in mine),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
            "stages": {s: statistics.median(r["stages"].get(s, 0.0) for r in mine) for s in STAGES},
            "load_1min": [r["load_before"][0] for r in mine],
        }
    return out


def print_table(summary: dict[str, Any]) -> None:
    variants = [v for v in VARIANTS if v in summary]
    print(f"{'stage':<16}" + "".join(f"{v:>14}" for v in variants))
    for stage in STAGES:
        print(f"{stage:<16}" + "".join(f"{summary[v]['stages'][stage]:>13.2f}s" for v in variants))
    print(f"{'index (in run)':<16}" + "".join(f"{summary[v]['index_s']:>13.2f}s" for v in variants))
    print(f"{'wall (process)':<16}" + "".join(f"{summary[v]['wall_s']:>13.2f}s" for v in variants))
    print(f"{'peak RSS':<16}" + "".join(f"{summary[v]['peak_rss_mb']:>11} MB" for v in variants))
    print(f"{'load (1 min)':<16}" + "".join(f"{'/'.join(f'{x:.1f}' for x in summary[v]['load_1min']):>14}"
                                            for v in variants))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=corpora.BENCH_CORPUS)
    ap.add_argument("--runs", type=int, default=1, help="runs of each variant (interleaved)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--baseline-ref", default="HEAD", help="git ref whose direng_kernel is the baseline")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")

    src = corpora.fetch(args.corpus)
    with tempfile.TemporaryDirectory(prefix="cold-index-") as tmp:
        root = Path(tmp) / src.name
        shutil.copytree(src, root, symlinks=True, ignore=shutil.ignore_patterns(".direng"))
        base = baseline_code(args.baseline_ref, Path(tmp) / "baseline") if "baseline" in variants else None
        runs = []
        for i in range(args.runs):
            for variant in variants:
                print(f"[cold_index] run {i + 1}/{args.runs}: {variant} (load {os.getloadavg()[0]:.1f})",
                      file=sys.stderr, flush=True)
                r = one_run(variant, root, base)
                if r["rc"] != 0:
                    print(f"[cold_index] {variant} failed (rc {r['rc']}): {r['stderr_tail']}", file=sys.stderr)
                runs.append(r)
    summary = summarize(runs)
    print_table(summary)
    name = "cold_index.json" if args.corpus == corpora.BENCH_CORPUS else f"cold_index-{args.corpus}.json"
    results.write(BENCH_DIR / "results" / name, {
        "corpus": corpora.CORPORA[args.corpus].pin, "measured": datetime.now(timezone.utc).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "baseline_ref": args.baseline_ref if "baseline" in variants else None,
        "summary": summary, "runs": runs,
    })
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
