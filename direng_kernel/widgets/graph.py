"""The notebook view of a `GraphResult`: a JSON bundle, a static SVG and text — nothing that runs.

`mime_bundle` (what `%direng graph` displays) holds three representations of one neighbourhood:

- `application/vnd.direng.graph+json` (`GRAPH_MIME`): `center`, `nodes`, `edges`, `truncated`,
  `code` (node id → a short source excerpt). The DirEng JupyterLab extension renders it
  interactively, drawn at the positions of the SVG's layout (no layout in the browser). Each node
  and each edge is one compact JSON array *as text* — a node `[id, name, kind, path, start_line,
  end_line, signature, importance, x, y(, cell)]`, an edge `[source, target, kind, line(, false)]`
  with `source`/`target` indexes into `nodes` — because nbformat writes a notebook with one JSON
  value per line: 150 nodes and 450 edges as objects take ~155 KB saved, as rows ~46 KB.
  `read_graph` (and `graph_data`, `GraphView.data`) give the same graph as plain objects; the
  fields are documented in `docs/jupyter.md` ("Graph output").
- `image/svg+xml`: `render_svg`, laid out here with networkx (a seeded spring layout, so the same
  graph gives the same bytes), for frontends without the extension: nbviewer, VS Code, GitHub,
  papermill outputs. Nodes are shaped and coloured by kind, every node is labelled, edge kinds
  differ in colour and dash pattern, unresolved edges are grey, the center is ringed in red.
  Styles are shared CSS classes, coordinates integers, and elements are packed several to a line
  (nbformat stores each line as a JSON string: ~15 bytes a line).
- `text/plain`: `render_text`, the edges grouped by kind (terminals, logs).

No script, stylesheet, font or image is fetched or inlined. One output stays small in a saved
notebook (`MAX_OUTPUT_BYTES`, measured the way nbformat writes it): at most `max_nodes` nodes
(the center, the nearest, the most important), one edge per source, target and kind, code
excerpts cut to a few lines within what is left of the budget; a graph too big for the budget
shows as many nodes as fit (`GraphView.bundle`). Nodes or edges left out set `truncated`.

`render_html` wraps the same SVG in a standalone page whose nodes link to their code (CSS
`:target`, no script): the graph-ops lane's `graph.html`, `GraphView.save`.

Only the standard library and the models are imported at module level: networkx loads when a
graph is laid out, ipywidgets in `graph_widget`.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ..models import GraphEdge, GraphNode, GraphResult

__all__ = ["GRAPH_MIME", "GraphView", "graph_data", "graph_widget", "mime_bundle", "read_graph", "render_html",
           "render_svg", "render_text", "saved_size"]

GRAPH_MIME = "application/vnd.direng.graph+json"

# -- limits -----------------------------------------------------------------------------------

MAX_NODES = 150
MAX_EDGES = 450  # edges in one bundle (the center's first, then resolved ones)
MAX_SITES = 1  # edges kept per (source, target, kind) (the first site): `out.append` 180 times is one fact
MAX_OUTPUT_BYTES = 98_000  # one output as a saved notebook holds it (indent 1, lines split)
CODE_BUDGET_BYTES = 30_000  # at most this much of an output is code excerpts
MIN_CODE_BYTES = 4_000  # room kept for excerpts besides the center's before nodes are dropped
EXCERPT_LINES, EXCERPT_CHARS = 12, 1_000
CENTER_EXCERPT_LINES, CENTER_EXCERPT_CHARS = 40, 4_000
EXCERPT_LINE_CHARS = 160
MAX_SNIPPET_CHARS = 20_000  # a code panel of the standalone page
MAX_LABEL = 40
SVG_LINE_CHARS = 1_000  # SVG elements packed onto lines this long: nbformat saves each line as a JSON string
SEED = 7
LAYOUT_ITERATIONS = 80

# -- styling ----------------------------------------------------------------------------------

CLASS_LIKE = {"class", "struct", "enum", "interface", "trait", "impl", "type"}
FUNCTION_LIKE = {"function", "method"}
DIMMED = {"external", "module"}

# group → (fill, stroke)
_GROUP_STYLE = {
    "file": ("#cfd8e3", "#7f93ab"),
    "class": ("#f6b26b", "#b8671f"),
    "function": ("#6fa8dc", "#2f6aa3"),
    "constant": ("#93c47d", "#4f8a3a"),
    "module": ("#e4dcef", "#b3a4cc"),
    "external": ("#ececec", "#a5a5a5"),
    "other": ("#d0d0d0", "#8f8f8f"),
}
_GROUP_ORDER = ["file", "class", "function", "constant", "other", "module", "external"]
_GROUP_LABEL = {
    "file": "file",
    "class": "class-like",
    "function": "function / method",
    "constant": "constant",
    "module": "external module",
    "external": "unresolved / external",
    "other": "other",
}
CENTER_STROKE = "#d62728"

# kind → (colour, stroke width, dash pattern or "")
_EDGE_STYLE = {
    "calls": ("#2f6aa3", 1.6, ""),
    "inherits": ("#b8671f", 1.6, "8 4"),
    "implements": ("#8e5a1c", 1.6, "8 4 2 4"),
    "references": ("#3f8f9c", 1.2, "5 3"),
    "imports": ("#8e7cc3", 1.2, "2 3"),
    "contains": ("#c4c4c4", 0.9, ""),
}
_DEFAULT_EDGE = ("#888888", 1.0, "")
UNRESOLVED_EDGE = "#aaaaaa"
_EDGE_ORDER = ["calls", "inherits", "implements", "references", "imports", "contains"]

MIN_R, MAX_R, CENTER_R = 4.0, 11.0, 13.0


def kind_group(kind: str) -> str:
    if kind == "file":
        return "file"
    if kind in CLASS_LIKE:
        return "class"
    if kind in FUNCTION_LIKE:
        return "function"
    if kind in ("constant", "module", "external"):
        return kind
    return "other"


def location(node: GraphNode) -> str:
    """`path:start-end` (or the part of it that is known; "" for external nodes)."""
    if not node.path:
        return ""
    if node.start_line is None:
        return node.path
    if node.end_line is None or node.end_line == node.start_line:
        return f"{node.path}:{node.start_line}"
    return f"{node.path}:{node.start_line}-{node.end_line}"


def _label(node: GraphNode) -> str:
    name = node.name or node.id
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


# -- escaping ---------------------------------------------------------------------------------

# characters XML 1.0 cannot hold at all (a hostile name must not make the SVG unparseable)
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_URL = re.compile(r"(?i)(https?):(?=//)")


def _x(text: str) -> str:
    """Text or an attribute value (either quote) for XML and HTML; `http://` becomes
    `http&#58;//`, which reads the same but is never a literal URL in the markup."""
    text = html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)
    return _URL.sub(lambda m: m.group(1) + "&#58;", text)


# -- what one output holds --------------------------------------------------------------------


def _unique_edges(edges: Iterable[GraphEdge]) -> list[GraphEdge]:
    seen: set[tuple] = set()
    out = []
    for e in edges:
        key = (e.source, e.target, e.kind, e.line, e.resolved)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _hops(result: GraphResult) -> dict[str, int]:
    """Each node's distance from the center over the result's edges (either direction)."""
    around: dict[str, set[str]] = defaultdict(set)
    for e in result.edges:
        around[e.source].add(e.target)
        around[e.target].add(e.source)
    hops = {result.center: 0}
    frontier = [result.center]
    while frontier:
        nxt = []
        for n in frontier:
            for m in sorted(around[n]):
                if m not in hops:
                    hops[m] = hops[n] + 1
                    nxt.append(m)
        frontier = nxt
    return hops


def select_nodes(result: GraphResult, max_nodes: int) -> list[GraphNode]:
    """The nodes to draw: all of them, or the center, then the nearest (in hops), the most
    important first among equally near ones — so what is kept stays connected to the center."""
    nodes = list({n.id: n for n in result.nodes}.values())
    if max_nodes <= 0 or len(nodes) <= max_nodes:
        return nodes
    hops = _hops(result)
    far = len(nodes) + 1
    ranked = sorted(nodes, key=lambda n: (n.id != result.center, hops.get(n.id, far), -n.importance, n.id))
    keep = {n.id for n in ranked[:max_nodes]}
    return [n for n in nodes if n.id in keep]  # keep the result's order


def _select_edges(result: GraphResult, keep: set[str], max_edges: int) -> tuple[list[GraphEdge], int]:
    """(the edges between kept nodes — `MAX_SITES` per (source, target, kind), at most `max_edges`
    in all, the center's first —, how many there were before `max_edges`)."""
    sites: Counter = Counter()
    capped = []
    for e in _unique_edges(result.edges):
        if e.source in keep and e.target in keep:
            sites[(e.source, e.target, e.kind)] += 1
            if sites[(e.source, e.target, e.kind)] <= MAX_SITES:
                capped.append(e)
    total = len(capped)
    if total > max_edges:
        c = result.center
        ranked = sorted(range(total), key=lambda i: (c not in (capped[i].source, capped[i].target),
                                                     capped[i].kind == "contains", not capped[i].resolved, i))
        chosen = set(ranked[:max(0, max_edges)])
        capped = [e for i, e in enumerate(capped) if i in chosen]
    return capped, total


def _excerpt(text: str, lines: int, chars: int) -> str:
    rows = text.splitlines()
    cut = len(rows) > lines
    rows = [r if len(r) <= EXCERPT_LINE_CHARS else r[: EXCERPT_LINE_CHARS - 1] + "…" for r in rows[:lines]]
    out = "\n".join(rows)
    if len(out) > chars:
        out, cut = out[:chars], True
    if cut and not out.rstrip().endswith("…"):
        out = out.rstrip() + "\n…"
    return out


def _node_json(n: GraphNode, at: Optional[tuple[int, int]] = None) -> dict[str, Any]:
    d: dict[str, Any] = {"id": n.id, "name": n.name, "kind": n.kind, "path": n.path, "start_line": n.start_line,
                         "end_line": n.end_line, "signature": n.signature}
    if n.importance > 0:
        d["importance"] = float(f"{n.importance:.3g}")
    if n.cell is not None:  # a notebook symbol: its lines are within that cell
        d["cell"] = n.cell
    if at is not None:  # where the SVG draws it: the extension draws it there too
        d["x"], d["y"] = at
    return d


def _edge_json(e: GraphEdge) -> dict[str, Any]:
    return {"source": e.source, "target": e.target, "kind": e.kind, "resolved": e.resolved, "line": e.line}


@dataclass
class _Plan:
    """The nodes and edges one output shows (bounded), and whether anything was left out."""

    result: GraphResult
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    total_nodes: int
    total_edges: int  # edges between the shown nodes (`MAX_SITES` per source, target and kind)
    truncated: bool
    code: dict[str, str] = field(default_factory=dict)
    xy: dict[str, tuple[int, int]] = field(default_factory=dict)  # positions, once placed (`_place`)

    @property
    def center(self) -> Optional[GraphNode]:
        return next((n for n in self.nodes if n.id == self.result.center), None)

    def data(self, xy: Optional[dict[str, tuple[int, int]]] = None) -> dict[str, Any]:
        """The graph as plain objects (what `read_graph` gives back), with positions from `xy`."""
        xy = xy or {}
        return {"center": self.result.center, "nodes": [_node_json(n, xy.get(n.id)) for n in self.nodes],
                "edges": [_edge_json(e) for e in self.edges], "truncated": self.truncated, "code": dict(self.code)}


# -- the payload as the bundle holds it ------------------------------------------------------

# a node row: these fields in this order, then `cell` for a notebook symbol
NODE_ROW = ("id", "name", "kind", "path", "start_line", "end_line", "signature", "importance", "x", "y")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _wire(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (plain objects) as `GRAPH_MIME` holds it: each node and edge one compact JSON array
    as text, edges pointing at nodes by index. nbformat writes every JSON value of an output on a
    line of its own, indented: a node object costs ~400 bytes saved, its row ~200; an edge object
    with two ids ~220, its row ~35. A row is one line of the saved notebook (readable diffs)."""
    index = {n["id"]: i for i, n in enumerate(data["nodes"])}
    nodes = []
    for n in data["nodes"]:
        row = [n["id"], n["name"], n["kind"], n["path"], n["start_line"], n["end_line"], n["signature"],
               n.get("importance", 0), n.get("x"), n.get("y")]
        if n.get("cell") is not None:
            row.append(n["cell"])
        nodes.append(_compact(row))
    edges = [_compact([index[e["source"]], index[e["target"]], e["kind"], e["line"]]
                      + ([] if e["resolved"] else [False])) for e in data["edges"]]
    return {"center": data["center"], "nodes": nodes, "edges": edges, "truncated": data["truncated"],
            "code": dict(data["code"])}


def read_graph(value: Any) -> dict[str, Any]:
    """The graph in a `GRAPH_MIME` value as plain objects: nodes with GraphNode's fields (`x`, `y`
    when laid out; `importance` when above 0; `cell` when in a notebook), edges with the ids of
    their ends — a `GraphResult` validates it. Reads what `mime_bundle` writes (rows as JSON
    text), outputs saved before rows (objects) and the whole payload as JSON text."""
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    nodes: list[dict[str, Any]] = []
    for row in value.get("nodes") or []:
        row = json.loads(row) if isinstance(row, str) else row
        if isinstance(row, list):
            d = dict(zip(NODE_ROW, row))
            if len(row) > len(NODE_ROW):
                d["cell"] = row[len(NODE_ROW)]
        else:
            d = dict(row)
        if not d.get("importance"):
            d.pop("importance", None)
        for key in ("x", "y", "cell"):
            if d.get(key) is None:
                d.pop(key, None)
        nodes.append(d)
    ids = [n["id"] for n in nodes]

    def end(v: Any) -> Any:  # an edge's end: a node's index in a row, its id in an object
        return ids[v] if isinstance(v, int) and not isinstance(v, bool) else v

    edges: list[dict[str, Any]] = []
    for row in value.get("edges") or []:
        row = json.loads(row) if isinstance(row, str) else row
        if isinstance(row, list):
            source, target, kind, line, resolved = (list(row) + [None, None, None, None, True])[:5]
            edges.append({"source": end(source), "target": end(target), "kind": kind, "resolved": resolved is not False,
                          "line": line})
        else:
            edges.append(dict(row))
    return {"center": value["center"], "nodes": nodes, "edges": edges, "truncated": bool(value.get("truncated")),
            "code": dict(value.get("code") or {})}


def _plan(result: GraphResult, max_nodes: int, max_edges: int) -> _Plan:
    """What to show of `result` with at most `max_nodes` nodes and `max_edges` edges."""
    all_nodes = {n.id for n in result.nodes}
    nodes = select_nodes(result, max_nodes)
    edges, inside = _select_edges(result, {n.id for n in nodes}, max_edges)
    truncated = bool(result.truncated or len(nodes) < len(all_nodes) or len(edges) < inside)
    return _Plan(result, nodes, edges, len(all_nodes), inside, truncated)


def _fill_code(plan: _Plan, code: dict[str, str], budget: int) -> None:
    """Excerpts for the shown nodes, the center's first then by importance, while `budget` bytes
    (as saved) last; an excerpt that does not fit is left out (the node just has no code)."""
    plan.code.clear()
    if not code or budget <= 0:
        return
    order = sorted(range(len(plan.nodes)), key=lambda i: (plan.nodes[i].id != plan.result.center,
                                                          -plan.nodes[i].importance, i))
    picked: dict[str, str] = {}
    left = budget
    for i in order:
        nid = plan.nodes[i].id
        text = code.get(nid)
        if not isinstance(text, str) or not text:
            continue
        if nid == plan.result.center:
            text = _excerpt(text, CENTER_EXCERPT_LINES, CENTER_EXCERPT_CHARS)
        else:
            text = _excerpt(text, EXCERPT_LINES, EXCERPT_CHARS)
        cost = len(json.dumps(nid, ensure_ascii=False).encode()) + len(json.dumps(text, ensure_ascii=False).encode()) + 12
        if cost > left:
            continue
        picked[nid] = text
        left -= cost
    plan.code.update((n.id, picked[n.id]) for n in plan.nodes if n.id in picked)  # the nodes' order


def saved_size(bundle: dict[str, Any]) -> int:
    """The bytes one display output holding `bundle` takes in a notebook saved by nbformat (or
    JupyterLab): JSON with indent 1, sorted keys, text split into lines."""
    def doc(data: dict) -> str:
        return json.dumps({"cells": [{"outputs": [{"data": data, "metadata": {}, "output_type": "display_data"}]}]},
                          indent=1, sort_keys=True, ensure_ascii=False, separators=(",", ": "))

    data = {k: v.splitlines(True) if isinstance(v, str) else v for k, v in bundle.items()}
    return len(doc(data).encode()) - len(doc({}).encode())


# -- layout and SVG ---------------------------------------------------------------------------


def _radii(nodes: list[GraphNode], center: str) -> dict[str, float]:
    """Node radii, log-scaled between the smallest and largest positive importance shown."""
    pos = [n.importance for n in nodes if n.importance > 0]
    lo, hi = (min(pos), max(pos)) if pos else (0.0, 0.0)
    span = math.log(hi / lo) if pos and hi > lo else 0.0
    out = {}
    for n in nodes:
        if n.id == center:
            out[n.id] = CENTER_R
        elif n.importance <= 0:
            out[n.id] = MIN_R
        elif span == 0:
            out[n.id] = (MIN_R + MAX_R) / 2
        else:
            out[n.id] = round(MIN_R + math.log(n.importance / lo) / span * (MAX_R - MIN_R), 1)
    return out


def _layout(nodes: list[GraphNode], pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Positions, deterministic: a spring layout from a fixed seed over the nodes in their order
    (a circle for up to three nodes)."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(n.id for n in nodes)
    g.add_edges_from((a, b) for a, b in pairs if a != b)
    if len(nodes) == 1:
        return {nodes[0].id: (0.0, 0.0)}
    n = len(nodes)
    if n <= 3:
        pos = nx.circular_layout(g)
    else:
        pos = nx.spring_layout(g, seed=SEED, k=1.8 / math.sqrt(n), iterations=LAYOUT_ITERATIONS)
    return {k: (float(p[0]), float(p[1])) for k, p in pos.items()}


def _normalise(pos: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """`pos` scaled into [0, 1]² (0.5 on an axis where every node sits at one value)."""
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return {k: ((p[0] - x0) / (x1 - x0) if x1 > x0 else 0.5, (p[1] - y0) / (y1 - y0) if y1 > y0 else 0.5)
            for k, p in pos.items()}


_TOP, _MX, _MY = 28, 70, 24  # the header's height, the margins around the nodes


def _frame(n: int) -> tuple[int, int]:
    """(width, height) of the drawing of `n` nodes (without the header and legend)."""
    width = int(min(1280, max(520, 110 * math.sqrt(max(n, 1)))))
    return width, int(width * 0.62)


def _place(plan: _Plan, layout: Optional[dict[str, tuple[float, float]]] = None) -> dict[str, tuple[int, int]]:
    """Each node's position in the SVG, integers. `layout`: positions of (at least) the plan's
    nodes, from a layout of a larger plan; computed here when not given."""
    nodes = plan.nodes
    if layout is None or any(nd.id not in layout for nd in nodes):
        layout = _layout(nodes, [(e.source, e.target) for e in plan.edges])
    width, height = _frame(len(nodes))
    pos = _normalise({nd.id: layout[nd.id] for nd in nodes})
    return {k: (round(_MX + p[0] * (width - 2 * _MX)), round(_TOP + _MY + p[1] * (height - 2 * _MY)))
            for k, p in pos.items()}


def _pack(elements: Iterable[str], limit: int = SVG_LINE_CHARS) -> list[str]:
    """`elements` joined onto lines of about `limit` characters."""
    lines: list[str] = []
    line: list[str] = []
    size = 0
    for el in elements:
        if line and size + len(el) > limit:
            lines.append("".join(line))
            line, size = [], 0
        line.append(el)
        size += len(el)
    if line:
        lines.append("".join(line))
    return lines


def _shape(group: str, x: int, y: int, r: float) -> str:
    """One node's shape element (its tooltip is added by the caller), in integer coordinates."""
    ri = max(2, round(r))
    if group == "file":
        return f"<rect x='{x - ri}' y='{y - ri}' width='{2 * ri}' height='{2 * ri}' rx='2'"
    if group == "class":
        d = round(ri * 1.25)
        return f"<path d='M{x} {y - d}l{d} {d}l{-d} {d}l{-d} {-d}z'"
    if group == "constant":
        d = round(ri * 1.2)
        return f"<path d='M{x} {y - d}l{d} {round(d * 1.7)}h{-2 * d}z'"
    return f"<circle cx='{x}' cy='{y}' r='{ri}'"


def _text_width(text: str, size: float) -> float:
    return len(text) * size * 0.58


def _svg(plan: _Plan, *, links: Optional[dict[str, str]] = None, standalone: bool = True,
         titles: bool = True, layout: Optional[dict[str, tuple[float, float]]] = None,
         xy: Optional[dict[str, tuple[int, int]]] = None) -> str:
    """The plan drawn as SVG: the head on lines of their own, then each group of edges, nodes
    and labels packed onto lines (`_pack`). `xy`: the nodes' positions (`_place`, from `layout`
    when not given)."""
    result, nodes = plan.result, plan.nodes
    center = result.center
    merged: dict[tuple[str, str, str, bool], list[GraphEdge]] = defaultdict(list)
    for e in plan.edges:
        merged[(e.source, e.target, e.kind, e.resolved)].append(e)
    n = len(nodes)
    width, height = _frame(n)
    top = _TOP
    if xy is None or any(nd.id not in xy for nd in nodes):
        xy = _place(plan, layout)
    radii = _radii(nodes, center)

    groups = sorted({kind_group(nd.kind) for nd in nodes}, key=_GROUP_ORDER.index)
    kinds = sorted({k for _a, _b, k, _r in merged}, key=lambda k: (_EDGE_ORDER.index(k) if k in _EDGE_ORDER else 99, k))
    any_unresolved = any(not r for _a, _b, _k, r in merged)

    # the legend: one row (or more) under the graph
    legend: list[tuple[str, str]] = [("node", g) for g in groups] + [("center", "")]
    legend += [("edge", k) for k in kinds] + ([("unresolved", "")] if any_unresolved else [])
    rows: list[list[tuple[tuple[str, str], str, float]]] = [[]]
    x = 8.0
    for item in legend:
        label = _GROUP_LABEL[item[1]] if item[0] == "node" else item[1] if item[0] == "edge" else item[0]
        w = 30 + _text_width(label, 10.5) + 12
        if x + w > width - 8 and rows[-1]:
            rows.append([])
            x = 8.0
        rows[-1].append((item, label, x))
        x += w
    legend_top = top + height + 4
    total_h = legend_top + 16 * len(rows) + 4

    digest = hashlib.sha1(json.dumps([result.center, [nd.id for nd in nodes], len(plan.edges)]).encode()).hexdigest()[:8]
    gid = f"dg{digest}"
    out: list[str] = []
    ns = " xmlns='http://www.w3.org/2000/svg'" if standalone else ""
    center_node = plan.center
    title = f"graph around {center_node.name if center_node else center}"
    out.append(f"<svg{ns} id='{gid}' class='direng-graph' width='{width}' height='{total_h}' "
               f"viewBox='0 0 {width} {total_h}' font-family='Helvetica,Arial,sans-serif' role='img' "
               f"aria-label='{_x(title)}'>")
    out.append(f"<title>{_x(title)}</title>")
    css = [f"#{gid} .lb text{{font-size:10px;fill:#1a1a1a}}",
           f"#{gid} .lb .c{{font-size:13px;font-weight:bold;fill:#000}}",
           f"#{gid} .e{{fill:none}}",
           f"#{gid} .hd{{font-size:12px;fill:#333}}",
           f"#{gid} .lg{{font-size:10.5px;fill:#555}}"]
    for g in groups:
        fill, stroke = _GROUP_STYLE[g]
        extra = ";stroke-dasharray:2 2;opacity:.8" if g in DIMMED else ""
        css.append(f"#{gid} .n-{g}{{fill:{fill};stroke:{stroke};stroke-width:1.2{extra}}}")
    for k in kinds:
        colour, w, dash = _EDGE_STYLE.get(k, _DEFAULT_EDGE)
        css.append(f"#{gid} .k-{_cls(k)}{{stroke:{colour};stroke-width:{w}" + (f";stroke-dasharray:{dash}" if dash else "")
                   + "}")
    css.append(f"#{gid} .u{{stroke:{UNRESOLVED_EDGE}}}")
    css.append(f"#{gid} .lg .u{{stroke-dasharray:4 3}}")
    for k in kinds:  # unresolved: grey, and dashed when the kind's own line is solid
        if not _EDGE_STYLE.get(k, _DEFAULT_EDGE)[2]:
            css.append(f"#{gid} .k-{_cls(k)}.u{{stroke-dasharray:4 3}}")
    css.append(f"#{gid} .w{{stroke-width:2.2}}")  # parallel edges (several call sites) drawn once, thicker
    css.append(f"#{gid} .cr{{fill:none;stroke:{CENTER_STROKE};stroke-width:3}}")
    out.append("<style>" + "".join(css) + "</style>")
    out.append("<defs>")
    for k in kinds:
        colour = _EDGE_STYLE.get(k, _DEFAULT_EDGE)[0]
        out.append(_marker(f"{gid}-{_cls(k)}", colour))
    if any_unresolved:
        out.append(_marker(f"{gid}-u", UNRESOLVED_EDGE))
    out.append("</defs>")

    # header: the center, its location, the counts and what was left out
    head = title
    if center_node is not None and location(center_node):
        head += f" — {location(center_node)}"
    counts = f"{n} nodes · {len(plan.edges)} edges"
    if n < plan.total_nodes:
        counts += f" (showing {n} of {plan.total_nodes} nodes)"
    elif len(plan.edges) < plan.total_edges:
        counts += f" (of {plan.total_edges})"
    if result.truncated:
        counts += " · neighbourhood truncated by the graph query"
    out.append(f"<text class='hd' x='8' y='17'><tspan font-weight='bold'>{_x(head)}</tspan>  {_x(counts)}</text>")

    # edges, grouped by kind (one style and arrowhead per group); parallel edges drawn once
    pairs = {(a, b) for a, b, _k, _r in merged}
    for k in kinds:
        for resolved in (True, False):
            group = [(a, b, es) for (a, b, kk, r), es in merged.items() if kk == k and r == resolved]
            if not group:
                continue
            marker = f"{gid}-{_cls(k)}" if resolved else f"{gid}-u"
            cls = f"e k-{_cls(k)}" + ("" if resolved else " u")
            paths = [_edge_path(xy[a], xy[b], radii[a], radii[b], (b, a) in pairs, len(es) > 1)
                     for a, b, es in group if a != b and a in xy and b in xy]
            out.extend(_pack([f"<g class='{cls}' marker-end='url(#{marker})'>", *paths, "</g>"]))

    # nodes, grouped by kind; the center ringed in red
    for g in groups:
        shapes = []
        for nd in nodes:
            if kind_group(nd.kind) != g:
                continue
            x, y = xy[nd.id]
            elem = _shape(g, x, y, radii[nd.id])
            elem += f"><title>{_x(_node_title(nd, center))}</title></{_tag(g)}>" if titles else "/>"
            if links and nd.id in links:
                elem = f"<a href='#{_x(links[nd.id])}'>{elem}</a>"
            shapes.append(elem)
        out.extend(_pack([f"<g class='n-{g}'>", *shapes, "</g>"]))
    if center in xy:
        x, y = xy[center]
        out.append(f"<circle class='cr' cx='{x}' cy='{y}' r='{round(CENTER_R + 4)}'/>")

    # labels above everything, under each node
    texts = []
    for nd in nodes:
        x, y = xy[nd.id]
        is_center = nd.id == center
        dy = round(radii[nd.id] + (17 if is_center else 11))
        cls = " class='c'" if is_center else ""
        texts.append(f"<text{cls} x='{x}' y='{y + dy}'>{_x(_label(nd))}</text>")
    out.extend(_pack(["<g class='lb' text-anchor='middle'>", *texts, "</g>"]))

    # the legend
    keys = []
    for r, items in enumerate(rows):
        y = legend_top + 12 + 16 * r
        for (what, value), label, lx in items:
            lx = round(lx)
            if what == "node":
                keys.append(f"<circle class='n-{value}' cx='{lx + 6}' cy='{y - 4}' r='5'/>")
            elif what == "center":
                keys.append(f"<circle class='cr' cx='{lx + 6}' cy='{y - 4}' r='5'/>")
            elif what == "edge":
                keys.append(f"<path class='e k-{_cls(value)}' d='M{lx} {y - 4}h24'/>")
            else:
                keys.append(f"<path class='e k-calls u' d='M{lx} {y - 4}h24'/>")
            keys.append(f"<text x='{lx + 30}' y='{y}'>{_x(label)}</text>")
    out.extend(_pack(["<g class='lg'>", *keys, "</g>"]))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _cls(kind: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", kind.lower()) or "x"


def _tag(group: str) -> str:
    return "rect" if group == "file" else "path" if group in ("class", "constant") else "circle"


def _marker(mid: str, colour: str) -> str:
    return (f"<marker id='{mid}' viewBox='0 0 8 8' refX='7' refY='4' markerWidth='7' markerHeight='7' "
            f"markerUnits='userSpaceOnUse' orient='auto'><path d='M0 0L8 4L0 8z' fill='{colour}'/></marker>")


def _edge_path(a: tuple[int, int], b: tuple[int, int], ra: float, rb: float, bent: bool, thick: bool) -> str:
    """A line from the border of `a` to the border of `b` (bent to one side when `b` → `a` exists
    too, so the two stay apart)."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = x1 - x0, y1 - y0
    dist = math.hypot(dx, dy) or 1.0
    ux, uy = dx / dist, dy / dist
    sx, sy = x0 + ux * (ra + 1), y0 + uy * (ra + 1)
    ex, ey = x1 - ux * (rb + 2), y1 - uy * (rb + 2)
    width = " class='w'" if thick else ""
    if bent:
        cx, cy = (sx + ex) / 2 - uy * 12, (sy + ey) / 2 + ux * 12
        return f"<path d='M{round(sx)} {round(sy)}Q{round(cx)} {round(cy)} {round(ex)} {round(ey)}'{width}/>"
    return f"<path d='M{round(sx)} {round(sy)}L{round(ex)} {round(ey)}'{width}/>"


def _node_title(n: GraphNode, center: str) -> str:
    kind = "unresolved name" if n.id.startswith("unresolved:") else n.kind
    lines = [f"{n.name} ({kind})" + (" ★ center" if n.id == center else "")]
    if n.signature:
        lines.append(n.signature if len(n.signature) <= 120 else n.signature[:119] + "…")
    loc = location(n)
    if loc:
        lines.append(loc)
    return "\n".join(lines)


def render_svg(result: GraphResult, *, max_nodes: int = MAX_NODES, max_edges: int = MAX_EDGES) -> str:
    """The static picture of `result` (a standalone SVG document; see the module docstring)."""
    return _svg(_plan(result, max_nodes, max_edges))


# -- the standalone page ----------------------------------------------------------------------

_PAGE_CSS = """
html, body { margin: 0; padding: 0; font: 13px -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
             color: #222; background: #fff; }
#wrap { padding: 6px 8px; box-sizing: border-box; }
#head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 14px; margin-bottom: 4px; }
#head .center { font-weight: 600; }
#head .loc { color: #666; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.note { color: #8a4b00; background: #fff4e0; border: 1px solid #f0c98a; border-radius: 3px; padding: 0 6px; }
#main { display: flex; flex-wrap: wrap; gap: 8px; }
#graph { flex: 3 1 480px; min-width: 0; max-height: %(height)s; overflow: auto; border: 1px solid #ddd;
         border-radius: 3px; }
#graph svg { display: block; width: 100%%; height: auto; }
#graph a { cursor: pointer; }
#panel { flex: 2 1 260px; min-width: 0; max-height: %(height)s; overflow: auto; border: 1px solid #ddd;
         border-radius: 3px; }
#panel .code { display: none; }
#panel .code:target, #panel:not(:has(.code:target)) .code.center { display: block; }
#panel h3 { margin: 0; padding: 4px 8px; border-bottom: 1px solid #eee; background: #fafafa; font-size: 13px; }
#panel pre { margin: 0; padding: 6px 8px; font: 12px/1.35 ui-monospace, Menlo, Consolas, monospace;
             white-space: pre; tab-size: 4; }
