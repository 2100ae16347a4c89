"""What licence detection reports: one `LicenseFinding` per licence statement, a
`LicenseReport` for a tree, and `LicenseError` for what cannot be scanned or read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import DirEngError
from .spdx import parse_expression

__all__ = ["LicenseError", "LicenseFinding", "LicenseReport", "finding"]


class LicenseError(DirEngError):
    """A licence policy that is missing or malformed, or a path that cannot be scanned."""


@dataclass(frozen=True)
class LicenseFinding:
    """One licence statement: where (`path` relative to the scanned root, `line` or None),
    how it was found (`source`), the text as written and its normalized expression."""

    path: str
    line: int | None
    source: str  # spdx-header | license-file | notice | pyproject.toml | setup.cfg | package.json | Cargo.toml
    raw: str
    expression: str | None
    keys: tuple[str, ...] = ()
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keys"] = list(self.keys)
        return d

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        what = self.expression or repr(self.raw)
        return f"{where}: {what} ({self.source})" + (f": {self.error}" if self.error else "")


def finding(path: str, line: int | None, source: str, raw: str, transform=None) -> LicenseFinding:
    """A finding for the expression `raw` (after `transform`, when given), parsed and normalized."""
    parsed = parse_expression(transform(raw) if transform else raw)
    return LicenseFinding(path, line, source, raw, parsed.expression, parsed.keys, parsed.error)


@dataclass
class LicenseReport:
    root: str
    findings: list[LicenseFinding] = field(default_factory=list)

    @property
    def expressions(self) -> list[str]:
        """The distinct valid normalized expressions, sorted."""
        return sorted({f.expression for f in self.findings if f.valid and f.expression})

    @property
    def licenses(self) -> list[str]:
        """The distinct licence ids of the valid findings, sorted."""
        return sorted({k for f in self.findings if f.valid for k in f.keys})

    @property
    def invalid(self) -> list[LicenseFinding]:
        return [f for f in self.findings if not f.valid]

    def by_source(self, source: str) -> list[LicenseFinding]:
        return [f for f in self.findings if f.source == source]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "licenses": self.licenses, "expressions": self.expressions,
                "findings": [f.to_dict() for f in self.findings]}
