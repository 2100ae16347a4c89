"""Retrieval quality of the code index on real corpora, against plain baselines.

For each evaluation corpus (pinned PyPI releases, see ``corpora.py``) this indexes the
unpacked release with ``Workbench.index(dense=True)`` and asks every question of
``eval/questions.json`` to:

    ours_hybrid   wb.search(q, mode="hybrid")      the engine as shipped
    ours_bm25     wb.search(q, mode="bm25")        its lexical retriever alone
    ours_dense    wb.search(q, mode="dense")       its vector retrievers alone
    ours_static   wb.search(q, mode="static")      (optional) static vectors alone
    base_bm25     bm25s over the same chunk texts  (baselines.BM25Baseline)
    base_dense    MiniLM cosine over the chunks    (optional, baselines.DenseBaseline)
    base_hybrid   base_bm25 + base_dense by RRF    (baselines.NaiveHybridBaseline)

Metrics per question (k = 10 hits asked for):

    file@1   the first hit is in a gold file          (path only)
    file@5   a gold file is among the first 5 hits    (path only)
    sym@5    a gold (path, symbol) is among the first 5 hits; symbols match exactly
             (gold ``Session`` does not match a hit ``Session.request``)
    mrr      1 / rank of the first exact (path, symbol) match within the k hits, else 0

"callers" questions ("what calls X?") are also answered through the call graph,
``wb.graph("path::X", direction="callers")``: set recall and precision of the calling
symbols against the gold callers (callers outside the question's ``caller_scope``, e.g.
tests, are ignored on both sides).  Through search they get the metrics above plus
``callers@10`` (share of gold callers among the k hits).

    python benchmarks/retrieval_eval.py                      # all corpora, default modes
    python benchmarks/retrieval_eval.py --corpus requests --limit 5 -v
    python benchmarks/retrieval_eval.py --modes ours_hybrid,base_bm25
    python benchmarks/retrieval_eval.py --check-gold         # validate the question set only

Results: a table on stdout and JSON in ``benchmarks/results/retrieval_eval.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # works as a script and as `import benchmarks.retrieval_eval`

import corpora  # noqa: E402
from results import write as write_results  # noqa: E402

QUESTIONS = BENCH_DIR / "eval" / "questions.json"
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_OUT = RESULTS_DIR / "retrieval_eval.json"

OURS = {"ours_hybrid": "hybrid", "ours_bm25": "bm25", "ours_dense": "dense", "ours_static": "static"}
BASELINES = ("base_bm25", "base_dense", "base_hybrid")
ALL_MODES = (*OURS, *BASELINES)
DEFAULT_MODES = ("ours_hybrid", "ours_bm25", "ours_dense", "base_bm25", "base_hybrid")
METRICS = ("file@1", "file@5", "sym@5", "mrr")


# -- questions ------------------------------------------------------------------------------

def load_questions(path: Path = QUESTIONS) -> list[dict]:
    data = json.loads(Path(path).read_text())
    items = data["questions"] if isinstance(data, dict) else data
    for i, q in enumerate(items):
        q.setdefault("id", f"{q['corpus']}-{i + 1:02d}")
    return items


def _ast_symbols(root: Path, rel: str) -> tuple[set[str], ast.AST | None]:
    """Qualified names defined in one file, as the engine names them (Class.method, outer.inner)."""
    try:
        tree = ast.parse((root / rel).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return set(), None
    names: set[str] = set()

    def walk(node: ast.AST, prefix: str) -> None:
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + n.name)
                walk(n, prefix + n.name + ".")
            elif isinstance(n, (ast.Assign, ast.AnnAssign)) and not prefix:
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            else:
                walk(n, prefix)

    walk(tree, "")
    return names, tree


def _ast_callers(root: Path, bare: str, scope: str) -> set[tuple[str, str]]:
    """(path, enclosing qualname) of every call to `bare` or `x.bare` under `scope`."""
    out: set[tuple[str, str]] = set()
    for f in sorted((root / scope).rglob("*.py")) if (root / scope).is_dir() else []:
        rel = f.relative_to(root).as_posix()
        _, tree = _ast_symbols(root, rel)
        if tree is None:
            continue

        def walk(node: ast.AST, stack: list[str]) -> None:
            for n in ast.iter_child_nodes(node):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    walk(n, stack + [n.name])
                    continue
                if isinstance(n, ast.Call):
                    fn = n.func
                    name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
                    if name == bare and stack:
                        out.add((rel, ".".join(stack)))
                walk(n, stack)

        walk(tree, [])
    return out


def check_gold(questions: list[dict]) -> int:
    """Validate the question set against the pinned sources; returns the number of problems."""
    problems = 0
    by_corpus: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        by_corpus[q["corpus"]].append(q)
    ident = 0
    for name, qs in by_corpus.items():
        root = corpora.fetch(name)
        cache: dict[str, set[str]] = {}

        def symbols(rel: str) -> set[str]:
            if rel not in cache:
                cache[rel] = _ast_symbols(root, rel)[0] if (root / rel).is_file() else set()
            return cache[rel]

        for q in qs:
            ident += bool(mentions_identifier(q["question"]))
            entries = list(q["gold"]) + ([q["target"]] if q.get("target") else [])
            for g in entries:
                if not (root / g["path"]).is_file():
                    print(f"[{q['id']}] missing file {g['path']}")
                    problems += 1
                elif g.get("symbol") and g["symbol"] not in symbols(g["path"]):
                    print(f"[{q['id']}] {g['path']} has no symbol {g['symbol']!r}")
                    problems += 1
            if q["type"] == "callers":
                bare = q["target"]["symbol"].rsplit(".", 1)[-1]
                found = _ast_callers(root, bare, q.get("caller_scope", ""))
                found.discard((q["target"]["path"], q["target"]["symbol"]))  # recursion
                gold = {(g["path"], g["symbol"]) for g in q["gold"]}
                if found != gold:
                    print(f"[{q['id']}] callers differ from a syntactic scan: "
                          f"missing {sorted(found - gold)} extra {sorted(gold - found)}")
                    problems += 1
    n = len(questions)
    print(f"{n} questions, {len(by_corpus)} corpora; {ident} mention an identifier "
          f"({ident / max(n, 1):.0%}); {problems} problem(s)")
    return problems


def mentions_identifier(text: str) -> list[str]:
    """Code-looking tokens in a question: snake_case, CamelCase inside a word, dunders, dotted names."""
    import re

    toks = re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", text)
    found = []
    for t in toks:
        t = t.strip(".")
        if "_" in t.strip("_") or t.startswith("__") or re.search(r"[a-z][A-Z][a-z]", t) or re.search(r"\w\.\w", t):
            found.append(t)
    return found


# -- metrics --------------------------------------------------------------------------------

def _norm_hit(h: Any) -> dict:
    if isinstance(h, dict):
        return {"path": h.get("path"), "symbol": h.get("symbol"), "kind": h.get("kind"),
                "start_line": h.get("start_line"), "score": h.get("score")}
    return {"path": getattr(h, "path", None), "symbol": getattr(h, "symbol", None),
            "kind": getattr(getattr(h, "kind", None), "value", getattr(h, "kind", None)),
            "start_line": getattr(h, "start_line", None), "score": getattr(h, "score", None)}


def score_search(hits: list[dict], q: dict) -> dict:
    gold = q["gold"]
    gold_paths = {g["path"] for g in gold}
    gold_syms = {(g["path"], g["symbol"]) for g in gold if g.get("symbol")}
    file_rank = next((i for i, h in enumerate(hits, 1) if h["path"] in gold_paths), None)
    sym_rank = next((i for i, h in enumerate(hits, 1) if (h["path"], h["symbol"]) in gold_syms), None)
    out = {
        "file@1": float(file_rank == 1),
        "file@5": float(file_rank is not None and file_rank <= 5),
        "sym@5": float(sym_rank is not None and sym_rank <= 5),
        "mrr": 1.0 / sym_rank if sym_rank else 0.0,
        "file_rank": file_rank,
        "sym_rank": sym_rank,
    }
    if q["type"] == "callers":
        found = {(h["path"], h["symbol"]) for h in hits} & gold_syms
        out["callers@10"] = len(found) / max(len(gold_syms), 1)
    return out


def _split_node_id(node: Any) -> tuple[str | None, str | None]:
    nid = getattr(node, "id", "") or ""
    path = getattr(node, "path", None)
    if "::" in nid:
        p, sym = nid.split("::", 1)
        return (path or p), sym
    return path, getattr(node, "name", None)


def score_graph(result: Any, q: dict) -> dict:
    """Set recall/precision of the callers a GraphResult names, within the question's scope."""
    scope = q.get("caller_scope", "")
    gold = {(g["path"], g["symbol"]) for g in q["gold"]}
    nodes = {n.id: n for n in result.nodes}
    center = result.center
    callers = set()
    for e in result.edges:
        if e.target == center and e.source != center and getattr(e, "kind", "calls") == "calls":
            n = nodes.get(e.source)
            if n is None:
                continue
            path, sym = _split_node_id(n)
            if path and sym:
                callers.add((path, sym))
    pred = {c for c in callers if c[0].startswith(scope)}
    tp = pred & gold
    recall = len(tp) / len(gold) if gold else 1.0
    precision = len(tp) / len(pred) if pred else (1.0 if not gold else 0.0)
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {"recall": recall, "precision": precision, "f1": f1, "n_pred": len(pred), "n_gold": len(gold),
            "missing": sorted(map(list, gold - pred)), "extra": sorted(map(list, pred - gold))}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def aggregate(rows: list[dict], keys=METRICS) -> dict:
    return {k: _mean([r[k] for r in rows if k in r]) for k in keys} | {"n": len(rows)}


