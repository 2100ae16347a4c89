"""The languages the index parses: file extensions, tree-sitter grammar and query files.

A language is data, not code: `parse.py` is generic and reads everything language-specific
from a `LanguageSpec` (which query files to run, which nodes wrap a definition, which type
names are too common to be worth a reference). Grammars and queries are compiled once per
process and cached.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from tree_sitter import Language, Query

from ..discovery import SOURCE_EXTENSIONS, language_for_path

__all__ = ["LANGUAGES", "LanguageSpec", "language_for_path", "query"]


def _extensions(language: str) -> tuple[str, ...]:
    return tuple(ext for ext, name in SOURCE_EXTENSIONS.items() if name == language)


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    extensions: tuple[str, ...]
    grammar: tuple[str, str]  # (python module, function) returning the tree-sitter language pointer
    queries: tuple[str, ...]  # files in `queries/`, concatenated
    # Parents that belong to a definition (decorators, `export`, `const` around `x = () => …`):
    # the symbol's line range and signature start there.
    wrappers: frozenset[str] = frozenset()
    # Type names that say nothing about the code base; never emitted as references.
    builtin_types: frozenset[str] = frozenset()


_PY_BUILTINS = frozenset(
    "int str bool float bytes complex None object list dict set frozenset tuple type bytearray memoryview "
    "Any Optional Union List Dict Set FrozenSet Tuple Type Callable Iterable Iterator Generator Sequence "
    "Mapping MutableMapping MutableSequence MutableSet Collection Container Literal ClassVar Final Self "
    "Awaitable Coroutine AsyncIterator AsyncIterable AsyncGenerator Annotated TypeVar NoReturn Never "
    "DefaultDict OrderedDict Counter Deque ChainMap Hashable Sized Reversible TypeAlias".split()
)
_TS_BUILTINS = frozenset(
    "Array ReadonlyArray Promise PromiseLike Awaited Record Partial Required Readonly Pick Omit Exclude "
    "Extract NonNullable ReturnType Parameters InstanceType ThisType Map Set WeakMap WeakSet Date RegExp "
    "Error Function Object String Number Boolean Symbol BigInt Iterable Iterator IterableIterator "
    "AsyncIterable AsyncIterator Generator ArrayLike JSX".split()
)
_RUST_BUILTINS = frozenset(
    "Self String Vec Option Result Box Rc Arc Cell RefCell Mutex RwLock Cow HashMap HashSet BTreeMap "
    "BTreeSet VecDeque str".split()
)
_GO_BUILTINS = frozenset(
    "bool byte rune string error any comparable int int8 int16 int32 int64 uint uint8 uint16 uint32 "
    "uint64 uintptr float32 float64 complex64 complex128".split()
)
_JS_WRAPPERS = frozenset(
    {"export_statement", "lexical_declaration", "variable_declaration", "ambient_declaration"}
)

LANGUAGES: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec("python", _extensions("python"), ("tree_sitter_python", "language"), ("python.scm",),
                     frozenset({"decorated_definition"}), _PY_BUILTINS),
        LanguageSpec("javascript", _extensions("javascript"), ("tree_sitter_javascript", "language"),
                     ("javascript.scm",), _JS_WRAPPERS),
        LanguageSpec("typescript", _extensions("typescript"), ("tree_sitter_typescript", "language_typescript"),
                     ("typescript.scm",), _JS_WRAPPERS, _TS_BUILTINS),
        # TSX is TypeScript plus JSX: same node types for everything we extract, so same query.
        LanguageSpec("tsx", _extensions("tsx"), ("tree_sitter_typescript", "language_tsx"),
                     ("typescript.scm",), _JS_WRAPPERS, _TS_BUILTINS),
        LanguageSpec("rust", _extensions("rust"), ("tree_sitter_rust", "language"), ("rust.scm",),
                     frozenset(), _RUST_BUILTINS),
        LanguageSpec("go", _extensions("go"), ("tree_sitter_go", "language"), ("go.scm",),
                     frozenset({"const_declaration", "var_declaration", "type_declaration"}), _GO_BUILTINS),
    )
}



@lru_cache(maxsize=None)
def grammar(name: str) -> Language:
    module, func = LANGUAGES[name].grammar
    return Language(getattr(importlib.import_module(module), func)())


@lru_cache(maxsize=None)
def query(name: str) -> Query:
    """The compiled extraction query of a language (its `.scm` files, concatenated)."""
    folder = files("direng_kernel.index") / "queries"
    source = "\n".join((folder / f).read_text(encoding="utf-8") for f in LANGUAGES[name].queries)
    return Query(grammar(name), source)
