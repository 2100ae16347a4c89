"""`GET /direng/api/.well-known/jwks.json`: the public keys that verify DirEng tokens (RFC 7517).

Public by design (no authentication, no DirEng token handling, also when the server sets
`allow_unauthenticated_access=False`): anyone may check a token's signature, nobody can mint
one from these. Lists the active key and the retired keys whose tokens may still be valid
after a rotation (`direng keys rotate`). The first call on a fresh keys directory generates
the key pair.
"""

from __future__ import annotations

import asyncio
import functools

from ...errors import DirEngError
from ...security.keys import jwks
from .base import ApiError, DirEngHandler

try:
    from jupyter_server.auth.decorator import allow_unauthenticated
except ImportError:  # jupyter_server < 2.13 has no such rule to opt out of
    def allow_unauthenticated(method):
        return method


class JwksHandler(DirEngHandler):
    public = True
    _track_activity = False  # polling the JWKS is not user activity

    @allow_unauthenticated
    async def get(self):
        loop = asyncio.get_running_loop()
        try:  # off the event loop: the first call may generate an RSA key
            doc = await loop.run_in_executor(None, functools.partial(jwks, self.settings.get("direng_keys_dir")))
        except DirEngError as exc:
            raise ApiError(503, str(exc)) from None
        self.set_header("Cache-Control", "public, max-age=300")
        self.reply(doc)


ROUTES = [(r"/.well-known/jwks.json", JwksHandler)]
