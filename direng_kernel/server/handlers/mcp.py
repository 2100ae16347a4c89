"""`/direng/mcp`: DirEng's MCP server over Streamable HTTP, behind the REST API's tokens and scopes.

The endpoint lives beside the REST API (not under `/direng/api`) and is documented in
docs/mcp.md rather than docs/api.yaml: it is one JSON-RPC endpoint whose operations are MCP
methods, not REST resources.

Authentication is `DirEngHandler`'s, unchanged: a DirEng JWT (`Authorization: Bearer <jwt>`)
verified against this server's keys, or Jupyter's own login. Every method needs `index:read`
(without it: the REST API's 403 naming the missing scope, audited like any refusal). What the
caller may do inside MCP follows their scopes too: the tool list and each call are decided by
`direng_kernel.mcp` from the `Caller` built here (a JWT's scopes; Jupyter's login: every scope;
a JupyterHub user: its token's `custom:direng:*` scopes for this server, `server/hub.py`).

The MCP SDK's transport is an ASGI app and Jupyter's server is tornado, so this handler is a
small tornado→ASGI bridge: it builds the ASGI `http` scope from the tornado request (without
the `Authorization` and `Cookie` headers — the credentials stop here, the SDK never needs
them), feeds the (already bounded) body as one `http.request` message, relays the app's
`http.response.start` / `http.response.body` messages to tornado (flushing each chunk when the
app streams, `more_body`), and reports a client that went away as `http.disconnect`. The app
runs stateless with JSON responses (`direng_kernel.mcp.http`), so a POST gets one JSON reply.
A stateless server has no session: GET (a standalone event stream for server messages) and
DELETE (ending a session) are 405s with `Allow: POST`, as the MCP spec allows.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from tornado import web

from ...security.scopes import ALL_SCOPES
from .base import MAX_BODY_BYTES, ApiError, DirEngHandler

if TYPE_CHECKING:
    from ...mcp.http import HttpMcp
    from ...mcp.tools import Caller

log = logging.getLogger(__name__)

MCP_PATH = "/direng/mcp"
#: Request headers the ASGI app does not get: credentials are checked here and go no further.
_WITHHELD = {"authorization", "cookie"}
#: Response headers tornado computes itself (length, chunking, the connection).
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class McpHandler(DirEngHandler):
    """Bridge one HTTP request to the extension's `HttpMcp` ASGI app."""

    scopes = {"POST": "index:read", "GET": "index:read", "DELETE": "index:read"}

    _disconnected: asyncio.Event | None = None

    # -- the caller -------------------------------------------------------------
    def caller(self) -> "Caller":
        """The `Caller` MCP serves: this request's scopes, the server's engine and thread pool."""
        from ...mcp.tools import Caller

        claims = self.token_claims
        identity = {"channel": "http", "client": self.request.remote_ip or "unknown"}
        if claims is not None:
            scopes, subject = frozenset(claims.scopes), claims.subject
            identity.update(jti=claims.jti, kid=claims.kid)
        else:
            granted = self.hub_scopes()
            scopes = frozenset(ALL_SCOPES if granted is None else granted)
            subject = getattr(self.current_user, "username", None)
        executor = self.settings.get("direng_executor")

        async def run_blocking(fn):
            # Engine calls block: on the extension's pool, like every REST handler's (`run`).
            return await asyncio.get_running_loop().run_in_executor(executor, fn)

        return Caller(client=self.engine, scopes=scopes, run_blocking=run_blocking, subject=subject,
                      identity=identity)

    def app(self) -> "HttpMcp":
        """The extension's MCP app (503 once the server is shutting down)."""
        app = self.settings.get("direng_mcp")
        if app is None:
            raise ApiError(503, "the DirEng MCP endpoint is not running")
        return app

    # -- methods ----------------------------------------------------------------
    @web.authenticated
    async def post(self):
        await self._bridge()

    @web.authenticated
    async def get(self):
        # Stateless: there is no session whose server messages a standalone stream could carry, so
        # such a stream would stay open and empty forever. The spec's answer for that is 405.
        raise ApiError(405, "this MCP endpoint is stateless: POST JSON-RPC messages to it; it has no event stream",
                       headers={"Allow": "POST"})

    @web.authenticated
    async def delete(self):
        raise ApiError(405, "this MCP endpoint is stateless: there is no session to end", headers={"Allow": "POST"})

    def on_connection_close(self) -> None:
        if self._disconnected is not None:
            self._disconnected.set()
        super().on_connection_close()

    # -- the bridge ---------------------------------------------------------------
    def asgi_scope(self) -> dict[str, Any]:
        """The ASGI `http` connection scope of this tornado request."""
        req = self.request
        host, _, port = (req.host or "").rpartition(":")
        server = (host, int(port)) if host and port.isdigit() else None
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": (req.version or "HTTP/1.1").removeprefix("HTTP/"),
            "method": req.method,
            "scheme": req.protocol,
            "path": urllib.parse.unquote(req.path),
            "raw_path": req.path.encode("latin-1", "replace"),
            "query_string": (req.query or "").encode("latin-1", "replace"),
            "root_path": "",
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
                        for name, value in req.headers.get_all() if name.lower() not in _WITHHELD],
            "client": (req.remote_ip or "", 0),
            "server": server,
        }

    async def _bridge(self) -> None:
        from ...mcp.http import with_caller

        limit = self.settings.get("direng_max_body_bytes") or MAX_BODY_BYTES
        body = self.request.body or b""
        if len(body) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        app, caller = self.app(), self.caller()  # 503 when the engine or the endpoint is down
        self._disconnected = asyncio.Event()
        started = False
        body_given = False

        async def receive() -> dict[str, Any]:
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self._disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal started
            kind = message.get("type")
            if kind == "http.response.start":
                started = True
                self.set_status(int(message["status"]))
                self.clear_header("Content-Type")  # the app says what it sends, if anything
                streaming = False
                for raw_name, raw_value in message.get("headers") or ():
                    name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
                    if name.lower() in _HOP_BY_HOP:
                        continue
                    streaming = streaming or (name.lower() == "content-type" and "text/event-stream" in value)
                    (self.add_header if name.lower() == "set-cookie" else self.set_header)(name, value)
                if streaming:
                    await self.flush()  # an event stream: the client sees its status and headers now
            elif kind == "http.response.body" and not self._finished:
                chunk = message.get("body") or b""
                if chunk:
                    self.write(chunk)
                if message.get("more_body"):
                    await self.flush()  # the app streams (SSE): pass each chunk on as it comes

        try:
            await app(with_caller(self.asgi_scope(), caller), receive, send)
        except Exception as exc:  # noqa: BLE001 — one error reply (or a cut stream), never a hung request
            log.exception("DirEng MCP: the ASGI app failed")
            if not started:
                raise ApiError(500, f"internal error in the MCP endpoint: {type(exc).__name__}") from None
        finally:
            self._disconnected.set()  # a receive() still waiting returns, the app's tasks end
        if not started:
            raise ApiError(500, "the MCP endpoint sent no response")
        if not self._finished:
            self.finish()


ROUTES = [(MCP_PATH + "/?", McpHandler)]  # with or without the trailing slash clients add
