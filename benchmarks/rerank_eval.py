"""Query-time MiniLM rerank of the shipped default's top candidates, on a store without MiniLM vectors.

The idea measured (issue 14): before the filling has given any chunk a MiniLM vector, a warm
process (kernel, server, watcher) could still embed the query and the first K candidates of
the shipped search with the shipped encoder (`embed.dense_encoder()`, int8 ONNX) and re-fuse
the two orders. Nothing in the engine changes: this script takes `ours_default`'s ranking
(`wb.search` on the shipped-default store `retrieval_eval.py` built, as `ablation.py` does),
embeds each candidate's best-scoring chunk text (what the filling would embed for it), and
re-fuses, by

    rrf     1/(c + original rank) + w / (c + cosine rank)           c in {5, 60}
    linear  (1 - a) * minmax(original score) + a * minmax(cosine)

over the first K in {10, 20, 30} candidates (the rest keep their places below). A question
the engine answers from the graph (relation routing, `intent.relation_candidates` +
`Searcher.callers_hits`) is left as it is: its hits are callers, not text matches.

The fusion, K and weight are chosen by leave-one-corpus-out: for each corpus, the setting best
on the other seven (mean of sym@5, MRR@10 and file@1, as `ablation.py --fit`) is scored on it,
and the held-out figures are those scores pooled. The cost is what one query pays in a warm
process: K + 1 texts through the encoder, wall and CPU (`time.process_time`, onnxruntime's
threads included) milliseconds, each K embedded on its own.

    python benchmarks/retrieval_eval.py --modes ours_default   # builds the stores (once)
    python benchmarks/rerank_eval.py                           # writes results/rerank_eval.json
    python benchmarks/rerank_eval.py --corpus requests --ks 10
    python benchmarks/rerank_eval.py --max-length 128 --out benchmarks/results/rerank_eval-max128.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
from ablation import _objective  # noqa: E402
from results import write as write_results  # noqa: E402
from retrieval_eval import METRICS, aggregate, load_questions, score_search, shipped_store  # noqa: E402
from direng_kernel.records import jsonable  # noqa: E402

KS = (10, 20, 30)
RRF_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
RRF_CS = (5, 60)
LINEAR_AS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def settings(ks=KS) -> list[dict]:
    out = [{"fusion": "rrf", "k": k, "c": c, "w": w} for k in ks for c in RRF_CS for w in RRF_WEIGHTS]
    return out + [{"fusion": "linear", "k": k, "a": a} for k in ks for a in LINEAR_AS]


def label(s: dict) -> str:
    return (f"rrf K={s['k']} c={s['c']} w={s['w']}" if s["fusion"] == "rrf" else f"linear K={s['k']} a={s['a']}")


def _minmax(xs: list[float]) -> list[float]:
    lo, hi = min(xs), max(xs)
    return [(x - lo) / (hi - lo) if hi > lo else 0.0 for x in xs]


def rerank(hits: list[dict], cos: list[float] | None, s: dict, k: int = 10) -> list[dict]:
    """The first len(cos) hits re-fused with their cosines by setting `s`; the rest follow."""
    if not cos:
        return hits[:k]
    head, tail = hits[: len(cos)], hits[len(cos):]
    if s["fusion"] == "rrf":
        by_cos = sorted(range(len(head)), key=lambda i: -cos[i])
        cos_rank = {i: r for r, i in enumerate(by_cos, 1)}
        fused = [1 / (s["c"] + i + 1) + s["w"] / (s["c"] + cos_rank[i]) for i in range(len(head))]
    else:
        orig = _minmax([h["score"] for h in head])
        sims = _minmax(cos)
        fused = [(1 - s["a"]) * o + s["a"] * c for o, c in zip(orig, sims)]
    order = sorted(range(len(head)), key=lambda i: (-fused[i], i))  # ties keep the shipped order
    return ([head[i] for i in order] + tail)[:k]


def _encoder(max_length: int | None):
    """The shipped MiniLM encoder, or (a cost knob) the same int8 ONNX model reading at most
    `max_length` tokens of each text instead of 256."""
    from direng_kernel.index.embed import dense_encoder, minilm_path, prepare_onnx

    if max_length is None:
        return dense_encoder()
    from direng_kernel.index.minilm_onnx import FILES, OnnxEncoder

    return OnnxEncoder(prepare_onnx() / FILES["int8"], Path(minilm_path()) / "tokenizer.json",
                       f"int8-max{max_length}", max_length=max_length)


def collect(corpus_names: list[str], ks=KS, max_length: int | None = None) -> list[dict]:
    """Per question: the shipped top-max(K) hits, each K's cosines and what each K cost."""
    from direng_kernel.index import intent
    from direng_kernel.workbench import Workbench

    encoder = _encoder(max_length)  # loaded once, as a warm process has it
    encoder.encode(["warm up", "def f(): pass"])
    kmax = max(ks)
    questions = [q for q in load_questions() if q["corpus"] in corpus_names]
    rows = []
    for name in corpus_names:
        wb = Workbench(corpora.CORPORA[name].root, store=shipped_store(name))
        if not wb.is_indexed:
            raise SystemExit(f"{name}: no index at {shipped_store(name)}; run benchmarks/retrieval_eval.py first")
        searcher = wb.searcher
        picked: dict[tuple, str] = {}  # hit key -> the chunk text that scored best for it
        to_hits = searcher._to_hits

        def recording(scores, chunks, sources, k, _orig=to_hits):
            picked.clear()
            best: dict[tuple, float] = {}
            for cid, score in scores.items():
                c = chunks.get(cid)
                if c is None:
                    continue
                key = (c.path, c.symbol, c.kind if not c.symbol else "")
                if key not in best or best[key] < score:
                    best[key], picked[key] = score, c.text
            return _orig(scores, chunks, sources, k)

        searcher._to_hits = recording
        searcher.warm()
        for q in (q for q in questions if q["corpus"] == name):
            t = time.perf_counter()
            shipped = jsonable(wb.search(q["question"], k=10))
            search_ms = (time.perf_counter() - t) * 1000
            hits = jsonable(wb.search(q["question"], k=kmax))
            texts = [picked.get((h["path"], h["symbol"], h["kind"] if not h["symbol"] else "")) for h in hits]
            assert [(h["path"], h["symbol"]) for h in hits[:10]] == [(h["path"], h["symbol"]) for h in shipped]
            routed = searcher.relation_routing and any(
                searcher.callers_hits(n, 10) for n in intent.relation_candidates(q["question"])[:4])
            row = {"id": q["id"], "corpus": name, "lang": q["lang"], "kind": q["kind"], "q": q,
                   "hits": [{k: h[k] for k in ("path", "symbol", "kind", "score")} for h in hits],
                   "routed": routed, "search_ms": search_ms, "cos": {}, "cost": {}}
            if not routed and all(texts):
                for K in ks:
                    batch = [q["question"], *texts[:K]]
                    w0, c0 = time.perf_counter(), time.process_time()
                    vecs = encoder.encode(batch)
                    row["cost"][K] = {"wall_ms": (time.perf_counter() - w0) * 1000,
                                      "cpu_ms": (time.process_time() - c0) * 1000, "embedded": len(batch) - 1}
                    row["cos"][K] = [float(v @ vecs[0]) for v in vecs[1:]]
            rows.append(row)
        print(f"[rerank] {name}: {sum(r['corpus'] == name for r in rows)} questions", file=sys.stderr)
        wb.close()
    return rows


