"""Licence detection for a code base and licence policy for patches.

`detect_licenses(root)` reports every licence a tree declares:

* `SPDX-License-Identifier:` tags on comment lines of any syntax (`#`, `//`, `/* … */`,
  `--`, `;`, `%`, `<!-- … -->`, `(* … *)`, `..`),
* licence files (`LICENSE*`, `LICENCE*`, `COPYING*`, `UNLICENSE`, `COPYRIGHT*`), identified by
  key phrases: MIT, ISC, BSD-2/3/4-Clause, Apache-2.0, MPL-1.1/2.0, GPL-2.0/3.0, LGPL-2.0/2.1/3.0,
  AGPL-3.0 and the Unlicense,
* licence notices in the first lines of source files ("Licensed under the Apache License…",
  the GNU "as published by the Free Software Foundation; either version …" paragraph),
* package metadata: `pyproject.toml` (`project.license` as a string, `{text}` or `{file}`,
  `tool.poetry.license`, licence classifiers), `setup.cfg` (`[metadata] license`),
  `package.json` (`license`, legacy `licenses`, `SEE LICENSE IN file`) and `Cargo.toml`
  (`license`, with the legacy `/` meaning OR, and `license-file`).

Every expression goes through `license_expression`'s SPDX licensing: it comes out normalized
(`gpl-3.0` → `GPL-3.0-only`, `GPL-2.0+` → `GPL-2.0-or-later`), and one that does not parse
or names an unknown id (other than `LicenseRef-…`) is reported with an `error`, never raised.

`check_patch(patch, policy)` looks at the lines a unified diff adds (new files included) for
SPDX tags, licence texts and notices and `license` keys in package metadata, and returns a
`Violation` (file, line, licence, reason) for each one the `LicensePolicy` rejects.
"""

from __future__ import annotations

import bisect
import configparser
import fnmatch
import json
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from ..discovery import discover
from ..errors import DirEngError

__all__ = [
    "LicenseError", "LicenseFinding", "LicenseReport", "LicensePolicy", "Violation", "ParsedLicense",
    "parse_expression", "identify_license_text", "license_findings", "detect_licenses",
    "check_patch", "patch_additions", "load_license_policy",
]

MAX_FILE_BYTES = 2_000_000
#: Notices are looked for in this many leading lines of a source file.
NOTICE_LINES = 40


class LicenseError(DirEngError):
    """A licence policy that is missing or malformed, or a path that cannot be scanned."""


# ---------------------------------------------------------------------------------------------
# Expressions

@lru_cache(maxsize=1)
def _licensing():
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


# Free-text names seen in package metadata, mapped to SPDX ids.
_NAME_ALIASES = {
    "mit license": "MIT", "the mit license": "MIT", "mit licence": "MIT", "expat": "MIT",
    "apache 2": "Apache-2.0", "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache license version 2.0": "Apache-2.0",
    "bsd 3-clause": "BSD-3-Clause", "new bsd": "BSD-3-Clause", "new bsd license": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause", "bsd-3": "BSD-3-Clause",
    "bsd 2-clause": "BSD-2-Clause", "simplified bsd": "BSD-2-Clause", "2-clause bsd": "BSD-2-Clause",
    "gplv2": "GPL-2.0-only", "gplv2+": "GPL-2.0-or-later", "gplv3": "GPL-3.0-only", "gplv3+": "GPL-3.0-or-later",
    "lgplv2": "LGPL-2.0-only", "lgplv2+": "LGPL-2.0-or-later", "lgplv2.1": "LGPL-2.1-only",
    "lgplv3": "LGPL-3.0-only", "lgplv3+": "LGPL-3.0-or-later", "agplv3": "AGPL-3.0-only",
    "agplv3+": "AGPL-3.0-or-later", "mpl 2.0": "MPL-2.0", "mpl-2": "MPL-2.0", "isc license": "ISC",
    "the unlicense": "Unlicense", "unlicense": "Unlicense",
    # npm: "UNLICENSED" means "no licence granted" (proprietary), not the Unlicense.
    "unlicensed": "LicenseRef-UNLICENSED",
}
# Trove classifiers (the part after "License :: ").
_CLASSIFIERS = {
    "OSI Approved :: MIT License": "MIT",
    "OSI Approved :: Apache Software License": "Apache-2.0",
    "OSI Approved :: ISC License (ISCL)": "ISC",
    "OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
}


