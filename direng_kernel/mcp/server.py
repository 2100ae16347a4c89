"""`build_server`: the DirEng tool table (`tools.TOOLS`) as an MCP server of the official SDK.

One low-level `mcp.server.Server` serves every transport. It is the SDK's low-level server
rather than `MCPServer` (FastMCP) because what a caller may see depends on *who* calls: the tool
list and each call are decided per request from the caller's scopes, which FastMCP's static
registry cannot express (and a call to a tool one may not use must say which scope is missing,
not "unknown tool").

Who calls is a `tools.Caller`. Over stdio there is one, fixed when the process starts
(`default_caller`). Over HTTP the server extension puts one into each request's ASGI scope
(`scope["state"][CALLER_STATE_KEY]`, after `DirEngHandler` verified the token); the SDK hands
handlers that request as `ctx.request`, so the caller travels with the request itself and never
through shared state. A request without one is refused: fail closed.
"""

from __future__ import annotations

import logging
from typing import Any

from .._version import __version__
from ..security import audit
from .tools import MISSING_SCOPE_CODE, TOOLS_BY_NAME, Caller, ToolDef, call_tool, visible_tools

log = logging.getLogger(__name__)

#: Where the HTTP transport puts the request's `Caller` in the ASGI scope's `state`.
CALLER_STATE_KEY = "direng_mcp_caller"

SERVER_NAME = "direng"
INSTRUCTIONS = (
    "DirEng knows this repository through its code index. Use `search` to find where something is "
    "done (each hit has a `citation` path:start-end), `read_range` to read the cited lines, `graph` "
    "for callers/callees of a symbol, `repo_map` for an outline and `status` for index freshness. "
    "With the tasks:write scope, `task_new`/`task_estimate`/`task_approve`/`task_status` delegate work "
    "to DirEng's lanes."
)


def caller_of(ctx: Any, default: Caller | None) -> Caller | None:
    """The request's caller: the one its HTTP request carries, else the transport's default."""
    request = getattr(ctx, "request", None)
    if request is not None:
        state = (getattr(request, "scope", None) or {}).get("state") or {}
        found = state.get(CALLER_STATE_KEY)
        return found if isinstance(found, Caller) else None  # an HTTP request never falls back
    return default


#: Refusals are audited at most once per (caller, tool, scope) a minute, as the REST API's are.
_REFUSALS = audit.RateLimit()


def audit_refusal(caller: Caller, tool: str, scope: str) -> None:
    """Write a tool call refused for a missing scope to the audit log (`auth.denied`, as a REST 403
    is). The refusal stands whether or not the record could be written."""
    try:
        audit.record_limited(_REFUSALS, (caller.subject, dict(caller.identity).get("jti"), tool, scope),
                             "auth.denied", actor=caller.subject, reason="missing_scope", scope=scope,
                             tool=tool, transport="mcp", **caller.identity)
    except Exception as err:  # noqa: BLE001 — never let the log decide a refusal
        log.warning("DirEng MCP: cannot audit the refusal of %s: %s", tool, err)


def tool_spec(tool: ToolDef):
    """The MCP `Tool` listing of a tool definition."""
    import mcp_types as types

    return types.Tool(
        name=tool.name, title=tool.title, description=tool.description,
        input_schema=tool.input_schema, output_schema=tool.output_schema,
        annotations=types.ToolAnnotations(title=tool.title, read_only_hint=tool.read_only,
                                          destructive_hint=False, idempotent_hint=tool.read_only,
                                          open_world_hint=False),
    )


def build_server(default_caller: Caller | None = None):
    """An `mcp.server.Server` serving the DirEng tools to `default_caller` (stdio) or to the caller
    each HTTP request carries (`default_caller=None`)."""
    import mcp_types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    def resolve(ctx) -> Caller:
        caller = caller_of(ctx, default_caller)
        if caller is None:
            # Only reachable when a transport forgot to authenticate: never serve anonymously.
            raise MCPError(code=types.INVALID_REQUEST, message="no authenticated DirEng caller for this request")
        return caller

    async def on_list_tools(ctx, params) -> types.ListToolsResult:
        caller = resolve(ctx)
        return types.ListToolsResult(tools=[tool_spec(t) for t in visible_tools(caller.scopes)])

    async def on_call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        caller = resolve(ctx)
        tool = TOOLS_BY_NAME.get(params.name)
        if tool is None:  # the spec's answer to an unknown tool is a protocol error, not a tool result
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name!r}; tools: "
                           + ", ".join(t.name for t in visible_tools(caller.scopes)))
        outcome = await call_tool(tool, caller, params.arguments)
        if outcome.is_error:
            log.info("DirEng MCP: %s refused or failed for %s: %s", tool.name, caller.subject or "the user",
                     outcome.data.get("code"))
            if outcome.data.get("code") == MISSING_SCOPE_CODE:
                await caller.run_blocking(lambda: audit_refusal(caller, tool.name, outcome.data["missing_scope"]))
            return types.CallToolResult(content=[types.TextContent(text=outcome.text())], is_error=True)
        # Structured for clients that read `structuredContent`, the same JSON as text for the others.
        return types.CallToolResult(content=[types.TextContent(text=outcome.text())],
                                    structured_content=outcome.data)

    def input_schema(name: str) -> dict | None:
        tool = TOOLS_BY_NAME.get(name)
        return None if tool is None else tool.input_schema

    return Server(SERVER_NAME, version=__version__, title="DirEng Workbench", instructions=INSTRUCTIONS,
                  get_tool_input_schema=input_schema, on_list_tools=on_list_tools, on_call_tool=on_call_tool)
