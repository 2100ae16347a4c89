"""A FAKE model server for the broker tests — not a model, and not a mock of httpx.

`FakeModelServer` listens on a free 127.0.0.1 port (http.server in a thread) and speaks two
wire protocols over real sockets: OpenAI chat completions (`POST .../chat/completions`) and
Anthropic messages (`POST .../v1/messages`). It is scripted: queue `FakeReply`s (text, tool
calls, token counts, an HTTP error status such as 500/429, or a delay past the client's
timeout); with nothing queued it answers "ok". Every request it receives is recorded (path,
headers, JSON body), so tests can assert what a provider did — or never did — receive.

A request with `"stream": true` is answered in the protocol's streaming form (server-sent
events: OpenAI chunks ending in `[DONE]`, Anthropic's message/content-block events), the text in
pieces of `piece_chars` with `piece_delay_s` between them; `cut_after` closes the connection
after that many pieces (a stream broken mid-answer), `no_stream` answers plain JSON anyway.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from contextlib import contextmanager
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
    piece_chars: int = 4
    piece_delay_s: float = 0.0
    cut_after: Optional[int] = None
    no_stream: bool = False

    def pieces(self) -> list[str]:
        return [self.content[i:i + self.piece_chars] for i in range(0, len(self.content), self.piece_chars)]


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


def _openai_events(reply: FakeReply, model: str) -> list[Optional[dict]]:
    """The chunks of a streamed chat completion; None marks where each text piece ends."""
    def chunk(delta: dict, finish: Optional[str] = None) -> dict:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    out: list[Optional[dict]] = [chunk({"role": "assistant", "content": ""})]
    for piece in reply.pieces():
        out += [chunk({"content": piece}), None]
    for i, c in enumerate(reply.tool_calls):
        args = json.dumps(c.get("arguments", {}))
        half = len(args) // 2
        out.append(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                          "function": {"name": c["name"], "arguments": args[:half]}}]}))
        out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    out.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    out.append({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, "choices": [],
                "usage": {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens}})
    return out


def _anthropic_events(reply: FakeReply, model: str) -> list[Optional[dict]]:
    out: list[Optional[dict]] = [
        {"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                                              "content": [], "usage": {"input_tokens": reply.input_tokens,
                                                                       "output_tokens": 1}}},
        {"type": "ping"}]
    index = 0
    if reply.content:
        out.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        for piece in reply.pieces():
            out += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}, None]
        out.append({"type": "content_block_stop", "index": 0})
        index = 1
    for i, c in enumerate(reply.tool_calls, start=index):
        args = json.dumps(c.get("arguments", {}))
        out.append({"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": c["id"], "name": c["name"], "input": {}}})
        for part in (args[:len(args) // 2], args[len(args) // 2:]):
            out.append({"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": part}})
        out.append({"type": "content_block_stop", "index": i})
    out.append({"type": "message_delta", "delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn"},
                "usage": {"output_tokens": reply.output_tokens}})
    out.append({"type": "message_stop"})
    return out


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
        if isinstance(body, dict) and body.get("stream") and not reply.no_stream:
            return self._stream(reply, _anthropic_events(reply, model) if anthropic else _openai_events(reply, model),
                                anthropic)
        out = _anthropic_body(reply, model) if anthropic else _openai_body(reply, model)
        self._send(200, out, reply.headers)

    def _stream(self, reply: FakeReply, events: list[Optional[dict]], anthropic: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()  # no content-length: the stream ends when the connection closes
        self.close_connection = True
        pieces = 0
        for ev in events:
            if ev is None:  # the end of a text piece
                pieces += 1
                self.wfile.flush()
                if reply.cut_after is not None and pieces >= reply.cut_after:
                    return  # the connection closes mid-answer
                if reply.piece_delay_s:
                    self.server.fake._stop.wait(reply.piece_delay_s)
                continue
            name = f"event: {ev['type']}\n" if anthropic else ""
            self.wfile.write(f"{name}data: {json.dumps(ev)}\n\n".encode())
        if not anthropic:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

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


@contextmanager
def route_chat_to(server, fake: FakeModelServer, key_env: str = "FAKE_OPENAI_KEY"):
    """A running DirEng server's `chat` lane routed to `fake` over the OpenAI protocol (local as
    the fallback) through `POST /policy`, and the original policy restored afterwards. The
    server's environment must hold `key_env`."""
    def call(method: str, body=None) -> dict:
        status, data = server.request(method, "policy", body=body)
        assert status == 200, (method, status, data)
        return data

    original = call("GET")["policy"]
    changed = json.loads(json.dumps(original))
    changed["providers"]["fake-openai"] = {"type": "openai", "base_url": fake.url, "api_key_env": key_env,
                                           "external": True, "prices": {"input_per_1k": 1.0, "output_per_1k": 2.0}}
    changed["lanes"]["chat"] = {"primary": {"provider": "fake-openai", "model": "fake-model"},
                                "fallbacks": [{"provider": "local", "model": "retrieval"}], "retries": 0}
    assert call("POST", {"policy": changed, "apply": True}) == {"valid": True, "issues": [], "applied": True}
    try:
        yield
    finally:
        assert call("POST", {"policy": original, "apply": True})["applied"] is True
