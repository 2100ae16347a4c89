"""Symbol help for editors: `GET …/symbols/complete?prefix=` and `GET …/symbols/inspect?symbol=`.

Completion backs Tab in the DirEng kernel and magics (qualified names by prefix); inspect
backs Shift+Tab (signature, docstring, location, callers). Unknown symbols are 404s with
suggestions, like the graph endpoint.
"""

from __future__ import annotations

from tornado import web

from .base import DirEngHandler


class CompleteHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        prefix = self.get_query_argument("prefix", "")
        limit = self.int_arg("limit", 30, low=1, high=500)
        self.reply({"matches": await self.run(self.engine.complete, prefix, limit)})


class InspectHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        symbol = self.str_arg("symbol", required=True).strip()
        self.reply(await self.run(self.engine.inspect, symbol))


ROUTES = [
    (r"/symbols/complete", CompleteHandler),
    (r"/symbols/inspect", InspectHandler),
]
