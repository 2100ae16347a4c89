"""Notebook views: the index's graph (`graph`, exported here) and `%direng delegate`'s task view
(`delegate`, imported where it is used). Light to import: networkx loads only when a graph is laid
out, ipywidgets only when a widget is built."""

from __future__ import annotations

from .graph import GRAPH_MIME, GraphView, graph_data, graph_widget, mime_bundle, render_html, render_svg, render_text

__all__ = ["GRAPH_MIME", "GraphView", "graph_data", "graph_widget", "mime_bundle", "render_html", "render_svg",
           "render_text"]
