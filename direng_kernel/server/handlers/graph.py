"""`GET /direng/api/graph/{symbol}`: a symbol's call/import neighbourhood.

The symbol is one percent-encoded path segment or several (`shop%2Fpayment.py%3A%3Acharge_card`
or `shop/payment.py::charge_card`); tornado decodes path arguments once, so it arrives here
as written. With `code=1` the reply also maps node ids to source excerpts (for the graph
widget's click-to-see-code).
"""

from __future__ import annotations

from tornado import web

from .base import ApiError, DirEngHandler

DIRECTIONS = ("both", "callers", "callees")


class GraphHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self, symbol: str):
        symbol = (symbol or "").strip()
        if not symbol:
            raise ApiError(400, "missing symbol")
        direction = self.choice_arg("direction", "both", DIRECTIONS)
        depth = self.int_arg("depth", 1, low=0, high=10)
        max_nodes = self.int_arg("max_nodes", 150, low=1, high=5000)
        with_code = self.bool_arg("code", False)
        engine = self.engine
        result = await self.run(engine.graph, symbol, direction=direction, depth=depth, max_nodes=max_nodes)
        data = result.model_dump(mode="json")
        if with_code:
            data["code"] = await self.run(engine.code, [n.id for n in result.nodes])
        self.reply(data)


ROUTES = [(r"/graph/(.+)", GraphHandler)]
