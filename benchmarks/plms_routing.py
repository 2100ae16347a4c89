"""Lane routing that learns: how often the classifier asks, and how accuracy grows with corrections.

A simulated user has a lane in mind for every brief (`FAMILIES`: ten wordings × twelve objects;
four of the ten families the keyword rules misroute, e.g. "tidy the cart layout" is graph-ops to
this user, narrative to the rules). The briefs of eight objects arrive one by one in a shuffled
stream; for each the classifier (`plms.routing.Router`, real, refitted after every labelled
example) decides:

  * uncertain (margin < UNCERTAIN_MARGIN) → it asks; the user's answer is a labelled example;
  * sure and wrong → the user corrects the lane (`task new --lane`); a labelled example;
  * sure and right → nothing is learned.

After each step the accuracy on the briefs of the four held-out objects is measured (briefs the
stream never showed). Three shuffles (seeds 0-2). Prints a table and writes
benchmarks/results/plms_routing.json.

    python benchmarks/plms_routing.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

from direng_kernel.models import LANE_IDS
from direng_kernel.plms.corrections import RoutingRecord
from direng_kernel.plms.keywords import route_lane
from direng_kernel.plms.routing import UNCERTAIN_MARGIN, Router

OUT = Path(__file__).resolve().parent / "results" / "plms_routing.json"

FAMILIES: list[tuple[str, str]] = [   # (wording, the user's lane)
    ("tidy the {o} layout", "graph-ops"),              # rules: narrative
    ("speed up the {o}", "code-impl"),                 # rules: narrative
    ("fix the {o} docs", "narrative"),                 # rules: code-impl ("fix" comes first)
    ("refresh the {o} schema", "data-schema"),         # rules: vector-ops ("refresh" comes first)
    ("write release notes for the {o}", "narrative"),
    ("check the {o} for api compatibility", "code-api-design"),
    ("find unused functions in the {o}", "graph-ops"),
    ("validate the {o} json", "data-schema"),
    ("rebuild the embeddings of the {o}", "vector-ops"),
    ("implement retries in the {o}", "code-impl"),
]
STREAM_OBJECTS = ["cart", "checkout", "payment", "shipping", "parser", "http client", "billing", "search"]
HELD_OUT_OBJECTS = ["loyalty module", "catalogue", "inventory", "auth service"]


def briefs(objects: list[str]) -> list[tuple[str, str]]:
    return [(w.format(o=o), lane) for w, lane in FAMILIES for o in objects]


def accuracy(router: Router, test: list[tuple[str, str]]) -> float:
    return sum(router.decide(b).lane == lane for b, lane in test) / len(test)


def run(seed: int) -> dict:
    stream, test = briefs(STREAM_OBJECTS), briefs(HELD_OUT_OBJECTS)
    random.Random(seed).shuffle(stream)
    examples: list[RoutingRecord] = []
    router = Router(lanes=LANE_IDS)
    curve = [{"step": 0, "corrections": 0, "accuracy": accuracy(router, test)}]
    asked = corrected = 0
    asked_by_quarter = [0, 0, 0, 0]
    for step, (brief, lane) in enumerate(stream, 1):
        d = router.decide(brief)
        source = "asked" if d.uncertain else "task_new" if d.lane != lane else None
        if source:
            asked += source == "asked"
            asked_by_quarter[(step - 1) * 4 // len(stream)] += source == "asked"
            corrected += source == "task_new"
            examples.append(RoutingRecord(at=datetime.now(timezone.utc), source=source, brief=brief,
                                          routed=d.lane, chosen=lane))
            router = Router(examples, lanes=LANE_IDS)
        curve.append({"step": step, "corrections": len(examples), "accuracy": accuracy(router, test)})
    return {"seed": seed, "stream": len(stream), "asked": asked, "corrected": corrected,
            "ask_rate": asked / len(stream), "asked_by_quarter": asked_by_quarter,
            "labelled": len(examples), "final_accuracy": curve[-1]["accuracy"], "curve": curve}


def accuracy_at(curve: list[dict], n: int) -> float:
    """Held-out accuracy once `n` labelled examples had been learned (the first step that reached n)."""
    return next(c["accuracy"] for c in curve if c["corrections"] >= n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.time()
    test = briefs(HELD_OUT_OBJECTS)
    rules = sum(route_lane(b) == lane for b, lane in test) / len(test)
    day_one = Router(lanes=LANE_IDS)
    agree = sum(day_one.decide(b).lane == route_lane(b) for b, _ in test) / len(test)
    runs = [run(s) for s in range(args.seeds)]
    most = min(r["labelled"] for r in runs)  # only counts every run reached
    points = [n for n in (0, 1, 2, 3, 4, 6, 8, 12, 16, 24) if n <= most]
    growth = {n: sum(accuracy_at(r["curve"], n) for r in runs) / len(runs) for n in points}
    summary = {
        "uncertain_margin": UNCERTAIN_MARGIN, "families": len(FAMILIES), "stream_briefs": runs[0]["stream"],
        "held_out_briefs": len(test), "keyword_rules_accuracy": rules, "day_one_agreement_with_rules": agree,
        "mean_ask_rate": sum(r["ask_rate"] for r in runs) / len(runs),
        "mean_asked_by_quarter": [sum(r["asked_by_quarter"][q] for r in runs) / len(runs) for q in range(4)],
        "mean_corrected": sum(r["corrected"] for r in runs) / len(runs),
        "mean_labelled": sum(r["labelled"] for r in runs) / len(runs),
        "accuracy_by_corrections": {str(n): round(a, 3) for n, a in growth.items()},
        "mean_final_accuracy": sum(r["final_accuracy"] for r in runs) / len(runs),
        "seconds": round(time.time() - t0, 1),
    }
    print(f"held-out accuracy: keyword rules {rules:.0%}; day one agrees with the rules on {agree:.0%}")
    print(f"asked on {summary['mean_ask_rate']:.0%} of {summary['stream_briefs']} briefs "
          f"(by quarter of the stream: {', '.join(f'{q:.1f}' for q in summary['mean_asked_by_quarter'])}); "
          f"corrected {summary['mean_corrected']:.1f} confident misroutes")
    print("labelled examples  held-out accuracy")
    for n, a in growth.items():
        print(f"{n:>18}  {a:.0%}")
    print(f"final: {summary['mean_final_accuracy']:.0%} after {summary['mean_labelled']:.1f} labelled examples "
          f"({summary['seconds']} s)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
