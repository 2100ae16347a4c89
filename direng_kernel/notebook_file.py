"""The layout of a `.ipynb` file: its JSON checked and read as a flat list of cells.

One reader for everything that opens notebooks below the index: the index (`index/notebooks.py`,
which then drops the outputs and lets nbformat convert old versions) and the content scanner
(`security/scan.py`, which reads sources *and* outputs). Both therefore agree on what a
malformed notebook is and on cell numbers: 0-based, nbformat 3's worksheets flattened in order
(as nbformat's v3 → v4 conversion numbers them).

Malformed means the structure cannot be read — not JSON, not an object, no usable nbformat
version, no list of cells (or worksheets), a cell that is not an object or has no type, a source
that is not text — and raises `NotebookError` with a one-line reason. Odd or missing metadata is
not malformed. Nothing here imports nbformat: reading the layout is plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Output MIME types that hold text a person (or a secret) could be in; images and other binary
# payloads are base64 and left out.
_TEXT_MIME_PREFIXES = ("text/", "application/json", "application/javascript", "application/xml")
# nbformat 3 kept an output's data under short keys instead of MIME types.
_V3_TEXT_KEYS = ("text", "html", "latex", "json", "javascript", "markdown")


class NotebookError(ValueError):
    """A notebook whose structure cannot be read; the message says what is wrong."""


@dataclass
class RawNotebook:
    raw: dict  # the whole JSON object (nbformat and nbformat_minor filled in)
    major: int
    minor: int
    cells: list[dict]  # every cell, worksheets flattened; each an object with a `cell_type`


def _text_field(value, what: str) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return
    raise NotebookError(f"{what} is not text")


def _raw_cells(raw: dict, major: int) -> list:
    if major >= 4:
        cells = raw.get("cells")
        if not isinstance(cells, list):
            raise NotebookError("no list of cells")
        return cells
    if major < 3:  # nbformat 1 and 2 are read by nbformat's converters, whatever their layout
        return []
    worksheets = raw.get("worksheets")
    if not isinstance(worksheets, list):
        raise NotebookError(f"nbformat {major} without a list of worksheets")
    cells = []
    for ws in worksheets:
        if not isinstance(ws, dict) or not isinstance(ws.get("cells"), list):
            raise NotebookError("a worksheet without a list of cells")
        cells += ws["cells"]
    return cells


def load(data: bytes | str) -> RawNotebook:
    """A notebook file's JSON with its structure checked; raises `NotebookError` (one line)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        raw = json.loads(text)
    except RecursionError:
        raise NotebookError("not JSON (nested too deeply)") from None
    except ValueError as exc:
        raise NotebookError(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise NotebookError("not a JSON object")
    major = raw.get("nbformat")
    if major is None and isinstance(raw.get("cells"), list):
        major = raw["nbformat"] = 4  # hand-written: cells without a version
    if not isinstance(major, int) or isinstance(major, bool):
        raise NotebookError("no nbformat version")
    if major > 4 or major < 1:
        raise NotebookError(f"unsupported nbformat {major}")
    minor = raw.get("nbformat_minor")
    if not isinstance(minor, int) or isinstance(minor, bool):
        raw["nbformat_minor"] = minor = 0 if major < 4 else 4
    cells = _raw_cells(raw, major)
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise NotebookError(f"cell {i} is not an object")
        if not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"cell {i} has no cell type")
        for key in ("source", "input"):
            _text_field(cell.get(key), f"cell {i}'s {key}")
    return RawNotebook(raw, major, minor, cells)


def _join(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v if isinstance(v, str) else json.dumps(v, default=str) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def cell_source(cell: dict) -> str:
    """A cell's source text (nbformat 3 code cells keep theirs under `input`)."""
    key = "input" if "input" in cell and "source" not in cell else "source"
    return _join(cell.get(key) or "")


def output_text(cell: dict) -> str:
    """The text a cell's outputs show, in output order: streams, text-like data (plain, HTML,
    Markdown, LaTeX, JSON, JavaScript), errors with their tracebacks; images are left out."""
    parts: list[str] = []
    outputs = cell.get("outputs")
    for out in outputs if isinstance(outputs, list) else []:
        if not isinstance(out, dict):
            continue
        data = out.get("data")
        if isinstance(data, dict):  # nbformat 4: MIME bundle
            parts += [_join(v) for mime, v in sorted(data.items()) if mime.startswith(_TEXT_MIME_PREFIXES)]
        parts += [_join(out[k]) for k in _V3_TEXT_KEYS if k in out]  # v4 streams keep `text` too
        if out.get("output_type") in ("error", "pyerr"):
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
            traceback = out.get("traceback")
            if isinstance(traceback, list):
                parts.append("\n".join(str(t) for t in traceback))
    return "\n".join(p for p in parts if p)


def code_language(raw: dict) -> str:
    """The notebook's language as its metadata names it, lower case; `python` when it names none."""
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        value = meta.get(key).get(field) if isinstance(meta.get(key), dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return "python"
