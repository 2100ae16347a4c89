"""Secret detection: find credentials in text, files and notebooks without ever echoing them.

`scan_text(text)` runs detect-secrets' plugins in-process (AWS keys, private keys, GitHub /
GitLab / Slack / Stripe / OpenAI / … tokens, JWTs, basic-auth URLs, secret keywords, quoted
base64 / hex high-entropy strings) line by line, plus two detectors of our own: whole PEM /
PuTTY private-key blocks (so the key material, not just the BEGIN line, can be redacted) and
long unquoted high-entropy tokens. detect-secrets' global settings are not touched: the
plugins are instantiated once and their `analyze_string` is called directly, with the
library's false-positive heuristics (sequential strings, UUIDs, `*_id = …`, templates,
`x = get_secret()` indirections, `pragma: allowlist secret`) applied here.

A `SecretFinding` carries the type, location, line and the first 12 hex digits of the
value's sha256 — the same digest the redaction marker `[redacted:<digest>]` uses. The raw
value is kept in a private slot for the redactor only: it never appears in `str()`,
`repr()` or `to_dict()`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable

from ..errors import DirEngError
from .redact import marker_digest

__all__ = ["SecretFinding", "ScanError", "scan_text", "scan_file", "scan_notebook", "digest", "FREEFORM_TYPES"]

#: Values shorter than this are never reported (too short to be a credential, too common to redact).
MIN_VALUE_LEN = 6
#: Our own unquoted-token detector: minimum length and Shannon entropy (bits per char).
TOKEN_MIN_LEN = 32
TOKEN_MIN_ENTROPY = 4.5

#: Finding types whose value is free-form (whatever follows a keyword, a URL's password, any
#: random-looking run), so it may be a plain word; every other type matched a structural signature
#: (AKIA…, ghp_…, a key block) and is a credential whatever it reads like.
FREEFORM_TYPES = frozenset({"Secret Keyword", "Basic Auth Credentials", "Base64 High Entropy String",
                            "Hex High Entropy String", "High Entropy Token"})

_SKIP_PLUGINS = {"IPPublicDetector"}  # public IPs are not secrets, and redacting them is noise
_ENTROPY_PLUGINS = {"Base64HighEntropyString": 4.5, "HexHighEntropyString": 3.0}
_HEX_MIN_LEN = 16
_HASHY_LINE = re.compile(r"sha\d*|hash|digest|commit|checksum|rev|etag|integrity|fingerprint|tree|oid|blob", re.I)
#: Keyword values that are identifiers (an env var *name*, a constant), not secrets.
_IDENTIFIER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
#: Detectors whose capture group is only a prefix (`(ghp|gho)_…`): the secret is the whole match.
_WHOLE_MATCH = {"GitHubTokenDetector", "GitLabTokenDetector"}
_ALLOWLIST = re.compile(r"pragma:\s*allowlist[ -]secret", re.I)
_ALLOWLIST_NEXT = re.compile(r"pragma:\s*allowlist[ -]nextline[ -]secret", re.I)

_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{%d,}={0,2}(?![A-Za-z0-9+/=_\-])" % TOKEN_MIN_LEN)
_PEM_RE = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----"
    r".*?(?:-----END \1-----|(?=\n[ \t]*\n)|(?=\\n\\n)|\Z)",
    re.S,
)
_PUTTY_RE = re.compile(r"PuTTY-User-Key-File-\d+:.*?(?:Private-(?:MAC|Hash): *[0-9a-fA-F]+|(?=\n[ \t]*\n)|\Z)", re.S)
_JWT_TAIL = r"[A-Za-z0-9\-_.+/=]*"

#: File names whose keyword rules are the config ones (`KEY=value` without quotes).
_CONFIG_NAMES = re.compile(r"(^|/)(\.env(\.[\w.-]+)?|[\w.-]*\.env|credentials|\.netrc|\.pypirc|\.npmrc)$")


class ScanError(DirEngError):
    """A file or notebook that cannot be read for scanning."""


def digest(value: str) -> str:
    """The first 12 hex digits of the sha256 of `value`: the digest of the redactor's
    `[redacted:…]` marker for it (`redact.marker_digest`)."""
    return marker_digest(value)


class SecretFinding:
    """One detected secret: where and what kind — never the value (that stays in `_value`)."""

    __slots__ = ("type", "location", "line", "digest", "_value")

    def __init__(self, type: str, line: int, value: str, location: str = "<text>") -> None:
        self.type = type
        self.location = location
        self.line = line
        self.digest = digest(value)
        self._value = value

    @property
    def marker(self) -> str:
        """The redaction marker for this value: `[redacted:<digest>]`."""
        return f"[redacted:{self.digest}]"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "location": self.location, "line": self.line, "sha256": self.digest}

    def __repr__(self) -> str:
        return (f"SecretFinding(type={self.type!r}, location={self.location!r}, line={self.line}, "
                f"sha256={self.digest!r})")

    def __str__(self) -> str:
        return f"{self.location}:{self.line}: {self.type} (sha256:{self.digest})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretFinding):
            return NotImplemented
        return (self.type, self.location, self.line, self.digest) == (
            other.type, other.location, other.line, other.digest)

    def __hash__(self) -> int:
        return hash((self.type, self.location, self.line, self.digest))

    def __reduce__(self):  # never carry the value through pickling
        raise TypeError("SecretFinding cannot be pickled (it holds a secret value)")

    def __copy__(self) -> "SecretFinding":
        return self

    def __deepcopy__(self, memo: dict) -> "SecretFinding":
        return self  # immutable in practice; copying must not go through pickling


# ---------------------------------------------------------------- detect-secrets plugins

_lock = threading.Lock()
_plugins_cache: list | None = None


class _Plugin:
    __slots__ = ("plugin", "name", "type", "regex_based", "gates", "needs")

    def __init__(self, plugin, name: str, regex_based: bool) -> None:
        self.plugin = plugin
        self.name = name
        self.type = plugin.secret_type
        self.regex_based = regex_based
        # whole-text gates: the same patterns in MULTILINE mode match a superset of the lines
        self.gates = ([re.compile(r.pattern, r.flags | re.M) for r in plugin.denylist]
                      if regex_based else None)
        # Screened by literals (see the line screen) when every pattern has some.
        needs = [_literal_needs(r) for r in plugin.denylist] if regex_based else []
        self.needs = tuple(needs) if needs and all(needs) else None


def _plugins() -> list[_Plugin]:
    """The detect-secrets plugins, built once; detect-secrets' global settings are untouched."""
    global _plugins_cache
    if _plugins_cache is None:
        with _lock:
            if _plugins_cache is None:
                from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
                from detect_secrets.plugins.base import RegexBasedDetector

                plugins = []
                for cls in get_mapping_from_secret_type_to_class().values():
                    name = cls.__name__
                    if name in _SKIP_PLUGINS:
                        continue
                    plugin = cls(limit=_ENTROPY_PLUGINS[name]) if name in _ENTROPY_PLUGINS else cls()
                    plugins.append(_Plugin(plugin, name, isinstance(plugin, RegexBasedDetector)))
                # specific detectors first, generic ones (keyword, entropy) last: dedup keeps the first
                order = {"KeywordDetector": 1, "Base64HighEntropyString": 2, "HexHighEntropyString": 2}
                plugins.sort(key=lambda p: order.get(p.name, 0))
                _plugins_cache = plugins
    return _plugins_cache


