"""Notebooks are code too: `.ipynb` files parsed, indexed, resolved and cited by cell.

Notebooks are written with nbformat in the tests (v4 and v3), next to a small package `mypkg`
whose `load_table` a notebook cell imports and calls; the CLI checks run the real `direng`
entry point in subprocesses.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat import v3, v4
from pydantic import TypeAdapter

from conftest import run_cli
from direng_kernel.index.notebooks import (NotebookError, cell_source, mask_ipython, parse_notebook,
                                           read_notebook)
from direng_kernel.models import Hit
from direng_kernel.records import jsonable
from direng_kernel.workbench import Workbench

AWS_KEY = "AKIAQWERTYUIOPASDFGH"  # letter-only: a key id, not a word the redactor learns from elsewhere
EMAIL = "maria.lopez@northwind-traders.de"
PYTHON = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}

IO_PY = '''"""Reading tables."""


def load_table(name: str) -> list:
    """Load a table of sales records by name."""
    return [name]
'''

CELLS = [  # (kind, source) of notebooks/clean.ipynb
    ("markdown", "# Cleaning the sales data\n\nWe load the raw table and normalise it."),
    ("code", "%matplotlib inline\nfrom mypkg.io import load_table\nimport mypkg.io"),
    ("code", 'def normalize_frame(frame):\n    """Drop the empty rows of a frame."""\n'
             '    return [r for r in frame if r]'),
    ("markdown", "## Run it"),
    ("code", "!ls data\nraw = load_table('sales')\n%time clean = normalize_frame(raw)\nmypkg.io.load_table('x')\nraw?"),
    ("code", "%%bash\necho not python\nls -la"),
]


def write_nb(path: Path, cells, metadata=PYTHON, outputs=None) -> Path:
    nb = v4.new_notebook(metadata=dict(metadata))
    for i, (kind, source) in enumerate(cells):
        cell = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        if kind == "code" and outputs:
            cell.outputs = outputs(i)
        nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def make_project(root: Path) -> Path:
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "io.py").write_text(IO_PY)
    write_nb(root / "notebooks" / "clean.ipynb", CELLS)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project indexed once (read-only use)."""
    root = make_project(tmp_path_factory.mktemp("nbproject") / "repo")
    wb = Workbench(root)
    report = wb.index()
    yield wb, report
    wb.close()


def nb_symbols(wb: Workbench, path: str) -> dict[str, tuple]:
    """qualname → (kind, cell, start, end, parent) of a notebook's symbols in the store."""
    return {r[2]: (r[4], r[10], r[5], r[6], r[9]) for r in wb.store.symbols_rows("WHERE path=?", (path,), cell=True)}


# ---------------------------------------------------------------- masking


def test_masking_keeps_every_line_and_only_touches_statement_starts():
    source = "\n".join([
        "%matplotlib inline",            # 1 line magic
        "files = !ls -la",               # 2 shell assignment keeps its binding
        "x = (1",                        # 3
        "     % 2)",                     # 4 a modulo inside brackets: Python, untouched
        "s = '''",                       # 5
        "%d items",                      # 6 inside a string: untouched
        "'''",                           # 7
        "for f in files:",               # 8
        "    %time process(f)",          # 9 keeps the statement, at the block's indentation
        "    !echo {f} \\",              # 10 shell with a continuation
        "      continued",               # 11
        "frame.head?",                   # 12 help
        "??np.sum",                      # 13 help
        "%timeit -n 10 -r 3 normalize(x)",  # 14
        "y = 5 % 3",                     # 15
    ])
    masked, language = mask_ipython(source)
    assert language is None
    lines = masked.split("\n")
    assert len(lines) == len(source.split("\n"))
    assert lines == ["pass", "files = None", "x = (1", "     % 2)", "s = '''", "%d items", "'''",
                     "for f in files:", "    process(f)", "    pass", "", "pass", "pass", "normalize(x)",
                     "y = 5 % 3"]
    from direng_kernel.index.parse import parse_source

    parsed = parse_source("nb", masked.encode(), "python")
    assert not parsed.has_errors
    calls = [(r.name, r.line) for r in parsed.references if r.kind.value == "call"]
    assert calls == [("process", 9), ("normalize", 14)]  # the true line numbers of the cell


def test_cell_magics():
    assert mask_ipython("%%bash\necho hi\nls") == ("\n\n", "bash")
    assert mask_ipython("\n%%html\n<b>x</b>") == ("\n\n", "html")
    assert mask_ipython("%%sql\nSELECT 1") == ("\n", "sql")
    assert mask_ipython("%%time\nx = f(1)\n") == ("\nx = f(1)\n", None)  # a Python cell magic


