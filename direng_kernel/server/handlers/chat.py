"""DirEng conversation: `POST /direng/api/chat`, `POST …/chat/reset`, `GET …/chat/history`.

Sessions are names (default `"default"`); memory is per session, held by the server's
engine, so every notebook and kernel sharing a session name shares the conversation.
"""

from __future__ import annotations

from pydantic import ValidationError
from tornado import web

from ...models import NotebookContext
from .base import ApiError, DirEngHandler


def _session(value) -> str:
    if value is None:
        return "default"
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "'session' must be a non-empty string")
    return value


class ChatHandler(DirEngHandler):
    scopes = {"POST": "index:read"}  # asking questions reads the index

    @web.authenticated
    async def post(self):
        body = self.json_body()
        message = body.get("message")
        if not isinstance(message, str):
            raise ApiError(400, "body must have a string 'message'")
        context = body.get("context")
        if context is not None:
            try:
                context = NotebookContext.model_validate(context)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first.get("loc", ()))) or "context"
                raise ApiError(400, f"'context' is not a notebook context: {where}: {first.get('msg')}") from None
        answer = await self.run(self.engine.chat, message, session=_session(body.get("session")), context=context)
        self.reply(answer)


class ChatResetHandler(DirEngHandler):
    scopes = {"POST": "index:read"}

    @web.authenticated
    async def post(self):
        session = _session(self.json_body().get("session"))
        await self.run(self.engine.reset, session)
        self.reply({"ok": True})


class ChatHistoryHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        session = _session(self.get_query_argument("session", None) or None)
        self.reply({"messages": await self.run(self.engine.history, session)})


ROUTES = [
    (r"/chat", ChatHandler),
    (r"/chat/reset", ChatResetHandler),
    (r"/chat/history", ChatHistoryHandler),
]
