"""`direng plms overrides [--root ROOT] [--json] [--min-repeats N] [--accept ID [--policy FILE]]`.

Lists the lane overrides the routing book's repeated misroutes call for (`plms/overrides.py`):
each with its id, the words, routed → lane, how many corrections taught it and the briefs (the
evidence); `[in policy]` marks those accepted. `--accept ID` writes one into the policy file
(`--policy`, else `DIRENG_POLICY`; a file that does not exist yet is created from the policy in
force), validated and audited like any policy change (`Engine.accept_override`). Without a policy
file it refuses: an override kept only in this process's memory would be gone when it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_parser(psub) -> argparse.ArgumentParser:
    o = psub.add_parser("overrides", help="lane overrides learned from repeated misroutes; --accept writes one to the policy")
    o.add_argument("--root", default=".", help="the workbench root holding the routing book (default: .)")
    o.add_argument("--store", default=None, help="the store folder (default: ROOT/.direng)")
    o.add_argument("--json", action="store_true", help="print the proposals (or the accepted override) as JSON")
    o.add_argument("--min-repeats", type=int, default=3, metavar="N",
                   help="how many briefs must have had the same correction (default: 3)")
    o.add_argument("--accept", default=None, metavar="ID", help="write the proposed override ID into the policy")
    o.add_argument("--policy", default=None, metavar="FILE",
                   help="the policy file --accept writes (default: $DIRENG_POLICY)")
    return o


def _print_proposals(proposals) -> None:
    if not proposals:
        print("no lane overrides proposed: no correction was repeated on similar briefs often enough")
        return
    for p in proposals:
        o = p.override
        mark = "  [in policy]" if p.accepted else ""
        print(f"{o.id}  {' + '.join(o.words)}  {o.routed or '?'} -> {o.lane}  ({o.corrections} corrections){mark}")
        for brief in p.briefs:
            print(f"    {brief[:100]!r}")
        if p.conflicts:
            print(f"    against: {len(p.conflicts)} brief(s) with these words put elsewhere")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..engine import Engine
    from ..errors import DirEngError

    if args.min_repeats < 1:
        print("direng: error: --min-repeats must be at least 1", file=sys.stderr)
        return 2
    policy = args.policy or os.environ.get("DIRENG_POLICY")
    if args.accept and not policy:
        print("direng: error: --accept needs a policy file to write: pass --policy FILE or set DIRENG_POLICY",
              file=sys.stderr)
        return 1
    if not Path(args.root).is_dir():
        print(f"direng: error: root {args.root} is not a directory", file=sys.stderr)
        return 1
    if args.accept and not Path(policy).exists():
        print(f"direng: note: {policy} does not exist: it is created from the policy in force", file=sys.stderr)
    engine = Engine(args.root, store=args.store, policy_path=policy, one_shot=True)
    try:
        if policy and engine.policy_errors and Path(policy).exists():  # never overwrite a file that does not load
            print(f"direng: error: {engine.policy_errors[0]}", file=sys.stderr)
            return 1
        if args.accept:
            override = engine.accept_override(args.accept)
            if args.json:
                print(json.dumps(override.model_dump(mode="json"), indent=2))
            else:
                print(f"accepted {override.id}: briefs with {' + '.join(override.words)} go to {override.lane}; "
                      f"wrote {policy}")
            return 0
        proposals = engine.lane_overrides(args.min_repeats)
        if args.json:
            print(json.dumps([p.model_dump(mode="json") for p in proposals], indent=2))
        else:
            _print_proposals(proposals)
        return 0
    except DirEngError as exc:
        print(f"direng: error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.stop()
