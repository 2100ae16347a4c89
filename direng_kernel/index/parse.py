"""Parse one source file into symbols and references with tree-sitter.

Each language has one query (`queries/<language>.scm`) whose capture names say what a node
is: `@def.function` + `@name`, `@ref.call`, `@import.module`, … (conventions in python.scm).
`parse_source` runs that query once over the tree and turns the matches into models. The only
tree navigation left is local to a definition (its decorators/`export` wrapper, the comment
above it, a Rust impl header, a Go receiver) or to a Rust `use` tree.

Nesting is not found by climbing the tree from every node: definitions are sorted by byte
range and swept once with a stack, which gives each definition its parent (hence qualname)
and each reference its innermost enclosing definition (its scope).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from inspect import cleandoc
from typing import Optional

from tree_sitter import Node, Parser, QueryCursor

from ..records import ParsedFile, Reference, Symbol
from .languages import LANGUAGES, LanguageSpec, grammar, query

log = logging.getLogger(__name__)

MAX_SIGNATURE = 240
# A function directly inside one of these is a method.
_CONTAINERS = frozenset({"class", "struct", "interface", "trait", "impl", "enum"})
_COMMENTS = frozenset({"comment", "line_comment", "block_comment"})
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "generator_function"})

_ARGS = re.compile(r"\([^()]*\)")  # innermost argument list
_TYPE_ARGS = re.compile(r"(?:::)?<[^<>]*>")  # innermost <…> or turbofish ::<…>
_GENERICS = re.compile(r"(?:::)?<[^<>]*>|\[[^\[\]]*\]")  # the same or Go's […]
_SPACE = re.compile(r"\s+")
_OPEN_SPACE = re.compile(r"([(\[])\s+")
_CLOSE_SPACE = re.compile(r"\s+([)\]])")
_PY_STRING = re.compile(r"^[rRbBuUfF]*('''|\"\"\"|'|\")")
_PY_ANNOTATION_STRING = re.compile(r"(['\"])(.*?)\1")
_DOTTED = re.compile(r"[A-Za-z_][\w.]*")
_COMMENT_SLASHES = re.compile(r"^\s*//[/!]? ?")
_COMMENT_STAR = re.compile(r"^\s*\*(?!/) ?")


@dataclass
class _Def:
    node: Node
    kind: str  # a SymbolKind value
    name: str
    name_start: int  # byte offset of the name node, so the name is not also a type reference
    qualname: str = ""
    prefix: str = ""  # how children are qualified: the qualname, or for Rust impls the type name
    parent: Optional["_Def"] = None

    @property
    def span(self) -> tuple[int, int]:
        return self.node.start_byte, self.node.end_byte


def parse_source(path: str, source: bytes, language: str) -> ParsedFile:
    """Symbols and references of one file.

    Never raises on bad code: a tree with syntax errors gives whatever tree-sitter recovered
    and `has_errors=True`. Should extraction itself fail on some odd tree, the file comes back
    empty with `has_errors=True` and a logged warning rather than stopping the index run.
    """
    if isinstance(source, str):
        source = source.encode("utf-8", "replace")
    line_count = source.count(b"\n") + (1 if source and not source.endswith(b"\n") else 0)
    parser = _parser(language)
    root = parser.parse(source).root_node
    if root.has_error and language == "typescript":
        root = _reparse_generic_signatures(parser, source, root)
    try:
        symbols, references = _extract(root, source, LANGUAGES[language])
    except Exception:  # a bug on some odd recovered tree must not stop an index run
        log.warning("parse: extraction failed for %s", path, exc_info=True)
        return ParsedFile(path=path, language=language, line_count=line_count, has_errors=True)
    return ParsedFile(path=path, language=language, symbols=symbols, references=references,
                      line_count=line_count, has_errors=root.has_error)


_parsers = threading.local()


def _parser(language: str) -> Parser:
    """This thread's parser for `language`: built once, not once per file (a Parser is not
    safe to share between threads; `parse` starts afresh on every call)."""
    cache = getattr(_parsers, "by_language", None)
    if cache is None:
        cache = _parsers.by_language = {}
    parser = cache.get(language)
    if parser is None:
        parser = cache[language] = Parser(grammar(language))
    return parser


# A member line opening with a generic call signature (`<T>(fn: T): T`) after a member without
# a semicolon: tree-sitter-typescript 0.23 reads `A\n<T>(…)` as one type expression and, from
# there, can lose the whole file (mobx's src/api/action.ts came back as a single ERROR node).
_GENERIC_SIGNATURE_LINE = re.compile(rb"(?m)^([ \t]+)<(?=[A-Za-z_])")


def _reparse_generic_signatures(parser: Parser, source: bytes, root: Node) -> Node:
    """Parse again with a `;` in the last indentation column before each such line — one byte
    for one byte, so every offset and line number stays — and keep whichever tree recovered more
    (TypeScript only: in TSX a line opening with `<` is JSX)."""
    fixed = _GENERIC_SIGNATURE_LINE.sub(lambda m: m.group(1)[:-1] + b";<", source)
    if fixed == source:
        return root
    other = parser.parse(fixed).root_node
    better = (not other.has_error) or (root.type == "ERROR" and other.type != "ERROR")
    return other if better else root


_ROLE_PREFIXES = ("def.", "ref.", "import.module", "import.use", "typeparam")


@lru_cache(maxsize=None)
def _roles(language: str) -> dict[int, str]:
    """Pattern index → the capture that gives the pattern its meaning (filled on first match)."""
    return {}


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "replace")


def _extract(root: Node, source: bytes, spec: LanguageSpec) -> tuple[list[Symbol], list[Reference]]:
    q = query(spec.name)
    defs: dict[tuple[int, str], _Def] = {}
    # Raw references: (byte offset, kind, name, line, module, alias, fixed scope or None).
    refs: list[tuple] = []
    type_nodes: list[Node] = []  # candidate type references, filtered once all captures are known
    annotations: list[Node] = []  # Python annotations, whose dotted names are type references
    taken: set[int] = set()  # starts of nodes already referenced as inherits/implements
    typeparams: set[str] = set()

    roles = _roles(spec.name)
    for pattern, caps in QueryCursor(q).matches(root):
        role = roles.get(pattern)
        if role is None:  # first match of this pattern: find the capture that says what it is
            role = roles[pattern] = next(k for k in caps if k.startswith(_ROLE_PREFIXES))
        nodes = caps[role]
        if role.startswith("def."):
            node, kind = nodes[0], role[4:]
            name_node = caps.get("name")
            name = _text(name_node[0]) if name_node else ""
            slot = (node.id, name)
            # The generic `const X = …` pattern also matches `const f = () => …`: any other kind wins.
            if kind != "constant" or slot not in defs:
                defs[slot] = _Def(node, kind, name, name_node[0].start_byte if name_node else -1)
        elif role == "ref.call":
            for node in nodes:
                if _macro_name_in_tokens(node):
                    continue
                refs.append((node.start_byte, "call", _callee(_text(node)), node.start_point.row + 1,
                             None, None, None))
        elif role == "ref.references":
            type_nodes.extend(nodes)
        elif role == "ref.annotation":
            annotations.extend(nodes)
        elif role.startswith("ref."):  # inherits, implements
            for node in nodes:
                taken.add(node.start_byte)
                refs.append((node.start_byte, role[4:], _type_name(_text(node)), node.start_point.row + 1,
                             None, None, None))
        elif role == "import.module":
            refs.append(_import(caps, q.pattern_settings(pattern)))
        elif role == "import.use":
            refs.append(_rust_use(nodes[0]))
        elif role == "typeparam":
            typeparams.update(_text(n) for n in nodes)

    symbols = _symbols(defs, source, spec, refs, taken)

    # Type references: skip definition names, nodes already counted as inherits/implements,
    # the last segment of a qualified type (`fmt::Formatter` is one reference) and builtins.
    skip = taken | {d.name_start for d in defs.values()}
    composite_ends = {n.end_byte for n in type_nodes if n.type != "type_identifier"}
    ignore = spec.builtin_types | typeparams
    for node in type_nodes:
        if node.start_byte in skip or (node.type == "type_identifier" and node.end_byte in composite_ends):
            continue
        name = _type_name(_text(node))
        if name not in ignore:
            refs.append((node.start_byte, "references", name, node.start_point.row + 1, None, None, None))
    for node in annotations:
        line = node.start_point.row + 1
        for name in _annotation_names(_text(node)):
            if name not in ignore and not name.startswith("typing."):
                refs.append((node.start_byte, "references", name, line, None, None, None))

    return symbols, _references(refs, defs)


def _macro_name_in_tokens(node: Node) -> bool:
    """`matches!(…)` inside a macro's tokens: the query's anchor skips the anonymous `!`, but a
    nested macro is not a call."""
    nxt = node.next_sibling
    return node.parent is not None and node.parent.type == "token_tree" and nxt is not None and nxt.type == "!"


# ---------------------------------------------------------------- definitions


def _symbols(defs: dict, source: bytes, spec: LanguageSpec, refs: list, taken: set) -> list[Symbol]:
    """Qualify the definitions (one sweep in source order) and build their models."""
    out: list[Symbol] = []
    stack: list[_Def] = []
    for d in sorted(defs.values(), key=lambda d: (d.node.start_byte, -d.node.end_byte)):
        start, end = d.span
        while stack and stack[-1].node.end_byte <= start:
            stack.pop()
        parent = stack[-1] if stack else None
        if parent is not None and parent.span == (start, end):  # `var a, b = …`: siblings, not nested
            parent = parent.parent
        d.parent = parent
        stack.append(d)

        if d.kind == "function" and parent is not None and parent.kind in _CONTAINERS:
            d.kind = "method"
        base = parent.prefix + "." if parent else ""
        if d.node.type == "impl_item":  # Rust: `impl Display for Point`; its methods are `Point.fmt`
            d.name, type_name, trait = _rust_impl(d.node)
            d.qualname, d.prefix = base + d.name, base + type_name
            if trait is not None:
                taken.add(trait.start_byte)
                refs.append((trait.start_byte, "implements", _type_name(_text(trait)),
                             trait.start_point.row + 1, None, None, d.prefix))
        elif d.node.type == "method_declaration":  # Go: `func (s *Server) Serve()` is `Server.Serve`
            receiver = d.node.child_by_field_name("receiver")
            recv_type = None
            if receiver is not None and receiver.named_child_count:
                recv_type = receiver.named_child(0).child_by_field_name("type")
            d.qualname = f"{_base_type(recv_type)}.{d.name}" if recv_type else d.name
        else:
            d.qualname = base + d.name
        d.prefix = d.prefix or d.qualname

        outer = _outer(d.node, spec)
        if spec.name == "python":
            docstring = _py_docstring(d.node) if d.kind != "constant" else ""
            first_row = outer.start_point.row
        else:
            docstring, first_row = _leading_comment(outer)
        out.append(Symbol(
            name=d.name, qualname=d.qualname, kind=d.kind,
            start_line=first_row + 1, end_line=_end_row(outer) + 1,
            signature=_signature(d, outer, source, spec), docstring=docstring,
            parent=parent.qualname if parent else None,
        ))
    return out


def _outer(node: Node, spec: LanguageSpec) -> Node:
    """The node plus the wrappers that belong to it alone (decorators, `export`, `const … =`)."""
    while (parent := node.parent) is not None and parent.type in spec.wrappers:
        if sum(c.type == node.type for c in parent.named_children) != 1:
            break  # `const a = () => 1, b = 2` or a Go group: the wrapper is shared
        node = parent
    return node


def _signature(d: _Def, outer: Node, source: bytes, spec: LanguageSpec) -> str:
    """The header of a definition up to its body, whitespace collapsed."""
    node = d.node
    # Python decorators are not part of the header; `export`/`pub` are.
    start = node.start_byte if spec.name == "python" else outer.start_byte
    body = node.child_by_field_name("body")
    if body is None:  # `const f = () => {…}`: the body of the value
        value = node.child_by_field_name("value")
        if value is not None and value.type in _FUNCTION_VALUES:
            body = value.child_by_field_name("body")
    end = body.start_byte if body is not None else min(outer.end_byte, start + 4 * MAX_SIGNATURE)
    text = source[start:end].decode("utf-8", "replace")
    if body is None and d.kind in ("struct", "interface"):  # Go: `type Server struct {…}`
        text = text.split("{", 1)[0]
    text = _CLOSE_SPACE.sub(r"\1", _OPEN_SPACE.sub(r"\1", " ".join(text.split())))
    return text.rstrip(" :;{")[:MAX_SIGNATURE]


def _leading_comment(outer: Node) -> tuple[str, int]:
    """The comment block right above a definition (markers stripped), and the definition's
    first row including Rust attributes between the comment and the item."""
    first = row = outer.start_point.row
    blocks: list[str] = []
    node = outer.prev_sibling
    while node is not None:
        if _end_row(node) < row - 1:
            break  # a blank line: not attached
        if node.type == "attribute_item":
            first = row = node.start_point.row
        elif node.type in _COMMENTS:
            before = node.prev_sibling
            if before is not None and _end_row(before) == node.start_point.row:
                break  # a trailing comment of the previous statement
            blocks.append(_clean_comment(_text(node)))
            row = node.start_point.row
        else:
            break
        node = node.prev_sibling
    return (cleandoc("\n".join(reversed(blocks))) if blocks else ""), first


def _end_row(node: Node) -> int:
    end = node.end_point  # Rust line comments include their "\n" and end at column 0 of the next row
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _clean_comment(text: str) -> str:
    text = text.strip()
    if text.startswith("/*"):
        text = text[2:-2] if text.endswith("*/") else text[2:]
        return "\n".join(_COMMENT_STAR.sub("", line).rstrip() for line in text.lstrip("*!").splitlines())
    return "\n".join(_COMMENT_SLASHES.sub("", line).rstrip() for line in text.splitlines())


def _py_docstring(node: Node) -> str:
    body = node.child_by_field_name("body")
    if body is None:
        return ""
    for stmt in body.named_children:
        if stmt.type == "comment":
            continue
        string = stmt.named_child(0) if stmt.type == "expression_statement" else None
        if string is None or string.type != "string":
            return ""
        text = _text(string)
        quote = _PY_STRING.match(text)
        if not quote:
            return ""
        q = quote.group(1)
        inner = text[quote.end():]
        return cleandoc(inner[: -len(q)] if inner.endswith(q) else inner)
    return ""


def _rust_impl(node: Node) -> tuple[str, str, Optional[Node]]:
    """(`impl<T> Trait for Type<T>`, `Type`, trait node) for a Rust impl block."""
    params, trait, typ = (node.child_by_field_name(f) for f in ("type_parameters", "trait", "type"))
    header = "impl" + (_text(params) if params else "") + " "
    header += (_text(trait) + " for " if trait else "") + (_text(typ) if typ else "?")
    return " ".join(header.split()), _base_type(typ) if typ else "?", trait


def _base_type(node: Node) -> str:
    """`Point` for `&mut Point<T>`, `*Server[T]`, `fmt::Point`."""
    for _ in range(8):
        if node.type in ("pointer_type", "reference_type") and node.named_child_count:
            node = node.named_child(node.named_child_count - 1)
        elif node.type == "generic_type":
            node = node.child_by_field_name("type") or node.child_by_field_name("name") or node.named_child(0)
        elif node.type in ("scoped_type_identifier", "qualified_type"):
            node = node.child_by_field_name("name") or node
            break
        else:
            break
    return _type_name(_text(node))


# ---------------------------------------------------------------- references


def _callee(text: str) -> str:
    """`a.b(x).c` → `a.b().c`; `Foo::<u8>::new` → `Foo::new`: the callee without arguments."""
    if "(" in text:
        while (stripped := _ARGS.sub("\0", text)) != text:
            text = stripped
        text = text.replace("\0", "()")
    if "<" in text:
        while (stripped := _TYPE_ARGS.sub("", text)) != text:
            text = stripped
    return _nospace(text)


def _type_name(text: str) -> str:
    """A type as written without generic arguments or whitespace: `ns.Other<T>` → `ns.Other`."""
    if "<" in text or "[" in text:
        while (stripped := _GENERICS.sub("", text)) != text:
            text = stripped
    return _nospace(text)


def _nospace(text: str) -> str:
    return _SPACE.sub("", text) if " " in text or "\n" in text or "\t" in text else text


def _annotation_names(text: str) -> list[str]:
    """Dotted names in a Python annotation; a quoted forward reference counts as its name."""
    if "'" in text or '"' in text:
        text = _PY_ANNOTATION_STRING.sub(lambda m: m.group(2) if _DOTTED.fullmatch(m.group(2)) else " ", text)
    return _DOTTED.findall(text)


def _import(caps: dict, settings: dict) -> tuple:
    """One imported binding; see python.scm for what `name` and `derive` settings mean."""
    module_node = caps["import.module"][0]
    module = _text(module_node)
    derive = settings.get("derive")
    if "import.name" in caps:
        name = _text(caps["import.name"][0])
    else:
        name = settings.get("name") or (module.rsplit("/", 1)[-1] if derive == "tail" else module)
    if "import.alias" in caps:
        alias = _text(caps["import.alias"][0])
    elif derive == "head":
        alias = module.split(".", 1)[0]
    else:
        alias = None if name == "*" else name
    # The line of the imported name: in a multi-line `from x import (…)` each name has its own.
    at = (caps.get("import.name") or caps.get("import.alias") or [module_node])[0]
    return module_node.start_byte, "import", name, at.start_point.row + 1, module, alias, None


def _rust_use(leaf: Node) -> tuple:
    """One leaf of a Rust use tree: `use crate::net::{Conn, Listener as L}` gives
    (`crate::net`, `Conn`, `Conn`) and (`crate::net`, `Listener`, `L`)."""
    node, alias = leaf, None
    if node.type == "use_as_clause":
        alias_node = node.child_by_field_name("alias")
        alias = _text(alias_node) if alias_node else None
        node = node.child_by_field_name("path") or node
    if node.type == "use_wildcard":
        path, name = (node.named_child(0) if node.named_child_count else None), "*"
    elif node.type == "scoped_identifier":
        path, name_node = node.child_by_field_name("path"), node.child_by_field_name("name")
        name = _text(name_node) if name_node else _text(node)
    else:  # identifier, self, crate, super
        path, name = None, _text(node)
    parts = [_text(path)] if path is not None else []
    up = leaf.parent
    while up is not None and up.type != "use_declaration":
        if up.type == "scoped_use_list" and (prefix := up.child_by_field_name("path")) is not None:
            parts.insert(0, _text(prefix))
        up = up.parent
    module = "::".join(parts) or None
    if name == "self" and module:  # `use std::io::{self}` is `use std::io`
        head, _, name = module.rpartition("::")
        module = head or None
    if alias is None and name != "*":
        alias = name
    return leaf.start_byte, "import", name, leaf.start_point.row + 1, module, alias, None


def _references(refs: list[tuple], defs: dict) -> list[Reference]:
    """Give each reference its innermost enclosing definition (a sweep over sorted byte ranges),
    drop duplicate type references per (name, scope) and build the models."""
    spans = sorted(((d.node.start_byte, d.node.end_byte, d.qualname) for d in defs.values()),
                   key=lambda s: (s[0], -s[1]))
    refs.sort(key=lambda r: r[0])
    out: list[Reference] = []
    seen_types: set[tuple[str, Optional[str]]] = set()
    stack: list[tuple[int, int, str]] = []
    i = 0
    for pos, kind, name, line, module, alias, fixed in refs:
        while i < len(spans) and spans[i][0] <= pos:
            while stack and stack[-1][1] <= spans[i][0]:
                stack.pop()
            stack.append(spans[i])
            i += 1
        while stack and stack[-1][1] <= pos:
            stack.pop()
        scope = fixed or (stack[-1][2] if stack else None)
        if kind == "references":
            if (name, scope) in seen_types:
                continue
            seen_types.add((name, scope))
        if not name:
            continue
        # Plain validated construction: faster than model_construct in pydantic 2.
        out.append(Reference(kind=kind, name=name, line=line, scope=scope, module=module, alias=alias))
    return out
