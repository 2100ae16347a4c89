"""The graph output (direng_kernel.widgets.graph) over a real index of the sample repo: the JSON
for the JupyterLab extension, the static SVG, the text, the standalone page, and the size bound."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from conftest import make_repo
from direng_kernel.models import GraphEdge, GraphNode, GraphResult
from direng_kernel.widgets import (GRAPH_MIME, GraphView, graph_data, graph_widget, mime_bundle, render_html,
                                   render_svg, render_text)
from direng_kernel.widgets import graph as G

CENTER = "shop/payment.py::charge_card"
EVIL = '# <script>alert("x")</script> & see https://example.com/a?b=1'
SVG = "{http://www.w3.org/2000/svg}"
NODE_FIELDS = {"id", "name", "kind", "path", "start_line", "end_line", "signature", "x", "y"}
EDGE_FIELDS = {"source", "target", "kind", "resolved", "line"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(root, the depth-2 neighbourhood of charge_card, code snippets for its nodes)."""
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path_factory.mktemp("graphwidget") / "repo")
    wb = Workbench(root)
    wb.index()
    result = wb.graph("charge_card", direction="both", depth=2)
    wb.close()
    code = {}
    for n in result.nodes:
        if n.path and n.start_line and n.kind != "file":
            lines = (root / n.path).read_text(encoding="utf-8").splitlines()
            code[n.id] = "\n".join(lines[n.start_line - 1:n.end_line])
    code[CENTER] = code[CENTER] + "\n" + EVIL
    return root, result, code


@pytest.fixture(scope="module")
def bundle(sample):
    _, result, code = sample
    return mime_bundle(result, code)


def svg_tree(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def drawn_nodes(root: ET.Element) -> list[ET.Element]:
    """The node shapes: every element of the `n-<group>` groups."""
    return [el for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("n-") for el in g]


def labels(root: ET.Element) -> list[str]:
    lb = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "lb")
    return [t.text for t in lb]


def big_graph(n: int = 150, *, id_len: int = 45, code_lines: int = 40, extra: float = 0.4) -> GraphResult:
    """`n` nodes around a center, like a real depth-2 neighbourhood: a call from the center to
    each, plus `extra` × n references between the others (~1.4 edges a node, as in this
    repository's own graphs); 40-line code excerpts for every node (the engine's)."""
    pad = "x" * max(1, id_len - 32)
    nodes = [GraphNode(id=f"pkg/{pad}/hub.py::center_fn", kind="function", name="center_fn", path=f"pkg/{pad}/hub.py",
                       start_line=1, end_line=400, signature="def center_fn(payload, *, retries=3) -> list[str]",
                       importance=0.01)]
    for i in range(1, n):
        nodes.append(GraphNode(id=f"pkg/{pad}/mod{i % 9}.py::Worker{i}.handle", kind="method", name=f"Worker{i}.handle",
                               path=f"pkg/{pad}/mod{i % 9}.py", start_line=10 * i, end_line=10 * i + code_lines,
                               signature=f"def handle(self, payload: dict, retries: int = {i}) -> bool",
                               importance=(i + 1) / 10_000))
    c = nodes[0].id
    edges = [GraphEdge(source=c, target=nd.id, kind="calls", line=2 + i) for i, nd in enumerate(nodes[1:])]
    edges += [GraphEdge(source=nodes[1 + i % (n - 1)].id, target=nodes[1 + (i * 7 + 3) % (n - 1)].id, kind="references",
                        line=10 * i + 3) for i in range(int(extra * n))]
    body = "\n".join(f"    step_{j} = payload.get('k{j}', {j}) * retries  # a line of ordinary length" for j in range(code_lines))
    code = {nd.id: f"{nd.signature}:\n{body}" for nd in nodes}
    return GraphResult(center=c, nodes=nodes, edges=edges, code=code)


