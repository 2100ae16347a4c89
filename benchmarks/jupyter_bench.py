"""Notebook-side latency: kernel start to first answer, warm `%direng search` and `%direng ask`.

Runs real kernels through jupyter_client, for both transports:
  * in-process — a python3 kernel whose magics build the engine inside the kernel;
  * server — a real Jupyter server with the DirEng extension; the kernel gets DIRENG_SERVER_URL /
    DIRENG_TOKEN as kernels started by that server do, and the magics talk REST.
Times are wall clock from execute_request to the kernel going idle. Prints a table and writes
benchmarks/results/jupyter_bench.json.

    python benchmarks/jupyter_bench.py [--root DIR] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from jupyter_client.manager import start_new_kernel

HERE = Path(__file__).resolve().parent
QUERIES = ["hybrid search fusion", "refresh daemon", "identifier splitting", "graph callers", "policy validation",
           "kernel completion", "chunk ids", "static embeddings", "server extension", "crash consistency"]
QUESTIONS = ["how are search results combined?", "where is the index store written?",
             "how does the daemon notice a commit?", "where are symbols parsed?", "how are budgets enforced?"]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def run(kc, code: str, timeout: float = 300) -> tuple[float, str]:
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    text = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind in ("display_data", "execute_result"):
            text.append(content["data"].get("text/markdown") or content["data"].get("text/plain", ""))
        elif kind == "error":
            text.append("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return (time.perf_counter() - t0) * 1000, "".join(text)


def measure(root: Path, env: dict, repeat: int, label: str) -> dict:
    t0 = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(root), env=env)
    try:
        run(kc, "%load_ext direng_kernel")  # a cell is transformed before it runs: load, then ask
        _ms, out = run(kc, "%direng ask where is the index store written?")
        first = time.perf_counter() - t0
        assert "direng_kernel" in out or ".py:" in out, out[-500:]
        search = [run(kc, f"%direng search {QUERIES[i % len(QUERIES)]} -k 10")[0] for i in range(repeat)]
        ask = [run(kc, f"%direng ask {QUESTIONS[i % len(QUESTIONS)]}")[0] for i in range(repeat)]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"transport": label, "kernel_start_to_first_answer_s": round(first, 3),
            "search_ms": {"p50": round(percentile(search, 0.5), 1), "p95": round(percentile(search, 0.95), 1)},
            "ask_ms": {"p50": round(percentile(ask, 0.5), 1), "p95": round(percentile(ask, 0.95), 1)}}


def start_server(root: Path) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", "--ServerApp.open_browser=False",
                             "--allow-root", f"--ServerApp.root_dir={root}", "--DirEngExtension.watch=False"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/direng/api"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            req = urllib.request.Request(f"{url}/health", headers={"Authorization": f"token {token}"})
            if json.loads(urllib.request.urlopen(req, timeout=2).read()).get("indexed"):
                return proc, url, token
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the Jupyter server did not come up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE.parent), help="indexed repository (default: this repo)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "index", str(root)], check=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DIRENG_")}
    results = [measure(root, base_env, args.repeat, "in-process")]
    server, url, token = start_server(root)
    try:
        results.append(measure(root, {**base_env, "DIRENG_SERVER_URL": url, "DIRENG_TOKEN": token},
                               args.repeat, "server"))
    finally:
        server.terminate()
        server.wait(30)
    print(f"{'transport':<12} {'start→answer s':>15} {'search p50':>11} {'p95':>7} {'ask p50':>9} {'p95':>7}")
    for r in results:
        print(f"{r['transport']:<12} {r['kernel_start_to_first_answer_s']:>15.2f} {r['search_ms']['p50']:>11.1f} "
              f"{r['search_ms']['p95']:>7.1f} {r['ask_ms']['p50']:>9.1f} {r['ask_ms']['p95']:>7.1f}")
    out = HERE / "results" / "jupyter_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"root": str(root), "repeat": args.repeat, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
