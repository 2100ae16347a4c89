"""The structure of the code as a networkx graph, and the questions asked of it.

Nodes are files (`file:PATH`), symbols (`PATH::QUALNAME`), external modules (`module:NAME`) and
unresolved names (`unresolved:NAME`). Edges carry a kind (contains, imports, calls, inherits,
implements, references) and whether they were resolved. The persistent form is the store's
`edges` table, patched per changed file; this in-memory graph mirrors it and is patched the
same way in a long-running process.

A notebook's code cells are symbols too (`nb.ipynb::cell[3]`, kind `cell`, with their `cell`):
the notebook contains its cells, a cell contains its definitions and owns the edges of its
top-level code, and the notebook's file node records which cells define and use what
(`notebook_cells`, also its `cells` attribute). A name several cells define has a symbol per
definition (`nb.ipynb::cell[1].clean`, `nb.ipynb::clean`); `find` knows each by the plain name.

Importance is personalized PageRank over the symbol graph, as in aider's repo map: a symbol
that many others call or inherit from matters more, and a personalization vector lets a
question (or the files in focus) tilt the ranking towards its neighbourhood.
"""

from __future__ import annotations

import difflib
import logging
from collections import defaultdict

import networkx as nx

from ..discovery import NOTEBOOK_SUFFIX
from ..errors import UnknownSymbolError
from ..models import GraphEdge, GraphNode, GraphResult
from .notebooks import plain_qualname
from .resolve import Resolver, file_node
from .store import IndexStore

log = logging.getLogger(__name__)
STRUCTURAL = {"calls", "inherits", "implements", "references", "imports"}


def recompute_edges(store: IndexStore, changed: set[str], new_names: set[str]) -> set[str]:
    """Patch the persisted edges after `changed` files were replaced; returns the owners redone.

    Redone are the changed files themselves, files with edges to symbols of theirs that are
    gone (targets are `path::qualname`, so a symbol that merely moved lines keeps its edges),
    and files with unresolved references to names the change newly defined.
    """
    affected = set(changed)
    if changed:
        marks = ",".join("?" * len(changed))
        affected.update(r[0] for r in store.db.execute(
            f"SELECT DISTINCT e.owner FROM edges e WHERE e.dst_path IN ({marks}) AND NOT EXISTS "
            "(SELECT 1 FROM symbols s WHERE s.id = e.dst) AND NOT EXISTS "
            "(SELECT 1 FROM files f WHERE 'file:' || f.path = e.dst)", list(changed)))
        names = sorted(new_names)
        for i in range(0, len(names), 500):
            part = names[i:i + 500]
            affected.update(r[0] for r in store.db.execute(
                f"SELECT DISTINCT owner FROM edges WHERE resolved=0 AND dst_name IN ({','.join('?' * len(part))})",
                part))
    live = {r[0] for r in store.file_rows()}
    owners = affected & live
    resolver = Resolver(
        store.symbols_rows(cell=True), store.file_rows(),
        store.db.execute("SELECT path, kind, name, line, scope, module, alias FROM refs WHERE kind='import'").fetchall(),
        store.db.execute("SELECT path, name, scope FROM refs WHERE kind='inherits'").fetchall(),
    )
    refs_by_path: dict[str, list[tuple]] = defaultdict(list)
    for row in store.refs_rows(owners):
        refs_by_path[row[0]].append(row)
    edges = [e for path in sorted(owners) for e in resolver.edges_for(path, refs_by_path.get(path, []))]
    store.replace_edges(affected, edges)
    return affected


def compute_ranks(store: IndexStore) -> dict[str, float]:
    """PageRank over resolved structural edges, straight from the store (no full graph needed).

    Callers vote for callees, subclasses for bases, importers for modules; parallel edges add
    weight. Stored in the `ranks` table for search's prior and for `important()`.
    """
    rows = store.db.execute(
        "SELECT src, dst, count(*) FROM edges WHERE resolved=1 AND kind != 'contains' AND src != dst "
        "GROUP BY src, dst").fetchall()
    view = nx.DiGraph()
    view.add_weighted_edges_from(rows)
    if view.number_of_nodes() == 0:
        ranks: dict[str, float] = {}
    else:
        try:
            ranks = nx.pagerank(view, weight="weight", tol=1e-6, max_iter=200)
        except nx.PowerIterationFailedConvergence:
            ranks = {n: 1.0 / view.number_of_nodes() for n in view}
    store.replace_ranks(ranks)
    return ranks


