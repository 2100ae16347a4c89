"""The shared vector store: MiniLM vectors in a real chroma server (`DIRENG_VECTORS`).

A real `chroma run` (the CLI chromadb ships; offline, no telemetry) on a free loopback port, started
once for the module. The sample repository is indexed with MiniLM vectors filled into the server;
a second process (`direng search` subprocesses) searches them; a refresh in another process changes a
chunk and the old vector is gone for everyone; an orphan vector (a crash's) is ignored by search and
collected; a store that moves from its embedded chroma to the server refills exactly what the server
lacks; two stores on one server keep collections of their own. Unreachable, malformed and silent
servers (the silent one is a fake: a socket that accepts and never answers, a protocol edge case),
and a server stopped mid-use, are one clear error within the timeouts — at the CLI, in `health` and,
through the server's `vectors` traitlet, in a real Jupyter server's start-up log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import make_repo
from direng_kernel.index.vector_location import (EMBEDDED_COLLECTION, TIMEOUT_ENV, VECTORS_ENV, VectorStoreError,
                                                 collection_name, locate, ping)

pytestmark = pytest.mark.timeout(300)

CHROMA = Path(sys.executable).with_name("chroma")
START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as reply:
            return "nanosecond heartbeat" in json.loads(reply.read())
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    """A real chroma server: (url, its process)."""
    assert CHROMA.is_file(), f"the chroma CLI that ships with chromadb is missing: {CHROMA}"
    work = tmp_path_factory.mktemp("chroma")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "chroma.log", "w")
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(work / "data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not heartbeat(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer on {url}:\n{(work / 'chroma.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def server_collection(url: str, name: str):
    """The collection as a third party sees it, through chromadb's own client."""
    import chromadb
    from chromadb.config import Settings

    host, port = url.removeprefix("http://").split(":")
    return chromadb.HttpClient(host=host, port=int(port), settings=Settings(anonymized_telemetry=False)
                               ).get_collection(name)


def direng(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    """The real CLI in another process; it asks no daemon, so it opens the collection itself."""
    return subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, "DIRENG_DAEMON": "off", **env}, timeout=timeout)


def returns_within(seconds: float, fn):
    """fn()'s exception (or None), asserting that fn returned at all within `seconds`: no hang."""
    out: list = []

    def call():
        try:
            fn()
            out.append(None)
        except BaseException as exc:  # noqa: BLE001 — handed to the test
            out.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still waiting after {seconds} s"
    return out[0]