def score(rows: list[dict], s: dict | None) -> list[dict]:
    """Each question's metrics under setting `s` (None: the shipped ranking)."""
    out = []
    for r in rows:
        cos = r["cos"].get(s["k"]) if s else None
        out.append(score_search(rerank(r["hits"], cos, s) if s else r["hits"][:10], r["q"])
                   | {"lang": r["lang"], "kind": r["kind"], "corpus": r["corpus"]})
    return out


def breakdown(scored: list[dict]) -> dict:
    return {"all": aggregate(scored),
            **{f: {g: aggregate([x for x in scored if x[f] == g]) for g in sorted({x[f] for x in scored})}
               for f in ("lang", "kind")}}


def evaluate(rows: list[dict], ks=KS) -> dict:
    names = list(dict.fromkeys(r["corpus"] for r in rows))
    grid = settings(ks)
    per = {label(s): score(rows, s) for s in grid}
    shipped = score(rows, None)

    def loco(choices: list[dict]) -> tuple[dict, list[dict]]:
        """Each corpus scored under the setting (of `choices`) best on the other corpora."""
        picks, held = {}, []
        for out in names:
            best = max(choices, key=lambda s: _objective([x for x in per[label(s)] if x["corpus"] != out]))
            picks[out] = label(best)
            held.extend(x for x in per[label(best)] if x["corpus"] == out)
        return picks, held

    picks, held = loco(grid)
    held_per_k = {}
    for K in ks:
        k_picks, k_held = loco([s for s in grid if s["k"] == K])
        held_per_k[K] = {"picks": sorted(set(k_picks.values())), **breakdown(k_held)}
    in_sample = sorted(grid, key=lambda s: -_objective(per[label(s)]))
    best_per_k = {K: max((s for s in grid if s["k"] == K), key=lambda s: _objective(per[label(s)])) for K in ks}
    cost = {}
    for K in ks:
        c = [r["cost"][K] for r in rows if K in r["cost"]]
        cost[K] = {"questions": len(c), "embedded_mean": statistics.mean(x["embedded"] for x in c),
                   **{f"{m}_{stat}": fn([x[m] for x in c]) for m in ("wall_ms", "cpu_ms")
                      for stat, fn in (("p50", statistics.median), ("mean", statistics.mean),
                                       ("p90", lambda v: statistics.quantiles(v, n=10)[-1]))}}
    gained = [r["id"] for r, a, b in zip(rows, shipped, held) if b["sym@5"] > a["sym@5"]]
    lost = [r["id"] for r, a, b in zip(rows, shipped, held) if b["sym@5"] < a["sym@5"]]
    return {
        "questions": len(rows), "reranked": sum(bool(r["cos"]) for r in rows),
        "held_out_sym5_gained": gained, "held_out_sym5_lost": lost,
        "routed_to_graph": sum(r["routed"] for r in rows),
        "search_ms_p50": statistics.median(r["search_ms"] for r in rows),
        "shipped": breakdown(shipped), "held_out": breakdown(held), "picks": picks,
        "held_out_per_k": held_per_k,
        "best_in_sample": {"setting": label(in_sample[0]), **breakdown(per[label(in_sample[0])])},
        "best_per_k_in_sample": {K: {"setting": label(s), **aggregate(per[label(s)])} for K, s in best_per_k.items()},
        "top10_in_sample": [{"setting": label(s), **aggregate(per[label(s)])} for s in in_sample[:10]],
        "cost": cost,
    }


