"""Notebook views of index results (light to import: pyvis/ipywidgets load only when used)."""

from __future__ import annotations

from .graph import GraphView, graph_widget, mime_bundle, render_html, render_text

__all__ = ["GraphView", "graph_widget", "mime_bundle", "render_html", "render_text"]