@dataclass(frozen=True)
class ParsedLicense:
    """An expression as written (`raw`), normalized (`expression`), its licence ids (`keys`,
    exceptions left out) and an `error` when it does not parse or names unknown ids."""

    raw: str
    expression: str | None
    keys: tuple[str, ...] = ()
    error: str | None = None
    unknown: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.error is None


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _symbol_keys(node) -> list[str]:
    from license_expression import LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        return [node.license_symbol.key]
    if isinstance(node, LicenseSymbol):
        return [node.key]
    out: list[str] = []
    for arg in node.args:
        for key in _symbol_keys(arg):
            if key not in out:
                out.append(key)
    return out


@lru_cache(maxsize=4096)
def parse_expression(raw: str) -> ParsedLicense:
    """Parse and normalize an SPDX licence expression; never raises."""
    text = " ".join(str(raw).split())
    if not text:
        return ParsedLicense(raw, None, (), "empty licence expression")
    text = _NAME_ALIASES.get(text.lower(), text)
    licensing = _licensing()
    try:
        parsed = licensing.parse(text)
    except Exception as err:  # ExpressionError, ExpressionParseError, ParseError, …
        return ParsedLicense(raw, None, (), f"invalid licence expression {text!r}: {_one_line(err)}")
    if parsed is None:
        return ParsedLicense(raw, None, (), "empty licence expression")
    keys = tuple(_symbol_keys(parsed))
    unknown = [k for k in licensing.unknown_license_keys(parsed)
               if not k.startswith(("LicenseRef-", "DocumentRef-"))]
    rendered = parsed.render()
    if unknown:
        return ParsedLicense(raw, rendered, keys, f"unknown licence id(s) in {text!r}: {', '.join(unknown)}",
                             tuple(unknown))
    return ParsedLicense(raw, rendered, keys)


# ---------------------------------------------------------------------------------------------
# Licence texts and notices: phrases matched on lower-cased text reduced to words.
# (The patterns spell their separators `\s` so that this file never matches itself.)

_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Full licence texts, by their title block.
_TITLES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), spdx) for p, spdx in (
    (r"gnu\saffero\sgeneral\spublic\slicen[cs]e\sversion\s3\s19\snovember\s2007", "AGPL-3.0-only"),
    (r"gnu\slesser\sgeneral\spublic\slicen[cs]e\sversion\s3\s29\sjune\s2007", "LGPL-3.0-only"),
    (r"gnu\slesser\sgeneral\spublic\slicen[cs]e\sversion\s2\s1\sfebruary\s1999", "LGPL-2.1-only"),
    (r"gnu\slibrary\sgeneral\spublic\slicen[cs]e\sversion\s2\sjune\s1991", "LGPL-2.0-only"),
    (r"gnu\sgeneral\spublic\slicen[cs]e\sversion\s3\s29\sjune\s2007", "GPL-3.0-only"),
    (r"gnu\sgeneral\spublic\slicen[cs]e\sversion\s2\sjune\s1991", "GPL-2.0-only"),
))
# GNU notices: "… under the terms of the GNU Lesser General Public License as published by the
# Free Software Foundation; either version 2.1 of the License, or (at your option) any later version".
_GNU_NOTICE = re.compile(
    r"gnu\s(affero\s|lesser\s|library\s)?general\spublic\slicen[cs]e"
    r"(?:\sas\spublished\sby\sthe\sfree\ssoftware\sfoundation)?(?:\seither)?\s(?:version|v)\s?([123])(?:\s([01])\b)?"
)
_LATER = re.compile(r"\s(?:of\sthe\slicen[cs]e\s)?(?:or\sat\syour\soption\s)?any\slater\sversion|\sor\slater\b")
_GNU_FAMILIES = {None: "GPL", "affero": "AGPL", "lesser": "LGPL", "library": "LGPL"}
_GNU_KNOWN = {"GPL-1.0", "GPL-2.0", "GPL-3.0", "LGPL-2.0", "LGPL-2.1", "LGPL-3.0", "AGPL-3.0"}
# Permissive texts and other notices.
_PHRASES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), spdx) for p, spdx in (
    (r"permission\sis\shereby\sgranted\sfree\sof\scharge\sto\sany\sperson\sobtaining\sa\scopy", "MIT"),
    (r"(?:licensed|released|distributed)\sunder\sthe\s(?:terms\sof\sthe\s)?mit\slicen[cs]e", "MIT"),
    (r"permission\sto\suse\scopy\smodify\s(?:and\sor\s|and\s)?distribute\sthis\ssoftware\sfor\sany\spurpose"
     r"\swith\sor\swithout\sfee\sis\shereby\sgranted", "ISC"),
    (r"apache\slicen[cs]e\s(?:version\s|v\s?)?2\s0", "Apache-2.0"),
    (r"mozilla\spublic\slicen[cs]e\s(?:version\s|v\s)?2\s0", "MPL-2.0"),
    (r"mozilla\spublic\slicen[cs]e\s(?:version\s|v\s)?1\s1", "MPL-1.1"),
    (r"this\sis\sfree\sand\sunencumbered\ssoftware\sreleased\sinto\sthe\spublic\sdomain", "Unlicense"),
))
_BSD = re.compile(
    r"redistribution\sand\suse\sin\ssource\sand\sbinary\sforms\swith\sor\swithout\smodification\sare\spermitted"
)
_BSD_ADVERTISING = re.compile(r"all\sadvertising\smaterials\smentioning")
_BSD_ENDORSE = re.compile(r"neither\sthe\sname|names?\sof\s(?:its\s|the\s)?(?:copyright\sholders?\s|contributors\s)"
                          r"(?:nor\s.{0,40})?may\snot\sbe\sused|may\sbe\sused\sto\sendorse\sor\spromote")


