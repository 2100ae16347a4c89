"""Notebooks are code too: a `.ipynb` read as cells, parsed in its language, cut into chunks.

Reading. The outputs are dropped from the JSON first — they are never indexed, and a notebook of
50 MB of plots has small sources — then nbformat reads what is left (4.x as it is; 3 and older are
converted to 4, worksheets flattened). The notebook's language is `metadata.kernelspec.language`
or `language_info.name` (a v3 notebook's code cells name it), Python when the metadata says
nothing; a cell's own metadata may name another (VS Code, .NET Interactive, SoS). Code in a
language with a grammar is parsed with the index's tree-sitter machinery; R, Julia, SQL and
unknown kernels are indexed as text. A notebook whose structure cannot be read (not JSON, no list
of cells, a cell that is not an object, a source that is not text; checked by `notebook_file.load`,
which `direng scan` shares) raises `NotebookError`: the index skips it and counts it under
`SKIP_REASON`. Odd or missing metadata is just ignored.

Masking. Before tree-sitter sees a Python cell, IPython syntax is replaced line for line, so
every line number stays true: `%magic` and `!shell` lines become `pass` (`x = !ls` becomes
`x = None`; `%time f(x)` keeps `f(x)`), `obj?` / `??obj` help becomes `pass`, and a cell magic's
first line is blanked — its whole body too when the magic is not Python (`%%bash`, `%%html`,
`%%sql`…): such a cell is indexed as text in that language. Only lines that start a statement
are touched, never a line inside brackets or a string or after a backslash.

Qualification. A code cell is a symbol `cell[N]` (kind `cell`): the scope of its top-level code,
so its imports and calls are references from the cell. Its top-level definitions are its
children in the graph (the cell contains them) but are qualified by the notebook alone
(`nb.ipynb::normalize_frame`): the cells share one namespace. A name that several cells define
keeps one symbol per cell: the last definition keeps the plain qualname, each earlier one is
qualified by its cell (`nb.ipynb::cell[1].normalize_frame`; `qualify_redefinitions`). Every
symbol and chunk records its 0-based `cell`; line numbers are within that cell.
(`index/resolve.py` resolves a cell's top-level names in cell order, so a use between two
definitions calls the earlier one.)

Chunks. Definitions become the usual symbol chunks; a cell's chunk holds its top-level code with
each definition shown by its signature; Markdown cells (and cells indexed as text) become text
chunks titled by their heading (or the heading of the section they are in); the notebook gets a
summary chunk like a file's.

Freshness. `Notebook.digest` hashes the language and the cells' types, languages and sources
only: a save that changes nothing but outputs, execution counts or metadata re-parses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..records import Chunk, ParsedFile, Reference, Symbol, SymbolKind
from ..notebook_file import NotebookError
from ..notebook_file import load as load_notebook_file

log = logging.getLogger(__name__)

SKIP_REASON = "malformed notebook"
CELL_KIND = SymbolKind.cell.value
_CELL_QUALNAME = re.compile(r"cell\[(\d+)\]")
_CELL_PREFIX = re.compile(r"cell\[\d+\]\.")

# Kernel language names (lower case) → the grammar that parses them (index/languages.py).
GRAMMARS = {
    "python": "python", "python3": "python", "python2": "python", "ipython": "python",
    "ipython3": "python", "py": "python",
    "javascript": "javascript", "js": "javascript", "node": "javascript", "nodejs": "javascript",
    "typescript": "typescript", "ts": "typescript",
    "rust": "rust", "go": "go", "golang": "go",
}
# Kernel names (kernelspec.name) → language, for metadata that names a kernel but no language.
_KERNEL_PREFIXES = (("python", "python"), ("ir", "r"), ("julia", "julia"), ("ijavascript", "javascript"),
                    ("javascript", "javascript"), ("tslab", "typescript"), ("deno", "typescript"),
                    ("evcxr", "rust"), ("rust", "rust"), ("gophernotes", "go"), ("gonb", "go"),
                    ("xsql", "sql"), ("xeus-sql", "sql"), ("sqlite", "sql"))
# Cell magics whose body is Python; every other cell magic makes its cell text in that language.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3", "python2",
                                 "pypy", "memit", "mprun", "snakeviz", "heat"})
_CELL_MAGIC_LANGUAGES = {"sh": "bash", "script": "shell", "!": "shell", "system": "shell", "sx": "shell",
                         "js": "javascript", "r": "r", "writefile": "text", "file": "text", "svg": "svg"}
# Line magics that run the Python statement after their options: `%time f(x)` keeps `f(x)`.
_STATEMENT_MAGICS = frozenset({"time", "timeit", "prun", "debug", "memit", "mprun"})
_MAGIC_OPTIONS = re.compile(r"(?:-\w+(?:\s+\d+)?\s+)*")
_ASSIGN_MAGIC = re.compile(r"([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*[%!]")
_HELP = re.compile(r"\?{1,2}\s*[\w.*\[\]()]+\s*|[\w.*\[\]()]+\s*\?{1,2}\s*")
# `%direng …` / `%%direng` cells are the user's conversation with DirEng, not code: indexing them
# would make every question asked in a notebook its own best answer the next time it is asked.
_DIRENG_MAGIC = re.compile(r"^\s*%{1,2}direng\b")
_SCRUB_SUFFIX = {"python": ".py", "javascript": ".js", "typescript": ".ts", "rust": ".rs", "go": ".go"}

_ATX = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_HTML_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.I)
_TAGS = re.compile(r"<[^>]+>")


@dataclass
class Cell:
    index: int  # 0-based position in the notebook (v3 worksheets flattened)
    kind: str  # code | markdown | raw
    source: str
    label: str  # the language it is written in: python, r, sql, …; markdown; raw

    @property
    def line_count(self) -> int:
        return _line_count(self.source)


@dataclass
class Notebook:
    path: str
    label: str  # the notebook's language, lower case ("python", "r", … or "unknown")
    cells: list[Cell]

    @property
    def language(self) -> str | None:
        """What the index records as the file's language: the grammar, else the kernel's language."""
        return GRAMMARS.get(self.label) or (None if self.label == "unknown" else self.label)

    @property
    def source_bytes(self) -> int:
        return sum(len(c.source.encode("utf-8")) for c in self.cells)

    @property
    def digest(self) -> str:
        """The content hash freshness compares: language and cells (type, language, source) only."""
        h = hashlib.sha256(b"ipynb-sources-1\0" + self.label.encode("utf-8", "replace"))
        for c in self.cells:
            h.update(f"\0{c.kind}\0{c.label}\0{len(c.source)}\0".encode("utf-8", "replace"))
            h.update(c.source.encode("utf-8"))
        return h.hexdigest()

    # The scrub runs over one text per file, line for line; a notebook's is its cells' sources.
    def document(self) -> str:
        return "\n".join(c.source for c in self.cells)

    def split(self, text: str) -> list[str] | None:
        """`document()`'s text (as scrubbed) back into cells; None if its lines no longer line up."""
        if not self.cells:
            return []
        parts = text.split("\n")
        sizes = [c.source.count("\n") + 1 for c in self.cells]
        if len(parts) != sum(sizes):
            return None
        out, at = [], 0
        for n in sizes:
            out.append("\n".join(parts[at:at + n]))
            at += n
        return out

    def scrub_name(self) -> str:
        """The file name secret detection sees: the code's extension picks its keyword rules."""
        return self.path + _SCRUB_SUFFIX.get(GRAMMARS.get(self.label, ""), "")


