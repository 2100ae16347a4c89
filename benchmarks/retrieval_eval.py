"""Retrieval quality of the code index on real corpora, against plain baselines.

For each evaluation corpus (pinned releases of Python, TypeScript, Go and Rust packages, see
``corpora.py``) this indexes the unpacked release twice — once as ``direng index ROOT`` does
(no MiniLM vectors: lexical + static vectors + graph) and once with every MiniLM vector filled
(``direng index ROOT --dense``) — and asks every question of ``eval/questions.json`` to:

    ours_default  wb.search(q) on the index as shipped: what `direng index` then
                  `direng search` answer (no MiniLM vectors unless --dense)
    ours_warm     wb.search(q) on the index as shipped, MiniLM allowed and DIRENG_RERANK=1: what a warm
                  process (kernel, server, `direng index --watch`) answers with the opt-in rerank
                  before any vector is filled (rerank.py)
    ours_hybrid   wb.search(q) on the index with every MiniLM vector filled
    ours_bm25     wb.search(q, mode="bm25")        its lexical retriever alone
    ours_dense    (optional) wb.search(q, mode="dense") on the MiniLM index: vectors alone
    ours_static   (optional) wb.search(q, mode="static"): static vectors alone
    base_bm25     bm25s over the same chunk texts, no identifier splitting   (baselines.BM25Baseline)
    base_bm25_split  the same BM25 with identifier splitting          (baselines.SplitBM25Baseline)
    base_dense    plain MiniLM cosine over the chunk texts             (baselines.DenseBaseline)
    base_hybrid   base_bm25 + base_dense by RRF                        (baselines.NaiveHybridBaseline)

Question kinds (``kind``): ``where`` / ``how`` (a behaviour, gold = the symbols doing it),
``relation`` ("which functions use X", "who depends on X", "where is X invoked"; gold = every
calling symbol within ``caller_scope``, ``target`` = X), ``file`` (gold = a file, ``symbol``
null) and ``type`` (gold = a class, interface, trait, struct or type alias).

Metrics per question (k = 10 hits asked for):

    file@1   the first hit is in a gold file          (path only)
    file@5   a gold file is among the first 5 hits    (path only)
    sym@5    a gold (path, symbol) is among the first 5 hits; symbols match exactly
             (gold ``Session`` does not match a hit ``Session.request``).  A gold entry
             whose symbol is null (``file`` questions) is matched by any hit in that file —
             the file is the answer, and every hit in it cites it — so for those sym@5 and
             mrr are file@5 and the file's reciprocal rank.
    mrr      1 / rank of the first exact match within the k hits, else 0 (MRR@10)
    callers@10  relation questions only: share of the gold callers among the k hits

Relation questions are also answered through the call graph,
``wb.graph("path::X", direction="callers")``: set recall and precision of the calling
symbols against the gold callers (callers outside ``caller_scope``, e.g. tests, are ignored on
both sides).

    python benchmarks/retrieval_eval.py                      # every corpus, default systems
    python benchmarks/retrieval_eval.py --corpus mobx        # one corpus (saved, see --report)
    python benchmarks/retrieval_eval.py --report             # tables over every saved corpus
    python benchmarks/retrieval_eval.py --corpus requests --limit 5 -v
    python benchmarks/retrieval_eval.py --check-gold         # validate the question set only

Each corpus's per-question results go to ``results/retrieval_eval/<corpus>.json`` as soon as
it is done, so a long run can go corpus by corpus; the tables (pandas DataFrames: overall, per
language, per kind, per corpus, the goals) are printed for the corpora of this run, or with
``--report`` for every saved corpus whose questions still match the question file, and written
to ``results/retrieval_eval.json``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import re
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
PER_CORPUS_DIR = RESULTS_DIR / "retrieval_eval"
STORES_DIR = corpora.CACHE_DIR / "stores"  # the shipped-default indexes (no MiniLM), outside the roots

# system -> (index: "shipped" | "dense", search mode)
OURS = {"ours_default": ("shipped", "hybrid"), "ours_warm": ("shipped", "hybrid"), "ours_hybrid": ("dense", "hybrid"),
        "ours_bm25": ("shipped", "bm25"), "ours_dense": ("dense", "dense"), "ours_static": ("shipped", "static")}
BASELINES = ("base_bm25", "base_bm25_split", "base_dense", "base_hybrid")
ALL_MODES = (*OURS, *BASELINES)
DEFAULT_MODES = ("ours_default", "ours_hybrid", "ours_bm25", "base_bm25", "base_bm25_split", "base_dense",
                 "base_hybrid")
METRICS = ("file@1", "file@5", "sym@5", "mrr")
KINDS = ("where", "how", "relation", "file", "type")
LANGS = ("python", "typescript", "go", "rust")
LEGACY_KIND = {"callers": "relation"}  # version 1 of the file said `type: callers`
# What a `type` question's gold may be, by the kind the engine gives the symbol.
TYPE_KINDS = {"class", "interface", "trait", "struct", "enum", "type"}
# The shipped default's goals (issue 14), checked on the whole set.
GOALS = {"sym@5": 0.85, "mrr": 0.65, "file@1": 0.70, "relation": 0.75}
SOURCE_SUFFIXES = {"python": (".py",), "typescript": (".ts", ".tsx", ".mts", ".cts"), "go": (".go",),
                   "rust": (".rs",)}


# -- questions ------------------------------------------------------------------------------

def load_questions(path: Path = QUESTIONS) -> list[dict]:
    """The questions, each with `kind` and `lang` (older `type` fields are read as `kind`)."""
    data = json.loads(Path(path).read_text())
    items = data["questions"] if isinstance(data, dict) else data
    for i, q in enumerate(items):
        q.setdefault("id", f"{q['corpus']}-{i + 1:02d}")
        kind = q.get("kind") or q.get("type")
        q["kind"] = LEGACY_KIND.get(kind, kind)
        q.pop("type", None)
        c = corpora.CORPORA.get(q["corpus"])
        q.setdefault("lang", c.lang if c else "python")
    return items


def questions_digest(questions: list[dict]) -> str:
    """A fingerprint of a corpus's questions: saved results older than an edit are not reported."""
    keep = [{k: q.get(k) for k in ("id", "kind", "question", "gold", "target", "caller_scope")} for q in questions]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _ast_symbols(root: Path, rel: str) -> tuple[dict[str, str], ast.AST | None]:
    """Qualified names defined in one Python file, as the engine names them, with their kind."""
    try:
        tree = ast.parse((root / rel).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return {}, None
    names: dict[str, str] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[prefix + n.name] = "class" if isinstance(n, ast.ClassDef) else "function"
                walk(n, prefix + n.name + ".")
            elif isinstance(n, (ast.Assign, ast.AnnAssign)) and not prefix:
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                names.update((t.id, "constant") for t in targets if isinstance(t, ast.Name))
            else:
                walk(n, prefix)

    walk(tree, "")
    return names, tree


def _ast_callers(root: Path, bare: str, scope: str, trees: dict) -> set[tuple[str, str]]:
    """(path, enclosing qualname) of every call to `bare` or `x.bare` under `scope`."""
    out: set[tuple[str, str]] = set()
    for f in sorted((root / scope).rglob("*.py")) if (root / scope).is_dir() else []:
        rel = f.relative_to(root).as_posix()
        if rel not in trees:
            if bare not in f.read_text(encoding="utf-8", errors="replace"):
                continue  # no call can be there; not parsed
            trees[rel] = _ast_symbols(root, rel)[1]
        tree = trees[rel]
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


# TypeScript, Go and Rust: the symbols are the engine's tree-sitter parse of the one file
# (`direng_kernel.index.parse.parse_source`, no index, no model), so gold names are the names
# the index gives; call sites come from a syntactic scan of the source text (below).

def _ts_parse(root: Path, rel: str, lang: str):
    from direng_kernel.index.parse import parse_source  # deferred: the Python checks need no engine

    try:
        source = (root / rel).read_bytes()
    except OSError:
        return None
    return parse_source(rel, source, lang)


_DQ = r'"(?:[^"\\\n]|\\.)*"'
_LEXEMES = {  # comments and literals, matched left to right so that each hides what is inside it
    "typescript": re.compile(r"//[^\n]*|/\*.*?\*/|" + _DQ + r"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`", re.S),
    "go": re.compile(r"//[^\n]*|/\*.*?\*/|" + _DQ + r"|`[^`]*`|'(?:[^'\\\n]|\\[^'\n]{1,10})'", re.S),
    # Rust: raw strings r#"…"#, multi-line strings, byte strings, char literals but not lifetimes ('a)
    "rust": re.compile(r'//[^\n]*|/\*.*?\*/|r(#*)".*?"\1|b?"(?:[^"\\]|\\.)*"' + r"|b?'(?:[^'\\\n]|\\[^'\n]{1,10})'", re.S),
}


def _code_only(text: str, lang: str) -> str:
    """Comments and string literals blanked out (newlines kept, so line numbers hold)."""
    return _LEXEMES[lang].sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _definition_line(line: str, bare: str) -> bool:
    """`function f(`, `fn f(`, `func (r *T) f(`, or a TypeScript method head `  f(x: T): U {`."""
    b = re.escape(bare)
    if re.search(rf"\b(?:function\*?|fn|func)\s+(?:\([^)]*\)\s*)?{b}\b", line):
        return True
    return bool(re.match(rf"^\s*(?:(?:public|private|protected|static|async|override|readonly|get|set)\s+)*"
                         rf"\*?{b}\s*(?:<[^()]*>)?\s*\(.*\)\s*(?::[^=]*)?\{{\s*$", line)) and "=>" not in line


def _scan_callers(root: Path, bare: str, scope: str, lang: str, parsed: dict) -> set[tuple[str, str]]:
    """(path, innermost enclosing symbol) of every `bare(`, `x.bare(`, `T::bare(` under `scope`."""
    call = re.compile(rf"(?<![\w$]){re.escape(bare)}\s*(?:::<[^()]*>|<[^()]*>)?\s*\(")
    base = root / scope
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
    out: set[tuple[str, str]] = set()
    for f in files:
        rel = f.relative_to(root).as_posix()
        if not rel.endswith(SOURCE_SUFFIXES[lang]) or rel.endswith(".d.ts") or "/.git/" in f"/{rel}":
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        if bare not in text:
            continue
        if rel not in parsed:
            parsed[rel] = _ts_parse(root, rel, lang)
        pf = parsed[rel]
        syms = [s for s in (pf.symbols if pf else []) if s.kind not in ("impl", "module")]
        for no, line in enumerate(_code_only(text, lang).splitlines(), 1):
            if not call.search(line) or _definition_line(line, bare):
                continue
            inside = [s for s in syms if s.start_line <= no <= s.end_line]
            if inside:
                inner = min(inside, key=lambda s: (s.end_line - s.start_line, -s.start_line))
                out.add((rel, inner.qualname))
    return out


class _CorpusSymbols:
    """Symbols per file of one corpus, parsed once (Python by `ast`, the rest by tree-sitter)."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, dict[str, str]] = {}
        self.dupes: dict[str, dict[str, int]] = {}
        self.trees: dict[str, Any] = {}
        self.parsed: dict[str, Any] = {}

    def lang_of(self, rel: str) -> str | None:
        return next((lang for lang, sufs in SOURCE_SUFFIXES.items() if rel.endswith(sufs)), None)

    def symbols(self, rel: str) -> dict[str, str]:
        if rel not in self.cache:
            lang = self.lang_of(rel)
            names: dict[str, str] = {}
            counts: dict[str, int] = defaultdict(int)
            if not (self.root / rel).is_file() or lang is None:
                pass
            elif lang == "python":
                names, self.trees[rel] = _ast_symbols(self.root, rel)
            else:
                pf = self.parsed.get(rel) or _ts_parse(self.root, rel, lang)
                self.parsed[rel] = pf
                for s in pf.symbols if pf else []:
                    names.setdefault(s.qualname, s.kind)
                    counts[s.qualname] += 1
            self.cache[rel] = names
            self.dupes[rel] = {k: v for k, v in counts.items() if v > 1}
        return self.cache[rel]


def check_gold(questions: list[dict]) -> int:
    """Validate the question set against the pinned sources; returns the number of problems.

    Every gold path exists; every gold symbol is defined there (Python by `ast`, other languages
    by the engine's tree-sitter parse of that one file); a `type` question's gold is a type; a
    `file` question's gold has no symbol; every relation question's gold callers equal a syntactic
    scan for calls to the target within its scope. Only the gold files (and the scopes of relation
    questions) are read: a few seconds for the whole set once the corpora are cached.
    """
    problems = 0
    by_corpus: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        by_corpus[q["corpus"]].append(q)
    ident = 0
    seen_ids: set[str] = set()

    def bad(q: dict, msg: str) -> None:
        nonlocal problems
        print(f"[{q['id']}] {msg}")
        problems += 1

    for name, qs in by_corpus.items():
        if name not in corpora.CORPORA:
            for q in qs:
                bad(q, f"unknown corpus {name!r}")
            continue
        root = corpora.fetch(name)
        syms = _CorpusSymbols(root)
        for q in qs:
            if q["id"] in seen_ids:
                bad(q, "duplicate id")
            seen_ids.add(q["id"])
            kind, lang = q.get("kind"), q.get("lang")
            if kind not in KINDS:
                bad(q, f"`kind` must be one of {', '.join(KINDS)}, not {kind!r}")
                continue
            if lang not in LANGS:
                bad(q, f"`lang` must be one of {', '.join(LANGS)}, not {lang!r}")
            if not q.get("gold"):
                bad(q, "`gold` must be a non-empty list")
                continue
            ident += bool(mentions_identifier(q["question"]))
            entries = list(q["gold"]) + ([q["target"]] if q.get("target") else [])
            for g in entries:
                path, sym = g.get("path"), g.get("symbol")
                if not path or path != path.strip("/") or "\\" in path:
                    bad(q, f"bad path {path!r}")
                elif not (root / path).is_file():
                    bad(q, f"missing file {path}")
                elif sym and sym not in syms.symbols(path):
                    bad(q, f"{path} has no symbol {sym!r}")
                elif sym and syms.dupes.get(path, {}).get(sym):
                    print(f"[{q['id']}] note: {path} defines {sym!r} {syms.dupes[path][sym]} times "
                          f"(the index keeps one)")
            if kind == "file" and any(g.get("symbol") for g in q["gold"]):
                bad(q, "a `file` question's gold names files only (symbol null)")
            if kind != "file" and not all(g.get("symbol") for g in q["gold"]):
                bad(q, f"a `{kind}` question's gold needs symbols")
            if kind == "type":
                for g in q["gold"]:
                    k = syms.symbols(g["path"]).get(g.get("symbol") or "")
                    if k is not None and k not in TYPE_KINDS:
                        bad(q, f"gold {g['symbol']!r} of a `type` question is a {k}, not a type")
            if kind == "relation":
                if not q.get("target"):
                    bad(q, "a relation question needs a `target`")
                    continue
                bare = q["target"]["symbol"].rsplit(".", 1)[-1]
                scope = q.get("caller_scope", "")
                if lang == "python":
                    found = _ast_callers(root, bare, scope, syms.trees)
                else:
                    found = _scan_callers(root, bare, scope, lang, syms.parsed)
                found.discard((q["target"]["path"], q["target"]["symbol"]))  # recursion
                gold = {(g["path"], g["symbol"]) for g in q["gold"]}
                if found != gold:
                    bad(q, f"callers differ from a syntactic scan: missing {sorted(found - gold)} "
                           f"extra {sorted(gold - found)}")
    n = len(questions)
    counts = defaultdict(int)
    for q in questions:
        counts[(q.get("lang"), q.get("kind"))] += 1
    table = "; ".join(f"{lang}: " + ", ".join(f"{counts[(lang, k)]} {k}" for k in KINDS if counts[(lang, k)])
                      for lang in LANGS if any(counts[(lang, k)] for k in KINDS))
    print(f"{n} questions, {len(by_corpus)} corpora ({table}); {ident} mention an identifier "
          f"({ident / max(n, 1):.0%}); {problems} problem(s)")
    return problems


def mentions_identifier(text: str) -> list[str]:
    """Code-looking tokens in a question: snake_case, CamelCase inside a word, dunders, dotted names."""
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


def _kind(q: dict) -> str:
    kind = q.get("kind") or q.get("type")
    return LEGACY_KIND.get(kind, kind)


def score_search(hits: list[dict], q: dict) -> dict:
    gold = q["gold"]
    gold_paths = {g["path"] for g in gold}
    gold_syms = {(g["path"], g["symbol"]) for g in gold if g.get("symbol")}
    whole_files = {g["path"] for g in gold if not g.get("symbol")}  # a file is the answer

    def exact(h: dict) -> bool:
        return (h["path"], h["symbol"]) in gold_syms or h["path"] in whole_files

    file_rank = next((i for i, h in enumerate(hits, 1) if h["path"] in gold_paths), None)
    sym_rank = next((i for i, h in enumerate(hits, 1) if exact(h)), None)
    out = {
        "file@1": float(file_rank == 1),
        "file@5": float(file_rank is not None and file_rank <= 5),
        "sym@5": float(sym_rank is not None and sym_rank <= 5),
        "mrr": 1.0 / sym_rank if sym_rank else 0.0,
        "file_rank": file_rank,
        "sym_rank": sym_rank,
    }
    if _kind(q) == "relation":
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

def build_systems(wbs: dict, chunks: list[dict], modes: list[str], k: int, cache_dir: Path,
                  progress: bool) -> dict[str, Callable[[str], list[dict]]]:
    systems: dict[str, Callable[[str], list[dict]]] = {}
    if "ours_warm" in modes:  # the query-time rerank is opt-in (index/rerank.py)
        os.environ["DIRENG_RERANK"] = "1"
    for m in modes:
        if m in OURS:
            which, mode = OURS[m]
            wb = wbs[which]
            # ours_default is the one-shot CLI's answer: no MiniLM in the process (dense=False)
            systems[m] = (lambda wb, mode, dense: (lambda q: [_norm_hit(h) for h in wb.search(
                q, k=k, mode=mode, dense=dense)]))(wb, mode, m != "ours_default")
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
        if "base_bm25_split" in need:
            split = baselines.SplitBM25Baseline(chunks)
            systems["base_bm25_split"] = lambda q: [_norm_hit(h) for h in split.search(q, k)]
        if "base_dense" in need:
            systems["base_dense"] = lambda q: [_norm_hit(h) for h in dense.search(q, k)]
        if "base_hybrid" in need:
            hybrid = baselines.NaiveHybridBaseline(chunks, bm25=bm25, dense=dense)
            systems["base_hybrid"] = lambda q: [_norm_hit(h) for h in hybrid.search(q, k)]
    return {m: systems[m] for m in modes if m in systems}


def open_workbench(root: Path, store: Path | None = None):
    from direng_kernel.workbench import Workbench  # imported late: --help and --check-gold need no engine

    return Workbench(root, store=store)


def engine_fingerprint() -> dict:
    """Where the engine under test was imported from and a digest of its sources: results of
    corpora run against different engine code are not comparable, and --report says so."""
    import direng_kernel

    pkg = Path(direng_kernel.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*")):
        if f.suffix in (".py", ".scm") and "__pycache__" not in f.parts:
            h.update(f.relative_to(pkg).as_posix().encode())
            h.update(f.read_bytes())
    return {"path": str(pkg), "digest": h.hexdigest()[:16], "version": corpora.engine_version()}


def shipped_store(name: str) -> Path:
    return STORES_DIR / corpora.CORPORA[name].root.name / "shipped"


def seed_store(src: Path, dst: Path) -> None:
    """Copy an index store for engine code under test, marked to be re-parsed on first use:
    what the variant chunks differently is rebuilt, and chunks that come out the same keep
    their MiniLM vectors (ids are content hashes), so a variant needs no full re-embedding."""
    import shutil
    import sqlite3

    if dst.exists() or not (src / "index.sqlite3").exists():
        return
    shutil.copytree(src, dst)
    with sqlite3.connect(dst / "index.sqlite3") as db:
        db.execute("DELETE FROM meta WHERE key='parse_generation'")


def evaluate_corpus(name: str, questions: list[dict], modes: list[str], k: int, *, reindex: bool,
                    verbose: int, progress: bool, stores_dir: Path | None = None) -> dict:
    import shutil

    root = corpora.fetch(name)
    need = {OURS[m][0] for m in modes if m in OURS} | {"shipped"}  # chunks for the baselines
    if any(m in ("ours_hybrid", "ours_dense") for m in modes):
        need.add("dense")
    stores = {"shipped": shipped_store(name), "dense": root / ".direng"}
    if stores_dir is not None:  # engine code under test: its own stores, the shipped ones untouched
        own = {w: stores_dir / root.name / w for w in stores}
        for w in need:
            seed_store(stores[w], own[w])
        stores = own
    wbs, index_s, reports = {}, {}, {}
    for which in ("shipped", "dense"):
        if which not in need:
            continue
        if reindex and stores[which].exists():
            shutil.rmtree(stores[which])
        wb = open_workbench(root, stores[which])
        t = time.perf_counter()
        reports[which] = wb.index(progress=progress, dense=which == "dense")
        index_s[which] = round(time.perf_counter() - t, 2)
        wbs[which] = wb
    wb = wbs["shipped"]
    import baselines

    chunks = [baselines.as_chunk_dict(c) for c in wb.chunks()]
    status = {w: b.status() for w, b in wbs.items()}
    print(f"[{name}] {root.name}: {len(chunks)} chunks; index {index_s.get('shipped')}s as shipped"
          + (f", {index_s['dense']}s with MiniLM ({status['dense'].dense_chunks} vectors)" if "dense" in wbs else ""),
          file=sys.stderr)
    # Gold answers the engine has no chunk for can never be hit: a parser/naming gap, not ranking.
    indexed = {(c["path"], c["symbol"]) for c in chunks}
    files = {c["path"] for c in chunks}
    not_indexed = sorted({f"{g['path']}::{g['symbol']}" for q in questions for g in q["gold"]
                          if (g.get("symbol") and (g["path"], g["symbol"]) not in indexed)
                          or (not g.get("symbol") and g["path"] not in files)})
    if not_indexed:
        print(f"[{name}] {len(not_indexed)} gold answer(s) have no chunk in the index: "
              + ", ".join(not_indexed[:8]) + (" …" if len(not_indexed) > 8 else ""), file=sys.stderr)
    systems = build_systems(wbs, chunks, modes, k, corpora.CACHE_DIR / "embeddings", progress)

    per_q = []
    latencies: dict[str, list[float]] = defaultdict(list)
    for q in questions:
        row = {"id": q["id"], "corpus": name, "lang": q["lang"], "kind": q["kind"], "question": q["question"],
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
        if q["kind"] == "relation" and q.get("target"):
            target = f"{q['target']['path']}::{q['target']['symbol']}"
            try:
                g = wb.graph(target, direction="callers", depth=1)
                row["graph"] = score_graph(g, q)
            except Exception as e:  # noqa: BLE001
                row["graph"] = {"recall": 0.0, "precision": 0.0, "f1": 0.0, "error": f"{type(e).__name__}: {e}"}
        per_q.append(row)
        if verbose:
            _print_failures(row, list(systems), verbose)

    summary: dict[str, Any] = {
        "root": str(root), "pin": corpora.CORPORA[name].pin, "lang": corpora.CORPORA[name].lang,
        "chunks": len(chunks), "dense_chunks": status["dense"].dense_chunks if "dense" in status else 0,
        "index_seconds": index_s, "gold_not_indexed": not_indexed,
        "index_report": {w: r.model_dump(mode="json", exclude={"changed_paths"}) if hasattr(r, "model_dump") else None
                         for w, r in reports.items()},
        "engine": engine_fingerprint(),
        "latency_ms": {m: {"p50": statistics.median(v), "mean": _mean(v)} for m, v in latencies.items() if v},
        "questions_digest": questions_digest(questions),
    }
    for b in wbs.values():
        if hasattr(b, "close"):
            b.close()
    return {"summary": summary, "questions": per_q}


def _print_failures(row: dict, systems: list[str], verbose: int) -> None:
    shown = systems if verbose > 1 else [s for s in systems if s in OURS][:1] or systems[:1]
    failing = [s for s in shown if not row["results"][s]["sym@5"]]
    graph_bad = "graph" in row and row["graph"].get("recall", 0) < 1.0
    if not failing and not graph_bad:
        return
    gold = ", ".join(f"{g['path']}::{g.get('symbol') or '(file)'}" for g in row["gold"])
    print(f"\n✗ [{row['id']}] ({row['lang']}/{row['kind']}) {row['question']}\n    gold: {gold}")
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

def _systems_in(rows: list[dict], modes: list[str]) -> list[str]:
    return [m for m in modes if rows and all(m in r["results"] for r in rows)]


def summarize(rows: list[dict], modes: list[str]) -> dict:
    """Every aggregate the tables show, from per-question rows (any set of corpora)."""
    systems = _systems_in(rows, modes)
    groups: dict[str, dict[str, list[dict]]] = {
        "all": {"all": rows},
        "lang": {lang: [r for r in rows if r["lang"] == lang] for lang in LANGS},
        "kind": {kind: [r for r in rows if r["kind"] == kind] for kind in KINDS},
        "corpus": {c: [r for r in rows if r["corpus"] == c] for c in dict.fromkeys(r["corpus"] for r in rows)},
    }
    out: dict[str, Any] = {"systems": systems}
    for gname, parts in groups.items():
        out[gname] = {}
        for part, rs in parts.items():
            if not rs:
                continue
            rel = [r for r in rs if r["kind"] == "relation"]
            out[gname][part] = {m: aggregate([r["results"][m] for r in rs]) | (
                {"callers@10": _mean([r["results"][m]["callers@10"] for r in rel]), "n_relation": len(rel)}
                if rel else {}) for m in systems}
            g = [r["graph"] for r in rs if "graph" in r]
            if g:
                out[gname][part]["graph_callers"] = aggregate(g, ("recall", "precision", "f1"))
    out["goals"] = goals(out, systems)
    return out


def goals(summary: dict, systems: list[str], system: str = "ours_default") -> dict:
    if system not in systems or "all" not in summary.get("all", {}):
        return {}
    allm = summary["all"]["all"][system]
    rel = summary["kind"].get("relation", {}).get(system, {})
    res = {f"{m} ≥ {t}": {"target": t, "measured": allm[m], "met": allm[m] >= t}
           for m, t in GOALS.items() if m in allm}
    if rel:
        for m in ("sym@5", "callers@10"):
            v = rel.get(m, float("nan"))
            res[f"relation {m} ≥ {GOALS['relation']}"] = {"target": GOALS["relation"], "measured": v,
                                                           "met": v >= GOALS["relation"]}
    if "base_dense" in systems:
        dense = summary["all"]["all"]["base_dense"]
        beaten = {m: allm[m] > dense[m] for m in METRICS}
        res["beats base_dense on every metric"] = {"target": "all of " + ", ".join(METRICS),
                                                   "measured": ", ".join(m for m, b in beaten.items() if b) or "none",
                                                   "met": all(beaten.values())}
    return res


def tables(summary: dict) -> dict[str, Any]:
    """The summary as pandas DataFrames: overall, per language, per kind, per corpus, goals."""
    import pandas as pd

    systems = summary["systems"]
    out = {}
    for gname in ("all", "lang", "kind", "corpus"):
        recs = []
        for part, by_sys in summary[gname].items():
            for m in systems:
                s = by_sys[m]
                rec = {gname: part, "system": m, "n": s["n"], **{x: s[x] for x in METRICS}}
                rec["callers@10"] = s.get("callers@10", float("nan"))
                recs.append(rec)
        df = pd.DataFrame.from_records(recs)
        if gname == "all":
            df = df.drop(columns=["all"])
        out[gname] = df
    grecs = [{"group": f"{g}={p}", **v["graph_callers"]} for g in ("lang", "all")
             for p, v in summary[g].items() if "graph_callers" in v]
    out["graph"] = pd.DataFrame.from_records(grecs)
    out["goals"] = pd.DataFrame.from_records(
        [{"goal (ours_default, whole set)": k, **v} for k, v in summary.get("goals", {}).items()])
    return out


def to_markdown(df, floatfmt: str = "{:.3f}") -> str:
    """A DataFrame as a Markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append("-" if v != v else floatfmt.format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_tables(summary: dict, markdown: bool = False) -> None:
    import pandas as pd

    titles = {"all": "Whole set (every kind)", "lang": "Per language", "kind": "Per kind",
              "corpus": "Per corpus", "graph": "Relation questions through wb.graph(direction='callers')",
              "goals": "Goals"}
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_columns", 20,
                           "display.float_format", "{:.3f}".format):
        for name, df in tables(summary).items():
            if df.empty:
                continue
            print(f"\n## {titles[name]}\n")
            print(to_markdown(df) if markdown else df.to_string(index=False))


def worst(rows: list[dict], system: str = "ours_default", n: int = 10) -> dict[str, list[dict]]:
    """The n worst-scored questions per language for one system, with what it returned first."""
    out: dict[str, list[dict]] = {}
    for lang in LANGS:
        rs = [r for r in rows if r["lang"] == lang and system in r["results"]]
        rs.sort(key=lambda r: (r["results"][system]["mrr"], r["results"][system]["sym@5"],
                               r["results"][system]["file@5"], r["results"][system]["file@1"]))
        out[lang] = [{"id": r["id"], "kind": r["kind"], "question": r["question"],
                      "gold": [f"{g['path']}::{g.get('symbol') or '(file)'}" for g in r["gold"]],
                      "sym_rank": r["results"][system]["sym_rank"], "file_rank": r["results"][system]["file_rank"],
                      "first": "::".join(str(x) for x in r["results"][system]["top"][0]) if r["results"][system]["top"] else None}
                     for r in rs[:n]]
    return out


def print_worst(rows: list[dict], system: str, n: int) -> None:
    for lang, items in worst(rows, system, n).items():
        if not items:
            continue
        print(f"\n## {n} worst for {system}: {lang}\n")
        for it in items:
            print(f"- [{it['id']}] ({it['kind']}) {it['question']}\n    gold {', '.join(it['gold'])}; "
                  f"sym rank {it['sym_rank']}, file rank {it['file_rank']}; first: {it['first']}")


def load_saved(names: list[str], questions: list[dict]) -> dict[str, dict]:
    """Per-corpus results saved by earlier runs whose questions still match the question file."""
    out = {}
    for name in names:
        f = PER_CORPUS_DIR / f"{name}.json"
        if not f.exists():
            continue
        data = json.loads(f.read_text())
        qs = [q for q in questions if q["corpus"] == name]
        if data["summary"].get("questions_digest") != questions_digest(qs):
            print(f"[{name}] saved results are for other questions: run --corpus {name} again", file=sys.stderr)
            continue
        out[name] = data
    digests = {n: (d["summary"].get("engine") or {}).get("digest") for n, d in out.items()}
    if len(set(digests.values())) > 1:
        print(f"warning: the saved corpora were run against different engine code: {digests}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", default=[],
                    help=f"corpus to evaluate (repeatable or comma-separated; default: {','.join(corpora.EVAL_CORPORA)})")
    ap.add_argument("--lang", default=None, help="only the corpora of these languages (comma-separated)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions of each corpus")
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES),
                    help=f"comma-separated systems (default: %(default)s; available: {','.join(ALL_MODES)})")
    ap.add_argument("-k", type=int, default=10, help="hits asked of each system (default 10)")
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="question file (default: eval/questions.json)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file (default: %(default)s)")
    ap.add_argument("--reindex", action="store_true", help="delete each corpus's index stores first")
    ap.add_argument("--stores", type=Path, default=None, metavar="DIR",
                    help="keep the index stores (and per-corpus results) under DIR instead of the shared "
                         "cache, for engine code under test; a new DIR starts from copies of the cached "
                         "stores, re-parsed once")
    ap.add_argument("--check-gold", action="store_true",
                    help="only validate the question set against the pinned sources (no index, no model)")
    ap.add_argument("--report", action="store_true",
                    help="run nothing: print the tables over every corpus saved in results/retrieval_eval/")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--worst", type=int, default=0, metavar="N",
                    help="also list the N worst-scored questions per language for ours_default")
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
    if args.lang:
        langs = set(args.lang.split(","))
        names = [n for n in names if n in corpora.CORPORA and corpora.CORPORA[n].lang in langs]
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

    t0 = time.perf_counter()
    if args.report:
        results = load_saved(names, questions)
        modes = list(ALL_MODES)
    else:
        results = {}
        for name in names:
            qs = [q for q in questions if q["corpus"] == name][: args.limit]
            if qs:
                results[name] = evaluate_corpus(name, qs, modes, args.k, reindex=args.reindex,
                                                verbose=args.verbose, progress=args.progress,
                                                stores_dir=args.stores)
                if args.limit is None:
                    per_corpus = args.stores / "results" if args.stores else PER_CORPUS_DIR
                    write_results(per_corpus / f"{name}.json", results[name])
    rows = [r for res in results.values() for r in res["questions"]]
    if not rows:
        print("no results", file=sys.stderr)
        return 1
    summary = summarize(rows, modes)
    print_tables(summary, markdown=args.markdown)
    if args.worst:
        print_worst(rows, "ours_default" if "ours_default" in summary["systems"] else summary["systems"][0], args.worst)

    payload = {
        "meta": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "seconds": round(time.perf_counter() - t0, 1), "modes": summary["systems"], "k": args.k,
                 "limit": args.limit, "questions_file": str(args.questions), "report": args.report,
                 "python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "engine_version": corpora.engine_version()},
        "engines": sorted({json.dumps(r["summary"].get("engine"), sort_keys=True) for r in results.values()}),
        "corpora": {n: r["summary"] for n, r in results.items()},
        "summary": summary,
        "worst": worst(rows, summary["systems"][0] if "ours_default" not in summary["systems"] else "ours_default"),
        "questions": rows,
    }
    write_results(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
