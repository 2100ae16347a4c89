"""Anthropic Messages API.

Wire format: `POST {base_url}/v1/messages` with headers `x-api-key` and
`anthropic-version: 2023-06-01`; the system prompt is a top-level `system` field, not a
message; tools are `{name, description, input_schema}`. Messages strictly alternate user /
assistant with content blocks: an assistant turn that called tools carries `tool_use` blocks,
and tool results go back in the next *user* turn as `tool_result` blocks (consecutive results
are merged into one turn). The reply's `content` blocks give text and `tool_use`, `usage` gives
`input_tokens` / `output_tokens`; `stop_reason` is mapped to OpenAI-style finish reasons.
"""

from __future__ import annotations

import logging
from typing import Any

from ...models import ChatMessage, ProviderRequest, ProviderResponse, ToolCall, ToolSpec, Usage
from .base import HTTPProvider, ProviderError

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

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        if not self.api_key:
            raise ProviderError(f"{self.name}: no API key (set the environment variable named by api_key_env)")
        headers = {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION}
        url = self.base_url + ("/messages" if self.base_url.endswith("/v1") else "/v1/messages")
        data, latency_ms = self._post(url, headers, self.build_body(request))
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