def _line_count(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _valid_text(text: str) -> str:
    """JSON may carry lone surrogates (`\\ud800`), which cannot be stored or parsed as UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


# ---------------------------------------------------------------- reading


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _kernel_language(name: str) -> str:
    name = name.strip().lower()
    for prefix, language in _KERNEL_PREFIXES:
        if name.startswith(prefix):
            return language
    return "unknown"


def _notebook_label(raw: dict, raw_cells: list) -> str:
    meta = _dict(raw.get("metadata"))
    kernelspec, info = _dict(meta.get("kernelspec")), _dict(meta.get("language_info"))
    for value in (kernelspec.get("language"), info.get("name")):
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    for cell in raw_cells:  # nbformat 3: each code cell names its language
        value = cell.get("language")
        if cell.get("cell_type") == "code" and isinstance(value, str) and value.strip():
            return value.strip().lower()
    name = kernelspec.get("name")
    if isinstance(name, str) and name.strip():
        return _kernel_language(name)
    return "unknown" if kernelspec or info else "python"  # no language metadata at all: Python


def _cell_label(meta, default: str) -> str:
    """A cell's own language, where polyglot front ends record one."""
    meta = _dict(meta)
    for value in (_dict(meta.get("vscode")).get("languageId"),
                  _dict(meta.get("polyglot_notebook")).get("kernelName"),
                  _dict(meta.get("dotnet_interactive")).get("language"),
                  meta.get("kernel")):
        if isinstance(value, str) and value.strip():
            value = value.strip().lower()
            if value in GRAMMARS:
                return value
            known = _kernel_language(value)  # SoS names kernels: `ir`, `python3`
            return value if known == "unknown" else known
    return default


def read_notebook(path: str, data: bytes | str) -> Notebook:
    """The cells of a notebook file (outputs dropped); raises `NotebookError` on bad structure
    (checked by `notebook_file.load`, which the scanner shares)."""
    loaded = load_notebook_file(data)
    raw, major, minor, raw_cells = loaded.raw, loaded.major, loaded.minor, loaded.cells
    for cell in raw_cells:
        cell.pop("outputs", None)  # never indexed; for v3 an empty list keeps the cell valid
        if major == 3 and cell["cell_type"] == "code":
            cell["outputs"] = []
        cell.pop("attachments", None)
        if not isinstance(cell.get("metadata", {}), dict):
            cell["metadata"] = {}
    if not isinstance(raw.get("metadata", {}), dict):
        raw["metadata"] = {}
    label = _notebook_label(raw, raw_cells)

    import nbformat  # slow to import (jsonschema): only when a notebook is read

    try:
        nb = nbformat.versions[major].to_notebook_json(raw, minor=minor)
        if major < 4:
            with _quiet_validation():
                nb = nbformat.convert(nb, 4)
        cells = list(nb.get("cells") or [])
    except Exception as exc:  # noqa: BLE001 — whatever nbformat trips on is a malformed notebook
        raise NotebookError(f"unreadable nbformat {major} notebook ({type(exc).__name__}: {exc})") from None
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise NotebookError(f"cell {i} is not an object")
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookError(f"cell {i}'s source is not text")
        kind = cell.get("cell_type")
        kind = kind if kind in ("code", "markdown") else "raw"
        cell_label = _cell_label(cell.get("metadata"), label) if kind == "code" else kind
        out.append(Cell(i, kind, _valid_text(source), cell_label))
    return Notebook(path, label, out)


class _NoValidationNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Notebook JSON is")


@contextmanager
def _quiet_validation():
    """nbformat's v3 → v4 conversion validates and logs every schema complaint (many lines, at
    ERROR); a notebook it still converts is fine for the index, one it cannot is reported once."""
    from traitlets.log import get_logger

    logger, quiet = get_logger(), _NoValidationNoise()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def cell_source(data: bytes | str, cell: int) -> str | None:
    """One cell's source from a notebook file's current content (None if it has no such cell).

    nbformat 4 is read straight from the JSON (no nbformat import: answers quote cells often);
    anything else goes through `read_notebook`, so the cell numbers are the index's."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        raw = json.loads(text)
        if isinstance(raw, dict) and raw.get("nbformat") == 4 and isinstance(raw.get("cells"), list):
            cells = raw["cells"]
            if not 0 <= cell < len(cells) or not isinstance(cells[cell], dict):
                return None
            source = cells[cell].get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            return source if isinstance(source, str) else None
    except (ValueError, RecursionError, TypeError):
        return None
    try:
        cells = read_notebook("<notebook>", text).cells
    except NotebookError:
        return None
    return cells[cell].source if 0 <= cell < len(cells) else None


# ---------------------------------------------------------------- masking


def _cell_magic(lines: list[str]) -> tuple[int, str] | None:
    """(line index, magic name) when the cell starts with `%%name` (after blank lines)."""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("%%"):
            name = stripped[2:].split(None, 1)[0] if stripped[2:].strip() else ""
            return i, name
        return None
    return None


def _scan(line: str, state: dict) -> None:
    """Follow brackets, strings and comments across one line of Python (IPython's own idea of
    where a statement starts, without its tokenizer)."""
    i, n = 0, len(line)
    while i < n:
        quote = state["string"]
        if quote:
            if line[i] == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                state["string"] = None
                i += len(quote)
                continue
            i += 1
            continue
        ch = line[i]
        if ch == "#":
            state["continued"] = False
            return
        if ch in "([{":
            state["depth"] += 1
        elif ch in ")]}":
            state["depth"] = max(0, state["depth"] - 1)
        elif ch in "'\"":
            delim = line[i:i + 3] if line[i:i + 3] in ("'''", '"""') else ch
            state["string"] = delim
            i += len(delim)
            continue
        i += 1
    continued = line.endswith("\\")
    if state["string"] and len(state["string"]) == 1 and not continued:
        state["string"] = None  # an unterminated one-line string ends with its line
    state["continued"] = continued


def _mask_line(line: str) -> str | None:
    """The Python a statement line of IPython syntax stands for, or None when it is plain Python."""
    stripped = line.lstrip()
    indent = line[:len(line) - len(stripped)]
    if stripped.startswith("%") and not stripped.startswith("%%"):
        name, _, rest = stripped[1:].partition(" ")
        if name in _STATEMENT_MAGICS:
            statement = rest[_MAGIC_OPTIONS.match(rest).end():].strip()
            if statement and not statement.endswith("\\"):
                return indent + statement
        return indent + "pass"
    if stripped.startswith("!") or stripped.startswith("%%"):
        return indent + "pass"
    m = _ASSIGN_MAGIC.match(stripped)
    if m:
        return f"{indent}{m.group(1)} = None"
    if "?" in stripped and _HELP.fullmatch(stripped):
        return indent + "pass"
    return None


def mask_ipython(source: str) -> tuple[str, str | None]:
    """(`source` with IPython syntax replaced line for line, the language of a non-Python cell
    magic or None). A non-Python cell magic blanks the whole cell: it is not Python."""
    lines = source.split("\n")
    magic = _cell_magic(lines)
    if magic is not None:
        at, name = magic
        if name not in _PYTHON_CELL_MAGICS:
            language = _CELL_MAGIC_LANGUAGES.get(name.lower(), name.lower() or "text")
            return "\n".join("" for _ in lines), language
        lines[at] = ""
    if not any(c in source for c in "%!?"):
        return "\n".join(lines), None
    state = {"depth": 0, "string": None, "continued": False}
    masking = False  # inside a masked line's backslash continuation
    for i, line in enumerate(lines):
        if masking:
            masking = line.endswith("\\")
            lines[i] = ""
            continue
        if state["depth"] == 0 and not state["string"] and not state["continued"]:
            masked = _mask_line(line)
            if masked is not None:
                masking = line.endswith("\\")
                lines[i] = masked
                continue
        _scan(line, state)
    return "\n".join(lines), None


# ---------------------------------------------------------------- parsing


def headings(markdown: str) -> list[str]:
    """A Markdown cell's headings (ATX, setext, HTML), outside fenced code."""
    out: list[str] = []
    lines = markdown.split("\n")
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = _ATX.match(line)
        if m and m.group(1):
            out.append(m.group(1))
        elif i and _SETEXT.match(line) and lines[i - 1].strip() and not _ATX.match(lines[i - 1]):
            out.append(lines[i - 1].strip())
        else:
            out += [t for t in (_TAGS.sub("", h).strip() for h in _HTML_HEADING.findall(line)) if t]
    return out


@dataclass
class CellPlan:
    """How one cell was read: parsed with a grammar (`grammar`), or text in `label`."""

    grammar: str | None
    label: str
    section: str  # the heading of the section the cell is in ("" before any)
    title: str  # a Markdown cell's own first heading, else the section's


def _signature(source: str) -> str:
    for line in source.split("\n"):
        if line.strip():
            return " ".join(line.split())[:240]
    return ""


def parse_notebook(nb: Notebook, sources: list[str] | None = None) -> tuple[ParsedFile, list[CellPlan]]:
    """Symbols and references of every code cell (lines within cells), and how each cell was read.

    `sources` are the cells' sources to parse (the scrubbed ones); the notebook's by default.
    A top-level name defined in several cells keeps every definition: see `qualify_redefinitions`."""
    from .parse import parse_source

    sources = [c.source for c in nb.cells] if sources is None else sources
    parsed_cells: list[tuple[int, list[Symbol], list[Reference]]] = []
    plans: list[CellPlan] = []
    has_errors = False
    section = ""
    for cell, source in zip(nb.cells, sources):
        grammar, label, title = None, cell.label, section
        if cell.kind == "markdown":
            heads = headings(source)
            title = heads[0] if heads else section
            plans.append(CellPlan(None, "markdown", section, title))
            section = heads[-1] if heads else section
            continue
        if cell.kind == "code" and source.strip():
            grammar = GRAMMARS.get(cell.label)
            code = source
            if grammar == "python":
                code, magic = mask_ipython(source)
                if magic is not None:
                    grammar, label = None, magic
        plans.append(CellPlan(grammar, label, section, title))
        if grammar is None:
            continue
        parsed = parse_source(nb.path, code.encode("utf-8"), grammar)
        has_errors |= parsed.has_errors
        scope = cell_scope(cell.index)
        cell_symbol = Symbol(name=scope, qualname=scope, kind=SymbolKind.cell, start_line=1,
                             end_line=max(1, _line_count(source)), signature=_signature(without_direng(source)),
                             docstring=section, cell=cell.index)
        symbols = [cell_symbol] + [replace(s, cell=cell.index, parent=s.parent or scope)
                                   for s in parsed.symbols]
        refs = [r if r.scope else replace(r, scope=scope) for r in parsed.references]
        parsed_cells.append((cell.index, symbols, refs))
    symbols, refs = qualify_redefinitions(parsed_cells)
    line_count = sum(_line_count(s) for s in sources)
    return ParsedFile(path=nb.path, language=nb.language or "text", symbols=symbols, references=refs,
                      line_count=line_count, has_errors=has_errors), plans


def without_direng(source: str) -> str:
    """A code cell's source with its DirEng conversation blanked, line for line: a `%%direng`
    cell entirely, each `%direng` line alone."""
    lines = source.split("\n")
    if _DIRENG_MAGIC.match(source.lstrip("\n")) and source.lstrip().startswith("%%"):
        return "\n" * (len(lines) - 1)
    return "\n".join("" if _DIRENG_MAGIC.match(line) else line for line in lines)


def cell_scope(index: int) -> str:
    """The qualname of a code cell's own symbol (the scope of its top-level code): `cell[N]`."""
    return f"cell[{index}]"


def qualify_redefinitions(cells: list[tuple[int, list[Symbol], list[Reference]]]
                          ) -> tuple[list[Symbol], list[Reference]]:
    """Give every definition of a name that several cells define a symbol of its own.

    The cells share one namespace, so a top-level definition is qualified by the notebook alone
    (`nb.ipynb::normalize_frame`). When a later cell defines the name again, both definitions
    must stay — a use in between calls the earlier one — so their ids must differ: the last
    definition (the one in force once every cell has run, as after "Run All") keeps the plain
    name, and each earlier one is qualified by its cell, `cell[1].normalize_frame` (members and
    nested definitions follow: `cell[1].Frame.clean`). The scopes of the references inside such a
    definition are renamed with it. `plain_qualname` undoes the prefix. Two definitions of a
    name within one cell are one symbol, as in a file."""
    last: dict[str, int] = {}
    for index, symbols, _refs in cells:
        for s in symbols:
            if s.kind != SymbolKind.cell and s.parent == cell_scope(index):
                last[s.name] = index
    out_symbols: list[Symbol] = []
    out_refs: list[Reference] = []
    for index, symbols, refs in cells:
        scope = cell_scope(index)
        shadowed = {s.qualname for s in symbols
                    if s.kind != SymbolKind.cell and s.parent == scope and last.get(s.name, index) > index}
        if not shadowed:
            out_symbols += symbols
            out_refs += refs
            continue
        prefix = scope + "."

        def rename(qual: str | None) -> str | None:
            if qual is None or qual == scope:
                return qual
            head = qual.split(".", 1)[0]
            return prefix + qual if head in shadowed else qual

        for s in symbols:
            if s.kind == SymbolKind.cell:
                out_symbols.append(s)
            else:
                out_symbols.append(replace(s, qualname=rename(s.qualname), parent=rename(s.parent)))
        out_refs += [replace(r, scope=rename(r.scope)) if r.scope != scope else r for r in refs]
    return out_symbols, out_refs


def plain_qualname(qualname: str) -> str:
    """A notebook symbol's qualname as written in its cell: `cell[1].normalize_frame` (an earlier
    definition of a name a later cell redefines) → `normalize_frame`; any other is unchanged."""
    m = _CELL_PREFIX.match(qualname)
    return qualname[m.end():] if m else qualname


# ---------------------------------------------------------------- chunks


def notebook_chunks(nb: Notebook, sources: list[str], parsed: ParsedFile, plans: list[CellPlan],
                    chunk_lines: int) -> list[Chunk]:
    """The notebook's summary, its definitions, its code cells and its text cells as chunks."""
    from .chunks import MAX_CHARS, TEXT_WINDOW, _chunk_id, symbol_chunks

    path = nb.path
    by_cell: dict[int, list[Symbol]] = {}
    for s in parsed.symbols:
        if s.kind != SymbolKind.cell:
            by_cell.setdefault(s.cell, []).append(s)
    out: list[Chunk] = []
    sources = [without_direng(s) if c.kind == "code" else s for c, s in zip(nb.cells, sources)]
    first = next((i for i, s in enumerate(sources) if s.strip()), None)
    if first is not None:
        lines = sources[first].split("\n")
        names = ", ".join(dict.fromkeys(plain_qualname(s.qualname) for s in parsed.symbols
                                        if s.parent and _CELL_QUALNAME.fullmatch(s.parent)))
        text = f"{path} notebook ({nb.label})\ndefines: {names[:1000]}\n" + "\n".join(lines[:15])
        text = text[:MAX_CHARS]
        out.append(Chunk(id=_chunk_id(path, None, -1, text), path=path, symbol=None, kind="file", start_line=1,
                         end_line=max(1, _line_count(sources[first])), text=text, language=nb.language,
                         cell=first))
    for cell, source, plan in zip(nb.cells, sources, plans):
        if not source.strip():
            continue
        lines = source.split("\n")
        n = max(1, _line_count(source))
        if plan.grammar is None:  # Markdown, raw, and code without a grammar: text windows
            what = "" if cell.kind == "markdown" else f" ({plan.label})"
            title = f"{path} cell {cell.index}{what}" + (f": {plan.title}" if plan.title else "")
            for start in range(1, n + 1, TEXT_WINDOW):
                end = min(n, start + TEXT_WINDOW - 1)
                body = "\n".join(lines[start - 1:end])
                if not body.strip():
                    continue
                text = f"{title}\n{body}"[:MAX_CHARS]
                out.append(Chunk(id=_chunk_id(path, None, start, text), path=path, symbol=None, kind="text",
                                 start_line=start, end_line=end, text=text, cell=cell.index,
                                 language=plan.label if cell.kind != "raw" else None))
            continue
        defs = by_cell.get(cell.index, [])
        cell_file = ParsedFile(path=path, language=plan.grammar, symbols=defs)
        out += [replace(c, cell=cell.index) for c in symbol_chunks(cell_file, lines, chunk_lines)]
        # The cell itself: its top-level code, each top-level definition shown by its signature.
        scope = cell_scope(cell.index)
        shown: dict[int, str | None] = {}
        for d in defs:
            if d.parent == scope:
                shown[d.start_line] = d.signature or d.name
                shown.update({line: None for line in range(d.start_line + 1, d.end_line + 1)})
        head = f"{path} cell {cell.index}" + (f": {plan.section}" if plan.section else "") + "\n"
        if not any(lines[i - 1].strip() for i in range(1, n + 1) if i not in shown):
            continue  # nothing but definitions: their own chunks say it all
        for part, start in enumerate(range(1, n + 1, chunk_lines)):
            end = min(n, start + chunk_lines - 1)
            body = [shown[i] if i in shown else lines[i - 1] for i in range(start, end + 1)
                    if shown.get(i, "") is not None]
            if not "".join(body).strip():
                continue
            text = (head + "\n".join(body))[:MAX_CHARS]
            out.append(Chunk(id=_chunk_id(path, scope, part, text), path=path, symbol=scope, kind=CELL_KIND,
                             start_line=start, end_line=end, text=text, language=plan.grammar, cell=cell.index))
    seen: set[str] = set()
    return [c for c in out if not (c.id in seen or seen.add(c.id))]


def cell_of_scope(scope: str | None) -> int | None:
    """N for the scope `cell[N]` (a cell's top-level code), else None."""
    m = _CELL_QUALNAME.fullmatch(scope or "")
    return int(m.group(1)) if m else None
