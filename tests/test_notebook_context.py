"""The live notebook as context: a real kernel describes its namespace (never values) to DirEng.

Notebooks run for real through nbclient (the python3 kernel with the magics); the REST path is
checked against a real server. A planted GitHub token must never leave the kernel, and a
DataFrame's columns must reach the answer.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from direng_kernel.context import MAX_CHARS, MAX_NAMES, summarize
from direng_kernel.models import NotebookContext

SECRET = "ghp_" + "Zx8fK2mQ9vR4tL7wY1nB5cD3hJ6gS0aP2eU4"  # the shape of a GitHub token, planted


def test_summaries_carry_shapes_and_columns_never_values():
    frame = pd.DataFrame({"qty": [1, 2], "name": ["apple", SECRET]})
    s = summarize("df", frame)
    assert (s.type, s.shape, s.columns) == ("DataFrame", [2, 2], {"qty": "int64", "name": str(frame["name"].dtype)})
    a = summarize("arr", np.zeros((3, 4), dtype=np.float32))
    assert (a.type, a.shape, a.dtype) == ("ndarray", [3, 4], "float32")
    t = summarize("token", SECRET)
    assert (t.type, t.length) == ("str", len(SECRET))
    for value in (s, a, t):
        assert SECRET not in value.model_dump_json() and "apple" not in value.model_dump_json()
    assert summarize("_hidden", 1) is None and summarize("In", []) is None
    assert summarize("np", np).type == "module"


def test_the_context_is_capped():
    class Shell:
        user_ns = {f"v{i}": pd.DataFrame({f"c{j}": [1] for j in range(80)}) for i in range(MAX_NAMES + 20)}
        execution_count = 7

    from direng_kernel.context import notebook_context

    ctx = notebook_context(Shell())
    assert ctx.truncated and len(ctx.namespace) <= MAX_NAMES
    assert len(ctx.model_dump_json()) <= MAX_CHARS


@pytest.mark.slow
def test_a_real_kernel_sends_its_namespace_and_never_a_secret(tmp_path):
    from test_notebooks import run_notebook, text_of

    from conftest import make_repo
    from direng_kernel.workbench import Workbench

    repo = make_repo(tmp_path / "repo")
    Workbench(repo).index()
    nb = run_notebook([
        "%load_ext direng_kernel",
        f"import pandas as pd\ndf = pd.DataFrame({{'qty': [1, 2], 'label': ['a', 'b']}})\ntoken = '{SECRET}'",
        f"other = '{SECRET}'\n%direng context",  # the active cell itself holds the secret
        "%direng ask why does df['price'] raise a KeyError?",
        "%direng context off",
        "%direng ask why does df['price'] raise a KeyError?",
        "%direng context",
    ], repo)
    shown = text_of(nb.cells[2])
    payload = json.loads(re.search(r"```json\n(.*?)\n```", shown, re.S).group(1))
    ctx = NotebookContext.model_validate(payload)
    assert list(ctx.variable("df").columns) == ["qty", "label"] and ctx.variable("df").columns["qty"] == "int64"
    assert ctx.variable("token").type == "str" and ctx.variable("token").length == len(SECRET)
    assert "%direng context" in ctx.cell_source
    assert all(SECRET not in text_of(cell) for cell in nb.cells), "the planted token left the kernel"
    answer = text_of(nb.cells[3])
    assert "`df` has no column `price`" in answer and "`qty`" in answer
    assert "no column" not in text_of(nb.cells[5])  # context off: the answer knows nothing of df
    assert "**off**" in text_of(nb.cells[6])


@pytest.mark.slow
def test_the_context_crosses_the_rest_api(tmp_path):
    from test_server import running_server

    from direng_kernel.client import HttpClient

    context = NotebookContext(path="clean.ipynb", cell=4, error="KeyError: 'price'",
                              namespace=[{"name": "df", "type": "DataFrame", "shape": [2, 2],
                                          "columns": {"qty": "int64", "label": "object"}}])
    with running_server(tmp_path) as srv:
        http = HttpClient(srv.url + "/direng/api", srv.token)
        answer = http.chat("why does df['price'] fail?", "ctx", context)
        assert "`df` has no column `price` (cell [4] of `clean.ipynb`)" in answer.markdown
        plain = http.chat("why does df['price'] fail?", "ctx2")
        assert "no column" not in plain.markdown
        status, reply = srv.post("chat", {"message": "hi", "context": {"namespace": "not a list"}})
        assert status == 400 and reply["code"] == "bad_request" and "context" in reply["message"]
