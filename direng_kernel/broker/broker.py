"""The model broker: one `complete()` that routes a request through its lane's policy.

Idea: a lane's chain is its primary route followed by its fallbacks. For each route, in order:
1. data rules — an external provider is refused when the lane may see secrets/PII, forbids
   external providers, or the content is flagged (`block` stops the request, `redact` skips the
   route and tells the caller to redact);
2. budgets — the call's worst case (input ≈ chars/4 + max_output_tokens, priced with the
   route's prices) is reserved against the lane's per-task and per-day budgets *before* the
   call; a route that would exceed them is skipped;
3. the call — retryable failures (429, 5xx, connection refused) are retried up to the lane's
   `retries` (honouring Retry-After), anything else (timeouts, 4xx, bad replies) moves on.
Every call is recorded in the ledger (JSONL usage log + in-memory totals). When no route
serves the request, `BrokerError` lists every route tried and why it failed.

Streaming (`on_delta`): the serving provider's text pieces go to `on_delta` as they arrive. An
attempt that fails after streaming some text is followed by `on_reset()` before the next
attempt or fallback starts, so the caller drops the partial text instead of showing two
answers run together.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional

from ..errors import DirEngError
from ..models import ProviderRequest, ProviderResponse
from .budget import Ledger, Reservation, UsageRecord, estimate_tokens, utc_day
from .policy import Policy, ProviderConfig, ResolvedLane, Route
from .providers.base import OnDelta, Provider, ProviderError

log = logging.getLogger("direng.broker")

SENSITIVE_FLAGS = frozenset({"secret", "pii"})
MAX_RETRY_WAIT_S = 30.0


class Attempt(NamedTuple):
    route: str  # "provider/model"
    reason: str


class BrokerError(DirEngError):
    """No route could serve a request (or a data rule blocked it); `attempts` says why, per route."""

    def __init__(self, message: str, attempts: Iterable[Attempt] = (), *, needs_redaction: bool = False):
        super().__init__(message)
        self.attempts = list(attempts)
        self.needs_redaction = needs_redaction


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Stream:
    """The caller's callbacks for one request, knowing whether any text went out yet."""

    def __init__(self, on_delta: Optional[OnDelta], on_reset: Optional[Callable[[], None]]):
        self.on_delta, self.on_reset, self.started = on_delta, on_reset, False

    def delta(self, text: str) -> None:
        if text:
            self.started = True
            self.on_delta(text)

    def restart(self) -> None:
        """Before an attempt: a previous attempt's partial text is void."""
        if self.started:
            self.started = False
            if self.on_reset is not None:
                self.on_reset()

    def call(self, provider: Provider, request: ProviderRequest) -> ProviderResponse:
        self.restart()
        # Providers that cannot stream (test doubles, plugins) keep the one-argument form.
        return provider.complete(request, on_delta=self.delta) if self.on_delta else provider.complete(request)


