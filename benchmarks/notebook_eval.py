"""Notebooks on a real corpus whose work lives in notebooks: DirEng against plain BM25, and what
indexing the notebooks costs against the same code as `.py`.

The corpus is python-control 0.10.1 (``corpora.NOTEBOOK_CORPUS``): 38 example notebooks that
import the package and call its functions (``import control as ct; ct.lqr(…)``), 11 of them
copied byte for byte under ``doc/``, beside 152 ``.py`` files. It is downloaded from PyPI at run
time by ``corpora.fetch`` and indexed with ``Workbench(root).index(dense=True)`` (store in
``ROOT/.direng``, reused; ``--reindex`` deletes it).

The questions (``eval/notebook_questions.json``, gold read from the corpus by hand) are of three
kinds, each asked of DirEng through the public Workbench API and of plain BM25 in the same run:

    where   "where in the notebooks is X done"          gold: notebook cells (path + cell)
            direng  wb.search(q, mode="hybrid"), notebook hits in order, as (path, cell)
            bm25    bm25s over the notebooks' cells, one document per cell (its source as read
                    by nbformat: markdown and code), as (path, cell)
            metrics cell@1, cell@5 (an exact gold cell), nb@5 (a gold notebook), mrr (of the
                    first gold cell within 10)
    uses    "which notebooks use library function Y"     gold: the set of notebook paths
            direng  wb.graph(Y, direction="callers"): the notebooks among the callers
            direng_search  the notebooks of the first 20 notebook cells wb.search(q) returns
            bm25    the notebooks of the first 20 cells BM25 ranks for q
            metrics precision, recall, f1 of the set
    calls   "which function does this notebook cell call"  gold: a package symbol (path::qualname)
            direng  the package symbols the cell calls (the graph's record of what each cell uses:
                    `CodeGraph.notebook_cells`, resolved targets outside notebooks), ranked by
                    wb.search(q) and then by where the cell first names them
            bm25    bm25s over the engine's chunks of the non-notebook files, queried with the
                    question and the cell's source (the user has the cell in hand)
            bm25_question  the same, queried with the question alone
            metrics sym@1, sym@5, mrr

Index cost: every notebook of the corpus copied into a scratch tree, and beside it a tree with
each notebook converted to a `.py` of the same sources (code cells as code with IPython lines
commented out, markdown and raw cells as comments, `# %%` between cells); each tree indexed
into a fresh store `--repeat` times with the static model loaded; nbformat's import (once per
process, measured in a fresh interpreter) is reported apart. Target: notebooks ≤ 2× the `.py` —
reported, not asserted.

    python benchmarks/notebook_eval.py                 # everything (a few minutes on 2 cores)
    python benchmarks/notebook_eval.py --no-dense --skip-cost -v
    python benchmarks/notebook_eval.py --check-gold    # validate the questions against the corpus

Results: tables on stdout, JSON in ``benchmarks/results/notebook_eval.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))  # works as a script and as `import benchmarks.notebook_eval`

import corpora  # noqa: E402
from results import write as write_results  # noqa: E402
from retrieval_eval import _ast_symbols, aggregate  # noqa: E402

QUESTIONS = BENCH_DIR / "eval" / "notebook_questions.json"
DEFAULT_OUT = BENCH_DIR / "results" / "notebook_eval.json"
KINDS = ("where", "uses", "calls")
METRICS = {"where": ("cell@1", "cell@5", "nb@5", "mrr"), "uses": ("precision", "recall", "f1"),
           "calls": ("sym@1", "sym@5", "mrr")}
SYSTEMS = {"where": ("direng", "bm25"), "uses": ("direng", "direng_search", "bm25"),
           "calls": ("direng", "bm25", "bm25_question")}
SEARCH_K = 50  # hits asked of wb.search before keeping the notebook (or package) ones
SET_DEPTH = 20  # cells whose notebooks answer a "uses" question through search
PACKAGE_BINDING = r"^\s*import control(?:\.\w+)* as (\w+)"


# -- questions ------------------------------------------------------------------------------

def load_questions(path: Path = QUESTIONS) -> dict:
    """The question file, checked for shape; raises ValueError naming the first bad entry."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list) or "corpus" not in data:
        raise ValueError(f"{path}: expected an object with `corpus` and a list of `questions`")
    seen = set()
    for q in data["questions"]:
        qid = q.get("id")
        if not qid or qid in seen:
            raise ValueError(f"{path}: question without a unique id: {q!r:.80}")
        seen.add(qid)
        if q.get("type") not in KINDS or not isinstance(q.get("question"), str) or not q["question"].strip():
            raise ValueError(f"{qid}: `type` must be one of {', '.join(KINDS)} and `question` a text")
        gold = q.get("gold")
        if not isinstance(gold, list) or not gold:
            raise ValueError(f"{qid}: `gold` must be a non-empty list")
        if q["type"] == "where" and not all(isinstance(g, dict) and isinstance(g.get("path"), str)
                                            and isinstance(g.get("cell"), int) for g in gold):
            raise ValueError(f"{qid}: a `where` gold is a list of {{path, cell}}")
        if q["type"] == "uses" and not (all(isinstance(g, str) for g in gold) and isinstance(q.get("function"), str)):
            raise ValueError(f"{qid}: a `uses` question has a `function` and a gold list of notebook paths")
        if q["type"] == "calls" and not (isinstance(q.get("path"), str) and isinstance(q.get("cell"), int) and all(
                isinstance(g, dict) and isinstance(g.get("path"), str) and isinstance(g.get("symbol"), str)
                for g in gold)):
            raise ValueError(f"{qid}: a `calls` question has `path`, `cell` and a gold list of {{path, symbol}}")
    return data


