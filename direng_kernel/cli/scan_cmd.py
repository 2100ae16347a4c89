"""`direng scan PATH [--json] [--fail-on secret,pii,license] [--license-policy FILE] [--all]`.

Scans a file or a directory (as the indexer walks it) for secrets, PII and licences and prints
a table (or, with --json, the whole report). Notebooks are scanned by cell, outputs included
(`path:cell N:line`, `path:cell N output:line`). The table leaves out benign and example PII
(loopback addresses, example.com mail, test card numbers) unless --all is given; JSON always
has every finding with its `blocking` flag. Exit codes: 0 when nothing in a --fail-on
category blocks, 1 when something does, 2 for bad input (a missing PATH, an unknown
category, an unreadable policy, or --fail-on secret while secrets detection is unavailable),
always as one line on stderr. Imports nothing heavy until it runs.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DirEngError

CATEGORIES = ("secret", "pii", "license")


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `scan` to a subparsers object."""
    p = sub.add_parser("scan", help="scan a file or directory for secrets, PII and licences")
    p.set_defaults(run=run)
    p.add_argument("path", metavar="PATH", help="file or directory to scan")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--fail-on", default="", metavar="CATEGORIES",
                   help="comma-separated categories (secret,pii,license): exit 1 when any has a blocking finding")
    p.add_argument("--license-policy", metavar="FILE", default=None,
                   help="YAML/JSON {forbidden: [...], allowed: [...]}: licences it rejects become blocking")
    p.add_argument("--all", action="store_true", help="also list benign and example PII in the table")
    return p


def _error(msg: str, code: int = 2) -> int:
    print(f"direng: error: {msg}", file=sys.stderr)
    return code


def _parse_fail_on(value: str) -> list[str]:
    cats = [c.strip().lower() for c in (value or "").split(",") if c.strip()]
    aliases = {"secrets": "secret", "licence": "license", "licenses": "license", "licences": "license"}
    cats = [aliases.get(c, c) for c in cats]
    bad = [c for c in cats if c not in CATEGORIES]
    if bad:
        raise ValueError(f"--fail-on: unknown category {bad[0]!r} (choose from {', '.join(CATEGORIES)})")
    return list(dict.fromkeys(cats))


def _table(report, show_all: bool) -> str:
    rows = [f for f in report.findings if show_all or f.blocking or f.category != "pii"]
    header = ("CATEGORY", "KIND", "LOCATION", "DETAIL")
    body = [(f.category + ("" if f.blocking else " (info)"), f.kind, f.location, f.detail) for f in rows]
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table

            table = Table(*header, show_lines=False)
            for row in body:
                table.add_row(*row)
            console = Console()
            with console.capture() as cap:
                console.print(table)
            return cap.get().rstrip("\n")
        except ImportError:
            pass
    if not body:
        return ""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header[:3], widths)) + "  " + header[3]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in body]
    return "\n".join(lines)


def _summary(report) -> str:
    counts, blocking = report.counts(), report.counts(blocking_only=True)
    parts = []
    for cat, label in (("secret", "secrets"), ("pii", "PII"), ("license", "licence findings")):
        extra = f" ({blocking[cat]} blocking)" if cat != "secret" and blocking[cat] != counts[cat] else ""
        parts.append(f"{counts[cat]} {label}{extra}")
    secrets = "" if report.secrets_checked else " (secrets not checked)"
    return f"{report.files_scanned} files scanned: {', '.join(parts)}{secrets}"


def run(args: argparse.Namespace) -> int:
    """Run the parsed `scan` command; returns the exit code."""
    from pathlib import Path


    try:
        fail_on = _parse_fail_on(getattr(args, "fail_on", "") or "")
    except ValueError as err:
        return _error(str(err))
    path = Path(args.path)
    if not path.exists():
        return _error(f"scan: no such file or directory: {args.path}")
    try:
        from ..security.licenses import load_license_policy
        from ..security.scan import scan_path

        policy = load_license_policy(args.license_policy) if getattr(args, "license_policy", None) else None
        report = scan_path(path, license_policy=policy)
    except DirEngError as err:
        return _error(str(err))
    except OSError as err:
        return _error(f"scan: {err.strerror or err}: {err.filename or args.path}")

    if getattr(args, "json", False):
        sys.stdout.write(report.to_json() + "\n")
    else:
        table = _table(report, getattr(args, "all", False))
        if table:
            sys.stdout.write(table + "\n")
        for note in report.notes:
            sys.stdout.write(f"note: {note}\n")
        sys.stdout.write(_summary(report) + "\n")
    if "secret" in fail_on and not report.secrets_checked:
        return _error("scan: --fail-on secret, but secrets detection is unavailable (see the notes)")
    failing = [c for c in fail_on if c in report.blocking_categories()]
    return 1 if failing else 0
