"""`direng audit verify [--log PATH] [--json]`: check the audit log's hash chain.

Prints `ok: PATH: N records, chain intact, head …` and exits 0, or names the first bad record
(`broken: PATH: record seq S (line L): why`) and exits 1 — an edited, deleted, reordered or
truncated record. The log is `$DIRENG_AUDIT_LOG`, else the Jupyter data dir's
`direng/audit.jsonl`; a --log that does not exist is an error. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import DirEngError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `audit` (with its `verify` subcommand) to a subparsers object."""
    p = sub.add_parser("audit", help="verify the tamper-evident audit log")
    p.set_defaults(run=run)
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    asub.required = True
    v = asub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad record")
    v.add_argument("--log", default=None, metavar="PATH", help="audit log file (default: the user's)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the parsed `audit` command; returns the exit code."""

    if getattr(args, "audit_command", None) != "verify":
        print("direng: error: audit: choose a subcommand: verify", file=sys.stderr)
        return 2
    from ..security.audit import verify

    try:
        report = verify(args.log)
    except DirEngError as err:
        print(f"direng: error: {err}", file=sys.stderr)
        return err.exit_code
    if args.log is not None and not report.exists:
        print(f"direng: error: no audit log at {args.log}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    elif not report.exists:
        sys.stdout.write(f"ok: no audit log at {report.path} yet (0 records)\n")
    else:
        sys.stdout.write(f"{report}\n")
    return 0 if report.ok else 1