# ---------------------------------------------------------------- reading and parsing


def test_v4_cells_symbols_and_references_are_per_cell():
    nb = read_notebook("notebooks/clean.ipynb", nbformat.writes(_nb(CELLS)))
    assert (nb.label, nb.language) == ("python", "python")
    assert [(c.index, c.kind) for c in nb.cells] == [(0, "markdown"), (1, "code"), (2, "code"), (3, "markdown"),
                                                    (4, "code"), (5, "code")]
    parsed, plans = parse_notebook(nb)
    table = [(s.qualname, s.kind.value, s.cell, s.start_line, s.end_line, s.parent) for s in parsed.symbols]
    assert table == [
        ("cell[1]", "cell", 1, 1, 3, None),
        ("cell[2]", "cell", 2, 1, 3, None),
        ("normalize_frame", "function", 2, 1, 3, "cell[2]"),  # qualified by the notebook, contained by its cell
        ("cell[4]", "cell", 4, 1, 5, None),
    ]
    assert [(p.grammar, p.label) for p in plans] == [
        (None, "markdown"), ("python", "python"), ("python", "python"), (None, "markdown"), ("python", "python"),
        (None, "bash")]  # the %%bash cell is text
    refs = [(r.kind.value, r.name, r.scope, r.line) for r in parsed.references]
    assert ("import", "load_table", "cell[1]", 2) in refs and ("import", "mypkg.io", "cell[1]", 3) in refs
    assert [r for r in refs if r[0] == "call" and r[2] == "cell[4]"] == [
        ("call", "load_table", "cell[4]", 2), ("call", "normalize_frame", "cell[4]", 3),
        ("call", "mypkg.io.load_table", "cell[4]", 4)]
    assert plans[2].section == "Cleaning the sales data" and plans[3].title == plans[4].section == "Run it"


def _nb(cells, metadata=PYTHON):
    nb = v4.new_notebook()
    nb.metadata = dict(metadata)  # unvalidated: odd metadata on purpose
    nb.cells = [v4.new_markdown_cell(s) if k == "markdown" else v4.new_code_cell(s) for k, s in cells]
    return nb


def test_nbformat_3_notebooks_are_read_and_indexed(tmp_path):
    old = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_heading_cell("Legacy analysis", level=1),
        v3.new_code_cell(input="from mypkg.io import load_table\n\ndef summarize(rows):\n    return len(rows)",
                         language="python"),
        v3.new_code_cell(input="summarize(load_table('legacy'))", language="python"),
    ])])
    root = make_project(tmp_path / "repo")
    (root / "notebooks" / "legacy.ipynb").write_text(v3.nbjson.writes(old))
    nb = read_notebook("notebooks/legacy.ipynb", (root / "notebooks" / "legacy.ipynb").read_bytes())
    assert nb.label == "python" and [(c.kind, c.source[:8]) for c in nb.cells] == [
        ("markdown", "# Legacy"), ("code", "from myp"), ("code", "summariz")]
    wb = Workbench(root)
    try:
        wb.index()
        assert nb_symbols(wb, "notebooks/legacy.ipynb")["summarize"] == ("function", 1, 3, 4, "cell[1]")
        callers = {(n.id, n.cell) for n in wb.graph("mypkg/io.py::load_table", direction="callers").nodes}
        assert ("notebooks/legacy.ipynb::cell[2]", 2) in callers
    finally:
        wb.close()


def test_languages_from_metadata_grammarless_and_unknown_kernels_are_text(tmp_path):
    r_meta = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}, "language_info": {"name": "R"}}
    cases = {
        "r.ipynb": (r_meta, "r"),
        "julia.ipynb": ({"language_info": {"name": "julia"}}, "julia"),
        "mystery.ipynb": ({"kernelspec": {"name": "mystery-kernel", "display_name": "?"}}, "unknown"),
        "bare.ipynb": ({}, "python"),  # no language metadata at all: Python
        "odd.ipynb": ({"kernelspec": "not a dict", "language_info": 7}, "python"),  # odd metadata: as if absent
    }
    for name, (meta, label) in cases.items():
        # json.dumps, not nbformat.writes: nbformat refuses to write the odd metadata
        nb = read_notebook(name, json.dumps(_nb([("code", "tidy_sales <- function(df) df")], meta)))
        parsed, plans = parse_notebook(nb)
        assert nb.label == label, name
        assert (plans[0].grammar is None) == (label != "python"), name
        assert parsed.symbols == [] or label == "python"
    # A cell's own language (VS Code's metadata) wins over the notebook's.
    polyglot = _nb([("code", "SELECT region, sum(total) FROM sales GROUP BY region")])
    polyglot.cells[0].metadata["vscode"] = {"languageId": "sql"}
    nb = read_notebook("p.ipynb", nbformat.writes(polyglot))
    assert nb.cells[0].label == "sql" and parse_notebook(nb)[1][0].grammar is None

    root = tmp_path / "repo"
    write_nb(root / "analysis.ipynb", [("markdown", "# Regional totals"),
                                       ("code", "regional_totals <- aggregate(total ~ region, sales, sum)")], r_meta)
    wb = Workbench(root)
    try:
        wb.index()
        hit = next(h for h in wb.search("regional totals aggregate", k=5) if h.path == "analysis.ipynb")
        assert hit.kind == "text" and hit.cell in (0, 1)
        assert wb.store.file_language("analysis.ipynb") == "r"
    finally:
        wb.close()


