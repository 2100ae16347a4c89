"""The index's records: symbols, references, parsed files, chunks and hits, as plain dataclasses.

They are made by the thousand while indexing and read on every search, and a one-shot
`direng search` should not pay ~120 ms to import pydantic for them. So they are standard-library
dataclasses; pydantic validates and describes them wherever they cross a boundary, as fields
of the models in `models.py` (which re-exports them: one vocabulary) or through
`pydantic.TypeAdapter` (the client reads a server's hits so). `jsonable` turns records and
pydantic models alike into JSON data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional


class SymbolKind(str, Enum):
    function = "function"
    method = "method"
    klass = "class"
    struct = "struct"
    enum = "enum"
    interface = "interface"  # TS interfaces, Rust traits, Go interfaces
    trait = "trait"
    impl = "impl"  # Rust impl blocks
    type_alias = "type"
    constant = "constant"
    module = "module"
    cell = "cell"  # a notebook's code cell (`cell[3]`): the scope of its top-level code


class RefKind(str, Enum):
    call = "call"
    import_ = "import"
    inherit = "inherits"  # class Foo(Bar), class A extends B, struct embedding
    implement = "implements"  # implements I, impl Trait for T
    type_ref = "references"  # type annotations and other type uses


class ChunkKind(str, Enum):
    symbol = "symbol"
    file = "file"  # file-level summary
    text = "text"  # markdown/config/other text


@dataclass(frozen=True, slots=True, kw_only=True)
class Symbol:
    """A definition found by the parser.

    `qualname` is dotted within the file (`Session.request`, `impl Display for Point.fmt`);
    `start_line`/`end_line` are 1-based and inclusive — within `cell` for a notebook's symbols.
    """

    name: str
    qualname: str
    kind: SymbolKind
    start_line: int
    end_line: int
    signature: str = ""
    docstring: str = ""
    parent: Optional[str] = None  # qualname of the enclosing symbol, if any
    cell: Optional[int] = None  # 0-based notebook cell; None outside notebooks

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SymbolKind(self.kind))


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """A use of a name: a call, an import, a base class, a type.

    `name` is the text as written (`self.session.get`, `os.path.join`, `Base`);
    `scope` is the qualname of the enclosing symbol (None at module level).
    For imports, `module` is the module path as written (`os.path`, `./util`, `crate::net`)
    and `name` the imported name (or the module itself) and `alias` the local binding.
    """

    kind: RefKind
    name: str
    line: int
    scope: Optional[str] = None
    module: Optional[str] = None
    alias: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RefKind(self.kind))


@dataclass(slots=True, kw_only=True)
class ParsedFile:
    """What the parser extracts from one source file."""

    path: str  # relative to the root, forward slashes
    language: str
    symbols: list[Symbol] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    line_count: int = 0
    has_errors: bool = False  # tree-sitter recovered from syntax errors


@dataclass(slots=True, kw_only=True)
class Chunk:
    """A unit of retrieval: what is embedded and scored."""

    id: str  # stable: sha256 of (path, qualname, part, content)
    path: str
    symbol: Optional[str] = None
    kind: str  # a SymbolKind value, or "file" / "text"
    start_line: int
    end_line: int
    text: str  # what is embedded: signature + docstring + body (possibly truncated)
    language: Optional[str] = None
    cell: Optional[int] = None  # 0-based notebook cell the lines are in; None outside notebooks


@dataclass(slots=True, kw_only=True)
class Hit:
    """One search result, always citable as `path:start_line-end_line` — or, inside a notebook,
    `path:cell N:start_line-end_line` with the lines counted within that (0-based) cell."""

    path: str
    symbol: Optional[str] = None
    kind: str
    start_line: int
    end_line: int
    score: float
    snippet: str = ""
    signature: str = ""
    sources: list[str] = field(default_factory=list)  # which retrievers found it
    cell: Optional[int] = None  # 0-based notebook cell; None outside notebooks

    @property
    def citation(self) -> str:
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.start_line}-{self.end_line}"


def jsonable(value: Any) -> Any:
    """Records and pydantic models (and lists and dicts of them) as plain JSON data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
