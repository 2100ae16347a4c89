"""MiniLM throughput: torch vs ONNX fp32 vs ONNX int8, in fill order vs sorted by length.

The chunks are a real corpus's, as the engine indexes them (``corpora.py``; flask 3.0.3 by
default), taken in the store's row order — the order the MiniLM filling took them before it
sorted (batches of 32 pending chunks in id order). Every configuration encodes the same chunks
in batches of 32 as the filling does, each in a fresh process pinned to two CPUs (``taskset``;
torch and onnxruntime both get 2 threads), and reports:

    chunks/s      wall-clock throughput
    CPU-s/chunk   the process's CPU seconds per chunk: on a shared machine the better measure
                  of cost (2 / this = chunks/s on two otherwise idle cores)
    cos vs torch  cosine of each chunk's vector to sentence-transformers' (mean and minimum)

Orders: ``fill`` — row order, batches of 32 (sentence-transformers sorts within a batch, the
ONNX encoder too); ``sorted`` — symbol chunks first, then the rest, each shortest first: the
order ``store.chunks_without_dense`` now gives the filling.

With ``--fill`` it also times the whole filling (``wb.fill_dense()``: encoding, chromadb
upserts, flags) per encoder on a fresh store of the corpus.

    python benchmarks/embed_throughput.py                    # flask, 1000 chunks
    python benchmarks/embed_throughput.py --corpus requests --limit 0 --fill
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import corpora  # noqa: E402
from results import write as write_results  # noqa: E402

DEFAULT_OUT = BENCH_DIR / "results" / "embed_throughput.json"
KINDS = ("torch", "onnx-fp32", "onnx-int8")
ORDERS = ("fill", "sorted")
BATCH = 32


def _pinned(cpus: int) -> list[str]:
    if shutil.which("taskset") and hasattr(os, "sched_getaffinity"):
        mine = sorted(os.sched_getaffinity(0))[:cpus]
        return ["taskset", "-c", ",".join(map(str, mine))]
    return []


def _encoder(kind: str, threads: int):
    from direng_kernel.index import embed

    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
    return embed.dense_encoder(embed.encoder_name(kind))


def run_one(kind: str, order: str, chunks_file: Path, threads: int, reference: Path | None, out: Path) -> None:
    """One configuration, in this (pinned) process: prints nothing, writes its figures to `out`."""
    import numpy as np

    chunks = json.loads(chunks_file.read_text())
    texts = [c["text"] for c in chunks]
    idx = list(range(len(texts)))
    if order == "sorted":
        idx.sort(key=lambda i: (chunks[i]["symbol"] is None, len(texts[i])))
    t = time.perf_counter()
    encoder = _encoder(kind, threads)
    encoder.encode(texts[:4])  # load and warm: not part of the throughput
    load_s = time.perf_counter() - t
    vecs = np.zeros((len(texts), 384), np.float32)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(idx), BATCH):
        rows = idx[start:start + BATCH]
        vecs[rows] = encoder.encode([texts[i] for i in rows], batch_size=BATCH)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    res = {"kind": kind, "order": order, "chunks": len(texts), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "chunks_per_s": round(len(texts) / wall, 1), "cpu_s_per_chunk": round(cpu / len(texts), 5),
           "load_s": round(load_s, 2), "loadavg": os.getloadavg()}
    if reference is not None and reference.exists():
        ref = np.load(reference)
        cos = (vecs * ref).sum(axis=1)
        res.update(cos_mean=round(float(cos.mean()), 5), cos_min=round(float(cos.min()), 5))
    else:
        np.save(out.with_suffix(".npy"), vecs)
    out.write_text(json.dumps(res))


def chunk_set(name: str, limit: int, store: Path) -> list[dict]:
    from direng_kernel.workbench import Workbench

    wb = Workbench(corpora.fetch(name), store=store)
    wb.index()
    rows = wb.store.db.execute("SELECT id, symbol, text FROM chunks ORDER BY rid").fetchall()
    rows = rows[:limit] if limit else rows
    return [{"id": r[0], "symbol": r[1], "text": r[2]} for r in rows]


def time_fill(name: str, kind: str, work: Path, cpus: int) -> dict:
    """The whole filling of a fresh store of the corpus with one encoder, in a pinned process."""
    code = ("import json,sys,time,os; from direng_kernel.workbench import Workbench; "
            "wb=Workbench(sys.argv[1], store=sys.argv[2]); wb.index(); "
            "from direng_kernel.index import embed; embed.dense_encoder().encode(['warm up']); wb.vectors(); "
            "t=time.perf_counter(); c=time.process_time(); n=wb.fill_dense(); "
            "print(json.dumps({'chunks': n, 'wall_s': round(time.perf_counter()-t, 2), "
            "'cpu_s': round(time.process_time()-c, 2), 'loadavg': os.getloadavg(), "
            "'encoder': wb.store.get_meta('dense_encoder')}))")
    store = work / f"fill-{kind}"
    env = dict(os.environ, DIRENG_DENSE_ENCODER=kind, OMP_NUM_THREADS=str(cpus))
    proc = subprocess.run([*_pinned(cpus), sys.executable, "-c", code, str(corpora.fetch(name)), str(store)],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"fill with {kind} failed: {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(kind=kind, chunks_per_s=round(res["chunks"] / res["wall_s"], 1),
               cpu_s_per_chunk=round(res["cpu_s"] / max(1, res["chunks"]), 5))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="flask", help=f"corpus (default flask; known: {', '.join(corpora.CORPORA)})")
    ap.add_argument("--limit", type=int, default=1000, help="first N chunks in row order (0: all; default 1000)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs each configuration is pinned to (default 2)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="encoders (default: %(default)s)")
    ap.add_argument("--fill", action="store_true", help="also time the whole filling per encoder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--run", nargs=5, metavar=("KIND", "ORDER", "CHUNKS", "REFERENCE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.run:
        kind, order, chunks, reference, out = args.run
        run_one(kind, order, Path(chunks), args.cpus, Path(reference) if reference != "-" else None, Path(out))
        return 0

    from direng_kernel.index import embed

    kinds = [k for k in args.kinds.split(",") if k]
    embed.prepare_onnx()  # the export is once per machine: not part of any figure
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="embed-throughput-") as tmp:
        work = Path(tmp)
        chunks = chunk_set(args.corpus, args.limit, work / "store")
        (work / "chunks.json").write_text(json.dumps(chunks))
        ref = work / "ref-torch-fill.npy"
        rows = []
        # torch in fill order first: its vectors are the reference every other row is compared with
        plan = [("torch", "fill")] + [(k, o) for k in kinds for o in ORDERS if (k, o) != ("torch", "fill")]
        for kind, order in plan:
            if kind not in kinds and kind != "torch":
                continue
            out = work / f"{kind}-{order}.json"
            reference = "-" if (kind, order) == ("torch", "fill") else str(ref)
            cmd = [*_pinned(args.cpus), sys.executable, __file__, "--cpus", str(args.cpus),
                   "--run", kind, order, str(work / "chunks.json"), reference, str(out)]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.cpus))
            subprocess.run(cmd, check=True, env=env, timeout=3600)
            res = json.loads(out.read_text())
            if reference == "-":
                shutil.move(str(out.with_suffix(".npy")), ref)
                res.update(cos_mean=1.0, cos_min=1.0)
            rows.append(res)
            print(f"{kind:10s} {order:7s} {res['chunks_per_s']:7.1f} chunks/s  {res['cpu_s_per_chunk'] * 1000:6.1f} "
                  f"CPU-ms/chunk  cos {res['cos_mean']:.4f} (min {res['cos_min']:.4f})  load {res['loadavg'][0]:.1f}",
                  file=sys.stderr)
        fills = [time_fill(args.corpus, k, work, args.cpus) for k in kinds] if args.fill else []
    torch_fill = next(r for r in rows if (r["kind"], r["order"]) == ("torch", "fill"))
    for r in rows:
        r["speedup_cpu"] = round(torch_fill["cpu_s_per_chunk"] / r["cpu_s_per_chunk"], 2)
        r["speedup_wall"] = round(r["chunks_per_s"] / torch_fill["chunks_per_s"], 2)
    print(f"\nMiniLM throughput, {args.corpus}, {len(chunks)} chunks, batches of {BATCH}, {args.cpus} CPUs "
          f"(load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f})\n")
    print("| encoder | order | chunks/s | CPU-ms/chunk | 2 idle cores, chunks/s | × torch (CPU) | cos vs torch mean / min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['kind']} | {r['order']} | {r['chunks_per_s']:.1f} | {r['cpu_s_per_chunk'] * 1000:.1f} | "
              f"{args.cpus / r['cpu_s_per_chunk']:.0f} | {r['speedup_cpu']:.2f} | {r['cos_mean']:.4f} / {r['cos_min']:.4f} |")
    if fills:
        print("\n| whole filling (`wb.fill_dense()`) | chunks | wall s | chunks/s | CPU-ms/chunk | load |")
        print("| --- | --- | --- | --- | --- | --- |")
        for f in fills:
            print(f"| {f['kind']} | {f['chunks']} | {f['wall_s']} | {f['chunks_per_s']} | "
                  f"{f['cpu_s_per_chunk'] * 1000:.1f} | {f['loadavg'][0]:.1f} |")
    write_results(args.out, {
        "meta": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "corpus": args.corpus,
                 "pin": corpora.CORPORA[args.corpus].pin, "chunks": len(chunks), "batch": BATCH, "cpus": args.cpus,
                 "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                 "seconds": round(time.perf_counter() - t0, 1), "python": platform.python_version(),
                 "machine": platform.machine(), "cpu_count": os.cpu_count(),
                 "engine_version": corpora.engine_version()},
        "encode": rows, "fill": fills})
    return 0


if __name__ == "__main__":
    sys.exit(main())
