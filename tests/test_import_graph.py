"""The package's import graph shows its real dependencies, and they run one way.

Every module of `direng_kernel` is parsed (not imported) and every import statement in it
counts: at module level, inside functions and under `if TYPE_CHECKING:` alike — deferring an
import keeps it cheap, it does not remove the dependency. Relative imports are resolved against
the importing module's package; `from pkg import name` imports `pkg.name` when that is a
module, else `pkg` itself. Importing `a.b.c` is an edge to `a.b.c` only (not to the packages
above it, which Python runs first but which are not what the importer depends on).

Rules: no import cycle; engine layers never import the surfaces; PAS never imports PEX (PEX
drives PAS); `security/redact.py` is the bottom of the security layer; the security layer never
imports the code index (the file walk both use is `discovery.py`).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import networkx as nx

PACKAGE = "direng_kernel"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

#: What people and other programs talk to: they may import the engine, never the reverse.
#: (`client.py` is the surfaces' side of the REST API / in-process engine; `demo.py` is the
#: terminal demo; `mcp/` is the Model Context Protocol server.)
SURFACES = (
    "direng_kernel.server", "direng_kernel.kernel", "direng_kernel.cli", "direng_kernel.magics",
    "direng_kernel.widgets", "direng_kernel.client", "direng_kernel.demo", "direng_kernel.mcp",
)
#: The package root holds the entry points Jupyter finds by name (`load_ipython_extension`,
#: `_jupyter_server_extension_points`); it may load exactly the surfaces they name.
ENTRY_POINT_IMPORTS = {"direng_kernel": {"direng_kernel.magics", "direng_kernel.server.app"}}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _is_surface(module: str) -> bool:
    return any(_within(module, s) for s in SURFACES)


@lru_cache(maxsize=1)
def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package)."""
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def _known(name: str) -> str | None:
    """The longest prefix of `name` that is a module of the package (None outside it)."""
    mods = modules()
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in `module`, resolved."""
    path, is_package = modules()[module]
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level - 1 > len(base_parts) - 1:
                    raise AssertionError(f"{path}:{node.lineno}: relative import above the package")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                names.append(sub if sub in modules() else base)
        for name in names:
            if not _within(name, PACKAGE):
                continue
            target = _known(name)
            assert target is not None, f"{path}:{node.lineno}: {name} is not a module of the package"
            if target != module:
                found.append((target, node.lineno))
    return found


@lru_cache(maxsize=1)
def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for module in modules():
        graph.add_node(module)
        for target, line in imports_of(module):
            if not graph.has_edge(module, target):
                graph.add_edge(module, target, lines=[])
            if line not in graph[module][target]["lines"]:
                graph[module][target]["lines"].append(line)
    return graph


def _where(a: str, b: str) -> str:
    path = modules()[a][0].relative_to(PACKAGE_DIR.parent)
    return f"{a} -> {b} ({path}:{','.join(map(str, sorted(import_graph()[a][b]['lines'])))})"


def _edges(source=lambda m: True, target=lambda m: True) -> list[str]:
    return [_where(a, b) for a, b in sorted(import_graph().edges) if source(a) and target(b)]


def _rotated(cycle: list[str]) -> list[str]:
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i]


def test_the_graph_sees_every_kind_of_import():
    """The walker itself: module-level, relative, `from pkg import module`, inside functions."""
    graph = import_graph()
    assert len(graph) > 80
    assert graph.has_edge("direng_kernel.index.indexer", "direng_kernel.discovery")        # from ..discovery import
    assert graph.has_edge("direng_kernel.security.vault", "direng_kernel.security.audit")  # from . import audit
    assert graph.has_edge("direng_kernel.magics", "direng_kernel.widgets.delegate")        # inside a method
    assert graph.has_edge("direng_kernel", "direng_kernel.server.app")                     # inside a function
    assert graph.has_edge("direng_kernel.security.licenses", "direng_kernel.security.licenses.detect")
    assert not graph.has_edge("direng_kernel.security.licenses.detect", "direng_kernel.security.licenses")


def test_no_import_cycles():
    cycles = sorted((_rotated(c) for c in nx.simple_cycles(import_graph())), key=lambda c: (len(c), c))
    report = ["  " + " -> ".join(c + [c[0]]) + "\n" + "\n".join(
        "      " + _where(a, b) for a, b in zip(c, c[1:] + c[:1])) for c in cycles[:40]]
    assert not cycles, f"{len(cycles)} import cycle(s), shortest first:\n" + "\n".join(report)


def test_engine_layers_never_import_surfaces():
    bad = [_where(a, b) for a, b in sorted(import_graph().edges)
           if _is_surface(b) and not _is_surface(a) and b not in ENTRY_POINT_IMPORTS.get(a, ())]
    assert not bad, "engine modules importing surfaces:\n" + "\n".join(bad)


def test_pas_never_imports_pex():
    bad = _edges(lambda a: _within(a, "direng_kernel.pas"), lambda b: _within(b, "direng_kernel.pex"))
    assert not bad, "PAS importing PEX (PEX drives PAS, not the reverse):\n" + "\n".join(bad)


def test_redact_is_the_bottom_of_the_security_layer():
    bad = _edges(lambda a: a == "direng_kernel.security.redact",
                 lambda b: _within(b, "direng_kernel.security"))
    assert not bad, "security/redact.py importing the rest of security:\n" + "\n".join(bad)


def test_security_never_imports_the_code_index():
    bad = _edges(lambda a: _within(a, "direng_kernel.security"), lambda b: _within(b, "direng_kernel.index"))
    assert not bad, "security importing the index (use direng_kernel.discovery):\n" + "\n".join(bad)
