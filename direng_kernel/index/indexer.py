"""Build or refresh an index incrementally.

A file is re-read only when its size or mtime moved, and re-parsed only when its SHA-256
changed; deleted (or newly ignored/binary) files leave the index. Changed files are written
in batches, each batch in one SQLite transaction together with a "pending edges" note, so a
crash at any point leaves every file either fully old or fully new, and the next run redoes
the graph edges it did not get to. Static vectors are computed inline (they are cheap);
MiniLM vectors are filled afterwards (`fill_dense`), by the caller or the refresh daemon.

Notebooks (`index/notebooks.py`) go the same way with three differences: their content hash
covers the cells' sources only (a save that changes outputs re-parses nothing), the size that
must fit `max_file_bytes` is that of their sources (the file itself may be up to
`max_notebook_bytes` of outputs), and one that cannot be read is skipped under
`notebooks.SKIP_REASON` with one warning line rather than indexed as anything.

Each run reports the seconds spent per stage (`IndexReport.stages`, also logged): read (find,
read and hash the files), scrub (secret/PII detection and redaction, as far as this process
waits on it), parse, chunk, static_vectors, store (the write transactions) and graph (edges
and ranks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable

from ..config import IndexSettings
from ..errors import RootError
from ..models import IndexReport
from . import git
from .chunks import chunks_for
from .embed import embed_static
from ..discovery import NOTEBOOK, Candidate, discover, read_text
from .graph import compute_ranks, recompute_edges
from .parse import parse_source
from ..security.scrub import detection_pool, finish_scrub, scrub_many, submit_detection
from .store import IndexStore

log = logging.getLogger(__name__)
SCRUB_POOL_MIN_FILES = 400


def check_root(root: Path) -> None:
    if not root.exists():
        raise RootError(f"root {root} does not exist")
    if not root.is_dir():
        raise RootError(f"root {root} is a file, not a directory")


class _Stages:
    """Seconds per stage of one run, summed over the batches."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t

    def report(self, total: float) -> dict[str, float]:
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["read"] = round(max(0.0, total - sum(self.seconds.values())), 3)  # the rest: find, read, hash
        return out


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not enabled, leave=False)


#: Bumped whenever parsing or chunking changes what an unchanged file's rows would hold (a
#: parser fix, a new chunking rule): a store indexed under another value re-parses every file
#: once, so an upgrade never leaves the old rows of files that did not change. Chunk ids are
#: content hashes, so chunks that come out the same keep their MiniLM vectors.
PARSE_GENERATION = "2026-12-03.2"  # .2: Rust impl headers and impl lists in chunks


