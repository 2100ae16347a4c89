"""OpenAI-compatible chat completions: OpenAI itself, Ollama, vLLM, llama.cpp server, LM Studio.

Wire format: `POST {base_url}/chat/completions` with `model`, `messages`, `max_tokens`,
`temperature` and, when tools are offered, `tools: [{"type": "function", "function": {name,
description, parameters}}]`. An assistant turn that called tools carries `tool_calls` (arguments
as a JSON *string*); each tool result is a `{"role": "tool", "tool_call_id", "content"}` message.
The reply's `choices[0].message` gives content and tool calls, `usage` the token counts.

Streamed (`"stream": true`, with `stream_options.include_usage` so the last chunk carries the
token counts): `data:` chunks whose `choices[0].delta` holds a piece of content or pieces of tool
calls (keyed by `index`; the id and name come first, the JSON arguments in fragments), ended by
`data: [DONE]`. The chunks are assembled into the reply a plain call would get.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Optional

from ...models import ChatMessage, ProviderRequest, ProviderResponse, ToolCall, ToolSpec, Usage
from .base import HTTPProvider, OnDelta, ProviderError

log = logging.getLogger("direng.broker.providers.openai")


def to_openai_messages(messages: list[ChatMessage]) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def to_openai_tools(tools: list[ToolSpec]) -> list[dict]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def _arguments(raw: Any) -> dict:
    """Tool arguments arrive as a JSON string (OpenAI) or an object (some compatible servers)."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        log.warning("tool call arguments are not valid JSON; passing them on as _raw")
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}


class OpenAIProvider(HTTPProvider):
    """A model behind any OpenAI-compatible `/chat/completions` endpoint."""

    default_base_url = "https://api.openai.com/v1"

    def build_body(self, request: ProviderRequest) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(request.messages),
                                "max_tokens": request.max_output_tokens, "temperature": request.temperature}
        if request.tools:
            body["tools"] = to_openai_tools(request.tools)
            body["tool_choice"] = "auto"
        return body

    def complete(self, request: ProviderRequest, on_delta: Optional[OnDelta] = None) -> ProviderResponse:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        if on_delta is None:
            data, latency_ms = self._post(url, headers, self.build_body(request))
            return self._response(request, data, latency_ms)
        body = {**self.build_body(request), "stream": True, "stream_options": {"include_usage": True}}
        t0 = time.perf_counter()
        content: list[str] = []
        calls: dict[int, dict] = {}
        finish, usage = None, None
        for event in self._post_stream(url, headers, body):
            if event.event == "json":  # the server did not stream
                data = self._stream_json(url, event)
                response = self._response(request, data, round((time.perf_counter() - t0) * 1000, 2))
                if response.content:
                    on_delta(response.content)
                return response
            if event.data.strip() == "[DONE]":
                finish = finish or "stop"
                break
            chunk = self._stream_json(url, event)
            if chunk.get("error"):
                err = chunk["error"]
                raise ProviderError(f"{self.name}: stream error from {url}: "
                                    f"{err.get('message', err) if isinstance(err, dict) else err}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if text := delta.get("content"):
                    content.append(text)
                    on_delta(text)
                for part in delta.get("tool_calls") or []:
                    slot = calls.setdefault(int(part.get("index", len(calls))), {"id": None, "name": "", "args": ""})
                    slot["id"] = part.get("id") or slot["id"]
                    fn = part.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    args = fn.get("arguments")
                    slot["args"] = args if isinstance(args, dict) else slot["args"] + (args or "")
                finish = choice.get("finish_reason") or finish
        if finish is None:  # no [DONE] and no finish reason: the connection broke mid-answer
            raise ProviderError(f"{self.name}: the stream from {url} ended before the answer did", retryable=True)
        message = {"content": "".join(content), "tool_calls": [
            {"id": c["id"], "function": {"name": c["name"], "arguments": c["args"]}} for _, c in sorted(calls.items())]}
        data = {"choices": [{"message": message, "finish_reason": finish}], "usage": usage or {}}
        return self._response(request, data, round((time.perf_counter() - t0) * 1000, 2))

    def _response(self, request: ProviderRequest, data: dict, latency_ms: float) -> ProviderResponse:
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError):
            raise ProviderError(f"{self.name}: malformed chat-completions reply (no choices)") from None
        calls = []
        for i, c in enumerate(message.get("tool_calls") or []):
            fn = c.get("function") or {}
            calls.append(ToolCall(id=c.get("id") or f"call_{i}", name=fn.get("name", ""),
                                  arguments=_arguments(fn.get("arguments"))))
        content = message.get("content") or ""
        usage = data.get("usage") or {}
        if "prompt_tokens" in usage:
            tin, tout = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        else:  # some servers omit usage: estimate, so budgets still count something
            tin = math.ceil(sum(len(m.content) for m in request.messages) / 4)
            tout = math.ceil(len(content) / 4)
        return ProviderResponse(
            content=content, tool_calls=calls,
            finish_reason=choice.get("finish_reason") or ("tool_calls" if calls else "stop"),
            usage=Usage(provider=self.name, model=self.model, input_tokens=tin, output_tokens=tout,
                        cost=self.cost(tin, tout), latency_ms=latency_ms))
