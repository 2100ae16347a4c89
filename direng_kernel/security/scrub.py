"""One call at every boundary where text is persisted or leaves: detect, learn, redact.

`scrub(text)` runs secret detection (detect-secrets plugins plus entropy) and the PII finders
over the text, teaches the process-wide redactor every value they find, and returns the text
with those values — and every value learnt before, and vault secrets — replaced by stable
markers. It is applied where the index stores code, where answers and tool results are
produced, where lane outputs, events and passports are written, and to anything sent to a
provider. Multi-line secrets (PEM blocks) are learnt line by line, so a redacted file keeps its
line numbers and citations stay right.

The process-wide redactor lives here too, because this is where its parts meet: `redact`'s
`Redactor`, the default vault's file (`vault_file`), secret detection (`secrets`) for
`scan=True`, and every value a `Vault` in this process read or wrote (`register_secret`).
`RedactingFilter` puts it on log handlers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from . import secrets as secret_detection
from .pii import find_pii
from .redact import MIN_SECRET_LEN, Redactor
from .secrets import FREEFORM_TYPES, scan_text
from .vault_file import ENV_VAULT_DIR, VaultFile

__all__ = ["scrub", "scrub_obj", "scrub_many", "learn", "content_flags", "findings", "secret_values",
           "learn_values", "global_redactor", "register_secret", "reset_global_redactor", "RedactingFilter",
           "detection_pool", "submit_detection", "finish_scrub"]


# ---------------------------------------------------------------------- the process-wide redactor

_global: Redactor | None = None
_global_key: str | None = None
_global_lock = threading.Lock()
_registered: dict[str, str] = {}   # name -> value from Vault.get/set in this process


def global_redactor() -> Redactor:
    """The process-wide redactor: the default vault's values (re-read when the vault file
    changes, checked at most once a second by `redact`), every value read from or written to any
    Vault in this process, credential-looking environment variables, and secret detection for
    `scan=True`. Never raises: an unreadable vault leaves `load_error` set."""
    global _global, _global_key
    key = os.environ.get(ENV_VAULT_DIR)
    r = _global
    if r is not None and key == _global_key:
        return r
    with _global_lock:
        if _global is None or key != _global_key:
            try:
                vault = VaultFile()
            except Exception:  # noqa: BLE001 — no vault directory: env and registered values still count
                vault = None
            r = Redactor(vault=vault, environ=True, detector=secret_detection)
            for name, value in list(_registered.items()):
                r.add_secret(name, value)
            _global, _global_key = r, key
        return _global


def register_secret(name: str, value: str) -> None:
    """Tell the global redactor about a secret (Vault.get/set call this)."""
    _registered[name] = value
    if _global is not None:
        _global.add_secret(name, value)


def reset_global_redactor() -> None:
    """Forget the global redactor and registered values (tests; a vault directory change)."""
    global _global, _global_key
    with _global_lock:
        _global, _global_key = None, None
        _registered.clear()


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message, its args, exception and stack text (with
    `redactor`, else the global redactor). Attach it to handlers (filters on a logger do not
    see records propagated from children)."""

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        r = self._redactor or global_redactor()
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 — a broken format string: redact the raw parts
            message = f"{record.msg} {record.args!r}"
        redacted = r.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = r.redact(text)
        elif record.exc_text:
            record.exc_text = r.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = r.redact(record.stack_info)
        return True


# ---------------------------------------------------------------------- detect, learn, redact


def findings(text: str, filename: str = "<text>") -> tuple[list, list]:
    """(secret findings, PII findings) for a text; values stay private to them.

    PII marked as an example (test card numbers, example.com) is still redacted — a planted
    "test" card is a card — but does not by itself flag content as PII for the broker."""
    return scan_text(text, filename), [f for f in find_pii(text) if not f.benign]


def _flags(secrets: list, pii: list) -> set[str]:
    return ({"secret"} if secrets else set()) | ({"pii"} if any(f.counts for f in pii) else set())


