"""The index's source of truth: one SQLite database under the store directory.

Files (with content hashes), symbols, references, resolved graph edges, chunks and the
lexical index (FTS5, BM25-ranked) live in one database, so each batch of files is replaced
in one transaction: a crash (Ctrl-C, kill -9) leaves either the old rows or the new ones,
never a mix. Vectors live in chromadb (the store's own `chroma/` or a shared server, see
`vectors.py`) and are keyed by chunk ids that change whenever the content does; search only trusts a vector whose chunk id is still in this database, so a
vector orphaned by a crash can never cite stale line ranges.

A notebook's symbols and chunks carry the 0-based `cell` their lines are in (NULL elsewhere).
An older store is migrated in place when it opens (`MIGRATIONS`, one transaction: a crash
leaves it at its old version, and the next open migrates again); a newer one is refused.

Beside the database, `static-cache/` may hold the static matrix of one generation as `.npy`
files (`write_static_cache`): a short-lived process (one `direng search`) memory-maps them
instead of reading every chunk's vector out of SQLite (~50k rows on Django: most of a one-shot
search). It is derived data — keyed by the store's id and generation, rewritten or ignored when
either moved, safe to delete.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import StoreError
from ..records import Chunk, Reference, Symbol
from .tokens import code_terms

SCHEMA_VERSION = 2
DB_NAME = "index.sqlite3"
STATIC_CACHE_DIR = "static-cache"
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (
  path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
  language TEXT, lines INTEGER, has_errors INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS symbols (
  id TEXT PRIMARY KEY, path TEXT NOT NULL, qualname TEXT NOT NULL, name TEXT NOT NULL,
  kind TEXT, start_line INTEGER, end_line INTEGER, signature TEXT, docstring TEXT, parent TEXT,
  cell INTEGER);
CREATE INDEX IF NOT EXISTS symbols_path ON symbols(path);
CREATE INDEX IF NOT EXISTS symbols_name ON symbols(name);
CREATE INDEX IF NOT EXISTS symbols_qualname ON symbols(qualname);
CREATE TABLE IF NOT EXISTS refs (
  path TEXT NOT NULL, kind TEXT, name TEXT, line INTEGER, scope TEXT, module TEXT, alias TEXT);
CREATE INDEX IF NOT EXISTS refs_path ON refs(path);
CREATE TABLE IF NOT EXISTS edges (
  src TEXT NOT NULL, dst TEXT NOT NULL, kind TEXT NOT NULL, line INTEGER,
  resolved INTEGER NOT NULL, owner TEXT NOT NULL, dst_path TEXT, dst_name TEXT);
CREATE INDEX IF NOT EXISTS edges_owner ON edges(owner);
CREATE INDEX IF NOT EXISTS edges_dst_path ON edges(dst_path);
CREATE INDEX IF NOT EXISTS edges_unresolved ON edges(dst_name) WHERE resolved=0;
CREATE INDEX IF NOT EXISTS edges_src ON edges(src);
CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst);
-- PageRank of graph nodes, recomputed when enough of the repository changed (a prior, not a fact).
CREATE TABLE IF NOT EXISTS ranks (node TEXT PRIMARY KEY, rank REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  rid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, path TEXT NOT NULL, symbol TEXT, kind TEXT, start_line INTEGER,
  end_line INTEGER, text TEXT, language TEXT, dense INTEGER DEFAULT 0, svec BLOB, cell INTEGER);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_dense ON chunks(dense);
-- rowid = chunks.rid, so a file's rows are deleted by key, not by scanning.
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(name, body, tokenize = 'porter unicode61');
"""
# version → the statements that take a store from it to the next version. 1 → 2: notebook cells
# (no notebook was indexed before, so NULL is every old row's right value).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE symbols ADD COLUMN cell INTEGER", "ALTER TABLE chunks ADD COLUMN cell INTEGER"),
}


