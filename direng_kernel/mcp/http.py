"""DirEng over MCP's Streamable HTTP transport, as an ASGI app a web server mounts.

`HttpMcp` wraps the SDK's `StreamableHTTPSessionManager` in its simplest mode:

* stateless — each POST is served by a fresh transport; no `Mcp-Session-Id`, nothing kept
  between requests, so every request is authenticated and scoped on its own and a token's
  scopes can never leak into another caller's session;
* JSON responses — each POST gets one `application/json` reply instead of an SSE stream
  (DirEng's tools return whole results, they do not stream).

The manager needs a task group that outlives requests (`manager.run()`); `HttpMcp` enters it
in a background task of the running event loop on the first request and leaves it in
`aclose()`. Who calls is not decided here: the mounting server authenticates the request and
puts a `tools.Caller` into the ASGI scope (`with_caller`), which `server.build_server` reads.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from .server import CALLER_STATE_KEY, build_server
from .tools import Caller

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def with_caller(scope: Scope, caller: Caller) -> Scope:
    """`scope` with the request's authenticated caller in its `state` (what Starlette's
    `Request.state` reads, so the SDK's handlers find it on `ctx.request`)."""
    return {**scope, "state": {**(scope.get("state") or {}), CALLER_STATE_KEY: caller}}


class HttpMcp:
    """The DirEng MCP server as one ASGI app: `await app(scope, receive, send)` per request."""

    def __init__(self, max_body_bytes: int = 4 * 1024 * 1024):
        self.max_body_bytes = max_body_bytes
        self._manager = None
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._lock = asyncio.Lock()

    async def _serve(self) -> None:
        """Hold the manager's task group open until `aclose()`."""
        try:
            async with self._manager.run():
                self._ready.set()
                await self._stopping.wait()
        except BaseException as exc:  # noqa: BLE001 — reported to the request that waits for it
            self._failure = exc
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("DirEng MCP: the HTTP session manager stopped")
            raise
        finally:
            self._ready.set()  # never leave a request waiting for a manager that is gone

    async def start(self) -> None:
        """Start the session manager on the running loop (idempotent)."""
        async with self._lock:
            if self._task is not None and not self._task.done():
                await self._ready.wait()
                return
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

            # security_settings=None: no DNS-rebinding checks here — the mounting server (Jupyter's
            # check_host / check_origin in DirEngHandler.prepare) has made them already.
            self._manager = StreamableHTTPSessionManager(
                app=build_server(default_caller=None), json_response=True, stateless=True,
                security_settings=None, max_request_body_size=self.max_body_bytes)
            self._ready, self._stopping, self._failure = asyncio.Event(), asyncio.Event(), None
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="direng-mcp-http")
            await self._ready.wait()
        if self._failure is not None:
            raise RuntimeError(f"the MCP session manager failed to start: {self._failure!r}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._task is None or self._task.done():
            await self.start()
        await self._manager.handle_request(scope, receive, send)

    async def aclose(self) -> None:
        """Stop the session manager (server shutdown); in-flight requests are cancelled."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (asyncio.CancelledError, asyncio.TimeoutError, Exception):  # noqa: BLE001 — shutting down
            task.cancel()
