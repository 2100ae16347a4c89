"""Licence policy: which licences a change may bring in (`LicensePolicy`: `forbidden` and
`allowed` SPDX ids or globs), read from a YAML or JSON file by `load_license_policy`."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

from .findings import LicenseError
from .spdx import ParsedLicense, licensing, one_line, parse_expression

__all__ = ["LicensePolicy", "Decision", "load_license_policy"]


def _expand_pattern(pattern: str) -> list[str]:
    """A policy entry as the globs it stands for: literal ids are normalized (`mit` → `MIT`,
    `GPL-2.0+` → `GPL-2.0-or-later`), and a bare GNU id (`GPL-3.0`) covers `-only` and
    `-or-later` both."""
    p = pattern.strip()
    if any(c in p for c in "*?["):
        return [p]
    bare = re.fullmatch(r"(A|L)?GPL-\d\.\d", p, re.I)
    if bare:
        return [p, f"{p}-only", f"{p}-or-later"]
    parsed = parse_expression(p)
    if parsed.expression and len(parsed.keys) == 1 and " " not in parsed.expression:
        return [p, parsed.expression]
    return [p]


@dataclass(frozen=True)
class Decision:
    ok: bool
    reasons: tuple[str, ...] = ()


@dataclass
class LicensePolicy:
    """Which licences a patch may bring in. `forbidden` and `allowed` are SPDX ids or globs
    (`GPL-*`, `*-or-later`), matched case-insensitively. An id is acceptable when it matches
    no forbidden entry and, if `allowed` is a list, matches one of it. Expressions follow
    their logic: `A OR B` needs one acceptable alternative, `A AND B` needs both; for
    `A WITH exc` an entry naming the whole `A WITH exc` decides first, then `A` alone."""

    allowed: list[str] | None = None
    forbidden: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._forbidden = [(p, g.lower()) for p in self.forbidden for g in _expand_pattern(p)]
        self._allowed = None if self.allowed is None else [(p, g.lower()) for p in self.allowed
                                                            for g in _expand_pattern(p)]

    @classmethod
    def from_dict(cls, data: Any, source: str = "licence policy") -> "LicensePolicy":
        if not isinstance(data, dict):
            raise LicenseError(f"{source}: expected a mapping with 'forbidden' and/or 'allowed'")
        unknown = set(data) - {"allowed", "forbidden"}
        if unknown:
            raise LicenseError(f"{source}: unknown key(s): {', '.join(sorted(map(str, unknown)))} "
                               "(expected 'forbidden', 'allowed')")

        def ids(key: str) -> list[str] | None:
            value = data.get(key)
            if value is None:
                return None
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise LicenseError(f"{source}: '{key}' must be a list of SPDX ids or globs")
            return [v.strip() for v in value]

        return cls(allowed=ids("allowed"), forbidden=ids("forbidden") or [])

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "forbidden": list(self.forbidden)}

    @staticmethod
    def _match(name: str, patterns: list[tuple[str, str]]) -> str | None:
        low = name.lower()
        for original, glob in patterns:
            if fnmatch.fnmatchcase(low, glob):
                return original
        return None

    def check_id(self, key: str, with_exception: str | None = None, unknown: Iterable[str] = ()) -> str | None:
        """None when the licence id is acceptable, else the reason it is not. Ids in
        `unknown` (not SPDX, not `LicenseRef-…`) are never acceptable: they cannot be checked."""
        if key in unknown:
            return f"{key} is not a known SPDX licence id"
        if with_exception:
            full = f"{key} WITH {with_exception}"
            hit = self._match(full, self._forbidden)
            if hit:
                return f"{full} is forbidden (matches {hit!r})"
            if self._allowed is not None and self._match(full, self._allowed):
                return None
        hit = self._match(key, self._forbidden)
        if hit:
            return f"{key} is forbidden (matches {hit!r})"
        if self._allowed is not None and not self._match(key, self._allowed):
            return f"{key} is not in the allowed list"
        return None

    def _eval(self, node, unknown: tuple[str, ...] = ()) -> tuple[bool, list[str]]:
        if isinstance(node, LicenseWithExceptionSymbol):
            reason = self.check_id(node.license_symbol.key, node.exception_symbol.key, unknown)
            return reason is None, [reason] if reason else []
        if isinstance(node, LicenseSymbol):
            reason = self.check_id(node.key, None, unknown)
            return reason is None, [reason] if reason else []
        results = [self._eval(arg, unknown) for arg in node.args]
        if isinstance(node, OR):
            if any(ok for ok, _ in results):
                return True, []
            return False, [r for _, rs in results for r in rs]
        if isinstance(node, AND):
            bad = [r for ok, rs in results if not ok for r in rs]
            return not bad, bad
        return False, [f"unsupported expression node {type(node).__name__}"]

    def evaluate(self, expression: str | ParsedLicense) -> Decision:
        """Whether an expression is acceptable, with the reasons when it is not. An
        expression that does not parse is not acceptable, nor is an unknown id (other than
        `LicenseRef-…`) unless an acceptable `OR` alternative makes it irrelevant."""
        parsed = expression if isinstance(expression, ParsedLicense) else parse_expression(expression)
        if parsed.expression is None:
            return Decision(False, (parsed.error or "invalid licence expression",))
        node = licensing().parse(parsed.expression)
        ok, reasons = self._eval(node, parsed.unknown)
        return Decision(ok, tuple(dict.fromkeys(reasons)))

    def permits(self, expression: str) -> bool:
        return self.evaluate(expression).ok


def load_license_policy(path: str | os.PathLike) -> LicensePolicy:
    """A `LicensePolicy` from a YAML or JSON file `{forbidden: [...], allowed: [...]}`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LicenseError(f"licence policy not found: {p}") from None
    except OSError as err:
        raise LicenseError(f"cannot read licence policy {p}: {err.strerror or err}") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise LicenseError(f"licence policy {p} is not valid JSON: {one_line(err)}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise LicenseError(f"licence policy {p} is not valid YAML: {one_line(err)}") from None
    return LicensePolicy.from_dict(data, source=str(p))
