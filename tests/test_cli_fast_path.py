"""One-shot `direng search`: the light in-process path and the daemon-served path (real
processes, real stores, real models; no mocks).

* light: a one-shot search imports no torch, model2vec, huggingface_hub, sentence_transformers
  or chromadb — it reads the static model's files itself (with vectors equal to model2vec's)
  and memory-maps the store's static matrix; with MiniLM vectors in the store it leaves them
  out and says so, unless `--dense`. A plain one (default mode) imports not even pydantic, the
  models or the engine: the workbench answers it, with the same hits and notes as the engine;
* served: while `direng index --watch` runs, the CLI asks it over `<store>/daemon.sock` and
  prints the same hits as an in-process search with MiniLM;
* fallback: a daemon killed with -9 leaves a stale socket; the next command answers
  in-process, silently, and removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import commit_all, make_repo, run_cli
from direng_kernel import daemon_socket

HEAVY = ("torch", "model2vec", "huggingface_hub", "sentence_transformers", "chromadb", "transformers")
QUERY = "charge a credit card"

# Runs the real CLI entry point in a child and reports, on its last stderr line, which heavy
# modules it imported and whether it built an in-process engine.
PROBE = """
import json, sys
from direng_kernel.cli.main import main
sys.argv = ["direng", *sys.argv[1:]]
try:
    rc = main()
finally:
    top = sorted({m.split(".")[0] for m in sys.modules})
    print("PROBE " + json.dumps({"heavy": [m for m in top if m in %r],
                                 "engine": "direng_kernel.engine" in sys.modules,
                                 "models": "direng_kernel.models" in sys.modules,
                                 "pydantic": "pydantic" in sys.modules}), file=sys.stderr)
sys.exit(rc)
""" % (HEAVY,)


def probe(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})
    lines = proc.stderr.splitlines()
    report = json.loads(lines[-1].removeprefix("PROBE ")) if lines and lines[-1].startswith("PROBE ") else {}
    return proc, report


def hits_of(proc: subprocess.CompletedProcess) -> list[tuple]:
    assert proc.returncode == 0, proc.stderr
    return [(h["path"], h["symbol"], h["start_line"], h["end_line"], h["score"], tuple(h["sources"]))
            for h in json.loads(proc.stdout)]


@pytest.fixture(scope="module")
def static_repo(tmp_path_factory):
    """The sample repository indexed by `direng index`: static vectors, no MiniLM."""
    root = make_repo(tmp_path_factory.mktemp("fast-static") / "repo")
    proc = run_cli("index", str(root))
    assert proc.returncode == 0, proc.stderr
    return root


def dense_copy(indexed_sample, dest: Path) -> Path:
    """A private copy of the session's sample index, MiniLM vectors included."""
    shutil.copytree(indexed_sample.root, dest, symlinks=True)
    return dest


def start_watch(root: Path, timeout: float = 150) -> subprocess.Popen:
    """`direng index ROOT --watch`, returned once it answers on the store's socket."""
    proc = subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "index", str(root), "--watch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    sock = daemon_socket.socket_path(root / ".direng")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the watcher exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if daemon_socket.request(sock, "health", {}, timeout=5)["result"]["root"] == str(root):
                return proc
        except daemon_socket.DaemonGone:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("the watcher never answered on its socket")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- the light path ---------------------------------------------------------------------------


def test_light_path_imports_no_model_library(static_repo):
    proc, report = probe("search", QUERY, "--root", str(static_repo), "--json")
    hits = hits_of(proc)
    assert (hits[0][0], hits[0][1]) == ("shop/payment.py", "charge_card")
    assert report == {"heavy": [], "engine": False, "models": False, "pydantic": False}, report
    # The static matrix is memory-mapped from the store's cache from now on.
    assert list((static_repo / ".direng" / "static-cache").glob("*.vec.npy"))


def test_one_shot_leaves_minilm_out_with_a_note_unless_asked(indexed_sample, tmp_path):
    root = dense_copy(indexed_sample, tmp_path / "repo")
    light, report = probe("search", QUERY, "--root", str(root), "--json", env={"DIRENG_DAEMON": "off"})
    assert report == {"heavy": [], "engine": False, "models": False, "pydantic": False}, report
    assert all("dense" not in h[5] for h in hits_of(light))
    assert "note: MiniLM vectors were left out of this one-shot search" in light.stderr
    assert "Traceback" not in light.stderr
    # The same search in-process without the cache or the CLI: the same hits.
    expected = [(h.path, h.symbol, h.start_line, h.end_line, h.score, tuple(h.sources))
                for h in indexed_sample.search(QUERY, dense=False)]
    assert hits_of(light) == expected
    dense = run_cli("search", QUERY, "--root", str(root), "--json", "--dense")
    assert any("dense" in h[5] for h in hits_of(dense))
    assert "note:" not in dense.stderr


