"""Ablation of the hybrid search: which parts measurably help on the evaluation set.

Runs on the stores `retrieval_eval.py` built (MiniLM vectors included) and varies one part at a
time: the graph hop, the PageRank prior, the static-vector ranking, the MiniLM ranking, and the
weight of names over bodies. Prints sym@5 / MRR / file@1 per variant and writes
benchmarks/results/ablation.json.

    python benchmarks/ablation.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from retrieval_eval import aggregate, load_questions, score_search  # noqa: E402

from direng_kernel.index.graph import compute_ranks  # noqa: E402
from direng_kernel.workbench import Workbench  # noqa: E402

CORPORA = {"requests": "requests-2.32.3", "click": "click-8.1.7", "flask": "flask-3.0.3", "attrs": "attrs-23.2.0"}
VARIANTS = {
    "hybrid (shipped)": {},
    "no graph hop": {"graph_weight": 0.0},
    "no PageRank prior": {"prior_weight": 0.0},
    "no graph at all": {"graph_weight": 0.0, "prior_weight": 0.0},
    "no static vectors": {"static_weight": 0.0},
    "no MiniLM": {"dense_weight": 0.0},
    "stronger prior (0.15)": {"prior_weight": 0.15},
    "stronger hop (0.6)": {"graph_weight": 0.6},
}


def main() -> int:
    # The where/how questions of the four Python corpora (the set this ablation was first run on).
    questions = [q for q in load_questions() if q["kind"] in ("where", "how") and q["corpus"] in CORPORA]
    rows: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for corpus, folder in CORPORA.items():
        root = HERE / ".cache" / "corpora" / folder
        wb = Workbench(root)
        if not wb.is_indexed or wb.status().dense_chunks == 0:
            print(f"{corpus}: run benchmarks/retrieval_eval.py first (needs an index with MiniLM vectors)")
            return 1
        if wb.store.get_meta("rank_stats") is None:
            compute_ranks(wb.store)
        searcher = wb.searcher
        defaults = {k: getattr(searcher, k) for k in ("graph_weight", "prior_weight", "static_weight", "dense_weight")}
        for name, overrides in VARIANTS.items():
            for key, value in {**defaults, **overrides}.items():
                setattr(searcher, key, value)
            for q in (q for q in questions if q["corpus"] == corpus):
                hits = [h.model_dump() for h in wb.search(q["question"], k=10)]
                rows[name].append(score_search(hits, q))
        for key, value in defaults.items():
            setattr(searcher, key, value)
    summary = {name: aggregate(r) for name, r in rows.items()}
    print(f"{'variant':<24} {'sym@5':>6} {'mrr':>6} {'file@1':>7} {'file@5':>7}  (n={len(questions)})")
    for name, m in summary.items():
        print(f"{name:<24} {m['sym@5']:>6.3f} {m['mrr']:>6.3f} {m['file@1']:>7.3f} {m['file@5']:>7.3f}")
    out = HERE / "results" / "ablation.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
