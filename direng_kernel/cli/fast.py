"""`direng search` answered by the store's daemon before the rest of the CLI is imported.

When `direng index --watch` or a Jupyter server owns the store's socket, everything a search
needs is loaded there; what a one-shot process would spend is its own start-up. Importing the
package's pydantic models alone costs ~150 ms, several times the search, so this path uses the
standard library only: it parses the `search` arguments (the same definitions the full parser
uses, `add_search_arguments`), asks the daemon, and prints the daemon's JSON as the full path
would print the models.

It answers only what it can answer exactly like the full path. Anything else returns None and
the full CLI runs: another command, `--help`, a global option, arguments argparse would reject,
no socket, `DIRENG_DAEMON=off`, a daemon that is gone (the full path cleans up after it and
answers in-process), and an error reply (the full path raises it with its exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .. import daemon_socket
from ..locations import store_dir
_COLUMNS = ("#", "location", "symbol", "kind", "score")


def add_root_arguments(p: argparse.ArgumentParser) -> None:
    """`--root` and `--store`, as every command over an index takes them."""
    p.add_argument("--root", default=".", help="the indexed directory (default: .)")
    p.add_argument("--store", default=None, help="index store directory (default: ROOT/.direng)")


def add_search_arguments(p: argparse.ArgumentParser, modes: Sequence[str] | None = None,
                         default_mode: str | None = None) -> None:
    """The `search` command's arguments, for the full parser (`modes` given) and this one."""
    p.add_argument("query", metavar="QUERY")
    add_root_arguments(p)
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--mode", choices=modes, default=default_mode)
    p.add_argument("--dense", action="store_true",
                   help="embed the query with MiniLM in this process when no `direng index --watch` or server "
                        "serves the store (seconds: loads torch and the model); the daemon always does")
    p.add_argument("--json", action="store_true", help="JSON array of hits")


class _Refused(Exception):
    pass


class _QuietParser(argparse.ArgumentParser):
    """Raises instead of printing and exiting: a refusal hands over to the full parser, which
    prints its own message."""

    def error(self, message: str):
        raise _Refused(message)


def _parse(argv: Sequence[str]) -> argparse.Namespace | None:
    if not argv or argv[0] != "search" or any(a in ("-h", "--help") for a in argv[1:]):
        return None
    parser = _QuietParser(prog="direng search", add_help=False)
    add_search_arguments(parser)
    try:
        return parser.parse_args(list(argv[1:]))
    except _Refused:
        return None


def hits_table(query: str, hits: list[dict]) -> str:
    """The hits as aligned columns under a title line: what `direng search` prints on both paths."""
    rows = [[str(i), _citation(h), h.get("symbol") or "", str(h.get("kind", "")), f"{float(h['score']):.4f}"]
            for i, h in enumerate(hits, 1)]
    widths = [max(len(c), *(len(r[j]) for r in rows)) if rows else len(c) for j, c in enumerate(_COLUMNS)]
    lines = [f"{len(hits)} hits for {query!r}",
             "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.rjust(w) if j in (0, 4) else v.ljust(w) for j, (v, w) in enumerate(zip(r, widths))).rstrip()
              for r in rows]
    return "\n".join(lines) + "\n"


def _citation(hit: dict) -> str:
    cell = f"cell {hit['cell']}:" if hit.get("cell") is not None else ""
    return f"{hit['path']}:{cell}{hit['start_line']}-{hit['end_line']}"


def json_hits(hits: list[dict]) -> str:
    """The hits as `direng search --json` prints them: each hit's fields, its snippet last."""
    out = [{k: v for k, v in h.items() if k != "snippet"} | {"snippet": h.get("snippet", "")} for h in hits]
    return json.dumps(out, indent=2, default=str) + "\n"


def serve(argv: Sequence[str]) -> int | None:
    """Answer `argv` through the daemon and return the exit code, or None to run the full CLI."""
    if os.environ.get("DIRENG_DAEMON", "").lower() in ("0", "off", "no", "false"):
        return None
    args = _parse(argv)
    if args is None:
        return None
    root = Path(args.root)
    if not root.is_dir():
        return None
    path = daemon_socket.socket_path(store_dir(root, args.store))
    if not path.exists():
        return None
    params: dict = {"query": args.query, "k": args.k}
    if args.mode is not None:  # the daemon's default is the package's default
        params["mode"] = args.mode
    try:
        reply = daemon_socket.request(path, "search", params, timeout=30)
    except daemon_socket.DaemonGone:
        return None
    hits = reply.get("result")
    if "error" in reply or not isinstance(hits, list):
        return None
    try:
        sys.stdout.write(json_hits(hits) if args.json else hits_table(args.query, hits))
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return 0