def run_index(
    settings: IndexSettings,
    store: IndexStore,
    *,
    progress: bool = False,
    on_changed: Callable[[set[str], set[str]], None] | None = None,
) -> IndexReport:
    """One refresh pass over the root; `on_changed(owners, changed)` lets a live graph follow."""
    t0 = time.perf_counter()
    stages = _Stages()
    root = settings.root
    check_root(root)
    commit = git.head_commit(root)
    found = discover(root, settings.max_file_bytes, notebooks=True, max_notebook_bytes=settings.max_notebook_bytes)
    report = IndexReport(root=str(root), indexed_commit=commit)
    skipped = dict(found.skipped)
    known = store.file_states()
    if not found.files and not known:
        raise RootError(f"nothing to index under {root}: no source or text files found")

    todo: list[tuple[Candidate, object, str]] = []  # (file, its bytes or its Notebook, content hash)
    present: set[str] = set()
    reparse = bool(known) and store.get_meta("parse_generation") != PARSE_GENERATION
    if not known:  # a new store: every row it will hold is this generation's, even after a crash
        store.set_meta("parse_generation", PARSE_GENERATION)
    if reparse:
        log.info("the index of %s was built by another parser generation: re-parsing every file", root)
    for cand in found.files:
        old = known.get(cand.path)
        if old and not reparse and old[1] == cand.size and old[2] == cand.mtime_ns:
            present.add(cand.path)
            report.unchanged += 1
            continue
        data, why = read_text(root, cand)
        if data is None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if cand.language == NOTEBOOK:
            data, why = _read_notebook(cand, data, settings)
            if data is None:
                skipped[why] = skipped.get(why, 0) + 1
                continue
            digest = data.digest
        else:
            digest = hashlib.sha256(data).hexdigest()
        present.add(cand.path)
        if old and old[0] == digest and not reparse:
            store.touch_file(cand.path, cand.size, cand.mtime_ns)
            report.unchanged += 1
            continue
        todo.append((cand, data, digest))
        if old:
            report.modified += 1
        else:
            report.added += 1

    deleted = sorted(set(known) - present)
    report.deleted = len(deleted)
    pending = set(store.get_json("pending_edges", []))
    new_names: set[str] = set(store.get_json("pending_names", []))
    bar = _progress(len(todo), progress, "indexing")
    # A cold index of many files spreads secret/PII detection over the cores.
    workers = min(os.cpu_count() or 1, 4) if len(todo) >= SCRUB_POOL_MIN_FILES else 0
    with detection_pool(workers) if workers > 1 else nullcontext() as pool:
        _index_batches(settings, store, todo, report, pending, new_names, bar, pool, stages)
    bar.close()
    if deleted:
        with stages("store"), store.transaction() as db:
            for path in deleted:
                store.delete_file(db, path)
                pending.add(path)
            _note_pending(store, pending, new_names)

    owners: set[str] = set()
    if pending:
        with stages("graph"):
            owners = recompute_edges(store, pending, new_names)
            with store.transaction():
                _note_pending(store, set(), set())
            _refresh_ranks(store, len(pending), len(present))
    report.changed_paths = sorted(pending)
    report.skipped = skipped
    if store.get_meta("parse_generation") != PARSE_GENERATION:  # every file is in this generation now
        store.set_meta("parse_generation", PARSE_GENERATION)
    store.record_refresh(commit, skipped, changed=bool(pending or report.deleted))
    if pending and on_changed:
        on_changed(owners, pending)
    report.seconds = round(time.perf_counter() - t0, 3)
    report.stages = stages.report(report.seconds)
    log.info("indexed %s: +%d ~%d -%d (%.2fs; %s)", root, report.added, report.modified, report.deleted,
             report.seconds, ", ".join(f"{k} {v:.2f}s" for k, v in report.stages.items()))
    return report


def _read_notebook(cand: Candidate, data: bytes, settings: IndexSettings):
    """(the Notebook, None), or (None, skip reason) with one warning line naming the file."""
    from .notebooks import SKIP_REASON, NotebookError, read_notebook

    try:
        nb = read_notebook(cand.path, data)
    except NotebookError as exc:
        log.warning("skipped notebook %s: %s", cand.path, exc)
        return None, SKIP_REASON
    if nb.source_bytes > settings.max_file_bytes:
        log.warning("skipped notebook %s: its sources are %d bytes (max %d)", cand.path, nb.source_bytes,
                    settings.max_file_bytes)
        return None, "too large"
    return nb, None


def _decode(batch, report) -> list[tuple[str, str]]:
    out = []
    for cand, data, _digest in batch:
        if cand.language == NOTEBOOK:  # scrubbed as one text, line for line: the cells' sources
            out.append((data.scrub_name(), data.document()))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            report.lossy_decoded += 1
        out.append((cand.path, text))
    return out


def _index_batches(settings, store, todo, report, pending, new_names, bar, pool, stages: _Stages) -> None:
    """Scrub, parse, chunk, embed and write the changed files: one transaction per batch, with a
    pending-edges note, so a crash leaves every file fully old or fully new. With a pool, the
    next batch's secret/PII detection runs in the workers while this batch is parsed here."""
    batches = [todo[i:i + settings.batch_files] for i in range(0, len(todo), settings.batch_files)]
    texts = _decode(batches[0], report) if batches else []
    with stages("scrub"):
        futures = submit_detection(pool, texts) if pool is not None else None
    for n, batch in enumerate(batches):
        rows = []
        # Secrets and PII never enter the index (chunks, FTS, vectors): markers stand in for them.
        with stages("scrub"):
            clean = finish_scrub(texts, futures) if futures is not None else scrub_many(texts)
        if n + 1 < len(batches):
            texts = _decode(batches[n + 1], report)
            with stages("scrub"):
                futures = submit_detection(pool, texts) if pool is not None else None
        for (cand, data, digest), text in zip(batch, clean):
            language, lines = cand.language, None
            if cand.language == NOTEBOOK:
                with stages("parse"):  # a notebook's parse and chunks are one step
                    parsed, chunks = _notebook(data, text, settings)
                language, lines = data.language, parsed.line_count
            else:
                with stages("parse"):
                    parsed = parse_source(cand.path, text.encode("utf-8"), cand.language) if cand.language else None
                with stages("chunk"):
                    chunks = chunks_for(parsed, cand.path, text, settings.chunk_lines)
            if parsed is not None and parsed.has_errors:
                report.syntax_errors += 1
            rows.append((cand, digest, text, parsed, chunks, language, lines))
        with stages("static_vectors"):
            vectors = embed_static([c.text for r in rows for c in r[4]])
        offset = 0
        with stages("store"), store.transaction() as db:
            for cand, digest, text, parsed, chunks, language, lines in rows:
                before = {r[0] for r in db.execute("SELECT name FROM symbols WHERE path=?", (cand.path,))}
                store.replace_file(
                    db, path=cand.path, hash=digest, size=cand.size, mtime_ns=cand.mtime_ns,
                    language=language, lines=len(text.splitlines()) if lines is None else lines,
                    has_errors=bool(parsed and parsed.has_errors),
                    symbols=parsed.symbols if parsed else [], refs=parsed.references if parsed else [],
                    chunks=chunks, static_vectors=vectors[offset:offset + len(chunks)],
                )
                offset += len(chunks)
                pending.add(cand.path)
                new_names.update(s.name for s in (parsed.symbols if parsed else []) if s.name not in before)
            _note_pending(store, pending, new_names)
        report.chunks_embedded += offset
        bar.update(len(batch))