# -- systems ---------------------------------------------------------------------------------

def build_systems(wb, chunks: list[dict], modes: list[str], k: int, cache_dir: Path,
                  progress: bool) -> dict[str, Callable[[str], list[dict]]]:
    systems: dict[str, Callable[[str], list[dict]]] = {}
    for m in modes:
        if m in OURS:
            systems[m] = (lambda mode: (lambda q: [_norm_hit(h) for h in wb.search(q, k=k, mode=mode)]))(OURS[m])
    need = {m for m in modes if m in BASELINES}
    if need:
        import baselines

        bm25 = baselines.BM25Baseline(chunks) if need & {"base_bm25", "base_hybrid"} else None
        dense = None
        if need & {"base_dense", "base_hybrid"}:
            t = time.perf_counter()
            dense = baselines.DenseBaseline(chunks, cache_dir=cache_dir, progress=progress)
            print(f"  baseline embeddings for {len(chunks)} chunks: {time.perf_counter() - t:.1f}s", file=sys.stderr)
        if "base_bm25" in need:
            systems["base_bm25"] = lambda q: [_norm_hit(h) for h in bm25.search(q, k)]
        if "base_dense" in need:
            systems["base_dense"] = lambda q: [_norm_hit(h) for h in dense.search(q, k)]
        if "base_hybrid" in need:
            hybrid = baselines.NaiveHybridBaseline(chunks, bm25=bm25, dense=dense)
            systems["base_hybrid"] = lambda q: [_norm_hit(h) for h in hybrid.search(q, k)]
    return {m: systems[m] for m in modes if m in systems}


