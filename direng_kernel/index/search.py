"""Hybrid search: lexical + vector + graph, fused by reciprocal rank, read through the query's intent.

Three retrievers each rank chunks: BM25 over identifier-split terms (FTS5, names weighted
above bodies), exact cosine over the static vectors every chunk has, and HNSW over the MiniLM
vectors the daemon has filled in so far. Reciprocal rank fusion (Cormack et al.) combines the
rankings without calibrating their scores. The query's wording then scales the fused scores
(`intent.py`): tests, benchmarks, examples and prose down unless the query names them, data
constants down, type definitions up for "which class/interface…". The graph adds what text
alone misses: the strongest hits pass a share of their score to the symbols they contain or
call, and PageRank gives a gentle prior towards code the rest of the repo depends on. A
relation question ("what calls X", "which functions use X", "who depends on X") is answered
from the graph — callers, type references and subclasses, and calls bound by name when the
resolver could not bind them — rather than from text.

The weights are fitted on the evaluation set by leave-one-corpus-out cross-validation
(`benchmarks/ablation.py --fit`, figures in docs/benchmarks.md).

Only chunk ids present in the SQLite store are trusted, so every hit cites current lines.
A hit inside a notebook also names its cell (`Hit.cell`; the lines are within that cell).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from ..records import Chunk, Hit
from . import intent, rerank
from .notebooks import plain_qualname
from .store import IndexStore
from .tokens import query_terms

log = logging.getLogger(__name__)
RRF_K = 60
CANDIDATES = 100
def _text(chunk_id) -> str:
    """A chunk id as str (a memory-mapped matrix keeps them as bytes)."""
    return chunk_id.decode() if isinstance(chunk_id, (bytes, np.bytes_)) else chunk_id


def rrf(rankings: list[tuple[float, list[str]]]) -> dict[str, float]:
    """Combine several retrievers' rankings into one score per chunk (reciprocal rank fusion):
    each ranking adds weight / (RRF_K + rank), so agreement counts and raw scores never mix."""
    scores: dict[str, float] = defaultdict(float)
    for weight, ids in rankings:
        for rank, cid in enumerate(ids):
            scores[cid] += weight / (RRF_K + rank + 1)
    return scores


class Searcher:
    def __init__(self, store: IndexStore, vectors: Callable, *, static_cache: bool = False):
        self.store = store
        self._vectors = vectors  # () -> VectorStore | None, lazily
        # A short-lived process memory-maps the static matrix from the store's cache (and writes
        # it when missing) instead of reading every vector out of SQLite; a long-lived one reads
        # SQLite once and patches its copy per refresh, which needs each row's path.
        self.static_cache = static_cache
        # (generation, chunk ids, their paths or None when memory-mapped, matrix): patched per
        # changed file, reloaded otherwise.
        self._static: tuple[str | None, Sequence, np.ndarray | None, np.ndarray] = (
            None, [], np.array([], dtype=object), np.zeros((0, 0), np.float32))
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="direng-dense")
        # Fusion weights; benchmarks/ablation.py measures what each part adds.
        # Fitted by leave-one-corpus-out cross-validation (`benchmarks/ablation.py --fit`).
        self.graph_weight = 0.2
        self.prior_weight = 0.05
        self.static_weight = 0.1
        self.dense_weight = 1.0
        self.name_weight = 4.0
        # Query intent (intent.py): relation questions answered from the graph; tests, docs and
        # other asides, and data constants, demoted for "how/where" questions; type definitions
        # lifted for "which class/interface…" ones.
        self.relation_routing = True
        self.aside_weight = 0.2
        self.constant_weight = 0.4
        self.type_weight = 3.0
        self.query_rerank = True  # query-time MiniLM rerank of the head while vectors are missing (rerank.py)

    # -- retrievers -------------------------------------------------------------
    def lexical(self, query: str, n: int = CANDIDATES) -> list[str]:
        return [cid for cid, _ in self.store.lexical(query_terms(query), n, name_weight=self.name_weight)]

    def static(self, query: str, n: int = CANDIDATES) -> list[str]:
        from .embed import embed_static

        gen = self.store.get_meta("generation")
        with self._lock:
            if self._static[0] != gen or gen is None:
                self._static = self._load_static(gen)
            _, ids, _paths, mat = self._static
        if not len(ids):
            return []
        q = embed_static([query])[0]
        sims = mat @ q
        top = np.argpartition(-sims, min(n, len(ids) - 1))[:n]
        return [_text(ids[i]) for i in top[np.argsort(-sims[top])]]

    def _load_static(self, gen: str | None) -> tuple[str | None, Sequence, np.ndarray | None, np.ndarray]:
        if self.static_cache and gen is not None:
            cached = self.store.load_static_cache(gen)
            if cached is not None:
                return gen, cached[0], None, cached[1]
        gen, ids, paths, mat = self.store.static_snapshot()
        if self.static_cache and gen is not None:
            try:
                self.store.write_static_cache(gen, ids, mat)
            except OSError as exc:  # a read-only store: search still works, only slower
                log.debug("static cache not written: %s", exc)
        return gen, ids, paths, mat

    def warm(self) -> None:
        """Load the static matrix and model now, so the first query does not pay for them."""
        self.static("warm up", n=1)

    def patch_static(self, changed: set[str], generation: str | None) -> None:
        """Follow a refresh this process made: swap the changed files' rows of the static matrix."""
        with self._lock:
            gen, ids, paths, mat = self._static
            if paths is None:  # memory-mapped without paths: reload when next searched
                self._static = (None, [], np.array([], dtype=object), np.zeros((0, 0), np.float32))
                return
            if gen is None or not ids:
                return
            keep = ~np.isin(paths, list(changed))
            new_ids, new_paths, new_mat = self.store.static_matrix(changed)
            if len(new_ids):
                mat = np.vstack([mat[keep], new_mat]) if keep.any() else new_mat
            else:
                mat = mat[keep]
            ids = [i for i, k in zip(ids, keep) if k] + new_ids
            self._static = (generation, ids, np.concatenate([paths[keep], new_paths]), mat)

    def dense(self, query: str, n: int = CANDIDATES) -> list[str]:
        if not self.store.has_dense():
            return []
        from .embed import EncoderUnavailable, embed_dense
        from .vectors import recorded_encoder

        vectors = self._vectors()
        if vectors is None:
            return []
        encoder = recorded_encoder(self.store)  # the one that made the vectors, not this process's own
        try:
            vector = embed_dense([query], encoder=encoder)[0]
        except EncoderUnavailable as exc:  # the filling re-embeds with an encoder this process has
            log.warning("MiniLM left out of this search: %s", exc)
            return []
        hits = vectors.query(vector, n)
        live = self.store.dense_ids([h[0] for h in hits])
        return [cid for cid, _ in hits if cid in live]

    # -- fusion -----------------------------------------------------------------
    def search(self, query: str, k: int = 10, mode: str = "hybrid", *, dense: bool = True) -> list[Hit]:
        """The best `k` hits. `dense=False` leaves MiniLM out of a hybrid query (a short-lived
        process would spend seconds loading it); `mode="dense"` always uses it."""
        query = query.strip()
        if not query:
            return []
        if mode == "hybrid" and self.relation_routing:
            # A relation question is answered by the graph alone when the graph knows the target;
            # text would only add the definition itself and look-alikes.
            for name in intent.relation_candidates(query)[:4]:
                if (related := self.callers_hits(name, k)):
                    return related
        sources: dict[str, list[str]] = defaultdict(list)
        rankings: list[tuple[float, list[str]]] = []
        plan = {
            "bm25": [("bm25", 1.0, self.lexical)],
            "dense": [("dense", 1.0, self.dense), ("static", 0.5, self.static)],
            "static": [("static", 1.0, self.static)],
            "hybrid": [("bm25", 1.0, self.lexical), ("dense", self.dense_weight, self.dense),
                       ("static", self.static_weight, self.static)],
        }.get(mode)
        if plan is None:
            raise ValueError(f"unknown search mode {mode!r}")
        plan = [step for step in plan if step[1] > 0 and (dense or mode == "dense" or step[0] != "dense")]
        # MiniLM's query embedding is the slowest step and torch releases the GIL: run it beside
        # the lexical and static rankings rather than after them.
        pending = {name: self._pool.submit(fn, query) for name, _w, fn in plan if name == "dense"}
        for name, weight, retriever in plan:
            ids = pending[name].result() if name in pending else retriever(query)
            rankings.append((weight, ids))
            for cid in ids:
                sources[cid].append(name)
        scores = rrf(rankings)
        if not scores:
            return []
        chunks = {c.id: c for c in self.store.chunks(sorted(scores, key=lambda c: -scores[c])[: CANDIDATES * 2])}
        if mode == "hybrid":
            factors = self._intent_weights(query, scores, chunks)
            self._graph_boost(scores, chunks, sources)
            if dense and self.query_rerank and rerank.enabled():  # a warm process: MiniLM re-reads the head
                rerank.rerank(query, scores, chunks, covered=self.store.dense_ids,
                              weights=factors)
        return self._to_hits(scores, chunks, sources, k)

    def _intent_weights(self, query: str, scores: dict[str, float], chunks: dict[str, Chunk]) -> dict[str, float]:
        """Scale fused scores by what the query asks for (intent.py): asides (tests, docs, …)
        down, or up when the query names them; data constants down unless asked for; type
        definitions up for a type question. Returns the factors, which the rerank reads too."""
        factors = self._intent_factors(query, chunks)
        for cid, factor in factors.items():
            if factor != 1.0 and cid in scores:
                scores[cid] *= factor
        return factors

    def _intent_factors(self, query: str, chunks: dict[str, Chunk]) -> dict[str, float]:
        wanted = intent.asks_for_asides(query)
        keep_constants = intent.asks_for_constant(query)
        types = intent.asks_for_type(query)
        factors = {}
        for cid, c in chunks.items():
            factor = 1.0
            role = intent.chunk_role(c.path, c.language is not None, c.cell)
            if role in wanted:  # "which test checks…": the asides asked for are the answer
                factor /= self.aside_weight
            elif role != "code":
                factor *= self.aside_weight
            if c.kind == "constant" and not keep_constants:
                factor *= self.constant_weight
            if types and c.kind in intent.TYPE_KINDS:
                factor *= self.type_weight
            factors[cid] = factor
        return factors

    def _graph_boost(self, scores: dict[str, float], chunks: dict[str, Chunk], sources) -> None:
        """PageRank prior, then one hop of score from the strongest symbol hits to what they contain/call.

        Both read the store (ranks table, edges table), so a cold process never loads the graph.
        """
        stats = self.store.get_json("rank_stats", None)
        nodes = {cid: f"{c.path}::{c.symbol}" for cid, c in chunks.items() if c.symbol}
        if stats and stats["max"] > 0:
            rank = self.store.ranks(nodes.values())
            for cid, node in nodes.items():
                pr = rank.get(node, stats["mean"]) / stats["max"]  # unranked (new) symbols: typical
                scores[cid] *= 1.0 + self.prior_weight * math.sqrt(pr)
        best = sorted(nodes, key=lambda c: -scores[c])[:5]
        boosts: dict[str, float] = defaultdict(float)
        for cid in best:
            for (dst,) in self.store.db.execute(
                    "SELECT DISTINCT dst FROM edges WHERE src=? AND resolved=1 AND kind IN ('calls', 'contains')",
                    (nodes[cid],)):
                boosts[dst] = max(boosts[dst], self.graph_weight * scores[cid])
        if not boosts:
            return
        id_by_node = self._chunk_ids_for_nodes(list(boosts))
        for node, cids in id_by_node.items():
            for cid in cids:
                scores[cid] = scores.get(cid, 0.0) + boosts[node]
                sources[cid].append("graph")
        missing = [cid for cids in id_by_node.values() for cid in cids if cid not in chunks]
        chunks.update({c.id: c for c in self.store.chunks(missing)})

    def _chunk_ids_for_nodes(self, nodes: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for node in nodes:
            if "::" not in node:
                continue
            path, qual = node.split("::", 1)
            for (cid,) in self.store.db.execute(
                    "SELECT id FROM chunks WHERE path=? AND symbol=? ORDER BY start_line LIMIT 1", (path, qual)):
                out[node].append(cid)
        return out

    def _to_hits(self, scores, chunks: dict[str, Chunk], sources, k: int) -> list[Hit]:
        """Best part per symbol, best first; a hit's line range is the chunk's current range."""
        by_symbol: dict[tuple, tuple[float, Chunk]] = {}
        for cid, score in scores.items():
            c = chunks.get(cid)
            if c is None:
                continue  # not (or no longer) in the store: never cite it
            key = rerank.symbol_key(c)
            if key not in by_symbol or by_symbol[key][0] < score:
                by_symbol[key] = (score, c)
        ranked = sorted(by_symbol.values(), key=lambda sc: -sc[0])[:k]
        sigs = self._signatures([(c.path, c.symbol) for _, c in ranked if c.symbol])
        hits = []
        for score, c in ranked:
            lines = c.text.splitlines()
            start, end, cell = c.start_line, c.end_line, c.cell
            if c.symbol:  # cite the whole definition, not just the part that matched
                start, end, cell = sigs.get((c.path, c.symbol), ("", start, end, cell))[1:]
            hits.append(Hit(
                path=c.path, symbol=c.symbol, kind=c.kind, start_line=start, end_line=end,
                score=round(float(score), 6), snippet="\n".join(lines[1:4])[:300],
                signature=sigs.get((c.path, c.symbol), ("",))[0] if c.symbol else "",
                sources=sorted(set(sources.get(c.id, []))), cell=cell,
            ))
        return hits

    def _signatures(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, int, int, int | None]]:
        out = {}
        for path, qual in keys:
            row = self.store.db.execute(
                "SELECT signature, start_line, end_line, cell FROM symbols WHERE path=? AND qualname=?", (path, qual)
            ).fetchone()
            if row:
                out[(path, qual)] = (row[0] or "", row[1], row[2], row[3])
        return out

    def callers_hits(self, target: str, k: int) -> list[Hit]:
        """What calls or uses every definition named `target` (qualified or bare): resolved call
        edges first, then type references and inheritance, then calls the resolver could not
        bind but that name the target and nothing else the repository defines (a Go method on
        a value, Rust's `self.method()`, a TypeScript re-export) — by name, so said."""
        name = target.replace("::", ".")
        bare = name.rsplit(".", 1)[-1]
        # A bare name matches members one level down (`Session.request`), not deeper; an earlier
        # definition in a notebook (`cell[1].clean`) answers to its qualname as written in the cell.
        rows = self.store.db.execute(
            "SELECT id, qualname, name, path FROM symbols WHERE qualname=? OR name=? OR (cell IS NOT NULL AND qualname LIKE ?)",
            (name, bare, f"cell[%].{name}")).fetchall()
        targets = [(sid, path) for sid, qual, nm, path in rows
                   if name in (qual, plain_qualname(qual)) or (nm == name and plain_qualname(qual).count(".") < 2)]
        if not targets:
            return []
        ids = [sid for sid, _ in targets]
        marks = ",".join("?" * len(ids))
        found: dict[str, tuple[float, int | None, str]] = {}  # src -> (weight, line, how)
        by_name: set[str] = set()
        for src, kind, line in self.store.db.execute(
                f"SELECT src, kind, min(line) FROM edges WHERE resolved=1 AND dst IN ({marks}) AND kind IN "
                f"('calls', 'references', 'inherits', 'implements') GROUP BY src, kind", ids):
            weight = 1.0 if kind == "calls" else 0.9
            if src not in found or found[src][0] < weight:
                found[src] = (weight, line, "calls" if kind == "calls" else "uses")
        defined = self.store.db.execute("SELECT count(*) FROM symbols WHERE name=?", (bare,)).fetchone()[0]
        if defined <= len({p for _, p in targets}):  # no other definition could be meant
            paths = sorted({p for _, p in targets})
            # only calls written in a language the target is defined in (one query, not one per edge)
            for src, line in self.store.db.execute(
                    "SELECT e.src, min(e.line) FROM edges e JOIN files f ON f.path = e.owner "
                    "WHERE e.resolved=0 AND e.kind='calls' AND e.dst_name=? AND f.language IN "
                    f"(SELECT language FROM files WHERE path IN ({','.join('?' * len(paths))})) GROUP BY e.src",
                    (bare, *paths)):
                if src not in found and src not in ids:
                    found[src] = (0.8, line, "calls")
                    by_name.add(src)
        rank = self.store.ranks(found)
        hits = []
        for src, (weight, line, how) in found.items():
            if src.startswith("file:"):
                path = src[5:]
                sym, cell = None, None
                start, end, kind, sig = line or 1, line or 1, "file", ""
            else:
                row = self.store.db.execute(
                    "SELECT path, qualname, kind, start_line, end_line, signature, cell FROM symbols WHERE id=?",
                    (src,)).fetchone()
                if row is None:
                    continue
                path, sym, kind, start, end, sig, cell = row
            where = f"cell {cell} line {line}" if cell is not None else f"line {line}"
            hits.append(Hit(path=path, symbol=sym, kind=kind, start_line=start, end_line=end,
                            score=round(weight + rank.get(src, 0.0), 6), signature=sig or "",
                            snippet=f"{how} {target} at {where}" + (" (matched by name)" if src in by_name else ""),
                            sources=["graph"], cell=cell))
        return sorted(hits, key=lambda h: (-h.score, h.path, h.start_line))[:k]
