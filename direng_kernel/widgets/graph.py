"""The interactive view of a `GraphResult`: a vis.js network (built with pyvis), fully inlined.

`render_html` returns a self-contained page: vis-network's JS/CSS are inlined from pyvis's
bundled copies (nothing is fetched from a CDN, and the page holds no `http(s)://` URL at all),
nodes are coloured by kind and sized by importance, the center is highlighted, edges are styled
by kind, and clicking a node shows its source (from `code`) in a panel beside the graph.
Big neighbourhoods are capped at `max_nodes` with a visible "showing N of M nodes" note, and
physics stops after a bounded stabilization so a browser never spins.

In a notebook the page is shown through `<iframe srcdoc=…>` (`GraphView`, `mime_bundle`,
`graph_widget`), so element ids never clash between outputs and the scripts run; `render_text`
is the fallback for frontends without HTML (papermill logs, terminals).

The page's template is package data (`templates/graph.html`). Only the standard library and
the models are imported at module level: pyvis, jinja2 and ipywidgets load inside the
functions that need them.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import defaultdict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Optional

from ..models import GraphEdge, GraphNode, GraphResult

__all__ = ["GraphView", "graph_widget", "mime_bundle", "render_html", "render_text"]

# -- styling ----------------------------------------------------------------------------------

CLASS_LIKE = {"class", "struct", "enum", "interface", "trait", "impl", "type"}
FUNCTION_LIKE = {"function", "method"}
DIMMED = {"external", "module"}

# group → (background, border, font colour, shape)
_GROUP_STYLE = {
    "file": ("#cfd8e3", "#7f93ab", "#2b3a4a", "square"),
    "class": ("#f6b26b", "#b8671f", "#3a2408", "diamond"),
    "function": ("#6fa8dc", "#2f6aa3", "#13314f", "dot"),
    "constant": ("#93c47d", "#4f8a3a", "#1f3a14", "triangle"),
    "module": ("#e4dcef", "#b3a4cc", "#8c8299", "square"),
    "external": ("#ececec", "#b5b5b5", "#9a9a9a", "dot"),
    "other": ("#d0d0d0", "#8f8f8f", "#333333", "dot"),
}
_GROUP_LABEL = {
    "file": "file",
    "class": "class-like",
    "function": "function / method",
    "constant": "constant",
    "module": "external module",
    "external": "unresolved / external",
}
CENTER_BORDER = "#d62728"

# kind → vis edge options
_EDGE_STYLE: dict[str, dict[str, Any]] = {
    "calls": {"color": "#2f6aa3", "width": 1.8, "dashes": False, "arrows": {"to": {"enabled": True, "scaleFactor": 0.7}}},
    "inherits": {"color": "#b8671f", "width": 1.8, "dashes": [8, 5],
                 "arrows": {"to": {"enabled": True, "scaleFactor": 0.9, "type": "triangle"}}},
    "implements": {"color": "#8e5a1c", "width": 1.8, "dashes": [8, 5],
                   "arrows": {"to": {"enabled": True, "scaleFactor": 0.9, "type": "triangle"}}},
    "contains": {"color": "#d9d9d9", "width": 1.0, "dashes": False,
                 "arrows": {"to": {"enabled": True, "scaleFactor": 0.4}}},
    "imports": {"color": "#8e7cc3", "width": 1.3, "dashes": [2, 4],
                "arrows": {"to": {"enabled": True, "scaleFactor": 0.6}}},
    "references": {"color": "#5b9aa6", "width": 1.2, "dashes": [5, 4],
                   "arrows": {"to": {"enabled": True, "scaleFactor": 0.6}}},
}
_DEFAULT_EDGE = {"color": "#999999", "width": 1.0, "dashes": False, "arrows": {"to": {"enabled": True, "scaleFactor": 0.6}}}
UNRESOLVED_EDGE = "#b0b0b0"
_EDGE_ORDER = ["calls", "inherits", "implements", "references", "imports", "contains"]

MIN_SIZE, MAX_SIZE = 10.0, 34.0
MAX_SNIPPET_CHARS = 20_000
MAX_LABEL = 48


def kind_group(kind: str) -> str:
    if kind == "file":
        return "file"
    if kind in CLASS_LIKE:
        return "class"
    if kind in FUNCTION_LIKE:
        return "function"
    if kind == "constant":
        return "constant"
    if kind == "module":
        return "module"
    if kind == "external":
        return "external"
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


# -- URL defanging: the page must hold no http(s):// text (nothing may even look fetchable) ---

_URL = re.compile(r"(?i)(https?):(?=//)")


def _defang_js(text: str) -> str:
    """`http://` → `http:\\/\\/` inside JS/JSON: the same string to the interpreter."""
    return re.sub(r"(?i)(https?)://", lambda m: m.group(1) + r":\/\/", text).replace("</script", r"<\/script")


def _defang_html(text: str) -> str:
    """`http://` → `http&#58;//` in (already escaped) HTML text: renders identically."""
    return _URL.sub(lambda m: m.group(1) + "&#58;", text)


def _esc(text: str) -> str:
    return _defang_html(html.escape(text, quote=True))


# -- selection --------------------------------------------------------------------------------


def _unique_edges(edges: Iterable[GraphEdge]) -> list[GraphEdge]:
    seen: set[tuple] = set()
    out = []
    for e in edges:
        key = (e.source, e.target, e.kind, e.line, e.resolved)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def select_nodes(result: GraphResult, max_nodes: int) -> list[GraphNode]:
    """The nodes to draw: all of them, or the center plus the highest-importance others."""
    nodes = list({n.id: n for n in result.nodes}.values())
    if max_nodes <= 0 or len(nodes) <= max_nodes:
        return nodes
    near = {e.target for e in result.edges if e.source == result.center}
    near |= {e.source for e in result.edges if e.target == result.center}
    ranked = sorted(nodes, key=lambda n: (n.id != result.center, -n.importance, n.id not in near, n.id))
    keep = {n.id for n in ranked[:max_nodes]}
    return [n for n in nodes if n.id in keep]  # keep the result's order


def _sizes(nodes: list[GraphNode]) -> dict[str, float]:
    """Node sizes, log-scaled between the smallest and largest positive importance shown."""
    pos = [n.importance for n in nodes if n.importance > 0]
    if not pos:
        return {n.id: MIN_SIZE + 4 for n in nodes}
    lo, hi = min(pos), max(pos)
    span = math.log(hi / lo) if hi > lo else 0.0
    out = {}
    for n in nodes:
        if n.importance <= 0:
            out[n.id] = MIN_SIZE - 2
        elif span == 0:
            out[n.id] = (MIN_SIZE + MAX_SIZE) / 2
        else:
            t = math.log(n.importance / lo) / span
            out[n.id] = round(MIN_SIZE + t * (MAX_SIZE - MIN_SIZE), 2)
    return out


def _node_title(n: GraphNode, center: str) -> str:
    kind = "unresolved name" if n.id.startswith("unresolved:") else n.kind
    lines = [f"{n.name}  ({kind})" + ("  ★ center" if n.id == center else "")]
    if n.signature:
        lines.append(n.signature)
    loc = location(n)
    if loc:
        lines.append(loc)
    if n.importance:
        lines.append(f"importance {n.importance:.4g}")
    return "\n".join(lines)


def _edge_title(kind: str, lines: list[int], resolved: bool, src: GraphNode, dst: GraphNode) -> str:
    where = ""
    if lines:
        where = (" line " if len(lines) == 1 else " lines ") + ", ".join(map(str, lines))
    text = f"{src.name} → {dst.name}\n{kind}{where}"
    if src.path and lines:
        text += f"\n{src.path}:{lines[0]}"
    if not resolved:
        text += "\n(unresolved)"
    return text


# -- HTML -------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _vis_assets() -> tuple[str, str]:
    """vis-network's JS and CSS from pyvis's bundled copy, defanged; the CSS loses the
    navigation-button images (unused here; ~200 kB of data: URIs)."""
    import pyvis  # the bundled lib lives in its package

    lib = Path(pyvis.__file__).parent / "templates" / "lib"
    dirs = sorted(lib.glob("vis-*"), key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.name)))
    if not dirs:  # pragma: no cover - a broken pyvis install
        raise RuntimeError(f"pyvis ships no vis-network bundle under {lib}")
    js = (dirs[-1] / "vis-network.min.js").read_text(encoding="utf-8")
    css = (dirs[-1] / "vis-network.css").read_text(encoding="utf-8")
    css = re.sub(r'background-image:url\("data:[^"]*"\)', "background-image:none", css)
    css = _URL.sub(lambda m: m.group(1) + "\\3a ", css).replace("</style", "<\\/style")
    return _defang_js(js), css


@lru_cache(maxsize=1)
def _page_template() -> str:
    """The page's Jinja template (package data: `widgets/templates/graph.html`)."""
    return resources.files(__package__).joinpath("templates").joinpath("graph.html").read_text(encoding="utf-8")


