"""One pass over a file or a tree for secrets, PII and licences.

`scan_path(path)` walks a directory the way the indexer does (`direng_kernel.discovery.
discover`: `.gitignore` and `.direngignore` honoured, dependency and build folders skipped,
binary and oversized files left out) plus the licence files `discover` does not list, or
scans a single file. Each file is read once and goes through:

* secrets: `direng_kernel.security.secrets.scan_text` (a file it fails on is named in `notes`,
  and `secrets_checked` is then False),
* PII: `direng_kernel.security.pii.find_pii`,
* licences: `direng_kernel.security.licenses.detect.license_findings`, checked against a
  `LicensePolicy` when one is given.

A Jupyter notebook (`.ipynb`, read by `direng_kernel.notebook_file`, up to `MAX_NOTEBOOK_BYTES`:
outputs make notebooks big) is scanned cell by cell, each finding located by its 0-based `cell`
and the line within it (`path:cell 3:2`). Its outputs are scanned too, for secrets and PII only:
unlike the index, which never reads outputs, a scan is asked what the file would leak, and a
printed token or a table of customers' e-mails in an output leaks as surely as one in code
(`part="output"`, `path:cell 3 output:1`, lines counted in the cell's text outputs joined in
order; images are left out). Licences are looked for in sources only. A malformed notebook is
scanned as plain text instead, and the report's `notes` say why in one line.

A finding is `blocking` when it should stop text from leaving the machine or a change from
landing: every secret, PII that is neither benign nor an example, a licence statement that
does not parse, and one the policy rejects. Findings never carry a secret or PII value, only
masked previews and digests.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import notebook_file
from ..discovery import NOTEBOOK_SUFFIX, SNIFF_BYTES, is_binary
from ..errors import DirEngError
from .licenses.detect import iter_license_candidates, license_findings
from .licenses.spdx import parse_expression
from .pii import find_pii
from .secrets import SecretFinding, scan_text

CATEGORIES = ("secret", "pii", "license")
MAX_FILE_BYTES = 2_000_000
MAX_NOTEBOOK_BYTES = 64_000_000  # read as JSON; only sources and text outputs are scanned
PARTS = ("source", "output")  # where in a notebook cell a finding is
# The extension whose secret-keyword rules fit a notebook's code (`.py` needs quoted values).
_CODE_SUFFIX = {"python": ".py", "javascript": ".js", "typescript": ".ts", "rust": ".rs", "go": ".go"}


class ScanError(DirEngError):
    """A path that cannot be scanned."""


@dataclass(frozen=True)
class ScanFinding:
    category: str  # secret | pii | license
    kind: str
    path: str
    line: int | None
    detail: str
    blocking: bool = True
    cell: int | None = None  # in a notebook: the 0-based cell (`line` is within it), else None
    part: str | None = None  # in a notebook: "source" or "output"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def location(self) -> str:
        """`path:line`, or in a notebook `path:cell N:line` / `path:cell N output:line`."""
        where = self.path
        if self.cell is not None:
            where += f":cell {self.cell}" + (" output" if self.part == "output" else "")
        return f"{where}:{self.line}" if self.line else where

    def __str__(self) -> str:
        return f"{self.location}: {self.category}/{self.kind}: {self.detail}"


@dataclass
class ScanReport:
    root: str
    findings: list[ScanFinding] = field(default_factory=list)
    files_scanned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    secrets_checked: bool = False
    notes: list[str] = field(default_factory=list)

    def of(self, category: str, blocking_only: bool = False) -> list[ScanFinding]:
        return [f for f in self.findings if f.category == category and (f.blocking or not blocking_only)]

    def blocking_categories(self) -> set[str]:
        """The categories with at least one blocking finding."""
        return {f.category for f in self.findings if f.blocking}

    def counts(self, blocking_only: bool = False) -> dict[str, int]:
        return {c: len(self.of(c, blocking_only)) for c in CATEGORIES}

    def to_frame(self):
        """A pandas DataFrame: kind, category, path, line, detail, blocking, cell, part (one row a
        finding; cell and part empty outside notebooks)."""
        import pandas as pd

        columns = ["kind", "category", "path", "line", "detail", "blocking", "cell", "part"]
        frame = pd.DataFrame([{c: getattr(f, c) for c in columns} for f in self.findings], columns=columns)
        frame["line"] = frame["line"].astype("Int64")
        frame["cell"] = frame["cell"].astype("Int64")
        frame["blocking"] = frame["blocking"].astype(bool)
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "files_scanned": self.files_scanned,
            "skipped": dict(self.skipped),
            "secrets_checked": self.secrets_checked,
            "notes": list(self.notes),
            "counts": self.counts(),
            "blocking": self.counts(blocking_only=True),
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _secret_row(finding: SecretFinding, rel: str) -> ScanFinding:
    return ScanFinding("secret", finding.type, rel, finding.line, f"sha256:{finding.digest}", True)


def _pii_rows(text: str, rel: str) -> list[ScanFinding]:
    rows = []
    for f in find_pii(text):
        flags = [w for w, on in (("example", f.example), ("benign", f.benign)) if on]
        detail = f.preview + (f" ({f.note})" if f.note else "") + (f" [{', '.join(flags)}]" if flags else "")
        rows.append(ScanFinding("pii", f.kind, rel, f.line, detail, f.counts))
    return rows


def _license_rows(text: str, rel: str, abspath: Path, policy, source_code: bool | None = None) -> list[ScanFinding]:
    rows = []
    for f in license_findings(rel, text, abspath=abspath, source_code=source_code):
        if f.error:
            rows.append(ScanFinding("license", f.source, rel, f.line, f.error, True))
            continue
        detail, blocking = f.expression or f.raw, False
        if policy is not None:
            decision = policy.evaluate(parse_expression(f.expression or f.raw))
            if not decision.ok:
                detail, blocking = f"{detail}: {'; '.join(decision.reasons)}", True
        rows.append(ScanFinding("license", f.source, rel, f.line, detail, blocking))
    return rows


def _scan_text(report: ScanReport, text: str, rel: str, abspath: Path, categories, license_policy, *,
               secret_name: str | None = None, licenses: bool = True, source_code: bool | None = None,
               cell: int | None = None, part: str | None = None) -> None:
    """One text's findings into `report`: a file's, or one part of a notebook cell's."""
    found: list[ScanFinding] = []
    if "secret" in categories:
        try:
            found += [_secret_row(s, rel) for s in scan_text(text, secret_name or rel)]
        except Exception as err:  # noqa: BLE001 — one file's failure must not hide the rest
            where = rel if cell is None else f"{rel} cell {cell}"
            report.notes.append(f"secrets scan failed on {where}: {type(err).__name__}: {err}")
            report.secrets_checked = False  # a gate that could not check must not pass
    if "pii" in categories:
        found += _pii_rows(text, rel)
    if "license" in categories and licenses:
        found += _license_rows(text, rel, abspath, license_policy, source_code)
    if cell is not None:
        found = [replace(f, cell=cell, part=part) for f in found]
    report.findings += found


