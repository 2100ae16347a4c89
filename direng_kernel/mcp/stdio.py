"""DirEng over MCP's stdio transport: what `direng mcp` runs (one client process, one user).

stdout is the protocol wire, so nothing else may write to it. The SDK's `stdio_server` claims
file descriptors 0 and 1 when it is entered: it serves the wire from private duplicates and
points fd 1 at stderr, so a stray `print` — ours or a library's, Python or C — lands on stderr
instead of corrupting the stream. That is why the engine is built *inside* it (engines import
chromadb, torch, ... which may talk on start-up), and why this module only logs.

The caller is the user who started the process: every DirEng scope, unless `scopes` restricts
them (then the tools needing a missing scope are not listed and calls to them are refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..client import Client
from ..security.scopes import ALL_SCOPES
from .tools import Caller

log = logging.getLogger(__name__)


async def serve_stdio(make_client: Callable[[], Client], scopes: Iterable[str] = ALL_SCOPES,
                      watch: bool = False) -> None:
    """Serve the DirEng tools on stdin/stdout until the client closes stdin.

    `make_client` builds the application API (`client.connect`), on a worker thread once the
    wire is claimed; `watch` also runs the engine's refresh daemon (in-process engines only: a
    server keeps its own index fresh)."""
    import anyio.to_thread
    from mcp.server.stdio import stdio_server

    from .server import build_server

    async with stdio_server() as (read_stream, write_stream):
        client = await anyio.to_thread.run_sync(make_client)
        try:
            if watch and hasattr(client, "watch"):
                await anyio.to_thread.run_sync(client.watch)
            caller = Caller(client=client, scopes=frozenset(scopes), identity={"channel": "stdio"})
            log.info("DirEng MCP on stdio: %s (%s), scopes %s", getattr(client, "root", None), client.transport,
                     " ".join(sorted(caller.scopes)) or "(none)")
            server = build_server(caller)
            await server.run(read_stream, write_stream, server.create_initialization_options())
        finally:
            stop = getattr(client, "stop", None)  # the in-process engine's daemon and workers, if any
            if callable(stop):
                await anyio.to_thread.run_sync(stop)


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one, else `exc` itself."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def run_stdio(make_client: Callable[[], Client], scopes: Iterable[str] = ALL_SCOPES, watch: bool = False) -> None:
    """Blocking `serve_stdio` (the CLI's entry point)."""
    import anyio

    try:
        anyio.run(lambda: serve_stdio(make_client, scopes, watch))
    except BaseException as exc:  # noqa: BLE001 — re-raised, unwrapped
        # The transport's task groups wrap what failed (a bad store, ...) in exception groups; the
        # CLI's contract is one line naming the error itself.
        inner = _sole(exc)
        if inner is exc:
            raise
        raise inner from None
