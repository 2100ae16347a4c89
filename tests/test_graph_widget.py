"""The interactive graph view (direng_kernel.widgets.graph) over a real index of the sample repo."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import make_repo
from direng_kernel.models import GraphEdge, GraphNode, GraphResult
from direng_kernel.widgets import GraphView, graph_widget, mime_bundle, render_html, render_text
from direng_kernel.widgets.graph import CENTER_BORDER, UNRESOLVED_EDGE

CENTER = "shop/payment.py::charge_card"
EVIL = '# <script>alert("x")</script> & see https://example.com/a?b=1'


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
def page(sample):
    _, result, code = sample
    return render_html(result, code=code)


def drawn(page_html: str, what: str) -> list[dict]:
    m = re.search(rf"var {what} = new vis\.DataSet\((.*)\);\n", page_html)
    assert m, f"no {what} data set in the page"
    return json.loads(m.group(1))


def test_sample_neighbourhood_is_real(sample):
    _, result, _ = sample
    assert result.center == CENTER
    ids = {n.id for n in result.nodes}
    assert {"shop/payment.py::checkout", "shop/payment.py::PaymentError", "unresolved:cart.total"} <= ids


def test_every_node_and_the_center_are_drawn(sample, page):
    _, result, _ = sample
    nodes = drawn(page, "nodes")
    assert {n["id"] for n in nodes} == {n.id for n in result.nodes}
    by_id = {n["id"]: n for n in nodes}
    for n in result.nodes:
        assert by_id[n.id]["label"] == n.name
        assert n.name in page
    center = by_id[CENTER]
    assert center["color"]["border"] == CENTER_BORDER
    assert all(n["borderWidth"] < center["borderWidth"] for n in nodes if n["id"] != CENTER)
    assert all(n["color"]["border"] != CENTER_BORDER for n in nodes if n["id"] != CENTER)
    # the header names the center with its kind and location
    assert "charge_card" in page and "function · shop/payment.py:10-14" in page


def test_nodes_styled_by_kind_and_sized_by_importance(sample, page):
    _, result, _ = sample
    nodes = {n["id"]: n for n in drawn(page, "nodes")}
    imp = {n.id: n.importance for n in result.nodes}
    assert nodes["shop/payment.py::checkout"]["shape"] == "dot"
    assert nodes["shop/payment.py::PaymentError"]["shape"] == "diamond"
    assert nodes["file:shop/payment.py"]["shape"] == "square"
    ext = nodes["unresolved:cart.total"]
    assert ext["opacity"] < 1 and ext["color"]["background"] != nodes["shop/payment.py::checkout"]["color"]["background"]
    # log-scaled by importance: more important → not smaller; unresolved names smallest
    syms = sorted((i for i in nodes if not i.startswith("unresolved:") and i != CENTER), key=imp.get)
    assert [nodes[i]["size"] for i in syms] == sorted(nodes[i]["size"] for i in syms)
    assert ext["size"] < min(nodes[i]["size"] for i in syms)
    # hover shows the signature and path:start-end
    assert "def charge_card(card_number: str, amount_cents: int) -> str" in nodes[CENTER]["title"]
    assert "shop/payment.py:10-14" in nodes[CENTER]["title"]


def test_edges_styled_by_kind(page):
    edges = drawn(page, "edges")
    kinds = {}
    for e in edges:
        kinds.setdefault((e["title"].split("\n")[1].split(" ")[0], "(unresolved)" not in e["title"]), e)
    calls = kinds[("calls", True)]
    assert calls["dashes"] is False and calls["arrows"]["to"]["enabled"]
    assert kinds[("contains", True)]["width"] < calls["width"]
    dash, gap = kinds[("imports", True)]["dashes"]
    assert 0 < dash < gap  # dotted: marks shorter than the gaps between them, unlike solid calls
    unresolved_inherit = kinds[("inherits", False)]
    assert unresolved_inherit["dashes"] and unresolved_inherit["color"]["color"] == UNRESOLVED_EDGE
    assert kinds[("calls", False)]["color"]["color"] == UNRESOLVED_EDGE
    # duplicate edges in the result (same site) are drawn once
    pairs = [(e["from"], e["to"], e["title"].split("\n")[1]) for e in edges]
    assert len(pairs) == len(set(pairs))


def test_no_url_loads_anything(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page, re.I)
    assert "http://" not in page.lower() and "https://" not in page.lower()
    assert "<link" not in page.lower()
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert "bootstrap" not in page and "TomSelect" not in page and "cdnjs" not in page


def test_vis_network_is_inline_and_bounded(page):
    assert "new vis.Network(" in page
    assert page.count("</script>") == 2  # the vis bundle and ours, both inline
    bundle = page.split("<script>", 1)[1].split("</script>")[0]
    assert "vis-network" in bundle and len(bundle) > 100_000
    options = json.loads(re.search(r"var options = (.*);\n", page).group(1))
    stabilization = options["physics"]["stabilization"]
    # a bounded layout: stabilization runs a finite number of iterations, then physics is switched off
    assert stabilization["enabled"] is True
    assert isinstance(stabilization["iterations"], int) and 0 < stabilization["iterations"] <= 1000
    assert 'network.setOptions({physics: {enabled: false}})' in page
    assert 'network.on("click"' in page


def test_code_panel_is_escaped(page, sample):
    _, _, code = sample
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; see" in page
    assert "<script>alert(" not in page
    # the URL inside the snippet is not a literal http(s):// string in the page, yet reads intact
    assert "https://example.com" not in page
    panel = re.search(r'<pre id="code">(.*?)</pre>', page, re.S).group(1)
    assert "https://example.com/a?b=1" in html.unescape(panel)
    # every snippet is there, keyed by its node id, for the click handler
    for nid in code:
        assert f'<pre data-node="{html.escape(nid, quote=True)}">' in page
    # the center's code is shown before any click
    assert html.unescape(panel) == code[CENTER]


def test_hostile_ids_and_names_stay_inert(sample):
    evil_id = 'x"><img src=x onerror=alert(1)>'
    result = GraphResult(
        center=evil_id,
        nodes=[GraphNode(id=evil_id, kind="function", name="</script><b>n</b>", path="a.py", start_line=1,
                         end_line=2, signature="def f(x='http://h')", importance=0.1)],
        edges=[],
    )
    out = render_html(result, code={evil_id: "</pre><script>bad()</script>"})
    assert "<img src=x" not in out and "</script><b>" not in out and "<script>bad()" not in out
    assert "http://" not in out
    assert drawn(out, "nodes")[0]["label"] == "</script><b>n</b>"
    assert drawn(out, "nodes")[0]["title"].count("http://h") == 1  # intact once parsed


def test_cap_keeps_center_and_most_important(sample):
    _, result, code = sample
    out = render_html(result, code=code, max_nodes=4)
    nodes = drawn(out, "nodes")
    assert len(nodes) == 4
    ids = {n["id"] for n in nodes}
    assert CENTER in ids
    others = sorted((n for n in result.nodes if n.id != CENTER), key=lambda n: -n.importance)
    assert ids - {CENTER} == {n.id for n in others[:3]}
    assert f"showing 4 of {len(result.nodes)} nodes" in out
    assert all(e["from"] in ids and e["to"] in ids for e in drawn(out, "edges"))
    # no note when everything fits
    assert "showing " not in render_html(result, code=code)


def test_large_neighbourhood_is_capped():
    nodes = [GraphNode(id="c", kind="function", name="center_fn", path="c.py", start_line=1, end_line=3)]
    nodes += [GraphNode(id=f"n{i}", kind="method", name=f"m{i}", path="m.py", start_line=i, end_line=i,
                        importance=(i + 1) / 1000) for i in range(600)]
    edges = [GraphEdge(source="c", target=f"n{i}", kind="calls", line=i) for i in range(600)]
    edges += [GraphEdge(source=f"n{i}", target=f"n{(i * 7) % 600}", kind="calls", line=1) for i in range(600)]
    out = render_html(GraphResult(center="c", nodes=nodes, edges=edges, truncated=True), max_nodes=150)
    drawn_nodes = drawn(out, "nodes")
    assert len(drawn_nodes) == 150
    assert {n["id"] for n in drawn_nodes} == {"c"} | {f"n{i}" for i in range(451, 600)}
    assert "showing 150 of 601 nodes" in out and "truncated by the graph query" in out
    options = json.loads(re.search(r"var options = (.*);\n", out).group(1))
    assert options["layout"]["improvedLayout"] is False


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


def test_iframe_repr_escapes_the_page(sample):
    _, result, code = sample
    view = GraphView(result, code, height="400px")
    frame = view._repr_html_()
    assert frame.startswith('<iframe srcdoc="') and frame.endswith("</iframe>")
    srcdoc = re.match(r'<iframe srcdoc="([^"]*)"', frame).group(1)
    assert html.unescape(srcdoc) == view.html  # every quote in the page is escaped
    assert "&quot;" in srcdoc and "<" not in srcdoc
    assert 'sandbox="allow-scripts"' in frame
    # the graph gets the height asked for; the frame is taller, with room for the header around it
    assert "#mynetwork" in view.html and re.search(r"#mynetwork \{[^}]*height: 400px;", view.html)
    outer = int(re.search(r"height:(\d+)px", frame).group(1))
    assert outer > 400
    assert "http://" not in frame and "https://" not in frame


def test_text_reprs(sample):
    from IPython.lib.pretty import pretty

    _, result, _ = sample
    view = GraphView(result)
    assert repr(view) == render_text(result) == pretty(view)
    md = view._repr_markdown_()
    assert md.startswith("```text\ngraph around charge_card") and md.endswith("\n```")


def test_mime_bundle_and_widget(sample):
    _, result, code = sample
    bundle = mime_bundle(result, code)
    assert set(bundle) == {"text/html", "text/plain"}
    assert bundle["text/html"].startswith("<iframe srcdoc=")
    assert bundle["text/plain"] == render_text(result)
    import ipywidgets

    w = graph_widget(result, code)
    assert isinstance(w, ipywidgets.HTML) and w.value.startswith("<iframe srcdoc=")


def test_import_is_light():
    code = ("import sys, direng_kernel.widgets; "
            "print([m for m in ('pyvis', 'ipywidgets', 'jinja2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium")
def test_draws_in_a_headless_browser(page, tmp_path):
    """vis really runs: the network's canvas exists once the page has loaded (offline browser)."""
    f = tmp_path / "graph.html"
    f.write_text(page, encoding="utf-8")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    out = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", "--dump-dom", f.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    dom = out.stdout
    assert re.search(r'<div id="mynetwork"[^>]*>\s*<div class="vis-network"', dom), dom[-2000:]
    assert "<canvas" in dom
