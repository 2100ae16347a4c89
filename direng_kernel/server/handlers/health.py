"""`GET /direng/api/health`: is the engine up, is the index there, is the policy valid.

Cheap and safe to poll: no index work. Besides `Engine.health()` it reports the package
version and the environment kernels inherit (`kernel_env`: the API URL and root, never the
token), so a client can check that kernels will find this server.
"""

from __future__ import annotations

import os

from tornado import web

from ..._version import __version__
from .base import DirEngHandler

KERNEL_ENV = ("DIRENG_SERVER_URL", "DIRENG_ROOT")


class HealthHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        data = await self.run(self.engine.health)
        data["version"] = __version__
        data["kernel_env"] = {name: os.environ.get(name) for name in KERNEL_ENV}
        data["kernel_env"]["DIRENG_TOKEN_SET"] = bool(os.environ.get("DIRENG_TOKEN"))
        self.reply(data)


ROUTES = [(r"/health", HealthHandler)]