def _legend(groups: set[str], edge_kinds: set[str], unresolved: bool) -> str:
    parts = []
    for g in ["file", "class", "function", "constant", "module", "external"]:
        if g in groups:
            bg, border, _, _ = _GROUP_STYLE[g]
            parts.append(f'<span><i style="background:{bg};border-color:{border}"></i>{_GROUP_LABEL[g]}</span>')
    parts.append(f'<span><i style="background:#fff;border:2px solid {CENTER_BORDER}"></i>center</span>')
    for k in _EDGE_ORDER:
        if k in edge_kinds:
            st = _EDGE_STYLE[k]
            style = "dashed" if st["dashes"] and st["dashes"][0] > 3 else ("dotted" if st["dashes"] else "solid")
            parts.append(f'<span><b style="border-top-style:{style};border-top-color:{st["color"]}"></b>{k}</span>')
    if unresolved:
        parts.append(f'<span><b style="border-top-style:solid;border-top-color:{UNRESOLVED_EDGE}"></b>unresolved</span>')
    return "".join(parts)


def _snippet_text(code: str) -> str:
    if len(code) > MAX_SNIPPET_CHARS:
        code = code[:MAX_SNIPPET_CHARS] + "\n… (truncated)"
    return code


def render_html(result: GraphResult, *, code: Optional[dict[str, str]] = None, height: str = "520px",
                max_nodes: int = 150) -> str:
    """A self-contained interactive page for `result` (see the module docstring)."""
    from pyvis.network import Network

    code = code or {}
    all_nodes = list({n.id: n for n in result.nodes}.values())
    by_id = {n.id: n for n in all_nodes}
    shown = select_nodes(result, max_nodes)
    keep = {n.id for n in shown}
    sizes = _sizes(shown)

    net = Network(height=height, width="100%", directed=True, cdn_resources="in_line",
                  select_menu=False, filter_menu=False, neighborhood_highlight=False)
    groups: set[str] = set()
    for n in shown:
        g = kind_group(n.kind)
        groups.add(g)
        bg, border, font, shape = _GROUP_STYLE[g]
        is_center = n.id == result.center
        extra: dict[str, Any] = {}
        if g in DIMMED:
            extra["opacity"] = 0.7
            extra["shapeProperties"] = {"borderDashes": [3, 3]}
        color = {"background": bg, "border": CENTER_BORDER if is_center else border,
                 "highlight": {"background": bg, "border": "#000000"},
                 "hover": {"background": bg, "border": "#000000"}}
        net.add_node(
            n.id, label=_label(n), shape=shape, color=color, title=_node_title(n, result.center),
            size=max(sizes[n.id], 22.0) if is_center else sizes[n.id],
            borderWidth=4 if is_center else 1.5, borderWidthSelected=4 if is_center else 2.5,
            font={"color": "#000000" if is_center else font, "size": 16 if is_center else 13,
                  "strokeWidth": 3, "strokeColor": "#ffffff"},
            shadow={"enabled": is_center, "size": 12, "color": "rgba(214,39,40,0.45)"},
            **extra,
        )

    # merge parallel edges of one kind (one call site per line) into one drawn edge
    merged: dict[tuple[str, str, str], list[GraphEdge]] = defaultdict(list)
    all_edges = _unique_edges(result.edges)
    for e in all_edges:
        if e.source in keep and e.target in keep:
            merged[(e.source, e.target, e.kind)].append(e)
    edge_kinds: set[str] = set()
    any_unresolved = False
    for i, ((src, dst, kind), group) in enumerate(merged.items()):
        resolved = all(e.resolved for e in group)
        lines = sorted({e.line for e in group if e.line is not None})
        style = json.loads(json.dumps(_EDGE_STYLE.get(kind, _DEFAULT_EDGE)))
        edge_kinds.add(kind)
        if not resolved:
            any_unresolved = True
            style["color"] = UNRESOLVED_EDGE
            style["dashes"] = style["dashes"] or [4, 4]
        style["color"] = {"color": style["color"], "highlight": "#000000", "hover": "#000000",
                          "opacity": 0.55 if kind == "contains" else 0.9}
        if len(lines) > 1:
            style["width"] = style["width"] + 0.6
        net.add_edge(src, dst, id=f"e{i}", title=_edge_title(kind, lines, resolved, by_id[src], by_id[dst]),
                     **style)

    big = len(shown) > 60
    net.options = {
        "autoResize": True,
        "layout": {"randomSeed": 7, "improvedLayout": not big},
        "nodes": {"scaling": {"label": {"enabled": False}}},
        "edges": {"smooth": {"enabled": True, "type": "continuous", "roundness": 0.3},
                  "selectionWidth": 1.5, "hoverWidth": 0.8},
        "physics": {
            "enabled": True,
            "solver": "forceAtlas2Based",
            "forceAtlas2Based": {"gravitationalConstant": -70, "centralGravity": 0.012, "springLength": 110,
                                 "springConstant": 0.06, "damping": 0.5, "avoidOverlap": 0.4},
            "maxVelocity": 60, "minVelocity": 1.0, "timestep": 0.5,
            "stabilization": {"enabled": True, "iterations": 200, "updateInterval": 25, "fit": True},
        },
        "interaction": {"hover": True, "tooltipDelay": 150, "navigationButtons": False, "keyboard": False,
                        "multiselect": False, "hideEdgesOnDrag": big},
    }
    nodes, edges, _heading, _height, _width, options_json = net.get_network_data()

    # the click panel: node metadata (JSON, for the JS) and escaped code (HTML, never innerHTML)
    meta = {n.id: {"label": n.name, "kind": n.kind, "loc": location(n), "sig": n.signature} for n in shown}
    snippets = "".join(
        f'<pre data-node="{_esc(nid)}">{_esc(_snippet_text(code[nid]))}</pre>'
        for nid in (n.id for n in shown) if isinstance(code.get(nid), str)
    )
    center = by_id.get(result.center)
    if center is not None and center.id in keep:
        panel_title = f"{center.name} — {location(center)}" if location(center) else center.name
        panel_code = code.get(center.id) or center.signature or "(click a node to see its code)"
    else:
        panel_title, panel_code = "code", "(click a node to see its code)"

    notes = []
    if len(shown) < len(all_nodes):
        notes.append(f"showing {len(shown)} of {len(all_nodes)} nodes (highest importance kept)")
    if result.truncated:
        notes.append("neighbourhood truncated by the graph query")
    drawn_edges = sum(len(g) for g in merged.values())
    counts = f"{len(shown)} nodes · {drawn_edges} edges"
    if drawn_edges < len(all_edges):
        counts += f" (of {len(all_edges)})"

    from jinja2 import Environment

    page = Environment(autoescape=False).from_string(_page_template())  # pieces below are escaped by hand
    vis_js, vis_css = _vis_assets()

    def js(value: Any) -> str:
        # `<`, `>`, `&` and `'` as \\u escapes: nothing in the data can close the <script>
        raw = json.dumps(value, ensure_ascii=False)
        raw = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027")
        return _defang_js(raw.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))

    center_label = center.name if center else result.center
    center_meta = " · ".join(x for x in [center.kind if center else "", location(center) if center else ""] if x)
    return page.render(
        title=_esc(f"graph: {center_label}"),
        vis_css=vis_css,
        vis_js=vis_js,
        height=_css_length(height),
        center_label=_esc(center_label),
        center_meta=_esc(center_meta),
        counts=_esc(counts),
        notes=[_esc(x) for x in notes],
        legend=_legend(groups, edge_kinds, any_unresolved),
        panel_title=_esc(panel_title),
        panel_code=_esc(_snippet_text(panel_code)),
        snippets=snippets,
        nodes_json=js(nodes),
        edges_json=js(edges),
        meta_json=js(meta),
        options_json=_defang_js(options_json),
    )