# -- the corpus as plain cells (nbformat, not the engine) ------------------------------------

def notebook_paths(root: Path) -> list[str]:
    """The corpus's notebooks, as git tracks them (relative, forward slashes)."""
    return sorted(p for p in corpora.git(root, "ls-files", "-z", "--", "*.ipynb").split("\0")
                  if p and ".ipynb_checkpoints/" not in p)


def read_cells(root: Path) -> list[dict]:
    """Every cell of every notebook: {path, cell, kind, text} with the source nbformat reads."""
    import nbformat

    out = []
    for rel in notebook_paths(root):
        nb = nbformat.read(root / rel, as_version=4)
        out += [{"path": rel, "cell": i, "kind": c.cell_type, "text": c.source} for i, c in enumerate(nb.cells)]
    return out


def _strip_comments(source: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in source.split("\n"))


def notebooks_calling(cells: list[dict], name: str) -> set[str]:
    """Notebooks with a code cell that calls `name` through a binding of the control package:
    `alias.name(` / `alias.sub.name(` for `import control… as alias`, or a bare `name(` after
    `from control… import *` or `from control… import …name…`. Comments do not count."""
    by_nb: dict[str, list[str]] = {}
    for c in cells:
        if c["kind"] == "code":
            by_nb.setdefault(c["path"], []).append(_strip_comments(c["text"]))
    found = set()
    for path, sources in by_nb.items():
        code = "\n".join(sources)
        aliases = set(re.findall(PACKAGE_BINDING, code, re.M))
        if re.search(r"^\s*import control\b(?!\.)(?! as)", code, re.M):
            aliases.add("control")
        patterns = [rf"\b(?:{'|'.join(sorted(aliases))})\.(?:\w+\.)?{name}\s*\("] if aliases else []
        if re.search(rf"^\s*from control(?:\.\w+)* import (?:\*|[^\n]*\b{name}\b)", code, re.M):
            patterns.append(rf"(?<![\w.]){name}\s*\(")
        if any(re.search(p, src) for p in patterns for src in sources):
            found.add(path)
    return found