_kw_gate: re.Pattern | None = None


def _keyword_gate() -> re.Pattern:
    global _kw_gate
    if _kw_gate is None:
        from detect_secrets.plugins.keyword import DENYLIST_REGEX

        _kw_gate = re.compile(DENYLIST_REGEX, re.I)
    return _kw_gate


def _keyword_groups(filename: str):
    from detect_secrets.plugins import keyword as kw
    from detect_secrets.util.filetype import determine_file_type

    if _CONFIG_NAMES.search(filename.replace(os.sep, "/")):
        return kw.CONFIG_DENYLIST_REGEX_TO_GROUP
    return kw.REGEX_BY_FILETYPE.get(determine_file_type(filename), kw.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)


def _regex_values(p: _Plugin, line: str) -> Iterable[str]:
    """Like RegexBasedDetector.analyze_string, but yields the whole token for detectors whose
    capture group is only a prefix (`(ghp|gho)_…` would otherwise give just `ghp`)."""
    for regex in p.plugin.denylist:
        for m in regex.finditer(line):
            groups = [m.group(i) for i in range(1, (regex.groups or 0) + 1) if m.group(i)]
            if not groups or p.name in _WHOLE_MATCH:
                yield m.group(0)
            else:
                yield max(groups, key=len)


def _entropy(data: str) -> float:
    n = len(data)
    counts: dict[str, int] = {}
    for ch in data:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _filtered(value: str, line: str, p: _Plugin) -> bool:
    """detect-secrets' default heuristics, applied without its global filter registry."""
    from detect_secrets.filters import heuristic as h

    if len(value) < MIN_VALUE_LEN:
        return True
    if (h.is_sequential_string(value) or h.is_potential_uuid(value) or h.is_templated_secret(value)
            or h.is_prefixed_with_dollar_sign(value) or h.is_not_alphanumeric_string(value)):
        return True
    if not p.regex_based:
        index = line.find(value)
        if index > 0 and h._get_id_detector_regex().search(line, 0, index):
            return True
    if p.name == "KeywordDetector" and (h.is_indirect_reference(line) or _IDENTIFIER.fullmatch(value)):
        return True
    return False


