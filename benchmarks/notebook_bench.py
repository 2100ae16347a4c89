"""Notebooks in the index: what indexing them costs, and how soon a save is searchable.

  * index cost — a notebook of N code cells (a function, a call and a print each) and N markdown
    cells, against one `.py` file holding the same code: a fresh store each time, the static
    model already loaded (importing nbformat once per process is reported apart). Target: the
    notebook costs ≤ 2× the `.py`.
  * save → searchable — a real `jupyter server` with the DirEng extension and its refresh daemon;
    the notebook is saved through the contents API (as JupyterLab saves it) with a new function
    name each time, and `GET /direng/api/search` is polled until the hit, with its `cell`, comes
    back. Target: ≤ 2 s.

Each figure is the median (and max) of `--repeat` runs. Prints a table and writes
benchmarks/results/notebook_bench.json.

    python benchmarks/notebook_bench.py [--cells 60] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "notebook_bench.json"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cell_code(i: int) -> str:
    return f"def step_{i}(frame):\n    return frame + {i}\n\nresult_{i} = step_{i}({i})\nprint(result_{i})\n"


def make_corpus(folder: Path, cells: int) -> tuple[Path, Path]:
    import nbformat

    nb = nbformat.v4.new_notebook()
    for i in range(cells):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## Step {i}\nWhat step {i} does to the frame."))
        nb.cells.append(nbformat.v4.new_code_cell(cell_code(i)))
    (folder / "nb").mkdir(parents=True)
    (folder / "py").mkdir(parents=True)
    nbformat.write(nb, folder / "nb" / "steps.ipynb")
    (folder / "py" / "steps.py").write_text("\n\n".join(cell_code(i) for i in range(cells)))
    return folder / "nb", folder / "py"


def index_seconds(root: Path) -> float:
    import shutil

    from direng_kernel.workbench import Workbench

    shutil.rmtree(root / ".direng", ignore_errors=True)
    t0 = time.perf_counter()
    Workbench(root).index()
    return time.perf_counter() - t0


def bench_index(cells: int, repeat: int) -> dict:
    t0 = time.perf_counter()
    import nbformat  # noqa: F401 — measured apart: once per process

    import_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        nb_root, py_root = make_corpus(Path(tmp), cells)
        index_seconds(py_root)  # warm the static model
        nb = [index_seconds(nb_root) for _ in range(repeat)]
        py = [index_seconds(py_root) for _ in range(repeat)]
    ratio = statistics.median(nb) / statistics.median(py)
    return {"cells": cells, "notebook_s": stats(nb), "py_s": stats(py), "ratio": round(ratio, 2),
            "target_ratio": 2.0, "nbformat_import_s": round(import_s, 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, token: str, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def bench_save(repeat: int) -> dict:
    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / "lib.py").write_text("def load_table(path):\n    return path\n")
        port, token = free_port(), secrets.token_hex(16)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(Path(tmp) / "rt"), JUPYTER_CONFIG_DIR=str(Path(tmp) / "cfg"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.token={token}", "--ServerApp.open_browser=False", "--allow-root",
             f"--ServerApp.root_dir={root}", '--ServerApp.jpserver_extensions={"direng_kernel": True}',
             "--DirEngExtension.watch=True"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    if request(f"{base}/direng/api/health", token).get("indexed"):
                        break
                except (OSError, urllib.error.URLError):
                    pass
                time.sleep(0.2)
            times = []
            for i in range(repeat):
                name = f"fresh_function_{i}_{secrets.token_hex(3)}"
                nb = nbformat.v4.new_notebook()
                nb.cells = [nbformat.v4.new_code_cell(f"from lib import load_table\n\ndef {name}():\n"
                                                      "    return load_table('t.csv')")]
                t0 = time.perf_counter()
                request(f"{base}/api/contents/notes.ipynb", token, "PUT",
                        {"type": "notebook", "format": "json", "content": nb})
                while True:
                    hits = request(f"{base}/direng/api/search?q={name}&k=3", token)["hits"]
                    # the new function itself: the old cell shares most of its words
                    if any(h["path"] == "notes.ipynb" and h.get("cell") == 0 and (h.get("symbol") or "").endswith(name)
                           for h in hits):
                        break
                    if time.perf_counter() - t0 > 60:
                        raise RuntimeError(f"{name} not searchable after 60 s")
                    time.sleep(0.05)
                times.append(time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(20)
    return {"save_to_searchable_s": stats(times), "target_s": 2.0}


def stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    results = {"meta": {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "python": platform.python_version(), "cpus": os.cpu_count()},
               "index": bench_index(args.cells, args.repeat), "save": bench_save(args.repeat)}
    idx, save = results["index"], results["save"]
    print(f"{'figure':<40} {'median':>9} {'max':>9} {'target':>9}")
    print(f"{'index notebook, ' + str(idx['cells']) + ' code cells (s)':<40} {idx['notebook_s']['median']:>9} "
          f"{idx['notebook_s']['max']:>9}")
    print(f"{'index the same code as .py (s)':<40} {idx['py_s']['median']:>9} {idx['py_s']['max']:>9}")
    print(f"{'notebook / .py':<40} {idx['ratio']:>9} {'':>9} {'<= 2.0':>9}")
    print(f"{'nbformat import, once per process (s)':<40} {idx['nbformat_import_s']:>9}")
    s = save["save_to_searchable_s"]
    print(f"{'save through Jupyter → searchable (s)':<40} {s['median']:>9} {s['max']:>9} {'<= 2.0':>9}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
