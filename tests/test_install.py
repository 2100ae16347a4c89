"""What any install of the package provides without further steps, and the headless tour."""

from __future__ import annotations

import json
import os
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


@pytest.mark.slow
def test_headless_make_run_executes_the_tour(tmp_path):
    """`HEADLESS=1 make run`: indexes this repository and runs notebooks/tour.ipynb with papermill."""
    env = dict(os.environ, HEADLESS="1", OUT=str(tmp_path))
    env.pop("DIRENG_SERVER_URL", None)
    proc = subprocess.run(["make", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"tour executed headless: {tmp_path / 'tour.ipynb'}" in proc.stdout
    nb = nbformat.read(tmp_path / "tour.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any(o.output_type == "error" for o in outputs)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", "")) for o in outputs)
    assert "direng_kernel/index/indexer.py:" in text  # "what calls run_index?" cites the real definition
    assert "Workbench.search" in text
