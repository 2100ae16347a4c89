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
    __slots__ = ("plugin", "name", "type", "regex_based", "gates")

    def __init__(self, plugin, name: str, regex_based: bool) -> None:
        self.plugin = plugin
        self.name = name
        self.type = plugin.secret_type
        self.regex_based = regex_based
        # whole-text gates: the same patterns in MULTILINE mode match a superset of the lines
        self.gates = ([re.compile(r.pattern, r.flags | re.M) for r in plugin.denylist]
                      if regex_based else None)


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


def _scan(text: str, location: str, kind: str) -> list[SecretFinding]:
    """Scan `text`; `kind` is the file name that picks the keyword rules (by extension)."""
    from detect_secrets.filters import heuristic as h

    findings: list[SecretFinding] = []
    blocks = _block_values(text)
    for offset, block in blocks:
        findings.append(SecretFinding("Private Key", text.count("\n", 0, offset) + 1, block, location))
    active = [p for p in _plugins()
              if p.name != "PrivateKeyDetector"  # the block above, not the BEGIN line
              and (p.gates is None or any(g.search(text) for g in p.gates))]
    keyword_groups = _keyword_groups(kind)
    lockfile = h.is_lock_file(kind)
    seen: set[tuple[int, str]] = set()
    previous = ""
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        skip = (len(line) < MIN_VALUE_LEN or _ALLOWLIST.search(line) or _ALLOWLIST_NEXT.search(previous))
        previous = line
        if skip:
            continue
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
