"""`direng policy validate FILE [--json]`: check a model-broker policy (schema + semantics).

Prints each issue as `POINTER: message` (or a JSON list with --json) and exits 1 when there
are issues; `ok: FILE is a valid policy` and exit 0 when clean. A missing or unparsable file
is one line on stderr and exit 1. Imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `policy` (with its `validate` subcommand) to a subparsers object."""
    p = sub.add_parser("policy", help="work with model-broker policy files")
    p.set_defaults(run=run)
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    psub.required = True
    v = psub.add_parser("validate", help="validate a policy file against the schema and semantic rules")
    v.add_argument("file", metavar="FILE", help="policy JSON file")
    v.add_argument("--json", action="store_true", help="print the issues as a JSON list")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the parsed `policy` command; returns the exit code."""
    if getattr(args, "policy_command", None) != "validate":
        print("direng: error: policy: choose a subcommand: validate", file=sys.stderr)
        return 2
    from ..broker.policy import PolicyError, read_policy_json, validate_policy

    try:
        data = read_policy_json(args.file)
    except PolicyError as err:
        print(f"direng: error: {err}", file=sys.stderr)
        return 1
    from ..pas.lanes import registry

    issues = validate_policy(data, registry.extra_routes())  # user lanes may have routes too
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps([i.model_dump() for i in issues], indent=2) + "\n")
    elif issues:
        for issue in issues:
            sys.stdout.write(f"{issue}\n")
    else:
        sys.stdout.write(f"ok: {args.file} is a valid policy\n")
    return 1 if issues else 0
