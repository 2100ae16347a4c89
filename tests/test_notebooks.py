"""Notebooks executed for real through nbclient: the magics in the python3 kernel, and the DirEng kernel."""

from __future__ import annotations

import os
import queue

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import make_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nb_repo(tmp_path_factory):
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path_factory.mktemp("nb") / "repo")
    Workbench(root).index()
    return root


@pytest.fixture(autouse=True)
def no_server_env(monkeypatch):
    # These notebooks test the in-process transport; kernels inherit this environment.
    monkeypatch.delenv("DIRENG_SERVER_URL", raising=False)
    monkeypatch.delenv("DIRENG_TOKEN", raising=False)


def run_notebook(cells: list[str], root, kernel: str = "python3", timeout: int = 180):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, kernel_name=kernel, timeout=timeout, resources={"metadata": {"path": str(root)}},
                   allow_errors=True).execute()
    return nb


def text_of(cell) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
        else:
            data = out.get("data", {})
            parts.append(data.get("text/markdown") or data.get("text/plain") or "")
            parts.append(data.get("text/html", ""))
    return "\n".join(parts)


def test_magics_in_the_python3_kernel(nb_repo):
    nb = run_notebook([
        "%load_ext direng_kernel",
        "%direng ask how is a credit card charged?",
        "df = %direng search shipping cost for a zone -k 3\ndf",
        "fn = 'charge_card'\n%direng ask what calls {fn}?",
        "%%direng --format json\nexplain {fn}",
        "%direng graph charge_card --callers",
        "%direng bogus",
        "%direng status",
        "%direng history",
        "%direng reset\nlen(_dirEng_hist := get_ipython().run_line_magic('direng', 'history'))",
        "1/0",
        "%direng explain-error",
        "%direng ask document the shop package",
        '%%direng\napply this\n```diff\n--- a/shop/shipping.py\n+++ b/shop/shipping.py\n@@ -1 +1 @@\n-a\n+b\n```',
        "props = %direng proposals\npid = props.id[0]\nprops[['kind', 'path', 'state']].to_dict('records')",
        "%direng reject {pid}",
    ], nb_repo)
    ask, search, callers, js, graph, bogus, status, history, reset, _err, explain, work, patch, props, rejected = \
        nb.cells[1:]
    assert "shop/payment.py:10-14" in text_of(ask) and "charge_card" in text_of(ask)
    assert "shop/shipping.py:9-11" in text_of(search) and "shipping_cost" in text_of(search)
    assert "checkout" in text_of(callers) and "shop/payment.py:17" in text_of(callers)
    assert "'intent': 'explain'" in text_of(js) and "charge_card" in text_of(js)
    (shown,) = [o for o in graph.outputs if o.output_type == "display_data"]
    assert set(shown.data) == {"application/vnd.direng.graph+json", "image/svg+xml", "text/plain"}
    assert shown.data["application/vnd.direng.graph+json"]["center"] == "shop/payment.py::charge_card"
    assert "checkout" in shown.data["text/plain"] and "checkout" in shown.data["image/svg+xml"]
    assert "<script" not in shown.data["image/svg+xml"] and "https://" not in shown.data["image/svg+xml"]
    assert "usage: %direng" in text_of(bogus) and not any(o.output_type == "error" for o in bogus.outputs)
    assert "9 files" in text_of(status) and "in-process" in text_of(status)
    assert "what calls charge_card?" in text_of(history)  # {fn} was filled from the namespace
    assert text_of(reset).strip().endswith("0")
    assert "ZeroDivisionError" in text_of(explain)
    # large work is a proposal with an Approve button (ipywidgets), and nothing ran
    assert "lane **narrative**" in text_of(work) and "Estimate: p50" in text_of(work)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in work.outputs)
    assert "succeeded" not in text_of(work)
    # an edit is a proposal; %direng proposals lists it and %direng reject declines it
    assert "Proposal `prop-" in text_of(patch) and "Code-Impl" in text_of(patch)
    assert "'kind': 'file', 'path': 'shop/shipping.py', 'state': 'proposed'" in text_of(props)
    assert "**rejected**" in text_of(rejected)


def test_direng_kernel_mixes_prose_and_python(nb_repo):
    nb = run_notebook([
        "where is the shipping cost computed?",
        "%%python\nx = 6 * 7\nprint(x)",
        "!echo shell-ok",
        "what calls checkout?",
    ], nb_repo, kernel="direng")
    prose, python, shell, callers = nb.cells
    assert "shop/shipping.py:9-11" in text_of(prose)
    assert "42" in text_of(python)
    assert "shell-ok" in text_of(shell)
    assert "checkout_with_shipping" in text_of(callers)