def open_workbench(root: Path):
    from direng_kernel.workbench import Workbench  # imported late: --help and --check-gold need no engine

    return Workbench(root)


def evaluate_corpus(name: str, questions: list[dict], modes: list[str], k: int, *, reindex: bool,
                    verbose: int, progress: bool) -> dict:
    import shutil

    root = corpora.fetch(name)
    store = root / ".direng"
    if reindex and store.exists():
        shutil.rmtree(store)
    wb = open_workbench(root)
    need_dense = any(m in ("ours_hybrid", "ours_dense") for m in modes)
    t = time.perf_counter()
    report = wb.index(progress=progress, dense=need_dense)
    index_s = time.perf_counter() - t
    chunk_objs = list(wb.chunks())
    import baselines

    chunks = [baselines.as_chunk_dict(c) for c in chunk_objs]
    status = wb.status()
    print(f"[{name}] {root.name}: {len(chunks)} chunks, {status.dense_chunks} with vectors, "
          f"index {index_s:.1f}s", file=sys.stderr)
    # Gold answers the engine has no chunk for can never be hit: a parser/naming gap, not ranking.
    indexed = {(c["path"], c["symbol"]) for c in chunks}
    not_indexed = sorted({f"{g['path']}::{g['symbol']}" for q in questions for g in q["gold"]
                          if (g["path"], g["symbol"]) not in indexed})
    if not_indexed:
        print(f"[{name}] {len(not_indexed)} gold symbol(s) have no chunk in the index: "
              + ", ".join(not_indexed[:8]) + (" …" if len(not_indexed) > 8 else ""), file=sys.stderr)
    systems = build_systems(wb, chunks, modes, k, corpora.CACHE_DIR / "embeddings", progress)

    per_q = []
    latencies: dict[str, list[float]] = defaultdict(list)
    for q in questions:
        row = {"id": q["id"], "corpus": name, "type": q["type"], "question": q["question"],
               "gold": q["gold"], "results": {}}
        for m, fn in systems.items():
            t0 = time.perf_counter()
            try:
                hits = fn(q["question"])
                err = None
            except Exception as e:  # noqa: BLE001 - one bad query must not end the run
                hits, err = [], f"{type(e).__name__}: {e}"
            latencies[m].append((time.perf_counter() - t0) * 1000)
            res = score_search(hits, q)
            res["top"] = [[h["path"], h["symbol"]] for h in hits[:5]]
            if err:
                res["error"] = err
            row["results"][m] = res
        if q["type"] == "callers" and any(m in OURS for m in modes):
            target = f"{q['target']['path']}::{q['target']['symbol']}"
            try:
                g = wb.graph(target, direction="callers", depth=1)
                row["graph"] = score_graph(g, q)
            except Exception as e:  # noqa: BLE001
                row["graph"] = {"recall": 0.0, "precision": 0.0, "f1": 0.0, "error": f"{type(e).__name__}: {e}"}
        per_q.append(row)
        if verbose:
            _print_failures(row, list(systems), verbose)

    summary: dict[str, Any] = {"root": str(root), "pin": corpora.CORPORA[name].pin, "chunks": len(chunks),
                               "dense_chunks": status.dense_chunks, "index_seconds": round(index_s, 2),
                               "index_report": report.model_dump(mode="json") if hasattr(report, "model_dump") else None,
                               "gold_not_indexed": not_indexed, "systems": {}, "graph_callers": None}
    for m in systems:
        search_rows = [r["results"][m] for r in per_q if r["type"] != "callers"]
        caller_rows = [r["results"][m] for r in per_q if r["type"] == "callers"]
        by_type = defaultdict(list)
        for r in per_q:
            by_type[r["type"]].append(r["results"][m])
        lat = sorted(latencies[m])
        summary["systems"][m] = {
            "search": aggregate(search_rows),
            "callers_via_search": aggregate(caller_rows, METRICS + ("callers@10",)),
            "by_type": {t: aggregate(rs) for t, rs in by_type.items()},
            "latency_ms": {"p50": statistics.median(lat) if lat else None,
                           "mean": _mean(lat) if lat else None},
        }
    graph_rows = [r["graph"] for r in per_q if "graph" in r]
    if graph_rows:
        summary["graph_callers"] = aggregate(graph_rows, ("recall", "precision", "f1"))
    if hasattr(wb, "close"):
        wb.close()
    return {"summary": summary, "questions": per_q}


