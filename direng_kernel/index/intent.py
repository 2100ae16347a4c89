"""What a search query asks for, read from its wording, and what role a file plays.

Search ranks text; some questions are not text questions. Three readings change how the
hybrid search answers (`search.Searcher`), each measured by `benchmarks/ablation.py`:

* relation — "which functions use X", "who depends on X", "where is X invoked", "what ends
  up calling X": a question about the call graph. `relation_candidates` returns the names in
  the query that could be X, best first (code-looking names, then the words next to the
  relation verb); the searcher keeps the first one the index defines and answers from its
  callers and references.
* asides — tests, benchmarks, examples, docs and changelogs match a question's words as well
  as the code does (a test is named after the behaviour; a changelog retells it), but people
  asking "how/where" want the implementation. They are demoted unless the query names them
  (`asks_for_asides`). `file_role` tells code from asides by path; `chunk_role` keeps
  parsed source code as code wherever it lives (a Go `doc` package is not prose).
* types — "which class represents…", "what interface describes…": the answer is a
  definition of a type, not the code that uses it (`asks_for_type`).
"""

from __future__ import annotations

import re

from .tokens import STOPWORDS

# A relation verb, and the question words that make a sentence ask for the things related.
_RELATION = re.compile(
    r"\b(?:call(?:s|ed|ing)?|invok(?:e|es|ed|ing)|"
    r"us(?:e|es|ed|ing)(?!\s+(?:to|for|as|in|when|by|with)\b)|depend(?:s|ed|ing)?\s+on|"
    r"rel(?:y|ies|ied|ying)\s+on|referenc(?:e|es|ed|ing)|callers?|call[\s-]+sites?|users?)\b", re.I)
_ASKS = re.compile(r"^\s*(?:what|who|which|where|list|find|show|give|name)\b", re.I)
_WORD = re.compile(r"[A-Za-z_][\w.:]*(?:\(\))?")
# Words that never name the symbol asked about, beyond the lexical stopwords.
_NOT_TARGETS = STOPWORDS | frozenset(
    """all any every place places code paths path functions methods callers caller users user
    sites site calls called calling invoke invokes invoked invoking depends depend relies rely
    relied references referenced ends end up helper before after deciding decide other others
    list name give""".split())
_NEAR = 3  # a plain word counts as the target only this many words from the relation verb

ASIDE_ROLES = ("test", "bench", "example", "doc")
_ROLE_PATTERNS = (
    ("test", re.compile(r"(?:^|/)(?:tests?|testing|__tests__|spec|specs|testdata|fixtures)/|(?:^|/)test_[^/]*$|"
                        r"_tests?\.[a-z]+$|\.(?:test|spec)\.[a-z]+$|(?:^|/)conftest\.py$", re.I)),
    ("bench", re.compile(r"(?:^|/)(?:bench|benches|benchmarks?)/|_bench\.[a-z]+$", re.I)),
    ("example", re.compile(r"(?:^|/)(?:examples?|samples?|demos?)/", re.I)),
    ("doc", re.compile(r"(?:^|/)(?:docs?|documentation)/|\.(?:md|rst|txt|adoc)$|(?:^|/)(?:changelog|changes|"
                       r"history|news|readme|contributing|authors|license)[^/]*$", re.I)),
)
_ASIDE_WORDS = {
    "test": re.compile(r"\b(?:tests?|specs?|unit[\s-]?tests?|test\s+suite|fixtures?)\b", re.I),
    "bench": re.compile(r"\bbenchmarks?\b", re.I),
    "example": re.compile(r"\b(?:examples?|samples?|demos?)\b", re.I),
    "doc": re.compile(r"\b(?:docs?|documentation|readme|changelog|release\s+notes|guide|tutorial)\b", re.I),
}
# The type noun must be what the question word asks for — "which class", "what is the type",
# "what kind of struct", "which public trait" — not a word further on: "what happens to one log
# record" asks about behaviour, "which file implements the map type" asks for a file.
_TYPE_Q = re.compile(
    r"\b(?:which|what)\s+(?:(?:one\s+)?of\s+)?(?:(?:is|are)\s+)?(?:(?:the|a|an)\s+)?"
    r"(?:(?:name|kind|sort)\s+of\s+(?:(?:the|a|an)\s+)?)?(?:[\w-]+\s+){0,2}?"
    r"(?:class(?:es)?|interfaces?|traits?|structs?|enums?|types?|type\s+alias|data\s+structure|records?)\b", re.I)
