"""Parser tests: one realistic fixture per language, checked symbol by symbol.

Expectations are written out in full (qualname, kind, lines, parent) so that a change in any
query shows up as a precise diff, not as a vague count mismatch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from direng_kernel.index.languages import LANGUAGES, language_for_path, query
from direng_kernel.index.parse import parse_source
from direng_kernel.models import ParsedFile

LANGS = Path(__file__).parent / "fixtures" / "langs"


def parse(name: str) -> ParsedFile:
    path = LANGS / name
    return parse_source(f"langs/{name}", path.read_bytes(), language_for_path(name))


def table(pf: ParsedFile) -> list[tuple]:
    return [(s.qualname, s.kind.value, s.start_line, s.end_line, s.parent) for s in pf.symbols]


def sym(pf: ParsedFile, qualname: str):
    (found,) = [s for s in pf.symbols if s.qualname == qualname]
    return found


def refs(pf: ParsedFile, kind: str) -> list[tuple]:
    """(name, scope, line) of every reference of one kind, in source order."""
    return [(r.name, r.scope, r.line) for r in pf.references if r.kind.value == kind]


def imports(pf: ParsedFile) -> list[tuple]:
    return [(r.module, r.name, r.alias, r.line) for r in pf.references if r.kind.value == "import"]


# ---------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("path", "language"),
    [("a/b.py", "python"), ("stubs.pyi", "python"), ("x.js", "javascript"), ("x.mjs", "javascript"),
     ("x.cjs", "javascript"), ("App.jsx", "javascript"), ("x.ts", "typescript"), ("x.mts", "typescript"),
     ("x.cts", "typescript"), ("App.tsx", "tsx"), ("lib.rs", "rust"), ("main.go", "go"),
     ("README.md", None), ("Makefile", None), ("x.PY", "python")],
)
def test_language_for_path(path, language):
    assert language_for_path(path) == language


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_queries_compile_and_are_cached(language):
    assert query(language).pattern_count > 5
    assert query(language) is query(language)


# ---------------------------------------------------------------- python


def test_python_symbols():
    pf = parse("sessions.py")
    assert (pf.language, pf.line_count, pf.has_errors) == ("python", 43, False)
    assert table(pf) == [
        ("DEFAULT_TIMEOUT", "constant", 8, 8, None),
        ("MAX_RETRIES", "constant", 9, 9, None),  # annotated; lower-case `default_headers` is not a constant
        ("SessionRedirectMixin", "class", 13, 19, None),
        ("SessionRedirectMixin.get_redirect_target", "method", 14, 19, "SessionRedirectMixin"),
        ("Session", "class", 22, 39, None),
        ("Session.timeout", "method", 25, 27, "Session"),  # starts at its decorator
        ("Session.request", "method", 29, 36, "Session"),
        ("Session.request.hook", "function", 33, 34, "Session.request"),  # nested function, not a method
        ("Session.send", "method", 38, 39, "Session"),
        ("session", "function", 42, 43, None),
    ]
    assert sym(pf, "Session").signature == "class Session(SessionRedirectMixin, models.Model, metaclass=Meta)"
    assert sym(pf, "Session.request").signature == "def request(self, method, url, **kwargs) -> Response"
    assert sym(pf, "Session.timeout").signature == "def timeout(self)"
    assert sym(pf, "MAX_RETRIES").signature == "MAX_RETRIES: int = 3"
    assert sym(pf, "Session").docstring == "A Requests session."
    assert sym(pf, "SessionRedirectMixin.get_redirect_target").docstring == (
        "Receives a Response.\n\nReturns a redirect URI or None."
    )
    assert sym(pf, "Session.send").docstring == ""


def test_python_references():
    pf = parse("sessions.py")
    assert imports(pf) == [
        ("os.path", "os.path", "os", 2),
        ("numpy", "numpy", "np", 3),
        (".models", "Request", "R", 4),
        (".models", "Response", "Response", 4),
        (".adapters", "*", None, 5),
        ("typing", "Optional", "Optional", 6),
    ]
    # Bases as written; the metaclass keyword is not a base.
    assert refs(pf, "inherits") == [("SessionRedirectMixin", "Session", 22), ("models.Model", "Session", 22)]
    assert refs(pf, "call") == [
        ("resp.headers.get", "SessionRedirectMixin.get_redirect_target", 19),
        ("R", "Session.request", 31),
        ("self.send", "Session.request.hook", 34),
        ("self.send().json", "Session.request", 36),  # a chained call keeps the chain, not the arguments
        ("self.send", "Session.request", 36),
        ("os.path.join", "Session.send", 39),
        ("Session", "session", 43),
    ]
    # Annotation names, builtins (str, int, Optional) dropped, forward references unquoted,
    # one per (name, scope).
    assert refs(pf, "references") == [
        ("Response", "SessionRedirectMixin.get_redirect_target", 14),
        ("Response", "Session.request", 30),
        ("Response", "Session.request.hook", 33),
        ("adapters.HTTPAdapter", "Session.request.hook", 33),
        ("R", "Session.send", 38),
        ("Response", "Session.send", 38),
    ]


def test_python_syntax_error_keeps_symbols_around_it():
    source = b"""import os