@pytest.fixture(scope="module")
def shared(chroma, tmp_path_factory):
    """The sample repository indexed in this process with its MiniLM vectors in the server."""
    from direng_kernel.workbench import Workbench

    url, _proc = chroma
    root = make_repo(tmp_path_factory.mktemp("shared") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(VECTORS_ENV, url)
        wb = Workbench(root)
        wb.index(dense=True)
        yield wb
        wb.close()


# -- where the vectors live -------------------------------------------------------------------------

def test_the_location_comes_from_one_variable_and_collections_are_per_store(tmp_path, monkeypatch):
    monkeypatch.delenv(VECTORS_ENV, raising=False)
    embedded = locate(tmp_path)
    assert embedded.is_embedded and embedded.path == tmp_path / "chroma"
    assert collection_name(embedded, "abc", tmp_path) == EMBEDDED_COLLECTION  # existing stores keep theirs
    monkeypatch.setenv(VECTORS_ENV, "http://vectors.internal:8123/")
    remote = locate(tmp_path)
    assert (remote.host, remote.port, remote.ssl, remote.url) == ("vectors.internal", 8123, False,
                                                                  "http://vectors.internal:8123")
    a, b = (collection_name(remote, sid, tmp_path) for sid in ("a" * 32, "b" * 32))
    assert a != b and a.endswith("a" * 32)
    assert collection_name(remote, None, tmp_path / "x") != collection_name(remote, None, tmp_path / "y")
    monkeypatch.setenv(VECTORS_ENV, "https://vectors.internal")
    assert locate(tmp_path).port == 443 and locate(tmp_path).ssl
    for bad in ("ftp://vectors.internal", "vectors.internal:8000", "http://:8000", "http://h:port",
                "http://user:pw@h:8000", "http://h:8000/some/path"):
        monkeypatch.setenv(VECTORS_ENV, bad)
        with pytest.raises(VectorStoreError, match=VECTORS_ENV) as err:
            locate(tmp_path)
        assert "\n" not in str(err.value)


# -- one collection, many processes ------------------------------------------------------------------

@pytest.mark.slow  # MiniLM fills the server, and a second process loads it again to search
def test_a_second_process_searches_the_vectors_this_one_filled(shared, chroma):
    url, _ = chroma
    wb = shared
    store = wb.store
    name = collection_name(locate(store.dir), store.get_meta("store_id"), store.dir)
    assert not (store.dir / "chroma").exists()  # nothing embedded: the server holds them
    counts = store.counts()
    assert counts["dense_chunks"] == counts["chunks"] > 0
    col = server_collection(url, name)
    assert set(col.get(include=[])["ids"]) == store.all_chunk_ids()
    # what the server holds is MiniLM's vector of each chunk's text (up to batching noise), no other's
    from direng_kernel.index.embed import embed_dense

    chunks = store.chunks()
    got = col.get(ids=[c.id for c in chunks], include=["embeddings"])
    held = dict(zip(got["ids"], np.asarray(got["embeddings"])))
    fresh = embed_dense([c.text for c in chunks])
    similarity = np.stack([held[c.id] for c in chunks]) @ fresh.T  # both unit length
    assert (similarity.argmax(axis=1) == np.arange(len(chunks))).all() and similarity.diagonal().min() > 0.98

    query = "charge a credit card through the payment gateway"
    here = [(h.path, h.symbol, h.start_line) for h in wb.search(query, k=5, mode="dense")]
    proc = direng("search", query, "--root", str(wb.root), "--mode", "dense", "-k", "5", "--json",
                  env={VECTORS_ENV: url})
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout)
    assert all("dense" in h["sources"] for h in there)
    assert [(h["path"], h["symbol"], h["start_line"]) for h in there] == here
    status = json.loads(direng("status", "--root", str(wb.root), "--json", env={VECTORS_ENV: url}).stdout)
    assert status["dense_chunks"] == counts["chunks"]


@pytest.mark.slow
def test_a_chunk_changed_by_another_process_loses_its_old_vector_everywhere(shared, chroma):
    from direng_kernel.index.embed import embed_dense

    url, _ = chroma
    wb = shared
    store = wb.store
    vectors = wb.vectors()  # this process's open collection, kept across the other's refresh
    old = {c.id for c in store.chunks() if c.path == "shop/payment.py"}
    target = wb.root / "shop" / "payment.py"
    target.write_text(target.read_text().replace(
        "Charge a credit card and return the gateway's transaction id.",
        "Refund a purchase to the customer's bank account and return the refund id."))
    proc = direng("index", str(wb.root), "--dense", "--json", env={VECTORS_ENV: url})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["modified"] == 1

    new = {c.id for c in store.chunks() if c.path == "shop/payment.py"}
    gone, came = old - new, new - old
    assert gone and came
    held = vectors.ids()
    assert not gone & held and came <= held  # the other process collected the old, filled the new
    assert came <= store.all_dense_ids()
    query = "refund a purchase to the customer's bank account"
    hits = wb.search(query, k=3, mode="dense")
    charge = next(h for h in hits if h.symbol == "charge_card")
    assert "Refund a purchase" in charge.snippet  # the current text and lines, never the old ones
    assert "def charge_card" in target.read_text().splitlines()[charge.start_line - 1]
    assert all(cid not in gone for cid in wb.searcher.dense(query))

    # An orphan (a vector whose chunk never made it into SQLite, as after a crash) ranks first in
    # chroma itself, yet no process's search returns it, and the next collection removes it.
    orphan = "orphan-" + "0" * 24
    vectors.upsert([orphan], embed_dense([query]))
    assert vectors.query(embed_dense([query])[0], 1)[0][0] == orphan
    assert orphan not in wb.searcher.dense(query)
    proc = direng("search", query, "--root", str(wb.root), "--mode", "dense", "-k", "3", "--json",
                  env={VECTORS_ENV: url})
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["symbol"] == "charge_card", proc.stderr
    # A vector being filled by someone (its chunk present, not flagged yet) is never collected.
    filling = next(iter(came))
    store.set_dense_ids(store.all_dense_ids() - {filling})
    assert wb.gc_vectors() == 1
    assert orphan not in vectors.ids() and filling in vectors.ids()
    store.set_dense_ids(store.all_dense_ids() | {filling})


