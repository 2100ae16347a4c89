"""Redaction: replace every known secret value with a stable marker before text is persisted.

    r = Redactor(vault=vault, environ=True, detector=secrets)
    r.redact("token=s3cr3t-value")      -> "token=[secret:API_TOKEN]"
    r.redact_obj({"out": [...]})        -> the same structure, strings redacted
    r.redact_notebook(nb)               -> a redacted copy (sources, outputs, metadata)

This module is the bottom of the security layer: it imports nothing else from it. What a
redactor reads is handed to it — a vault (anything with `state()` and `values()`) and a
detector (anything with `scan_text(text)` and `scan_notebook(nb)` returning findings that hold
`_value`; `security.secrets` is one). The process-wide redactor that wires in the default
vault, secret detection and values registered by vaults, and the logging filter that uses it,
are `security.scrub`'s (`global_redactor`, `register_secret`, `RedactingFilter`).

Markers: `[secret:NAME]` for a vault secret, `[secret:$NAME]` for a credential-looking
environment variable (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, …), and
`[redacted:<first 12 hex of sha256>]` for a value found by detection (`scan=True`, or
`add_value`/`add_findings`). The same value always gets the same marker.

Besides the raw value, each secret's encoded forms are matched too: JSON-escaped (once and
twice: JSON inside a JSON string), Python-repr-escaped, HTML-escaped, URL-encoded, and
base64 (standard and URL-safe, whole, and the part of any base64 stream that depends only on
the value, at each of the three byte alignments, so `base64("user:" + secret)` is caught).
All variants are compiled into trie-shaped regexes (longest match first): the newest few
values are matched by substring search, older ones sit in a handful of compiled tiers that
merge like a binary counter, so learning values one by one stays cheap and a call with
nothing to redact is one regex pass per tier.

Values shorter than `MIN_SECRET_LEN` (4) are not redacted (they would mangle ordinary text).
A marker never contains its own value (another marker form is picked), and the pass repeats
until no value is left — a value that straddles a marker boundary included.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import os
import re
import threading
import time
from typing import Any, Iterable
from urllib.parse import quote, quote_plus

__all__ = ["Redactor", "MIN_SECRET_LEN", "marker_digest"]

MIN_SECRET_LEN = 4
_MIN_B64_CORE = 10     # base64 fragments shorter than this could match by chance
_MAX_PASSES = 4
_LOOSE_MAX = 16      # newest values matched by substring search before they are compiled
_CHECK_EVERY_S = 1.0   # how often a vault-backed redactor looks at the vault file
_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|PRIVATE|AUTH", re.I)
_ENV_SKIP = re.compile(r"^(?:SSH_AUTH_SOCK|GPG_AGENT_INFO|XAUTHORITY|KEYTIMEOUT|.*_(?:FILE|PATH|DIR|URL_PATH|SOCK))$", re.I)
_MULTILINE_KEYS = {"source", "text"}


def marker_digest(value: str) -> str:
    """First 12 hex digits of sha256(value): the digest in `[redacted:…]` markers and findings."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _b64_forms(raw: bytes) -> set[str]:
    """Whole encodings, and for each alignment the characters determined by `raw` alone."""
    forms: set[str] = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        whole = enc(raw).decode("ascii")
        forms.add(whole)
        forms.add(whole.rstrip("="))
        for k in range(3):
            encoded = enc(b"\0" * k + raw).decode("ascii")
            start = -(-8 * k // 6)                # first char whose 6 bits are all from raw
            end = (8 * (k + len(raw))) // 6       # chars before this end inside raw
            core = encoded[start:end]
            if len(core) >= _MIN_B64_CORE:
                forms.add(core)
    return {f for f in forms if len(f) >= _MIN_B64_CORE or f == base64.b64encode(raw).decode("ascii")}


def _variants(value: str) -> set[str]:
    """The value and the forms it takes once encoded by the usual persistence layers."""
    out = {value}
    for ensure_ascii in (True, False):
        once = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
        out.add(once)
        out.add(json.dumps(once, ensure_ascii=ensure_ascii)[1:-1])
    out.add(repr(value)[1:-1])
    out.add(html.escape(value, quote=True))
    out.add(html.escape(value, quote=False))
    out.add(quote(value, safe=""))
    out.add(quote_plus(value, safe=""))
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) >= 6:
        out |= _b64_forms(raw)
    return {v for v in out if len(v) >= MIN_SECRET_LEN}


