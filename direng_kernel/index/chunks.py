"""Cut files into retrieval chunks.

Each definition becomes a chunk that reads like a card a person would skim: where it is, what
it is called, its signature and docstring, then its body. Classes (and Rust impl blocks)
carry their header and member signatures rather than whole bodies, so methods are not
duplicated inside their class. Rust methods live outside their type: a method's card also
names its impl block (`impl Display for Point`), and a type gets one more part listing its
impl blocks in the file (issue 14, measured in docs/benchmarks.md; Go methods already name
their receiver). Long bodies are split into parts that keep the header, so a hit deep in a
long function still cites the right lines. Each file also gets a summary chunk (module
docstring + what it defines), and non-code text is cut into line windows.

Chunk ids hash the content, not the position: a line inserted above a function leaves its
id (and its stored vectors) unchanged, while the store keeps the current line range.
"""

from __future__ import annotations

import hashlib

from ..records import Chunk, ParsedFile, Symbol
from .intent import TYPE_KINDS

CONTAINERS = {"class", "struct", "enum", "interface", "trait", "impl", "module"}
MAX_CHARS = 2000
TEXT_WINDOW = 40


def _chunk_id(path: str, symbol: str | None, part: int, text: str) -> str:
    h = hashlib.sha256(f"{path}\0{symbol}\0{part}\0{text}".encode("utf-8", "replace"))
    return h.hexdigest()[:32]


def _card(path: str, sym: Symbol, context: str | None = None) -> str:
    """`context`: the Rust impl header a method sits in (`impl Display for Point`), which its
    own signature does not name."""
    head = f"{path} {sym.kind.value} {sym.qualname}\n" + (f"{context}\n" if context else "")
    head += f"{sym.signature or sym.name}\n"
    if sym.docstring:
        head += sym.docstring.strip()[:600] + "\n"
    return head


def _rust_impls(parsed: ParsedFile, members: dict[str, list[Symbol]]) -> dict[str, list[str]]:
    """Type -> one line per impl block of it in this file (`impl Display for Point: fmt`).

    A Rust type's methods live in impl blocks beside it, so its own chunk (`pub struct Error
    { err: Box<ErrorImpl> }`) says little of what it does; this list becomes one more part of
    the type's chunk. The type is the owner of the block's methods (`Point.fmt` → `Point`);
    blocks without methods are left out."""
    types = {s.qualname for s in parsed.symbols if s.kind.value in TYPE_KINDS and not s.parent}
    out: dict[str, list[str]] = {}
    for s in parsed.symbols:
        methods = members.get(s.qualname, [])
        if s.kind.value == "impl" and not s.parent and methods:
            owner = methods[0].qualname.rsplit(".", 1)[0]
            if owner in types:
                out.setdefault(owner, []).append(f"{s.qualname}: " + ", ".join(m.name for m in methods))
    return out


def symbol_chunks(parsed: ParsedFile, lines: list[str], chunk_lines: int) -> list[Chunk]:
    members: dict[str, list[Symbol]] = {}
    for s in parsed.symbols:
        if s.parent:
            members.setdefault(s.parent, []).append(s)
    rust = parsed.language == "rust"
    impls = {s.qualname for s in parsed.symbols if s.kind.value == "impl"} if rust else set()
    impl_lines = _rust_impls(parsed, members) if rust else {}
    out: list[Chunk] = []
    for sym in parsed.symbols:
        head = _card(parsed.path, sym, sym.parent if sym.parent in impls else None)
        kind = sym.kind.value
        if kind in CONTAINERS and sym.qualname in members:
            body = "\n".join(m.signature or m.name for m in members[sym.qualname])
            parts = [(sym.start_line, sym.end_line, body)]
        else:
            parts = []
            for start in range(sym.start_line, sym.end_line + 1, chunk_lines):
                end = min(sym.end_line, start + chunk_lines - 1)
                parts.append((start, end, "\n".join(lines[start - 1:end])))
        if sym.qualname in impl_lines:
            parts.append((sym.start_line, sym.end_line, "\n".join(impl_lines[sym.qualname])))
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
