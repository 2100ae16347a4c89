"""Record a real run history for PLMS: real lane tasks, run end to end, of sizes that vary within
each lane's features, into one scratch task store that `benchmarks/plms_size.py --store` reads.

Every run takes the path of `direng task new --lane L --param ... / estimate / approve / start`:
a one-shot `Engine` of the task's repository (the CLI's in-process transport) creates the task (PEX
measures its sizes), estimates it (PLMS, from the history so far), approves it and sees it through
(`Engine.run_task`: PAS claims the run, refreshes the index, runs the lane notebook with papermill
in the default sandbox, evaluates the gates). The durations are the store's own (claim to finish);
nothing here is synthetic except the inputs.

The repositories are real code: packages installed in this venv (mdurl ... pydantic, 0.5k to 47k
lines), each copied into a git repository with one commit and indexed before any run (as a user
runs `direng index .` first; indexing is not a run). All their tasks go to one history: the task
store is shared through `DIRENG_PEX_DB=sqlite:///<out>/pex.sqlite3`, as a team shares one store
(`pex/db.py`), while each repository keeps its own index, runs and passports in its `.direng/`.

What varies, per lane (`plms.features.LANE_FEATURES`):
  * graph-ops, narrative: the repository (repo_files, repo_lines);
  * vector-ops: a change of 5..3,000 added lines committed to a repository just before the task
    (changed_lines since the indexed commit; the run's refresh re-reads it), then
  * code-api-design: that same commit, base_ref HEAD~1 .. head_ref HEAD ("what did my last commit
    change?"; changed_lines, repo_lines);
  * code-impl: a patch adding a module of k helpers and a test file of k tests (k 1..400, so
    patch_lines 10..3,200) to the lane fixture `inventory`; the lane applies it in a worktree
    and runs pytest and pyflakes;
  * data-schema: input sets generated once in a copy of `inventory` (orders and products shaped
    like its pydantic models), 2..1,200 files, each order 1..120 lines long (input_files,
    input_bytes), data_glob naming one set.
The order of the tasks is shuffled (seeded), so size is not confounded with time.

    python benchmarks/plms_record.py [--runs 20] [--lanes graph-ops,narrative,...] [--seed 0] [--out DIR]

writes the store under benchmarks/.cache/plms_history/ (replaced on each run; `--append` adds to
it) and benchmarks/results/plms_record.json (what was recorded: every run with its sizes,
duration, estimate and state; machine and load). Then:

    python benchmarks/plms_size.py --store benchmarks/.cache/plms_history
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / ".cache" / "plms_history"
RESULTS = HERE / "results" / "plms_record.json"
LANE_FIXTURE = REPO / "tests" / "fixtures" / "lane_repo"
# Real code of widely varying size, installed with the project (its dependencies); a missing one is skipped.
PACKAGES = ["mdurl", "genson", "nbclient", "h11", "nbformat", "mistune", "httpx", "jsonschema", "click",
            "jinja2", "anyio", "pydantic"]
ALL_LANES = ["graph-ops", "narrative", "vector-ops", "code-api-design", "code-impl", "data-schema"]
GIT = ["-c", "user.name=plms-record", "-c", "user.email=plms@direng.invalid", "-c", "commit.gpgsign=false",
       "-c", "init.defaultBranch=main"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT, "-C", str(root), *args], check=True, capture_output=True,
                          text=True, timeout=120).stdout.strip()


def commit_repo(root: Path, message: str) -> None:
    if not (root / ".git").exists():
        git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


# -- repositories ------------------------------------------------------------------------------
def package_repo(out: Path, name: str) -> Optional[Path]:
    """A git repository holding the installed package `name` (sources only), or None if absent."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = out / "repos" / name
    shutil.copytree(Path(list(spec.submodule_search_locations)[0]), root / name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.dylib"))
    (root / ".gitignore").write_text(".direng/\n__pycache__/\n")
    commit_repo(root, f"{name} as installed")
    return root


def inventory_repo(out: Path, name: str) -> Path:
    root = out / "repos" / name
    shutil.copytree(LANE_FIXTURE, root)
    shutil.rmtree(root / "data", ignore_errors=True)  # the fixture's own samples: data-schema uses generated sets
    commit_repo(root, "inventory")
    return root


def make_datasets(root: Path, rng: random.Random, n_sets: int) -> list[str]:
    """Input sets data/sets/sNN/{orders,products}/*.json, shaped like the repo's Order and Product
    models: 2..1,200 files a set, each order 1..120 lines. Returns one data_glob per set."""
    globs = []
    for i in range(n_sets):
        files, lines = log_uniform(rng, 2, 1200), log_uniform(rng, 1, 120)
        base = root / "data" / "sets" / f"s{i:02d}"
        for kind in ("orders", "products"):
            (base / kind).mkdir(parents=True)
        for j in range(files):
            if j % 3 == 2:
                doc = {"sku": f"S-{j}", "name": f"part {j}", "price": 1.5 + j, "discontinued": j % 7 == 0,
                       "tags": [f"t{k}" for k in range(rng.randint(0, max(1, lines // 4)))]}
                (base / "products" / f"p{j:05d}.json").write_text(json.dumps(doc))
            else:
                doc = {"id": j, "customer": f"c{rng.randint(1, 999)}",
                       "lines": [{"sku": f"S-{rng.randint(1, 999)}", "qty": rng.randint(1, 9)}
                                 for _ in range(max(1, int(lines * rng.uniform(0.5, 1.5))))]}
                (base / "orders" / f"o{j:05d}.json").write_text(json.dumps(doc))
        globs.append(f"data/sets/s{i:02d}/**/*.json")
    return globs


def index_repo(root: Path) -> float:
    from direng_kernel.workbench import Workbench

    t0 = time.perf_counter()
    wb = Workbench(root)
    wb.index()
    wb.close()
    return time.perf_counter() - t0


# -- changes -------------------------------------------------------------------------------------
def commit_change(root: Path, rng: random.Random, tag: str, target_lines: int) -> dict:
    """Append public functions (7 lines each) to a few of the repository's modules and commit."""
    modules = sorted(p for p in root.rglob("*.py") if ".direng" not in p.parts and ".git" not in p.parts)
    n_funcs = max(1, target_lines // 7)
    chosen = rng.sample(modules, min(len(modules), max(1, n_funcs // 40 + 1)))
    for k, path in enumerate(chosen):
        funcs = [f"\n\ndef gen_{tag}_{j}(value, scale={j + 1}):\n"
                 f'    """Added by change {tag} (function {j})."""\n'
                 f"    total = value * scale\n    return total + {j}\n"
                 for j in range(k, n_funcs, len(chosen))]
        with path.open("a", encoding="utf-8") as fh:
            fh.write("".join(funcs))
    commit_repo(root, f"change {tag}: {n_funcs} functions in {len(chosen)} module(s)")
    return {"functions": n_funcs, "modules": len(chosen)}


def impl_patch(tag: str, k: int) -> str:
    """A unified diff adding inventory/gen_<tag>.py (k helpers) and tests/check_gen_<tag>.py (k tests)."""
    module = [f'"""Helpers of change {tag}."""', ""]
    for j in range(k):
        module += ["", f"def helper_{j}(x):", f'    """x scaled by {j + 2}."""', f"    return x * {j + 2}", ""]
    tests = [f"import inventory.gen_{tag} as gen", ""]
    for j in range(k):
        tests += ["", f"def test_helper_{j}():", f"    assert gen.helper_{j}(3) == {3 * (j + 2)}"]
    module, tests = module[:-1] if module[-1] == "" else module, tests

    def new_file(path: str, lines: list[str]) -> str:
        body = "".join(f"+{line}\n" for line in lines)
        return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
                f"@@ -0,0 +1,{len(lines)} @@\n{body}")

    return new_file(f"inventory/gen_{tag}.py", module) + new_file(f"tests/check_gen_{tag}.py", tests)


# -- the plan ------------------------------------------------------------------------------------
@dataclass
class Step:
    lane: str
    repo: Path
    title: str
    parameters: dict = field(default_factory=dict)
    before: Optional[Callable[[], dict]] = None  # run just before the task is created (a commit)
    note: dict = field(default_factory=dict)


def plan(out: Path, lanes: list[str], runs: int, rng: random.Random, log: Callable[[str], None]) -> list[list[Step]]:
    """Groups of steps (a group runs in order: a change, then the tasks about it), shuffled."""
    repos = []
    if {"graph-ops", "narrative", "vector-ops", "code-api-design"} & set(lanes):
        for name in PACKAGES:
            root = package_repo(out, name)
            if root is None:
                log(f"  {name}: not installed, skipped")
                continue
            seconds = index_repo(root)
            log(f"  repo {name}: indexed in {seconds:.1f} s")
            repos.append(root)
    groups: list[list[Step]] = []
    spread = lambda k: repos[k % len(repos)]  # noqa: E731 - every repository about equally often
    for lane in ("graph-ops", "narrative"):
        if lane in lanes:
            order = list(range(runs))
            rng.shuffle(order)
            groups += [[Step(lane, spread(k), f"{'map the structure' if lane == 'graph-ops' else 'document'}"
                             f" of {spread(k).name}")] for k in order]
    if {"vector-ops", "code-api-design"} & set(lanes):
        for k in range(runs):
            root, lines, tag = spread(k), log_uniform(rng, 5, 3000), f"c{k:03d}"
            group = []
            change = (lambda root=root, tag=tag, lines=lines, r=random.Random(rng.random()):
                      commit_change(root, r, tag, lines))
            if "vector-ops" in lanes:
                group.append(Step("vector-ops", root, f"refresh the index of {root.name} after {tag}",
                                  before=change, note={"target_lines": lines}))
            if "code-api-design" in lanes:
                group.append(Step("code-api-design", root, f"check the API change of {tag} in {root.name}",
                                  {"base_ref": "HEAD~1", "head_ref": "HEAD"},
                                  before=None if group else change, note={"target_lines": lines}))
            groups.append(group)
    if "code-impl" in lanes:
        inv = inventory_repo(out, "inventory")
        log(f"  repo inventory: indexed in {index_repo(inv):.1f} s")
        for k in range(runs):
            n = log_uniform(rng, 1, 400)
            groups.append([Step("code-impl", inv, f"add {n} helpers with tests (p{k:03d})",
                                {"patch": impl_patch(f"p{k:03d}", n)}, note={"helpers": n})])
    if "data-schema" in lanes:
        data = inventory_repo(out, "datasets")
        globs = make_datasets(data, rng, runs)
        commit_repo(data, "input sets")
        log(f"  repo datasets: {runs} input sets, indexed in {index_repo(data):.1f} s")
        groups += [[Step("data-schema", data, f"infer the schemas of {g.split('/')[2]}", {"data_glob": g})]
                   for g in globs]
    rng.shuffle(groups)
    return groups


# -- running -------------------------------------------------------------------------------------
def run_step(step: Step) -> dict:
    """One task, as `direng task new/estimate/approve/start` runs it (a one-shot engine per task)."""
    from direng_kernel.engine import Engine

    done = step.before() if step.before else None
    engine = Engine(step.repo, one_shot=True)
    try:
        t0 = time.perf_counter()
        task = engine.new_task(step.title, "", step.lane, step.parameters)
        task = engine.task_action(task.id, "estimate")
        est = task.estimate
        if task.state.value == "escalated":
            return {"lane": step.lane, "repo": step.repo.name, "state": "escalated", "error": task.escalation.message}
        engine.task_action(task.id, "approve")
        task = engine.run_task(task.id)
        wall = time.perf_counter() - t0
        tasks = engine.orchestrator.tasks
        run = tasks.get_run(task.run_id) if task.run_id else {}
        return {"lane": step.lane, "repo": step.repo.name, "task_id": task.id, "run_id": task.run_id,
                "state": task.state.value, "error": task.error, "duration_s": run.get("duration_s"),
                "wall_s": round(wall, 2), "sizes": tasks.task_size(task.id), "change": done, **step.note,
                "estimate": {"p50_s": est.duration_p50_s, "p90_s": est.duration_p90_s, "model": est.model,
                             "prior_only": est.prior_only, "n_history": est.n_history}}
    finally:
        engine.stop()
        engine.workbench.close()


def sizes_text(sizes: dict) -> str:
    from direng_kernel.plms.features import FEATURES

    return ", ".join(FEATURES[k].describe(v) if k in FEATURES else f"{k}={v:g}" for k, v in sorted(sizes.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="runs per lane (default 20: 15 scored from the 6th)")
    ap.add_argument("--lanes", default=",".join(ALL_LANES), help="comma-separated lanes to record")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT, help="the scratch store (replaced unless --append)")
    ap.add_argument("--append", action="store_true", help="add runs to the history already in --out")
    args = ap.parse_args(argv)
    lanes = [x.strip() for x in args.lanes.split(",") if x.strip()]
    if bad := sorted(set(lanes) - set(ALL_LANES)):
        ap.error(f"unknown lane(s) {', '.join(bad)}; lanes: {', '.join(ALL_LANES)}")
    out = args.out.resolve()
    if out.exists() and not args.append:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    # One history for every repository: the shared task store (each keeps its index and runs).
    os.environ["DIRENG_PEX_DB"] = f"sqlite:///{out / 'pex.sqlite3'}"
    for var in ("DIRENG_PEX_SCHEMA", "DIRENG_POLICY", "DIRENG_LANES_PATH", "DIRENG_EXECUTOR"):
        os.environ.pop(var, None)
    rng = random.Random(args.seed)
    log = lambda s: print(s, flush=True)  # noqa: E731 - CLI output
    load0, t_start = os.getloadavg(), time.perf_counter()
    log(f"setting up under {out} (load {load0[0]:.1f} on {os.cpu_count()} cores)")
    if args.append:
        out = out / f"append-{int(time.time())}"  # fresh repositories; the store is the one above
    groups = plan(out, lanes, args.runs, rng, log)
    setup_s = time.perf_counter() - t_start
    total = sum(len(g) for g in groups)
    log(f"{total} runs ({', '.join(lanes)}); setup {setup_s:.0f} s")
    records, k = [], 0
    for group in groups:
        for step in group:
            k += 1
            try:
                rec = run_step(step)
            except Exception as exc:  # one broken run is reported, the history goes on
                rec = {"lane": step.lane, "repo": step.repo.name, "state": "error",
                       "error": f"{type(exc).__name__}: {exc}"}
            records.append(rec)
            if rec.get("duration_s") is not None:
                e = rec["estimate"]
                log(f"[{k:>3}/{total}] {rec['lane']:<15} {rec['repo']:<10} {sizes_text(rec['sizes']):<38} "
                    f"{rec['state']:<9} {rec['duration_s']:6.1f} s  (est p50 {e['p50_s']:.1f} p90 {e['p90_s']:.1f}, "
                    f"{'prior' if e['prior_only'] else e['model']})")
            else:
                log(f"[{k:>3}/{total}] {rec['lane']:<15} {rec['repo']:<10} {rec['state']}: {rec.get('error')}")
            if rec.get("error") and rec.get("state") != "succeeded":
                log(f"      {str(rec['error'])[:300]}")
    wall = time.perf_counter() - t_start
    load1 = os.getloadavg()
    summary = {}
    for lane in lanes:
        ok = [r for r in records if r["lane"] == lane and r.get("state") == "succeeded"]
        d = sorted(r["duration_s"] for r in ok)
        summary[lane] = {"runs": sum(r["lane"] == lane for r in records), "succeeded": len(ok),
                         **({"min_s": round(d[0], 2), "median_s": round(d[len(d) // 2], 2), "max_s": round(d[-1], 2)}
                            if d else {})}
        log(f"{lane:<15} {summary[lane]}")
    from results import write  # noqa: E402 - benchmarks/ helper

    write(RESULTS, {"measured": datetime.now(timezone.utc).isoformat(), "store": str(args.out.resolve()),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "load_1min": {"start": round(load0[0], 2), "end": round(load1[0], 2)},
                    "seed": args.seed, "runs_per_lane": args.runs, "lanes": lanes, "setup_s": round(setup_s, 1),
                    "wall_s": round(wall, 1), "summary": summary,
                    "runs": [{k: v for k, v in r.items() if k != "patch"} for r in records]})
    log(f"recorded {sum(r.get('state') == 'succeeded' for r in records)} succeeded runs of {total} in {wall:.0f} s "
        f"(load {load0[0]:.1f} → {load1[0]:.1f}); compare: python benchmarks/plms_size.py --store {args.out}")
    return 0 if all(r.get("state") == "succeeded" for r in records) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
