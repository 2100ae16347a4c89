"""A FAKE model server for the broker tests — not a model, and not a mock of httpx.

`FakeModelServer` listens on a free 127.0.0.1 port (http.server in a thread) and speaks two
wire protocols over real sockets: OpenAI chat completions (`POST .../chat/completions`) and
Anthropic messages (`POST .../v1/messages`). It is scripted: queue `FakeReply`s (text, tool
calls, token counts, an HTTP error status such as 500/429, or a delay past the client's
timeout); with nothing queued it answers "ok". Every request it receives is recorded (path,
headers, JSON body), so tests can assert what a provider did — or never did — receive.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


@dataclass
class FakeReply:
    """One scripted answer, rendered in whichever protocol the request used."""

    content: str = "ok"
    tool_calls: list[dict] = field(default_factory=list)  # {"id", "name", "arguments": dict}
    input_tokens: int = 10
    output_tokens: int = 5
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any


def _openai_body(reply: FakeReply, model: str) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
                                 for c in reply.tool_calls]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                      "total_tokens": reply.input_tokens + reply.output_tokens}}


def _anthropic_body(reply: FakeReply, model: str) -> dict:
    content: list[dict] = [{"type": "text", "text": reply.content}] if reply.content else []
    content += [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": c.get("arguments", {})}
                for c in reply.tool_calls]
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        fake._record(RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = fake._next()
        if reply.delay_s:
            fake._stop.wait(reply.delay_s)
        anthropic = self.path.endswith("/v1/messages")
        if not anthropic and not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
        if reply.status >= 400:
            err = ({"type": "error", "error": {"type": "api_error", "message": f"fake failure {reply.status}"}}
                   if anthropic else {"error": {"message": f"fake failure {reply.status}", "type": "server_error"}})
            return self._send(reply.status, err, reply.headers)
        model = body.get("model", "") if isinstance(body, dict) else ""
        out = _anthropic_body(reply, model) if anthropic else _openai_body(reply, model)
        self._send(200, out, reply.headers)

    def _send(self, status: int, obj: dict, headers: dict[str, str]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: "FakeModelServer"

    def handle_error(self, request, client_address) -> None:  # a client that timed out and left
        pass


class FakeModelServer:
    """The FAKE OpenAI-/Anthropic-protocol server; use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queue: deque[FakeReply] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "FakeModelServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeModelServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------
    def reply(self, *replies: FakeReply) -> "FakeModelServer":
        with self._lock:
            self._queue.extend(replies)
        return self

    def fail(self, status: int, times: int = 1, retry_after: Optional[float] = None) -> "FakeModelServer":
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        return self.reply(*[FakeReply(status=status, headers=headers) for _ in range(times)])

    def stall(self, delay_s: float, times: int = 1) -> "FakeModelServer":
        return self.reply(*[FakeReply(delay_s=delay_s) for _ in range(times)])

    def _next(self) -> FakeReply:
        with self._lock:
            return self._queue.popleft() if self._queue else FakeReply()

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)
