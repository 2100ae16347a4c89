"""`direng` command line: the stable contract other tools script against.

Only argparse and the light models are imported at start-up; each command imports what it
needs when it runs, so `direng status` and `direng --help` never load torch or chromadb. A
plain `direng search` imports not even pydantic: the store's daemon answers it, or the index
itself in this process (`fast.serve`).
Errors are one line on stderr and a non-zero exit, never a traceback (unless --debug).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Sequence

from ..errors import DirEngError
from . import fast, logs

log = logging.getLogger("direng")


_add_root = fast.add_root_arguments


def build_parser() -> argparse.ArgumentParser:
    from ..models import DEFAULT_SEARCH_MODE, SEARCH_MODES
    from . import (artifacts_cmd, ask_cmd, audit_cmd, commands, mcp_cmd, plms_cmd, policy_cmd, scan_cmd,
                   secrets_cmd, tasks_cmd, token_cmd)

    parser = argparse.ArgumentParser(prog="direng", description="DirEng Workbench: code index and assistant.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("index", help="build or refresh the code index of ROOT")
    p.add_argument("root", metavar="ROOT", help="directory to index (a git work tree or a plain folder)")
    p.add_argument("--store", default=None, help="index store directory (default: ROOT/.direng)")
    p.add_argument("--watch", action="store_true", help="keep refreshing on file changes and commits")
    p.add_argument("--dense", action="store_true",
                   help="also compute every MiniLM vector now (otherwise the watcher fills them in the background)")
    p.add_argument("--json", action="store_true", help="print the index report as JSON")
    p.set_defaults(run=commands.cmd_index)

    p = sub.add_parser("search", help="hybrid search over the index")
    fast.add_search_arguments(p, SEARCH_MODES, DEFAULT_SEARCH_MODE)
    p.set_defaults(run=commands.cmd_search)

    p = sub.add_parser("graph", help="neighbourhood, callers or callees of a symbol")
    p.add_argument("symbol", metavar="SYMBOL")
    _add_root(p)
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--callers", action="store_true")
    direction.add_argument("--callees", action="store_true")
    p.add_argument("--depth", type=int, default=1, help="hops to follow (default 1)")
    p.add_argument("--to", metavar="OTHER", help="shortest path from SYMBOL to OTHER instead")
    p.add_argument("--max-nodes", type=int, default=150)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=commands.cmd_graph)

    p = sub.add_parser("map", help="a ranked outline of the repository within a token budget")
    _add_root(p)
    p.add_argument("--tokens", type=int, default=1024)
    p.add_argument("--focus", action="append", default=[], help="file or symbol to centre on (repeatable)")
    p.set_defaults(run=commands.cmd_map)

    p = sub.add_parser("status", help="index freshness: files, symbols, chunks, indexed commit, lag")
    _add_root(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=commands.cmd_status)

    ask_cmd.add_parsers(sub, _add_root)
    policy_cmd.add_parser(sub)
    tasks_cmd.add_parsers(sub)
    plms_cmd.add_parser(sub)
    artifacts_cmd.add_parser(sub)
    token_cmd.add_parser(sub)
    secrets_cmd.add_parser(sub)
    audit_cmd.add_parser(sub)
    scan_cmd.add_parser(sub)
    mcp_cmd.add_parser(sub)
    return parser


def _json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    served = fast.serve(sys.argv[1:] if argv is None else argv)
    if served is not None:
        return served
    return _full(argv)


def console() -> None:
    """The `direng` executable: `main`, except that a search answered by the light path leaves
    at once. Tearing the interpreter down (freeing the tokenizer, the store's pages, a few
    hundred modules) cost that process ~30 ms, an eighth of its time, for nothing: its output
    is flushed, its store closed, and it started no thread of its own."""
    if sys.argv[1:2] == ["search"]:
        # A query's algebra is one matrix-vector product. The OpenBLAS worker threads numpy starts
        # when it loads cost the process more CPU (~60 ms) than the product itself.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    served = fast.serve(sys.argv[1:])
    if served is None:
        sys.exit(_full(None))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader left: nothing more to say to it
        pass
    logging.shutdown()
    os._exit(served)


def _full(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.debug, redact=args.command not in ("status",))  # status logs nothing worth redacting
    try:
        return args.run(args) or 0
    except DirEngError as err:
        print(f"direng: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("direng: interrupted (the index stays consistent; run again to finish)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 — the contract is one line, not a traceback
        if args.debug:
            raise
        print(f"direng: error: {type(err).__name__}: {err} (re-run with --debug for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    console()