def _print_failures(row: dict, systems: list[str], verbose: int) -> None:
    shown = systems if verbose > 1 else [s for s in systems if s in OURS][:1] or systems[:1]
    failing = [s for s in shown if not row["results"][s]["sym@5"]]
    graph_bad = "graph" in row and row["graph"].get("recall", 0) < 1.0
    if not failing and not graph_bad:
        return
    gold = ", ".join(f"{g['path']}::{g['symbol']}" for g in row["gold"])
    print(f"\n✗ [{row['id']}] ({row['type']}) {row['question']}\n    gold: {gold}")
    for s in failing:
        r = row["results"][s]
        print(f"    {s}: sym rank {r['sym_rank']}, file rank {r['file_rank']}" + (f"  ERROR {r['error']}" if r.get("error") else ""))
        for i, (p, sym) in enumerate(r["top"], 1):
            print(f"       {i}. {p}::{sym}")
    if graph_bad:
        g = row["graph"]
        print(f"    graph: recall {g.get('recall', 0):.2f} precision {g.get('precision', 0):.2f} "
              f"missing {g.get('missing')} extra {g.get('extra')} {g.get('error', '')}")


# -- reporting -------------------------------------------------------------------------------

def overall(results: dict[str, dict], modes: list[str]) -> dict:
    rows = [r for res in results.values() for r in res["questions"]]
    out: dict[str, Any] = {"systems": {}}
    for m in modes:
        if not all(m in r["results"] for r in rows):
            continue
        s_rows = [r["results"][m] for r in rows if r["type"] != "callers"]
        c_rows = [r["results"][m] for r in rows if r["type"] == "callers"]
        out["systems"][m] = {"search": aggregate(s_rows),
                             "callers_via_search": aggregate(c_rows, METRICS + ("callers@10",))}
    g = [r["graph"] for r in rows if "graph" in r]
    out["graph_callers"] = aggregate(g, ("recall", "precision", "f1")) if g else None
    return out


