"""The `direng` CLI contract and its answers to bad input (real subprocesses, real stores)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import run_cli

HIT_FIELDS = {"path", "symbol", "kind", "start_line", "end_line", "score"}


def one_clean_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cli_repo(tmp_path_factory):
    from conftest import make_repo

    root = make_repo(tmp_path_factory.mktemp("cli") / "repo")
    proc = run_cli("index", str(root))
    assert proc.returncode == 0, proc.stderr
    return root


def test_index_prints_a_summary_and_json(cli_repo):
    proc = run_cli("index", str(cli_repo), "--json")
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["unchanged"] == 9 and report["added"] == 0
    assert len(report["indexed_commit"]) == 40


def test_search_json_contract(cli_repo):
    proc = run_cli("search", "charge a credit card", "--root", str(cli_repo), "-k", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert 0 < len(hits) <= 4
    for h in hits:
        assert HIT_FIELDS <= set(h)
        assert not h["path"].startswith("/") and "\\" not in h["path"]
        assert 1 <= h["start_line"] <= h["end_line"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert (hits[0]["path"], hits[0]["symbol"]) == ("shop/payment.py", "charge_card")


def test_search_table(cli_repo):
    proc = run_cli("search", "shipping cost", "--root", str(cli_repo))
    assert proc.returncode == 0
    assert "shop/shipping.py:9-11" in proc.stdout


def test_graph_json_and_text(cli_repo):
    proc = run_cli("graph", "charge_card", "--root", str(cli_repo), "--callers", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["center"] == "shop/payment.py::charge_card"
    assert {"source": "shop/payment.py::checkout", "target": "shop/payment.py::charge_card"}.items() <= \
        data["edges"][0].items()
    text = run_cli("graph", "Cart", "--root", str(cli_repo))
    assert "<- [inherits] DiscountCart" in text.stdout
    path = run_cli("graph", "checkout_with_shipping", "--to", "charge_card", "--root", str(cli_repo))
    assert path.stdout.strip() == "checkout_with_shipping -> checkout -> charge_card"


def test_graph_unknown_symbol_suggests_and_exits_1(cli_repo):
    proc = run_cli("graph", "chekout", "--root", str(cli_repo))
    line = one_clean_error_line(proc)
    assert proc.returncode == 1
    assert "unknown symbol 'chekout'" in line and "checkout" in line


def test_status_json(cli_repo):
    proc = run_cli("status", "--root", str(cli_repo), "--json")
    assert proc.returncode == 0
    st = json.loads(proc.stdout)
    assert {"files", "symbols", "chunks", "indexed_commit", "last_refresh", "lag_seconds", "fresh"} <= set(st)
    assert st["files"] == 9 and st["fresh"] is True and len(st["indexed_commit"]) == 40


@pytest.mark.parametrize("argv", [["status", "--root", "{root}"], ["--help"], ["search", "--help"]])
def test_light_commands_import_no_heavy_libraries(cli_repo, argv):
    argv = [a.replace("{root}", str(cli_repo)) for a in argv]
    code = (
        "import sys\nfrom direng_kernel.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'chromadb', 'sentence_transformers', 'model2vec', 'networkx', 'tree_sitter')"
        " if m in sys.modules]\nprint('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_missing_root(tmp_path):
    line = one_clean_error_line(run_cli("index", str(tmp_path / "nope")))
    assert "does not exist" in line
    line = one_clean_error_line(run_cli("search", "x", "--root", str(tmp_path / "nope")))
    assert "does not exist" in line


def test_root_is_a_file(tmp_path):
    f = tmp_path / "file.py"
    f.write_text("x = 1\n")
    assert "is a file" in one_clean_error_line(run_cli("index", str(f)))


def test_empty_repo(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    assert "nothing to index" in one_clean_error_line(run_cli("index", str(root)))


def test_search_before_index(tmp_path):
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "a.py").write_text("def a():\n    pass\n")
    assert "not indexed yet" in one_clean_error_line(run_cli("search", "a", "--root", str(root)))


def test_bad_files_are_skipped_or_indexed_as_far_as_possible(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "broken.py").write_text("def good_before():\n    return 1\n\ndef broken(:\n    pass\n\ndef good_after():\n    return 2\n")
    (root / "latin1.py").write_bytes(b"# caf\xe9\ndef caf\xe9_menu():\n    return 'cr\xe8me'\n\ndef plain_menu():\n    pass\n")
    (root / "blob.py").write_bytes(b"\x00\x01\x02binary" * 100)
    (root / "huge.py").write_text("x = 1\n" * 5000)
    (root / "ok.py").write_text("def fine():\n    return 0\n")
    os.mkfifo(root / "pipe.py")
    env = dict(os.environ, DIRENG_MAX_FILE_BYTES="20000")
    proc = subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "index", str(root), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["skipped"] == {"binary": 1, "too large": 1, "not a regular file": 1}
    # the replacement character in `caf\ufffd_menu` is a syntax error too: still indexed as far as possible
    assert report["syntax_errors"] == 2 and report["lossy_decoded"] == 1 and report["added"] == 3
    hits = json.loads(run_cli("search", "good after", "--root", str(root), "--json", "--mode", "bm25").stdout)
    assert hits[0]["symbol"] == "good_after" and hits[0]["start_line"] == 7
    hits = json.loads(run_cli("search", "plain menu", "--root", str(root), "--json", "--mode", "bm25").stdout)
    assert hits[0]["symbol"] == "plain_menu"


# Root reads any file whatever its mode, through these two capabilities. Without them in the
# bounding set, a root process (and whatever it runs) is bound by file modes like anyone else,
# while still owning, and so reaching, everything the test and the checkout hold.
DAC_CAPS = "-dac_override,-dac_read_search"


def without_file_read_override(argv: list[str]) -> list[str]:
    """`argv` run so that file modes bind it: as is for an ordinary user; as root, without the
    capabilities that let root read anything (independent of where the checkout lives)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.fail("running as root: setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    return ["setpriv", f"--bounding-set={DAC_CAPS}", "--", *argv]


def test_unreadable_file_is_skipped_and_counted(tmp_path):
    root = tmp_path / "perm"
    root.mkdir()
    (root / "open.py").write_text("def visible():\n    pass\n")
    (root / "closed.py").write_text("def hidden():\n    pass\n")
    (root / "closed.py").chmod(0)
    # the file really is unreadable to the indexer's process, and only that file
    probe = subprocess.run(without_file_read_override(["cat", str(root / "closed.py"), str(root / "open.py")]),
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr and "def visible" in probe.stdout
    argv = [sys.executable, "-m", "direng_kernel.cli.main", "index", str(root), "--json"]
    proc = subprocess.run(without_file_read_override(argv), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["skipped"] == {"unreadable": 1} and report["added"] == 1
    hits = json.loads(run_cli("search", "visible hidden", "--root", str(root), "--json", "--mode", "bm25").stdout)
    assert {h["path"] for h in hits} == {"open.py"}


def test_keyboard_interrupt_during_watch_exits_cleanly(cli_repo):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "index", str(cli_repo), "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err
