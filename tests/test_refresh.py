"""Incremental refresh: modify, add, delete, rename; the daemon; crash consistency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import commit_all, git, run_cli
from direng_kernel.workbench import Workbench


def symbols(wb: Workbench, path: str) -> dict[str, tuple[int, int]]:
    return {r[2]: (r[5], r[6]) for r in wb.store.symbols_rows("WHERE path=?", (path,))}


def test_no_change_refresh_touches_nothing(repo):
    wb = Workbench(repo)
    first = wb.index()
    assert first.added == 9 and first.modified == first.deleted == 0
    again = wb.index()
    assert (again.added, again.modified, again.deleted, again.unchanged) == (0, 0, 0, 9)
    assert again.chunks_embedded == 0 and again.changed_paths == []


def test_touch_without_content_change_is_not_reparsed(repo):
    wb = Workbench(repo)
    wb.index()
    target = repo / "shop" / "payment.py"
    os.utime(target, (time.time() + 5, time.time() + 5))
    report = wb.index()
    assert report.modified == 0 and report.unchanged == 9


def test_a_store_of_another_parser_generation_is_reparsed_once(repo):
    """After an upgrade that parses or chunks differently, unchanged files get the new rows too."""
    from direng_kernel.index.indexer import PARSE_GENERATION

    wb = Workbench(repo)
    try:
        wb.index()
        assert wb.store.get_meta("parse_generation") == PARSE_GENERATION
        before = symbols(wb, "shop/payment.py")
        chunk_ids = {cid for (cid,) in wb.store.db.execute("SELECT id FROM chunks")}
        with wb.store.transaction() as db:  # what an older parser left: fewer rows, another generation
            db.execute("DELETE FROM symbols WHERE path='shop/payment.py'")
        wb.store.set_meta("parse_generation", "older")
        report = wb.index()
        assert (report.added, report.modified, report.unchanged) == (0, 9, 0)
        assert symbols(wb, "shop/payment.py") == before
        assert {cid for (cid,) in wb.store.db.execute("SELECT id FROM chunks")} == chunk_ids  # same content, same ids
        assert wb.store.get_meta("parse_generation") == PARSE_GENERATION
        assert wb.index().unchanged == 9  # once only
    finally:
        wb.close()


def test_modify_shifts_lines_and_keeps_vectors_of_unchanged_chunks(repo):
    wb = Workbench(repo)
    wb.index()
    wb.fill_dense()
    before = symbols(wb, "shop/payment.py")
    dense_before = wb.status().dense_chunks
    path = repo / "shop" / "payment.py"
    path.write_text('"""Moved down by two lines."""\n\n' + path.read_text())
    report = wb.index()
    assert report.modified == 1 and report.changed_paths == ["shop/payment.py"]
    after = symbols(wb, "shop/payment.py")
    assert after["charge_card"] == (before["charge_card"][0] + 2, before["charge_card"][1] + 2)
    hit = next(h for h in wb.search("charge a credit card") if h.symbol == "charge_card")
    assert (hit.start_line, hit.end_line) == after["charge_card"]  # never a stale range
    # Only the file-summary chunk changed text; the functions kept their MiniLM vectors.
    assert wb.status().dense_chunks == dense_before - 1
    # Callers across files still resolve after the move.
    callers = wb.graph("charge_card", direction="callers")
    assert {n.name for n in callers.nodes} >= {"checkout"}


def test_add_delete_rename_update_search_and_graph(repo):
    wb = Workbench(repo)
    wb.index()
    (repo / "shop" / "refunds.py").write_text(
        "from shop.payment import charge_card\n\n\ndef refund_order(card: str, cents: int) -> str:\n"
        '    """Give the customer their money back."""\n    return charge_card(card, -cents)\n'
    )
    report = wb.index()
    assert report.added == 1
    assert wb.search("money back to the customer", k=3)[0].symbol == "refund_order"
    assert "refund_order" in {n.name for n in wb.graph("charge_card", direction="callers").nodes}

    (repo / "shop" / "refunds.py").rename(repo / "shop" / "returns.py")
    report = wb.index()
    assert (report.added, report.deleted) == (1, 1)
    hits = wb.search("money back to the customer", k=3)
    assert hits[0].path == "shop/returns.py"
    assert not any(h.path == "shop/refunds.py" for h in wb.search("refund order", k=20))

    (repo / "shop" / "returns.py").unlink()
    report = wb.index()
    assert report.deleted == 1
    assert "refund_order" not in {n.name for n in wb.graph("charge_card", direction="callers").nodes}
    assert wb.store.db.execute("SELECT count(*) FROM edges WHERE owner='shop/returns.py'").fetchone()[0] == 0


def test_new_definition_resolves_old_unresolved_reference(repo):
    wb = Workbench(repo)
    wb.index()
    (repo / "shop" / "audit.py").write_text("from shop.ledger import record\n\n\ndef audit():\n    record('x')\n")
    wb.index()
    g = wb.graph("audit", direction="callees")
    assert any(not e.resolved for e in g.edges if e.kind == "calls")
    (repo / "shop" / "ledger.py").write_text("def record(entry):\n    return entry\n")
    wb.index()  # only ledger.py changed, yet audit's call now resolves
    g = wb.graph("audit", direction="callees")
    assert [(e.target, e.resolved) for e in g.edges if e.kind == "calls"] == [("shop/ledger.py::record", True)]


def test_plain_directory_without_git(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    (root / "tool.py").write_text("def main():\n    return 0\n")
    wb = Workbench(root)
    wb.index()
    st = wb.status()
    assert st.indexed_commit is None and st.files == 1
    (root / "tool.py").write_text("def main():\n    return 1\n\n\ndef helper():\n    pass\n")
    assert wb.index().modified == 1  # freshness by content hash
    assert wb.status().symbols == 2


def test_gitignore_direngignore_and_symlinks(repo, tmp_path):
    (repo / ".gitignore").write_text("generated/\n*.log\n")
    (repo / ".direngignore").write_text("svc/\n")
    (repo / "generated").mkdir()
    (repo / "generated" / "big.py").write_text("def generated():\n    pass\n")
    (repo / "debug.log").write_text("noise")
    outside = tmp_path / "outside.py"
    outside.write_text("def secret_outside():\n    pass\n")
    (repo / "link.py").symlink_to(outside)
    (repo / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    wb = Workbench(repo)
    report = wb.index()
    paths = {r[0] for r in wb.store.file_rows()}
    assert not any(p.startswith(("generated/", "svc/", "linkdir/")) for p in paths)
    assert "link.py" not in paths and "debug.log" not in paths
    assert report.skipped.get("symlink outside root") == 1


def test_watch_daemon_reflects_a_commit(repo):
    """`direng index ROOT --watch` picks up a one-file commit by itself (target: within 2 s)."""
    proc = subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "index", str(repo), "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (repo / ".direng" / "index.sqlite3").exists():
            time.sleep(0.2)
        wb = Workbench(repo)
        while time.time() < deadline and not wb.is_indexed:
            time.sleep(0.2)
        (repo / "shop" / "loyalty.py").write_text("def award_loyalty_points(order):\n    return 10\n")
        head = commit_all(repo, "loyalty points")
        t0 = time.time()
        while time.time() < deadline:
            st = run_cli("status", "--root", str(repo), "--json")
            if '"indexed_commit": "%s"' % head in st.stdout:
                break
            time.sleep(0.1)
        lag = time.time() - t0
        assert '"indexed_commit": "%s"' % head in st.stdout, st.stdout + proc.stderr.read() if proc.poll() else st.stdout
        out = run_cli("search", "award loyalty points", "--root", str(repo), "--json", "-k", "3")
        assert '"symbol": "award_loyalty_points"' in out.stdout
        print(f"watch lag after commit: {lag:.2f}s")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode in (0, 130)


@pytest.mark.slow
def test_kill_9_mid_index_leaves_a_consistent_store(tmp_path):
    """Kill the indexer while it writes; the store stays usable and the next run finishes."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(1200):
        (root / f"mod_{i:04d}.py").write_text(
            f'"""Module {i}."""\n\n\ndef function_{i}(x):\n    """Double x for module {i}."""\n    return helper_{i}(x) * 2\n\n\n'
            f"def helper_{i}(x):\n    return x + {i}\n"
        )
    env = dict(os.environ, DIRENG_INDEX_BATCH="10")
    proc = subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "index", str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = root / ".direng" / "index.sqlite3"
    deadline = time.time() + 120
    import sqlite3

    partial = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                partial = sqlite3.connect(db).execute("SELECT count(*) FROM files").fetchone()[0]
            except sqlite3.Error:
                partial = 0
            if partial > 0:
                break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert 0 < partial < 1200, "the indexer should have been killed part-way"

    wb = Workbench(root)
    counts = wb.store.counts()
    # Every file row has its symbols and chunks: no half-written file survived.
    orphans = wb.store.db.execute(
        "SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.path=f.path)").fetchone()[0]
    assert orphans == 0 and counts["symbols"] == 2 * counts["files"]
    report = wb.index()
    assert report.added == 1200 - counts["files"]
    assert wb.status().files == 1200
    hit = wb.search("helper_1199", k=1, mode="bm25")[0]
    assert (hit.path, hit.symbol, hit.start_line) == ("mod_1199.py", "helper_1199", 9)
    # Edges of the files written before the kill were completed by the second run.
    g = wb.graph("helper_0", direction="callers")
    assert "function_0" in {n.name for n in g.nodes}


def test_status_reports_lag_behind_head(repo):
    wb = Workbench(repo)
    wb.index()
    st = wb.status()
    assert st.fresh and st.lag_seconds == 0 and st.commits_behind == 0
    (repo / "shop" / "extra.py").write_text("def extra():\n    pass\n")
    head = commit_all(repo, "extra")
    st = wb.status()
    assert not st.fresh and st.commits_behind == 1 and st.head_commit == head and st.lag_seconds >= 0
    out = run_cli("status", "--root", str(repo))
    assert "1 commit(s) behind HEAD" in out.stdout
    wb.index()
    assert wb.status().fresh