@dataclass(frozen=True)
class TextMatch:
    spdx: str
    line: int  # 1-based line of the first word of the matched phrase


def identify_license_text(text: str | Iterable[str], first_line: int = 1) -> list[TextMatch]:
    """The licences a licence file or a notice states, by key phrases, with their lines.

    `text` is a string or a sequence of lines (line numbers count from `first_line`). A full
    GNU licence text is reported as `-only` (the text alone cannot say "or later"); a notice
    says which. Notices are not looked for when a full GNU text is present (its own
    "how to apply" appendix would otherwise count)."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    parts: list[str] = []
    starts: list[int] = []
    numbers: list[int] = []
    pos = 0
    for i, line in enumerate(lines):
        norm = _NON_ALNUM.sub(" ", line.lower()).strip()
        if not norm:
            continue
        starts.append(pos)
        numbers.append(first_line + i)
        parts.append(norm)
        pos += len(norm) + 1
    if not parts:
        return []
    norm = " ".join(parts)

    def line_at(offset: int) -> int:
        return numbers[bisect.bisect_right(starts, offset) - 1]

    found: dict[str, int] = {}

    def add(spdx: str, offset: int) -> None:
        if spdx not in found:
            found[spdx] = line_at(offset)

    for rx, spdx in _TITLES:
        m = rx.search(norm)
        if m:
            add(spdx, m.start())
    if not found:
        for m in _GNU_NOTICE.finditer(norm):
            family = _GNU_FAMILIES[m.group(1).strip() if m.group(1) else None]
            version = f"{m.group(2)}.{m.group(3) or '0'}"
            base = f"{family}-{version}"
            if base not in _GNU_KNOWN:
                continue
            later = _LATER.match(norm, m.end()) or _LATER.search(norm, m.end(), m.end() + 60)
            add(f"{base}-or-later" if later else f"{base}-only", m.start())
    for rx, spdx in _PHRASES:
        m = rx.search(norm)
        if m:
            add(spdx, m.start())
    m = _BSD.search(norm)
    if m:
        tail = norm[m.end():m.end() + 2000]
        spdx = ("BSD-4-Clause" if _BSD_ADVERTISING.search(tail)
                else "BSD-3-Clause" if _BSD_ENDORSE.search(tail) else "BSD-2-Clause")
        add(spdx, m.start())
    return sorted((TextMatch(s, ln) for s, ln in found.items()), key=lambda t: (t.line, t.spdx))


# ---------------------------------------------------------------------------------------------
# SPDX tags

_SPDX_TAG = "SPDX-License-Identifier:"
_SPDX_LINE = re.compile(
    r"^[ \t]*(?:[#;%!*]+|//+|/\*+|--+|<!--|\{-|\(\*|\"\"\"|'''|@?REM\b|::|\.\.)?[ \t]*"
    r"SPDX-License-Identifier:[ \t]*(.*?)[ \t]*(?:\*/|-->|\*\)|-\}|\"\"\"|''')?[ \t]*$",
    re.M,
)


def spdx_tags(text: str) -> list[tuple[int, str]]:
    """(line, expression) for each `SPDX-License-Identifier:` tag on a comment line."""
    if _SPDX_TAG not in text:
        return []
    out = []
    for m in _SPDX_LINE.finditer(text):
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1).strip()))
    return out


# ---------------------------------------------------------------------------------------------
# Findings

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


def _finding(path: str, line: int | None, source: str, raw: str, transform=None) -> LicenseFinding:
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


_LICENSE_FILE = re.compile(r"^(?:LICEN[CS]E|COPYING|UNLICENSE|COPYRIGHT)(?:[-._][\w.\-]*)?$", re.I)
_METADATA = {"pyproject.toml", "setup.cfg", "package.json", "Cargo.toml"}


def is_license_file(name: str) -> bool:
    return bool(_LICENSE_FILE.match(name))


def _line_of(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _load_toml(text: str) -> dict | None:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    try:
        return tomllib.loads(text)
    except Exception:  # noqa: BLE001 — a broken file is reported, not raised
        return None


def _toml_fallback(text: str, table: str) -> dict:
    """`license = "…"` under `[table]`, for interpreters without a TOML parser."""
    m = re.search(rf"^\[{re.escape(table)}\][ \t]*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not m:
        return {}
    lic = re.search(r"^license[ \t]*=[ \t]*\"([^\"]*)\"", m.group(1), re.M)
    return {"license": lic.group(1)} if lic else {}


def _file_findings(base: Path, rel_dir: str, name: str, source: str, owner: str,
                   line: int | None) -> list[LicenseFinding]:
    """Findings for a licence file that metadata points to (`{file = …}`, `SEE LICENSE IN …`)."""
    target = (base / name).resolve()
    rel = PurePosixPath(rel_dir, name).as_posix() if rel_dir else PurePosixPath(name).as_posix()
    try:
        text = target.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [LicenseFinding(owner, line, source, name, None, (), f"licence file {rel} not found")]
    matches = identify_license_text(text)
    if not matches:
        return [LicenseFinding(owner, line, source, name, None, (), f"unrecognised licence text in {rel}")]
    return [_finding(owner, line, source, m.spdx) for m in matches]


def _pyproject(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    data = _load_toml(text)
    if data is None:
        data = {"project": _toml_fallback(text, "project")}
    out: list[LicenseFinding] = []
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    rel_dir = str(PurePosixPath(rel).parent) if "/" in rel else ""
    lic = project.get("license")
    line = _line_of(text, r"^\s*license\s*=")
    if isinstance(lic, str):
        out.append(_finding(rel, line, "pyproject.toml", lic))
    elif isinstance(lic, dict):
        if isinstance(lic.get("text"), str):
            out.append(_finding(rel, line, "pyproject.toml", lic["text"]))
        elif isinstance(lic.get("file"), str):
            out += _file_findings(base, rel_dir, lic["file"], "pyproject.toml", rel, line)
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    if isinstance(poetry, dict) and isinstance(poetry.get("license"), str):
        out.append(_finding(rel, line, "pyproject.toml", poetry["license"]))
    for classifier in project.get("classifiers", []) if isinstance(project.get("classifiers"), list) else []:
        if isinstance(classifier, str) and classifier.startswith("License :: "):
            spdx = _CLASSIFIERS.get(classifier[len("License :: "):])
            if spdx:
                out.append(LicenseFinding(rel, _line_of(text, re.escape(classifier)), "pyproject.toml",
                                          classifier, spdx, (spdx,)))
    return out


def _setup_cfg(rel: str, text: str) -> list[LicenseFinding]:
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read_string(text)
        lic = cfg.get("metadata", "license", fallback=None) or cfg.get("metadata", "license_expression", fallback=None)
    except configparser.Error as err:
        return [LicenseFinding(rel, None, "setup.cfg", "", None, (), f"unreadable setup.cfg: {_one_line(err)}")]
    return [_finding(rel, _line_of(text, r"^\s*license(_expression)?\s*[=:]"), "setup.cfg", lic)] if lic else []


def _package_json(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    try:
        data = json.loads(text)
    except ValueError as err:
        return [LicenseFinding(rel, None, "package.json", "", None, (), f"invalid JSON: {_one_line(err)}")]
    if not isinstance(data, dict):
        return []
    rel_dir = str(PurePosixPath(rel).parent) if "/" in rel else ""
    line = _line_of(text, r"\"licenses?\"\s*:")
    values: list[str] = []
    lic = data.get("license")
    if isinstance(lic, str):
        values.append(lic)
    elif isinstance(lic, dict) and isinstance(lic.get("type"), str):
        values.append(lic["type"])
    if isinstance(data.get("licenses"), list):
        for item in data["licenses"]:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                values.append(item["type"])
            elif isinstance(item, str):
                values.append(item)
    out = []
    for value in values:
        see = re.match(r"(?i)see licen[cs]e in\s+(.+)$", value.strip())
        if see:
            out += _file_findings(base, rel_dir, see.group(1).strip(), "package.json", rel, line)
        else:
            out.append(_finding(rel, line, "package.json", value))
    return out


def _cargo_expr(raw: str) -> str:
    return re.sub(r"\s*/\s*", " OR ", raw)  # Cargo's legacy `MIT/Apache-2.0`


def _cargo_toml(rel: str, text: str, base: Path) -> list[LicenseFinding]:
    data = _load_toml(text)
    if data is None:
        data = {"package": _toml_fallback(text, "package")}
    rel_dir = str(PurePosixPath(rel).parent) if "/" in rel else ""
    out = []
    tables = [data.get("package")]
    workspace = data.get("workspace")
    if isinstance(workspace, dict):
        tables.append(workspace.get("package"))
    for table in tables:
        if not isinstance(table, dict):
            continue
        lic = table.get("license")
        if isinstance(lic, str):
            out.append(_finding(rel, _line_of(text, r"^\s*license\s*="), "Cargo.toml", lic, _cargo_expr))
        lic_file = table.get("license-file")
        if isinstance(lic_file, str):
            out += _file_findings(base, rel_dir, lic_file, "Cargo.toml", rel,
                                  _line_of(text, r"^\s*license-file\s*="))
    return out


def license_findings(rel: str, text: str, *, abspath: Path | None = None,
                     source_code: bool | None = None) -> list[LicenseFinding]:
    """Licence findings for one file's text. `rel` names it (and decides how it is read:
    metadata, licence file or other); `abspath` is needed to follow `{file = …}` pointers;
    `source_code` (default: guessed from the extension) turns on notice detection."""
    name = rel.rsplit("/", 1)[-1]
    base = abspath.parent if abspath is not None else Path(".")
    out: list[LicenseFinding] = []
    if name in _METADATA:
        if name == "pyproject.toml":
            out += _pyproject(rel, text, base)
        elif name == "setup.cfg":
            out += _setup_cfg(rel, text)
        elif name == "package.json":
            out += _package_json(rel, text, base)
        else:
            out += _cargo_toml(rel, text, base)
    elif is_license_file(name):
        matches = identify_license_text(text)
        for m in matches:
            out.append(_finding(rel, m.line, "license-file", m.spdx))
        if not matches and not spdx_tags(text):
            out.append(LicenseFinding(rel, None, "license-file", "", None, (), "unrecognised licence text"))
    for line, expr in spdx_tags(text):
        out.append(_finding(rel, line, "spdx-header", expr))
    if source_code is None:
        source_code = _is_source(name)
    if source_code and not is_license_file(name):
        head = text.split("\n", NOTICE_LINES)[:NOTICE_LINES]
        tagged = {k for f in out for k in f.keys}
        for m in identify_license_text(head):
            if m.spdx not in tagged:  # an SPDX tag and its notice are one statement
                out.append(_finding(rel, m.line, "notice", m.spdx))
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
        if b"\0" in data[:8192]:
            continue
        text = data.decode("utf-8", errors="replace")
        report.findings += license_findings(rel, text, abspath=abspath)
    return report


def iter_license_candidates(root: Path, max_file_bytes: int = MAX_FILE_BYTES,
                            skipped: dict[str, int] | None = None) -> list[tuple[str, Path]]:
    """The files `discover` finds under `root`, plus the licence files (`COPYING`,
    `LICENSE-MIT`, …) it leaves out, from every directory it reached. `skipped`, when
    given, receives discover's skip counts."""
    found = discover(root, max_file_bytes)
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


# ---------------------------------------------------------------------------------------------
# Policy

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
        from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

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
        node = _licensing().parse(parsed.expression)
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
            raise LicenseError(f"licence policy {p} is not valid JSON: {_one_line(err)}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise LicenseError(f"licence policy {p} is not valid YAML: {_one_line(err)}") from None
    return LicensePolicy.from_dict(data, source=str(p))


# ---------------------------------------------------------------------------------------------
# Patches

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
    "Cargo.toml": (re.compile(r"^\s*license\s*=\s*\"([^\"]+)\""), _cargo_expr),
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
            if _SPDX_TAG in text:
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
