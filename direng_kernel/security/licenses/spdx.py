"""SPDX licence expressions, ids and tags, parsed with `license_expression`'s SPDX licensing.

`parse_expression(raw)` normalizes an expression (`gpl-3.0` → `GPL-3.0-only`, `GPL-2.0+` →
`GPL-2.0-or-later`, and free-text names from old metadata such as `MIT License` or `GPLv3+`
through `NAME_ALIASES`) and never raises: one that does not parse, or names an unknown id
(other than `LicenseRef-…`), comes back with an `error`. `CLASSIFIERS` maps trove licence
classifiers to SPDX ids; `spdx_tags(text)` finds the `SPDX-License-Identifier:` tags on
comment lines of any syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from license_expression import LicenseSymbol, LicenseWithExceptionSymbol, get_spdx_licensing

__all__ = ["ParsedLicense", "parse_expression", "licensing", "spdx_tags", "SPDX_TAG", "NAME_ALIASES",
           "CLASSIFIERS", "one_line"]


@lru_cache(maxsize=1)
def licensing():
    """license_expression's SPDX licensing (its licence list is loaded once)."""
    return get_spdx_licensing()


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


def one_line(msg) -> str:
    """A message (an exception's, say) on one line."""
    return " ".join(str(msg).split())


def _symbol_keys(node) -> list[str]:
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
    text = NAME_ALIASES.get(text.lower(), text)
    spdx = licensing()
    try:
        parsed = spdx.parse(text)
    except Exception as err:  # ExpressionError, ExpressionParseError, ParseError, …
        return ParsedLicense(raw, None, (), f"invalid licence expression {text!r}: {one_line(err)}")
    if parsed is None:
        return ParsedLicense(raw, None, (), "empty licence expression")
    keys = tuple(_symbol_keys(parsed))
    unknown = [k for k in spdx.unknown_license_keys(parsed)
               if not k.startswith(("LicenseRef-", "DocumentRef-"))]
    rendered = parsed.render()
    if unknown:
        return ParsedLicense(raw, rendered, keys, f"unknown licence id(s) in {text!r}: {', '.join(unknown)}",
                             tuple(unknown))
    return ParsedLicense(raw, rendered, keys)


SPDX_TAG = "SPDX-License-Identifier:"
_SPDX_LINE = re.compile(
    r"^[ \t]*(?:[#;%!*]+|//+|/\*+|--+|<!--|\{-|\(\*|\"\"\"|'''|@?REM\b|::|\.\.)?[ \t]*"
    r"SPDX-License-Identifier:[ \t]*(.*?)[ \t]*(?:\*/|-->|\*\)|-\}|\"\"\"|''')?[ \t]*$",
    re.M,
)


def spdx_tags(text: str) -> list[tuple[int, str]]:
    """(line, expression) for each `SPDX-License-Identifier:` tag on a comment line."""
    if SPDX_TAG not in text:
        return []
    out = []
    for m in _SPDX_LINE.finditer(text):
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1).strip()))
    return out


# ---------------------------------------------------------------------------------------------
# Data. (Kept below the code: licence names in a file's first lines would read as its notice.)

# Free-text names seen in package metadata, mapped to SPDX ids.
NAME_ALIASES = {
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
CLASSIFIERS = {
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