def _alternation(strings: Iterable[str]) -> str:
    """A regex matching any of `strings`, built as a trie: at each position the longest wins."""
    strings = sorted(set(strings))
    if not strings:
        return "(?!)"
    return _trie(strings)


def _trie(strings: list[str]) -> str:
    optional = "" in strings
    by_first: dict[str, list[str]] = {}
    for s in strings:
        if s:
            by_first.setdefault(s[0], []).append(s)
    parts = []
    for group in by_first.values():
        if len(group) == 1:
            parts.append(re.escape(group[0]))
            continue
        prefix = os.path.commonprefix(group)
        rest = [s[len(prefix):] for s in group]
        parts.append(re.escape(prefix) + _trie(rest))
    body = parts[0] if len(parts) == 1 and not optional else "(?:" + "|".join(parts) + ")"
    if optional:
        body = ("(?:" + "|".join(parts) + ")?") if parts else ""
    return body


class Redactor:
    """Replaces known secret values (and their encoded forms) with stable markers.

    `vault`: values to know by name, re-read when its `state()` changes. `environ`: know the
    environment's credential-looking variables. `detector`: what `scan=True` runs (an object
    with `scan_text(text)` and `scan_notebook(nb)`, such as `security.secrets`)."""

    def __init__(self, vault=None, *, environ: bool = False, detector=None) -> None:
        self._lock = threading.RLock()
        self._named: dict[str, str] = {}       # value -> marker name (vault / env)
        self._detected: set[str] = set()
        self._entries: dict[str, tuple[str, frozenset[str]]] = {}  # value -> (marker, variants)
        # Compiling one regex of thousands of values takes a while, and values arrive one by one
        # (every scan may learn one). So: the newest values stay "loose" (plain substring
        # replacement, longest first); past _LOOSE_MAX they become a compiled tier, and tiers
        # merge like a binary counter (equal sizes merge), so each value is compiled O(log n) times.
        self._loose: set[str] = set()
        self._loose_pairs: list[tuple[str, str]] = []   # (variant, marker), longest first
        self._tiers: list[tuple[frozenset[str], re.Pattern, dict[str, str]]] = []
        self._full_rebuild = False
        self._loose_dirty = False
        self._vault = vault
        self._detector = detector
        self._vault_state: Any = None
        self._checked = time.monotonic()
        self.load_error: str | None = None     # why the vault could not be read, if it could not
        if vault is not None:
            self.refresh()
        if environ:
            self.add_environ()

    # ------------------------------------------------------------------ learning values

    def refresh(self) -> None:
        """Re-read the vault's values (a no-op without a vault). Never raises."""
        if self._vault is None:
            return
        try:
            state = self._vault.state()
            values = self._vault.values()
        except Exception as err:  # noqa: BLE001 — a redactor must never break its caller
            self.load_error = str(err)
            return
        with self._lock:
            self.load_error = None
            self._vault_state = state
            for name, value in values.items():
                self.add_secret(name, value)

    def refresh_if_changed(self) -> None:
        """Re-read the vault if its file changed (another process may have set a secret)."""
        self._checked = time.monotonic()
        try:
            if self._vault is not None and self._vault.state() != self._vault_state:
                self.refresh()
        except Exception:  # noqa: BLE001
            pass

    def _learn(self, value: str) -> None:
        """(Re)compute `value`'s marker and variants and queue it for compilation."""
        variants = frozenset(_variants(value))
        marker = self.marker_for(value, variants)
        old = self._entries.get(value)
        if old is not None and old[0] == marker:
            return
        if old is not None and value not in self._loose:
            self._full_rebuild = True   # its marker changed inside a compiled tier
        elif any(value in m or m in value for m in self._entries if m != value):
            self._full_rebuild = True   # nested values must share one pass (longest first)
        self._entries[value] = (marker, variants)
        self._loose.add(value)
        self._loose_dirty = True

    def add_secret(self, name: str, value: str) -> None:
        """Know `value` as the secret `name`: marker `[secret:NAME]`."""
        if not isinstance(value, str) or len(value) < MIN_SECRET_LEN:
            return
        with self._lock:
            if self._named.get(value) != name:
                self._named[value] = name
                self._learn(value)

    def add_value(self, value: str) -> str:
        """Know a detected value: marker `[redacted:<digest>]` (or the secret's name when it is
        a known secret). Returns the marker."""
        if not isinstance(value, str) or len(value) < MIN_SECRET_LEN:
            return self.marker_for(value) if isinstance(value, str) and value else ""
        with self._lock:
            if value not in self._detected:
                self._detected.add(value)
                if value not in self._entries:
                    self._learn(value)
            return self._entries[value][0]

    def add_findings(self, findings: Iterable[Any]) -> None:
        """Know the values of `SecretFinding`s (from `secrets.scan_*`)."""
        for f in findings:
            value = getattr(f, "_value", None)
            if value:
                self.add_value(value)

    def add_environ(self, environ: dict[str, str] | None = None) -> None:
        """Know credential-looking environment variables: marker `[secret:$NAME]`."""
        env = os.environ if environ is None else environ
        for name, value in env.items():
            if (_ENV_NAME.search(name) and not _ENV_SKIP.match(name) and len(value) >= 8
                    and not value.startswith(("/", "~", ".")) and not re.search(r"\s", value)
                    and not value.isdigit() and value.lower() not in ("true", "false")):
                self.add_secret("$" + name, value)

    def _detect(self):
        if self._detector is None:
            raise ValueError("scan=True needs a redactor with a detector (Redactor(detector=security.secrets), "
                             "or security.scrub.global_redactor())")
        return self._detector

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, value: object) -> bool:
        return value in self._entries

    # ------------------------------------------------------------------ markers

    def marker_for(self, value: str, variants: Iterable[str] | None = None) -> str:
        """The marker `value` is replaced with (named if it is a vault/env secret)."""
        name = self._named.get(value)
        candidates = ([f"[secret:{name}]"] if name else []) + [
            f"[redacted:{marker_digest(value)}]", "[REDACTED]", "<hidden>"]
        variants = _variants(value) if variants is None else variants
        for marker in candidates:
            if not any(v in marker for v in variants):
                return marker
        return "<hidden>" if value not in "<hidden>" else "[REDACTED]"  # unreachable for len >= 4

    def _tier(self, values: Iterable[str]) -> tuple[frozenset[str], re.Pattern, dict[str, str]]:
        lookup: dict[str, str] = {}
        values = frozenset(values)
        # detected before named: a variant shared by two values maps to the named one's marker
        for value in sorted(values, key=lambda v: (v in self._named, v)):
            marker, variants = self._entries[value]
            for v in variants:
                lookup[v] = marker
        return values, re.compile(_alternation(lookup)), lookup

    def _prepare(self) -> tuple[list[tuple[str, str]], list[tuple[frozenset[str], re.Pattern, dict[str, str]]]]:
        with self._lock:
            if self._full_rebuild:
                self._tiers = [self._tier(self._entries)] if self._entries else []
                self._loose = set()
                self._full_rebuild, self._loose_dirty = False, True
            elif len(self._loose) > _LOOSE_MAX:
                self._tiers.append(self._tier(self._loose))
                self._loose = set()
                self._loose_dirty = True
                while len(self._tiers) >= 2 and len(self._tiers[-1][0]) >= len(self._tiers[-2][0]):
                    newest, older = self._tiers.pop(), self._tiers.pop()
                    self._tiers.append(self._tier(newest[0] | older[0]))
            if self._loose_dirty:
                pairs: dict[str, str] = {}
                for value in sorted(self._loose, key=lambda v: (v in self._named, v)):
                    marker, variants = self._entries[value]
                    for v in variants:
                        pairs[v] = marker
                self._loose_pairs = sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0]))
                self._loose_dirty = False
            return self._loose_pairs, self._tiers

    # ------------------------------------------------------------------ redaction

    def redact(self, text: str, *, scan: bool = False) -> str:
        """`text` with every known secret (and its encoded forms) replaced by its marker.
        `scan=True` first runs detection on `text` and learns what it finds (slower)."""
        if not isinstance(text, str) or not text:
            return text
        if self._vault is not None and time.monotonic() - self._checked > _CHECK_EVERY_S:
            self.refresh_if_changed()
        if scan:
            self.add_findings(self._detect().scan_text(text))
        loose, tiers = self._prepare()
        if not loose and not tiers:
            return text
        for _ in range(_MAX_PASSES):
            total = 0
            for _values, pattern, lookup in tiers:
                text, n = pattern.subn(lambda m, lookup=lookup: lookup.get(m.group(0), "[REDACTED]"), text)
                total += n
            for variant, marker in loose:
                if variant in text:
                    text = text.replace(variant, marker)
                    total += 1
            if not total:
                return text
        while True:  # pathological overlaps of values and markers: delete until clean
            total = 0
            for _values, pattern, _lookup in tiers:
                text, n = pattern.subn("", text)
                total += n
            for variant, _marker in loose:
                if variant in text:
                    text = text.replace(variant, "")
                    total += 1
            if not total:
                return text

    def redact_obj(self, obj: Any, *, scan: bool = False) -> Any:
        """A copy of `obj` with every string (dict keys included) redacted; lists, tuples and
        dicts are walked, other values returned as they are."""
        if isinstance(obj, str):
            return self.redact(obj, scan=scan)
        if isinstance(obj, dict):
            out = {self.redact(k, scan=scan) if isinstance(k, str) else k: self.redact_obj(v, scan=scan)
                   for k, v in obj.items()}
            if type(obj) is not dict:
                try:
                    return type(obj)(out)
                except Exception:  # noqa: BLE001
                    return out
            return out
        if isinstance(obj, list):
            return [self.redact_obj(v, scan=scan) for v in obj]
        if isinstance(obj, tuple):
            items = [self.redact_obj(v, scan=scan) for v in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
        return obj

    def redact_notebook(self, nb: Any, *, scan: bool | None = None) -> Any:
        """A redacted copy of a notebook (dict or NotebookNode): cell sources, outputs
        (streams, data, errors, tracebacks), attachments and all metadata. Multi-line fields
        stored as lists of lines are redacted joined (a value may span lines) and split back.
        `scan` (default: when the redactor has a detector) also detects and redacts secrets
        nobody registered."""
        if scan is None:
            scan = self._detector is not None
        if scan:
            detector = self._detect()
            try:
                self.add_findings(detector.scan_notebook(nb))
            except Exception:  # noqa: BLE001 — an odd notebook still gets the known values redacted
                pass
        out = self._walk_nb(nb, key=None)
        if type(nb) is not dict and isinstance(nb, dict):
            try:
                import nbformat  # heavy (~1 s cold): only for a NotebookNode in, NotebookNode out

                return nbformat.from_dict(out)
            except Exception:  # noqa: BLE001
                return out
        return out

    def _walk_nb(self, obj: Any, key: str | None, in_data: bool = False) -> Any:
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, list):
            if (key in _MULTILINE_KEYS or in_data) and obj and all(isinstance(s, str) for s in obj):
                joined = self.redact("".join(obj))
                return joined.splitlines(keepends=True)
            return [self._walk_nb(v, key=None) for v in obj]
        if isinstance(obj, dict):
            return {(self.redact(k) if isinstance(k, str) else k):
                    self._walk_nb(v, key=k, in_data=(key == "data"))
                    for k, v in obj.items()}
        return copy.copy(obj)
