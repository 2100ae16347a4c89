"""DirEng conversation: `POST /direng/api/chat`, `POST …/chat/reset`, `GET …/chat/history`.

Sessions are names (default `"default"`); memory is per session, held by the server's
engine, so every notebook and kernel sharing a session name shares the conversation.

With `"stream": true` the answer comes as server-sent events (`models.CHAT_EVENTS`): a
generative provider's text as it is written (`delta`, `replace`, `reset`, and `tool` when the
model calls one), then the final `answer` — the same `Answer` a plain request returns — or an
`error` with the reply a plain request would have had. Bad requests are refused before the
stream opens, as plain JSON errors.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError
from tornado import web

from ...models import NotebookContext
from ...records import jsonable
from .base import ApiError, DirEngHandler
from .stream import EventStreamHandler, error_payload

log = logging.getLogger(__name__)


def _session(value) -> str:
    if value is None:
        return "default"
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "'session' must be a non-empty string")
    return value


class ChatHandler(EventStreamHandler):
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
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, "'stream' must be true or false")
        session = _session(body.get("session"))
        if stream:
            await self._stream(message, session, context)
        else:
            self.reply(await self.run(self.engine.chat, message, session=session, context=context))

    async def _stream(self, message: str, session: str, context: NotebookContext | None) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def on_event(kind: str, payload: dict) -> None:  # on a worker thread
            loop.call_soon_threadsafe(queue.put_nowait, (kind, payload))

        job = asyncio.ensure_future(self.run(self.engine.chat, message, session=session, context=context,
                                             on_event=on_event))
        # The engine's calls to on_event were scheduled before its result, so None comes last.
        job.add_done_callback(lambda _: queue.put_nowait(None))
        await self.open_stream()
        while True:
            alive, item = await self.next_or_keepalive(queue.get())
            if not alive or item is None or not await self.send(*item):
                break
        try:
            answer = await job  # the answer is remembered in the session even when the client left
        except Exception as exc:  # noqa: BLE001 — the status is sent already: the error is an event
            if not isinstance(exc, ApiError):
                log.exception("DirEng: streamed chat failed")
            await self.send("error", error_payload(exc))
        else:
            await self.send("answer", jsonable(answer))
        if self._stream_open:
            self.finish()


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
