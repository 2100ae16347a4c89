"""Server-sent events (the `text/event-stream` format of the HTML standard), both ways.

DirEng streams over SSE in three places: model providers stream their tokens to the broker
(OpenAI and Anthropic both speak it), the server streams chat answers and task events to its
clients, and `HttpClient` reads those streams. One writer and one reader serve all of them.

A stream is a sequence of events separated by a blank line; each event is `field: value`
lines (`event`, `data`, `id`, `retry`), where several `data` lines join with newlines and a
line starting with `:` is a comment (a keep-alive). `parse` follows the standard's rules, so a
value may itself contain anything but a newline; `format_event` writes JSON data on one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

MEDIA_TYPE = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class Event:
    event: str = "message"
    data: str = ""
    id: Optional[str] = None
    retry: Optional[int] = None

    def json(self) -> Any:
        """The data as JSON (ValueError when it is not)."""
        return json.loads(self.data)


def format_event(event: str, data: Any, id: Optional[int | str] = None, retry_ms: Optional[int] = None) -> bytes:
    """One event, its data as compact JSON (which never contains a raw newline)."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def parse(lines: Iterable[str | bytes]) -> Iterator[Event]:
    """Events from a stream's lines (with or without their line endings). An event without
    data is not dispatched (the standard's rule); the last `id` seen carries over."""
    event, data, last_id, retry = "", [], None, None
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield Event(event or "message", "\n".join(data), last_id, retry)
            event, data, retry = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    # An event not ended by a blank line when the stream ends is discarded (the standard's
    # rule): it may have been cut in the middle of a data line.