def print_tables(results: dict[str, dict], total: dict, modes: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        Console = Table = None

    blocks = [(name, res["summary"]) for name, res in results.items()]
    if len(blocks) > 1:
        blocks.append(("ALL", total))
    cols = ["corpus", "system", "n", *METRICS, "callers@10", "p50 ms"]
    rows = []
    for name, summ in blocks:
        for m, s in summ["systems"].items():
            srch, cal = s["search"], s["callers_via_search"]
            lat = s.get("latency_ms", {}).get("p50")
            rows.append([name, m, str(srch["n"]), *[f"{srch[x]:.3f}" for x in METRICS],
                         f"{cal.get('callers@10', float('nan')):.3f}" if cal["n"] else "-",
                         f"{lat:.0f}" if lat is not None else "-"])
    grows = []
    for name, summ in blocks:
        g = summ.get("graph_callers")
        if g:
            grows.append([name, str(g["n"]), f"{g['recall']:.3f}", f"{g['precision']:.3f}", f"{g['f1']:.3f}"])
    if Table is not None:
        console = Console(width=None if sys.stdout.isatty() else 132)
        t = Table(title="Search quality (where/how questions; sym@5 & mrr need the exact symbol)")
        for c in cols:
            t.add_column(c, justify="left" if c in ("corpus", "system") else "right")
        prev = None
        for r in rows:
            if prev is not None and r[0] != prev:
                t.add_section()
            prev = r[0]
            t.add_row(*r)
        console.print(t)
        if grows:
            g = Table(title="'What calls X?' through wb.graph(direction='callers')")
            for c in ("corpus", "n", "recall", "precision", "f1"):
                g.add_column(c, justify="left" if c == "corpus" else "right")
            for r in grows:
                g.add_row(*r)
            console.print(g)
    else:
        print("  ".join(f"{c:>11s}" for c in cols))
        for r in rows:
            print("  ".join(f"{v:>11s}" for v in r))
        for r in grows:
            print("graph callers", *r)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", default=[],
                    help=f"corpus to evaluate (repeatable or comma-separated; default: {','.join(corpora.EVAL_CORPORA)})")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions of each corpus")
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES),
                    help=f"comma-separated systems (default: %(default)s; available: {','.join(ALL_MODES)})")
    ap.add_argument("-k", type=int, default=10, help="hits asked of each system (default 10)")
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="question file (default: eval/questions.json)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file (default: %(default)s)")
    ap.add_argument("--reindex", action="store_true", help="delete each corpus's index store first")
    ap.add_argument("--check-gold", action="store_true",
                    help="only validate the question set against the pinned sources (no engine needed)")
    ap.add_argument("--progress", action="store_true", help="show indexing/embedding progress bars")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="print failing questions (-v: first 'ours' system, -vv: every system)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    questions = load_questions(args.questions)
    names = [n for c in args.corpus for n in c.split(",") if n] or list(dict.fromkeys(q["corpus"] for q in questions))
    unknown = [n for n in names if n not in corpora.CORPORA]
    if unknown:
        ap.error(f"unknown corpus {unknown}; known: {', '.join(corpora.CORPORA)}")
    questions = [q for q in questions if q["corpus"] in names]
    if args.check_gold:
        return 1 if check_gold(questions) else 0

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ALL_MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; available: {', '.join(ALL_MODES)}")

    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    for name in names:
        qs = [q for q in questions if q["corpus"] == name][: args.limit]
        if qs:
            results[name] = evaluate_corpus(name, qs, modes, args.k, reindex=args.reindex,
                                            verbose=args.verbose, progress=args.progress)
    total = overall(results, modes)
    print_tables(results, total, modes)

    payload = {
        "meta": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "seconds": round(time.perf_counter() - t0, 1), "modes": modes, "k": args.k,
                 "limit": args.limit, "questions_file": str(args.questions),
                 "python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "engine_version": corpora.engine_version()},
        "corpora": {n: r["summary"] for n, r in results.items()},
        "overall": total,
        "questions": [q for r in results.values() for q in r["questions"]],
    }
    write_results(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
