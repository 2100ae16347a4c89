"""Licence detection for a file or a tree: `detect_licenses(root)` reports every licence a tree
declares, `license_findings(rel, text)` those of one file's text.

A file's statements are its `SPDX-License-Identifier:` tags (`spdx`), what a licence file's text
says (`texts`), the licence keys of package metadata (`manifests`), and for source files the
licence notices in their first `NOTICE_LINES` lines ("Licensed under the Apache License…", the
GNU "as published by the Free Software Foundation; either version …" paragraph). A tree is
walked as the indexer walks it (`discovery.discover`), plus the licence files (`COPYING`,
`LICENSE-MIT`, …) that `discover` leaves out.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...discovery import SNIFF_BYTES, discover, is_binary
from .findings import LicenseError, LicenseFinding, LicenseReport, finding
from .manifests import METADATA_FILES, manifest_findings
from .spdx import spdx_tags
from .texts import identify_license_text, is_license_file

__all__ = ["detect_licenses", "license_findings", "iter_license_candidates", "MAX_FILE_BYTES", "NOTICE_LINES"]

MAX_FILE_BYTES = 2_000_000
#: Notices are looked for in this many leading lines of a source file.
NOTICE_LINES = 40


def license_findings(rel: str, text: str, *, abspath: Path | None = None,
                     source_code: bool | None = None) -> list[LicenseFinding]:
    """Licence findings for one file's text. `rel` names it (and decides how it is read:
    metadata, licence file or other); `abspath` is needed to follow `{file = …}` pointers;
    `source_code` (default: guessed from the extension) turns on notice detection."""
    name = rel.rsplit("/", 1)[-1]
    base = abspath.parent if abspath is not None else Path(".")
    out: list[LicenseFinding] = []
    if name in METADATA_FILES:
        out += manifest_findings(rel, text, base)
    elif is_license_file(name):
        matches = identify_license_text(text)
        for m in matches:
            out.append(finding(rel, m.line, "license-file", m.spdx))
        if not matches and not spdx_tags(text):
            out.append(LicenseFinding(rel, None, "license-file", "", None, (), "unrecognised licence text"))
    for line, expr in spdx_tags(text):
        out.append(finding(rel, line, "spdx-header", expr))
    if source_code is None:
        source_code = _is_source(name)
    if source_code and not is_license_file(name):
        head = text.split("\n", NOTICE_LINES)[:NOTICE_LINES]
        tagged = {k for f in out for k in f.keys}
        for m in identify_license_text(head):
            if m.spdx not in tagged:  # an SPDX tag and its notice are one statement
                out.append(finding(rel, m.line, "notice", m.spdx))
    return out

_SOURCE_SUFFIXES = {
    ".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".rs", ".go", ".c", ".h", ".cc", ".cpp",
    ".hpp", ".cxx", ".java", ".kt", ".scala", ".swift", ".m", ".rb", ".php", ".pl", ".sh", ".bash",
    ".lua", ".hs", ".el", ".clj", ".ex", ".exs", ".erl", ".cs", ".fs", ".dart", ".r", ".jl", ".sql",
    ".css", ".scss", ".vue", ".svelte", ".zig", ".nim",
}


def _is_source(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _SOURCE_SUFFIXES


def detect_licenses(root: str | os.PathLike, max_file_bytes: int = MAX_FILE_BYTES) -> LicenseReport:
    """Every licence statement under `root` (a directory, walked as the indexer walks it:
    `.gitignore`, `.direngignore` and dependency folders respected; or a single file)."""
    root = Path(root)
    if not root.exists():
        raise LicenseError(f"no such file or directory: {root}")
    if root.is_file():
        text = root.read_text(encoding="utf-8", errors="replace")
        return LicenseReport(str(root), license_findings(root.name, text, abspath=root.resolve()))
    root = root.resolve()
    report = LicenseReport(str(root))
    for rel, abspath in iter_license_candidates(root, max_file_bytes):
        try:
            data = abspath.read_bytes()
        except OSError:
            continue
        if is_binary(data[:SNIFF_BYTES]):
            continue
        text = data.decode("utf-8", errors="replace")
        report.findings += license_findings(rel, text, abspath=abspath)
    return report


def iter_license_candidates(root: Path, max_file_bytes: int = MAX_FILE_BYTES,
                            skipped: dict[str, int] | None = None, *, notebooks: bool = False,
                            max_notebook_bytes: int | None = None) -> list[tuple[str, Path]]:
    """The files `discover` finds under `root`, plus the licence files (`COPYING`,
    `LICENSE-MIT`, …) it leaves out, from every directory it reached. `skipped`, when
    given, receives discover's skip counts; `notebooks` lists `.ipynb` files too (capped at
    `max_notebook_bytes`), for a caller that reads them as notebooks."""
    found = discover(root, max_file_bytes, notebooks=notebooks, max_notebook_bytes=max_notebook_bytes)
    if skipped is not None:
        for reason, n in found.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    out = [(c.path, c.abspath) for c in found.files]
    seen = {rel for rel, _ in out}
    dirs = {""}
    for rel, _ in out:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    for d in sorted(dirs):
        try:
            entries = sorted(os.scandir(root / d), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = f"{d}/{entry.name}" if d else entry.name
            if rel in seen or not is_license_file(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False) or entry.stat().st_size > max_file_bytes:
                    continue
            except OSError:
                continue
            out.append((rel, Path(entry.path)))
            seen.add(rel)
    out.sort()
    return out