def saved_output_bytes(bundle: dict) -> tuple[int, nbformat.NotebookNode]:
    """The bytes the output takes in a notebook written by nbformat, and the notebook read back."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
    without = nbformat.writes(nb)
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    text = nbformat.writes(nb)
    back = nbformat.reads(text, as_version=4)
    nbformat.validate(back)
    return len(text.encode()) - len(without.encode()), back


# -- the bundle -------------------------------------------------------------------------------


def test_sample_neighbourhood_is_real(sample):
    _, result, _ = sample
    assert result.center == CENTER
    ids = {n.id for n in result.nodes}
    assert {"shop/payment.py::checkout", "shop/payment.py::PaymentError", "unresolved:cart.total"} <= ids


def test_bundle_holds_json_svg_and_text_and_nothing_that_runs(sample, bundle):
    _, result, _ = sample
    assert set(bundle) == {GRAPH_MIME, "image/svg+xml", "text/plain"}
    assert GRAPH_MIME == "application/vnd.direng.graph+json"
    assert bundle["text/plain"] == render_text(result)
    # the hostile line is in the code excerpts as data (JSON text), nowhere else
    flat = json.dumps({**bundle, GRAPH_MIME: {**bundle[GRAPH_MIME], "code": {}}}).lower()
    for banned in ("<script", "vis-network", "vis.network", "pyvis", "cdn", "<iframe", "javascript:", "<link",
                   "@import", "onload", "onclick"):
        assert banned not in flat, banned
    assert "https://" not in bundle["image/svg+xml"]
    assert re.findall(r"https?://[^'\"]*", bundle["image/svg+xml"]) == ["http://www.w3.org/2000/svg"]  # xmlns only
    assert "url(" not in bundle["image/svg+xml"].replace("url(#", "")  # markers by local id, nothing fetched


def test_json_payload_fields_and_round_trip(sample, bundle):
    _, result, code = sample
    wire = bundle[GRAPH_MIME]
    assert set(wire) == {"center", "nodes", "edges", "truncated", "code"}
    assert wire["center"] == CENTER and wire["truncated"] is False
    # rows: a node `[id, name, kind, path, start_line, end_line, signature, importance, x, y]`, an
    # edge `[source index, target index, kind, line(, false)]`, each one compact JSON text
    assert all(r == json.dumps(json.loads(r), separators=(",", ":"), ensure_ascii=False)
               for r in wire["nodes"] + wire["edges"])
    first = json.loads(wire["nodes"][0])
    assert first[:3] == [result.nodes[0].id, result.nodes[0].name, result.nodes[0].kind] and len(first) == 10
    assert all(isinstance(v, int) for v in first[8:10])
    assert any(json.loads(r)[4:] == [False] for r in wire["edges"])  # an unresolved edge
    data = G.read_graph(wire)
    assert data == graph_data(result, code) == GraphView(result, code).data
    assert G.read_graph(json.dumps(wire)) == data  # the whole value as JSON text reads too
    by_id = {n.id: n for n in result.nodes}
    assert [n["id"] for n in data["nodes"]] == list(by_id)  # every node, in the result's order
    for node in data["nodes"]:
        src = by_id[node["id"]]
        assert NODE_FIELDS <= set(node) <= NODE_FIELDS | {"importance"}
        assert (node["name"], node["kind"], node["path"], node["start_line"], node["end_line"], node["signature"]) == (
            src.name, src.kind, src.path, src.start_line, src.end_line, src.signature)
        assert ("importance" in node) == (src.importance > 0)
        if "importance" in node:
            assert node["importance"] == pytest.approx(src.importance, rel=1e-2)
    center = next(n for n in data["nodes"] if n["id"] == CENTER)
    assert center["signature"] == "def charge_card(card_number: str, amount_cents: int) -> str"
    assert (center["path"], center["start_line"], center["end_line"]) == ("shop/payment.py", 10, 14)
    for edge in data["edges"]:
        assert set(edge) == EDGE_FIELDS
        assert edge["source"] in by_id and edge["target"] in by_id
    sites = {(e.source, e.target, e.kind, e.resolved, e.line) for e in result.edges}
    assert {(e["source"], e["target"], e["kind"], e["resolved"], e["line"]) for e in data["edges"]} <= sites
    assert {(e.source, e.target, e.kind) for e in result.edges} == {(e["source"], e["target"], e["kind"])
                                                                     for e in data["edges"]}  # every pair
    assert ("shop/payment.py::checkout", "unresolved:cart.total", "calls", False, 19) in {
        (e["source"], e["target"], e["kind"], e["resolved"], e["line"]) for e in data["edges"]}
    # code: the excerpts (short here, so whole), keyed by node id, the hostile line as plain text
    assert set(data["code"]) == set(code) and data["code"][CENTER] == code[CENTER]
    assert EVIL in data["code"][CENTER]
    # JSON through and through: the payload survives json and nbformat, and is a GraphResult again
    assert json.loads(json.dumps(data)) == data
    _, nb = saved_output_bytes(bundle)
    assert nb.cells[0].outputs[0].data[GRAPH_MIME] == wire
    assert G.read_graph(nb.cells[0].outputs[0].data[GRAPH_MIME]) == data
    # an output saved before rows (objects with ids, no positions) reads the same, less the positions
    old = {**data, "nodes": [{k: v for k, v in n.items() if k not in ("x", "y")} for n in data["nodes"]]}
    assert G.read_graph(old) == old
    again = GraphResult.model_validate(data)
    assert [n.id for n in again.nodes] == list(by_id) and again.code == data["code"] and again.center == CENTER
    assert graph_data(result, code) == data


def test_code_defaults_to_the_results_and_excerpts_are_capped():
    long = "\n".join(f"line {i} " + "y" * (300 if i == 3 else 10) for i in range(500))
    nodes = [GraphNode(id="a.py::c", kind="function", name="c", path="a.py", start_line=1, end_line=500),
             GraphNode(id="a.py::o", kind="function", name="o", path="a.py", start_line=1, end_line=500)]
    r = GraphResult(center="a.py::c", nodes=nodes, edges=[GraphEdge(source="a.py::c", target="a.py::o", kind="calls",
                                                                    line=2)], code={"a.py::c": long, "a.py::o": long})
    data = mime_bundle(r)[GRAPH_MIME]  # code=None: the result's own excerpts
    center, other = data["code"]["a.py::c"].splitlines(), data["code"]["a.py::o"].splitlines()
    assert len(center) == G.CENTER_EXCERPT_LINES + 1 and center[-1] == "…"
    assert len(other) == G.EXCERPT_LINES + 1 and other[-1] == "…"
    assert center[:3] == long.splitlines()[:3]
    assert len(center[3]) == G.EXCERPT_LINE_CHARS and center[3].endswith("…")  # one very long line, cut
    assert len(data["code"]["a.py::o"]) <= G.EXCERPT_CHARS + 2
    assert mime_bundle(r, code={})[GRAPH_MIME]["code"] == {}


# -- the SVG ----------------------------------------------------------------------------------


def test_svg_draws_every_node_labelled_and_the_center_highlighted(sample, bundle):
    _, result, _ = sample
    root = svg_tree(bundle["image/svg+xml"])
    shapes = drawn_nodes(root)
    assert len(shapes) == len({n.id for n in result.nodes})
    assert sorted(labels(root)) == sorted(n.name for n in result.nodes)
    tips = [el.find(f"{SVG}title").text for el in shapes]
    assert any(t.startswith("charge_card (function) ★ center") and "shop/payment.py:10-14" in t for t in tips)
    # kinds look different: functions are circles, classes diamonds (paths), files squares
    groups = {g.get("class"): g for g in root.iter(f"{SVG}g")}
    assert {"n-function", "n-class", "n-file", "n-external"} <= set(groups)
    assert {el.tag for el in groups["n-function"]} == {f"{SVG}circle"}
    assert {el.tag for el in groups["n-class"]} == {f"{SVG}path"}
    assert {el.tag for el in groups["n-file"]} == {f"{SVG}rect"}
    # the center: a red ring over it, a bold label
    style = root.find(f"{SVG}style").text
    ring = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "cr" and c.get("r") != "5"]
    assert len(ring) == 1 and G.CENTER_STROKE in style.split(".cr{")[1].split("}")[0]
    lb = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "lb")
    assert [t.text for t in lb if t.get("class") == "c"] == ["charge_card"]
    assert "graph around charge_card — shop/payment.py:10-14" in "".join(root.find(f"{SVG}text").itertext())


def test_svg_edge_kinds_are_distinct(bundle):
    root = svg_tree(bundle["image/svg+xml"])
    style = root.find(f"{SVG}style").text
    gid = root.get("id")

    def rule(selector: str) -> str:
        m = re.search(rf"#{gid} {re.escape(selector)}\{{([^}}]*)\}}", style)
        assert m, selector
        return m.group(1)

    groups = {g.get("class"): g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("e ")}
    assert {"e k-calls", "e k-contains", "e k-imports", "e k-references", "e k-calls u", "e k-inherits u"} <= set(groups)
    looks = {k: rule(f".k-{k}") for k in ("calls", "contains", "imports", "inherits")}
    assert len(set(looks.values())) == 4  # colour, width or dash differ per kind
    assert "dasharray" not in looks["calls"] and "dasharray" in looks["imports"] and "dasharray" in looks["inherits"]
    assert G.UNRESOLVED_EDGE in rule(".u") and "dasharray" in rule(".k-calls.u")  # unresolved: grey, dashed
    for cls, g in groups.items():  # every edge group has its arrowhead, defined locally
        marker = re.fullmatch(r"url\(#([\w-]+)\)", g.get("marker-end")).group(1)
        assert root.find(f".//{SVG}marker[@id='{marker}']") is not None
        assert all(p.tag == f"{SVG}path" and re.fullmatch(r"M-?\d+ -?\d+[LQ][-\d ]+", p.get("d")) for p in g)


def test_svg_escapes_hostile_names_and_paths():
    evil = 'x"><img src=x onerror=alert(1)> & \'q\' ]]> <!-- \x07\x1b'
    nodes = [GraphNode(id=f"a<b>&'\".py::{evil}", kind="function", name=evil, path="a<b>&'\".py", start_line=1,
                       end_line=2, signature="def f(x='</title><script>bad()</script>')", importance=0.1),
             GraphNode(id="unresolved:</text>", kind="external", name="</text><svg onload=alert(1)>")]
    result = GraphResult(center=nodes[0].id, nodes=nodes,
                         edges=[GraphEdge(source=nodes[0].id, target=nodes[1].id, kind="calls", resolved=False, line=1)])
    svg = mime_bundle(result, {nodes[0].id: "</pre><script>bad()</script>"})["image/svg+xml"]
    for raw in ("<img", "<script", "</title><script", "</text><svg", "<svg onload", "<!--", "]]>", "\x07", "\x1b"):
        assert raw not in svg, raw
    root = svg_tree(svg)  # parses: every name, path and signature was escaped
    texts = labels(root)
    clean = evil.replace("\x07", "\ufffd").replace("\x1b", "\ufffd")
    assert clean[:G.MAX_LABEL - 1] + "…" in texts and "</text><svg onload=alert(1)>" in texts
    tips = " ".join(t.text for t in root.iter(f"{SVG}title"))
    assert "a<b>&'\".py:1-2" in tips and "def f(x='</title><script>bad()</script>')" in tips
    assert not any(el.tag.endswith(("script", "img", "foreignObject")) for el in root.iter())
    assert all(not k.lower().startswith("on") for el in root.iter() for k in el.attrib)


def test_svg_layout_is_deterministic(sample):
    _, result, code = sample
    first = mime_bundle(result, code)["image/svg+xml"]
    assert mime_bundle(result, code)["image/svg+xml"] == first
    assert GraphView(result, code).svg == first
    # another process, another hash seed: the same bytes
    script = ("import sys; from direng_kernel.models import GraphResult; from direng_kernel.widgets import mime_bundle; "
              "r = GraphResult.model_validate_json(sys.stdin.read()); sys.stdout.write(mime_bundle(r)['image/svg+xml'])")
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", script], input=result.model_copy(update={"code": code}).model_dump_json(),
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout == first
    # coordinates are integers
    assert not re.search(r"(cx|cy|x|y|r|width|height)='-?\d+\.\d+'", first)


def test_cap_keeps_center_then_nearest_then_most_important(sample):
    _, result, code = sample
    data = graph_data(result, code, max_nodes=4)
    ids = {n["id"] for n in data["nodes"]}
    assert len(ids) == 4 and CENTER in ids and data["truncated"] is True
    hops = G._hops(result)
    others = sorted((n for n in result.nodes if n.id != CENTER), key=lambda n: (hops[n.id], -n.importance, n.id))
    assert ids - {CENTER} == {n.id for n in others[:3]}
    assert all(hops[i] == 1 for i in ids - {CENTER})
    assert all(e["source"] in ids and e["target"] in ids for e in data["edges"])
    assert set(data["code"]) <= ids
    svg = mime_bundle(result, code, max_nodes=4)["image/svg+xml"]
    assert f"(showing 4 of {len(result.nodes)} nodes)" in svg and len(drawn_nodes(svg_tree(svg))) == 4
    assert "showing " not in mime_bundle(result, code)["image/svg+xml"]  # everything fits: no note


# -- the size bound ---------------------------------------------------------------------------


def test_a_150_node_graph_is_under_100_kb_saved():
    result = big_graph(150)
    old_style_code = sum(len(c) for c in result.code.values())
    assert old_style_code > 300_000  # 40-line excerpts for every node: the result itself is big
    bundle = mime_bundle(result)
    size, nb = saved_output_bytes(bundle)
    assert size <= 100_000, size
    assert G.saved_size(bundle) <= G.MAX_OUTPUT_BYTES and abs(G.saved_size(bundle) - size) < 200
    out = nb.cells[0].outputs[0]
    assert set(out.data) == {GRAPH_MIME, "image/svg+xml", "text/plain"}
    data = G.read_graph(out.data[GRAPH_MIME])
    shown = len(data["nodes"])
    assert shown == 150 and data["truncated"] is False  # whole: nothing left out to fit
    assert len(drawn_nodes(svg_tree(out.data["image/svg+xml"]))) == shown
    assert result.center in data["code"] and 5 <= len(data["code"]) < shown  # the center's and some more
    assert max(len(c.splitlines()) for c in data["code"].values()) <= G.CENTER_EXCERPT_LINES + 1
    assert out.data["text/plain"].startswith("graph around center_fn (function)")


def dense_graph(n: int = 150, per_node: int = 3) -> GraphResult:
    """`big_graph`'s nodes (45-character ids, signatures, 40-line excerpts) with `per_node` distinct
    edges a node: the center's call to each, then calls and references between the others — as
    many edges as one output keeps (`MAX_EDGES`)."""
    result = big_graph(n)
    ids = [nd.id for nd in result.nodes]
    edges = [e for e in result.edges if e.source == result.center]
    edges.append(GraphEdge(source=ids[1], target=ids[2], kind="imports", resolved=False, line=1))
    for step in range(1, per_node + 1):
        kind = "calls" if step % 2 else "references"
        edges += [GraphEdge(source=ids[i], target=ids[1 + (i - 1 + step) % (n - 1)], kind=kind, line=10 * i + step)
                  for i in range(1, n)]
    return result.model_copy(update={"edges": edges[:per_node * n]})


def test_a_dense_150_node_graph_fits_whole_in_100_kb_saved():
    result = dense_graph()
    assert len(result.nodes) == 150 and len(result.edges) == G.MAX_EDGES == 450
    bundle = mime_bundle(result)
    size, nb = saved_output_bytes(bundle)  # as nbformat writes it
    assert size <= 100_000, size
    out = nb.cells[0].outputs[0]
    data = G.read_graph(out.data[GRAPH_MIME])
    assert data["truncated"] is False and len(data["nodes"]) == 150 and len(data["edges"]) == 450
    assert {(e["source"], e["target"], e["kind"]) for e in data["edges"]} == {
        (e.source, e.target, e.kind) for e in result.edges}
    # every node placed, where the picture draws it
    svg = svg_tree(out.data["image/svg+xml"])
    assert len(drawn_nodes(svg)) == 150 and "(showing" not in out.data["image/svg+xml"]
    assert all(isinstance(nd["x"], int) and isinstance(nd["y"], int) for nd in data["nodes"])
    center = next(nd for nd in data["nodes"] if nd["id"] == result.center)
    ring = next(c for c in svg.iter(f"{SVG}circle") if c.get("class") == "cr")
    assert (int(ring.get("cx")), int(ring.get("cy"))) == (center["x"], center["y"])
    assert len({(nd["x"], nd["y"]) for nd in data["nodes"]}) > 140  # spread out, not stacked
    assert result.center in data["code"]  # the excerpts get what is left: the center's at least


FIXTURE = Path(__file__).resolve().parents[1] / "labextension" / "test" / "fixtures" / "graph-output.json"


def fixture_graph() -> dict:
    """A small output (a notebook cell's symbol, an unresolved edge, an external module) as the
    kernel writes it and as plain objects: what the extension's unit test decodes."""
    nodes = [GraphNode(id="shop/cart.py::Cart.total", kind="method", name="Cart.total", path="shop/cart.py",
                       start_line=4, end_line=9, signature="def total(self) -> int", importance=0.0412),
             GraphNode(id="nb.ipynb::tax", kind="function", name="tax", path="nb.ipynb", start_line=1, end_line=2,
                       cell=3),
             GraphNode(id="decimal", kind="module", name="decimal"),
             GraphNode(id="unresolved:round_cents", kind="external", name="round_cents")]
    edges = [GraphEdge(source=nodes[1].id, target=nodes[0].id, kind="calls", line=2),
             GraphEdge(source=nodes[0].id, target=nodes[3].id, kind="calls", resolved=False, line=8),
             GraphEdge(source=nodes[0].id, target=nodes[2].id, kind="imports")]
    result = GraphResult(center=nodes[0].id, nodes=nodes, edges=edges,
                         code={nodes[0].id: "def total(self) -> int:\n    return round_cents(self.sum)"})
    wire = mime_bundle(result)[GRAPH_MIME]
    return {"output": wire, "graph": G.read_graph(wire)}


def test_the_extensions_fixture_is_what_the_kernel_writes():
    """labextension/test/graphModel.test.ts decodes this file: it must be today's format
    (regenerate: UPDATE_FIXTURES=1 pytest tests/test_graph_widget.py -k fixture)."""
    fresh = fixture_graph()
    assert {n["id"]: n.get("cell") for n in fresh["graph"]["nodes"]}["nb.ipynb::tax"] == 3
    if os.environ.get("UPDATE_FIXTURES") == "1":
        FIXTURE.write_text(json.dumps(fresh, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(FIXTURE.read_text(encoding="utf-8")) == fresh


def test_huge_neighbourhoods_and_long_names_stay_bounded():
    result = big_graph(600, id_len=90, extra=4)
    bundle = mime_bundle(result)
    size, nb = saved_output_bytes(bundle)
    assert size <= 100_000, size
    data = bundle[GRAPH_MIME]
    assert data["truncated"] is True and len(data["nodes"]) <= 150 and data["center"] == result.center
    assert "(showing " in bundle["image/svg+xml"] and "of 600 nodes)" in bundle["image/svg+xml"]
    # the query's own cap shows too
    capped = result.model_copy(update={"truncated": True, "nodes": result.nodes[:20],
                                       "edges": [e for e in result.edges if e.target in {n.id for n in result.nodes[:20]}
                                                 and e.source in {n.id for n in result.nodes[:20]}]})
    b = mime_bundle(capped)
    assert b[GRAPH_MIME]["truncated"] is True and "truncated by the graph query" in b["image/svg+xml"]


def test_repeated_call_sites_are_one_edge(sample):
    _, result, _ = sample
    c = result.center
    many = result.model_copy(update={"edges": result.edges + [
        GraphEdge(source=c, target="unresolved:cart.total", kind="calls", resolved=False, line=100 + i)
        for i in range(200)]})
    data = graph_data(many)
    pairs = [(e["source"], e["target"], e["kind"]) for e in data["edges"]]
    assert len(pairs) == len(set(pairs)) and data["truncated"] is False


# -- text, page, reprs, widget ----------------------------------------------------------------


def test_text_fallback(sample):
    _, result, _ = sample
    text = render_text(result)
    first = text.splitlines()[0]
    assert first == "graph around charge_card (function) — shop/payment.py:10-14"
    assert "def charge_card(card_number: str, amount_cents: int) -> str" in text
    callers = text.split("callers of charge_card (1):")[1].split("\n\n")[0]
    assert "checkout → charge_card  at shop/payment.py:20  → shop/payment.py:10-14" in callers
    callees = text.split("callees of charge_card (1):")[1].split("\n\n")[0]
    assert "charge_card → PaymentError  at shop/payment.py:13  → shop/payment.py:6-7" in callees
    assert "checkout → cart.total  at shop/payment.py:19  [unresolved]" in text
    assert "PaymentError → Exception  at shop/payment.py:6  [unresolved]" in text
    assert "inherits (1):" in text and "contains (" in text and "imports (" in text
    capped = render_text(result, max_edges=3)
    total = len({(e.source, e.target, e.kind, e.line, e.resolved) for e in result.edges})
    assert f"(showing 3 of {total})" in capped
    assert sum(1 for line in capped.splitlines() if " → " in line) == 3


def test_standalone_page(sample, tmp_path):
    _, result, code = sample
    page = render_html(result, code=code, height="400px")
    assert page.startswith("<!DOCTYPE html>") and "<html>" in page
    low = page.lower()
    assert "<script" not in low and "http://" not in low and "https://" not in low and "<link" not in low
    assert "#graph { flex: 3 1 480px; min-width: 0; max-height: 400px;" in page
    assert page.count("<svg") == 1 and "xmlns" not in page  # inline in HTML, no namespace URL needed
    # every node with code links to its panel; the center's panel shows first; all escaped
    panels = re.findall(r"<section id='(code-\d+)' class='([^']*)' data-node='([^']*)'>", page)
    assert {html.unescape(n) for _, _, n in panels} == set(code)
    for anchor, _, _ in panels:
        assert f"<a href='#{anchor}'>" in page
    assert [html.unescape(n) for _, cls, n in panels if cls == "code center"] == [CENTER]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; see https&#58;//example.com/a?b=1" in page
    assert "#panel .code:target" in page
    view = GraphView(result, code)
    for name in ("g.svg", "g.json", "g.html"):
        view.save(tmp_path / name)
    assert (tmp_path / "g.svg").read_text(encoding="utf-8") == view.svg
    assert json.loads((tmp_path / "g.json").read_text(encoding="utf-8")) == view.data
    assert (tmp_path / "g.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_reprs(sample, bundle):
    from IPython.core.formatters import DisplayFormatter
    from IPython.lib.pretty import pretty

    _, result, code = sample
    view = GraphView(result, code)
    assert repr(view) == render_text(result) == pretty(view)
    assert view._repr_mimebundle_() == bundle
    assert set(view._repr_mimebundle_(include={"image/svg+xml"})) == {"image/svg+xml"}
    assert GRAPH_MIME not in view._repr_mimebundle_(exclude={GRAPH_MIME})
    data, _md = DisplayFormatter().format(view)  # what `display(view)` sends
    assert set(data) == {GRAPH_MIME, "image/svg+xml", "text/plain"}
    assert render_svg(result) == mime_bundle(result, {})["image/svg+xml"]


def test_widget(sample, bundle):
    import ipywidgets

    _, result, code = sample
    w = graph_widget(result, code)
    assert isinstance(w, ipywidgets.Output)
    assert len(w.outputs) == 1 and w.outputs[0]["output_type"] == "display_data"
    assert w.outputs[0]["data"] == bundle


def test_import_is_light_and_pyvis_is_gone():
    code = ("import sys, direng_kernel.widgets; "
            "print([m for m in ('networkx', 'pyvis', 'ipywidgets', 'jinja2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = ("import sys; from direng_kernel.models import GraphResult, GraphNode; from direng_kernel.widgets import mime_bundle; "
            "mime_bundle(GraphResult(center='a', nodes=[GraphNode(id='a', kind='function', name='a')], edges=[])); "
            "print([m for m in ('pyvis', 'jinja2', 'ipywidgets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    source = G.__file__
    assert "pyvis" not in open(source, encoding="utf-8").read()
