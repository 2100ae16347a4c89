"""Streaming: the SSE reader and writer, providers streaming over real sockets (the FAKE model
server of tests/fake_providers.py speaks both wire protocols), the broker voiding a partial
answer before it retries or falls back, and the redaction of a stream as it grows."""

from __future__ import annotations

import json

import pytest

from direng_kernel import sse
from direng_kernel.broker.broker import Broker
from direng_kernel.broker.policy import Policy, validate_policy
from direng_kernel.broker.providers.anthropic import AnthropicProvider
from direng_kernel.broker.providers.base import ProviderError
from direng_kernel.broker.providers.openai import OpenAIProvider
from direng_kernel.direng.stream import RedactedStream
from direng_kernel.models import ChatMessage, ProviderRequest, ToolSpec
from direng_kernel.security.scrub import scrub
from fake_providers import FakeModelServer, FakeReply

ANSWER = "Cards are charged in `charge_card` (shop/payment.py:10-14), after the basket is priced."
TOOL = {"id": "call_1", "name": "search", "arguments": {"query": "charge card", "k": 5}}


def request(**kw) -> ProviderRequest:
    return ProviderRequest(lane="chat", messages=[ChatMessage(role="user", content="how are cards charged?")],
                           tools=[ToolSpec(name="search", description="search the index",
                                           parameters={"type": "object", "properties": {}})], **kw)


@pytest.fixture()
def fake():
    with FakeModelServer() as server:
        yield server


# -- the format -------------------------------------------------------------------------------------

def test_sse_round_trip_and_the_standards_parsing_rules():
    stream = (sse.format_event("delta", {"text": "a\nb"}, id=1) + b": keep-alive\n\n"
              + sse.format_event("answer", {"ok": True}, id=2, retry_ms=500)).decode()
    events = list(sse.parse(stream.splitlines(keepends=True)))
    assert [(e.event, e.json(), e.id) for e in events] == [("delta", {"text": "a\nb"}, "1"), ("answer", {"ok": True}, "2")]
    assert events[1].retry == 500
    # several data lines join with newlines; the id carries over; no `event` means "message";
    # an event cut before its blank line is discarded
    raw = ["id: 7", "data: one", "data:two", "", "data: three", "", "event: cut", "data: half"]
    assert [(e.event, e.data, e.id) for e in sse.parse(raw)] == [("message", "one\ntwo", "7"), ("message", "three", "7")]


# -- providers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
def test_a_provider_streams_text_and_assembles_the_same_response(fake, cls):
    provider = cls("fake", "m", base_url=fake.url, api_key="k")
    fake.reply(FakeReply(content=ANSWER, input_tokens=40, output_tokens=12),
               FakeReply(content=ANSWER, input_tokens=40, output_tokens=12))
    pieces: list[str] = []
    streamed = provider.complete(request(), on_delta=pieces.append)
    plain = provider.complete(request())
    assert len(pieces) > 5 and "".join(pieces) == ANSWER
    assert (streamed.content, streamed.finish_reason) == (plain.content, plain.finish_reason) == (ANSWER, "stop")
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (40, 12)
    assert fake.requests[0].body["stream"] is True and "stream" not in fake.requests[1].body


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
def test_streamed_tool_calls_are_assembled_from_their_fragments(fake, cls):
    provider = cls("fake", "m", base_url=fake.url, api_key="k")
    fake.reply(FakeReply(content="Let me look.", tool_calls=[TOOL]))
    response = provider.complete(request(), on_delta=lambda _: None)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [("call_1", "search", TOOL["arguments"])]
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
def test_a_stream_cut_mid_answer_is_a_retryable_error_and_plain_json_is_accepted(fake, cls):
    provider = cls("fake", "m", base_url=fake.url, api_key="k")
    fake.reply(FakeReply(content=ANSWER, cut_after=3), FakeReply(content=ANSWER, no_stream=True))
    with pytest.raises(ProviderError, match="ended before the answer did") as err:
        provider.complete(request(), on_delta=lambda _: None)
    assert err.value.retryable
    pieces: list[str] = []
    assert provider.complete(request(), on_delta=pieces.append).content == ANSWER
    assert pieces == [ANSWER]  # a server that does not stream: one piece


def test_the_broker_voids_a_partial_answer_before_it_tries_again(fake, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "k")
    data = {"version": 1, "providers": {
        "remote": {"type": "openai", "base_url": fake.url, "api_key_env": "FAKE_OPENAI_KEY", "external": True}},
        "lanes": {"chat": {"primary": {"provider": "remote", "model": "m"}, "retries": 1}}}
    assert validate_policy(data) == []
    broker = Broker(Policy.model_validate(data), usage_log=None, backoff_s=0)
    fake.reply(FakeReply(content="A first try that breaks off", cut_after=2), FakeReply(content=ANSWER))
    shown: list[str] = []
    resets = []

    def on_reset():
        resets.append(len(shown))
        shown.clear()

    response = broker.complete(request(), on_delta=shown.append, on_reset=on_reset)
    assert resets == [2] and "".join(shown) == response.content == ANSWER
    assert len(fake.requests) == 2


# -- redaction as the text grows ----------------------------------------------------------------------

SECRET = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111 1111 1111 1111"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
       "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----")


def _shown(events: list[tuple[str, dict]]) -> str:
    text = ""
    for kind, payload in events:
        text = text + payload["text"] if kind == "delta" else payload["text"] if kind == "replace" else \
            "" if kind == "reset" else text
    return text


@pytest.mark.parametrize("step", [1, 3, 7, 40])
def test_a_streamed_answer_never_shows_a_secret_and_ends_as_the_scrubbed_whole(step):
    text = (f"The deploy script reads the key {SECRET} from the environment, and the checkout test "
            f"pays with {CARD} on the sandbox account. The old key was\n{PEM}\nand is revoked now. "
            + "More words follow so that the stream keeps going for a while. " * 4)
    events: list[tuple[str, dict]] = []
    stream = RedactedStream(lambda kind, payload: events.append((kind, payload)))
    for i in range(0, len(text), step):
        stream.delta(text[i:i + step])
    stream.finish()
    sent = json.dumps(events)
    assert SECRET not in sent and CARD not in sent and "1111 1111" not in sent and "MIIEow" not in sent
    assert _shown(events) == scrub(text)
    assert sum(kind == "delta" for kind, _ in events) >= 5  # it streamed, not one block at the end


def test_reset_voids_what_was_shown():
    events: list[tuple[str, dict]] = []
    stream = RedactedStream(lambda kind, payload: events.append((kind, payload)), hold=4, batch=4)
    stream.delta("words before a tool call " * 3)
    stream.reset()
    stream.delta("the answer")
    stream.finish()
    assert ("reset", {}) in events and _shown(events) == "the answer"