def test_direng_conversation_cells_are_not_indexed(tmp_path):
    """A question asked with `%direng` / `%%direng` must not become its own best answer."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "fusion.py").write_text(
        'def combine_rankings(rankings):\n    """Merge the rankings of several retrievers."""\n    return rankings\n')
    question = "how are rankings of several retrievers merged"
    write_nb(root / "tour.ipynb", [("code", f"%direng ask {question}"),
                                   ("code", f"%%direng\n{question}, and where?"),
                                   ("code", f"x = 1\n%direng ask {question}\ny = x + 1")])
    wb = Workbench(root)
    try:
        wb.index()
        texts = [t for (t,) in wb.store.db.execute("SELECT text FROM chunks WHERE path='tour.ipynb'")]
        assert texts and not any("rankings of several" in t or "%direng" in t for t in texts)
        assert any("y = x + 1" in t for t in texts)  # the code around a `%direng` line stays
        hits = wb.search(question, k=5)
        assert (hits[0].path, hits[0].symbol) == ("pkg/fusion.py", "combine_rankings")
        cell2 = nb_symbols(wb, "tour.ipynb")["cell[2]"]
        assert cell2[2:4] == (1, 3)  # line numbers stay true
    finally:
        wb.close()


def test_syntax_error_cell_is_indexed_as_far_as_tree_sitter_recovers(tmp_path):
    root = tmp_path / "repo"
    write_nb(root / "broken.ipynb", [("code", "def fine(rows):\n    return rows\n"),
                                     ("code", "def broken(:\n    return (\n\ndef after_the_break():\n    pass")])
    wb = Workbench(root)
    try:
        report = wb.index()
        assert report.added == 1 and report.syntax_errors == 1
        syms = nb_symbols(wb, "broken.ipynb")
        assert syms["fine"][:2] == ("function", 0) and syms["after_the_break"][:2] == ("function", 1)
    finally:
        wb.close()


# ---------------------------------------------------------------- graph


def test_cells_call_into_the_package_and_names_cross_cells(project):
    wb, report = project
    assert report.added == 3 and report.skipped == {}
    g = wb.code_graph()
    edges = {(u, v, d["kind"]) for u, v, d in g.g.edges(data=True)}
    cell4 = "notebooks/clean.ipynb::cell[4]"
    assert (cell4, "mypkg/io.py::load_table", "calls") in edges  # `load_table(...)` via `from mypkg.io import`
    assert (cell4, "notebooks/clean.ipynb::normalize_frame", "calls") in edges  # defined in an earlier cell
    assert ("notebooks/clean.ipynb::cell[1]", "mypkg/io.py::load_table", "imports") in edges
    assert ("notebooks/clean.ipynb::cell[2]", "notebooks/clean.ipynb::normalize_frame", "contains") in edges
    assert ("file:notebooks/clean.ipynb", "notebooks/clean.ipynb::cell[2]", "contains") in edges
    # `mypkg.io.load_table(...)` after `import mypkg.io` resolves too (line 4 of the cell)
    lines = sorted(d["line"] for u, v, d in g.g.edges(data=True) if u == cell4 and v == "mypkg/io.py::load_table")
    assert lines == [2, 4]

    callers = wb.graph("load_table", direction="callers")
    node = next(n for n in callers.nodes if n.id == cell4)
    assert (node.kind, node.name, node.path, node.cell, node.start_line, node.end_line) == (
        "cell", "cell[4]", "notebooks/clean.ipynb", 4, 1, 5)
    assert wb.graph("normalize_frame").nodes[0].cell == 2

    # The notebook node records which cells define and use what.
    cells = {c["cell"]: c for c in g.g.nodes["file:notebooks/clean.ipynb"]["cells"]}
    assert sorted(cells) == [1, 2, 4]
    assert cells[2]["defines"] == ["normalize_frame"] and cells[2]["uses"] == []
    assert cells[4]["uses"] == ["mypkg/io.py::load_table", "notebooks/clean.ipynb::normalize_frame"]


def test_top_level_names_resolve_in_cell_order(tmp_path):
    root = make_project(tmp_path / "repo")
    write_nb(root / "order.ipynb", [
        ("code", "from mypkg.io import load_table"),
        ("code", "first = load_table('a')"),            # the import: nothing else binds it yet
        ("code", "def load_table(name):\n    return 'local ' + name"),
        ("code", "second = load_table('b')"),           # the local redefinition, now in force
        ("code", "def later():\n    return load_table('c')"),  # a body sees the final namespace
        ("code", "early = helper()"),                   # used before its definition: the only binding
        ("code", "def helper():\n    return 1"),
    ])
    wb = Workbench(root)
    try:
        wb.index()
        calls = {(u, v) for u, v, d in wb.code_graph().g.edges(data=True) if d["kind"] == "calls"}
        assert ("order.ipynb::cell[1]", "mypkg/io.py::load_table") in calls
        assert ("order.ipynb::cell[3]", "order.ipynb::load_table") in calls
        assert ("order.ipynb::later", "order.ipynb::load_table") in calls
        assert ("order.ipynb::cell[5]", "order.ipynb::helper") in calls
        assert ("order.ipynb::cell[3]", "mypkg/io.py::load_table") not in calls
    finally:
        wb.close()


REDEFINED = [  # (kind, source) of redefined.ipynb: `clean` and `Frame` defined in cells 0/2 and again in 3
    ("code", "def clean(frame):\n    return frame"),
    ("code", "first = clean([1])"),                                        # cell 0's clean
    ("code", "class Frame:\n    def tidy(self):\n        return self.strip()\n"
             "    def strip(self):\n        return 0"),
    ("code", "def clean(frame):\n    return [r for r in frame if r]\n\nclass Frame:\n    def tidy(self):\n"
             "        return 2"),
    ("code", "second = clean([2])"),                                       # cell 3's clean
]


def test_a_name_defined_in_two_cells_keeps_both_and_each_use_calls_the_one_in_force(tmp_path):
    root = make_project(tmp_path / "repo")
    nb = write_nb(root / "redefined.ipynb", REDEFINED)
    wb = Workbench(root)
    try:
        wb.index()
        syms = nb_symbols(wb, "redefined.ipynb")
        # The last definition keeps the plain name; the earlier one is qualified by its cell.
        assert syms["clean"][:2] == ("function", 3) and syms["cell[0].clean"][:2] == ("function", 0)
        assert syms["Frame.tidy"][:2] == ("method", 3) and syms["cell[2].Frame.tidy"][:2] == ("method", 2)
        assert syms["cell[2].Frame.strip"][4] == "cell[2].Frame" and syms["cell[2].Frame"][4] == "cell[2]"
        g = wb.code_graph().g
        calls = {(u, v) for u, v, d in g.edges(data=True) if d["kind"] == "calls"}
        assert ("redefined.ipynb::cell[1]", "redefined.ipynb::cell[0].clean") in calls
        assert ("redefined.ipynb::cell[4]", "redefined.ipynb::clean") in calls
        assert ("redefined.ipynb::cell[1]", "redefined.ipynb::clean") not in calls
        assert ("redefined.ipynb::cell[2].Frame.tidy", "redefined.ipynb::cell[2].Frame.strip") in calls  # self.
        cells = {c["cell"]: c for c in g.nodes["file:redefined.ipynb"]["cells"]}
        assert cells[0]["defines"] == ["clean"] and cells[3]["defines"] == ["Frame", "Frame.tidy", "clean"]

        # The plain name finds every definition: graph, "what calls", the CLI.
        assert {n.cell for n in wb.graph("redefined.ipynb::cell[0].clean", direction="callers").nodes} == {0, 1}
        assert wb.graph("clean", direction="callers").center == "redefined.ipynb::clean"
        assert sorted(wb.code_graph().find("Frame.tidy")) == ["redefined.ipynb::Frame.tidy",
                                                              "redefined.ipynb::cell[2].Frame.tidy"]
        hits = wb.search("what calls clean?", k=5)
        assert {(h.symbol, h.cell) for h in hits} == {("cell[1]", 1), ("cell[4]", 4)}
        proc = run_cli("graph", "cell[0].clean", "--callers", "--root", str(root))
        assert proc.returncode == 0, proc.stderr
        assert "<- [calls] cell[1] redefined.ipynb:cell 1:1" in proc.stdout

        # Delete the redefinition: the first definition takes the plain name, and cell 4 calls it.
        cells_now = REDEFINED[:3] + [("code", "pass")] + REDEFINED[4:]
        write_nb(nb, cells_now)
        wb.index()
        syms = nb_symbols(wb, "redefined.ipynb")
        assert "cell[0].clean" not in syms and syms["clean"][:2] == ("function", 0)
        calls = {(u, v) for u, v, d in wb.code_graph().g.edges(data=True) if d["kind"] == "calls"}
        assert {("redefined.ipynb::cell[1]", "redefined.ipynb::clean"),
                ("redefined.ipynb::cell[4]", "redefined.ipynb::clean")} <= calls
    finally:
        wb.close()


def test_a_package_attribute_resolves_through_its_reexports(tmp_path):
    """`import pkg as p; p.f()` where `pkg/__init__.py` re-exports `f` (`from .mod import *`,
    `from .mod import f`), `p.sub.g()` for a submodule it imports (`from . import sub`), star
    imports that chain (and a pair that import each other), and the notebook's own folder first."""
    root = tmp_path / "repo"
    (root / "ctl").mkdir(parents=True)
    (root / "ctl" / "__init__.py").write_text("from .statefbk import *\nfrom .timeresp import step_response\n"
                                              "from . import phaseplot\n")
    (root / "ctl" / "statefbk.py").write_text("def lqr(sys, Q, R):\n    return sys\n")
    (root / "ctl" / "timeresp.py").write_text("def step_response(sys):\n    return sys\n")
    (root / "ctl" / "phaseplot.py").write_text("def streamlines(sys):\n    return sys\n")
    (root / "ctl" / "matlab").mkdir()  # star imports chain: `from ctl.matlab import *` offers lqr
    (root / "ctl" / "matlab" / "__init__.py").write_text("from ..statefbk import *\n")
    (root / "ctl" / "cycle_a.py").write_text("from .cycle_b import *\n")  # a ↔ b must not loop
    (root / "ctl" / "cycle_b.py").write_text("from .cycle_a import *\ndef b_only():\n    return 1\n")
    for folder in ("nbs", "other"):  # two `helpers` modules: the notebook's own folder wins
        (root / folder).mkdir()
        (root / folder / "helpers.py").write_text("def smooth(x):\n    return x\n")
    write_nb(root / "nbs" / "design.ipynb", [
        ("code", "import ctl as ct\nfrom helpers import smooth"),
        ("code", "K = ct.lqr(None, 1, 1)\nt = ct.step_response(K)\nct.missing()\nct.phaseplot.streamlines(K)\n"
                 "smooth(t)"),
        ("code", "from ctl.matlab import *\nfrom ctl.cycle_a import *\nlqr(None, 2, 2)\nb_only()")])
    wb = Workbench(root)
    try:
        wb.index()
        g = wb.code_graph()
        cells = {c["cell"]: c for c in g.g.nodes["file:nbs/design.ipynb"]["cells"]}
        # `K = ct.lqr(…)` is a call from the constant K, which the cell contains: the cell uses lqr
        assert cells[1]["uses"] == ["ctl/phaseplot.py::streamlines", "ctl/statefbk.py::lqr",
                                    "ctl/timeresp.py::step_response", "nbs/helpers.py::smooth",
                                    "unresolved:ct.missing"]
        assert cells[2]["uses"] == ["ctl/cycle_b.py::b_only", "ctl/statefbk.py::lqr", "file:ctl/cycle_a.py",
                                    "file:ctl/matlab/__init__.py"]
        # and the star import is an import of the module's file
        assert ("file:ctl/__init__.py", "file:ctl/statefbk.py") in {(u, v) for u, v, d in g.g.edges(data=True)
                                                                   if d["kind"] == "imports"}
    finally:
        wb.close()


