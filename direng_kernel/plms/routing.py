"""The lane classifier: routes a brief to a lane, learns from corrections, asks when unsure.

Features: the brief's static embedding (`index.embed.embed_static`, 256 dims, unit length) and
the keyword rules (`keywords.py`): per rule whether it matches, which rule matches first, and
whether none does. A multinomial logistic regression (scikit-learn) is fitted on the seed briefs
the rules label — so with no correction it routes as the rules do — plus every labelled example
in the routing book, each weighted `CORRECTION_WEIGHT` seeds (a user's word outweighs a
template). It is refitted whenever the book changes (`Router.for_book` caches by the book's
version).

Active learning: when the probability of the top lane exceeds the runner-up's by less than
`UNCERTAIN_MARGIN` (0.25), the decision is `uncertain` and the surfaces ask the user to pick one
of the two (with the reasons below); the answer is recorded as a labelled example (`asked`).

Reasons per lane: the keyword the brief matched for it, the closest labelled brief for that lane
(cosine of the static embeddings), and the probability. Only registered lanes are ever chosen:
probabilities of unregistered classes (a user lane that is gone) are dropped before choosing;
corrections to them are not learned.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable, Sequence

import numpy as np

from ..models import LaneChoice, RoutingDecision
from .corrections import RoutingBook, RoutingRecord
from .keywords import FALLBACK_LANE, RULE_LANES, matches, route_lane, seed_briefs

log = logging.getLogger(__name__)

UNCERTAIN_MARGIN = 0.25   # top-1 minus top-2 probability below this: ask
CORRECTION_WEIGHT = 5.0   # one labelled example counts as this many seed briefs
KEYWORD_SCALE = 2.0       # keyword features against a unit-length embedding
SIMILAR_MIN = 0.5         # a labelled brief is cited as a reason from this cosine on


def keyword_features(brief: str) -> np.ndarray:
    """[matches rule i] * 6, [rule i matches first] * 6, [no rule matches]."""
    found = matches(brief)
    hit = np.zeros(len(RULE_LANES))
    first = np.zeros(len(RULE_LANES))
    for _, lane, _ in found:
        hit[RULE_LANES.index(lane)] = 1.0
    if found:
        first[RULE_LANES.index(found[0][1])] = 1.0
    return KEYWORD_SCALE * np.concatenate([hit, first, [0.0 if found else 1.0]])


def features(briefs: Sequence[str]) -> np.ndarray:
    from ..index.embed import embed_static

    emb = embed_static(list(briefs))
    return np.hstack([emb, np.vstack([keyword_features(b) for b in briefs])])


class Router:
    """A fitted lane classifier over the seeds and the given labelled examples."""

    def __init__(self, examples: Iterable[RoutingRecord] = (), lanes: Iterable[str] | None = None,
                 margin: float = UNCERTAIN_MARGIN):
        from sklearn.linear_model import LogisticRegression

        self.lanes = list(lanes) if lanes is not None else list(RULE_LANES)
        self.margin = margin
        known = set(self.lanes)
        self.examples = [e for e in examples if e.chosen in known]  # corrections to a gone lane teach nothing
        seeds = [(b, lane) for b, lane in seed_briefs() if lane in known]
        briefs = [b for b, _ in seeds] + [e.brief for e in self.examples]
        labels = [lane for _, lane in seeds] + [e.chosen for e in self.examples]
        weights = [1.0] * len(seeds) + [CORRECTION_WEIGHT] * len(self.examples)
        self._ex_vecs = features([e.brief for e in self.examples])[:, :-13] if self.examples else None
        self.model = None
        if len(set(labels)) >= 2:
            self.model = LogisticRegression(C=10.0, max_iter=2000)
            self.model.fit(features(briefs), labels, sample_weight=weights)

    @property
    def corrections(self) -> int:
        """Labelled examples it was fitted on, besides the seeds."""
        return len(self.examples)

    @classmethod
    def from_book(cls, book: RoutingBook, lanes: Iterable[str], margin: float = UNCERTAIN_MARGIN) -> "Router":
        return cls(book.history().corrections(), lanes, margin)

    def probabilities(self, brief: str) -> dict[str, float]:
        """Lane → probability over registered lanes only (renormalised)."""
        if self.model is None:
            lane = route_lane(brief) if route_lane(brief) in self.lanes else self.lanes[0]
            return {lane: 1.0}
        probs = self.model.predict_proba(features([brief]))[0]
        out = {lane: float(p) for lane, p in zip(self.model.classes_, probs) if lane in self.lanes}
        total = sum(out.values()) or 1.0
        return {lane: p / total for lane, p in sorted(out.items(), key=lambda kv: -kv[1])}

    def reasons(self, brief: str, lane: str, p: float, vec: np.ndarray | None) -> list[str]:
        why = [f"p={p:.2f}"]
        for _, rule_lane, text in matches(brief):
            if rule_lane == lane:
                why.append(f"keyword {text!r} (the {lane} rule)")
        if not matches(brief) and lane == FALLBACK_LANE:
            why.append("no keyword matches: the rules' fallback")
        if vec is not None and self._ex_vecs is not None:
            idx = [i for i, e in enumerate(self.examples) if e.chosen == lane]
            if idx:
                sims = self._ex_vecs[idx] @ vec
                best = int(np.argmax(sims))
                if sims[best] >= SIMILAR_MIN:
                    n = len(idx)
                    why.append(f"like {self.examples[idx[best]].brief[:60]!r}, which you put in {lane} "
                               f"({n} correction{'s' if n != 1 else ''} to it)")
        return why

    def decide(self, brief: str) -> RoutingDecision:
        """The lane for `brief`, the top two with reasons, and whether to ask."""
        probs = self.probabilities(brief)
        ranked = list(probs.items())[:2]
        vec = None
        if self._ex_vecs is not None:
            from ..index.embed import embed_static

            vec = embed_static([brief])[0]
        candidates = [LaneChoice(lane=lane, probability=round(p, 4), reasons=self.reasons(brief, lane, p, vec))
                      for lane, p in ranked]
        margin = ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0.0)
        return RoutingDecision(lane=ranked[0][0], candidates=candidates, margin=round(margin, 4),
                               threshold=self.margin, uncertain=len(ranked) > 1 and margin < self.margin,
                               corrections=self.corrections)


_cache: dict[tuple, Router] = {}
_cache_lock = threading.Lock()


def router_for(book: RoutingBook, lanes: Iterable[str]) -> Router:
    """The router fitted on the book as it is now: refitted when a record was added (or the lanes changed)."""
    lanes = tuple(lanes)
    key = (str(book.path), book.version(), lanes)
    with _cache_lock:
        router = _cache.get(key)
        if router is None:
            router = Router.from_book(book, lanes)
            for old in [k for k in _cache if k[0] == key[0]]:
                del _cache[old]
            _cache[key] = router
        return router


def choice_lines(decision: RoutingDecision) -> list[str]:
    """The question put to the user: the two lanes, numbered, each with its reasons."""
    lines = [f"unsure which lane fits (margin {decision.margin:.2f} < {decision.threshold:.2f}); pick one:"]
    for i, c in enumerate(decision.candidates, 1):
        lines.append(f"  {i}) {c.lane}: " + "; ".join(c.reasons))
    return lines