def _module_aliases(root: Path, path: str, symbol: str) -> set[str]:
    """Module-level names bound to `symbol` in its file (`c2d = sample_system`)."""
    try:
        tree = ast.parse((root / path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return set()
    return {t.id for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name)
            and n.value.id == symbol for t in n.targets if isinstance(t, ast.Name)}


def check_gold(data: dict, root: Path) -> list[str]:
    """Problems with the gold answers against the fetched corpus (empty when all hold): paths
    exist, cells are code cells in range, symbols are defined where named, every `calls` cell
    calls its gold (by name or a name the package binds to it), and every `uses` set equals a
    syntactic scan of the notebooks' code cells (`notebooks_calling`)."""
    cells = read_cells(root)
    kinds = {(c["path"], c["cell"]): c["kind"] for c in cells}
    text = {(c["path"], c["cell"]): c["text"] for c in cells}
    problems = []
    for q in data["questions"]:
        qid = q["id"]
        if q["type"] == "where":
            for g in q["gold"]:
                if kinds.get((g["path"], g["cell"])) != "code":
                    problems.append(f"{qid}: {g['path']} cell {g['cell']} is not a code cell of the corpus")
        elif q["type"] == "uses":
            name = q["function"].rsplit(".", 1)[-1]
            path, _, qual = q.get("symbol", "").partition("::")
            if qual and qual not in _ast_symbols(root, path)[0]:
                problems.append(f"{qid}: {q['symbol']} is not defined")
            scanned = notebooks_calling(cells, name)
            if scanned != set(q["gold"]):
                problems.append(f"{qid}: gold differs from the scan: missing {sorted(scanned - set(q['gold']))}, "
                                f"extra {sorted(set(q['gold']) - scanned)}")
        else:
            where = (q["path"], q["cell"])
            if kinds.get(where) != "code":
                problems.append(f"{qid}: {q['path']} cell {q['cell']} is not a code cell of the corpus")
                continue
            for g in q["gold"]:
                if g["symbol"] not in _ast_symbols(root, g["path"])[0]:
                    problems.append(f"{qid}: {g['path']}::{g['symbol']} is not defined")
                    continue
                names = {g["symbol"].rsplit(".", 1)[-1]} | _module_aliases(root, g["path"], g["symbol"])
                if not any(re.search(rf"\b{n}\s*\(", _strip_comments(text[where])) for n in names):
                    problems.append(f"{qid}: {q['path']} cell {q['cell']} does not call {g['symbol']}")
    return problems


# -- scoring --------------------------------------------------------------------------------

def score_cells(ranked: list[tuple[str, int]], q: dict) -> dict:
    gold = {(g["path"], g["cell"]) for g in q["gold"]}
    gold_nbs = {p for p, _ in gold}
    rank = next((i for i, c in enumerate(ranked[:10], 1) if c in gold), None)
    nb_rank = next((i for i, c in enumerate(ranked, 1) if c[0] in gold_nbs), None)
    return {"cell@1": float(rank == 1), "cell@5": float(rank is not None and rank <= 5),
            "nb@5": float(nb_rank is not None and nb_rank <= 5), "mrr": 1.0 / rank if rank else 0.0,
            "rank": rank, "top": [f"{p}:cell {c}" for p, c in ranked[:5]]}


def score_set(predicted: set[str], q: dict) -> dict:
    gold = set(q["gold"])
    tp = predicted & gold
    precision = len(tp) / len(predicted) if predicted else 0.0
    recall = len(tp) / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n": len(predicted),
            "missing": sorted(gold - predicted), "extra": sorted(predicted - gold)}


def score_symbols(ranked: list[str], q: dict) -> dict:
    gold = {f"{g['path']}::{g['symbol']}" for g in q["gold"]}
    rank = next((i for i, s in enumerate(ranked[:10], 1) if s in gold), None)
    return {"sym@1": float(rank == 1), "sym@5": float(rank is not None and rank <= 5),
            "mrr": 1.0 / rank if rank else 0.0, "rank": rank, "top": ranked[:5]}


# -- the systems ----------------------------------------------------------------------------

def _distinct(items):
    return list(dict.fromkeys(items))


