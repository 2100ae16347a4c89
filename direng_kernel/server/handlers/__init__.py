"""REST handlers, one module per resource; each module exports `ROUTES`.

Patterns are relative to the server's `base_url` (the ExtensionApp prefixes it), all under
`/direng/api/`.
"""

from __future__ import annotations

API_PREFIX = "/direng/api"


def routes() -> list[tuple]:
    """Every (pattern, handler) pair of the API, in registration order."""
    from . import chat, graph, health, index, jwks, plms, policy, proposals, search, symbols, tasks

    out: list[tuple] = []
    for module in (health, index, search, graph, chat, policy, symbols, tasks, plms, proposals, jwks):
        out.extend((API_PREFIX + pattern, handler) for pattern, handler in module.ROUTES)
    return out