def content_flags(text: str) -> set[str]:
    """{"secret", "pii"} as found in `text`: what the broker's data rules decide on."""
    return _flags(*findings(text))


_WORDISH = re.compile(r"^[A-Za-z_]+[0-9]{0,3}$|^[a-z]+([_.-][a-z]+)*$")


def _secretish(value: str) -> bool:
    """Is a free-form value (keyword, entropy) worth redacting everywhere it occurs? The redactor
    replaces a value wherever it appears, so a keyword detector's `password = "password1"` must
    not teach it the word `password1`: keep values long and mixed enough to be credentials, never
    plain words or identifiers. Structural findings (AKIA…, ghp_…, key blocks) skip this test."""
    if len(value) < 8 or _WORDISH.match(value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return classes >= 2 or len(value) >= 20


def secret_values(text: str, filename: str = "<text>") -> tuple[list[str], set[str]]:
    """(values worth redacting, content flags) found in `text`; pure, so it can run in a worker."""
    secrets, pii = findings(text, filename)
    values: list[str] = []
    for finding in secrets:
        value = getattr(finding, "_value", "") or ""
        freeform = finding.type in FREEFORM_TYPES
        for part in (p.strip() for p in (value.splitlines() if "\n" in value else [value])):
            if len(part) >= MIN_SECRET_LEN and (not freeform or _secretish(part)):
                values.append(part)
    values += [text[f.start:f.end] for f in pii]
    return values, _flags(secrets, pii)


def learn_values(values) -> None:
    redactor = global_redactor()
    for value in values:
        redactor.add_value(value)


def learn(text: str, filename: str = "<text>") -> set[str]:
    """Teach the redactor what `text` holds; returns the content flags."""
    values, flags = secret_values(text, filename)
    learn_values(values)
    return flags


def scrub(text: str, filename: str = "<text>") -> str:
    """`text` with every secret and PII value (found now or known before) replaced by a marker."""
    if not isinstance(text, str) or not text:
        return text
    learn(text, filename)
    return global_redactor().redact(text)


def scrub_obj(obj):
    """Scrub every string inside dicts/lists (event data, parameters, passports)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub_obj(v) for v in obj)
    return obj


def _values_of(item: tuple[str, str]) -> list[str]:
    return secret_values(item[1], item[0])[0]


def scrub_many(items: list[tuple[str, str]], pool=None) -> list[str]:
    """Scrub many (filename, text) pairs; detection runs on `pool` (an executor) when given.

    Detection is the costly part (~1 s per MB), so a cold index spreads it over the cores;
    only the found values come back, and redaction (one compiled regex) stays here."""
    if pool is not None and len(items) > 1:
        for values in pool.map(_values_of, items, chunksize=8):
            learn_values(values)
    else:
        for name, text in items:
            learn(text, name)
    redactor = global_redactor()
    return [redactor.redact(text) for _name, text in items]


def submit_detection(pool, items: list[tuple[str, str]]):
    """Start detection for (filename, text) pairs on the pool; `finish_scrub` collects it. Lets a
    caller detect the next batch while it works on this one."""
    return [pool.submit(_values_of, item) for item in items]


def finish_scrub(items: list[tuple[str, str]], futures) -> list[str]:
    for future in futures:
        learn_values(future.result())
    redactor = global_redactor()
    return [redactor.redact(text) for _name, text in items]


_PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """Pool worker initializer: leave when the parent does. A parent killed with SIGKILL cannot
    shut the pool down, and a worker holds its call queue's write end itself, so it would wait on
    it forever (keeping the resource tracker's pipe open too). Polled rather than
    PR_SET_PDEATHSIG, which fires when the parent *thread* that started the worker exits. The
    pid comes from the parent: by the time this runs it may already be gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def detection_pool(workers: int):
    """A process pool for `scrub_many` (spawned, not forked: the parent may hold threads — the
    refresh daemon, tokenizers — whose locks a fork would copy held)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
