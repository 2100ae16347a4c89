"""Identifier-aware tokenization for lexical search.

Code says `getUserName` and `resolve_redirects`; people ask about "user name" and "redirects".
Every identifier is kept whole (lower-cased) and also split at camelCase humps, digits and
underscores, so both spellings match. SQLite's FTS5 porter stemmer then folds plural/verb forms.
"""

from __future__ import annotations

import re
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_HUMPS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Words that say nothing about code: question scaffolding and English function words.
STOPWORDS = frozenset(
    """a an and are as at be by can code do does done for from get gets has have how i if in
    into is it its me of on or our that the their then there these this those to use used uses
    using was we what when where which who why will with you your function method class file
    implemented implement handled handle happens find show""".split()
)


def split_identifier(word: str) -> list[str]:
    """`getHTTPResponse_code2` → ['get', 'http', 'response', 'code', '2']."""
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(m.group(0).lower() for m in _HUMPS.finditer(piece))
    return parts


@lru_cache(maxsize=1 << 16)
def _word_terms(word: str) -> tuple[str, ...]:
    """One identifier's terms: whole (when it splits) then its parts. Code repeats its
    identifiers endlessly, so a cold index splits each distinct one once."""
    parts = split_identifier(word)
    whole = word.lower().strip("_")
    if whole and (len(parts) != 1 or parts[0] != whole):
        return (whole.replace("_", ""), *parts)
    return tuple(parts)


def code_terms(text: str) -> list[str]:
    """All terms of a text: whole identifiers plus their parts (duplicates kept: they count)."""
    out: list[str] = []
    for word in _IDENT.findall(text):
        out.extend(_word_terms(word))
    return out


def query_terms(text: str) -> list[str]:
    """Distinct, meaningful terms of a query, in order."""
    seen: dict[str, None] = {}
    for term in code_terms(text):
        if term not in STOPWORDS and (len(term) > 1 or term.isdigit()):
            seen.setdefault(term, None)
    return list(seen)
