"""Find the files worth indexing (or scanning) under a root: the one walk the index and the
security scanners share.

The walk honours `.gitignore` files at every level plus a `.direngignore` at the root (both
with git's own semantics via pathspec), never descends into symlinked directories, refuses
symlinked files that resolve outside the root, and sorts what it meets into three heaps:
source files (a tree-sitter language), text files (indexed as plain chunks) and skipped files
(with a reason, so that `index` can report what it left out and why). Which extension is
which language is data here too (`SOURCE_EXTENSIONS`); how to parse a language is the index's.
Jupyter notebooks are listed only when asked for (`notebooks=True`, the index), with the language
`NOTEBOOK` and a cap of their own: their outputs may be huge while their sources are small, so
the index reads them and measures the sources (see `index/notebooks.py`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from . import confined

# Always skipped: VCS internals, our own store, dependency and build caches.
ALWAYS_IGNORED_DIRS = {
    ".git", ".hg", ".svn", ".direng", "node_modules", "__pycache__", ".venv", "venv",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints",
    "target", "dist", "build", ".eggs",
}
TEXT_EXTENSIONS = {
    ".md", ".rst", ".txt", ".toml", ".yaml", ".yml", ".json", ".cfg", ".ini", ".sql",
    ".html", ".css", ".scss", ".sh", ".dockerfile", ".proto", ".graphql",
}
TEXT_NAMES = {"Dockerfile", "Makefile", "README", "LICENSE", "CHANGES", "CONTRIBUTING"}
# Lock files and minified bundles are text, but searching them only adds noise.
NOISE_SUFFIXES = (".min.js", ".min.css", ".lock", "-lock.json", ".map")
SNIFF_BYTES = 8192
# Files a tree-sitter grammar parses, by extension → language name (see index/languages.py).
SOURCE_EXTENSIONS = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".rs": "rust",
    ".go": "go",
}
# Candidate.language of a Jupyter notebook: the index reads it with index/notebooks.py.
NOTEBOOK = "notebook"
NOTEBOOK_SUFFIX = ".ipynb"


def language_for_path(path: str) -> str | None:
    """The language name for a file path, by extension (`None` if no grammar parses it)."""
    return SOURCE_EXTENSIONS.get(os.path.splitext(path)[1].lower())


@dataclass
class Candidate:
    path: str  # relative, forward slashes
    abspath: Path
    language: str | None  # None for plain text
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    files: list[Candidate] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def is_binary(head: bytes) -> bool:
    """Git's heuristic: a NUL byte in the first block means binary."""
    return b"\x00" in head


def _load_spec(directory: Path, name: str) -> pathspec.GitIgnoreSpec | None:
    try:
        lines = (directory / name).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def classify(rel: str) -> tuple[bool, str | None]:
    """(indexable, language) for a relative path, by name alone."""
    language = language_for_path(rel)
    if language:
        return True, language
    name = rel.rsplit("/", 1)[-1]
    if name.endswith(NOISE_SUFFIXES):
        return False, None
    suffix = os.path.splitext(name)[1].lower()
    return (suffix in TEXT_EXTENSIONS or name in TEXT_NAMES), None


def discover(root: Path, max_file_bytes: int, *, notebooks: bool = False,
             max_notebook_bytes: int | None = None) -> Discovery:
    """Walk `root` and return the indexable files, sorted by path, with skip counts.

    With `notebooks`, `.ipynb` files are listed too (language `NOTEBOOK`), capped at
    `max_notebook_bytes` (default `max_file_bytes`) rather than `max_file_bytes`."""
    notebook_cap = max_file_bytes if max_notebook_bytes is None else max_notebook_bytes
    root = root.resolve()
    out = Discovery()
    # (directory relative prefix, spec) pairs: a .gitignore applies below its own directory.
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    root_ignore = _load_spec(root, ".direngignore")
    if root_ignore:
        specs.append(("", root_ignore))

    def ignored(rel: str, is_dir: bool) -> bool:
        for prefix, spec in specs:
            if prefix and not rel.startswith(prefix):
                continue
            sub = rel[len(prefix):] + ("/" if is_dir else "")
            if spec.match_file(sub):
                return True
        return False

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        spec = _load_spec(here, ".gitignore")
        if spec:
            specs.append((prefix, spec))
        kept = []
        for d in sorted(dirnames):
            if d in ALWAYS_IGNORED_DIRS or d.endswith(".egg-info"):
                continue
            if (here / d).is_symlink():
                out.skip("symlink")
                continue
            if ignored(prefix + d, True):
                continue
            kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = prefix + name
            if ignored(rel, False):
                continue
            if notebooks and name.lower().endswith(NOTEBOOK_SUFFIX):
                indexable, language = True, NOTEBOOK
            else:
                indexable, language = classify(rel)
            if not indexable:
                continue
            abspath = here / name
            if abspath.is_symlink():
                try:
                    target = abspath.resolve(strict=True)
                except (OSError, RuntimeError):
                    out.skip("broken symlink")
                    continue
                if not target.is_relative_to(root):
                    out.skip("symlink outside root")
                    continue
            try:
                st = abspath.stat()
            except OSError:
                out.skip("unreadable")
                continue
            if not stat.S_ISREG(st.st_mode):  # FIFOs and devices would block or never end
                out.skip("not a regular file")
                continue
            if st.st_size > (notebook_cap if language == NOTEBOOK else max_file_bytes):
                out.skip("too large")
                continue
            out.files.append(Candidate(rel, abspath, language, st.st_size, st.st_mtime_ns))
    return out


def read_text(root: Path, candidate: Candidate) -> tuple[bytes | None, str | None]:
    """Read a file's bytes, or (None, reason) when it is unreadable or binary.

    Read through the confined no-follow reader: the file may have become a link out of the root
    since discovery looked at it."""
    try:
        data = confined.read_bytes(root, candidate.path)
    except confined.ConfinementError:
        return None, "symlink outside root"
    except OSError:
        return None, "unreadable"
    if is_binary(data[:SNIFF_BYTES]):
        return None, "binary"
    return data, None