def test_light_path_hands_to_the_full_cli_what_only_it_answers(static_repo, tmp_path):
    light, report = probe("search", QUERY, "--root", str(static_repo))
    assert light.returncode == 0 and report["pydantic"] is False, report
    # An explicit mode is checked by the full parser: the same default mode, the same table.
    full, report = probe("search", QUERY, "--root", str(static_repo), "--mode", "hybrid")
    assert report["engine"] is True and full.stdout == light.stdout
    bm25, report = probe("search", QUERY, "--root", str(static_repo), "--mode", "bm25", "--json")
    assert report["engine"] is True and hits_of(bm25)[0][5] == ("bm25",)
    # A policy file to check: the engine checks it, as every full command does.
    policy = tmp_path / "policy.yaml"
    policy.write_text("lanes: [not, a, mapping\n")
    checked, report = probe("search", QUERY, "--root", str(static_repo), env={"DIRENG_POLICY": str(policy)})
    assert report["engine"] is True and checked.stdout == light.stdout and "policy" in checked.stderr
    # An error in this process is raised again by the full path, with its message and exit code.
    (tmp_path / "plain").mkdir()
    missing, report = probe("search", QUERY, "--root", str(tmp_path / "plain"))
    assert report["engine"] is True and missing.returncode != 0
    assert "is not indexed yet" in missing.stderr and "Traceback" not in missing.stderr


def test_the_executable_prints_everything_before_it_leaves_early(static_repo):
    """`console` skips the interpreter's teardown after a light-path answer: what it printed, to a
    pipe, must still be all of it, with main()'s exit code; the full path keeps its own exits."""
    for fmt in ((), ("--json",)):
        light, _ = probe("search", QUERY, "--root", str(static_repo), *fmt)
        exe = run_cli("search", QUERY, "--root", str(static_repo), *fmt)  # `python -m …cli.main`: console()
        assert exe.returncode == light.returncode == 0 and exe.stdout == light.stdout and exe.stdout
    assert json.loads(run_cli("search", QUERY, "--root", str(static_repo), "-k", "3", "--json").stdout)
    usage = run_cli("search", QUERY, "--root", str(static_repo), "-k", "many")
    assert usage.returncode == 2 and "invalid int value" in usage.stderr


def test_light_static_vectors_equal_model2vec():
    from model2vec import StaticModel

    from direng_kernel.index import embed

    folder = embed.prepare_static()
    texts = [QUERY, "", "   ", "def charge_card(amount):\n    return gateway.charge(amount)\n" * 300,
             "x" * 5000, "日本語のテキストと ☃ émoji", "[UNK] [CLS] [PAD]",
             "whereAreCookiesStored_after_redirect",
             *(f"line {i} of a chunk with words " * (i % 7 + 1) for i in range(40))]
    ours = embed.StaticEncoder(folder).encode(texts)
    theirs = StaticModel.from_pretrained(str(folder)).encode(texts, show_progress_bar=False)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)
    assert isinstance(embed.static_model(), embed.StaticEncoder)


def test_many_static_vectors_on_threads_equal_model2vec(monkeypatch):
    """Three batches on two threads, through the float32 sum: still model2vec's vectors, bit for bit."""
    from model2vec import StaticModel

    from direng_kernel.index import embed

    monkeypatch.setattr(embed, "STATIC_THREADS", 2)
    folder = embed.prepare_static()
    words = ["charge", "card", "refund", "gateway", "retry", "policy", "cookie", "redirect", "[UNK]", "日本"]
    texts = [" ".join(words[(i * k) % len(words)] for k in range(1 + i % 37)) for i in range(2500)]
    encoder = embed.StaticEncoder(folder)
    ours = encoder.encode(texts)
    assert len(encoder._tokenizers) == 2 and encoder._embedding32 is not None
    theirs = StaticModel.from_pretrained(str(folder)).encode(texts, show_progress_bar=False)
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


def test_index_after_a_change_rewrites_the_static_cache(tmp_path):
    root = make_repo(tmp_path / "repo")
    assert run_cli("index", str(root)).returncode == 0
    assert hits_of(run_cli("search", QUERY, "--root", str(root), "--json"))  # creates the cache
    cache = root / ".direng" / "static-cache"
    before = {p.name for p in cache.glob("*.npy")}
    with (root / "shop" / "payment.py").open("a") as fh:
        fh.write("\n\ndef refund_to_credit_card(amount):\n    \"\"\"Give money back to a card.\"\"\"\n"
                 "    return -amount\n")
    commit_all(root)
    assert run_cli("index", str(root)).returncode == 0
    after = {p.name for p in cache.glob("*.npy")}
    assert after and after.isdisjoint(before)  # the new generation's files, the old ones gone
    hits = hits_of(run_cli("search", "refund money to a credit card", "--root", str(root), "--json",
                           "--mode", "static"))
    assert "refund_to_credit_card" in [h[1] for h in hits]


# -- the daemon-served path -------------------------------------------------------------------


