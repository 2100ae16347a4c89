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

A finding is `blocking` when it should stop text from leaving the machine or a change from
landing: every secret, PII that is neither benign nor an example, a licence statement that
does not parse, and one the policy rejects. Findings never carry a secret or PII value, only
masked previews and digests.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..discovery import SNIFF_BYTES, is_binary
from ..errors import DirEngError
from .licenses.detect import iter_license_candidates, license_findings
from .licenses.spdx import parse_expression
from .pii import find_pii
from .secrets import SecretFinding, scan_text

CATEGORIES = ("secret", "pii", "license")
MAX_FILE_BYTES = 2_000_000


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.category}/{self.kind}: {self.detail}"


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
        """A pandas DataFrame: kind, category, path, line, detail, blocking (one row a finding)."""
        import pandas as pd

        columns = ["kind", "category", "path", "line", "detail", "blocking"]
        frame = pd.DataFrame([{c: getattr(f, c) for c in columns} for f in self.findings], columns=columns)
        frame["line"] = frame["line"].astype("Int64")
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


def _license_rows(text: str, rel: str, abspath: Path, policy) -> list[ScanFinding]:
    rows = []
    for f in license_findings(rel, text, abspath=abspath):
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


def scan_path(path: str | os.PathLike, *, max_file_bytes: int = MAX_FILE_BYTES, license_policy=None,
              categories: tuple[str, ...] = CATEGORIES) -> ScanReport:
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
        files = iter_license_candidates(target.resolve(), max_file_bytes, report.skipped)
    elif target.is_file():
        files = [(target.name, target.resolve())]
    else:
        raise ScanError(f"not a regular file or directory: {path}")

    report.secrets_checked = "secret" in categories

    def skip(reason: str) -> None:
        report.skipped[reason] = report.skipped.get(reason, 0) + 1

    for rel, abspath in files:
        try:
            if abspath.stat().st_size > max_file_bytes:
                skip("too large")
                continue
            data = abspath.read_bytes()
        except OSError:
            skip("unreadable")
            continue
        if is_binary(data[:SNIFF_BYTES]):
            skip("binary")
            continue
        text = data.decode("utf-8", errors="replace")
        report.files_scanned += 1
        if "secret" in categories:
            try:
                report.findings += [_secret_row(s, rel) for s in scan_text(text, rel)]
            except Exception as err:  # noqa: BLE001 — one file's failure must not hide the rest
                report.notes.append(f"secrets scan failed on {rel}: {type(err).__name__}: {err}")
                report.secrets_checked = False  # a gate that could not check must not pass
        if "pii" in categories:
            report.findings += _pii_rows(text, rel)
        if "license" in categories:
            report.findings += _license_rows(text, rel, abspath, license_policy)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    report.findings.sort(key=lambda f: (f.path, f.line or 0, order.get(f.category, 9), f.kind))
    return report