class DirEng:
    """The engine through its public API (Workbench: search, graph, the code graph's notebook record)."""

    def __init__(self, wb, cell_text: dict[tuple[str, int], str]):
        self.wb = wb
        self.cell_text = cell_text
        self._uses: dict[str, dict[int, list[str]]] = {}

    def where(self, q: dict) -> list[tuple[str, int]]:
        hits = self.wb.search(q["question"], k=SEARCH_K, mode="hybrid")
        return _distinct((h.path, h.cell) for h in hits if h.cell is not None)

    def uses(self, q: dict) -> set[str]:
        name = q["function"].rsplit(".", 1)[-1]  # `control.optimal.solve_ocp`: the name as defined
        result = self.wb.graph(name, direction="callers", depth=1)
        return {n.path for n in result.nodes if n.id != result.center and n.cell is not None and n.path}

    def uses_by_search(self, q: dict) -> set[str]:
        return {p for p, _ in self.where(q)[:SET_DEPTH]}

    def calls(self, q: dict) -> list[str]:
        path, cell = q["path"], q["cell"]
        if path not in self._uses:
            self._uses[path] = {c["cell"]: c["uses"] for c in self.wb.code_graph().notebook_cells(path)}
        called = [u for u in self._uses[path].get(cell, [])
                  if "::" in u and not u.split("::", 1)[0].endswith(".ipynb")]
        source = self.cell_text.get((path, cell), "")
        order = {h: i for i, h in enumerate(_distinct(
            f"{h.path}::{h.symbol}" for h in self.wb.search(q["question"], k=SEARCH_K, mode="hybrid") if h.symbol))}

        def first_mention(sid: str) -> int:
            at = source.find(sid.rsplit("::", 1)[-1].rsplit(".", 1)[-1])
            return at if at >= 0 else len(source)

        return sorted(called, key=lambda s: (order.get(s, SEARCH_K), first_mention(s), s))


class PlainBM25:
    """bm25s over the notebooks' cells (and, for "calls", over the engine's chunks of the code)."""

    def __init__(self, cells: list[dict], code_chunks: list[dict]):
        import baselines

        docs = [{"path": c["path"], "symbol": f"cell {c['cell']}", "kind": "cell", "start_line": 1,
                 "end_line": 1, "text": c["text"], "cell": c["cell"]} for c in cells if c["text"].strip()]
        self.cells = baselines.BM25Baseline(docs)
        self.code = baselines.BM25Baseline(code_chunks)

    def ranked_cells(self, query: str, depth: int) -> list[tuple[str, int]]:
        return _distinct((self.cells.chunks[i]["path"], self.cells.chunks[i]["cell"])
                         for i in self.cells.ranked(query, depth))

    def where(self, q: dict) -> list[tuple[str, int]]:
        return self.ranked_cells(q["question"], 10)

    def uses(self, q: dict) -> set[str]:
        return {p for p, _ in self.ranked_cells(q["question"], SET_DEPTH)}

    def calls(self, q: dict, cell_source: str = "") -> list[str]:
        hits = self.code.search(q["question"] + "\n" + cell_source, 10)
        return _distinct(f"{h['path']}::{h['symbol']}" for h in hits if h.get("symbol"))


