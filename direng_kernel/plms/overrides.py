"""Policy-level lane overrides learned from repeated misroutes.

Idea: when the user keeps moving briefs with the same words from one lane to another (the same
routed → chosen correction in the routing book, `corrections.py`), that is a rule, and a rule
belongs in the policy where it can be read, reviewed and audited rather than only in the
classifier's weights. `propose` groups the misroutes by (routed, chosen); within a group, the
candidate rules are the sets of content words (at most `MAX_WORDS`) shared by at least
`min_repeats` of its briefs. Each is checked against every correction having those words: one
that sends fewer than `min_agreement` of them to the group's lane (the user put such briefs
elsewhere too) is dropped. Of the rest it takes one the user never contradicted, then the one
shared by the most briefs, then the larger (more specific) set. The briefs it covers are taken
out and the group is searched again, so one group can give several rules.

An accepted override is a `models.LaneOverride` in the policy's `lane_overrides` (validated like
any policy change, `broker/policy.py`); the router asks `matching` first, and a brief containing
every word of an override goes to its lane without the classifier (`override_decision`). An
override to a lane that is not registered (a user lane that is gone) never routes.

Words are the brief's lower-case tokens; proposing leaves out English stop words
(scikit-learn's list) and words shorter than three letters, matching needs none of that.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from collections import Counter, defaultdict
from itertools import combinations
from typing import Iterable, Sequence

from ..errors import DirEngError
from ..models import LaneChoice, LaneOverride, OverrideProposal, RoutingDecision
from .corrections import RoutingRecord

log = logging.getLogger(__name__)

MIN_REPEATS = 3       # the same correction on this many similar briefs proposes an override
MIN_AGREEMENT = 0.8   # share of the corrections with those words that went to the override's lane
MAX_WORDS = 4         # words an override may require
MIN_WORD = 3          # shorter words are not proposed ("of", "to", "ui")
_TOKEN = re.compile(r"[a-z0-9]+(?:['_-][a-z0-9]+)*")


def tokens(text: str) -> set[str]:
    """The brief's words as overrides match them: lower-case, punctuation apart from ' _ - inside a word."""
    return set(_TOKEN.findall(text.lower()))


def content_words(text: str) -> set[str]:
    """The words an override may be made of: no stop words, none shorter than `MIN_WORD`."""
    from sklearn.feature_extraction._stop_words import ENGLISH_STOP_WORDS

    return {w for w in tokens(text) if len(w) >= MIN_WORD and w not in ENGLISH_STOP_WORDS}


def override_id(lane: str, words: Iterable[str]) -> str:
    """A stable id for (lane, words): the same rule gets the same id in every listing."""
    return "ovr-" + hashlib.sha1(f"{lane}:{' '.join(sorted(words))}".encode()).hexdigest()[:8]


def _shared_sets(word_sets: Sequence[set[str]], min_support: int) -> Counter:
    """Every word set (up to `MAX_WORDS` words) contained in at least `min_support` of `word_sets`,
    with how many: each set's frequent words, every combination of them counted."""
    single = Counter(w for s in word_sets for w in s)
    counts: Counter = Counter()
    for s in word_sets:
        frequent = sorted(w for w in s if single[w] >= min_support)
        for k in range(1, min(MAX_WORDS, len(frequent)) + 1):
            counts.update(frozenset(c) for c in combinations(frequent, k))
    return Counter({c: n for c, n in counts.items() if n >= min_support})


def propose(records: Iterable[RoutingRecord], lanes: Iterable[str], existing: Sequence[LaneOverride] = (),
            min_repeats: int = MIN_REPEATS, min_agreement: float = MIN_AGREEMENT) -> list[OverrideProposal]:
    """Overrides the routing book's repeated misroutes call for, most corrections first, each with
    its evidence; those already in the policy (`existing`, same id) are marked `accepted`.

    Within a (routed, chosen) group the rule is, of the word sets shared by `min_repeats` briefs
    and agreeing with at least `min_agreement` of all corrections having them: one the user never
    contradicted, then the one shared by the most briefs, then the larger."""
    if min_repeats < 1:
        raise DirEngError(f"min_repeats must be at least 1, got {min_repeats}")
    lanes = set(lanes)
    corrections = [r for r in records if r.is_correction]
    words = {id(r): content_words(r.brief) for r in corrections}
    have = {id(r): tokens(r.brief) for r in corrections}
    groups: dict[tuple[str, str], list[RoutingRecord]] = defaultdict(list)
    for r in corrections:
        if r.misrouted and r.chosen in lanes:  # a correction to a lane that is gone teaches nothing
            groups[(r.routed, r.chosen)].append(r)
    accepted = {o.id for o in existing}
    out: list[OverrideProposal] = []
    for (routed, chosen), group in sorted(groups.items()):
        left = list(group)
        while len(left) >= min_repeats:
            ranked = []
            for shared, n in _shared_sets([words[id(r)] for r in left], min_repeats).items():
                having = [r for r in corrections if shared <= have[id(r)]]
                conflicts = [r for r in having if r.chosen != chosen]
                if len(having) - len(conflicts) >= min_agreement * len(having):
                    ranked.append(((bool(conflicts), -n, -len(shared), sorted(shared)), shared, conflicts))
            if not ranked:
                break
            _, shared, conflicts = min(ranked, key=lambda c: c[0])
            taught = [r for r in left if shared <= words[id(r)]]
            left = [r for r in left if not shared <= words[id(r)]]
            ordered = sorted(shared)
            override = LaneOverride(id=override_id(chosen, ordered), words=ordered, lane=chosen, routed=routed,
                                    corrections=len(taught),
                                    description=f"learned from {len(taught)} briefs moved from {routed} to {chosen}")
            out.append(OverrideProposal(override=override, briefs=[r.brief for r in taught],
                                        conflicts=[r.brief for r in conflicts], accepted=override.id in accepted))
    return sorted(out, key=lambda p: (-p.override.corrections, p.override.id))


def matching(brief: str, overrides: Sequence[LaneOverride], lanes: Iterable[str]) -> LaneOverride | None:
    """The first override whose words are all in the brief and whose lane is registered."""
    lanes, have = set(lanes), tokens(brief)
    for o in overrides:
        if set(o.words) <= have:
            if o.lane in lanes:
                return o
            log.warning("lane override %s names lane %r, which is not registered: ignored", o.id, o.lane)
    return None


def override_decision(o: LaneOverride, threshold: float) -> RoutingDecision:
    """The routing decision an override makes: its lane, sure, and why."""
    why = [f"policy lane override {o.id}: the brief has the words {', '.join(repr(w) for w in o.words)}"]
    if o.corrections:
        why.append(f"learned from {o.corrections} briefs moved from {o.routed} to {o.lane}")
    return RoutingDecision(lane=o.lane, candidates=[LaneChoice(lane=o.lane, probability=1.0, reasons=why)],
                           margin=1.0, threshold=threshold, uncertain=False, override=o.id)


def with_override(policy: dict, override: LaneOverride) -> dict:
    """A copy of the policy document with `override` appended to `lane_overrides` (the caller
    validates and applies it like any policy change)."""
    doc = copy.deepcopy(policy)
    current = doc.setdefault("lane_overrides", [])
    if not isinstance(current, list):
        raise DirEngError("the policy's lane_overrides is not a list")
    if any(isinstance(o, dict) and o.get("id") == override.id for o in current):
        raise DirEngError(f"lane override {override.id} is in the policy already")
    current.append(override.model_dump(mode="json"))
    return doc