@pytest.mark.slow
def test_a_store_moving_to_the_server_refills_what_the_server_lacks(chroma, tmp_path, monkeypatch):
    from direng_kernel.index.vectors import open_vectors
    from direng_kernel.workbench import Workbench

    url, _ = chroma
    root = make_repo(tmp_path / "repo")
    monkeypatch.delenv(VECTORS_ENV, raising=False)
    wb = Workbench(root)
    wb.index(dense=True)  # the embedded store
    chunks = wb.store.counts()["chunks"]
    assert wb.store.counts()["dense_chunks"] == chunks and (wb.store.dir / "chroma").is_dir()
    wb.close()

    monkeypatch.setenv(VECTORS_ENV, url)
    moved = Workbench(root)
    moved.vectors()  # a collection the flags were not about: they now say what it holds (nothing)
    assert moved.store.counts()["dense_chunks"] == 0
    assert moved.fill_dense() == chunks
    assert moved.vectors().count() == chunks and moved.store.counts()["dense_chunks"] == chunks
    open_vectors(moved.store)  # the same collection again: nothing to redo
    assert moved.store.counts()["dense_chunks"] == chunks
    # two repositories' stores on one server: collections of their own
    other = Workbench(make_repo(tmp_path / "other"))
    other.index()
    assert other.vectors().name != moved.vectors().name and other.vectors().count() == 0
    moved.close()
    other.close()


# -- unreachable, malformed, silent, stopped ---------------------------------------------------------

def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def test_an_unreachable_server_is_one_line_at_once_and_degrades_health(tmp_path, monkeypatch):
    from direng_kernel.engine import Engine

    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(VECTORS_ENV, url)
    root = make_repo(tmp_path / "repo")
    engine = Engine(root)
    err = returns_within(20, lambda: engine.workbench.vectors())
    assert isinstance(err, VectorStoreError) and url in str(err) and VECTORS_ENV in str(err)
    assert "\n" not in str(err)
    again = returns_within(20, lambda: engine.workbench.vectors())  # within RETRY_S: the same error, unasked
    assert isinstance(again, VectorStoreError) and str(again) == str(err)
    health = engine.health()
    assert health["status"] == "degraded" and health["vectors"]["ok"] is False
    assert health["vectors"]["location"] == f"chroma server {url}" and url in health["vectors"]["error"]
    monkeypatch.setenv(VECTORS_ENV, "http://h:port")
    assert "not a chroma server URL" in engine.health()["vectors"]["error"]
    monkeypatch.delenv(VECTORS_ENV)
    assert engine.health()["vectors"] == {"ok": True, "location": f"embedded chroma {engine.workbench.settings.store}"
                                          "/chroma", "collection": None, "error": None}


