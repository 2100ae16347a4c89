"""Notebook views: the index's graph (`graph`, exported here) and `%direng delegate`'s task view
(`delegate`, imported where it is used). Light to import: pyvis, jinja2 and ipywidgets load only
when a view is drawn."""

from __future__ import annotations

from .graph import GraphView, graph_widget, mime_bundle, render_html, render_text

__all__ = ["GraphView", "graph_widget", "mime_bundle", "render_html", "render_text"]
