"""Turn references as written (`self.send`, `models.Request`, `crate::net::Conn`) into graph edges.

The idea: resolve only what the syntax proves. A name is looked up, in order, as a function
nested in the current scope, a definition in the same file, a name bound by an import in the
file (following the import to the module's file, and to the symbol when the module is
indexed), and — for Go, whose packages span a directory — a definition in the same
directory. `self`/`this`/`Self` resolve through the enclosing class and then its resolved base
classes. Anything else (a method on a value of unknown type, a library call) stays an
unresolved edge to a placeholder node named as written: callers/callees queries can still
show it, flagged, but it is never passed off as a fact.

A notebook's cells share one namespace, in order: a name used in a cell's top-level code is
bound by the latest definition or import of it in an earlier cell (or earlier in the same
cell); one used before any binding takes the first binding after it (notebooks are often run
out of order); one used inside a definition sees the namespace once every cell has run. Every
definition is a binding of its own — a name defined in cells 1 and 4 has two symbols
(`cell[1].name` and `name`, see `index/notebooks.py`), so a use in cell 2 calls cell 1's. A
notebook imports from its own folder first (`from pvtol import pvtol` next to `pvtol.py`), as its
kernel, started in that folder, does.

A module's members include what it re-exports: `import pkg; pkg.f()` finds `f` in `pkg/__init__.py`,
or through its `from .mod import f` / `from .mod import *`, and `pkg.sub.f()` finds `f` in a
submodule `pkg/__init__.py` imports (`from . import sub`). `from m import *` binds what `m`
defines and, as Python does without `__all__`, what `m` itself imports (so star imports chain).
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict

from ..discovery import NOTEBOOK_SUFFIX
from .notebooks import cell_of_scope
from .store import symbol_id

_SPLIT = re.compile(r"\.|::")
_SELF = {"self", "this", "cls", "Self"}
_GO_RECEIVER = re.compile(r"func\s*\(\s*(\w+)\s+\*?\s*(\w+)")  # func (c *Command[T]) …
CLASSY = {"class", "struct", "enum", "interface", "trait", "impl"}
FUNCY = {"function", "method"}
JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts")
REF_EDGE = {"call": "calls", "import": "imports", "inherits": "inherits", "implements": "implements",
            "references": "references"}


def last_segment(name: str) -> str:
    return [p for p in _SPLIT.split(name) if p][-1] if name.strip(".:") else name


def file_node(path: str) -> str:
    return f"file:{path}"


def python_module(path: str) -> str:
    mod = path[:-3] if path.endswith(".py") else path[:-4] if path.endswith(".pyi") else path
    mod = mod.replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


class Resolver:
    """Lookup tables over the whole index, built once per refresh from the store's rows."""

    def __init__(self, symbol_rows: list[tuple], file_rows: list[tuple], import_refs: list[tuple],
                 inherit_refs: list[tuple]):
        self.files = {r[0]: r[1] for r in file_rows}  # path → language
        self.notebooks = {p for p in self.files if p.endswith(NOTEBOOK_SUFFIX)}
        self.by_file: dict[str, dict[str, tuple]] = defaultdict(dict)
        self.by_name: dict[str, list[tuple]] = defaultdict(list)
        for row in symbol_rows:
            # row: id, path, qualname, name, kind, start, end, signature, docstring, parent, cell
            self.by_file[row[1]][row[2]] = row
            self.by_name[row[3]].append(row)
        self.py_modules: dict[str, list[str]] = defaultdict(list)
        self.dirs: dict[str, list[str]] = defaultdict(list)
        for path, lang in self.files.items():
            self.dirs[posixpath.dirname(path)].append(path)
            if lang == "python" and path not in self.notebooks:  # a notebook is no importable module
                parts = python_module(path).split(".")
                for i in range(len(parts)):  # every suffix: sdists put packages under src/ or deeper
                    self.py_modules[".".join(parts[i:])].append(path)
        # (path, class qualname) → base names as written, for method lookup through bases
        self.bases: dict[tuple[str, str], list[str]] = defaultdict(list)
        for path, name, scope in inherit_refs:
            if scope:
                self.bases[(path, scope)].append(name)
        self._import_refs: dict[str, list[tuple]] = defaultdict(list)
        self._reexports: dict[str, dict[str, tuple[str, str]]] = {}
        for ref in import_refs:
            self._import_refs[ref[0]].append(ref)
        self._imports: dict[str, dict[str, tuple[str, str | None]]] = {}
        self._resolving: set[str] = set()
        self._bindings: dict[str, dict[str, list[tuple]]] = {}

    def imports(self, path: str) -> dict[str, tuple[str, str | None]]:
        if path not in self._imports:
            self._resolving.add(path)  # star imports may go round in circles: a ↔ b
            try:
                self._imports[path] = self.imports_of(path, self._import_refs.get(path, []))
            finally:
                self._resolving.discard(path)
        return self._imports[path]

    # -- modules ----------------------------------------------------------------
    def module_files(self, importer: str, module: str) -> list[str]:
        lang = self.files.get(importer)
        if lang == "python":
            if importer in self.notebooks and not module.startswith("."):
                # A notebook's kernel starts in the notebook's folder: its folder's modules come first.
                local = posixpath.join(posixpath.dirname(importer), *module.split("."))
                found = [c for c in (local + ".py", local + "/__init__.py") if c in self.files]
                if found:
                    return found[:1]
            if module.startswith("."):
                dots = len(module) - len(module.lstrip("."))
                pkg = python_module(importer).split(".")
                pkg = pkg[: len(pkg) - dots] if not importer.endswith("__init__.py") else pkg[: len(pkg) - dots + 1]
                rest = module.lstrip(".")
                module = ".".join(pkg + ([rest] if rest else []))
            hits = self.py_modules.get(module, [])
            return hits if len(hits) == 1 else [h for h in hits if python_module(h) == module][:1]
        if lang in ("javascript", "typescript", "tsx"):
            if not module.startswith("."):
                return []
            base = posixpath.normpath(posixpath.join(posixpath.dirname(importer), module))
            for cand in [base, *(base + e for e in JS_EXTS), *(f"{base}/index{e}" for e in JS_EXTS)]:
                if cand in self.files:
                    return [cand]
            return []
        if lang == "rust":
            parts = [p for p in module.split("::") if p]
            here = posixpath.dirname(importer)
            if parts and parts[0] == "crate":
                root = here
                while root and not any(posixpath.join(root, f) in self.files for f in ("lib.rs", "main.rs")):
                    root = posixpath.dirname(root)
                here, parts = root, parts[1:]
            elif parts and parts[0] in ("self", "super"):
                if parts[0] == "super":
                    here = posixpath.dirname(here)
                parts = parts[1:]
            else:
                return []
            rel = posixpath.join(here, *parts) if parts else here
            return [c for c in (rel + ".rs", rel + "/mod.rs") if c in self.files][:1]
        if lang == "go":
            tail = module.strip("/").split("/")
            for n in range(len(tail), 0, -1):
                d = "/".join(tail[-n:])
                matches = [dd for dd in self.dirs if dd == d or dd.endswith("/" + d)]
                if len(matches) == 1:
                    return [p for p in self.dirs[matches[0]] if self.files[p] == "go"]
            return []
        return []

    def reexports(self, path: str) -> dict[str, tuple[str, str]]:
        """What a JS/TS module passes on with `export * from "./m"`: m's top-level definitions
        and, in turn, what m passes on. Read from the star re-exports alone (never the file's
        full import table), so a barrel whose modules import from the barrel cannot loop."""
        if path in self._reexports:
            return self._reexports[path]
        out: dict[str, tuple[str, str]] = {}
        self._reexports[path] = out  # a cycle of barrels sees the part found so far
        for _p, kind, name, _line, _scope, module, alias in self._import_refs.get(path, []):
            if kind != "import" or name != "*" or alias:
                continue
            for target in self.module_files(path, module or ""):
                for qual, row in self.by_file.get(target, {}).items():
                    if "." not in qual:
                        out.setdefault(qual, (row[0], row[1]))
                for qual, there in self.reexports(target).items():
                    out.setdefault(qual, there)
        return out

    def imports_of(self, path: str, refs: list[tuple]) -> dict[str, tuple[str, str | None]]:
        """local name → (target node id, target path) for a file's imports."""
        table: dict[str, tuple[str, str | None]] = {}
        for _p, kind, name, _line, _scope, module, alias in refs:
            if kind != "import":
                continue
            local = alias or name.split(".")[0]
            files = self.module_files(path, module or name)
            if name in ("*",) or name == module or (module and module.endswith(name) and not files):
                target = (file_node(files[0]), files[0]) if files else (f"module:{module or name}", None)
            elif files:
                sym = next((self.by_file[f].get(name) for f in files if name in self.by_file[f]), None)
                passed_on = None
                if sym is None and self.files.get(path) in ("javascript", "typescript", "tsx"):
                    passed_on = self.reexports(files[0]).get(name)  # passed on by a barrel file
                if sym:
                    target = (sym[0], sym[1])
                elif passed_on and not passed_on[0].startswith("module:"):
                    target = passed_on
                else:  # `from pkg import submodule`
                    sub = self.module_files(path, f"{module}.{name}") if self.files.get(path) == "python" else []
                    target = (file_node(sub[0]), sub[0]) if sub else (file_node(files[0]), files[0])
            else:
                # The import names a symbol of a module we cannot locate; trust the name only if unique.
                same_lang = [r for r in self.by_name.get(name, []) if self.files.get(r[1]) == self.files.get(path)]
                target = (same_lang[0][0], same_lang[0][1]) if len(same_lang) == 1 and module and module.startswith(
                    (".", "crate", "self", "super")) else (f"module:{module}.{name}" if module else f"module:{name}", None)
            if name == "*" and files:
                for qual, row in self.by_file[files[0]].items():
                    if "." not in qual:
                        table.setdefault(qual, (row[0], row[1]))
                # What the module imports is in its namespace too, so `import *` passes it on
                # (`control.matlab` re-exports `lqr` with its own `from ..statefbk import *`).
                # `__all__` is not read: the names a module defines or imports are all offered.
                if files[0] not in self._resolving:
                    for name_there, there in self.imports(files[0]).items():
                        if not name_there.startswith("_"):
                            table.setdefault(name_there, there)
                continue
            table[local] = target
        return table

    # -- notebooks ----------------------------------------------------------------
    def _cell_of(self, path: str, scope: str | None) -> int | None:
        cell = cell_of_scope(scope)
        if cell is None and scope:
            row = self.by_file.get(path, {}).get(scope)
            cell = row[10] if row is not None and len(row) > 10 else None
        return cell

    def notebook_bindings(self, path: str) -> dict[str, list[tuple]]:
        """A notebook's top-level names in cell order: name → [((cell, line), "def" | "import", target)],
        the target a symbol row or an import's (node, path)."""
        if path not in self._bindings:
            out: dict[str, list[tuple]] = defaultdict(list)
            late = float("inf")
            for row in self.by_file.get(path, {}).values():
                # top level: the parent is the cell (an earlier definition's qualname is `cell[N].name`)
                if row[4] != "cell" and cell_of_scope(row[9]) is not None:
                    out[row[3]].append(((late if row[10] is None else row[10], row[5]), "def", row))
            for ref in self._import_refs.get(path, []):
                cell = self._cell_of(path, ref[4])
                for local, target in self.imports_of(path, [ref]).items():
                    out[local].append(((late if cell is None else cell, ref[3]), "import", target))
            for found in out.values():
                found.sort(key=lambda b: b[0])
            self._bindings[path] = dict(out)
        return self._bindings[path]

    def _binding(self, path: str, first: str, scope: str | None, line: int | None) -> tuple[str | None, object]:
        """What binds `first` where it is used: ("def", symbol row), ("import", (node, path)) or (None, None)."""
        if path in self.notebooks:
            found = self.notebook_bindings(path).get(first)
            if not found:
                return None, None
            cell = cell_of_scope(scope)
            if cell is not None and line is not None:  # a cell's top-level code runs in order
                before = [b for b in found if b[0] <= (cell, line)]
                chosen = before[-1] if before else found[0]
            else:  # inside a definition: the namespace once every cell has run
                chosen = found[-1]
            return chosen[1], chosen[2]
        local = self.by_file.get(path, {})
        if first in local:
            return "def", local[first]
        imp = self.imports(path).get(first)
        return ("import", imp) if imp else (None, None)

    # -- names ------------------------------------------------------------------
    def _member(self, path: str, owner: str, member: str, depth: int = 0) -> tuple | None:
        """`owner.member` in `path`, else through the owner's bases (as far as they resolve)."""
        row = self.by_file.get(path, {}).get(f"{owner}.{member}")
        if row or depth > 4:
            return row
        for base in self.bases.get((path, owner), []):
            target = self.lookup(path, base, None)
            if target and target[4] in CLASSY:
                found = self._member(target[1], target[2], member, depth + 1)
                if found:
                    return found
        return None

    def _module_member(self, path: str, parts: list[str], depth: int = 0) -> tuple | None:
        """`parts[0]` (then a member `parts[1]` of it) as module `path` exposes it: defined there, or
        re-exported by an import in it (`from .statefbk import *` in a package's `__init__.py`), or
        a member of a submodule it imports (`from . import phaseplot`: `pkg.phaseplot.f`)."""
        row = self.by_file.get(path, {}).get(parts[0])
        if row is not None:
            return row
        node, target_path = self.imports(path).get(parts[0], (None, None))
        if not node or not target_path or node.startswith("module:"):
            return None
        if node.startswith("file:"):
            if len(parts) < 2 or depth > 3:  # the module itself is no symbol; imports may loop
                return None
            rest = parts[1:]
            return self.by_file.get(target_path, {}).get(".".join(rest)) or self._module_member(target_path, rest, depth + 1)
        row = self.by_file.get(target_path, {}).get(node.split("::", 1)[-1])
        if row is None or len(parts) == 1 or row[4] not in CLASSY:
            return row
        return self._member(row[1], row[2], parts[1]) or row

    def _go_receiver(self, path: str, scope: str | None, name: str) -> str | None:
        """The type of the Go method `scope`'s receiver when it is named `name` (`func (c *Command)
        execute()` and `c`: `Command`), else None."""
        while scope:
            row = self.by_file.get(path, {}).get(scope)
            if row is None:
                return None
            if row[4] == "method":
                m = _GO_RECEIVER.match(row[7] or "")
                return m.group(2) if m and m.group(1) == name else None
            scope = row[9]
        return None

    def _enclosing_type(self, path: str, scope: str | None) -> str | None:
        while scope:
            row = self.by_file.get(path, {}).get(scope)
            if row and row[4] in CLASSY and row[4] != "impl":
                return scope
            if row and row[4] == "impl":
                return None
            parent = row[9] if row else None
            if row and row[4] == "method" and "." in scope and parent and parent.startswith("impl "):
                return scope.rsplit(".", 1)[0]  # Rust: `Point.fmt` lives in `impl X for Point`
            scope = parent if row else (scope.rsplit(".", 1)[0] if "." in scope else None)
        return None

    def lookup(self, path: str, name: str, scope: str | None, line: int | None = None) -> tuple | None:
        """The symbol row a name refers to, or None (`line`: where it is used, for notebooks)."""
        parts = [p for p in _SPLIT.split(name) if p]
        if not parts:
            return None
        local = self.by_file.get(path, {})
        if parts[0] in ("super()", "super") and len(parts) > 1:  # the enclosing class's bases
            owner = self._enclosing_type(path, scope)
            for base in self.bases.get((path, owner), []) if owner else []:
                target = self.lookup(path, base, None)
                if target and target[4] in CLASSY:
                    found = self._member(target[1], target[2], parts[1])
                    if found:
                        return found
            return None
        if parts[0] in _SELF:
            owner = self._enclosing_type(path, scope)
            if not owner or len(parts) < 2:
                return local.get(owner) if owner else None
            return self._member(path, owner, parts[1])
        if len(parts) == 2 and self.files.get(path) == "go" and (owner := self._go_receiver(path, scope, parts[0])):
            # `c.updateParentsPflags()` in `func (c *Command) …`: a method of the receiver's type,
            # defined in any file of the package
            for sibling in self.dirs.get(posixpath.dirname(path), []):
                row = self.by_file.get(sibling, {}).get(f"{owner}.{parts[1]}")
                if row:
                    return row
        first, rest = parts[0], parts[1:]
        row = None
        nested = bool(scope) and local.get(scope, (None,) * 5)[4] in FUNCY and f"{scope}.{first}" in local
        binding, target = (None, None) if nested else self._binding(path, first, scope, line)
        if nested:
            row = local[f"{scope}.{first}"]
        elif binding == "def":
            row = target
        else:
            imp = target if binding == "import" else None
            if imp:
                node, target_path = imp
                if node.startswith("file:") and target_path:
                    if not rest:
                        return None
                    if self.files.get(target_path) == "python" and len(parts) > 2:
                        # `import a.b` binds `a` to a/b.py's module: `a.b.f` is its `f`
                        module = python_module(target_path)
                        for k in range(len(parts) - 1, 1, -1):
                            written = ".".join(parts[:k])
                            if module == written or module.endswith("." + written):
                                rest = parts[k:]
                                break
                    row = self.by_file.get(target_path, {}).get(".".join(rest))
                    return row or self._module_member(target_path, rest)
                row = self.by_file.get(target_path or "", {}).get(node.split("::", 1)[-1]) if target_path else None
            elif self.files.get(path) == "go":
                for sibling in self.dirs.get(posixpath.dirname(path), []):
                    if first in self.by_file.get(sibling, {}):
                        row = self.by_file[sibling][first]
                        break
        if row is None or not rest:
            return row
        if row[4] in CLASSY:
            return self._member(row[1], row[2], rest[0])
        return None

    def edges_for(self, path: str, refs: list[tuple]) -> list[tuple]:
        """Edges owned by `path`: (src, dst, kind, line, resolved, owner, dst_path, dst_name).

        `dst_name` is the last segment of the name as written, so that a later change that
        defines that name can find the unresolved edges it may now resolve.
        """
        imports = self.imports(path)
        out = []
        for _p, kind, name, line, scope, module, alias in refs:
            src = symbol_id(path, scope) if scope and scope in self.by_file.get(path, {}) else file_node(path)
            edge_kind = REF_EDGE.get(kind, "references")
            if kind == "import":
                if name == "*" and not alias:  # `from .mod import *` binds no name of its own: it imports the file
                    files = self.module_files(path, module or "")
                    node, target_path = (file_node(files[0]), files[0]) if files else (f"module:{module}", None)
                else:
                    node, target_path = imports.get(alias or name.split(".")[0], (f"module:{module or name}", None))
                out.append((src, node, edge_kind, line, int(not node.startswith("module:")), path, target_path,
                            last_segment(name)))
                continue
            row = self.lookup(path, name, scope, line)
            if row:
                out.append((src, row[0], edge_kind, line, 1, path, row[1], row[3]))
            else:
                out.append((src, f"unresolved:{name}", edge_kind, line, 0, path, None, last_segment(name)))
        # contains: file → top-level symbols, container → members
        for qual, row in self.by_file.get(path, {}).items():
            parent = row[9]
            owner = symbol_id(path, parent) if parent and parent in self.by_file[path] else file_node(path)
            out.append((owner, row[0], "contains", row[5], 1, path, path, row[3]))
        return out