def _scan_notebook(report: ScanReport, data: bytes, rel: str, abspath: Path, categories, license_policy) -> None:
    """A notebook's cells (sources: secrets, PII, licences; text outputs: secrets, PII); a
    malformed one is scanned as the text it is, with a one-line note."""
    try:
        nb = notebook_file.load(data)
    except notebook_file.NotebookError as err:
        report.notes.append(f"{rel}: malformed notebook ({err}); scanned as plain text")
        _scan_text(report, data.decode("utf-8", errors="replace"), rel, abspath, categories, license_policy)
        return
    code_name = rel + _CODE_SUFFIX.get(notebook_file.code_language(nb.raw), ".txt")
    for index, cell in enumerate(nb.cells):
        code = cell["cell_type"] == "code"
        source = notebook_file.cell_source(cell)
        if source.strip():
            _scan_text(report, source, rel, abspath, categories, license_policy, cell=index, part="source",
                       secret_name=code_name if code else rel + ".md", source_code=code)
        output = notebook_file.output_text(cell) if code else ""
        if output.strip():
            _scan_text(report, output, rel, abspath, categories, license_policy, cell=index, part="output",
                       secret_name=rel + ".txt", licenses=False)


def scan_path(path: str | os.PathLike, *, max_file_bytes: int = MAX_FILE_BYTES, license_policy=None,
              categories: tuple[str, ...] = CATEGORIES, max_notebook_bytes: int = MAX_NOTEBOOK_BYTES) -> ScanReport:
    """Scan a file or a directory for secrets, PII and licences (see the module docstring).
    `license_policy` (a `LicensePolicy`) makes rejected licences blocking findings;
    `categories` limits the checks."""
    target = Path(path)
    if not target.exists():
        raise ScanError(f"no such file or directory: {path}")
    unknown = set(categories) - set(CATEGORIES)
    if unknown:
        raise ScanError(f"unknown scan categories: {', '.join(sorted(unknown))} (choose from {', '.join(CATEGORIES)})")
    report = ScanReport(str(target.resolve()))
    if target.is_dir():
        files = iter_license_candidates(target.resolve(), max_file_bytes, report.skipped,
                                        notebooks=True, max_notebook_bytes=max_notebook_bytes)
    elif target.is_file():
        files = [(target.name, target.resolve())]
    else:
        raise ScanError(f"not a regular file or directory: {path}")

    report.secrets_checked = "secret" in categories

    def skip(reason: str) -> None:
        report.skipped[reason] = report.skipped.get(reason, 0) + 1

    for rel, abspath in files:
        notebook = rel.lower().endswith(NOTEBOOK_SUFFIX)
        try:
            if abspath.stat().st_size > (max_notebook_bytes if notebook else max_file_bytes):
                skip("too large")
                continue
            data = abspath.read_bytes()
        except OSError:
            skip("unreadable")
            continue
        if is_binary(data[:SNIFF_BYTES]):
            skip("binary")
            continue
        report.files_scanned += 1
        if notebook:
            _scan_notebook(report, data, rel, abspath, categories, license_policy)
        else:
            _scan_text(report, data.decode("utf-8", errors="replace"), rel, abspath, categories, license_policy)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    report.findings.sort(key=lambda f: (f.path, -1 if f.cell is None else f.cell, PARTS.index(f.part) if f.part else 0,
                                        f.line or 0, order.get(f.category, 9), f.kind))
    return report
