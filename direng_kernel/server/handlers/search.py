"""`GET /direng/api/search?q=&k=10&mode=hybrid`: ranked, citable hits over the index."""

from __future__ import annotations

from tornado import web

from ...models import DEFAULT_SEARCH_MODE, SEARCH_MODES
from .base import DirEngHandler


class SearchHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        query = self.str_arg("q", required=True)
        k = self.int_arg("k", 10, low=1, high=200)
        mode = self.choice_arg("mode", DEFAULT_SEARCH_MODE, SEARCH_MODES)
        hits = await self.run(self.engine.search, query, k=k, mode=mode)
        self.reply({"hits": hits})


ROUTES = [(r"/search", SearchHandler)]