def _line_values(line: str, active: list[_Plugin], keyword_groups, lockfile: bool) -> list[tuple[str, str]]:
    """[(type, value)] found on one line."""
    out: list[tuple[str, str]] = []
    quoted = "'" in line or '"' in line
    for p in active:
        name = p.name
        if name in _ENTROPY_PLUGINS:
            if lockfile or not quoted:
                continue
            plugin = p.plugin
            values = [v for v in plugin.analyze_string(line)
                      if len(v) >= MIN_VALUE_LEN and plugin.calculate_shannon_entropy(v) > plugin.entropy_limit]
            if name == "HexHighEntropyString":
                values = [v for v in values
                          if len(v) >= _HEX_MIN_LEN and not (len(v) in (32, 40, 64) and _HASHY_LINE.search(line))]
        elif name == "KeywordDetector":
            if not _keyword_gate().search(line):
                continue
            values = list(p.plugin.analyze_string(line, denylist_regex_to_group=keyword_groups))
        elif name == "JwtTokenDetector":
            values = []
            for v in p.plugin.analyze_string(line):  # its regex stops before the signature: take the whole token
                m = re.compile(re.escape(v) + _JWT_TAIL).search(line)
                values.append(m.group(0) if m else v)
        elif p.regex_based:
            values = list(_regex_values(p, line))
        else:
            values = list(p.plugin.analyze_string(line))
        for value in values:
            value = value.strip()
            if not _filtered(value, line, p):
                out.append((p.type, value))
    if not lockfile:
        for m in _TOKEN_RE.finditer(line):
            value = m.group(0)
            if _looks_random(value) and not any(value in v or v in value for _, v in out):
                out.append(("High Entropy Token", value))
    return out


def _looks_random(token: str) -> bool:
    from detect_secrets.filters import heuristic as h

    core = token.rstrip("=")
    if not (re.search(r"[a-z]", core) and re.search(r"[A-Z]", core) and re.search(r"[0-9]", core)):
        return False
    if h.is_sequential_string(core) or h.is_potential_uuid(core):
        return False
    # path-like runs ("Users/Me/Library/Application2/…") are not tokens
    if core.count("/") >= 2 and all(re.fullmatch(r"[A-Za-z][a-z0-9_\-]*", seg or "x") for seg in core.split("/")):
        return False
    return _entropy(core) >= TOKEN_MIN_ENTROPY