def _notebook(nb, text: str, settings: IndexSettings):
    """(ParsedFile, chunks) of a notebook from its scrubbed document text."""
    from ..security.scrub import scrub
    from .notebooks import notebook_chunks, parse_notebook

    sources = nb.split(text)
    if sources is None:  # the scrub changed the line count: scrub cell by cell (values are learnt)
        sources = [scrub(c.source, nb.scrub_name()) for c in nb.cells]
    parsed, plans = parse_notebook(nb, sources)
    return parsed, notebook_chunks(nb, sources, parsed, plans, settings.chunk_lines)


def _refresh_ranks(store: IndexStore, changed: int, files: int) -> None:
    """PageRank is a prior: recompute it when 2% of the files (at least 20) changed since, or never was."""
    stale = int(store.get_meta("rank_staleness") or 0) + changed
    if store.get_meta("rank_stats") is None or stale >= max(20, files // 50):
        compute_ranks(store)
    else:
        store.set_meta("rank_staleness", str(stale))


def _note_pending(store: IndexStore, pending: set[str], names: set[str]) -> None:
    store.set_meta("pending_edges", json.dumps(sorted(pending)) if pending else None)
    store.set_meta("pending_names", json.dumps(sorted(names)) if names else None)


def _filling_encoder(store: IndexStore):
    from .embed import EncoderUnavailable, dense_encoder, encoder_requested
    from .vectors import recorded_encoder

    recorded = recorded_encoder(store)
    if recorded is not None and encoder_requested() is None:
        try:
            return dense_encoder(recorded)
        except (EncoderUnavailable, ImportError) as exc:  # an older export recipe, a library missing here
            log.info("filling with this process's MiniLM encoder: %s", exc)
    return dense_encoder()


def fill_dense(store: IndexStore, vectors, *, limit: int | None = None, batch: int = 64,
               progress: bool = False, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Give MiniLM vectors to chunks that lack them (newest state only); returns how many.

    By the encoder that made the store's vectors, when this process can run it and the user named
    none (`DIRENG_DENSE_ENCODER`): two processes preferring different encoders (a server beside a
    watcher, one of them without onnxruntime) would otherwise drop each other's vectors in turn.
    Else by this process's encoder (`embed.dense_encoder`), and vectors another encoder made are
    dropped first (`vectors.adopt_encoder`). Symbol chunks go first, then the rest, each shortest
    first (`store.chunks_without_dense`): a batch pads little, and search gains its answers early."""
    from .vectors import adopt_encoder

    encoder = _filling_encoder(store)
    adopt_encoder(store, vectors, encoder.name)
    todo = store.counts()["chunks"] - store.counts()["dense_chunks"]
    if limit is not None:
        todo = min(todo, limit)
    done = 0
    bar = _progress(todo, progress, "embedding (MiniLM)")
    while done < todo and not should_stop():
        chunks = store.chunks_without_dense(min(batch, todo - done))
        if not chunks:
            break
        vecs = encoder.encode([c.text for c in chunks]).astype("float32")
        vectors.upsert([c.id for c in chunks], vecs)  # vectors first: a crash leaves an unused vector
        store.mark_dense([c.id for c in chunks])
        done += len(chunks)
        bar.update(len(chunks))
    bar.close()
    return done
