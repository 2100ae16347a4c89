"""Anthropic Messages API.

Wire format: `POST {base_url}/v1/messages` with headers `x-api-key` and
`anthropic-version: 2023-06-01`; the system prompt is a top-level `system` field, not a
message; tools are `{name, description, input_schema}`. Messages strictly alternate user /
assistant with content blocks: an assistant turn that called tools carries `tool_use` blocks,
and tool results go back in the next *user* turn as `tool_result` blocks (consecutive results
are merged into one turn). The reply's `content` blocks give text and `tool_use`, `usage` gives
`input_tokens` / `output_tokens`; `stop_reason` is mapped to OpenAI-style finish reasons.

Streamed (`"stream": true`): `message_start` (the message with its input token count),
`content_block_start` / `content_block_delta` (`text_delta` pieces, `input_json_delta` fragments
of a tool call's input) / `content_block_stop`, `message_delta` (stop reason, output tokens),
`message_stop`; `ping` is a keep-alive and `error` ends the stream. The events are assembled into
the message a plain call returns.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator, Optional

from ... import sse
from ...models import ChatMessage, ProviderRequest, ProviderResponse, ToolCall, ToolSpec, Usage
from .base import HTTPProvider, OnDelta, ProviderError

log = logging.getLogger("direng.broker.providers.anthropic")

ANTHROPIC_VERSION = "2023-06-01"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def to_anthropic_messages(messages: list[ChatMessage]) -> tuple[str, list[dict]]:
    """(system prompt, alternating messages of content blocks)."""
    system: list[str] = []
    out: list[dict] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
            continue
        if m.role == "tool":
            role = "user"
            blocks: list[dict] = [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}]
        elif m.role == "assistant":
            role = "assistant"
            blocks = ([{"type": "text", "text": m.content}] if m.content else []) + [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
        else:
            role = "user"
            blocks = [{"type": "text", "text": m.content}] if m.content else []
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return "\n\n".join(system), out


def to_anthropic_tools(tools: list[ToolSpec]) -> list[dict]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


class AnthropicProvider(HTTPProvider):
    """A Claude model through the Messages API."""

    default_base_url = "https://api.anthropic.com"

    def build_body(self, request: ProviderRequest) -> dict:
        system, messages = to_anthropic_messages(request.messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_output_tokens,
                                "temperature": request.temperature, "messages": messages}
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = to_anthropic_tools(request.tools)
        return body

    def complete(self, request: ProviderRequest, on_delta: Optional[OnDelta] = None) -> ProviderResponse:
        if not self.api_key:
            raise ProviderError(f"{self.name}: no API key (set the environment variable named by api_key_env)")
        headers = {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION}
        url = self.base_url + ("/messages" if self.base_url.endswith("/v1") else "/v1/messages")
        if on_delta is None:
            data, latency_ms = self._post(url, headers, self.build_body(request))
            return self._response(data, latency_ms)
        t0 = time.perf_counter()
        data = self._assemble(url, self._post_stream(url, headers, {**self.build_body(request), "stream": True}),
                              on_delta)
        return self._response(data, round((time.perf_counter() - t0) * 1000, 2))

    def _assemble(self, url: str, events: Iterator[sse.Event], on_delta: OnDelta) -> dict:
        """The message a stream of events describes, calling `on_delta` with its text."""
        message: dict[str, Any] = {"content": [], "usage": {}}
        partial: dict[int, str] = {}  # block index → the tool input's JSON so far
        for event in events:
            if event.event == "json":  # the server did not stream
                data = self._stream_json(url, event)
                text = "\n".join(b.get("text", "") for b in data.get("content") or [] if isinstance(b, dict)
                                 and b.get("type") == "text")
                if text:
                    on_delta(text)
                return data
            if event.event == "ping":
                continue
            data = self._stream_json(url, event)
            kind = data.get("type", event.event)
            if kind == "error":
                err = data.get("error") or {}
                raise ProviderError(f"{self.name}: stream error from {url}: {err.get('message', err)}",
                                    retryable=err.get("type") in ("overloaded_error", "api_error"))
            if kind == "message_start":
                start = data.get("message") or {}
                message = {**start, "content": list(start.get("content") or []), "usage": dict(start.get("usage") or {})}
            elif kind == "content_block_start":
                block = dict(data.get("content_block") or {})
                if block.get("type") == "text" and any(b.get("type") == "text" for b in message["content"]):
                    on_delta("\n")  # text blocks join with a newline, as in a plain reply
                message["content"].append(block)
            elif kind == "content_block_delta" and message["content"]:
                index = min(int(data.get("index", len(message["content"]) - 1)), len(message["content"]) - 1)
                block, delta = message["content"][index], data.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    block["text"] = block.get("text", "") + delta["text"]
                    on_delta(delta["text"])
                elif delta.get("type") == "input_json_delta":
                    partial[index] = partial.get(index, "") + (delta.get("partial_json") or "")
            elif kind == "content_block_stop":
                index = int(data.get("index", -1))
                if index in partial and 0 <= index < len(message["content"]):
                    try:
                        message["content"][index]["input"] = json.loads(partial.pop(index) or "{}")
                    except ValueError:
                        raise ProviderError(f"{self.name}: {url} streamed a tool input that is not JSON") from None
            elif kind == "message_delta":
                message["stop_reason"] = (data.get("delta") or {}).get("stop_reason") or message.get("stop_reason")
                message["usage"].update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            elif kind == "message_stop":
                return message
        if message.get("stop_reason"):
            return message
        raise ProviderError(f"{self.name}: the stream from {url} ended before the answer did", retryable=True)

    def _response(self, data: dict, latency_ms: float) -> ProviderResponse:
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise ProviderError(f"{self.name}: malformed messages reply (no content blocks)")
        texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        calls = [ToolCall(id=b.get("id", ""), name=b.get("name", ""),
                          arguments=b.get("input") if isinstance(b.get("input"), dict) else {})
                 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        usage = data.get("usage") or {}
        tin, tout = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        stop = data.get("stop_reason") or "end_turn"
        return ProviderResponse(
            content="\n".join(t for t in texts if t), tool_calls=calls, finish_reason=_FINISH.get(stop, stop),
            usage=Usage(provider=self.name, model=self.model, input_tokens=tin, output_tokens=tout,
                        cost=self.cost(tin, tout), latency_ms=latency_ms))