def test_watcher_serves_the_cli_the_same_hits_as_in_process(indexed_sample, tmp_path):
    root = dense_copy(indexed_sample, tmp_path / "repo")
    store = root / ".direng"
    watcher = start_watch(root)
    try:
        sock = daemon_socket.socket_path(store)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert json.loads((store / "daemon.json").read_text())["pid"] == watcher.pid
        for query, k, mode in ((QUERY, 10, "hybrid"), ("shipping cost", 4, "hybrid"), (QUERY, 10, "bm25")):
            served, report = probe("search", query, "-k", str(k), "--mode", mode, "--json", "--root", str(root))
            # Answered by the daemon before the CLI imported even its pydantic models.
            assert report == {"heavy": [], "engine": False, "models": False, "pydantic": False}, report
            assert "note:" not in served.stderr
            # In-process, MiniLM included: this test process's own engine on the same index.
            expected = [(h.path, h.symbol, h.start_line, h.end_line, h.score, tuple(h.sources))
                        for h in indexed_sample.search(query, k=k, mode=mode)]
            assert hits_of(served) == expected, (query, mode)
            assert mode != "hybrid" or any("dense" in h[5] for h in expected)
        # The table the daemon path prints is the in-process one; what it cannot answer exactly
        # (an invalid mode, a help request) goes to the full CLI.
        table, _ = probe("search", QUERY, "--mode", "bm25", "--root", str(root))
        in_process, _ = probe("search", QUERY, "--mode", "bm25", "--root", str(root), env={"DIRENG_DAEMON": "off"})
        assert table.returncode == 0 and table.stdout == in_process.stdout
        assert table.stdout.startswith(f"{len(hits_of(served))} hits for {QUERY!r}\n") and "shop/payment.py:" in table.stdout
        bad, report = probe("search", QUERY, "--mode", "nope", "--root", str(root))
        assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr and report["models"] is True
        helped, _ = probe("search", "--help")
        assert helped.returncode == 0 and "--mode" in helped.stdout
        # Other index commands, and errors, come back as they would in-process.
        graph, report = probe("graph", "charge_card", "--callers", "--json", "--root", str(root))
        assert report["engine"] is False and json.loads(graph.stdout)["center"] == "shop/payment.py::charge_card"
        unknown, _ = probe("graph", "chekout", "--root", str(root))
        assert unknown.returncode == 1 and "unknown symbol 'chekout'" in unknown.stderr
        assert "did you mean" in unknown.stderr and "Traceback" not in unknown.stderr
        # Ctrl-C stops it; it takes its socket with it.
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0
        assert not sock.exists() and not (store / "daemon.json").exists()
    finally:
        stop(watcher)


def test_killed_daemon_falls_back_in_process_and_cleans_up(tmp_path):
    root = make_repo(tmp_path / "repo")  # no MiniLM vectors: the watcher answers once its first pass is done
    assert run_cli("index", str(root)).returncode == 0
    store = root / ".direng"
    watcher = start_watch(root)
    os.killpg(watcher.pid, signal.SIGKILL)
    watcher.wait(10)
    sock = daemon_socket.socket_path(store)
    assert sock.exists() and (store / "daemon.json").exists()  # kill -9: nobody cleaned up
    fallback, report = probe("search", QUERY, "--root", str(root), "--json")
    assert report == {"heavy": [], "engine": True, "models": True, "pydantic": True}, report  # the full path cleans up
    expected, _ = probe("search", QUERY, "--root", str(root), "--json", env={"DIRENG_DAEMON": "off"})
    assert hits_of(fallback) == hits_of(expected)
    assert [ln for ln in fallback.stderr.splitlines() if not ln.startswith(("PROBE", "direng: note:"))] == []
    assert not sock.exists() and not (store / "daemon.json").exists()


def test_a_stale_socket_never_blocks_a_new_daemon_or_a_command(static_repo, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(daemon_socket.socket_path(store)))
    dead.close()  # bound, never listening: what a killed daemon leaves
    with pytest.raises(daemon_socket.DaemonGone):
        daemon_socket.request(daemon_socket.socket_path(store), "health", {}, timeout=2)

    class Api:
        root = "/somewhere"

        def health(self) -> dict:
            return {"status": "ok"}

    server = daemon_socket.SocketServer(Api(), store)
    assert server.start()
    try:
        path = daemon_socket.socket_path(store)
        assert daemon_socket.request(path, "health", {})["result"] == {"status": "ok"}
        refused = daemon_socket.request(path, "index", {})["error"]  # only the read-only calls
        assert refused["status"] == 400 and "not served" in refused["message"]
        assert daemon_socket.SocketServer(Api(), store).start() is False  # a live owner keeps it
    finally:
        server.close()
    assert not daemon_socket.socket_path(store).exists()
    # The CLI itself on a store with a stale socket of a dead pid: answered in-process.
    sock = daemon_socket.socket_path(static_repo / ".direng")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()
    proc, report = probe("search", QUERY, "--root", str(static_repo), "--json")
    assert hits_of(proc)[0][1] == "charge_card" and report["engine"] is True
    assert not sock.exists()
