"""Server-sent event replies: what the chat stream and the task event stream share.

A stream answers 200 with `text/event-stream` at once, then writes events as they come and a
comment (`: keep-alive`) after `keepalive_s` of silence, so proxies and the browser keep the
connection. Nothing buffers the events (`X-Accel-Buffering: no` for nginx in front of a hub).
An error after the stream opened cannot change the status any more: it goes out as an `error`
event carrying the reply a plain request would have got (`{status, code, message, ...}`). A
client that went away ends the writing; the work behind it is not interrupted.

Streams are bounded in time (`stream_max_seconds`): a client resumes where it stopped (the
task stream's event ids), so a bound costs nothing and keeps idle connections from piling up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Optional

from tornado.iostream import StreamClosedError

from ... import sse
from ...errors import DirEngError
from .base import ApiError, DirEngHandler, http_code, to_api_error

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_STREAM_S = 300.0


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The JSON error reply `exc` would have had as a plain request (`DirEngHandler.write_error`)."""
    if isinstance(exc, DirEngError):
        exc = to_api_error(exc)
    if isinstance(exc, ApiError):
        return {"status": exc.status_code, "code": exc.code, "message": exc.message, **exc.extra}
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return {"status": 500, "code": http_code(500),
            "message": f"internal error: {type(exc).__name__}" + (f": {first}" if first else "")}


class EventStreamHandler(DirEngHandler):
    """A handler that may answer with an event stream (`open_stream`, `send`, `pump`)."""

    @property
    def keepalive_s(self) -> float:
        return float(self.settings.get("direng_stream_keepalive_s") or KEEPALIVE_S)

    @property
    def max_stream_s(self) -> float:
        return float(self.settings.get("direng_stream_max_s") or MAX_STREAM_S)

    def wants_stream(self) -> bool:
        return sse.MEDIA_TYPE in (self.request.headers.get("Accept") or "")

    async def open_stream(self) -> bool:
        self._stream_open = True
        self.set_status(200)
        self.set_header("Content-Type", sse.MEDIA_TYPE + "; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        return await self._flush()

    async def send(self, event: str, data: Any, id: Optional[int] = None, retry_ms: Optional[int] = None) -> bool:
        """Write one event; False once the client has gone."""
        if not self._stream_open:
            return False
        self.write(sse.format_event(event, data, id=id, retry_ms=retry_ms))
        return await self._flush()

    async def keepalive(self) -> bool:
        if not self._stream_open:
            return False
        self.write(sse.KEEPALIVE)
        return await self._flush()

    async def _flush(self) -> bool:
        try:
            await self.flush()
        except StreamClosedError:
            self._stream_open = False
        return self._stream_open

    _stream_open = False

    async def next_or_keepalive(self, waiter: Awaitable[Any]) -> tuple[bool, Any]:
        """Await `waiter`, writing keep-alives meanwhile: (True, its result), or (False, None)
        when the client went away first (the waiter is cancelled)."""
        future = asyncio.ensure_future(waiter)
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.keepalive_s)
            if done:
                return True, future.result()
            if not await self.keepalive():
                future.cancel()
                return False, None

    def on_connection_close(self) -> None:
        self._stream_open = False
        super().on_connection_close()

    def deadline(self) -> float:
        """When this stream should end (the client then resumes with a new request)."""
        return time.monotonic() + self.max_stream_s