def test_direng_kernel_completion_and_inspection(nb_repo):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="direng", cwd=str(nb_repo),
                              env={k: v for k, v in os.environ.items() if not k.startswith("DIRENG_SERVER")})
    try:
        reply = kc.complete("please explain @Cart.to", cursor_pos=len("please explain @Cart.to"), reply=True,
                            timeout=120)["content"]
        assert "Cart.total" in reply["matches"]
        assert reply["cursor_start"] == len("please explain @")
        code = "what does @charge_card do"
        reply = kc.inspect(code, cursor_pos=code.index("charge") + 3, reply=True, timeout=60)["content"]
        assert reply["found"] and "shop/payment.py:10-14" in reply["data"]["text/plain"]
        assert "checkout" in reply["data"]["text/plain"]  # callers
        def is_complete(code):
            msg_id = kc.is_complete(code)
            while True:
                msg = kc.get_shell_msg(timeout=30)
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]["status"]

        assert is_complete("how does checkout work") == "incomplete"
        assert is_complete("how does checkout work?") == "complete"
        assert is_complete("%%python\nfor i in range(3):") == "incomplete"
        assert is_complete("%%python\nx = 1\n") == "complete"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_delegate_magic_runs_a_lane_and_links_the_passport(nb_repo):
    nb = run_notebook([
        "%load_ext direng_kernel",
        '%direng delegate "document the public API of the shop package" --yes',
        "runs = %direng runs\nruns[['lane', 'state']].to_dict('records')",
    ], nb_repo, timeout=300)
    delegate, runs = nb.cells[1], nb.cells[2]
    text = text_of(delegate)
    assert "lane **narrative**" in text and "Estimate: p50" in text
    assert "succeeded" in text and "passport" in text and "output notebook" in text
    assert "running on" in text  # live status lines streamed while it ran
    assert "'lane': 'narrative', 'state': 'succeeded'" in text_of(runs)


def make_hub_repo(root, workers: int = 180):
    """A repository whose `dispatch` calls `workers` functions of ~35 lines each: its graph is
    capped at 150 nodes, each with a long excerpt."""
    from conftest import git

    (root / "big").mkdir(parents=True)
    (root / "big" / "__init__.py").write_text("")
    for m in range(6):
        lines = [f'"""Workers, part {m}."""', ""]
        for i in range(m, workers, 6):
            lines += [f"def worker_{i:03d}(payload, *, retries=3):", f'    """Handle payloads of kind {i}."""']
            lines += [f"    value_{j} = payload.get('k{j}', {j}) * retries  # step {j} of worker {i}" for j in range(30)]
            lines += ["    return value_0", ""]
        (root / "big" / f"workers_{m}.py").write_text("\n".join(lines))
    hub = ['"""The hub calling every worker."""', ""]
    hub += [f"from big.workers_{i % 6} import worker_{i:03d}" for i in range(workers)]
    hub += ["", "", "def dispatch(payload):", '    """Run every worker."""', "    out = []"]
    hub += [f"    out.append(worker_{i:03d}(payload))" for i in range(workers)]
    hub += ["    return out", ""]
    (root / "big" / "hub.py").write_text("\n".join(hub))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "hub")
    return root


@pytest.mark.parametrize("kernel", ["python3", "direng"])
def test_a_150_node_graph_output_is_small_in_the_saved_notebook(tmp_path, kernel):
    """`%direng graph` over 150 nodes, executed in a real kernel and saved: one output under 100 KB
    (the pyvis page of this graph was ~1.3 MB), holding the JSON, the SVG and the text."""
    from direng_kernel.workbench import Workbench

    root = make_hub_repo(tmp_path / "hub")
    Workbench(root).index()
    cells = ["%load_ext direng_kernel"] if kernel == "python3" else []
    nb = run_notebook(cells + ["%direng graph dispatch"], root, kernel=kernel)
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    (out,) = [o for o in saved.cells[-1].outputs if o.output_type == "display_data"]
    assert set(out.data) == {"application/vnd.direng.graph+json", "image/svg+xml", "text/plain"}
    data = out.data["application/vnd.direng.graph+json"]
    assert set(data) == {"center", "nodes", "edges", "truncated", "code"}
    assert data["center"] == "big/hub.py::dispatch" and data["truncated"] is True  # the query stopped at 150
    assert len(data["nodes"]) >= 100 and "big/hub.py::dispatch" in data["code"]
    assert out.data["image/svg+xml"].startswith("<svg xmlns='http://www.w3.org/2000/svg'")
    assert "<script" not in path.read_text(encoding="utf-8")
    empty = nbformat.v4.new_notebook(cells=saved.cells[:-1] + [nbformat.v4.new_code_cell(saved.cells[-1].source)])
    empty.metadata = saved.metadata
    output_bytes = path.stat().st_size - len(nbformat.writes(empty).encode())
    assert 0 < output_bytes <= 100_000, output_bytes
    assert path.stat().st_size < 110_000
