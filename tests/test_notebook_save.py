"""A notebook saved through the Jupyter server is searchable soon after, cited by its cell.

A real server with the refresh daemon; the notebook is saved through the contents API exactly
as JupyterLab saves it. How soon is a benchmark figure (`benchmarks/notebook_bench.py`),
not asserted here: the test only bounds it generously.
"""

from __future__ import annotations

import json
import time
import urllib.request

import nbformat
import pytest

pytestmark = pytest.mark.slow


def save_through_jupyter(srv, path: str, nb) -> None:
    body = json.dumps({"type": "notebook", "format": "json", "content": nbformat.from_dict(nb)}).encode()
    req = urllib.request.Request(f"{srv.url}/api/contents/{path}", data=body, method="PUT",
                                 headers={"Authorization": f"token {srv.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status in (200, 201)


def wait_for_hit(srv, query: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, data = srv.get("search", q=query, k=5)
        if status == 200:
            hits = [h for h in data["hits"] if h["path"] == "notes.ipynb" and (h["symbol"] or "").endswith(query)]
            if hits:
                return hits[0]
        time.sleep(0.2)
    pytest.fail(f"{query!r} never became searchable:\n{srv.log_tail()}")


def test_a_saved_notebook_is_reindexed_and_cited_by_cell(tmp_path):
    from test_server import running_server

    with running_server(tmp_path, "--DirEngExtension.watch=True") as srv:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# Widgets"),
                    nbformat.v4.new_code_cell("from shop.payment import charge_card\n\n"
                                              "def frobnicate_widgets(n):\n    return charge_card('4242', n)")]
        save_through_jupyter(srv, "notes.ipynb", nb)
        hit = wait_for_hit(srv, "frobnicate_widgets")
        assert hit["cell"] == 1 and hit["start_line"] == 3
        # an outputs-only save changes nothing in the index; a source change is picked up again
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="x" * 10_000)]
        nb.cells[1].source = nb.cells[1].source.replace("frobnicate_widgets", "polish_gadgets")
        save_through_jupyter(srv, "notes.ipynb", nb)
        hit = wait_for_hit(srv, "polish_gadgets")
        assert hit["cell"] == 1
        status, graph = srv.get("graph/charge_card", direction="callers")
        assert status == 200
        assert any(n["path"] == "notes.ipynb" for n in graph["nodes"]), graph["nodes"]