def test_cli_graph_callers_lists_the_cell(project):
    wb, _ = project
    proc = run_cli("graph", "load_table", "--callers", "--root", str(wb.root))
    assert proc.returncode == 0, proc.stderr
    assert "load_table (function) mypkg/io.py:4-6" in proc.stdout
    assert "<- [calls] cell[4] notebooks/clean.ipynb:cell 4:1" in proc.stdout
    data = json.loads(run_cli("graph", "load_table", "--callers", "--json", "--root", str(wb.root)).stdout)
    cell = next(n for n in data["nodes"] if n["id"] == "notebooks/clean.ipynb::cell[4]")
    assert cell["cell"] == 4 and cell["kind"] == "cell"
    assert next(n for n in data["nodes"] if n["id"] == data["center"])["cell"] is None


def test_what_calls_lists_notebook_cells(project):
    wb, _ = project
    hits = wb.search("what calls load_table?", k=5)
    assert [(h.path, h.symbol, h.cell) for h in hits] == [("notebooks/clean.ipynb", "cell[4]", 4)]
    assert hits[0].citation == "notebooks/clean.ipynb:cell 4:1-5" and hits[0].sources == ["graph"]


# ---------------------------------------------------------------- citations


def test_search_json_cites_cells(project):
    wb, _ = project
    proc = run_cli("search", "drop the empty rows of a frame", "--json", "-k", "5", "--root", str(wb.root))
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    top = hits[0]
    assert (top["path"], top["symbol"], top["kind"], top["cell"], top["start_line"], top["end_line"]) == (
        "notebooks/clean.ipynb", "normalize_frame", "function", 2, 1, 3)
    assert TypeAdapter(Hit).validate_python(top).citation == "notebooks/clean.ipynb:cell 2:1-3"
    assert all("cell" in h for h in hits)
    assert all(h["cell"] is None for h in hits if not h["path"].endswith(".ipynb"))
    table = run_cli("search", "drop the empty rows of a frame", "-k", "3", "--root", str(wb.root))
    assert "notebooks/clean.ipynb:cell 2:1-3" in table.stdout
    # Markdown cells are text chunks titled by their headings; the %%bash cell is text too.
    md = wb.search("cleaning the sales data", k=10, mode="bm25")
    assert any(h.kind == "text" and h.cell == 0 and h.path.endswith(".ipynb") for h in md)
    chunks = [c for c in wb.chunks() if c.path == "notebooks/clean.ipynb"]
    assert {c.cell for c in chunks} == {0, 1, 2, 3, 4, 5}
    text = {c.cell: c.text for c in chunks if c.kind == "text"}
    assert text[0].startswith("notebooks/clean.ipynb cell 0: Cleaning the sales data\n")
    assert text[5].startswith("notebooks/clean.ipynb cell 5 (bash): Run it\n")
    assert not any('"cell_type"' in c.text or "outputs" in c.text for c in chunks)


