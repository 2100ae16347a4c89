"""`GET /direng/api/index/status` and `POST /direng/api/index/refresh`.

Status is the index's freshness against git HEAD (`IndexStatus`); refresh runs one
incremental pass now (`IndexReport`) — the refresh daemon normally makes this unnecessary.
"""

from __future__ import annotations

from tornado import web

from .base import ApiError, DirEngHandler


class IndexStatusHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        self.reply(await self.run(self.engine.status))


class IndexRefreshHandler(DirEngHandler):
    scopes = {"POST": "index:write"}

    @web.authenticated
    async def post(self):
        dense = self.json_body().get("dense", False)
        if not isinstance(dense, bool):
            raise ApiError(400, "'dense' must be true or false")
        report = await self.run(self.engine.index, dense=dense)
        ext = self.extension
        if ext is not None and hasattr(ext, "index_ready"):
            ext.index_ready()  # a deferred refresh daemon may start now
        self.reply(report)


ROUTES = [
    (r"/index/status", IndexStatusHandler),
    (r"/index/refresh", IndexRefreshHandler),
]
