"""What any install of the package provides without further steps, and the headless tour."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def test_kernelspec_is_installed():
    out = subprocess.run([str(BIN / "jupyter"), "kernelspec", "list", "--json"], capture_output=True, text=True,
                         check=True).stdout
    spec = json.loads(out)["kernelspecs"]["direng"]
    assert spec["spec"]["display_name"] == "DirEng"
    assert spec["spec"]["argv"][1:3] == ["-m", "direng_kernel.kernel"]


def test_server_extension_is_enabled():
    proc = subprocess.run([str(BIN / "jupyter"), "server", "extension", "list"], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    line = next(ln for ln in text.splitlines() if "direng_kernel" in ln and "enabled" in ln)
    assert "enabled" in line
    assert "direng_kernel 0.1.0" in text and "OK" in text.split("direng_kernel 0.1.0", 1)[1].splitlines()[0]


def test_policy_ships_with_the_package():
    from direng_kernel.broker.policy import load_policy, schema_path

    assert schema_path().name == "model_broker.schema.json"
    assert load_policy(REPO / "policy" / "model_broker_example.json").hash


@pytest.fixture
def checkout_copy(tmp_path) -> Path:
    """A throw-away git copy of this checkout's HEAD (`git clone --shared`: it reads the checkout's
    objects and writes nothing into the checkout or its .git), removed afterwards."""
    dest = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", "--shared", str(REPO), str(dest)], check=True, capture_output=True)
    try:
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@pytest.mark.slow
def test_headless_make_run_executes_the_tour(tmp_path, checkout_copy):
    """`HEADLESS=1 make run`: indexes the repository and runs notebooks/tour.ipynb with papermill.

    In a copy of the checkout, so the real checkout's `.direng` is never written; with the venv
    this test runs in (`VENV=`), and its install stamp taken as up to date (`-o`), so `make`
    neither creates a venv nor reinstalls anything."""
    venv = BIN.parent
    stamp = venv / ".installed"
    out = tmp_path / "out"
    env = dict(os.environ, HEADLESS="1", OUT=str(out))
    env.pop("DIRENG_SERVER_URL", None)
    proc = subprocess.run(["make", "-o", str(stamp), "run", f"VENV={venv}"], cwd=checkout_copy, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "pip install" not in proc.stdout and "-m venv" not in proc.stdout  # nothing was (re)installed
    assert f"tour executed headless: {out / 'tour.ipynb'}" in proc.stdout
    assert (checkout_copy / ".direng").is_dir()  # the copy was indexed, not the checkout
    nb = nbformat.read(out / "tour.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any(o.output_type == "error" for o in outputs)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", "")) for o in outputs)
    assert "direng_kernel/index/indexer.py:" in text  # "what calls run_index?" cites the real definition
    # The first question opens with the fusion code, not with a data class or the question's own cell.
    assert "For **how are search results from several retrievers combined?**, look at `rrf` (function)" in text
    assert "Workbench.search" in text
    assert "lane **graph-ops**" in text and "Nothing runs until you approve" in text  # work asked in chat
    # an edit the user gave, proposed, applied on `%direng apply`, its provenance in the cell
    assert "**applied**: cell 0 of notebooks/scratch-edit.ipynb" in text
    assert "total = sum(prices_cents) / 100  # in euros" in text
    assert not (checkout_copy / "notebooks" / "scratch-edit.ipynb").exists() or "scratch-edit" not in subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout_copy, capture_output=True, text=True).stdout  # git ignores it