def _block_values(text: str) -> list[tuple[int, str]]:
    """[(offset, block)] for PEM / PuTTY private keys (the whole block is the secret)."""
    if "PRIVATE KEY" not in text and "PuTTY-User-Key-File" not in text:
        return []
    return [(m.start(), m.group(0).rstrip()) for rx in (_PEM_RE, _PUTTY_RE) for m in rx.finditer(text)]


# ---------------------------------------------------------------- the line screen
#
# Most lines of most files can match no detector, yet the per-line detectors (and the whole-text
# gates of case-insensitive patterns, which sre tries at every position) cost ~1 s per MB. The
# screen finds, with a few fast whole-text searches, the lines that *could* give a finding; only
# those go through `_line_values`, with only the plugins that could fire there. Every test below
# is a necessary condition, so the findings are exactly those of the full pass (`screen=False`,
# kept as the reference: tests/test_secret_screen.py compares the two):
#   * a regex plugin's match contains one literal of each of its `_literal_needs` sets (derived
#     from the parsed pattern); a plugin is kept for a file only if one of those lines matches
#     its pattern and its old whole-text gate matches too;
#   * the keyword rule needs its gate pattern on the line (tried on lines holding its literals);
#   * an entropy value is a quoted run of the plugin's charset at least as long as its limit
#     allows (Shannon entropy is at most log2 of the length);
#   * a high-entropy token matches `_TOKEN_RE` (its lookarounds read the same at a line break).
# Literals are found with `str.find`, on a case-folded copy for case-insensitive ones (`_Fold`).
# A file where a plugin without literals passes its gate takes the full pass.

_SCREEN_ENV = "DIRENG_SECRET_SCREEN"  # "0"/"off": the full pass everywhere (A/B measurements)


class _Need:
    """A set of literals one of which every match of a pattern contains."""

    __slots__ = ("members", "ci", "regex", "ascii_members", "other", "other_from_ascii")

    def __init__(self, members: frozenset[str], ci: bool) -> None:
        # a member holding another one adds nothing: the line holds the shorter one too
        key = str.lower if ci else (lambda m: m)
        members = frozenset(m for m in members if not any(o != m and key(o) in key(m) for o in members))
        self.members = members
        self.ci = ci
        self.regex = re.compile(_alternatives(members), re.I if ci else 0)
        self.ascii_members = sorted({m.lower() for m in members if m.isascii()}) if ci else sorted(members)
        others = [m for m in members if not m.isascii()] if ci else []
        self.other = re.compile(_alternatives(others), re.I) if others else None
        # can an ASCII character match one of them ignoring case (the Kelvin sign matches "k")?
        self.other_from_ascii = any(re.fullmatch(f"(?i){re.escape(ch)}", chr(a))
                                    for m in others for ch in m if not ch.isascii() for a in range(128))

    @property
    def selectivity(self) -> tuple[int, int]:
        return min(map(len, self.members)), -len(self.members)


def _alternatives(strings) -> str:
    return "|".join(re.escape(x) for x in sorted(strings, key=len, reverse=True))


_FINITE_MAX = 64  # the most strings a run of literals and small alternations is expanded to


def _finite(items) -> set[str] | None:
    """Every string `items` can match, if they are literals, literal classes and small
    alternations or optionals of those; else None."""
    from re import _constants as c

    out = {""}
    for op, av in items:
        if op is c.LITERAL:
            opts = {chr(av)}
        elif op is c.IN and all(o is c.LITERAL for o, _ in av):
            opts = {chr(v) for _, v in av}
        elif op is c.SUBPATTERN:
            opts = _finite(av[3])
        elif op is c.BRANCH:
            alts = [_finite(alt) for alt in av[1]]
            opts = None if any(a is None for a in alts) else set().union(*alts)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[1] == 1:
            opts = _finite(av[2])
            opts = None if opts is None else (opts | {""} if av[0] == 0 else opts)
        else:
            return None
        if opts is None:
            return None
        out = {x + y for x in out for y in opts}
        if len(out) > _FINITE_MAX:
            return None
    return out


