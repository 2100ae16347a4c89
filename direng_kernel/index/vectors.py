"""MiniLM vectors in chromadb: the store's embedded chroma, or a shared chroma server.

We always pass embeddings ourselves: chromadb's default embedding function would download a
model. HNSW is built with a larger `ef_construction` and searched with a larger `ef_search`
than chromadb's defaults, which lose recall on code (many near-duplicate chunks). Ids are
chunk ids, which hash their content; the SQLite store decides which of them are current.

`open_vectors(store)` is the one way to the collection (`vector_location.py` says where it
is). Several processes may share it — on one machine through the embedded folder, anywhere
through a server — so its rules hold between processes, not just within one:

* a vector counts only while its chunk id is in SQLite with the `dense` flag (search checks);
* the flags describe one collection, named in the store's meta (`vectors_collection`, the
  collection's chroma id). Opening another one — a server after the embedded store, a server
  that lost its data — re-derives the flags from what that collection holds, so no flag ever
  claims a vector the collection lacks and the filling redoes exactly the missing ones;
* `gc` removes vectors whose chunk is gone from SQLite (a changed chunk has a new id, so its
  old vector goes): ids are read from the collection before the chunks, and only ids absent
  from every chunk row go — a vector another process is filling right now (its chunk present,
  not yet flagged) is never taken;
* the vectors are one encoder's (`embed.py`: int8 ONNX or torch MiniLM), named in the store's
  meta (`dense_encoder`). Queries are embedded by that encoder; a filling by another first
  clears every flag, then the encoder's name, then the vectors (`adopt_encoder`), so a query
  is never compared with another encoder's vectors, and a crash midway leaves nothing trusted.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..config import offline_env
from .store import IndexStore
from .vector_location import VectorLocation, VectorStoreError, collection_name, http_timeout, locate, ping, unreachable

log = logging.getLogger(__name__)
HNSW = {"space": "cosine", "ef_construction": 200, "ef_search": 128, "max_neighbors": 32}
PAGE = 5000  # ids read per request when listing a collection
COLLECTION_META = "vectors_collection"
ENCODER_META = "dense_encoder"


def open_vectors(store: IndexStore) -> "VectorStore":
    """The store's vector collection, where `DIRENG_VECTORS` says; its flags reconciled."""
    location = locate(store.dir)
    vectors = VectorStore(location, collection_name(location, store.get_meta("store_id"), store.dir))
    vectors.reconcile(store)
    return vectors


def recorded_encoder(store: IndexStore) -> str | None:
    """The encoder that made the store's MiniLM vectors; a store filled before encoders were
    named had sentence-transformers' (the only one then); None while there are none."""
    name = store.get_meta(ENCODER_META)
    if name is None and store.has_dense():
        from .embed import encoder_name

        return encoder_name("torch")
    return name


def adopt_encoder(store: IndexStore, vectors: "VectorStore", name: str) -> int:
    """Make `name` the encoder of the store's vectors before filling with it: another encoder's
    vectors lose their flags (search stops trusting them), then the name changes (queries use
    the new encoder), then they are deleted, to be filled again. Returns how many were dropped."""
    recorded = recorded_encoder(store)
    if recorded == name:
        return 0
    dropped = store.counts()["dense_chunks"]
    if dropped:
        store.set_dense_ids(set())
    store.set_meta(ENCODER_META, name)
    if recorded is not None:
        held = sorted(vectors.ids())
        vectors.delete(held)
        log.info("MiniLM vectors of %s: %d made by %s dropped, to be filled again by %s",
                 store.dir, len(held), recorded, name)
    return dropped


class VectorStore:
    def __init__(self, location: VectorLocation, name: str):
        offline_env()
        self.location = location
        self.name = name
        self.healthy = True  # False once a server failed us: the workbench opens it again
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if location.is_embedded:
            self.client = chromadb.PersistentClient(path=str(location.path), settings=settings)
        else:
            ping(location)  # chromadb's client waits without limit: find a dead server first
            with self._remote():
                self.client = chromadb.HttpClient(host=location.host, port=location.port, ssl=location.ssl,
                                                  settings=settings)
                _limit_requests(self.client)
        with self._remote():
            self.col = self.client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": HNSW}
            )
            self.max_batch = max(1, self.client.get_max_batch_size())

    @contextmanager
    def _remote(self) -> Iterator[None]:
        """A server's failures as one VectorStoreError line (the embedded store raises as it is)."""
        if self.location.is_embedded:
            yield
            return
        try:
            yield
        except VectorStoreError:
            self.healthy = False
            raise
        except Exception as exc:  # noqa: BLE001 — httpx transport errors and chroma's own, alike
            self.healthy = False
            raise unreachable(self.location, exc) from None

    def upsert(self, ids: list[str], vectors: np.ndarray) -> None:
        with self._remote():
            for i in range(0, len(ids), self.max_batch):
                self.col.upsert(ids=ids[i:i + self.max_batch], embeddings=vectors[i:i + self.max_batch])

    def delete(self, ids: list[str]) -> None:
        with self._remote():
            for i in range(0, len(ids), self.max_batch):
                self.col.delete(ids=ids[i:i + self.max_batch])

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        with self._remote():
            count = self.col.count()
            if count == 0:
                return []
            res = self.col.query(query_embeddings=vector[None, :], n_results=min(n, count), include=["distances"])
        return [(i, 1.0 - d) for i, d in zip(res["ids"][0], res["distances"][0])]

    def ids(self) -> set[str]:
        out: set[str] = set()
        with self._remote():
            offset = 0
            while True:
                page = self.col.get(include=[], limit=PAGE, offset=offset)["ids"]
                out.update(page)
                if len(page) < PAGE:
                    return out
                offset += len(page)

    def count(self) -> int:
        with self._remote():
            return self.col.count()

    def reconcile(self, store: IndexStore) -> None:
        """Make the store's `dense` flags describe this collection, if they were another's."""
        if store.get_meta(COLLECTION_META) == str(self.col.id):
            return
        held = self.ids()
        try:
            flagged = store.set_dense_ids(held)
            store.set_meta(COLLECTION_META, str(self.col.id))
        except sqlite3.OperationalError as exc:  # a read-only store: search still checks every id
            log.debug("cannot reconcile the MiniLM flags of %s: %s", store.dir, exc)
            return
        log.info("MiniLM vectors: %s collection %s holds %d of this store's chunks; the others will be filled",
                 self.location.describe(), self.name, flagged)

    def gc(self, store: IndexStore) -> int:
        """Drop vectors whose chunk left the store (a changed chunk's old vector, a crash's orphan)."""
        held = self.ids()  # first: a chunk written after this read keeps its vector
        stale = sorted(held - store.all_chunk_ids())
        self.delete(stale)
        return len(stale)


def _limit_requests(client) -> None:
    """chromadb's HTTP client is an httpx session created without timeouts (chromadb 1.x offers no
    setting for them); give it ours, or say that a stuck server could hang us."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = http_timeout()
    else:
        log.warning("MiniLM vectors: cannot set request timeouts on this chromadb's HTTP client; "
                    "a server that stops answering may stall requests")