def _css_length(value: str | int) -> str:
    if isinstance(value, (int, float)):
        return f"{int(value)}px"
    value = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?(px|em|rem|vh|%)?", value):
        return value if not value[-1].isdigit() else value + "px"
    return "520px"  # anything else could break out of the style sheet


def _px(value: str | int) -> Optional[int]:
    m = re.fullmatch(r"(\d+)(?:\.\d+)?(px)?", str(value).strip())
    return int(m.group(1)) if m else None


def iframe(page: str, height: str = "520px") -> str:
    """`page` in an `<iframe srcdoc>`: isolated ids, scripts that run in notebook outputs."""
    inner = _px(_css_length(height))
    outer = f"{inner + 110}px" if inner is not None else "640px"
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{outer};border:none;display:block" '
            f'title="code graph" frameborder="0"></iframe>')


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
    """A `GraphResult` that displays itself: interactive in HTML frontends, text elsewhere."""

    def __init__(self, result: GraphResult, code: Optional[dict[str, str]] = None, *, height: str = "520px",
                 max_nodes: int = 150, max_edges: int = 60):
        self.result = result
        self.code = code
        self.height = height
        self.max_nodes = max_nodes
        self.max_edges = max_edges
        self._html: Optional[str] = None

    @property
    def html(self) -> str:
        """The standalone page (what the iframe shows)."""
        if self._html is None:
            self._html = render_html(self.result, code=self.code, height=self.height, max_nodes=self.max_nodes)
        return self._html

    def text(self) -> str:
        return render_text(self.result, max_edges=self.max_edges)

    def save(self, path) -> None:
        Path(path).write_text(self.html, encoding="utf-8")

    def _repr_html_(self) -> str:
        return iframe(self.html, self.height)

    def _repr_markdown_(self) -> str:
        return "```text\n" + self.text().replace("```", "`\u200b``") + "\n```"

    def _repr_pretty_(self, p, cycle: bool) -> None:
        p.text("GraphView(...)" if cycle else self.text())

    def __repr__(self) -> str:
        return self.text()


def mime_bundle(result: GraphResult, code: Optional[dict[str, str]] = None, **kwargs) -> dict[str, str]:
    """For `IPython.display.display(mime_bundle(r), raw=True)`: HTML iframe plus a text fallback."""
    view = GraphView(result, code, **kwargs)
    return {"text/html": view._repr_html_(), "text/plain": view.text()}


def graph_widget(result: GraphResult, code: Optional[dict[str, str]] = None, **kwargs):
    """An `ipywidgets.HTML` holding the iframe, for widget layouts (VBox, Tab, …)."""
    import ipywidgets

    view = GraphView(result, code, **kwargs)
    return ipywidgets.HTML(value=view._repr_html_(), layout=ipywidgets.Layout(width="100%"))
