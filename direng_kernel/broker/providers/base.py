"""The provider contract and the HTTP plumbing the remote providers share.

Idea: a provider is bound to one model and one timeout and turns a `ProviderRequest` into a
`ProviderResponse` with its `Usage` (tokens, cost from the policy's prices, latency). Failures
are `ProviderError`s that say whether trying the same route again could help (`retryable`:
429, 5xx, connection refused); the broker decides between retrying and falling back.
httpx is imported only when an HTTP provider is built.

Streaming: `complete(request, on_delta)` with a callback asks the server for an event stream
(`_post_stream`) and calls `on_delta(text)` with each piece of answer text as it arrives; the
pieces are also assembled into the same `ProviderResponse` a plain call returns, so the broker
and its accounting cannot tell the two apart. A server that ignores the request to stream and
answers with plain JSON is accepted (its answer arrives as one piece).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterator, Optional, Protocol, runtime_checkable

from ... import sse
from ...errors import DirEngError
from ...models import ProviderRequest, ProviderResponse
from ..policy import Prices

log = logging.getLogger("direng.broker.providers")

#: Called with each piece of answer text a provider streams (see the module docstring).
OnDelta = Callable[[str], None]

# 408 timeout, 409/425 conflicts, 429 rate limit, 5xx server trouble, 529 Anthropic "overloaded".
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


class ProviderError(DirEngError):
    """A provider call failed; `retryable` says whether the same route may succeed on a retry."""

    def __init__(self, message: str, *, retryable: bool = False, status: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


@runtime_checkable
class Provider(Protocol):
    """Anything that can answer a chat request: the local engine, an HTTP API, a test double."""

    name: str

    def complete(self, request: ProviderRequest, on_delta: Optional[OnDelta] = None) -> ProviderResponse: ...


def _error_detail(response: Any) -> str:
    """The server's own error message (OpenAI and Anthropic both nest it under `error.message`)."""
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
    except ValueError:
        pass
    return (response.text or "").strip().replace("\n", " ")[:300] or response.reason_phrase


def _retry_after(response: Any) -> Optional[float]:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: let the broker's backoff decide


class HTTPProvider:
    """Shared by the OpenAI-compatible and Anthropic providers: client, errors, cost."""

    default_base_url = ""

    def __init__(self, name: str, model: str, *, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 prices: Optional[Prices] = None, timeout_s: float = 60.0):
        import httpx

        self.name = name
        self.model = model
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.api_key = api_key
        self.prices = prices or Prices()
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=timeout_s)

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def _post(self, url: str, headers: dict[str, str], body: dict) -> tuple[dict, float]:
        """POST JSON; returns (parsed body, latency ms) or raises ProviderError."""
        t0 = time.perf_counter()
        with self._transport_errors(url):
            response = self._client.post(url, headers=headers, json=body)
        latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        self._check_status(url, response)
        return self._json(url, response), latency_ms

    def _post_stream(self, url: str, headers: dict[str, str], body: dict) -> Iterator[sse.Event]:
        """POST JSON asking for an event stream and yield its events, or raise ProviderError.
        A plain JSON answer instead of a stream is yielded as one event named `json`."""
        with self._transport_errors(url), self._client.stream("POST", url, headers=headers, json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._check_status(url, response)
            if sse.MEDIA_TYPE not in response.headers.get("content-type", ""):
                response.read()
                yield sse.Event("json", response.text)
                return
            yield from sse.parse(response.iter_lines())

    @contextlib.contextmanager
    def _transport_errors(self, url: str) -> Iterator[None]:
        """Turn httpx's transport failures into ProviderErrors."""
        import httpx

        try:
            yield
        except httpx.TimeoutException:
            # A slow model is likely to be slow again: fall back rather than retry.
            raise ProviderError(f"{self.name}: no answer within {self.timeout_s:g}s from {url}") from None
        except httpx.TransportError as exc:  # refused, reset, or a stream cut in the middle
            raise ProviderError(f"{self.name}: cannot reach {url}: {exc}", retryable=True) from None

    def _check_status(self, url: str, response: Any) -> None:
        if response.status_code >= 400:
            status = response.status_code
            raise ProviderError(f"{self.name}: HTTP {status} from {url}: {_error_detail(response)}",
                                retryable=status in RETRYABLE_STATUS, status=status,
                                retry_after=_retry_after(response))

    def _json(self, url: str, response: Any) -> dict:
        return self._object(url, response.json, "did not return JSON", "returned JSON that is not an object")

    def _stream_json(self, url: str, event: sse.Event) -> dict:
        """The JSON object one streamed event carries."""
        return self._object(url, event.json, "streamed an event that is not JSON",
                            "streamed JSON that is not an object")

    def _object(self, url: str, parse: Callable[[], Any], not_json: str, not_object: str) -> dict:
        """What `parse()` gives, when it is a JSON object; else a ProviderError naming `url`."""
        try:
            data = parse()
        except ValueError:
            raise ProviderError(f"{self.name}: {url} {not_json}") from None
        if not isinstance(data, dict):
            raise ProviderError(f"{self.name}: {url} {not_object}")
        return data

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return round(self.prices.cost(input_tokens, output_tokens), 10)