def before(x):
    return os.path.join(x)


def broken(:
    return 1 +


class After:
    def method(self):
        return before(1)
"""
    pf = parse_source("broken.py", source, "python")
    assert pf.has_errors
    qualnames = [s.qualname for s in pf.symbols]
    assert qualnames[0] == "before" and qualnames[-2:] == ["After", "After.method"]
    assert sym(pf, "After.method").start_line == 13
    assert ("before", "After.method", 14) in refs(pf, "call")


def test_undecodable_bytes_do_not_crash():
    pf = parse_source("bad.py", b'def f():\n    """caf\xe9 \xff"""\n    return g()\n', "python")
    assert [s.qualname for s in pf.symbols] == ["f"]
    assert sym(pf, "f").docstring == "caf\ufffd \ufffd"
    assert refs(pf, "call") == [("g", "f", 3)]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_empty_file(language):
    pf = parse_source("empty", b"", language)
    assert (pf.symbols, pf.references, pf.line_count, pf.has_errors) == ([], [], 0, False)


@pytest.mark.parametrize(
    ("language", "source", "lines"),
    [("python", b"# one\n# two\n", 2), ("javascript", b"// one\n/* two */\n", 2), ("typescript", b"/** doc */", 1),
     ("rust", b"//! crate doc\n/// dangling\n", 2), ("go", b"// Package x.\n// more\n", 2)],
)
def test_comments_only(language, source, lines):
    pf = parse_source("c", source, language)
    assert (pf.symbols, pf.references, pf.line_count, pf.has_errors) == ([], [], lines, False)


def test_line_count_without_trailing_newline():
    assert parse_source("x.py", b"a = 1\nb = 2", "python").line_count == 2
    assert parse_source("x.py", b"a = 1\nb = 2\n", "python").line_count == 2


# ---------------------------------------------------------------- javascript


def test_javascript():
    pf = parse("server.js")
    assert not pf.has_errors
    assert table(pf) == [
        ("PORT", "constant", 6, 6, None),  # `const fs = require(…)` is an import, not a constant
        ("createApp", "function", 12, 16, None),
        ("greet", "function", 19, 19, None),  # `export const greet = (…) =>`
        ("Server", "class", 21, 35, None),
        ("Server.constructor", "method", 22, 25, "Server"),
        ("Server.listen", "method", 28, 30, "Server"),
        ("Server.onClose", "method", 32, 34, "Server"),  # arrow-function class field
    ]
    assert sym(pf, "createApp").signature == "export function createApp(opts)"
    assert sym(pf, "createApp").docstring == "Build the app.\n@param {object} opts"
    assert sym(pf, "greet").signature == "export const greet = (name) =>"
    assert sym(pf, "greet").docstring == "Formats a greeting."
    assert sym(pf, "Server.listen").docstring == "Start listening."
    assert sym(pf, "Server").signature == "class Server extends events.EventEmitter"
    assert imports(pf) == [
        ("express", "default", "express", 1),
        ("express", "Router", "R", 1),
        ("express", "json", "json", 1),
        ("node:path", "*", "path", 2),
        ("fs", "*", "fs", 3),
        ("path", "join", "join", 4),
    ]
    assert refs(pf, "inherits") == [("events.EventEmitter", "Server", 21)]
    calls = refs(pf, "call")
    for expected in [("express", "createApp", 13), ("app.use", "createApp", 14), ("json", "createApp", 14),
                     ("Server", "createApp", 15),  # `new Server(…)`
                     ("this.app.listen().on", "Server.listen", 29), ("console.error", "Server.listen", 29),
                     ("fs.unlinkSync", "Server.onClose", 33), ("join", "Server.onClose", 33)]:
        assert expected in calls
    assert refs(pf, "references") == []  # no types in JavaScript


# ---------------------------------------------------------------- typescript / tsx


def test_typescript():
    pf = parse("shapes.ts")
    assert (pf.language, pf.has_errors) == ("typescript", False)
    assert table(pf) == [
        ("Shape", "interface", 5, 7, None),  # its members are not symbols
        ("ShapeMap", "type", 9, 9, None),
        ("Kind", "enum", 11, 14, None),
        ("DEFAULT_KIND", "constant", 16, 16, None),
        ("Circle", "class", 19, 31, None),
        ("Circle.constructor", "method", 22, 25, "Circle"),
        ("Circle.area", "method", 27, 30, "Circle"),
        ("makeCircle", "function", 33, 35, None),
        ("Registry", "module", 37, 39, None),
        ("Registry.register", "function", 38, 38, "Registry"),
    ]
    assert sym(pf, "Shape").docstring == "Anything with an area."
    assert sym(pf, "Circle").docstring == "A circle."
    assert sym(pf, "Circle").signature == "export class Circle<T> extends Base<T> implements Shape, geo.Drawable"
    assert sym(pf, "makeCircle").signature == (
        "export function makeCircle(center: Point, color?: Color): Circle<Point>"
    )
    assert sym(pf, "ShapeMap").signature == "export type ShapeMap = Map<string, Shape>"
    assert imports(pf) == [
        ("./geometry", "Point", "Point", 1),
        ("./color", "default", "Color", 2),
        ("./color", "Palette", "P", 2),
    ]
    assert refs(pf, "inherits") == [("Named", "Shape", 5), ("geo.Bounded", "Shape", 5), ("Base", "Circle", 19)]
    assert refs(pf, "implements") == [("Shape", "Circle", 19), ("geo.Drawable", "Circle", 19)]
    assert refs(pf, "call") == [("square", "Circle.area", 28), ("Circle", "makeCircle", 34)]
    # Type identifiers minus builtins (Map, number), type parameters (T) and the names of
    # definitions; one per (name, scope).
    assert refs(pf, "references") == [
        ("Shape", "ShapeMap", 9),
        ("Kind", "DEFAULT_KIND", 16),
        ("Point", "Circle", 20),
        ("Point", "Circle.constructor", 22),
        ("Point", "makeCircle", 33),
        ("Color", "makeCircle", 33),
        ("Circle", "makeCircle", 33),
        ("Shape", "Registry.register", 38),
    ]


def test_tsx():
    pf = parse("Button.tsx")
    assert (pf.language, pf.has_errors) == ("tsx", False)
    assert table(pf) == [
        ("ButtonProps", "interface", 4, 7, None),
        ("Button", "function", 10, 14, None),
        ("Button.onClick", "function", 12, 12, "Button"),
        ("Panel", "class", 16, 20, None),
        ("Panel.render", "method", 17, 19, "Panel"),
    ]
    assert sym(pf, "Button").docstring == "A clickable button."
    assert sym(pf, "Button").signature == "export function Button({ label, theme }: ButtonProps)"
    assert sym(pf, "Panel").signature == "export default class Panel extends React.Component<ButtonProps>"
    assert imports(pf) == [
        ("react", "default", "React", 1),
        ("react", "useState", "useState", 1),
        ("./theme", "Theme", "Theme", 2),
    ]
    assert refs(pf, "inherits") == [("React.Component", "Panel", 16)]
    assert refs(pf, "call") == [("useState", "Button", 11), ("setCount", "Button.onClick", 12)]
    assert ("Theme", "ButtonProps", 6) in refs(pf, "references")
    assert ("ButtonProps", "Button", 10) in refs(pf, "references")


# ---------------------------------------------------------------- rust


def test_rust_symbols():
    pf = parse("geometry.rs")
    assert not pf.has_errors
    display = "impl<T: fmt::Debug> fmt::Display for Point<T>"
    assert table(pf) == [
        ("ORIGIN_X", "constant", 4, 4, None),
        ("Point", "struct", 8, 12, None),  # starts at its #[derive]
        ("Shape", "enum", 14, 17, None),
        ("Area", "trait", 19, 22, None),
        ("Area.area", "method", 21, 21, "Area"),
        (display, "impl", 24, 29, None),
        ("Point.fmt", "method", 25, 28, display),
        ("impl Point<i32>", "impl", 31, 36, None),
        ("Point.new", "method", 32, 35, "impl Point<i32>"),
        ("Pair", "type", 38, 38, None),
        ("net", "module", 40, 44, None),
        ("net.dial", "function", 41, 43, "net"),
    ]
    assert sym(pf, "Point").docstring == "A point in the plane.\nInteger coordinates."
    assert sym(pf, "Point").signature == "pub struct Point<T>"
    assert sym(pf, "Area.area").docstring == "The area."
    assert sym(pf, "Area.area").signature == "fn area(&self) -> f64"
    assert sym(pf, "Point.fmt").signature == "fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result"
    assert sym(pf, "Point.new").signature == "pub fn new(x: i32) -> Self"
    assert sym(pf, display).signature == display


def test_rust_references():
    pf = parse("geometry.rs")
    assert imports(pf) == [
        ("std", "fmt", "fmt", 1),
        ("crate::net", "Conn", "Conn", 2),
        ("crate::net", "Listener", "L", 2),
        ("crate::net", "io", "io", 2),  # `io::{self, …}`
        ("crate::net::io", "Read", "Read", 2),
    ]
    assert refs(pf, "implements") == [("fmt::Display", "Point", 24)]
    assert refs(pf, "inherits") == [("fmt::Debug", "Area", 19)]  # supertrait
    assert refs(pf, "call") == [
        ("f.write_str", "Point.fmt", 27),
        ("format_coord", "Point.fmt", 27),
        ("Conn::connect", "Point.new", 33),  # turbofish stripped
        ("Vec::new", "Point.new", 34),
        ("Conn::open", "net.dial", 42),
    ]
    types = refs(pf, "references")
    assert ("Coord", "Point", 11) in types  # inside Vec<Coord>; Vec itself is a builtin
    assert ("fmt::Formatter", "Point.fmt", 25) in types  # qualified types stay whole
    assert ("Tcp", "Point.new", 33) in types
    assert ("Conn", "net.dial", 41) in types
    names = {name for name, _, _ in types}
    assert not names & {"Vec", "T", "Self", "Formatter", "i32", "Point<i32>", "fmt::Display"}


# ---------------------------------------------------------------- go


def test_go():
    pf = parse("server.go")
    assert not pf.has_errors
    assert table(pf) == [
        ("MaxConns", "constant", 9, 9, None),
        ("started", "constant", 12, 12, None),
        ("stopped", "constant", 12, 12, None),
        ("Server", "struct", 17, 22, None),
        ("Handler", "interface", 25, 28, None),
        ("ID", "type", 30, 30, None),
        ("Port", "type", 32, 32, None),
        ("Server.Serve", "method", 35, 39, None),  # qualified by its receiver, no parent
        ("NewServer", "function", 41, 43, None),
    ]
    assert sym(pf, "Server").signature == "type Server struct"
    assert sym(pf, "Server").docstring == "Server serves requests.\nIt is safe for concurrent use."
    assert sym(pf, "Server.Serve").signature == "func (s *Server) Serve(l net.Listener) error"
    assert sym(pf, "Server.Serve").docstring == "Serve accepts connections on l."
    assert sym(pf, "MaxConns").docstring == "MaxConns is the connection limit."
    assert sym(pf, "ID").signature == "type ID = string"
    assert imports(pf) == [("net/http", "http", "http", 4), ("fmt", "fmt", "x", 5)]
    # Embedded fields and interfaces are inheritance, scoped to the embedding type.
    assert refs(pf, "inherits") == [("Base", "Server", 18), ("io.Closer", "Server", 19), ("Named", "Handler", 26)]
    assert refs(pf, "call") == [("l.Accept", "Server.Serve", 36), ("x.Println", "Server.Serve", 37),
                                ("s.handle", "Server.Serve", 38)]
    assert refs(pf, "references") == [
        ("http.Handler", "Server", 21),
        ("net.Listener", "Handler", 27),
        ("Server", "Server.Serve", 35),
        ("net.Listener", "Server.Serve", 35),
        ("Server", "NewServer", 41),  # `any` and `string` are builtins, T a type parameter
    ]


def test_typescript_generic_call_signatures_without_semicolons():
    # tree-sitter-typescript reads `T\n    <T>(…)` as one type expression and can lose the whole
    # file (mobx 6.13.5's src/api/action.ts came back as a single ERROR node); the parser
    # re-reads it with a `;` in the indentation, byte for byte, so lines and text stay.
    source = (
        "export interface IActionFactory extends Annotation {\n"
        "    // nameless actions\n"
        "    <T extends Function | undefined | null>(fn: T): T\n"
        "    // named actions\n"
        "    <T extends Function | undefined | null>(name: string, fn: T): T\n"
        "    bound: Annotation\n"
        "}\n"
        "\n"
        "export function runInAction<T>(fn: () => T): T {\n"
        "    return executeAction(fn.name, false, fn)\n"
        "}\n"
    )
    pf = parse_source("action.ts", source.encode(), "typescript")
    assert pf.has_errors is False
    assert table(pf) == [("IActionFactory", "interface", 1, 7, None), ("runInAction", "function", 9, 11, None)]
    assert sym(pf, "runInAction").signature == "export function runInAction<T>(fn: () => T): T"
    assert refs(pf, "call") == [("executeAction", "runInAction", 10)]
    assert refs(pf, "inherits") == [("Annotation", "IActionFactory", 1)]


def test_rust_calls_inside_macro_arguments():
    # serde_json wraps most calls in `tri!(…)`: tree-sitter keeps a macro's arguments as tokens,
    # so without this its read.rs had almost no call edges.
    source = (
        "impl<R> Deserializer<R> {\n"
        "    fn next(&mut self) -> Result<u8> {\n"
        "        let x = tri!(self.parse_escape(read));\n"
        "        let v = vec![table[0], x];\n"
        "        assert!(matches!(x, Some(y)));\n"
        "        Ok(x)\n"
        "    }\n"
        "}\n"
    )
    pf = parse_source("de.rs", source.encode(), "rust")
    calls = refs(pf, "call")
    assert ("parse_escape", "Deserializer.next", 3) in calls
    assert ("Ok", "Deserializer.next", 6) in calls
    called = {name for name, _, _ in calls}
    assert "table" not in called  # an index, not a call
    assert "matches" not in called and "tri" not in called and "vec" not in called  # macros are not calls
