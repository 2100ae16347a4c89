"""Per-language chunking of Rust and Go, on real source parsed by the real tree-sitter grammars.

A Rust method's chunk names the impl block it sits in (the trait is not in its signature), and a
Rust type's chunk gains one part listing its impl blocks in the same file with their methods.
Go methods already carry their receiver type in qualname and signature, so Go chunks are as
before (measured in docs/benchmarks.md: listing Go methods under their struct did not help).
"""

from __future__ import annotations

from direng_kernel.index.chunks import chunks_for
from direng_kernel.index.parse import parse_source

RUST = """\
use std::fmt;

/// A point on the plane.
pub struct Point {
    x: i32,
    y: i32,
}

impl Point {
    /// The origin.
    pub fn origin() -> Self {
        Point { x: 0, y: 0 }
    }

    pub fn norm(&self) -> i32 {
        self.x.abs() + self.y.abs()
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

impl Eq for Point {}

impl From<Point> for String {
    fn from(p: Point) -> String {
        p.to_string()
    }
}

/// Things that can be drawn.
pub trait Draw {
    fn draw(&self) -> String;
}
"""

GO = """\
package srv

// Server answers requests.
type Server struct {
\tAddr string
}

// Serve starts the server.
func (s *Server) Serve() error {
\treturn nil
}

func NewServer(addr string) *Server {
\treturn &Server{Addr: addr}
}
"""


def chunks(path: str, source: str, language: str):
    parsed = parse_source(path, source.encode(), language)
    return chunks_for(parsed, path, source, 60)


def by_symbol(cs, symbol: str):
    return [c for c in cs if c.symbol == symbol]


def test_rust_method_chunks_name_their_impl_block():
    cs = chunks("src/point.rs", RUST, "rust")
    (fmt,) = by_symbol(cs, "Point.fmt")
    assert fmt.text.splitlines()[:3] == [
        "src/point.rs method Point.fmt",
        "impl fmt::Display for Point",
        "fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result",
    ]
    (origin,) = by_symbol(cs, "Point.origin")
    assert origin.text.splitlines()[:4] == ["src/point.rs method Point.origin", "impl Point",
                                            "pub fn origin() -> Self", "The origin."]
    (conv,) = by_symbol(cs, "String.from")  # an impl for a type of another crate
    assert conv.text.splitlines()[1] == "impl From<Point> for String"


def test_rust_trait_methods_are_not_headed_by_an_impl():
    cs = chunks("src/point.rs", RUST, "rust")
    (draw,) = by_symbol(cs, "Draw.draw")
    assert draw.text.splitlines()[:2] == ["src/point.rs method Draw.draw", "fn draw(&self) -> String"]
    (trait,) = by_symbol(cs, "Draw")
    assert trait.kind == "trait" and trait.text.endswith("fn draw(&self) -> String")


def test_rust_type_chunk_lists_its_impl_blocks():
    cs = chunks("src/point.rs", RUST, "rust")
    body, listing = by_symbol(cs, "Point")
    assert body.kind == listing.kind == "struct"
    assert "x: i32," in body.text and "impl" not in body.text
    assert (listing.start_line, listing.end_line) == (body.start_line, body.end_line) == (4, 7)
    assert listing.text.splitlines() == [
        "src/point.rs struct Point", "pub struct Point", "A point on the plane.",
        "impl Point: origin, norm",
        "impl fmt::Display for Point: fmt",
    ]  # `impl Eq for Point {}` has no methods; `impl From<Point> for String` is String's
    assert body.id != listing.id
    # the impl blocks keep their own chunks, under their own names
    assert [c.symbol for c in cs if c.kind == "impl"] == [
        "impl Point", "impl fmt::Display for Point", "impl Eq for Point", "impl From<Point> for String"]


def test_rust_chunks_are_stable_for_unchanged_source():
    first = [(c.id, c.text) for c in chunks("src/point.rs", RUST, "rust")]
    again = [(c.id, c.text) for c in chunks("src/point.rs", RUST, "rust")]
    assert first == again and len({i for i, _ in first}) == len(first)


def test_go_methods_keep_their_receiver_and_structs_their_body():
    cs = chunks("srv/server.go", GO, "go")
    (serve,) = by_symbol(cs, "Server.Serve")
    assert serve.kind == "method"
    assert serve.text.splitlines()[:3] == ["srv/server.go method Server.Serve",
                                           "func (s *Server) Serve() error", "Serve starts the server."]
    (server,) = by_symbol(cs, "Server")  # one chunk: Go methods are not listed under the struct
    assert server.kind == "struct" and "Addr string" in server.text and "func" not in server.text
    (new,) = by_symbol(cs, "NewServer")
    assert new.kind == "function"
