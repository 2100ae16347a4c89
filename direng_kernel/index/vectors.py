"""MiniLM vectors in chromadb.

We always pass embeddings ourselves: chromadb's default embedding function would download a
model. HNSW is built with a larger `ef_construction` and searched with a larger `ef_search`
than chromadb's defaults, which lose recall on code (many near-duplicate chunks). Ids are
chunk ids; the SQLite store decides which of them are current.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import offline_env

log = logging.getLogger(__name__)
COLLECTION = "direng-minilm"
HNSW = {"space": "cosine", "ef_construction": 200, "ef_search": 128, "max_neighbors": 32}


class VectorStore:
    def __init__(self, store_dir: Path):
        offline_env()
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(
            path=str(Path(store_dir) / "chroma"), settings=Settings(anonymized_telemetry=False)
        )
        self.col = self.client.get_or_create_collection(
            COLLECTION, embedding_function=None, configuration={"hnsw": HNSW}
        )
        self.max_batch = max(1, self.client.get_max_batch_size())

    def upsert(self, ids: list[str], vectors: np.ndarray) -> None:
        for i in range(0, len(ids), self.max_batch):
            self.col.upsert(ids=ids[i:i + self.max_batch], embeddings=vectors[i:i + self.max_batch])

    def delete(self, ids: list[str]) -> None:
        for i in range(0, len(ids), self.max_batch):
            self.col.delete(ids=ids[i:i + self.max_batch])

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        count = self.col.count()
        if count == 0:
            return []
        res = self.col.query(query_embeddings=vector[None, :], n_results=min(n, count), include=["distances"])
        return [(i, 1.0 - d) for i, d in zip(res["ids"][0], res["distances"][0])]

    def ids(self) -> set[str]:
        return set(self.col.get(include=[])["ids"])

    def count(self) -> int:
        return self.col.count()
