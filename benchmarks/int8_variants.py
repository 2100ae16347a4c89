"""Dense-only retrieval with int8 MiniLM variants against the fp32 export (issue 14; benchmark only).

The shipped int8 export (every MatMul and Attention quantized per channel) loses 2.7 points of
sym@5 in `--mode dense` against torch; a cosine proxy put most of the error in the FFN
down-projections (`/inner/encoder/layer.N/output/dense/MatMul`). This script measures on the
evaluation questions whether an export that keeps those six MatMuls in fp32 keeps dense-only
retrieval within 1 point of fp32. Nothing in the engine changes:

* the variant is quantized here (`quantize_dynamic`, `minilm_onnx.export`'s options plus
  `nodes_to_exclude`) from the cached fp32 export into benchmarks/.cache/int8_variants/;
* every chunk of each corpus's shipped-default store (the one `retrieval_eval.py` builds) is
  embedded by each encoder with `minilm_onnx.OnnxEncoder`, in the filling's order and batches
  (symbols first, shortest text first, 64 chunks per `encode` call: dynamic quantization
  scales activations per batch, so companions matter a little);
* two retrievers per encoder, both exact (the engine's Chroma index is approximate HNSW):
    cosine      chunks ranked by cosine to the query, grouped to one hit per
                (path, symbol, kind-if-no-symbol) at its best chunk — `Searcher._to_hits`'s key;
    dense_mode  what `wb.search(q, mode="dense")` computes: RRF (k=60) of the top 100 cosine
                chunks (weight 1) and the store's static-vector ranking (weight 0.5), same grouping;
* hits are scored by `retrieval_eval.score_search` / `aggregate` (sym@5, MRR@10, file@1, file@5);
* cost: CPU (`time.process_time`, onnxruntime's threads included) and wall ms per chunk of each
  encoder over the same chunks, the encoders interleaved corpus by corpus so load drifts hit all.

fp32 stands in for torch (cosine 1.0000 to it, docs/benchmarks.md); `--encoders` can add `torch`.
`--max-lengths 256,192,128` adds the shipped int8 export with chunks truncated to fewer tokens
(`onnx-int8@128`: the encoder's `max_length`); queries are still embedded at 256 tokens, as today.
Vectors are cached per corpus and encoder (chunk texts and model file in the key): a rerun only
re-scores, and reports the cost measured when the vectors were made.

    python benchmarks/retrieval_eval.py --modes ours_default        # builds the stores (once)
    python benchmarks/int8_variants.py                              # writes results/int8_variants.json
    python benchmarks/int8_variants.py --corpus requests --corpus cobra
    python benchmarks/int8_variants.py --corpus serde_json --corpus logrus --out /tmp/extra.json
    python benchmarks/int8_variants.py --encoders onnx-fp32,onnx-int8 --max-lengths 256,192,128 \
        --out benchmarks/results/int8_max_length.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
from results import write as write_results  # noqa: E402
from retrieval_eval import METRICS, aggregate, load_questions, score_search, shipped_store  # noqa: E402

log = logging.getLogger("int8_variants")
CACHE = corpora.CACHE_DIR / "int8_variants"
DEFAULT_CORPORA = ("requests", "click", "flask", "attrs", "mobx", "cobra")
ENCODERS = ("onnx-fp32", "onnx-int8", "onnx-int8-ffn-fp32")
REFERENCE = "onnx-fp32"
FFN_DOWN = re.compile(r"/inner/encoder/layer\.\d+/output/dense/MatMul")  # not .../attention/output/dense
FILL_BATCH = 64  # fill_dense's default batch
K = 10
RETRIEVERS = ("cosine", "dense_mode")


# -- the variant ------------------------------------------------------------------------------

def build_variant(fp32: Path, cache: Path = CACHE) -> tuple[Path, list[str]]:
    """The int8 export with each FFN down-projection MatMul left fp32, quantized once from `fp32`
    (the key is the fp32 file's size and mtime); its path and the nodes kept fp32."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    st = fp32.stat()
    key = hashlib.sha256(f"{fp32.resolve()}|{st.st_size}|{st.st_mtime_ns}|{onnxruntime.__version__}".encode())
    target = cache / f"ffn-fp32-{key.hexdigest()[:12]}"
    model_file, info = target / "model-int8-ffn-fp32.onnx", target / "variant.json"
    if info.is_file():
        return model_file, json.loads(info.read_text())["nodes_to_exclude"]
    graph = onnx.load(str(fp32), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type == "MatMul" and FFN_DOWN.fullmatch(n.name)]
    if not nodes:
        raise SystemExit(f"{fp32}: no MatMul named like {FFN_DOWN.pattern}; has the export recipe changed?")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        quiet = logging.root.manager.disable
        logging.disable(logging.INFO)  # the quantizer logs a line per tensor on the root logger
        try:
            quantize_dynamic(str(fp32), str(tmp / model_file.name), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=nodes,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            logging.disable(quiet)
        (tmp / info.name).write_text(json.dumps({"source": str(fp32), "nodes_to_exclude": nodes,
                                                 "onnxruntime": onnxruntime.__version__}, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_file, nodes


def encoders(names: list[str]) -> tuple[dict, dict, dict]:
    """Each named encoder (loaded and warmed), what describes its model, and the encoder that
    embeds its queries where that is another (`onnx-int8@128`'s: the 256-token one)."""
    from direng_kernel.index.embed import TorchEncoder, minilm_path, prepare_onnx
    from direng_kernel.index.minilm_onnx import FILES, MAX_SEQ_LENGTH, OnnxEncoder

    folder = prepare_onnx()
    tokenizer = Path(minilm_path()) / "tokenizer.json"
    out, about, queries = {}, {}, {}
    for name in names:
        base, _, length = name.partition("@")
        if length:
            if base != "onnx-int8" or not length.isdigit() or not 0 < int(length) <= MAX_SEQ_LENGTH:
                raise SystemExit(f"{name!r}: a max length applies to onnx-int8 only, 1..{MAX_SEQ_LENGTH} tokens")
            path = folder / FILES["int8"]
            st = path.stat()
            about[name] = {"model": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "max_length": int(length)}
            out[name] = OnnxEncoder(path, tokenizer, name, max_length=int(length))
            queries[name] = OnnxEncoder(path, tokenizer, base)
            continue
        if name == "torch":
            out[name], about[name] = TorchEncoder(), {"model": minilm_path()}
            continue
        if name == "onnx-int8-ffn-fp32":
            path, nodes = build_variant(folder / FILES["fp32"])
            about[name] = {"nodes_kept_fp32": nodes}
        elif name in ("onnx-fp32", "onnx-int8"):
            path = folder / FILES[name.removeprefix("onnx-")]
            about[name] = {}
        else:
            raise SystemExit(f"unknown encoder {name!r}: use {', '.join((*ENCODERS, 'torch'))}")
        st = path.stat()
        about[name] |= {"model": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        out[name] = OnnxEncoder(path, tokenizer, name)
    for enc in (*out.values(), *queries.values()):
        enc.encode(["warm up", "def f(): pass"])  # session creation is not a chunk's cost
    return out, about, queries


# -- vectors ------------------------------------------------------------------------------------

def fill_order(chunks: list) -> list[int]:
    """`store.chunks_without_dense`'s order: symbol chunks first, then the rest, shortest text first."""
    return sorted(range(len(chunks)), key=lambda i: (chunks[i].symbol is None, len(chunks[i].text)))


def embed_chunks(encoder, name: str, about: dict, corpus: str, chunks: list, fresh: bool) -> dict:
    """Unit vectors of every chunk (rows in `chunks` order) and their cost, cached on disk."""
    from tqdm import tqdm

    h = hashlib.sha256(json.dumps(about, sort_keys=True).encode())
    for c in chunks:
        h.update(c.id.encode())
        h.update(c.text.encode())
    path = CACHE / "vectors" / f"{corpus}-{name}-{h.hexdigest()[:16]}.npz"
    if path.is_file() and not fresh:
        z = np.load(path)
        return {"matrix": z["matrix"], "cpu_s": float(z["cpu_s"]), "wall_s": float(z["wall_s"]), "cached": True}
    order = fill_order(chunks)
    matrix = np.zeros((len(chunks), 384), np.float32)
    cpu = wall = 0.0
    with tqdm(total=len(chunks), desc=f"{corpus} {name}", unit="chunk", file=sys.stderr, leave=False) as bar:
        for start in range(0, len(order), FILL_BATCH):
            rows = order[start:start + FILL_BATCH]
            w0, c0 = time.perf_counter(), time.process_time()
            vecs = encoder.encode([chunks[i].text for i in rows])
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            matrix[rows] = vecs
            bar.update(len(rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, matrix=matrix, cpu_s=cpu, wall_s=wall)
    os.replace(tmp, path)
    return {"matrix": matrix, "cpu_s": cpu, "wall_s": wall, "cached": False}


# -- retrieval ----------------------------------------------------------------------------------

def _key(c) -> tuple:
    return (c.path, c.symbol, c.kind if not c.symbol else "")  # Searcher._to_hits's grouping


def group(scores: dict[int, float] | list[tuple[int, float]], chunks: list, k: int = K) -> list[dict]:
    """One hit per symbol (file/text chunk: per path and kind) at its best chunk, best first."""
    best: dict[tuple, tuple[float, int]] = {}
    for i, s in (scores.items() if isinstance(scores, dict) else scores):
        key = _key(chunks[i])
        if key not in best or best[key][0] < s:
            best[key] = (s, i)
    ranked = sorted(best.values(), key=lambda si: -si[0])[:k]
    return [{"path": chunks[i].path, "symbol": chunks[i].symbol, "kind": chunks[i].kind, "score": float(s)}
            for s, i in ranked]


def retrieve(sims: np.ndarray, static_ids: list[str], row_of: dict[str, int], chunks: list) -> dict[str, list[dict]]:
    """Both retrievers' top-K hits for one query, given its cosine to every chunk."""
    from direng_kernel.index.search import CANDIDATES, rrf

    order = np.argsort(-sims, kind="stable")
    # Enough chunks for K distinct keys: a long symbol has several parts.
    cosine = group([(int(i), float(sims[i])) for i in order[: max(20 * K, CANDIDATES)]], chunks)
    if len(cosine) < K:
        cosine = group([(int(i), float(sims[i])) for i in order], chunks)
    dense_ids = [chunks[int(i)].id for i in order[:CANDIDATES]]
    fused = rrf([(1.0, dense_ids), (0.5, static_ids)])  # Searcher.search's "dense" plan
    dense_mode = group({row_of[c]: s for c, s in fused.items() if c in row_of}, chunks)
    return {"cosine": cosine, "dense_mode": dense_mode}


def run_corpus(name: str, questions: list[dict], encs: dict, about: dict, fresh: bool,
               query_encs: dict | None = None) -> dict:
    from direng_kernel.workbench import Workbench

    wb = Workbench(corpora.CORPORA[name].root, store=shipped_store(name))
    if not wb.is_indexed:
        raise SystemExit(f"{name}: no index at {shipped_store(name)}; run benchmarks/retrieval_eval.py first")
    try:
        chunks = list(wb.chunks())
        row_of = {c.id: i for i, c in enumerate(chunks)}
        searcher = wb.searcher
        static = {q["id"]: searcher.static(q["question"]) for q in questions}
        vecs = {e: embed_chunks(enc, e, about[e], name, chunks, fresh) for e, enc in encs.items()}
    finally:
        wb.close()
    ref = vecs.get(REFERENCE)
    cost = {e: {"chunks": len(chunks), "cpu_s": v["cpu_s"], "wall_s": v["wall_s"], "cached": v["cached"],
                **({"cos_to_ref_mean": float(np.mean(np.sum(v["matrix"] * ref["matrix"], axis=1))),
                    "cos_to_ref_min": float(np.min(np.sum(v["matrix"] * ref["matrix"], axis=1)))} if ref else {})}
            for e, v in vecs.items()}
    rows = []
    for q in questions:
        row = {"id": q["id"], "corpus": name, "lang": q["lang"], "kind": q["kind"], "results": {}}
        for e, enc in encs.items():
            qv = (query_encs or {}).get(e, enc).encode([q["question"]])[0]  # one query, as Searcher.dense embeds it
            hits = retrieve(vecs[e]["matrix"] @ qv, static[q["id"]], row_of, chunks)
            for r, hs in hits.items():
                res = score_search(hs, q)
                res["top"] = [[h["path"], h["symbol"]] for h in hs[:5]]
                row["results"][f"{e}/{r}"] = res
        rows.append(row)
    return {"chunks": len(chunks), "cost": cost, "questions": rows}


# -- report -------------------------------------------------------------------------------------

def summarize(per_corpus: dict[str, dict], names: list[str]) -> dict:
    rows = [r for c in per_corpus.values() for r in c["questions"]]
    systems = list(rows[0]["results"]) if rows else []

    def agg(sel):
        return {s: aggregate([r["results"][s] for r in sel]) for s in systems}

    out = {"all": agg(rows),
           "by_corpus": {c: agg([r for r in rows if r["corpus"] == c]) for c in per_corpus},
           "by_kind": {k: agg([r for r in rows if r["kind"] == k]) for k in sorted({r["kind"] for r in rows})},
           "cost": {}, "vs_reference": {}}
    if set(DEFAULT_CORPORA) < set(per_corpus):  # also the six corpora of the torch comparison
        out["default_corpora"] = agg([r for r in rows if r["corpus"] in DEFAULT_CORPORA])
    for e in names:
        parts = [c["cost"][e] for c in per_corpus.values()]
        n = sum(p["chunks"] for p in parts)
        out["cost"][e] = {"chunks": n, "cpu_ms_per_chunk": 1000 * sum(p["cpu_s"] for p in parts) / n,
                          "wall_ms_per_chunk": 1000 * sum(p["wall_s"] for p in parts) / n,
                          "from_cache": [c for c, v in per_corpus.items() if v["cost"][e]["cached"]]}
        if "cos_to_ref_mean" in parts[0]:
            out["cost"][e] |= {"cos_to_ref_mean": sum(p["cos_to_ref_mean"] * p["chunks"] for p in parts) / n,
                               "cos_to_ref_min": min(p["cos_to_ref_min"] for p in parts)}
    if REFERENCE in names:
        for s in systems:
            ref = f"{REFERENCE}/{s.split('/', 1)[1]}"
            out["vs_reference"][s] = {
                "sym@5_gained": [r["id"] for r in rows if r["results"][s]["sym@5"] > r["results"][ref]["sym@5"]],
                "sym@5_lost": [r["id"] for r in rows if r["results"][s]["sym@5"] < r["results"][ref]["sym@5"]]}
    return out


def print_table(summary: dict, names: list[str]) -> None:
    print("| encoder | retriever | sym@5 | MRR@10 | file@1 | file@5 | CPU-ms/chunk | wall-ms/chunk | "
          "cos to fp32 mean / min | questions |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in RETRIEVERS:
        for e in names:
            m, c = summary["all"][f"{e}/{r}"], summary["cost"][e]
            cos = f"{c['cos_to_ref_mean']:.4f} / {c['cos_to_ref_min']:.4f}" if "cos_to_ref_mean" in c else "-"
            print(f"| {e} | {r} | {m['sym@5']:.3f} | {m['mrr']:.3f} | {m['file@1']:.3f} | {m['file@5']:.3f} | "
                  f"{c['cpu_ms_per_chunk']:.1f} | {c['wall_ms_per_chunk']:.1f} | {cos} | {m['n']} |")
    if "default_corpora" in summary:
        for s, m in summary["default_corpora"].items():
            print(f"  {', '.join(DEFAULT_CORPORA)} only: {s} sym@5 {m['sym@5']:.3f} MRR@10 {m['mrr']:.3f} "
                  f"file@1 {m['file@1']:.3f} (n={m['n']})")
    for s, d in summary["vs_reference"].items():
        if not s.startswith(REFERENCE):
            print(f"  {s} vs {REFERENCE}: sym@5 gained {d['sym@5_gained']}, lost {d['sym@5_lost']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", default=[],
                    help=f"only these corpora (repeatable; default: {', '.join(DEFAULT_CORPORA)})")
    ap.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated (default: %(default)s; "
                    "also: torch)")
    ap.add_argument("--max-lengths", default="", help="comma-separated token limits: adds onnx-int8@N "
                    "per N other than 256 (chunks truncated to N tokens; queries at 256)")
    ap.add_argument("--fresh", action="store_true", help="embed again even where cached vectors exist")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "int8_variants.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from direng_kernel.index.embed import offline_env

    offline_env()
    names = args.corpus or list(DEFAULT_CORPORA)
    unknown = [n for n in names if n not in corpora.CORPORA]
    if unknown:
        raise SystemExit(f"unknown corpus {unknown}: use {', '.join(corpora.CORPORA)}")
    enc_names = [e.strip() for e in args.encoders.split(",") if e.strip()]
    for n in (x.strip() for x in args.max_lengths.split(",") if x.strip()):
        if not n.isdigit():
            raise SystemExit(f"--max-lengths: {n!r} is not a number of tokens")
        name = "onnx-int8" if int(n) == 256 else f"onnx-int8@{int(n)}"
        if name not in enc_names:
            enc_names.append(name)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    encs, about, query_encs = encoders(enc_names)
    questions = load_questions()
    per_corpus = {}
    for name in names:
        qs = [q for q in questions if q["corpus"] == name]
        per_corpus[name] = run_corpus(name, qs, encs, about, args.fresh, query_encs)
        s = summarize({name: per_corpus[name]}, enc_names)
        log.info("[%s] %d chunks, %d questions: %s", name, per_corpus[name]["chunks"], len(qs),
                 ", ".join(f"{e} sym@5 {s['all'][f'{e}/cosine']['sym@5']:.3f}" for e in enc_names))
    summary = summarize(per_corpus, enc_names)
    print_table(summary, enc_names)
    summary["meta"] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "corpora": names,
        "encoders": about, "reference": REFERENCE, "k": K, "fill_batch": FILL_BATCH, "metrics": METRICS,
        "seconds": round(time.perf_counter() - t0, 1), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "engine_version": corpora.engine_version(),
        "per_question": [r for c in per_corpus.values() for r in c["questions"]],
        "per_corpus_cost": {c: v["cost"] for c, v in per_corpus.items()},
    }
    write_results(args.out, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
