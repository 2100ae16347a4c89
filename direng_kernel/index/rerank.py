"""Query-time MiniLM rerank of a hybrid search's head, for warm processes (issue 14).

Before the filling has given the candidates MiniLM vectors, a warm process (kernel, Jupyter
server, `direng index --watch`) already has the MiniLM encoder loaded: it embeds the query and
the best chunk of each of the first K symbols of the fused ranking (truncated to 128 tokens)
and re-fuses the two orders by reciprocal rank,

    fused = 1 / (c + fused rank) + w / (c + cosine rank)        K = 10, c = 5, w = 1,

the cosine read through the query's intent (tests and prose down unless asked for, types up
for a type question, as the fused scores were). The head's own scores are handed out in the
new order, so its range, and the tail below it, stay put. Chosen by leave-one-corpus-out on
the evaluation set (`benchmarks/rerank_eval.py --max-length 128`, every fold picked it): sym@5
0.843 → 0.868, MRR 0.717, file@1 0.827, ~0.17 s a query on two loaded cores. A head whose
chunks all have stored MiniLM vectors is left alone (the dense retriever already ranked it),
as is a one-shot process (`dense=False`: loading the model costs seconds) and a relation
question (answered from the graph).

It is off unless `DIRENG_RERANK=1` (or on/yes/true): embedding ten candidates costs a search
~90 ms on two cores, which would take the `direng index --watch`-served CLI from ~70 ms past its
80 ms goal while the filling has not reached the head yet, and the one-shot default (what
`direng search` answers without a daemon) cannot use it at all. Switch it on where answers
matter more than 0.1 s (a notebook's `%direng ask`, a shared server).
Candidate vectors are cached per process (chunk id and text hash, bounded LRU).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ENV = "DIRENG_RERANK"
TOP_K = 10
RRF_C = 5
WEIGHT = 1.0  # of the cosine ranking
MAX_TOKENS = 128
CACHE_SIZE = 4096  # candidate vectors (384 floats each: ~6 MB)


def enabled() -> bool:
    """Opt-in (`DIRENG_RERANK=1`): it costs a served search ~90 ms while the head lacks vectors."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "on", "yes", "true")


@lru_cache(maxsize=4)
def _truncating(model_file: str, name: str):
    from .embed import minilm_path
    from .minilm_onnx import OnnxEncoder

    return OnnxEncoder(Path(model_file), Path(minilm_path()) / "tokenizer.json", f"{name}-max{MAX_TOKENS}",
                       max_length=MAX_TOKENS)


def encoder():
    """This process's MiniLM encoder reading at most MAX_TOKENS tokens of a text (the ONNX one;
    torch's reads its own 256). Raises `embed.EncoderUnavailable`."""
    from .embed import dense_encoder

    enc = dense_encoder()
    model_file = getattr(enc, "model_file", None)
    return _truncating(str(model_file), enc.name) if model_file is not None else enc


class _VectorCache:
    """A bounded LRU of candidate vectors, safe for a server's concurrent queries."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            vec = self._items.get(key)
            if vec is not None:
                self._items.move_to_end(key)
            return vec

    def put(self, key: tuple, vec: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vec
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = _VectorCache()


def symbol_key(c) -> tuple:
    """What one hit stands for: a symbol of a file, or a symbol-less chunk's kind in it (the
    grouping `Searcher._to_hits` and the rerank's head share)."""
    return (c.path, c.symbol, c.kind if not c.symbol else "")


def head(scores: dict[str, float], chunks: dict) -> list[tuple[str, list[str]]]:
    """The first TOP_K symbols as `_to_hits` groups them: (best chunk id, the others' ids)."""
    best: dict[tuple, str] = {}
    members: dict[tuple, list[str]] = {}
    for cid, score in scores.items():
        c = chunks.get(cid)
        if c is None:
            continue
        key = symbol_key(c)
        members.setdefault(key, []).append(cid)
        if key not in best or scores[best[key]] < score:
            best[key] = cid
    ranked = sorted(best, key=lambda key: -scores[best[key]])[:TOP_K]
    return [(best[key], [c for c in members[key] if c != best[key]]) for key in ranked]


def rerank(query: str, scores: dict[str, float], chunks: dict, covered=lambda ids: set(),
           weights: dict[str, float] | None = None) -> bool:
    """Re-fuse the head of `scores` with MiniLM cosine, in place; whether it did. `covered(ids)`
    names the ids that have stored MiniLM vectors: a head made only of those is left alone.
    `weights` are the query intent's factors per chunk (tests and prose down unless asked
    for, types up for a type question): they scale the cosines too, since the cosine alone
    would bring back the asides the intent demoted."""
    from .embed import EncoderUnavailable

    top = head(scores, chunks)
    if len(top) < 2:
        return False
    ids = [cid for cid, _ in top]
    if covered(ids) >= set(ids):
        return False
    try:
        enc = encoder()
        keys = [(enc.name, cid, hashlib.blake2b(chunks[cid].text.encode(), digest_size=8).digest()) for cid in ids]
        vecs = [CACHE.get(key) for key in keys]
        missing = [i for i, v in enumerate(vecs) if v is None]
        # The int8 model quantizes activations per batch, so a vector depends on its batch: the
        # query is embedded on its own, so a repeated query (candidates cached) answers the same.
        q = enc.encode([query])[0]
        new = enc.encode([chunks[ids[i]].text for i in missing]) if missing else []
    except EncoderUnavailable as exc:
        log.debug("search answered without the MiniLM rerank: %s", exc)
        return False
    for i, vec in zip(missing, new):
        CACHE.put(keys[i], vec)
        vecs[i] = vec
    cos = np.stack(vecs) @ q
    if weights:  # the cosine ranking read through the query's intent, as the fused one was
        cos = cos * np.array([weights.get(cid, 1.0) for cid in ids])
    cos_rank = np.empty(len(ids), int)
    cos_rank[np.argsort(-cos, kind="stable")] = np.arange(1, len(ids) + 1)
    fused = [1 / (RRF_C + i + 1) + WEIGHT / (RRF_C + cos_rank[i]) for i in range(len(ids))]
    order = sorted(range(len(ids)), key=lambda i: (-fused[i], i))  # ties keep the fused order
    # The head's own scores, handed out in the new order: its range, and the tail, stay put.
    ranked = sorted((scores[cid] for cid in ids), reverse=True)
    for score, i in zip(ranked, order):
        cid, others = top[i]
        scores[cid] = score
        for other in others:  # another part of the symbol must not stand in for the reranked one
            scores.pop(other, None)
    return True