def test_answers_quote_the_cell_not_the_json(project):
    wb, _ = project
    from direng_kernel.direng.compose import Composer

    composer = Composer(wb)
    code = composer.excerpt("notebooks/clean.ipynb", 1, 3, cell=2)
    assert code.splitlines()[0] == "def normalize_frame(frame):"
    assert composer.excerpt("notebooks/clean.ipynb", 1, 3) == ""  # no cell: never raw JSON lines
    hits = wb.search("drop the empty rows of a frame", k=3)
    answer = composer.answer_hits("how are empty rows dropped?", hits, detail=1)
    assert "[`notebooks/clean.ipynb:cell 2:1-3`](notebooks/clean.ipynb)" in answer
    assert "```python\ndef normalize_frame(frame):" in answer and '"source"' not in answer
    assert "`cell[4]` (notebooks/clean.ipynb:cell 4:1)" in answer  # its caller, by cell


# ---------------------------------------------------------------- bad input, size, freshness


def test_malformed_notebooks_are_skipped_counted_and_reported(tmp_path, caplog):
    root = make_project(tmp_path / "repo")
    bad = root / "bad"
    bad.mkdir()
    (bad / "not_json.ipynb").write_text('{"cells": [ this is not json')
    (bad / "no_cells.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}))
    (bad / "wrong_types.ipynb").write_text(json.dumps(
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": 42}]}))
    (bad / "list.ipynb").write_text("[1, 2, 3]")
    (bad / "cell_not_object.ipynb").write_text(json.dumps(
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ["print(1)"]}))
    for p in sorted(bad.iterdir()):
        with pytest.raises(NotebookError):
            read_notebook(p.name, p.read_bytes())
    wb = Workbench(root)
    try:
        with caplog.at_level(logging.WARNING, logger="direng_kernel.index.indexer"):
            report = wb.index()
        assert report.skipped == {"malformed notebook": 5}
        assert report.added == 3  # the package and the good notebook
        warnings = [r.getMessage() for r in caplog.records if "skipped notebook" in r.getMessage()]
        assert len(warnings) == 5 and all("\n" not in w for w in warnings)
        assert any("bad/not_json.ipynb: not JSON" in w for w in warnings)
        assert wb.status().skipped == {"malformed notebook": 5}
    finally:
        wb.close()
    status = json.loads(run_cli("status", "--json", "--root", str(root)).stdout)
    assert status["skipped"] == {"malformed notebook": 5}
    proc = run_cli("index", str(root))
    assert proc.returncode == 0 and "skipped: 5 malformed notebook" in proc.stderr


def test_huge_output_notebook_is_indexed_by_its_sources(tmp_path):
    root = tmp_path / "repo"
    blob = "0123456789abcdef" * (50 * 1024 * 1024 // 16)  # 50 MB of output

    def outputs(i):
        return [v4.new_output("stream", name="stdout", text=blob)] if i == 0 else []

    path = write_nb(root / "plots.ipynb", [("code", "def render_sales_chart(rows):\n    return len(rows)")],
                    outputs=outputs)
    assert path.stat().st_size > 50_000_000
    wb = Workbench(root)
    try:
        report = wb.index()
        assert report.added == 1 and report.skipped == {}
        hit = wb.search("render sales chart", k=3)[0]
        assert (hit.path, hit.symbol, hit.cell) == ("plots.ipynb", "render_sales_chart", 0)
        with sqlite3.connect(wb.settings.store / "index.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM chunks WHERE text LIKE '%0123456789abcdef%'").fetchone()[0] == 0
    finally:
        wb.close()
    # Sources over the file-size cap are still too large.
    small = {**os.environ, "DIRENG_MAX_FILE_BYTES": "30"}
    proc = subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", "index", str(root), "--json",
                           "--store", str(tmp_path / "store2")], capture_output=True, text=True, env=small, timeout=120)
    assert json.loads(proc.stdout)["skipped"] == {"too large": 1}


def test_outputs_only_change_reparses_nothing(tmp_path):
    root = make_project(tmp_path / "repo")
    path = root / "notebooks" / "clean.ipynb"
    wb = Workbench(root)
    try:
        wb.index()
        nb = nbformat.read(str(path), as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                cell.execution_count = 40 + i
                cell.outputs = [v4.new_output("stream", name="stdout", text=f"run {i}\n" * 100)]
        nb.metadata["widgets"] = {"state": {}}
        nbformat.write(nb, str(path))
        os.utime(path, (time.time() + 5, time.time() + 5))
        report = wb.index()
        assert (report.added, report.modified, report.deleted, report.unchanged) == (0, 0, 0, 3)
        assert report.changed_paths == [] and report.chunks_embedded == 0
        # A source edit is a change.
        nb.cells[2].source = nb.cells[2].source.replace("empty rows", "blank rows")
        nbformat.write(nb, str(path))
        os.utime(path, (time.time() + 10, time.time() + 10))
        report = wb.index()
        assert report.modified == 1 and report.changed_paths == ["notebooks/clean.ipynb"]
        assert "blank rows" in wb.store.symbol_docstring("notebooks/clean.ipynb", "normalize_frame")
    finally:
        wb.close()
    proc = run_cli("index", str(root), "--json")
    assert json.loads(proc.stdout)["unchanged"] == 3


def test_checkpoints_are_ignored(tmp_path):
    root = make_project(tmp_path / "repo")
    write_nb(root / "notebooks" / ".ipynb_checkpoints" / "clean-checkpoint.ipynb", CELLS)
    wb = Workbench(root)
    try:
        wb.index()
        assert not any(".ipynb_checkpoints" in r[0] for r in wb.store.file_rows())
    finally:
        wb.close()


# ---------------------------------------------------------------- boundaries


def _store_hits(store: Path, value: bytes) -> list[str]:
    return [str(p) for p in store.rglob("*") if p.is_file() and value in p.read_bytes()]


def test_planted_secret_in_a_cell_never_reaches_the_store(tmp_path):
    root = tmp_path / "repo"
    write_nb(root / "deploy.ipynb", [
        ("markdown", f"# Deployment\nAsk the owner, {EMAIL}, for access."),
        ("code", f'import boto3\nKEY_ID = "{AWS_KEY}"\n\ndef client():\n'
                 '    return boto3.client("s3", aws_access_key_id=KEY_ID)'),
        ("code", "s3 = client()"),
    ])
    wb = Workbench(root)
    try:
        wb.index()
        assert _store_hits(wb.settings.store, AWS_KEY.encode()) == []
        assert _store_hits(wb.settings.store, EMAIL.encode()) == []  # PII in a Markdown cell too
        assert _store_hits(wb.settings.store, b"[redacted:")  # indexed, the key replaced
        syms = nb_symbols(wb, "deploy.ipynb")
        assert syms["client"][1:4] == (1, 4, 5)  # the scrub kept the cell's lines
        assert AWS_KEY not in json.dumps(jsonable(wb.search("deployment key client", k=10)))
    finally:
        wb.close()
    assert _store_hits(wb.settings.store, AWS_KEY.encode()) == []


# ---------------------------------------------------------------- store and laziness


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE files (path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
  language TEXT, lines INTEGER, has_errors INTEGER DEFAULT 0);
CREATE TABLE symbols (id TEXT PRIMARY KEY, path TEXT NOT NULL, qualname TEXT NOT NULL, name TEXT NOT NULL,
  kind TEXT, start_line INTEGER, end_line INTEGER, signature TEXT, docstring TEXT, parent TEXT);
CREATE TABLE refs (path TEXT NOT NULL, kind TEXT, name TEXT, line INTEGER, scope TEXT, module TEXT, alias TEXT);
CREATE TABLE edges (src TEXT NOT NULL, dst TEXT NOT NULL, kind TEXT NOT NULL, line INTEGER,
  resolved INTEGER NOT NULL, owner TEXT NOT NULL, dst_path TEXT, dst_name TEXT);
CREATE TABLE ranks (node TEXT PRIMARY KEY, rank REAL NOT NULL);
CREATE TABLE chunks (rid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, path TEXT NOT NULL, symbol TEXT, kind TEXT,
  start_line INTEGER, end_line INTEGER, text TEXT, language TEXT, dense INTEGER DEFAULT 0, svec BLOB);
CREATE VIRTUAL TABLE chunks_fts USING fts5(name, body, tokenize = 'porter unicode61');
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO symbols (id, path, qualname, name, kind, start_line, end_line)
  VALUES ('old.py::f', 'old.py', 'f', 'f', 'function', 1, 2);
"""


def test_a_schema_1_store_is_migrated_in_place(tmp_path):
    from direng_kernel.index.store import SCHEMA_VERSION, IndexStore

    store_dir = tmp_path / "store"
    store_dir.mkdir()
    with sqlite3.connect(store_dir / "index.sqlite3") as db:
        db.executescript(V1_SCHEMA)
    store = IndexStore(store_dir)
    try:
        assert SCHEMA_VERSION == 2 and store.get_meta("schema_version") == "2"
        assert store.symbols_rows(cell=True) == [("old.py::f", "old.py", "f", "f", "function", 1, 2, None, None, None,
                                                  None)]
        assert len(store.symbols_rows()[0]) == 10  # what lane notebooks unpack
    finally:
        store.close()
    root = make_project(tmp_path / "repo")
    wb = Workbench(root, store=store_dir)  # and it indexes notebooks from there on
    try:
        wb.index()
        assert nb_symbols(wb, "notebooks/clean.ipynb")["normalize_frame"][1] == 2
    finally:
        wb.close()


def test_nbformat_is_imported_only_when_a_notebook_is_read(tmp_path):
    root = make_project(tmp_path / "repo")
    code = ("import sys\nfrom direng_kernel.workbench import Workbench\n"
            "wb = Workbench(sys.argv[1]); wb.index(); first = 'nbformat' in sys.modules\n"
            "wb.index(); wb.search('load a table'); wb.graph('load_table')\n"
            "print(first, 'nbformat' in sys.modules)")
    run = lambda: subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,  # noqa: E731
                                 timeout=120, check=True).stdout.split()
    assert run() == ["True", "True"]  # the first pass read the notebook
    assert run() == ["False", "False"]  # nothing changed: never imported


def test_cell_source_reads_the_current_cell():
    text = nbformat.writes(_nb(CELLS))
    assert cell_source(text, 2).startswith("def normalize_frame(frame):")
    assert cell_source(text, 99) is None and cell_source("not json", 0) is None


def test_rest_api_hits_and_graph_nodes_carry_the_cell(tmp_path):
    from test_server import running_server

    root = make_project(tmp_path / "repo")
    with running_server(tmp_path, "--DirEngExtension.watch=False", root=root) as srv:
        status, data = srv.get("search", q="drop the empty rows of a frame", k="5")
        assert status == 200
        top = data["hits"][0]
        assert (top["path"], top["symbol"], top["cell"], top["start_line"], top["end_line"]) == (
            "notebooks/clean.ipynb", "normalize_frame", 2, 1, 3)
        assert all(h["cell"] is None for h in data["hits"] if h["path"].endswith(".py"))
        status, graph = srv.get("graph/load_table", direction="callers")
        assert status == 200
        assert {(n["id"], n["cell"]) for n in graph["nodes"]} >= {("notebooks/clean.ipynb::cell[4]", 4)}
