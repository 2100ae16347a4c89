"""DirEng as a Model Context Protocol server (the official `mcp` SDK): a surface like the CLI.

    tools.py   the tools, defined once: typed arguments and results, scopes, calls into `Client`
    server.py  `build_server`: the tools as the SDK's low-level `Server`, scoped per caller
    stdio.py   `direng mcp`: the stdio transport (the user's own process, all their scopes)
    http.py    `HttpMcp`: the Streamable HTTP transport (stateless, JSON replies) as an ASGI app,
               which the server extension mounts at `/direng/mcp` behind DirEng's tokens

Importing this package loads no SDK module; each transport imports it when it starts.
See docs/mcp.md.
"""

from __future__ import annotations

from .tools import TOOLS, Caller, ToolDef, visible_tools

__all__ = ["TOOLS", "Caller", "ToolDef", "visible_tools"]