def _aliases(qual: str, name: str) -> list[str]:
    """The names `find` knows a symbol by: its qualname, its bare name, and for an earlier
    definition in a notebook (`cell[1].Frame.clean`) the qualname as written in the cell."""
    return list(dict.fromkeys((qual, name, plain_qualname(qual))))


class CodeGraph:
    """In-memory graph loaded from a store; cheap to query, patched on refresh."""

    def __init__(self, store: IndexStore):
        self.store = store
        self.g = nx.MultiDiGraph()
        self._rank: dict[str, float] | None = None
        self._names: dict[str, list[str]] = defaultdict(list)
        self._by_path: dict[str, set[str]] = defaultdict(set)
        self.load()

    # -- building ---------------------------------------------------------------
    def _add_symbols(self, rows: list[tuple]) -> None:
        for sid, path, qual, name, kind, start, end, sig, doc, _parent, cell in rows:
            self.g.add_node(sid, kind=kind, name=qual, path=path, start_line=start, end_line=end,
                            signature=sig or "", doc=(doc or "")[:300], cell=cell)
            self._by_path[path].add(sid)
            for alias in _aliases(qual, name):
                self._names[alias].append(sid)

    def _add_edges(self, rows: list[tuple]) -> None:
        for src, dst, kind, line, resolved, _owner in rows:
            if dst not in self.g:
                if dst.startswith("file:"):
                    continue
                label = dst.split(":", 1)[1]
                self.g.add_node(dst, kind="module" if dst.startswith("module:") else "external", name=label)
            self.g.add_edge(src, dst, kind=kind, line=line, resolved=bool(resolved))

    def _add_files(self, rows: list[tuple]) -> None:
        for path, lang, lines, _err in rows:
            self.g.add_node(file_node(path), kind="file", name=path, path=path, start_line=1,
                            end_line=lines or 1, language=lang, signature="")
            self._by_path[path].add(file_node(path))

    def load(self) -> None:
        self.g.clear()
        self._names.clear()
        self._by_path.clear()
        self._add_files(self.store.file_rows())
        self._add_symbols(self.store.symbols_rows(cell=True))
        self._add_edges(self.store.edge_rows())
        self._annotate_notebooks(p for p in self._by_path if p.endswith(NOTEBOOK_SUFFIX))
        self._rank = None

    def patch(self, owners: set[str], changed: set[str]) -> None:
        """Mirror a store patch: drop changed files' nodes and owners' edges, re-add from the store."""
        for path in changed:
            doomed = self._by_path.pop(path, set())
            names = {alias for n in doomed if n in self.g and self.g.nodes[n].get("name")
                     for alias in _aliases(self.g.nodes[n]["name"], self.g.nodes[n]["name"].rsplit(".", 1)[-1])}
            self.g.remove_nodes_from(doomed)
            for name in names:
                kept = [s for s in self._names.get(name, []) if s in self.g]
                if kept:
                    self._names[name] = kept
                else:
                    self._names.pop(name, None)
        for path in owners:
            for node in self._by_path.get(path, ()):
                self.g.remove_edges_from(list(self.g.out_edges(node, keys=True)))
        marks = ",".join("?" * len(changed)) if changed else "''"
        self._add_files(self.store.db.execute(
            f"SELECT path, language, lines, has_errors FROM files WHERE path IN ({marks})", list(changed)).fetchall())
        self._add_symbols(self.store.symbols_rows(f"WHERE path IN ({marks})", tuple(changed), cell=True))
        omarks = ",".join("?" * len(owners)) if owners else "''"
        self._add_edges(self.store.db.execute(
            f"SELECT src, dst, kind, line, resolved, owner FROM edges WHERE owner IN ({omarks})", list(owners)
        ).fetchall())
        self._annotate_notebooks(p for p in owners | changed if p.endswith(NOTEBOOK_SUFFIX))
        self._rank = None  # re-read from the store, which the indexer keeps current enough

    def notebook_cells(self, path: str) -> list[dict]:
        """What each code cell of a notebook defines and uses, in cell order: `{"cell", "node",
        "defines": [qualnames], "uses": [node ids]}` — uses are the targets of the edges of the
        cell's code and of its definitions, other than the cell's own definitions."""
        members: dict[int, set[str]] = defaultdict(set)
        cells: dict[int, str] = {}
        for n in self._by_path.get(path, ()):
            d = self.g.nodes[n]
            if d.get("cell") is not None:
                members[d["cell"]].add(n)
                if d.get("kind") == "cell":
                    cells[d["cell"]] = n
        out = []
        for cell in sorted(cells):
            own = members[cell]
            uses = {v for m in own for _u, v, e in self.g.out_edges(m, data=True)
                    if e["kind"] != "contains" and v not in own}
            out.append({"cell": cell, "node": cells[cell],
                        "defines": sorted(plain_qualname(self.g.nodes[m]["name"]) for m in own if m != cells[cell]),
                        "uses": sorted(uses)})
        return out

    def _annotate_notebooks(self, paths) -> None:
        for path in paths:
            node = file_node(path)
            if node in self.g:
                self.g.nodes[node]["cells"] = self.notebook_cells(path)

    # -- lookup -----------------------------------------------------------------
    def find(self, symbol: str) -> list[str]:
        """Node ids for a name: `path::qual`, a qualname, a bare name, `Class::method` or a file path."""
        if symbol in self.g:
            return [symbol]
        if file_node(symbol) in self.g:
            return [file_node(symbol)]
        key = symbol.replace("::", ".")
        return list(self._names.get(key) or self._names.get(symbol) or [])

    def resolve_one(self, symbol: str) -> str:
        found = self.find(symbol)
        if not found:
            names = list(self._names)
            close = difflib.get_close_matches(symbol, names, n=5, cutoff=0.6)
            lowered = symbol.lower().rsplit(".", 1)[-1]
            close += [n for n in names if lowered and lowered in n.lower() and n not in close][: 5 - len(close)]
            raise UnknownSymbolError(symbol, close[:5])
        # Prefer the definition that matters most when a bare name is ambiguous.
        return max(found, key=lambda n: (self.importance().get(n, 0.0), -len(n)))

    # -- ranking ----------------------------------------------------------------
    def importance(self) -> dict[str, float]:
        """Stored PageRank (computed by the indexer); recomputed here only if the store has none."""
        if self._rank is None:
            self._rank = self.store.ranks() or compute_ranks(self.store)
        return self._rank

    def pagerank(self, personalization: dict[str, float] | None = None) -> dict[str, float]:
        """PageRank over resolved structural edges (callers vote for callees, subclasses for bases)."""
        view = nx.DiGraph()
        view.add_nodes_from(n for n, d in self.g.nodes(data=True) if d.get("kind") not in ("external", "module"))
        for u, v, d in self.g.edges(data=True):
            if d.get("resolved") and d["kind"] in STRUCTURAL and u in view and v in view and u != v:
                w = view.get_edge_data(u, v, {}).get("weight", 0.0)
                view.add_edge(u, v, weight=w + 1.0)
        if view.number_of_nodes() == 0:
            return {}
        pers = {k: v for k, v in (personalization or {}).items() if k in view} or None
        try:
            return nx.pagerank(view, weight="weight", personalization=pers, tol=1e-6, max_iter=200)
        except nx.PowerIterationFailedConvergence:
            return {n: 1.0 / view.number_of_nodes() for n in view}

    # -- queries ----------------------------------------------------------------
    def callers(self, node: str, kinds=("calls",)) -> list[tuple[str, dict]]:
        return [(u, d) for u, _v, d in self.g.in_edges(node, data=True) if d["kind"] in kinds]

    def callees(self, node: str, kinds=("calls",)) -> list[tuple[str, dict]]:
        return [(v, d) for _u, v, d in self.g.out_edges(node, data=True) if d["kind"] in kinds]

    def neighbourhood(self, symbol: str, direction: str = "both", depth: int = 1,
                      max_nodes: int = 150) -> GraphResult:
        """The k-hop neighbourhood of a symbol, following edges forwards, backwards or both.

        For `callers`/`callees` only call edges are followed (transitively with depth > 1);
        `both` follows every edge kind. Capped at `max_nodes` nodes (nearest first).
        """
        center = self.resolve_one(symbol)
        kinds = ("calls",) if direction in ("callers", "callees") else None
        seen = {center: 0}
        frontier = [center]
        edges: list[tuple[str, str, dict]] = []
        truncated = False
        for hop in range(1, max(1, depth) + 1):
            nxt = []
            for n in frontier:
                steps = []
                if direction in ("callees", "both"):
                    steps += [(n, v, d) for _u, v, d in self.g.out_edges(n, data=True)]
                if direction in ("callers", "both"):
                    steps += [(u, n, d) for u, _v, d in self.g.in_edges(n, data=True)]
                for u, v, d in steps:
                    if kinds and d["kind"] not in kinds:
                        continue
                    other = v if u == n else u
                    if other not in seen:
                        if len(seen) >= max_nodes:
                            truncated = True
                            continue
                        seen[other] = hop
                        nxt.append(other)
                    edges.append((u, v, d))
            frontier = nxt
        rank = self.importance()
        nodes = [self.node(n, rank) for n in seen]
        out_edges = [GraphEdge(source=u, target=v, kind=d["kind"], line=d.get("line"), resolved=d.get("resolved", True))
                     for u, v, d in edges if u in seen and v in seen]
        return GraphResult(center=center, nodes=nodes, edges=out_edges, truncated=truncated)

    def node(self, n: str, rank: dict[str, float] | None = None) -> GraphNode:
        d = self.g.nodes[n]
        return GraphNode(id=n, kind=d.get("kind", "external"), name=d.get("name", n), path=d.get("path"),
                         start_line=d.get("start_line"), end_line=d.get("end_line"),
                         signature=d.get("signature", ""), importance=(rank or {}).get(n, 0.0), cell=d.get("cell"))

    def shortest_path(self, a: str, b: str) -> list[GraphNode]:
        """Shortest chain of resolved structural edges between two symbols (either direction)."""
        src, dst = self.resolve_one(a), self.resolve_one(b)
        view = nx.Graph()
        view.add_edges_from((u, v) for u, v, d in self.g.edges(data=True) if d.get("resolved"))
        try:
            path = nx.shortest_path(view, src, dst)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return []
        rank = self.importance()
        return [self.node(n, rank) for n in path]

    def repo_map(self, max_tokens: int = 1024, focus: list[str] | None = None) -> str:
        """A ranked outline of the repository (file → important signatures) that fits a token budget.

        Symbols are ranked by PageRank personalized towards `focus` (files or symbols); the map
        takes the best-ranked definitions, grouped by file, adding until ~4 chars/token is spent.
        """
        pers = {}
        for f in focus or []:
            for n in self.find(f) or ([file_node(f)] if file_node(f) in self.g else []):
                pers[n] = 1.0
                for _u, v in self.g.out_edges(n):
                    pers.setdefault(v, 0.5)
        rank = self.pagerank(pers) if pers else self.importance()
        symbols = sorted(
            (n for n, d in self.g.nodes(data=True) if d.get("kind") not in ("file", "module", "external", "cell")),
            key=lambda n: -rank.get(n, 0.0))
        budget = max_tokens * 4
        by_file: dict[str, list[str]] = defaultdict(list)
        used = 0
        for n in symbols:
            d = self.g.nodes[n]
            cell = f"cell {d['cell']}:" if d.get("cell") is not None else ""
            line = f"  {cell}{d.get('start_line')}: {d.get('signature') or d.get('name')}"
            cost = len(line) + 1 + (0 if d["path"] in by_file else len(d["path"]) + 2)
            if used + cost > budget:
                break
            by_file[d["path"]].append(line)
            used += cost
        return "\n".join(f"{path}:\n" + "\n".join(lines) for path, lines in by_file.items())