TYPE_KINDS = frozenset({"class", "struct", "enum", "interface", "trait", "type"})
_CONSTANT_Q = re.compile(r"\b(?:constants?|default\s+values?|which\s+values?|settings?)\b", re.I)


def _code_like(word: str) -> bool:
    core = word.removesuffix("()")
    return (word.endswith("()") or "_" in core.strip("_") or any(c in core for c in ".:")
            or bool(re.search(r"[a-z][A-Z]", core)))


def relation_candidates(query: str) -> list[str]:
    """Names that may be the X of a relation question, best first; [] when it is not one.

    Code-looking names (snake_case, camelCase, dotted, `x()`) come first, in order; then plain
    words within a few words of the relation verb, nearest first — "where is the indent
    helper invoked" names `indent`. The caller keeps the first one the index defines.
    """
    if not _ASKS.match(query):
        return []
    verbs = list(_RELATION.finditer(query))
    if not verbs:
        return []
    spans = [(m.start(), m.end()) for m in verbs]
    words = [(m.group(0).rstrip(".:"), m.start()) for m in _WORD.finditer(query)]
    verb_at = [i for i, (_, pos) in enumerate(words) if any(s <= pos < e for s, e in spans)]
    code, plain = [], []
    for i, (word, _pos) in enumerate(words):
        bare = word.removesuffix("()")
        if not bare or bare.lower() in _NOT_TARGETS or _RELATION.fullmatch(bare):
            continue
        if _code_like(word):
            code.append(bare)
            continue
        distance = min((abs(i - v) for v in verb_at), default=_NEAR + 1)
        if distance <= _NEAR and len(bare) > 2:
            plain.append((distance, i, bare))
    return list(dict.fromkeys(code + [w for _, _, w in sorted(plain)]))


def file_role(path: str) -> str:
    """`code`, or the kind of aside a file is: `test`, `bench`, `example` or `doc`, by its path
    alone (a text chunk of a config file, or of a notebook cell in a language without a grammar,
    is not prose)."""
    for role, pattern in _ROLE_PATTERNS:
        if pattern.search(path):
            return role
    return "code"


def chunk_role(path: str, parsed: bool, cell: int | None = None) -> str:
    """`file_role`, except that parsed source code (`parsed`: a chunk with a language, a hit
    that is not text) is never prose: a Go `doc` package, a docs generator under `docs/`, a
    module called `history.py` are code. Only text, and notebook cells (tutorials), keep the
    `doc` role a docs folder or a changelog-like name gives them."""
    role = file_role(path)
    if role == "doc" and parsed and cell is None:
        return "code"
    return role


def asks_for_asides(query: str) -> frozenset[str]:
    """The aside roles the query names ("…in the tests", "the README"): not demoted for it."""
    return frozenset(role for role, pattern in _ASIDE_WORDS.items() if pattern.search(query))


def asks_for_type(query: str) -> bool:
    return bool(_TYPE_Q.search(query))


_HOW_Q = re.compile(r"^\s*how\b(?!\s+(?:many|much|often|long)\b)", re.I)


def asks_how(query: str) -> bool:
    """"How does/are …": a question about behaviour."""
    return bool(_HOW_Q.match(query))


def asks_for_constant(query: str) -> bool:
    return bool(_CONSTANT_Q.search(query))
