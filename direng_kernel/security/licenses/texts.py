"""Licence texts and notices: which licences a licence file or a source file's notice states,
found by key phrases (MIT, ISC, BSD-2/3/4-Clause, Apache-2.0, MPL-1.1/2.0, the GNU family,
the Unlicense), and which file names are licence files.

Phrases are matched on lower-cased text reduced to words. (The patterns spell their separators
`\\s` so that this file never matches itself.)
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Iterable

__all__ = ["TextMatch", "identify_license_text", "is_license_file"]

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
# GNU notices: the paragraph that names a GNU licence "as published by the Free Software
# Foundation", then "either version N" and perhaps "or (at your option) any later version".
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

_LICENSE_FILE = re.compile(r"^(?:LICEN[CS]E|COPYING|UNLICENSE|COPYRIGHT)(?:[-._][\w.\-]*)?$", re.I)


def is_license_file(name: str) -> bool:
    return bool(_LICENSE_FILE.match(name))