def symbol_id(path: str, qualname: str) -> str:
    return f"{path}::{qualname}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class IndexStore:
    """SQLite access for one store directory; safe to share between threads."""

    def __init__(self, store_dir: Path, *, create: bool = True):
        self.dir = Path(store_dir)
        self.path = self.dir / DB_NAME
        if not create and not self.path.exists():
            raise StoreError(f"no index at {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # One connection per thread: WAL gives readers (search) a committed snapshot while the
        # refresh daemon writes, and a reader never sees a half-written transaction.
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._pending_index = False  # chunks_pending exists (chunks_without_dense makes it)
        try:
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"index store {self.path} is unreadable: {exc}") from exc
        version = self.get_meta("schema_version")
        if self.get_meta("store_id") is None:  # names this store's derived files (static-cache/)
            try:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
            except sqlite3.OperationalError as exc:  # a read-only store: no cache is ever written
                log.debug("cannot name the store %s: %s", self.dir, exc)
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) < SCHEMA_VERSION and int(version) in MIGRATIONS:
            self._migrate()
        elif int(version) != SCHEMA_VERSION:
            raise StoreError(
                f"index store {self.dir} has schema {version}, this version needs {SCHEMA_VERSION}; "
                "delete it and re-index"
            )

    def _migrate(self) -> None:
        """Bring an older store to SCHEMA_VERSION in one transaction (SQLite's DDL is
        transactional): all of it or, after a crash, none of it."""
        with self.transaction() as db:
            version = int(self.get_meta("schema_version"))  # again: another process may have done it
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                version += 1
            self.set_meta("schema_version", str(version))

    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"index store {self.path} is unreadable: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_json(self, key: str, default):
        raw = self.get_meta(key)
        return json.loads(raw) if raw else default

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- files ----------------------------------------------------------------
    def file_states(self) -> dict[str, tuple[str, int, int]]:
        """path → (hash, size, mtime_ns) for every indexed file."""
        return {r[0]: (r[1], r[2], r[3]) for r in self.db.execute("SELECT path, hash, size, mtime_ns FROM files")}

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def replace_file(
        self,
        db: sqlite3.Connection,
        *,
        path: str,
        hash: str,
        size: int,
        mtime_ns: int,
        language: str | None,
        lines: int,
        has_errors: bool,
        symbols: list[Symbol],
        refs: list[Reference],
        chunks: list[Chunk],
        static_vectors: "np.ndarray",
    ) -> None:
        """Replace everything known about `path` (call inside `transaction()`).

        Chunks whose id survives keep their MiniLM flag: their vector is still valid.
        """
        dense_before = {r[0] for r in db.execute("SELECT id FROM chunks WHERE path=? AND dense=1", (path,))}
        self.delete_file(db, path)
        db.execute(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?)",
            (path, hash, size, mtime_ns, language, lines, int(has_errors)),
        )
        db.executemany(
            "INSERT OR REPLACE INTO symbols (id, path, qualname, name, kind, start_line, end_line, signature,"
            " docstring, parent, cell) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (symbol_id(path, s.qualname), path, s.qualname, s.name, s.kind.value, s.start_line,
                 s.end_line, s.signature, s.docstring, s.parent, s.cell)
                for s in symbols
            ],
        )
        db.executemany(
            "INSERT INTO refs VALUES (?,?,?,?,?,?,?)",
            [(path, r.kind.value, r.name, r.line, r.scope, r.module, r.alias) for r in refs],
        )
        db.executemany(
            "INSERT OR REPLACE INTO chunks (id, path, symbol, kind, start_line, end_line, text, language, dense, svec,"
            " cell) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (c.id, c.path, c.symbol, c.kind, c.start_line, c.end_line, c.text, c.language,
                 int(c.id in dense_before), static_vectors[i].astype(np.float32).tobytes(), c.cell)
                for i, c in enumerate(chunks)
            ],
        )
        rids = dict(db.execute("SELECT id, rid FROM chunks WHERE path=?", (path,)).fetchall())
        db.executemany(
            "INSERT INTO chunks_fts (rowid, name, body) VALUES (?,?,?)",
            [(rids[c.id], _name_terms(c), " ".join(code_terms(c.text))) for c in chunks],
        )

    def delete_file(self, db: sqlite3.Connection, path: str) -> list[str]:
        """Remove a file's rows; returns the ids of the chunks that went (for the vector store)."""
        rows = db.execute("SELECT id, rid FROM chunks WHERE path=?", (path,)).fetchall()
        gone = [r[0] for r in rows]
        db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(r[1],) for r in rows])
        for table in ("files", "symbols", "refs", "chunks"):
            db.execute(f"DELETE FROM {table} WHERE path=?", (path,))
        db.execute("DELETE FROM edges WHERE owner=?", (path,))
        return gone

    # -- reads ----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        q = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "files": q("SELECT count(*) FROM files"),
            "symbols": q("SELECT count(*) FROM symbols"),
            "chunks": q("SELECT count(*) FROM chunks"),
            "dense_chunks": q("SELECT count(*) FROM chunks WHERE dense=1"),
        }

    def chunks(self, ids: Iterable[str] | None = None) -> list[Chunk]:
        cols = "id, path, symbol, kind, start_line, end_line, text, language, cell"
        if ids is None:
            rows = self.db.execute(f"SELECT {cols} FROM chunks ORDER BY path, start_line").fetchall()
        else:
            ids = list(ids)
            rows = []
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                rows += self.db.execute(
                    f"SELECT {cols} FROM chunks WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchall()
        return [
            Chunk(id=r[0], path=r[1], symbol=r[2], kind=r[3], start_line=r[4], end_line=r[5], text=r[6], language=r[7],
                  cell=r[8])
            for r in rows
        ]

    def static_matrix(self, paths: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Chunk ids, their paths and static vectors (one matrix, for exact cosine search)."""
        sql = "SELECT id, path, svec FROM chunks WHERE svec IS NOT NULL"
        if paths is None:
            rows = self.db.execute(sql).fetchall()
        else:
            paths = list(paths)
            rows = []
            for i in range(0, len(paths), 500):
                part = paths[i:i + 500]
                rows += self.db.execute(f"{sql} AND path IN ({','.join('?' * len(part))})", part).fetchall()
        if not rows:
            return [], np.array([], dtype=object), np.zeros((0, 0), dtype=np.float32)
        mat = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=object), mat

    def static_snapshot(self) -> tuple[str | None, list[str], np.ndarray, np.ndarray]:
        """(generation, ids, paths, matrix) read in one transaction, so the generation names
        exactly the rows returned even while a refresh commits."""
        with self._lock:
            self.db.execute("BEGIN")
            try:
                generation = self.get_meta("generation")
                ids, paths, mat = self.static_matrix()
            finally:
                self.db.execute("COMMIT")
        return generation, ids, paths, mat

    def _static_cache_key(self, generation: str) -> str:
        return f"{self.get_meta('store_id')}-{generation}"

    def load_static_cache(self, generation: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(chunk ids as bytes, matrix), memory-mapped, if the cache holds `generation`; else None."""
        folder = self.dir / STATIC_CACHE_DIR
        key = self._static_cache_key(generation)
        try:
            ids = np.load(folder / f"{key}.ids.npy", mmap_mode="r")  # written last: the commit mark
            mat = np.load(folder / f"{key}.vec.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if ids.ndim != 1 or mat.ndim != 2 or len(ids) != len(mat) or mat.dtype != np.float32:
            return None
        return ids, mat

    def has_static_cache(self) -> bool:
        return (self.dir / STATIC_CACHE_DIR).is_dir()

    def write_static_cache(self, generation: str, ids: list[str], mat: np.ndarray) -> None:
        """Save the static matrix of `generation` for other processes; older generations go.
        Each file is written under a temporary name and renamed, the ids last, so a reader sees
        the whole of one generation or nothing."""
        folder = self.dir / STATIC_CACHE_DIR
        folder.mkdir(exist_ok=True)
        key = self._static_cache_key(generation)
        id_array = np.array(ids, dtype="S") if ids else np.zeros(0, dtype="S32")
        matrix = np.ascontiguousarray(mat, dtype=np.float32)
        if not ids:
            matrix = np.zeros((0, 0), np.float32)
        for suffix, array in (("vec", matrix), ("ids", id_array)):
            tmp = folder / f".{key}.{suffix}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, array)
            os.replace(tmp, folder / f"{key}.{suffix}.npy")
        for old in folder.iterdir():
            if not old.name.startswith((key + ".", ".")):
                old.unlink(missing_ok=True)

    def has_dense(self) -> bool:
        return self.db.execute("SELECT 1 FROM chunks WHERE dense=1 LIMIT 1").fetchone() is not None

    def chunks_without_dense(self, limit: int) -> list[Chunk]:
        """The next chunks the MiniLM filling embeds: symbols first, then the rest, shortest
        first (similar lengths batch with little padding). An index on exactly that order keeps
        each call at a fraction of a millisecond (sorting 50k pending chunks took ~80 ms); the
        filling makes it, since it writes anyway (a read-only store is never filled)."""
        if not self._pending_index:
            self.db.execute("CREATE INDEX IF NOT EXISTS chunks_pending ON chunks(dense, symbol IS NULL, length(text))")
            self._pending_index = True
        ids = [r[0] for r in self.db.execute(
            "SELECT id FROM chunks WHERE dense=0 ORDER BY symbol IS NULL, length(text) LIMIT ?", (limit,))]
        by_id = {c.id: c for c in self.chunks(ids)}
        return [by_id[i] for i in ids if i in by_id]

    def mark_dense(self, ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE chunks SET dense=1 WHERE id=?", [(i,) for i in ids])

    def dense_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            found.update(
                r[0] for r in self.db.execute(
                    # `+dense` keeps SQLite on the id index: with the dense index it scanned every
                    # MiniLM-embedded chunk (40 ms of a 100-id lookup on Django, 0.2 ms this way).
                    f"SELECT id FROM chunks WHERE +dense=1 AND id IN ({','.join('?' * len(part))})", part
                )
            )
        return found

    def lexical(self, terms: list[str], limit: int, name_weight: float = 4.0) -> list[tuple[str, float]]:
        """BM25 over FTS5: (chunk_id, score) best first; names weigh more than bodies."""
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        rows = self.db.execute(
            "SELECT c.id, f.s FROM (SELECT rowid, bm25(chunks_fts, ?, 1.0) AS s FROM chunks_fts "
            "WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?) f JOIN chunks c ON c.rid = f.rowid ORDER BY f.s",
            (float(name_weight), match, limit),
        ).fetchall()
        return [(r[0], -r[1]) for r in rows]

    def all_dense_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM chunks WHERE dense=1")}

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM chunks")}

    def set_dense_ids(self, held: set[str]) -> int:
        """Flag exactly the chunks whose id is in `held` (what a vector collection holds), in one
        transaction; returns how many are flagged."""
        with self.transaction() as db:
            db.execute("UPDATE chunks SET dense=0 WHERE dense=1")
            db.executemany("UPDATE chunks SET dense=1 WHERE id=?", [(i,) for i in held])
            return db.execute("SELECT count(*) FROM chunks WHERE dense=1").fetchone()[0]

    # -- lookups the answer layers need (they never write SQL themselves) --------
    def file_language(self, path: str) -> str | None:
        row = self.db.execute("SELECT language FROM files WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def symbol_span(self, path: str, qualname: str) -> tuple[int, int] | None:
        """(start_line, end_line) of a definition, or None."""
        row = self.db.execute("SELECT start_line, end_line FROM symbols WHERE path=? AND qualname=?",
                              (path, qualname)).fetchone()
        return (row[0], row[1]) if row else None

    def cell_language(self, path: str, cell: int) -> str | None:
        """The language a notebook cell was indexed in (`python`, `markdown`, `sql`…), or None."""
        row = self.db.execute("SELECT language FROM chunks WHERE path=? AND cell=? AND kind != 'file' "
                              "AND language IS NOT NULL LIMIT 1", (path, cell)).fetchone()
        return row[0] if row else None

    def symbol_location(self, path: str, qualname: str) -> tuple[int, int, int | None] | None:
        """(start_line, end_line, cell) of a definition (cell: a notebook's, else None), or None."""
        row = self.db.execute("SELECT start_line, end_line, cell FROM symbols WHERE path=? AND qualname=?",
                              (path, qualname)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def symbol_docstring(self, path: str, qualname: str) -> str:
        row = self.db.execute("SELECT docstring FROM symbols WHERE path=? AND qualname=?", (path, qualname)).fetchone()
        return (row[0] or "") if row else ""

    def innermost_symbol(self, path: str, start: int, end: int, cell: int | None = None) -> tuple[str, str] | None:
        """(qualname, kind) of the smallest definition enclosing lines start..end (of `cell`, in a
        notebook), or None."""
        row = self.db.execute(
            "SELECT qualname, kind FROM symbols WHERE path=? AND start_line<=? AND end_line>=? AND cell IS ? "
            "ORDER BY end_line-start_line LIMIT 1", (path, start, end, cell)).fetchone()
        return (row[0], row[1]) if row else None

    def qualnames_starting(self, prefix: str, limit: int) -> list[str]:
        """Distinct qualified names that start with `prefix` (SQLite LIKE: ASCII case-insensitive),
        shortest first."""
        like = prefix.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        rows = self.db.execute(
            r"SELECT DISTINCT qualname FROM symbols WHERE qualname LIKE ? ESCAPE '\' "
            "ORDER BY length(qualname), qualname LIMIT ?", (like, limit)).fetchall()
        return [r[0] for r in rows]

    def symbols_rows(self, where: str = "", args: tuple = (), *, cell: bool = False) -> list[tuple]:
        """(id, path, qualname, name, kind, start_line, end_line, signature, docstring, parent), and the
        notebook `cell` at the end with `cell=True` (lane notebooks unpack the ten columns)."""
        return self.db.execute(
            "SELECT id, path, qualname, name, kind, start_line, end_line, signature, docstring, parent"
            f"{', cell' if cell else ''} FROM symbols {where}", args
        ).fetchall()

    def refs_rows(self, paths: Iterable[str] | None = None) -> list[tuple]:
        cols = "path, kind, name, line, scope, module, alias"
        if paths is None:
            return self.db.execute(f"SELECT {cols} FROM refs").fetchall()
        rows: list[tuple] = []
        paths = list(paths)
        for i in range(0, len(paths), 500):
            part = paths[i:i + 500]
            rows += self.db.execute(
                f"SELECT {cols} FROM refs WHERE path IN ({','.join('?' * len(part))})", part
            ).fetchall()
        return rows

    def file_rows(self) -> list[tuple]:
        return self.db.execute("SELECT path, language, lines, has_errors FROM files").fetchall()

    def edge_rows(self) -> list[tuple]:
        return self.db.execute("SELECT src, dst, kind, line, resolved, owner FROM edges").fetchall()

    def replace_edges(self, owners: Iterable[str], edges: list[tuple]) -> None:
        """Swap the edges owned by `owners` (the files whose references produced them)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM edges WHERE owner=?", [(o,) for o in owners])
            db.executemany("INSERT INTO edges VALUES (?,?,?,?,?,?,?,?)", edges)

    def replace_ranks(self, ranks: dict[str, float]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM ranks")
            db.executemany("INSERT INTO ranks VALUES (?, ?)", ranks.items())
            values = list(ranks.values())
            self.set_meta("rank_stats", json.dumps(
                {"max": max(values, default=0.0), "mean": sum(values) / len(values) if values else 0.0}))
            self.set_meta("rank_staleness", "0")

    def ranks(self, nodes: Iterable[str] | None = None) -> dict[str, float]:
        if nodes is None:
            return dict(self.db.execute("SELECT node, rank FROM ranks").fetchall())
        nodes = list(nodes)
        out: dict[str, float] = {}
        for i in range(0, len(nodes), 500):
            part = nodes[i:i + 500]
            out.update(self.db.execute(
                f"SELECT node, rank FROM ranks WHERE node IN ({','.join('?' * len(part))})", part).fetchall())
        return out

    def record_refresh(self, commit: str | None, skipped: dict[str, int], changed: bool = True) -> None:
        """Stamp a finished pass; the generation moves only when content changed, so processes
        holding a graph or a vector matrix reload exactly when they would be stale."""
        with self.transaction():
            self.set_meta("indexed_commit", commit)
            self.set_meta("last_refresh", _now())
            self.set_meta("skipped", json.dumps(skipped))
            if changed or self.get_meta("generation") is None:
                self.set_meta("generation", str(int(self.get_meta("generation") or 0) + 1))


def _name_terms(chunk: Chunk) -> str:
    if chunk.symbol:
        return " ".join(code_terms(chunk.symbol))
    return " ".join(code_terms(chunk.path.replace("/", " ").replace(".", " ")))
