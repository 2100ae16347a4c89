"""`direng mcp [--root ROOT] [--store DIR] [--scopes S ...] [--watch]`: DirEng as an MCP server on stdio.

An MCP client (Claude Code, Codex, jupyter-ai, any other) starts this command and talks the
Model Context Protocol over its stdin/stdout (see docs/mcp.md). The tools call the same
application API as every other command: the engine of `--root` in this process, or — without
`--root`, when `DIRENG_SERVER_URL` names a running server — that server's engine over REST.

The process is the user's own, so it holds every scope unless `--scopes` keeps fewer (names,
space/comma lists and the presets `kernel`, `lane`, `all`); tools needing a missing scope are
then not listed and calls to them are refused. Bad options are one line on stderr and exit 1,
before anything touches stdout, which belongs to the protocol.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    """Add `mcp` to a subparsers object."""
    p = sub.add_parser("mcp", help="serve DirEng's tools over the Model Context Protocol (stdio)")
    p.add_argument("--root", default=None,
                   help="the indexed directory (default: the server of DIRENG_SERVER_URL, else the git root of .)")
    p.add_argument("--store", default=None, help="index store directory (default: ROOT/.direng)")
    p.add_argument("--scopes", action="append", default=None, metavar="SCOPE",
                   help="only these scopes (repeatable; space/comma lists and the presets kernel, lane, all); "
                        "default: every scope")
    p.add_argument("--watch", action="store_true",
                   help="keep the index fresh while serving (the refresh daemon of an in-process engine)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..client import connect
    from ..errors import RootError
    from ..mcp.stdio import run_stdio
    from ..security.scopes import ALL_SCOPES, expand_presets

    scopes = expand_presets(args.scopes) if args.scopes else ALL_SCOPES  # unknown names: one line, exit 1
    root = Path(args.root) if args.root is not None else None
    if root is not None and not root.is_dir():
        raise RootError(f"root {root} does not exist" if not root.exists() else f"root {root} is not a directory")

    def make_client():
        return connect(root, store=args.store)

    run_stdio(make_client, scopes, watch=args.watch)
    return 0