def evaluate(data: dict, root: Path, *, dense: bool, reindex: bool, verbose: int) -> dict:
    import baselines
    from direng_kernel.workbench import Workbench

    if reindex:
        shutil.rmtree(root / ".direng", ignore_errors=True)
    wb = Workbench(root)
    t0 = time.perf_counter()
    report = wb.index(dense=dense)
    index_s = time.perf_counter() - t0
    cells = read_cells(root)
    cell_text = {(c["path"], c["cell"]): c["text"] for c in cells}
    code_chunks = [baselines.as_chunk_dict(c) for c in wb.chunks() if not c.path.endswith(".ipynb")]
    status = wb.status()
    print(f"[{root.name}] {len(notebook_paths(root))} notebooks, {len(cells)} cells; index {status.files} files, "
          f"{status.chunks} chunks ({status.dense_chunks} MiniLM) in {index_s:.1f}s", file=sys.stderr)
    ours, bm25 = DirEng(wb, cell_text), PlainBM25(cells, code_chunks)
    runners: dict[str, dict[str, Callable[[dict], dict]]] = {
        "where": {"direng": lambda q: score_cells(ours.where(q), q), "bm25": lambda q: score_cells(bm25.where(q), q)},
        "uses": {"direng": lambda q: score_set(ours.uses(q), q),
                 "direng_search": lambda q: score_set(ours.uses_by_search(q), q),
                 "bm25": lambda q: score_set(bm25.uses(q), q)},
        "calls": {"direng": lambda q: score_symbols(ours.calls(q), q),
                  "bm25": lambda q: score_symbols(bm25.calls(q, cell_text.get((q["path"], q["cell"]), "")), q),
                  "bm25_question": lambda q: score_symbols(bm25.calls(q), q)},
    }
    rows = []
    latency: dict[tuple[str, str], list[float]] = {}
    for q in data["questions"]:
        row = {"id": q["id"], "type": q["type"], "question": q["question"], "results": {}}
        for system, run in runners[q["type"]].items():
            t = time.perf_counter()
            try:
                row["results"][system] = run(q)
            except Exception as err:  # noqa: BLE001 — one failing question must not end the run
                row["results"][system] = {m: 0.0 for m in METRICS[q["type"]]} | {"error": f"{type(err).__name__}: {err}"}
            latency.setdefault((q["type"], system), []).append((time.perf_counter() - t) * 1000)
        rows.append(row)
        if verbose:
            _print_misses(row, verbose)
    summary = {kind: {system: aggregate([r["results"][system] for r in rows if r["type"] == kind], METRICS[kind])
                      | {"p50_ms": round(statistics.median(latency[(kind, system)]), 1)}
                      for system in SYSTEMS[kind] if (kind, system) in latency}
               for kind in KINDS}
    wb.close()
    return {"index_seconds": round(index_s, 2), "index_report": report.model_dump(mode="json"),
            "chunks": status.chunks, "dense_chunks": status.dense_chunks, "notebooks": len(notebook_paths(root)),
            "cells": len(cells), "summary": summary, "questions": rows}


def _print_misses(row: dict, verbose: int) -> None:
    ours = row["results"].get("direng", {})
    missed = ours.get("mrr", ours.get("f1", 1.0)) < 1.0
    if missed or verbose > 1:
        print(f"  {row['id']} {row['question']}", file=sys.stderr)
        for system, res in row["results"].items():
            detail = res.get("top") or {"missing": res.get("missing"), "extra": res.get("extra")}
            print(f"    {system:<14} {json.dumps(detail)[:300]}", file=sys.stderr)


# -- index cost: notebooks against the same code as .py ---------------------------------------

_IPYTHON_LINE = re.compile(r"^\s*[%!]")


def as_python(nb_path: Path) -> str:
    """A notebook's sources as one `.py` (jupytext's percent layout): code cells as they are with
    IPython lines commented out, markdown and raw cells as comments, `# %%` between cells."""
    import nbformat

    parts = []
    for cell in nbformat.read(nb_path, as_version=4).cells:
        lines = cell.source.split("\n")
        if cell.cell_type == "code":
            parts.append("# %%\n" + "\n".join("# " + ln if _IPYTHON_LINE.match(ln) else ln for ln in lines))
        else:
            parts.append(f"# %% [{cell.cell_type}]\n" + "\n".join(("# " + ln).rstrip() for ln in lines))
    return "\n\n".join(parts) + "\n"


def nbformat_import_seconds() -> float:
    """nbformat's first import (jsonschema and all), in a fresh interpreter: this one has it already."""
    probe = "import time; t = time.perf_counter(); import nbformat; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return float(out.stdout.strip())


