"""The facade every surface (CLI, magics, kernel, server) calls.

`Workbench(root)` opens (or creates) the index store for a root and exposes the engine as
typed methods returning pydantic models. Heavy parts — the graph, the vector store, the
embedding models — load on first use, so `status()` stays instant.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .config import IndexSettings
from .errors import NotIndexedError
from .index import git
from .index.store import DB_NAME, IndexStore
from .records import Chunk, Hit

if TYPE_CHECKING:  # pydantic models: a one-shot search, which builds none of them, never imports pydantic
    from .models import GraphNode, GraphResult, IndexReport, IndexStatus

log = logging.getLogger(__name__)


class Workbench:
    def __init__(self, root: str | Path = ".", store: str | Path | None = None, *, static_cache: bool = False):
        """`static_cache`: this process is short-lived (one CLI command): search memory-maps the
        static matrix from the store's cache, and an index pass that changed content refreshes
        that cache when one exists. Long-lived processes keep (and patch) the matrix in memory."""
        self.settings = IndexSettings.for_root(root, store)
        self.root = self.settings.root
        self.static_cache = static_cache
        self._store: IndexStore | None = None
        self._graph = None
        self._graph_generation: str | None = None
        self._vectors = None
        self._vectors_failure: tuple[float, str] | None = None  # (when, why) the last open failed
        self._searcher = None
        self._lock = threading.RLock()
        # Queries in flight and when the last one ended: the refresh daemon's MiniLM filling
        # waits while this process is answering someone (`busy_answering`).
        self._queries = 0
        self._last_query = float("-inf")
        self._queries_lock = threading.Lock()

    # -- parts, lazily ----------------------------------------------------------
    @property
    def store(self) -> IndexStore:
        if self._store is None:
            self._store = IndexStore(self.settings.store)
        return self._store

    @property
    def is_indexed(self) -> bool:
        return (self.settings.store / DB_NAME).exists() and self.store.get_meta("last_refresh") is not None

    def _require_index(self) -> None:
        if not self.is_indexed:
            raise NotIndexedError(f"{self.root} is not indexed yet: run `direng index {self.root}`")

    def code_graph(self):
        """The in-memory graph, reloaded when another workbench or process (a lane's refresh, the
        CLI) changed the store since it was built or last patched here."""
        with self._lock:
            generation = self.store.get_meta("generation")
            if self._graph is None or generation != self._graph_generation:
                from .index.graph import CodeGraph

                self._graph = CodeGraph(self.store)
                self._graph_generation = generation
            return self._graph

    def vectors(self):
        """The MiniLM collection (`index/vectors.py`), opened again after a server failed us —
        at most every `RETRY_S`: meanwhile the last failure is raised at once, so a server that
        is down costs queries no connect timeout each."""
        from .index.vector_location import RETRY_S, VectorStoreError

        with self._lock:
            if self._vectors is None or not self._vectors.healthy:
                from .index.vectors import open_vectors

                self._vectors = None
                failed = self._vectors_failure
                if failed is not None and time.monotonic() - failed[0] < RETRY_S:
                    raise VectorStoreError(failed[1])
                try:
                    self._vectors = open_vectors(self.store)
                except VectorStoreError as exc:
                    self._vectors_failure = (time.monotonic(), str(exc))
                    raise
                self._vectors_failure = None
            return self._vectors

    @property
    def searcher(self):
        if self._searcher is None:
            from .index.search import Searcher

            self._searcher = Searcher(self.store, self.vectors, static_cache=self.static_cache)
        return self._searcher

    def set_static_cache(self, on: bool) -> None:
        self.static_cache = on
        if self._searcher is not None:
            self._searcher.static_cache = on

    @contextmanager
    def _answering(self) -> Iterator[None]:
        with self._queries_lock:
            self._queries += 1
        try:
            yield
        finally:
            with self._queries_lock:
                self._queries -= 1
                self._last_query = time.monotonic()

    def busy_answering(self, quiet: float = 0.0) -> bool:
        """Is a query being answered, or did one end less than `quiet` seconds ago?"""
        with self._queries_lock:
            return self._queries > 0 or time.monotonic() - self._last_query < quiet

    # -- indexing ---------------------------------------------------------------
    def index(self, progress: bool = False, dense: bool = False) -> IndexReport:
        """Build or refresh the index; with `dense`, also fill every MiniLM vector now."""
        from .index.indexer import run_index

        with self._lock:
            report = run_index(self.settings, self.store, progress=progress, on_changed=self._follow)
            if report.deleted or report.modified:
                self._gc_vectors_quietly()
            if self.static_cache and (report.added or report.modified or report.deleted) \
                    and self.store.has_static_cache():
                # One-shot searches use the cache: have it ready rather than make the next one rebuild it.
                generation, ids, _paths, mat = self.store.static_snapshot()
                if generation is not None:
                    self.store.write_static_cache(generation, ids, mat)
        if dense:
            self.fill_dense(progress=progress)
        return report

    def _follow(self, owners: set[str], changed: set[str]) -> None:
        if self._graph is not None:
            self._graph.patch(owners, changed)
            self._graph_generation = self.store.get_meta("generation")
        if self._searcher is not None:
            self._searcher.patch_static(changed, self.store.get_meta("generation"))

    def fill_dense(self, limit: int | None = None, progress: bool = False, should_stop=lambda: False) -> int:
        from .index.indexer import fill_dense

        return fill_dense(self.store, self.vectors(), limit=limit, progress=progress, should_stop=should_stop)

    def gc_vectors(self) -> int:
        """Drop MiniLM vectors whose chunk left the store (a crash may also leave some)."""
        if self.store.counts()["dense_chunks"] == 0 and self._vectors is None:
            return 0
        return self.vectors().gc(self.store)

    def _gc_vectors_quietly(self) -> None:
        # An unreachable vector server must not fail a refresh: search ignores orphans, and the
        # next refresh that changes something collects them.
        from .index.vector_location import VectorStoreError

        try:
            self.gc_vectors()
        except VectorStoreError as exc:
            log.warning("old MiniLM vectors not collected: %s", exc)

    # -- queries ----------------------------------------------------------------
    def search(self, query: str, k: int = 10, mode: str = "hybrid", *, dense: bool = True) -> list[Hit]:
        """Hybrid (or `mode`) search; `dense=False` leaves MiniLM out of a hybrid query."""
        self._require_index()
        with self._answering():
            return self.searcher.search(query, k=k, mode=mode, dense=dense)

    def left_out(self, mode: str = "hybrid", dense: bool = True) -> list[str]:
        """What a search by `mode` and `dense` (as `search` takes them) leaves out, to tell the user."""
        if mode == "hybrid" and not dense and self.store.has_dense():
            return ["MiniLM vectors were left out of this one-shot search (loading the model takes seconds); "
                    "run `direng index --watch` to have them served, or pass --dense"]
        return []

    def graph(self, symbol: str, direction: str = "both", depth: int = 1, max_nodes: int = 150) -> GraphResult:
        self._require_index()
        with self._answering():
            return self.code_graph().neighbourhood(symbol, direction=direction, depth=depth, max_nodes=max_nodes)

    def callers(self, symbol: str) -> GraphResult:
        return self.graph(symbol, direction="callers")

    def callees(self, symbol: str) -> GraphResult:
        return self.graph(symbol, direction="callees")

    def shortest_path(self, a: str, b: str) -> list[GraphNode]:
        self._require_index()
        return self.code_graph().shortest_path(a, b)

    def repo_map(self, max_tokens: int = 1024, focus: list[str] | None = None) -> str:
        self._require_index()
        return self.code_graph().repo_map(max_tokens=max_tokens, focus=focus)

    def important(self, n: int = 20) -> list[GraphNode]:
        self._require_index()
        g = self.code_graph()
        rank = g.importance()
        best = sorted((x for x in rank if x in g.g and not x.startswith(("file:", "module:"))),
                      key=lambda x: -rank[x])[:n]
        return [g.node(x, rank) for x in best]

    def chunks(self) -> Iterator[Chunk]:
        self._require_index()
        yield from self.store.chunks()

    def status(self) -> IndexStatus:
        from .models import IndexStatus

        exists = (self.settings.store / DB_NAME).exists()
        counts = self.store.counts() if exists else {"files": 0, "symbols": 0, "chunks": 0, "dense_chunks": 0}
        indexed = self.store.get_meta("indexed_commit") if exists else None
        last = self.store.get_meta("last_refresh") if exists else None
        head = git.head_commit(self.root) if self.root.is_dir() else None
        last_dt = datetime.fromisoformat(last) if last else None
        age = (datetime.now(timezone.utc) - last_dt).total_seconds() if last_dt else None
        fresh = bool(last_dt) and head == indexed
        behind = lag = None
        if head and last_dt:
            behind = 0 if fresh else (git.commits_between(self.root, indexed, head) if indexed else None)
            made = git.commit_time(self.root, head)
            lag = 0.0 if fresh else (max(0.0, datetime.now(timezone.utc).timestamp() - made) if made else None)
        return IndexStatus(
            root=str(self.root), store=str(self.settings.store), indexed_commit=indexed, head_commit=head,
            last_refresh=last_dt, lag_seconds=None if lag is None else round(lag, 3),
            since_refresh_seconds=None if age is None else round(age, 3), commits_behind=behind,
            fresh=fresh, skipped=self.store.get_json("skipped", {}) if exists else {}, **counts,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
