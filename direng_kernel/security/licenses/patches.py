"""Licence checks on patches: `check_patch(patch, policy)` looks at the lines a unified diff adds
(new files included) for SPDX tags, licence texts and notices, and `license` keys in package
metadata, and returns a `Violation` (file, line, licence, reason) for each one the
`LicensePolicy` rejects. `patch_additions(patch)` is the diff reading it rests on.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from .manifests import cargo_expression
from .policy import LicensePolicy
from .spdx import SPDX_TAG, parse_expression, spdx_tags
from .texts import identify_license_text

__all__ = ["Violation", "check_patch", "patch_additions"]


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    license: str  # the normalized expression (or the raw text when it does not parse)
    reason: str
    source: str  # spdx-header | license-text | package-metadata

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.license}: {self.reason}"


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _patch_path(header: str) -> str | None:
    name = header.split("\t", 1)[0].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        name = name[2:]
    return name


def patch_additions(patch_text: str) -> dict[str, list[tuple[int, str]]]:
    """The lines a unified diff adds, by new-file path: `{path: [(line, text), …]}`.
    Deleted files are left out; hunk counts decide where a hunk ends, so removed lines that
    look like headers (`--- x`) are not mistaken for one."""
    out: dict[str, list[tuple[int, str]]] = {}
    path: str | None = None
    old_left = new_left = 0
    line_no = 0
    for raw in patch_text.splitlines():
        if old_left > 0 or new_left > 0:
            tag, body = (raw[:1], raw[1:]) if raw else (" ", "")
            if tag == "+":
                if path is not None:
                    out.setdefault(path, []).append((line_no, body))
                line_no += 1
                new_left -= 1
            elif tag == "-":
                old_left -= 1
            elif tag == " ":
                line_no += 1
                old_left -= 1
                new_left -= 1
            elif tag == "\\":
                pass
            else:  # a truncated hunk: fall through to header parsing
                old_left = new_left = 0
            if old_left > 0 or new_left > 0 or tag in "+- \\":
                continue
        if raw.startswith("diff --git "):
            m = re.match(r'diff --git (?:"?a/.*?"?) ("?b/.*"?)$', raw)
            path = _patch_path(m.group(1)) if m else None
        elif raw.startswith("+++ "):
            path = _patch_path(raw[4:])
        elif raw.startswith("@@"):
            m = _HUNK.match(raw)
            if m:
                old_left = int(m.group(1)) if m.group(1) is not None else 1
                line_no = int(m.group(2))
                new_left = int(m.group(3)) if m.group(3) is not None else 1
    return out


def _blocks(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Runs of consecutive line numbers (a licence text never spans a gap)."""
    blocks: list[list[tuple[int, str]]] = []
    for item in lines:
        if blocks and item[0] == blocks[-1][-1][0] + 1:
            blocks[-1].append(item)
        else:
            blocks.append([item])
    return blocks


_META_LINES = {
    "package.json": (re.compile(r"\"license\"\s*:\s*\"([^\"]+)\""), None),
    "pyproject.toml": (re.compile(r"^\s*license\s*=\s*(?:\{\s*text\s*=\s*)?\"([^\"]+)\""), None),
    "Cargo.toml": (re.compile(r"^\s*license\s*=\s*\"([^\"]+)\""), cargo_expression),
    "setup.cfg": (re.compile(r"^\s*license(?:_expression)?\s*[=:]\s*(\S.*?)\s*$"), None),
}


def check_patch(patch_text: str, policy: LicensePolicy) -> list[Violation]:
    """Violations of `policy` by the licences a unified diff adds: SPDX tags, licence texts
    and notices (per run of consecutive added lines) and `license` keys of package metadata."""
    violations: list[Violation] = []
    for path, added in patch_additions(patch_text).items():
        name = path.rsplit("/", 1)[-1]
        statements: list[tuple[int, str, str, Any]] = []  # (line, raw, source, transform)
        for line_no, text in added:
            if SPDX_TAG in text:
                for _, expr in spdx_tags(text):
                    statements.append((line_no, expr, "spdx-header", None))
        meta = _META_LINES.get(name)
        if meta:
            rx, transform = meta
            for line_no, text in added:
                m = rx.search(text)
                if m and not re.match(r"(?i)see licen[cs]e in", m.group(1)):
                    statements.append((line_no, m.group(1), "package-metadata", transform))
        tagged = {k for _, raw, src, tr in statements if src == "spdx-header"
                  for k in parse_expression(raw).keys}
        for block in _blocks(added):
            for match in identify_license_text([t for _, t in block], first_line=block[0][0]):
                if match.spdx not in tagged:
                    statements.append((match.line, match.spdx, "license-text", None))
        for line_no, raw, source, transform in sorted(statements, key=lambda s: s[0]):
            parsed = parse_expression(transform(raw) if transform else raw)
            decision = policy.evaluate(parsed)
            if not decision.ok:
                violations.append(Violation(path, line_no, parsed.expression or raw,
                                            "; ".join(decision.reasons), source))
    return violations
