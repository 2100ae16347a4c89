"""`GET /direng/api/graph/{symbol}`: a symbol's call/import neighbourhood.

The symbol is one percent-encoded path segment or several (`shop%2Fpayment.py%3A%3Acharge_card`
or `shop/payment.py::charge_card`); tornado decodes path arguments once, so it arrives here
as written. With `code=1` the reply also maps node ids to source excerpts (for the graph
widget's click-to-see-code).
"""

from __future__ import annotations

from tornado import web

from ...models import DEFAULT_GRAPH_DIRECTION, GRAPH_DIRECTIONS
from .base import ApiError, DirEngHandler


class GraphHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self, symbol: str):
        symbol = (symbol or "").strip()
        if not symbol:
            raise ApiError(400, "missing symbol")
        direction = self.choice_arg("direction", DEFAULT_GRAPH_DIRECTION, GRAPH_DIRECTIONS)
        depth = self.int_arg("depth", 1, low=0, high=10)
        max_nodes = self.int_arg("max_nodes", 150, low=1, high=5000)
        with_code = self.bool_arg("code", False)
        result = await self.run(self.engine.graph, symbol, direction=direction, depth=depth, max_nodes=max_nodes,
                                code=with_code)
        self.reply(result.model_dump(mode="json", exclude=None if with_code else {"code"}))


class PathHandler(DirEngHandler):
    """`GET /direng/api/path?from=A&to=B`: the shortest call/import path between two symbols."""

    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        source, target = self.str_arg("from", required=True), self.str_arg("to", required=True)
        self.reply({"nodes": await self.run(self.engine.path, source, target)})


class MapHandler(DirEngHandler):
    """`GET /direng/api/map?tokens=N&focus=X…`: a ranked outline of the repository within a token budget."""

    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        tokens = self.int_arg("tokens", 1024, low=16, high=1_000_000)
        focus = [f for f in self.get_query_arguments("focus") if f.strip()]
        self.reply({"map": await self.run(self.engine.repo_map, tokens, focus)})


ROUTES = [(r"/graph/(.+)", GraphHandler), (r"/path", PathHandler), (r"/map", MapHandler)]