def _fmt(m: dict) -> str:
    return " ".join(f"{k} {m[k]:.3f}" for k in ("sym@5", "mrr", "file@1", "file@5")) + f" (n={m['n']})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", default=[], help="only these corpora (repeatable)")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="candidate counts (default: %(default)s)")
    ap.add_argument("--max-length", type=int, default=None,
                    help="embed at most this many tokens of each text (default: the encoder's 256)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "rerank_eval.json")
    args = ap.parse_args(argv)
    ks = tuple(int(k) for k in args.ks.split(","))
    names = args.corpus or sorted({q["corpus"] for q in load_questions()}, key=list(corpora.CORPORA).index)
    t0 = time.perf_counter()
    rows = collect(names, ks, args.max_length)
    res = evaluate(rows, ks)
    print("shipped (ours_default):        ", _fmt(res["shipped"]["all"]))
    print("rerank, held out (LOCO):       ", _fmt(res["held_out"]["all"]))
    print("rerank, best in sample:        ", res["best_in_sample"]["setting"], _fmt(res["best_in_sample"]["all"]))
    for K, b in res["held_out_per_k"].items():
        print(f"  held out with K={K} fixed:     ", _fmt(b["all"]), "picks", b["picks"])
    for K, b in res["best_per_k_in_sample"].items():
        print(f"  best with K={K} (in sample):  ", b["setting"], _fmt(b))
    for corpus, pick in res["picks"].items():
        print(f"  without {corpus}: {pick}")
    for f in ("lang", "kind"):
        for g, m in res["shipped"][f].items():
            h = res["held_out"][f][g]
            print(f"  {f}={g:<11} shipped sym@5 {m['sym@5']:.3f} mrr {m['mrr']:.3f} file@1 {m['file@1']:.3f}"
                  f"  held out sym@5 {h['sym@5']:.3f} mrr {h['mrr']:.3f} file@1 {h['file@1']:.3f} (n={m['n']})")
    for K, c in res["cost"].items():
        print(f"  cost K={K}: {c['embedded_mean']:.1f} candidates embedded; wall p50 {c['wall_ms_p50']:.0f} ms "
              f"(p90 {c['wall_ms_p90']:.0f}), CPU p50 {c['cpu_ms_p50']:.0f} ms, over {c['questions']} questions")
    print(f"  held out against shipped: sym@5 gained {res['held_out_sym5_gained']}, lost {res['held_out_sym5_lost']}")
    print(f"  shipped search itself: p50 {res['search_ms_p50']:.1f} ms; {res['routed_to_graph']} questions "
          f"routed to the graph, {res['reranked']} reranked")
    res["meta"] = {"seconds": round(time.perf_counter() - t0, 1), "ks": ks, "metrics": METRICS,
                   "max_length": args.max_length or 256,
                   "grid": {"rrf_w": RRF_WEIGHTS, "rrf_c": RRF_CS, "linear_a": LINEAR_AS},
                   "engine_version": corpora.engine_version(),
                   "per_question": [{k: r[k] for k in ("id", "routed", "search_ms", "cost", "cos", "hits")}
                                    for r in rows]}
    write_results(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
