"""The keyword rules that routed lanes before the classifier, and still seed it.

Each lane has one regex of the words that name its work; the lane whose keyword comes first in
the brief wins (the verb usually leads: "document the public API" is narrative, "report breaking
changes in the API" is API design), and `narrative` when nothing matches. The lane classifier
(`routing.py`) uses these matches as features and is fitted on briefs the rules label
(`SEED_KEYWORDS` × `SEED_TEMPLATES`), so before any correction it routes as the rules do.
"""

from __future__ import annotations

import re

FALLBACK_LANE = "narrative"

ROUTES: list[tuple[str, re.Pattern]] = [
    ("code-impl", re.compile(r"\b(patch|diff|apply|implement|fix|refactor|change the code)\b", re.I)),
    ("code-api-design", re.compile(r"\b(breaking|public api|api surface|api changes?|compatib)", re.I)),
    ("data-schema", re.compile(r"\b(schema|json|data files?|validate (the )?data|pydantic models?)\b", re.I)),
    ("graph-ops", re.compile(r"\b(cycles?|dead code|unused|unreferenced|central|dependency graph|call graph)\b", re.I)),
    ("vector-ops", re.compile(r"\b(re-?index|refresh|freshness|embeddings?)\b", re.I)),
    ("narrative", re.compile(r"\b(document|docs|documentation|reference|explain the api|write up)\b", re.I)),
]
RULE_LANES: tuple[str, ...] = tuple(lane for lane, _ in ROUTES)

#: Words each rule matches, spelled out: the seed briefs are these in `SEED_TEMPLATES`.
SEED_KEYWORDS: dict[str, tuple[str, ...]] = {
    "code-impl": ("patch", "diff", "apply", "implement", "fix", "refactor", "change the code"),
    "code-api-design": ("breaking", "public api", "api surface", "api changes", "compatibility"),
    "data-schema": ("schema", "json", "data files", "validate the data", "pydantic models"),
    "graph-ops": ("cycles", "dead code", "unused", "unreferenced", "central", "dependency graph", "call graph"),
    "vector-ops": ("reindex", "refresh", "freshness", "embeddings"),
    "narrative": ("document", "docs", "documentation", "reference", "explain the api", "write up"),
}
SEED_TEMPLATES: tuple[str, ...] = ("{kw}", "{kw} in the shop package", "please {kw} for the parser module",
                                   "{kw} of the http client", "can you {kw} before the release")
#: Briefs no rule matches: the rules send them to `narrative`, and so do the seeds.
SEED_UNMATCHED: tuple[str, ...] = ("tidy up the repository", "look at the billing module", "what changed last week",
                                   "help with the release", "summarise the checkout flow", "a note on the cart")


def matches(brief: str) -> list[tuple[int, str, str]]:
    """(position, lane, matched text) for every rule that matches, first in the brief first."""
    found = [(m.start(), i, lane, m.group(0)) for i, (lane, pattern) in enumerate(ROUTES)
             if (m := pattern.search(brief))]
    return [(pos, lane, text) for pos, _, lane, text in sorted(found)]


def route_lane(brief: str) -> str:
    """The lane whose keyword comes first in the brief; narrative when nothing matches."""
    found = matches(brief)
    return found[0][1] if found else FALLBACK_LANE


def seed_briefs() -> list[tuple[str, str]]:
    """(brief, lane) pairs labelled by the rules themselves: the classifier's day-one examples."""
    out = [(t.format(kw=kw), route_lane(t.format(kw=kw))) for kws in SEED_KEYWORDS.values() for kw in kws
           for t in SEED_TEMPLATES]
    out += [(brief, route_lane(brief)) for brief in SEED_UNMATCHED]
    return out
