"""`direng artifacts verify|export`: check and copy out the PAS content-addressed store.

`verify [--root ROOT] [--store DIR] [--json]` re-hashes every object and reports corrupt or
writable objects and leftover temp files, one per line (a JSON list with --json); exit 1
when there are problems. `export SHA… | --all --to DIR` copies verified objects into DIR
(named by their sha256) with a `manifest.json`. The store is ROOT/.direng unless --store
(or $DIRENG_STORE, as for every other command) says otherwise. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import IndexSettings
from ..errors import DirEngError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `artifacts` (with `verify` and `export`) to a subparsers object."""
    p = sub.add_parser("artifacts", help="verify or export the run artifact store")
    p.set_defaults(run=run)
    asub = p.add_subparsers(dest="artifacts_command", metavar="SUBCOMMAND")
    asub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--root", default=".", help="the project directory (default: .)")
        q.add_argument("--store", default=None, help="store directory (default: ROOT/.direng)")

    v = asub.add_parser("verify", help="re-hash every artifact; report corrupt, writable and temp files")
    common(v)
    v.add_argument("--json", action="store_true", help="print the problems as a JSON list")
    e = asub.add_parser("export", help="copy artifacts out of the store with a manifest.json")
    e.add_argument("shas", nargs="*", metavar="SHA", help="artifact ids to export")
    e.add_argument("--all", action="store_true", help="export every artifact")
    e.add_argument("--to", required=True, metavar="DIR", help="destination directory")
    common(e)
    return p


def _store_dir(args: argparse.Namespace) -> Path:

    return IndexSettings.for_root(getattr(args, "root", ".") or ".", getattr(args, "store", None)).store


def run(args: argparse.Namespace) -> int:
    """Run the parsed `artifacts` command; returns the exit code."""
    from ..pas.artifacts import ArtifactStore

    command = getattr(args, "artifacts_command", None)
    if command not in ("verify", "export"):
        print("direng: error: artifacts: choose a subcommand: verify, export", file=sys.stderr)
        return 2
    store = ArtifactStore(_store_dir(args))
    try:
        if command == "verify":
            problems = store.verify_all()
            if getattr(args, "json", False):
                sys.stdout.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
            elif problems:
                for problem in problems:
                    sys.stdout.write(f"{problem}\n")
            else:
                sys.stdout.write(f"ok: {sum(1 for _ in store.iter_shas())} artifacts verified in {store.objects}\n")
            return 1 if problems else 0
        shas = list(getattr(args, "shas", None) or [])
        if bool(shas) == bool(getattr(args, "all", False)):
            print("direng: error: artifacts export: give SHA… or --all (not both)", file=sys.stderr)
            return 2
        manifest = store.export(None if args.all else shas, Path(args.to))
        count = len(json.loads(manifest.read_text(encoding="utf-8"))["artifacts"])
        sys.stdout.write(f"exported {count} artifacts to {manifest.parent} (manifest: {manifest.name})\n")
        return 0
    except DirEngError as err:
        print(f"direng: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        print(f"direng: error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
