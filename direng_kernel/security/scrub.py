"""One call at every boundary where text is persisted or leaves: detect, learn, redact.

`scrub(text)` runs secret detection (detect-secrets plugins plus entropy) and the PII finders
over the text, teaches the process-wide redactor every value they find, and returns the text
with those values — and every value learnt before, and vault secrets — replaced by stable
markers. It is applied where the index stores code, where answers and tool results are
produced, where lane outputs, events and passports are written, and to anything sent to a
provider. Multi-line secrets (PEM blocks) are learnt line by line, so a redacted file keeps its
line numbers and citations stay right.
"""

from __future__ import annotations

from .redact import MIN_SECRET_LEN, global_redactor


def findings(text: str, filename: str = "<text>") -> tuple[list, list]:
    """(secret findings, PII findings) for a text; values stay private to them.

    PII marked as an example (test card numbers, example.com) is still redacted — a planted
    "test" card is a card — but does not by itself flag content as PII for the broker."""
    from .pii import find_pii
    from .secrets import scan_text

    return scan_text(text, filename), [f for f in find_pii(text) if not f.benign]


def _flags(secrets: list, pii: list) -> set[str]:
    return ({"secret"} if secrets else set()) | ({"pii"} if any(f.counts for f in pii) else set())


def content_flags(text: str) -> set[str]:
    """{"secret", "pii"} as found in `text`: what the broker's data rules decide on."""
    return _flags(*findings(text))


def learn(text: str, filename: str = "<text>") -> set[str]:
    """Teach the redactor what `text` holds; returns the content flags."""
    redactor = global_redactor()
    secrets, pii = findings(text, filename)
    for finding in secrets:
        value = getattr(finding, "_value", "") or ""
        for part in value.splitlines() if "\n" in value else [value]:
            if len(part.strip()) >= MIN_SECRET_LEN:
                redactor.add_value(part.strip())
    for finding in pii:
        redactor.add_value(text[finding.start:finding.end])
    return _flags(secrets, pii)


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
