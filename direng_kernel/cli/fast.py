"""A plain `direng search` answered before the rest of the CLI is imported.

Importing pydantic and the package's models costs a process ~120 ms, more than the search
itself, and a search needs neither: the index's records are dataclasses (`records.py`). So this
path parses the `search` arguments (the same definitions the full parser uses,
`add_search_arguments`) and answers with what the index layer has:

- when `direng index --watch` or a Jupyter server owns the store's socket, that daemon answers
  (everything is loaded there, MiniLM included); its JSON is printed as the full path would;
- otherwise the index in this process answers, as the full path's one-shot engine would: the
  static vectors memory-mapped from the store's cache, MiniLM left out (and noted).

It answers only what it can answer exactly like the full path. Anything else returns None and
the full CLI runs: another command, `--help`, a global option, arguments argparse would reject,
`--mode` or `--dense` without a daemon (the full path checks the mode and loads MiniLM), a
policy file to check (`DIRENG_POLICY`), `DIRENG_DAEMON=off` with either of those, a daemon that
is gone (the full path cleans up after it and answers in-process), an error reply, and any
error in this process (the full path raises it again, with its message and exit code).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from .. import daemon_socket
from ..locations import store_dir
from ..records import jsonable
from . import logs

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
    """Answer `argv` (through the daemon, or in this process) and return the exit code, or None
    to run the full CLI."""
    args = _parse(argv)
    if args is None:
        return None
    root = Path(args.root)
    if not root.is_dir():
        return None
    path = daemon_socket.socket_path(store_dir(root, args.store))
    if os.environ.get("DIRENG_DAEMON", "").lower() not in ("0", "off", "no", "false") and path.exists():
        hits = _from_daemon(path, args)
        notices: list[str] = []
    elif args.mode is None and not args.dense and not os.environ.get("DIRENG_POLICY"):
        hits, notices = _in_process(root, args)
    else:
        return None
    if hits is None:
        return None
    try:
        sys.stdout.write(json_hits(hits) if args.json else hits_table(args.query, hits))
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    logs.print_notices(notices)
    return 0


def _from_daemon(path: Path, args: argparse.Namespace) -> list[dict] | None:
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
    return hits


def _in_process(root: Path, args: argparse.Namespace) -> tuple[list[dict] | None, list[str]]:
    """The one-shot engine's answer, from the workbench itself: the default mode, no MiniLM."""
    from ..workbench import Workbench

    logs.configure()
    wb = Workbench(root, args.store, static_cache=True)
    try:
        hits = wb.search(args.query, k=args.k, dense=False)
        return jsonable(hits), wb.left_out(dense=False)
    except Exception as exc:  # noqa: BLE001 — the full path raises it again and reports it its way
        logging.getLogger(__name__).debug("one-shot search handed to the full CLI: %s", exc)
        return None, []
    finally:
        wb.close()