def index_cost(root: Path, repeat: int) -> dict:
    from direng_kernel.workbench import Workbench

    import_s = nbformat_import_seconds()
    paths = notebook_paths(root)
    with tempfile.TemporaryDirectory(prefix="nb-cost-") as tmp:
        nb_root, py_root = Path(tmp) / "nb", Path(tmp) / "py"
        nb_bytes = py_bytes = 0
        for rel in paths:
            (nb_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, nb_root / rel)
            nb_bytes += (root / rel).stat().st_size
            text = as_python(root / rel)
            py = (py_root / rel).with_suffix(".py")
            py.parent.mkdir(parents=True, exist_ok=True)
            py.write_text(text, encoding="utf-8")
            py_bytes += len(text.encode("utf-8"))

        def once(tree: Path) -> float:
            shutil.rmtree(tree / ".direng", ignore_errors=True)
            t = time.perf_counter()
            wb = Workbench(tree)
            try:
                wb.index()
            finally:
                wb.close()
            return time.perf_counter() - t

        once(py_root)  # loads the static model: the timed runs compare indexing, not start-up
        nb_s = [once(nb_root) for _ in range(repeat)]
        py_s = [once(py_root) for _ in range(repeat)]
    ratio = statistics.median(nb_s) / statistics.median(py_s)
    return {"notebooks": len(paths), "notebook_bytes": nb_bytes, "py_bytes": py_bytes,
            "notebooks_s": _stats(nb_s), "py_s": _stats(py_s), "ratio": round(ratio, 2), "target_ratio": 2.0,
            "nbformat_import_s": round(import_s, 3)}


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


# -- output ---------------------------------------------------------------------------------

def print_tables(result: dict, cost: dict | None, counts: dict[str, int]) -> None:
    for kind in KINDS:
        metrics = METRICS[kind]
        print(f"\n{kind} ({counts.get(kind, 0)} questions)")
        print(f"  {'system':<14}" + "".join(f"{m:>10}" for m in metrics) + f"{'p50 ms':>10}")
        for system, agg in result["summary"][kind].items():
            print(f"  {system:<14}" + "".join(f"{agg[m]:>10.3f}" for m in metrics) + f"{agg['p50_ms']:>10}")
    if cost:
        print(f"\nindex cost ({cost['notebooks']} notebooks, {cost['notebook_bytes'] / 1e6:.1f} MB; "
              f"as .py {cost['py_bytes'] / 1e6:.2f} MB)")
        print(f"  {'figure':<36}{'median':>9}{'min':>9}{'max':>9}")
        for label, key in (("index the notebooks (s)", "notebooks_s"), ("index the same code as .py (s)", "py_s")):
            s = cost[key]
            print(f"  {label:<36}{s['median']:>9}{s['min']:>9}{s['max']:>9}")
        print(f"  {'notebooks / .py':<36}{cost['ratio']:>9}   target <= {cost['target_ratio']}")
        print(f"  {'nbformat import, once (s)':<36}{cost['nbformat_import_s']:>9}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="question file (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default: %(default)s)")
    ap.add_argument("--reindex", action="store_true", help="delete the corpus's index store first")
    ap.add_argument("--no-dense", action="store_true", help="no MiniLM vectors (hybrid = lexical + static + graph)")
    ap.add_argument("--repeat", type=int, default=3, help="index-cost runs per tree (default 3)")
    ap.add_argument("--skip-cost", action="store_true", help="do not measure the index cost")
    ap.add_argument("--check-gold", action="store_true", help="only validate the questions against the corpus")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="print DirEng's misses (-vv: every question)")
    args = ap.parse_args(argv)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("ANONYMIZED_TELEMETRY", "False"),
                       ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    try:
        data = load_questions(args.questions)
    except (OSError, ValueError) as err:
        print(f"notebook_eval: {err}", file=sys.stderr)
        return 2
    root = corpora.fetch(data["corpus"])
    if args.check_gold:
        problems = check_gold(data, root)
        for p in problems:
            print(p)
        print(f"{len(data['questions'])} questions, {len(problems)} problem(s)")
        return 1 if problems else 0

    started = time.perf_counter()
    result = evaluate(data, root, dense=not args.no_dense, reindex=args.reindex, verbose=args.verbose)
    cost = None if args.skip_cost else index_cost(root, max(1, args.repeat))
    counts = {k: sum(q["type"] == k for q in data["questions"]) for k in KINDS}
    print_tables(result, cost, counts)
    payload = {"meta": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "seconds": round(time.perf_counter() - started, 1), "corpus": corpora.CORPORA[data["corpus"]].pin,
                        "dense": not args.no_dense, "questions_file": str(args.questions), "counts": counts,
                        "python": platform.python_version(), "cpus": os.cpu_count(),
                        "engine_version": corpora.engine_version()},
               "index_cost": cost, **result}
    write_results(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
