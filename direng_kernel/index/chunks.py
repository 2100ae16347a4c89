"""Cut files into retrieval chunks.

Each definition becomes a chunk that reads like a card a person would skim: where it is, what
it is called, its signature and docstring, then its body. Classes (and Rust impl blocks)
carry their header and member signatures rather than whole bodies, so methods are not
duplicated inside their class. Long bodies are split into parts that keep the header, so a
hit deep in a long function still cites the right lines. Each file also gets a summary chunk
(module docstring + what it defines), and non-code text is cut into line windows.

Chunk ids hash the content, not the position: a line inserted above a function leaves its
id (and its stored vectors) unchanged, while the store keeps the current line range.
"""

from __future__ import annotations

import hashlib

from ..records import Chunk, ParsedFile, Symbol

CONTAINERS = {"class", "struct", "enum", "interface", "trait", "impl", "module"}
MAX_CHARS = 2000
TEXT_WINDOW = 40


def _chunk_id(path: str, symbol: str | None, part: int, text: str) -> str:
    h = hashlib.sha256(f"{path}\0{symbol}\0{part}\0{text}".encode("utf-8", "replace"))
    return h.hexdigest()[:32]


def _card(path: str, sym: Symbol) -> str:
    head = f"{path} {sym.kind.value} {sym.qualname}\n{sym.signature or sym.name}\n"
    if sym.docstring:
        head += sym.docstring.strip()[:600] + "\n"
    return head


def symbol_chunks(parsed: ParsedFile, lines: list[str], chunk_lines: int) -> list[Chunk]:
    members: dict[str, list[Symbol]] = {}
    for s in parsed.symbols:
        if s.parent:
            members.setdefault(s.parent, []).append(s)
    out: list[Chunk] = []
    for sym in parsed.symbols:
        head = _card(parsed.path, sym)
        kind = sym.kind.value
        if kind in CONTAINERS and sym.qualname in members:
            body = "\n".join(m.signature or m.name for m in members[sym.qualname])
            parts = [(sym.start_line, sym.end_line, body)]
        else:
            parts = []
            for start in range(sym.start_line, sym.end_line + 1, chunk_lines):
                end = min(sym.end_line, start + chunk_lines - 1)
                parts.append((start, end, "\n".join(lines[start - 1:end])))
        for i, (start, end, body) in enumerate(parts):
            text = (head + body)[:MAX_CHARS]
            out.append(Chunk(
                id=_chunk_id(parsed.path, sym.qualname, i, text), path=parsed.path, symbol=sym.qualname,
                kind=kind, start_line=start, end_line=end, text=text, language=parsed.language,
            ))
    return out


def file_chunk(parsed: ParsedFile, lines: list[str]) -> Chunk:
    """A summary of the file: its leading comment/docstring and the names it defines."""
    top = [s for s in parsed.symbols if not s.parent]
    lead = "\n".join(lines[: min(len(lines), 15)])
    names = ", ".join(s.qualname for s in top[:60])
    text = f"{parsed.path} file ({parsed.language})\ndefines: {names}\n{lead}"[:MAX_CHARS]
    return Chunk(
        id=_chunk_id(parsed.path, None, -1, text), path=parsed.path, symbol=None, kind="file",
        start_line=1, end_line=max(1, len(lines)), text=text, language=parsed.language,
    )


def text_chunks(path: str, lines: list[str]) -> list[Chunk]:
    out = []
    for start in range(1, max(1, len(lines)) + 1, TEXT_WINDOW):
        end = min(len(lines), start + TEXT_WINDOW - 1) or 1
        text = f"{path}\n" + "\n".join(lines[start - 1:end])
        if not text.strip():
            continue
        text = text[:MAX_CHARS]
        out.append(Chunk(
            id=_chunk_id(path, None, start, text), path=path, symbol=None, kind="text",
            start_line=start, end_line=end, text=text, language=None,
        ))
    return out


def chunks_for(parsed: ParsedFile | None, path: str, text: str, chunk_lines: int) -> list[Chunk]:
    lines = text.splitlines()
    if parsed is None:
        return text_chunks(path, lines)
    chunks = [file_chunk(parsed, lines), *symbol_chunks(parsed, lines, chunk_lines)]
    # Identical twins (same path, symbol and text) would collide on id: keep the first.
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]