#panel .hint { color: #777; padding: 6px 8px; }
"""


def _css_length(value: str | int) -> str:
    if isinstance(value, (int, float)):
        return f"{int(value)}px"
    value = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?(px|em|rem|vh|%)?", value):
        return value if not value[-1].isdigit() else value + "px"
    return "520px"  # anything else could break out of the style sheet


def _snippet_text(code: str) -> str:
    if len(code) > MAX_SNIPPET_CHARS:
        code = code[:MAX_SNIPPET_CHARS] + "\n… (truncated)"
    return code


def render_html(result: GraphResult, *, code: Optional[dict[str, str]] = None, height: str = "640px",
                max_nodes: int = MAX_NODES, max_edges: int = MAX_EDGES) -> str:
    """A standalone page: the SVG, and a panel with each node's code (click a node; the center's
    is shown first). No script; nothing is fetched; no literal `http(s)://` in the page."""
    code = result.code if code is None else code
    plan = _plan(result, max_nodes, max_edges)
    with_code = [nd for nd in plan.nodes if isinstance(code.get(nd.id), str) and code.get(nd.id)]
    anchors = {nd.id: f"code-{i}" for i, nd in enumerate(with_code)}
    svg = _svg(plan, links=anchors, standalone=False)
    center = plan.center
    center_label = center.name if center else result.center
    meta = " · ".join(x for x in [center.kind if center else "", location(center) if center else ""] if x)
    notes = []
    if len(plan.nodes) < plan.total_nodes:
        notes.append(f"showing {len(plan.nodes)} of {plan.total_nodes} nodes (highest importance kept)")
    if result.truncated:
        notes.append("neighbourhood truncated by the graph query")
    panels = []
    for nd in with_code:
        heading = f"{nd.name} — {location(nd)}" if location(nd) else nd.name
        cls = "code center" if nd.id == result.center else "code"
        panels.append(f"<section id='{anchors[nd.id]}' class='{cls}' data-node='{_x(nd.id)}'><h3>{_x(heading)}</h3>"
                      f"<pre>{_x(_snippet_text(code[nd.id]))}</pre></section>")
    if center is None or center.id not in anchors:
        panels.insert(0, "<div class='code center hint'>click a node to see its code</div>")
    parts = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        "<meta charset='utf-8'>",
        f"<title>{_x('graph: ' + center_label)}</title>",
        "<style>" + _PAGE_CSS % {"height": _css_length(height)} + "</style>",
        "</head>",
        "<body>",
        "<div id='wrap'>",
        "<div id='head'>" + f"<span class='center'>{_x(center_label)}</span>"
        + f"<span class='loc'>{_x(meta)}</span>"
        + f"<span>{len(plan.nodes)} nodes · {len(plan.edges)} edges</span>"
        + "".join(f"<span class='note'>{_x(x)}</span>" for x in notes) + "</div>",
        "<div id='main'>",
        "<div id='graph'>",
        svg.rstrip("\n"),
        "</div>",
        "<div id='panel'>",
        *panels,
        "</div>",
        "</div>",
        "</div>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# -- text -------------------------------------------------------------------------------------


def _text_name(n: Optional[GraphNode], node_id: str) -> str:
    if n is None:
        return node_id.split(":", 1)[-1] if ":" in node_id and "::" not in node_id else node_id
    return n.name or n.id


def render_text(result: GraphResult, max_edges: int = 60) -> str:
    """A plain-text view: the center, then the edges grouped by kind (callers and callees
    of the center first), each with the site it was found at and where its target lives."""
    by_id = {n.id: n for n in result.nodes}
    center = by_id.get(result.center)
    edges = _unique_edges(result.edges)
    out = []
    if center is not None:
        loc = location(center)
        out.append(f"graph around {center.name} ({center.kind})" + (f" — {loc}" if loc else ""))
        if center.signature:
            out.append(f"  {center.signature}")
    else:
        out.append(f"graph around {result.center}")
    out.append(f"  {len(by_id)} nodes, {len(edges)} edges" + (" (truncated by the query)" if result.truncated else ""))

    sections: dict[str, list[GraphEdge]] = defaultdict(list)
    for e in edges:
        if e.kind == "calls" and e.target == result.center:
            sections["callers"].append(e)
        elif e.kind == "calls" and e.source == result.center:
            sections["callees"].append(e)
        else:
            sections[e.kind].append(e)
    order = ["callers", "callees"] + _EDGE_ORDER + sorted(k for k in sections if k not in _EDGE_ORDER + ["callers", "callees"])
    titles = {"callers": f"callers of {center.name if center else result.center}",
              "callees": f"callees of {center.name if center else result.center}",
              "calls": "other calls"}

    shown = 0
    unresolved = 0
    for key in order:
        group = sections.get(key)
        if not group:
            continue
        group = sorted(group, key=lambda e: (not e.resolved, e.source, e.line or 0, e.target))
        rows = []
        for e in group:
            if shown >= max_edges:
                break
            src, dst = by_id.get(e.source), by_id.get(e.target)
            arrow = f"{_text_name(src, e.source)} → {_text_name(dst, e.target)}"
            site = f"{src.path}:{e.line}" if src is not None and src.path and e.line is not None else (
                f"line {e.line}" if e.line is not None else "")
            bits = [arrow]
            if site:
                bits.append(f"at {site}")
            if not e.resolved or (dst is not None and dst.kind in DIMMED) or dst is None:
                bits.append("[unresolved]" if not e.resolved else "[external]")
                unresolved += not e.resolved
            elif dst is not None and location(dst):
                bits.append(f"→ {location(dst)}")
            rows.append("  " + "  ".join(bits))
            shown += 1
        if rows:
            out.append("")
            out.append(f"{titles.get(key, key)} ({len(group)}):")
            out.extend(rows)
    if shown < len(edges):
        out.append("")
        out.append(f"… {len(edges) - shown} more edges not shown (showing {shown} of {len(edges)})")
    elif unresolved:
        out.append("")
        out.append(f"{unresolved} unresolved reference(s): names the index could not tie to a definition")
    return "\n".join(out)


# -- notebook surfaces ------------------------------------------------------------------------


class GraphView:
    """A `GraphResult` that displays itself (`_repr_mimebundle_`: the JSON for the DirEng
    extension, the SVG, the text), within `max_bytes` as a saved output."""

    def __init__(self, result: GraphResult, code: Optional[dict[str, str]] = None, *, height: str = "640px",
                 max_nodes: int = MAX_NODES, max_edges: int = MAX_EDGES, max_bytes: int = MAX_OUTPUT_BYTES,
                 text_edges: int = 60):
        self.result = result
        self.code = result.code if code is None else code
        self.height = height
        self.max_nodes = max_nodes
        self.max_edges = max_edges
        self.max_bytes = max_bytes
        self.text_edges = text_edges
        self._bundle: Optional[dict[str, Any]] = None

    def text(self) -> str:
        return render_text(self.result, max_edges=self.text_edges)

    def bundle(self) -> dict[str, Any]:
        """`{GRAPH_MIME: data, "image/svg+xml": svg, "text/plain": text}`, within `max_bytes`.

        When everything does not fit, in this order: code excerpts get what is left (at most
        `CODE_BUDGET_BYTES`; the center's and `MIN_CODE_BYTES` of others are kept room for), the
        picture loses its tooltips, the text lists fewer edges, then the bundle shows as many
        nodes as fit (the center, then the nearest and most important; `truncated` says so). The
        layout is computed once: a smaller plan keeps the positions its nodes had."""
        if self._bundle is not None:
            return self._bundle
        code = self.code or {}
        reserve = 0
        for nid, text in code.items():
            if isinstance(text, str) and text:
                center = nid == self.result.center
                excerpt = _excerpt(text, *((CENTER_EXCERPT_LINES, CENTER_EXCERPT_CHARS) if center
                                           else (EXCERPT_LINES, EXCERPT_CHARS)))
                reserve += len(json.dumps(excerpt, ensure_ascii=False).encode()) + len(nid) + 16
        center_code = code.get(self.result.center)
        center_cost = (len(json.dumps(_excerpt(center_code, CENTER_EXCERPT_LINES, CENTER_EXCERPT_CHARS),
                                      ensure_ascii=False).encode()) + len(self.result.center) + 16
                       if isinstance(center_code, str) and center_code else 0)
        reserve = min(reserve, center_cost + MIN_CODE_BYTES)
        texts = {n: render_text(self.result, max_edges=n) for n in {self.text_edges, min(self.text_edges, 20)}}
        full = _plan(self.result, self.max_nodes, self.max_edges)
        layout = _layout(full.nodes, {(e.source, e.target) for e in full.edges})

        def attempt(plan: _Plan, titles: bool, text_edges: int) -> tuple[bool, str, str, int]:
            plan.xy = _place(plan, layout)
            svg = _svg(plan, titles=titles, xy=plan.xy)
            text = texts[text_edges]
            used = saved_size({GRAPH_MIME: _wire(plan.data(plan.xy)), "image/svg+xml": svg, "text/plain": text})
            return used + reserve <= self.max_bytes, svg, text, used

        plan = full
        for titles, text_edges in [(True, self.text_edges), (False, self.text_edges), (False, min(self.text_edges, 20))]:
            fits, svg, text, used = attempt(plan, titles, text_edges)
            if fits:
                break
        if not fits and len(full.nodes) > 1:
            # the most nodes that fit (nodes matter more than tooltips and text lines): bisect
            one = _plan(self.result, 1, self.max_edges)
            best = (one, *attempt(one, False, text_edges)[1:])  # the center alone, even if over
            lo, hi = 2, len(full.nodes) - 1
            while lo <= hi:
                mid = (lo + hi) // 2
                trial = _plan(self.result, mid, self.max_edges)
                ok, t_svg, t_text, t_used = attempt(trial, False, text_edges)
                if ok:
                    best, lo = (trial, t_svg, t_text, t_used), mid + 1
                else:
                    hi = mid - 1
            plan, svg, text, used = best
        _fill_code(plan, code, min(CODE_BUDGET_BYTES, self.max_bytes - used))
        self._bundle = {GRAPH_MIME: _wire(plan.data(plan.xy)), "image/svg+xml": svg, "text/plain": text}
        return self._bundle

    @property
    def data(self) -> dict[str, Any]:
        """The `application/vnd.direng.graph+json` payload as plain objects (`read_graph`)."""
        return read_graph(self.bundle()[GRAPH_MIME])

    @property
    def svg(self) -> str:
        return self.bundle()["image/svg+xml"]

    @property
    def html(self) -> str:
        """The standalone page (`render_html`), with the code excerpts in full."""
        return render_html(self.result, code=self.code, height=self.height, max_nodes=self.max_nodes,
                           max_edges=self.max_edges)

    def save(self, path) -> None:
        """`.svg`: the picture; `.json`: the payload; anything else: the standalone page."""
        path = Path(path)
        if path.suffix.lower() == ".svg":
            text = self.svg
        elif path.suffix.lower() == ".json":
            text = json.dumps(self.data, indent=1, ensure_ascii=False) + "\n"
        else:
            text = self.html
        path.write_text(text, encoding="utf-8")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        bundle = self.bundle()
        return {k: v for k, v in bundle.items() if (not include or k in include) and not (exclude and k in exclude)}

    def _repr_pretty_(self, p, cycle: bool) -> None:
        p.text("GraphView(...)" if cycle else self.text())

    def __repr__(self) -> str:
        return self.text()


def graph_data(result: GraphResult, code: Optional[dict[str, str]] = None, **kwargs) -> dict[str, Any]:
    """The `application/vnd.direng.graph+json` payload alone (bounded as in `mime_bundle`), as
    plain objects (`read_graph`)."""
    return GraphView(result, code, **kwargs).data


def mime_bundle(result: GraphResult, code: Optional[dict[str, str]] = None, **kwargs) -> dict[str, Any]:
    """For `IPython.display.display(mime_bundle(r), raw=True)`: the JSON for the DirEng extension,
    the SVG and the text (`code` defaults to `result.code`)."""
    return dict(GraphView(result, code, **kwargs).bundle())


def graph_widget(result: GraphResult, code: Optional[dict[str, str]] = None, **kwargs):
    """An `ipywidgets.Output` holding the bundle, for widget layouts (VBox, Tab, …): the
    frontend renders it as it would the magic's output."""
    import ipywidgets

    out = ipywidgets.Output(layout=ipywidgets.Layout(width="100%"))
    out.outputs = ({"output_type": "display_data", "data": mime_bundle(result, code, **kwargs), "metadata": {}},)
    return out