def _literal_needs(regex: re.Pattern) -> tuple[_Need, ...] | None:
    """The `_Need`s of `regex` (most selective first), or None when it has none of 2+ characters:
    runs of literals (small alternations expanded) and what every branch of an alternation needs."""
    from re import _constants as c, _parser as sre_parse

    def seq(items) -> list[frozenset[str]]:
        sets: list[frozenset[str]] = []
        run = {""}

        def flush() -> None:
            nonlocal run
            if "" not in run:
                sets.append(frozenset(run))
            run = {""}

        for item in items:
            op, av = item
            opts = _finite([item])
            if opts is not None:
                if len(run) * len(opts) > _FINITE_MAX:
                    flush()
                run = {x + y for x in run for y in opts}
                continue
            flush()
            if op is c.SUBPATTERN:
                sets += seq(av[3])
            elif op is c.ATOMIC_GROUP:
                sets += seq(av)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
                sets += seq(av[2])
            elif op is c.BRANCH:  # one literal of each alternative's best set
                union: set[str] = set()
                for alt in av[1]:
                    alt_sets = seq(alt)
                    if not alt_sets:
                        break
                    union |= max(alt_sets, key=lambda s: (min(map(len, s)), -len(s)))
                else:
                    sets.append(frozenset(union))
            # anything else (classes, anchors, lookarounds, back-references) needs no literal
        flush()
        return sets

    try:
        parsed = sre_parse.parse(regex.pattern, regex.flags)
    except Exception:  # noqa: BLE001 — an unparsable pattern is simply not screened
        return None
    # case-insensitive if the pattern or any group of it is (then literals match ignoring case)
    ci = bool(regex.flags & re.I) or re.search(r"\(\?[aiLmsux-]*i", regex.pattern) is not None
    needs = [_Need(m, ci) for m in seq(parsed.data) if min(map(len, m)) >= 2]
    return tuple(sorted(needs, key=lambda n: n.selectivity, reverse=True)) or None