class Broker:
    """Routes `ProviderRequest`s by lane with fallbacks, retries, budgets and data rules."""

    def __init__(self, policy: Policy, local_factory: Optional[Callable[[], Provider]] = None,
                 usage_log: Optional[Path] = None, *, backoff_s: float = 0.5,
                 clock: Callable[[], datetime] = _utcnow, budget_factor: float = 1.0):
        """`budget_factor` multiplies every budget (a task whose budget the user raised)."""
        self.policy = policy
        self.local_factory = local_factory
        self.ledger = Ledger(usage_log)
        self.backoff_s = backoff_s
        self.clock = clock
        self.policy_hash = policy.hash
        self.budget_factor = budget_factor
        self._providers: dict[tuple, Provider] = {}
        self._lock = threading.Lock()

    # -- public API ------------------------------------------------------------------------
    def complete(self, request: ProviderRequest, *, task_id: Optional[str] = None,
                 content_flags: Iterable[str] = frozenset(), on_delta: Optional[OnDelta] = None,
                 on_reset: Optional[Callable[[], None]] = None) -> ProviderResponse:
        """Serve `request` from the first route of its lane that is allowed, affordable and up
        (streaming its text to `on_delta` when given, see the module docstring)."""
        lane = self.policy.resolve(request.lane)
        if lane is None:
            raise BrokerError(f"lane {request.lane!r} is not configured in the model policy "
                              f"(configured: {', '.join(self.policy.lanes) or 'none'})")
        flags = {str(f).lower() for f in content_flags}
        stream = _Stream(on_delta, on_reset)
        attempts: list[Attempt] = []
        for route in lane.chain:
            cfg = self.policy.providers.get(route.provider)
            if cfg is None:
                attempts.append(Attempt(route.label, "provider is not defined in the policy"))
                continue
            refusal = self._data_refusal(lane, route, cfg, flags, attempts)
            if refusal is None:
                response, refusal = self._try_route(lane, route, cfg, request, task_id, stream)
                if response is not None:
                    if attempts:
                        log.info("lane %s served by fallback %s after: %s", lane.name, route.label,
                                 "; ".join(f"{a.route}: {a.reason}" for a in attempts))
                    return response
            log.info("lane %s: route %s skipped: %s", lane.name, route.label, refusal)
            attempts.append(Attempt(route.label, refusal))
        redact = any(a.reason.startswith("content flagged") for a in attempts)
        tried = "; ".join(f"{a.route}: {a.reason}" for a in attempts)
        raise BrokerError(f"lane {lane.name!r}: no route could serve the request ({len(attempts)} tried) - {tried}",
                          attempts, needs_redaction=redact)

    def usage_summary(self) -> list[dict]:
        """Totals per lane/provider/model from the ledger (the whole usage log, this process included)."""
        return self.ledger.summary()

    def close(self) -> None:
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            close = getattr(p, "close", None)
            if callable(close):
                close()

    # -- steps -----------------------------------------------------------------------------
    def _data_refusal(self, lane: ResolvedLane, route: Route, cfg: ProviderConfig, flags: set[str],
                      attempts: list[Attempt]) -> Optional[str]:
        """Why the data rules refuse this route (None = allowed); raises for `block`."""
        if not cfg.external:
            return None
        rules = lane.data
        sensitive = [n for n in ("may_see_secrets", "may_see_pii") if getattr(rules, n)]
        if sensitive:
            return f"external provider refused: the lane {' and '.join(sensitive)}"
        if not rules.external_allowed:
            return "external provider refused: data.external_allowed is false for this lane"
        # Unknown flags are treated as sensitive too: a flag is only ever raised for a reason.
        flagged = sorted(flags)
        if not flagged:
            return None
        rule = f"lanes.{lane.name}.data.on_flagged = {rules.on_flagged}"
        what = ", ".join(flagged)
        if rules.on_flagged == "block":
            raise BrokerError(f"lane {lane.name!r}: content flagged {what} may not go to external provider "
                              f"{route.provider!r}; blocked by rule {rule} (nothing was sent)",
                              [*attempts, Attempt(route.label, f"blocked by {rule}")])
        return (f"content flagged {what} must be redacted before it may go to external provider "
                f"{route.provider!r} (rule {rule})")

    def _try_route(self, lane: ResolvedLane, route: Route, cfg: ProviderConfig, request: ProviderRequest,
                   task_id: Optional[str], stream: _Stream) -> tuple[Optional[ProviderResponse], str]:
        """(response, "") on success, else (None, why this route failed)."""
        est_in, est_out = estimate_tokens(request)
        est_money = cfg.prices.cost(est_in, est_out)
        reason = ""
        for attempt in range(lane.retries + 1):
            day = utc_day(self.clock())
            held = self.ledger.reserve(lane.name, task_id, day, self._budgets(lane), est_in + est_out, est_money)
            if isinstance(held, str):
                after = f" (after {attempt} failed attempt{'s' if attempt > 1 else ''})" if attempt else ""
                return None, held + after
            try:
                provider = self._provider(route, cfg, lane.timeout_s)
            except ProviderError as exc:
                self.ledger.release(held)
                return None, str(exc)
            t0 = time.perf_counter()
            try:
                response = stream.call(provider, request)
            except ProviderError as exc:
                self._record_failure(lane, route, task_id, day, held, t0, exc, request.contract_version)
                reason = str(exc)
                if exc.retryable and attempt < lane.retries:
                    wait = exc.retry_after if exc.retry_after is not None else self.backoff_s * 2 ** attempt
                    wait = min(wait, MAX_RETRY_WAIT_S, lane.timeout_s)
                    log.info("%s: retryable failure (%s); retry %d/%d in %.2fs", route.label, exc,
                             attempt + 1, lane.retries, wait)
                    if wait > 0:
                        time.sleep(wait)
                    continue
                tries = attempt + 1
                return None, reason + (f" (after {tries} attempts)" if tries > 1 else "")
            except Exception as exc:  # noqa: BLE001 — a broken provider is one more reason to fall back
                log.debug("provider %s raised", route.label, exc_info=True)
                self._record_failure(lane, route, task_id, day, held, t0, exc, request.contract_version)
                return None, f"{type(exc).__name__}: {exc}"
            self._record_success(lane, route, cfg, task_id, day, held, t0, response, request.contract_version)
            return response, ""
        return None, reason  # pragma: no cover - the loop always returns

    def _budgets(self, lane: ResolvedLane):
        if self.budget_factor == 1.0:
            return lane.budgets
        f = self.budget_factor
        scaled = {k: (None if v is None else (int(v * f) if k.startswith("tokens") else v * f))
                  for k, v in lane.budgets.model_dump().items()}
        return type(lane.budgets).model_validate(scaled)

    def _provider(self, route: Route, cfg: ProviderConfig, timeout_s: float) -> Provider:
        """Build (once) the provider for a route; keys are read from the environment now."""
        key = (route.provider,) if cfg.type == "local" else (route.provider, route.model, timeout_s)
        with self._lock:
            if key in self._providers:
                return self._providers[key]
        if cfg.type == "local":
            if self.local_factory is None:
                raise ProviderError("no local provider is available in this process")
            provider: Provider = self.local_factory()
        else:
            api_key = None
            if cfg.api_key_env:
                api_key = os.environ.get(cfg.api_key_env)
                if not api_key:
                    raise ProviderError(f"environment variable {cfg.api_key_env} (api_key_env of provider "
                                        f"{route.provider!r}) is not set")
            if cfg.type == "openai":
                from .providers.openai import OpenAIProvider as cls
            else:
                from .providers.anthropic import AnthropicProvider as cls
            provider = cls(route.provider, route.model, base_url=cfg.base_url, api_key=api_key,
                           prices=cfg.prices, timeout_s=timeout_s)
        with self._lock:
            return self._providers.setdefault(key, provider)

    # -- accounting ------------------------------------------------------------------------
    def _record(self, held: Reservation, **fields) -> None:
        rec = UsageRecord(ts=self.clock().isoformat(), policy_hash=self.policy_hash, **fields)
        self.ledger.record(rec, held)

    def _record_failure(self, lane: ResolvedLane, route: Route, task_id: Optional[str], day: str,
                        held: Reservation, t0: float, exc: BaseException, contract: Optional[str]) -> None:
        self._record(held, day=day, lane=lane.name, task_id=task_id, provider=route.provider, model=route.model,
                     contract_version=contract,
                     latency_ms=round((time.perf_counter() - t0) * 1000, 2), ok=False, error=str(exc)[:500])

    def _record_success(self, lane: ResolvedLane, route: Route, cfg: ProviderConfig, task_id: Optional[str],
                        day: str, held: Reservation, t0: float, response: ProviderResponse,
                        contract: Optional[str]) -> None:
        usage = response.usage
        # Usage names the policy's provider id and model, so accounting matches the policy.
        usage.provider, usage.model = route.provider, route.model
        if not usage.cost and (cfg.prices.input_per_1k or cfg.prices.output_per_1k):
            usage.cost = round(cfg.prices.cost(usage.input_tokens, usage.output_tokens), 10)
        if not usage.latency_ms:
            usage.latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        self._record(held, day=day, lane=lane.name, task_id=task_id, provider=route.provider, model=route.model,
                     contract_version=contract, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                     cost=usage.cost,
                     latency_ms=usage.latency_ms)