@pytest.mark.slow  # CLI processes load the index and MiniLM
def test_the_cli_says_an_unreachable_server_in_one_line(shared, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    root = make_repo(tmp_path / "repo")
    proc = direng("index", str(root), "--dense", env={VECTORS_ENV: url})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert url in lines[0] and "is unavailable" in lines[0] and VECTORS_ENV in lines[0]
    status = json.loads(direng("status", "--root", str(root), "--json", env={}).stdout)
    assert status["chunks"] > 0 and status["dense_chunks"] == 0  # the index itself is there
    # On a store with MiniLM vectors (in a server that is now out of reach): a hybrid search still
    # answers without them and says why in one note; a dense search fails in one line.
    proc = direng("search", "charge a card", "--root", str(shared.root), "--dense", "--json",
                  env={VECTORS_ENV: url})
    assert proc.returncode == 0 and json.loads(proc.stdout), proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(notes) == 1 and "left out" in notes[0] and url in notes[0], proc.stderr
    proc = direng("search", "charge a card", "--root", str(shared.root), "--mode", "dense", env={VECTORS_ENV: url})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and url in lines[0], proc.stderr


def test_a_silent_server_times_out_instead_of_hanging(monkeypatch):
    """Fake (a protocol edge case): a socket that accepts connections and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv(VECTORS_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv(TIMEOUT_ENV, "1")
        err = returns_within(20, lambda: ping(locate(Path("."))))
    assert isinstance(err, VectorStoreError) and "is unavailable" in str(err)


@pytest.mark.slow
def test_a_server_stopped_mid_use_fails_within_the_timeout_and_is_reopened(shared, chroma, monkeypatch):
    url, proc = chroma
    from direng_kernel.workbench import Workbench

    monkeypatch.setenv(TIMEOUT_ENV, "2")
    monkeypatch.setenv(VECTORS_ENV, url)
    wb = Workbench(shared.root)  # another workbench on the store, opening it under the short timeout
    vectors = wb.vectors()
    proc.send_signal(signal.SIGSTOP)  # connections are accepted by the kernel, never answered
    try:
        err = returns_within(30, vectors.count)
        assert isinstance(err, VectorStoreError) and url in str(err)
        assert not vectors.healthy
    finally:
        proc.send_signal(signal.SIGCONT)
    assert wb.vectors() is not vectors and wb.vectors().count() == wb.store.counts()["dense_chunks"]
    wb.close()


# -- the server's traitlet --------------------------------------------------------------------------

@pytest.mark.slow  # two real Jupyter servers
def test_the_server_traitlet_selects_the_chroma_server_and_reports_a_dead_one(chroma, tmp_path, monkeypatch):
    from test_server import running_server

    url, _ = chroma
    monkeypatch.delenv(VECTORS_ENV, raising=False)  # the traitlet alone says where the vectors are
    with running_server(tmp_path / "up", f"--DirEngExtension.vectors={url}", "--DirEngExtension.watch=False",
                        "--DirEngExtension.index_on_start=False", "--DirEngExtension.run_tasks=False",
                        indexed=False) as srv:
        status, health = srv.get("health")
        assert status == 200 and health["status"] == "ok", health
        assert health["vectors"] == {"ok": True, "location": f"chroma server {url}", "collection": None,
                                     "error": None}
    dead = f"http://127.0.0.1:{_closed_port()}"
    with running_server(tmp_path / "down", f"--DirEngExtension.vectors={dead}", "--DirEngExtension.watch=False",
                        "--DirEngExtension.index_on_start=False", "--DirEngExtension.run_tasks=False",
                        indexed=False) as srv:
        status, health = srv.get("health")
        assert status == 200 and health["status"] == "degraded" and health["vectors"]["ok"] is False
        assert dead in health["vectors"]["error"]
        assert srv.get("policy")[0] == 200  # the rest of the API serves
        deadline = time.monotonic() + 30
        while "MiniLM vectors unavailable" not in srv.log_tail(400) and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = [ln for ln in srv.log_tail(400).splitlines() if "MiniLM vectors unavailable" in ln]
        assert len(lines) == 1 and dead in lines[0] and "Traceback" not in srv.log_tail(400)
