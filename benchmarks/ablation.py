"""Ablation of the shipped search: which parts measurably help, on the whole evaluation set.

Runs on the shipped-default stores `retrieval_eval.py` built (no MiniLM vectors: what
`direng index` then `direng search` answer) and varies one part at a time — the graph hop,
the PageRank prior, the static-vector ranking, the weight of names over bodies, relation
routing, the demotion of tests/docs/examples and of constants, the type-intent boost. Prints
sym@5 / MRR / file@1 / file@5 per variant, overall, per language and per kind (pandas), and
writes benchmarks/results/ablation.json. Every change to the shipped search is kept only when
this shows a gain (docs/benchmarks.md).

    python benchmarks/retrieval_eval.py --modes ours_default   # builds the stores (once)
    python benchmarks/ablation.py                              # every variant
    python benchmarks/ablation.py --variants shipped,"no graph hop" --corpus mobx
    python benchmarks/ablation.py --fit       # fusion weights by leave-one-corpus-out CV

`--fit` searches a grid of the fusion and intent weights. Each corpus in turn is held out: the
weights best on the other corpora are scored on it, so the reported held-out figure is what a
fitted weight set earns on code it was not fitted to. The weights best on every corpus are
printed last; the shipped defaults in `index/search.py` come from that line.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
from results import write as write_results  # noqa: E402
from retrieval_eval import METRICS, aggregate, load_questions, score_search, shipped_store  # noqa: E402
from direng_kernel.records import jsonable  # noqa: E402

#: variant -> Searcher attributes it changes from the shipped values.
VARIANTS: dict[str, dict] = {
    "shipped": {},
    "no graph hop": {"graph_weight": 0.0},
    "no PageRank prior": {"prior_weight": 0.0},
    "no static vectors": {"static_weight": 0.0},
    "static 0.3": {"static_weight": 0.3},
    "static 1.0": {"static_weight": 1.0},
    "no relation routing": {"relation_routing": False},
    "no demotion of tests/docs": {"aside_weight": 1.0},
    "no demotion of constants": {"constant_weight": 1.0},
    "no type boost": {"type_weight": 1.0},
    "names x2 (not x4)": {"name_weight": 2.0},
    "names x8": {"name_weight": 8.0},
}


#: the grid `--fit` searches (the lexical name weight is left out: it changes the cached ranking).
GRID = {"static_weight": (0.05, 0.1, 0.15, 0.3, 0.6), "graph_weight": (0.0, 0.2),
        "aside_weight": (0.2, 0.3, 0.5), "type_weight": (1.0, 2.0, 3.0), "constant_weight": (0.4, 0.6, 1.0)}


def _objective(rows: list[dict]) -> float:
    m = aggregate(rows)
    return (m["sym@5"] + m["mrr"] + m["file@1"]) / 3


def fit(corpus_names: list[str]) -> dict:
    """Leave-one-corpus-out CV over GRID; the retrievers' rankings are computed once per query."""
    from functools import lru_cache

    from direng_kernel.workbench import Workbench

    questions = [q for q in load_questions() if q["corpus"] in corpus_names]
    combos = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    scores: dict[str, list[list[dict]]] = {}  # corpus -> per combo, the question rows
    for name in corpus_names:
        wb = Workbench(corpora.CORPORA[name].root, store=shipped_store(name))
        searcher = wb.searcher
        searcher.lexical = lru_cache(maxsize=None)(searcher.lexical)
        searcher.static = lru_cache(maxsize=None)(searcher.static)
        qs = [q for q in questions if q["corpus"] == name]
        scores[name] = []
        for i, combo in enumerate(combos):
            for key, value in combo.items():
                setattr(searcher, key, value)
            scores[name].append([score_search(jsonable(wb.search(q["question"], k=10)), q)
                                 for q in qs])
        print(f"[fit] {name}: {len(combos)} weight sets x {len(qs)} questions", file=sys.stderr)
        wb.close()
    held_out: list[dict] = []
    picks = {}
    for out in corpus_names:
        train = [c for c in corpus_names if c != out]
        best = max(range(len(combos)), key=lambda i: _objective([r for c in train for r in scores[c][i]]))
        picks[out] = combos[best]
        held_out.extend(scores[out][best])
    best_all = max(range(len(combos)), key=lambda i: _objective([r for c in corpus_names for r in scores[c][i]]))
    return {"grid": GRID, "held_out": aggregate(held_out), "picks": picks, "best": combos[best_all],
            "best_in_sample": aggregate([r for c in corpus_names for r in scores[c][best_all]])}


def run(variants: list[str], corpus_names: list[str]) -> dict:
    from direng_kernel.workbench import Workbench  # the engine under test; --help needs none

    questions = [q for q in load_questions() if q["corpus"] in corpus_names]
    rows: dict[str, list[dict]] = defaultdict(list)
    for name in corpus_names:
        store = shipped_store(name)
        wb = Workbench(corpora.CORPORA[name].root, store=store)
        if not wb.is_indexed:
            raise SystemExit(f"{name}: no index at {store}; run benchmarks/retrieval_eval.py first")
        searcher = wb.searcher
        for variant in variants:
            changed = VARIANTS[variant]
            saved = {key: getattr(searcher, key) for key in changed}
            for key, value in changed.items():
                setattr(searcher, key, value)
            try:
                for q in (q for q in questions if q["corpus"] == name):
                    hits = jsonable(wb.search(q["question"], k=10))
                    rows[variant].append(score_search(hits, q) | {"lang": q["lang"], "kind": q["kind"]})
            finally:
                for key, value in saved.items():
                    setattr(searcher, key, value)
        wb.close()
    return rows


def tables(rows: dict[str, list[dict]]):
    import pandas as pd

    overall = pd.DataFrame([{"variant": v, **aggregate(r)} for v, r in rows.items()])
    by = {}
    for field in ("lang", "kind"):
        by[field] = pd.DataFrame([
            {"variant": v, field: g, **aggregate([r for r in rs if r[field] == g])}
            for v, rs in rows.items() for g in sorted({r[field] for r in rs})])
    return overall, by


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated (default: all)")
    ap.add_argument("--corpus", action="append", default=[], help="only these corpora (repeatable)")
    ap.add_argument("--by", default="lang,kind", help="breakdowns to print (lang, kind; empty for none)")
    ap.add_argument("--fit", action="store_true", help="fit the weights by leave-one-corpus-out CV")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    names = args.corpus or sorted({q["corpus"] for q in load_questions()}, key=list(corpora.CORPORA).index)
    if args.fit:
        result = fit(names)
        print("held out (each corpus scored with the weights fitted on the others):",
              {k: round(v, 3) for k, v in result["held_out"].items()})
        for corpus, pick in result["picks"].items():
            print(f"  without {corpus}: {pick}")
        print("best on every corpus:", result["best"], {k: round(v, 3) for k, v in result["best_in_sample"].items()})
        write_results(HERE / "results" / "ablation_fit.json", result)
        return 0
    rows = run(variants, names)
    overall, by = tables(rows)
    cols = ["variant", *METRICS, "n"]
    print(overall[cols].round(3).to_string(index=False))
    for field in [f for f in args.by.split(",") if f]:
        pivot = by[field].pivot(index="variant", columns=field, values="sym@5").loc[variants]
        print(f"\nsym@5 by {field}")
        print(pivot.round(3).to_string())
    write_results(HERE / "results" / "ablation.json", {"overall": overall.to_dict("records"),
                               **{f: df.to_dict("records") for f, df in by.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
