"""The `direng` index commands: parse nothing, call the application API, print results.

Each command talks to the same `Client` API as the magics and the kernel, and prints JSON or a
rich table. The transport is the store's daemon when one runs (`direng index --watch` or a
Jupyter server: everything is loaded there), else a one-shot engine in this process, which
leaves MiniLM out of hybrid searches unless `--dense` (and says so on stderr).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..client import Client, connect
from ..errors import RootError
from ..records import jsonable
from . import fast, logs


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _at(n) -> str:
    """Where a graph node is: `path:line`, or `path:cell N:line` inside a notebook."""
    return f"{n.path}:" + (f"cell {n.cell}:" if n.cell is not None else "")


def _console():
    from rich.console import Console

    return Console()


def client_for(args, *, one_shot: bool = True, notices: list[str] | None = None) -> Client:
    """The API for the command's `--root` (and `--store`): the store's daemon when one serves it."""
    root = Path(args.root)
    if not root.exists():
        raise RootError(f"root {root} does not exist")
    if not root.is_dir():
        raise RootError(f"root {root} is a file, not a directory")
    return connect(root, store=args.store, one_shot=one_shot, notices=notices,
                   dense_queries=bool(getattr(args, "dense", False)))


def cmd_index(args) -> int:
    client = client_for(args, one_shot=not args.watch)
    progress = sys.stderr.isatty()
    report = client.index(progress=progress, dense=args.dense)
    if args.json:
        _print_json(report.model_dump(mode="json"))
    else:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items())) or "none"
        print(
            f"indexed {report.root}: {report.added} added, {report.modified} modified, {report.deleted} deleted, "
            f"{report.unchanged} unchanged in {report.seconds:.2f}s; skipped: {skipped}"
            + (f"; {report.syntax_errors} with syntax errors" if report.syntax_errors else "")
            + (f"; {report.lossy_decoded} with undecodable bytes" if report.lossy_decoded else ""),
            file=sys.stderr,
        )
    if args.watch:
        print("watching for changes (Ctrl-C to stop)", file=sys.stderr)
        _stop_on_sigterm()
        try:
            client.watch_forever()
        except KeyboardInterrupt:
            print("direng: stopped watching; the index is consistent", file=sys.stderr)
        # Every write is committed by now; skip interpreter teardown, where native threads of the
        # embedding and vector libraries can hang or abort the process on exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`) stops the watcher like Ctrl-C: its socket is removed."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def cmd_search(args) -> int:
    notices: list[str] = []
    hits = client_for(args, notices=notices).search(args.query, k=args.k, mode=args.mode)
    dumped = jsonable(hits)
    sys.stdout.write(fast.json_hits(dumped) if args.json else fast.hits_table(args.query, dumped))
    logs.print_notices(notices)
    return 0


def cmd_graph(args) -> int:
    client = client_for(args)
    if args.to:
        path = client.path(args.symbol, args.to)
        if args.json:
            _print_json([n.model_dump(mode="json") for n in path])
        else:
            print(" -> ".join(n.name for n in path) if path else "no path")
        return 0 if path else 1
    direction = "callers" if args.callers else "callees" if args.callees else "both"
    result = client.graph(args.symbol, direction=direction, depth=args.depth, max_nodes=args.max_nodes)
    if args.json:
        _print_json(result.model_dump(mode="json", exclude={"code"}))
        return 0
    nodes = {n.id: n for n in result.nodes}
    center = nodes[result.center]
    print(f"{center.name} ({center.kind}) {_at(center)}{center.start_line}-{center.end_line}")
    for e in result.edges:
        other, arrow = (e.target, "->") if e.source == result.center else (e.source, "<-")
        if result.center not in (e.source, e.target):
            other, arrow = f"{nodes[e.source].name} -> {nodes[e.target].name}", "  "
            print(f"  {arrow} [{e.kind}] {other}")
            continue
        n = nodes[other]
        where = f" {_at(n)}{n.start_line}" if n.path else ""
        flag = "" if e.resolved else " (unresolved)"
        print(f"  {arrow} [{e.kind}] {n.name}{where}{flag}")
    if result.truncated:
        print(f"  … capped at {len(result.nodes)} nodes")
    return 0


def cmd_map(args) -> int:
    print(client_for(args).repo_map(tokens=args.tokens, focus=args.focus))
    return 0


def cmd_status(args) -> int:
    st = client_for(args).status()
    if args.json:
        _print_json(st.model_dump(mode="json"))
        return 0
    print(f"root           {st.root}\nstore          {st.store}")
    print(f"files          {st.files}\nsymbols        {st.symbols}\nchunks         {st.chunks} "
          f"({st.dense_chunks} with MiniLM vectors)")
    print(f"indexed commit {st.indexed_commit or '-'}\nhead commit    {st.head_commit or '-'}")
    print(f"last refresh   {st.last_refresh or 'never'}")
    print(f"lag            {st.freshness()}")
    return 0