class _Fold:
    """A copy of a text in which a case-insensitive literal is found with `str.find`: every
    character that `re.IGNORECASE` matches to an ASCII letter becomes that letter, then the
    text is lower-cased. None (use the regex) where lower-casing would move offsets."""

    _table: dict[int, str] | None = None

    @classmethod
    def table(cls) -> dict[int, str]:
        if cls._table is None:
            every = "".join(map(chr, range(0x80, 0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
            odd = set(re.findall("(?i)[a-z]", every))
            cls._table = {ord(ch): next(x for x in "abcdefghijklmnopqrstuvwxyz" if re.fullmatch(f"(?i){x}", ch))
                          for ch in odd}
        return cls._table

    @classmethod
    def of(cls, text: str) -> str | None:
        if text.isascii():
            return text.lower()
        folded = text.translate(cls.table()).lower()
        return folded if len(folded) == len(text) else None


class _Screen:
    """What finds the lines worth running the detectors on (built once per process)."""

    def __init__(self, plugins: list[_Plugin]) -> None:
        from detect_secrets.plugins.keyword import DENYLIST_REGEX

        entropy = [p.plugin for p in plugins if p.name in _ENTROPY_PLUGINS]
        # the shortest value an entropy plugin can report: entropy <= log2(len), and hex needs 16
        # (not 2**limit + 1: a string of exactly 2**k characters may round to just above k)
        shortest = min((max(MIN_VALUE_LEN, int(2 ** e.entropy_limit),
                            _HEX_MIN_LEN if type(e).__name__ == "HexHighEntropyString" else 0)
                        for e in entropy), default=None)
        charset = "".join(sorted({ch for e in entropy for ch in e.charset}))
        self.scans = [_TOKEN_RE]
        if shortest is not None:
            self.scans.append(re.compile(r"['\"][%s]{%d,}['\"]" % (re.escape(charset), shortest)))
        self.keyword = re.compile(DENYLIST_REGEX, re.I)
        self.keyword_needs = _literal_needs(self.keyword)

    @staticmethod
    def literal_lines(need: _Need, text: str, folded: str | None, starts: list[int]) -> set[int]:
        """0-based indices of the lines holding one of `need`'s literals."""
        out: set[int] = set()
        regexes = []
        if need.ci and folded is None:
            regexes.append(need.regex)
        else:
            if need.other is not None and (need.other_from_ascii or not text.isascii()):
                regexes.append(need.other)
            hay = folded if need.ci else text
            for member in need.ascii_members:
                i = hay.find(member)
                while i >= 0:
                    line = bisect.bisect_right(starts, i) - 1
                    out.add(line)
                    i = hay.find(member, starts[line + 1]) if line + 1 < len(starts) else -1
        for rx in regexes:
            out.update(bisect.bisect_right(starts, m.start()) - 1 for m in rx.finditer(text))
        return out

    def lines(self, text: str, starts: list[int]) -> set[int]:
        """Lines a whole-text scan (tokens, quoted runs) touches."""
        out: set[int] = set()
        for rx in self.scans:
            for m in rx.finditer(text):
                first = bisect.bisect_right(starts, m.start()) - 1
                last = bisect.bisect_right(starts, max(m.start(), m.end() - 1)) - 1
                out.update(range(first, last + 1))
        return out


_screen_cache: _Screen | None = None


def _screen() -> _Screen:
    global _screen_cache
    if _screen_cache is None:
        _screen_cache = _Screen(_plugins())
    return _screen_cache


def _screen_on() -> bool:
    return os.environ.get(_SCREEN_ENV, "").strip().lower() not in ("0", "off", "false", "no")


def _screened_lines(text: str, lines: list[str], plugins: list[_Plugin]) -> dict[int, list[_Plugin]] | None:
    """{line index: the plugins to run on it}, or None when this file needs the full pass."""
    if any(p.needs is None and p.gates is not None and any(g.search(text) for g in p.gates) for p in plugins):
        return None  # a plugin without literals may fire on any line
    screen = _screen()
    starts = [0, *itertools.accumulate(len(raw) for raw in text.splitlines(keepends=True))]
    folded = _Fold.of(text)
    todo = screen.lines(text, starts)
    if screen.keyword_needs is None:
        todo.update(range(len(lines)))
    else:
        todo.update(i for i in screen.literal_lines(screen.keyword_needs[0], text, folded, starts)
                    if i < len(lines) and screen.keyword.search(lines[i]))
    kept: dict[str, set[int]] = {}
    for p in plugins:
        if p.needs is None:
            continue
        where = set().union(*(screen.literal_lines(needs[0], text, folded, starts) for needs in p.needs))
        where = {i for i in where if i < len(lines)
                 and any(all(n.regex.search(lines[i]) for n in needs) for needs in p.needs)}
        if (where and any(rx.search(lines[i].rstrip()) for i in where for rx in p.plugin.denylist)
                and any(g.search(text) for g in p.gates)):
            kept[p.name] = where
    todo.update(*kept.values())
    return {i: [p for p in plugins if p.gates is None or i in kept.get(p.name, ())]
            for i in sorted(todo) if i < len(lines)}


def _scan(text: str, location: str, kind: str, *, screen: bool | None = None) -> list[SecretFinding]:
    """Scan `text`; `kind` is the file name that picks the keyword rules (by extension).
    `screen=False` runs every detector on every line (the reference the screen is tested
    against); None reads DIRENG_SECRET_SCREEN."""
    from detect_secrets.filters import heuristic as h

    findings: list[SecretFinding] = []
    blocks = _block_values(text)
    for offset, block in blocks:
        findings.append(SecretFinding("Private Key", text.count("\n", 0, offset) + 1, block, location))
    plugins = [p for p in _plugins() if p.name != "PrivateKeyDetector"]  # the block above, not the BEGIN line
    keyword_groups = _keyword_groups(kind)
    lockfile = h.is_lock_file(kind)
    lines = text.splitlines()
    todo = _screened_lines(text, lines, plugins) if (_screen_on() if screen is None else screen) else None
    if todo is None:
        active = [p for p in plugins if p.gates is None or any(g.search(text) for g in p.gates)]
        todo = dict.fromkeys(range(len(lines)), active)
    seen: set[tuple[int, str]] = set()
    for i, active in todo.items():
        line = lines[i].rstrip()
        previous = lines[i - 1].rstrip() if i else ""
        if len(line) < MIN_VALUE_LEN or _ALLOWLIST.search(line) or _ALLOWLIST_NEXT.search(previous):
            continue
        line_no = i + 1
        for type_, value in _line_values(line, active, keyword_groups, lockfile):
            if (line_no, value) in seen or any(value in b for _, b in blocks):
                continue
            seen.add((line_no, value))
            findings.append(SecretFinding(type_, line_no, value, location))
    findings.sort(key=lambda f: f.line)
    return findings


def scan_text(text: str, filename: str = "<text>") -> list[SecretFinding]:
    """Secrets in `text`, in line order. `filename` names the location and picks the keyword
    rules by extension (`.py`/`.js` need quoted values, `.env`/`.ini`/`.yaml` do not)."""
    if not isinstance(text, str):
        raise TypeError(f"scan_text expects str, got {type(text).__name__}")
    return _scan(text, filename, filename)


def scan_file(path: str | os.PathLike) -> list[SecretFinding]:
    """Secrets in a file (a `.ipynb` is scanned as a notebook); binary files yield nothing."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ScanError(f"cannot read {p}: {err.strerror or err}") from None
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", errors="replace")
    if p.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except ValueError:
            return _scan(text, str(p), str(p))
        return scan_notebook(nb, name=str(p))
    return _scan(text, str(p), str(p))


_TEXT_MIMES = re.compile(r"^(text/|application/(json|javascript|xml|x-[\w.+-]+|[\w.+-]+\+json)$)")


def _join(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def scan_notebook(nb_json: Any, name: str = "<notebook>") -> list[SecretFinding]:
    """Secrets in a notebook (dict, NotebookNode or its JSON text): cell sources, text-like
    outputs (streams, text/JSON/HTML data, errors and tracebacks) and metadata. Image and
    other binary outputs are skipped. Locations read `NAME:cell[3].source`, `…outputs[0]`."""
    if isinstance(nb_json, (str, bytes)):
        try:
            nb_json = json.loads(nb_json)
        except ValueError as err:
            raise ScanError(f"{name} is not notebook JSON: {err}") from None
    if not isinstance(nb_json, dict):
        raise ScanError(f"{name} is not a notebook (expected a JSON object)")
    lang = (nb_json.get("metadata", {}).get("language_info", {}) or {}).get("name", "python")
    code_kind = {"python": "cell.py", "javascript": "cell.js", "go": "cell.go"}.get(lang, "cell.txt")
    findings: list[SecretFinding] = []
    meta = nb_json.get("metadata")
    if meta:
        findings += _scan(json.dumps(meta, indent=1, sort_keys=True, default=str), f"{name}:metadata", "meta.json")
    for i, cell in enumerate(nb_json.get("cells", []) or []):
        if not isinstance(cell, dict):
            continue
        where = f"{name}:cell[{i}]"
        kind = code_kind if cell.get("cell_type") == "code" else "cell.md"
        findings += _scan(_join(cell.get("source", "")), f"{where}.source", kind)
        if cell.get("metadata"):
            findings += _scan(json.dumps(cell["metadata"], indent=1, sort_keys=True, default=str),
                              f"{where}.metadata", "meta.json")
        for j, out in enumerate(cell.get("outputs", []) or []):
            if not isinstance(out, dict):
                continue
            loc = f"{where}.outputs[{j}]"
            parts: list[str] = []
            if "text" in out:
                parts.append(_join(out["text"]))
            for mime, value in (out.get("data") or {}).items():
                if _TEXT_MIMES.match(mime):
                    parts.append(_join(value) if not isinstance(value, dict)
                                 else json.dumps(value, indent=1, sort_keys=True, default=str))
            if out.get("output_type") == "error":
                parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
                parts.append("\n".join(str(t) for t in out.get("traceback", []) or []))
            if parts:
                findings += _scan("\n".join(parts), loc, "output.txt")
    return findings
