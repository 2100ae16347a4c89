"""Budgets: estimate a call before it is made, and keep the ledger that budgets are checked against.

Idea: every provider call (successful or not) is one `UsageRecord`, appended as a JSON line to
the usage log and added to in-memory totals per (lane, UTC day) and per (lane, task). On start
the totals are rebuilt from the log, so per-day budgets survive restarts. Before a call the
broker *reserves* the call's worst-case estimate (input ≈ chars/4, plus max_output_tokens);
a reservation that would push a total past a budget is refused, so a provider never receives
a request that could exceed the lane's budget — even with concurrent callers.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional


from ..models import ProviderRequest, Usage
from .policy import Budgets

log = logging.getLogger("direng.broker.budget")


def estimate_input_tokens(request: ProviderRequest) -> int:
    """≈ chars/4 over everything sent: message texts, tool-call arguments, tool specs."""
    chars = 0
    for m in request.messages:
        chars += len(m.content)
        for call in m.tool_calls:
            chars += len(call.name) + len(json.dumps(call.arguments))
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    return math.ceil(chars / 4)


def estimate_tokens(request: ProviderRequest) -> tuple[int, int]:
    """(input estimate, output ceiling): the worst case a call can cost."""
    return estimate_input_tokens(request), request.max_output_tokens


class UsageRecord(Usage):
    """One line of the usage log: a call's `Usage` and where it belongs."""

    ts: str  # ISO-8601 UTC
    day: str  # YYYY-MM-DD (UTC): the per-day budget bucket
    lane: str
    task_id: Optional[str] = None
    ok: bool = True
    error: Optional[str] = None
    policy_hash: Optional[str] = None
    contract_version: Optional[str] = None  # the agent contract the request was made under

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Totals:
    tokens: int = 0
    money: float = 0.0

    def add(self, tokens: int, money: float, sign: int = 1) -> None:
        self.tokens += sign * tokens
        self.money += sign * money


@dataclass(frozen=True)
class Reservation:
    lane: str
    task_id: Optional[str]
    day: str
    tokens: int
    money: float


class Ledger:
    """Append-only usage log plus in-memory totals (per lane/day, per lane/task, per lane/provider/model)."""

    def __init__(self, log_path: Optional[Path] = None):
        self.log_path = Path(log_path) if log_path is not None else None
        self._lock = threading.Lock()
        self._day: dict[tuple[str, str], Totals] = {}
        self._task: dict[tuple[str, str], Totals] = {}
        self._pending_day: dict[tuple[str, str], Totals] = {}
        self._pending_task: dict[tuple[str, str], Totals] = {}
        self._summary: dict[tuple[str, str, str], dict] = {}
        self._reload()

    def _reload(self) -> None:
        if self.log_path is None or not self.log_path.exists():
            return
        bad = 0
        with self.log_path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    self._add(UsageRecord.model_validate_json(line))
                except ValueError:
                    bad += 1
        if bad:
            log.warning("usage log %s: skipped %d unreadable line(s)", self.log_path, bad)

    def _add(self, rec: UsageRecord) -> None:
        self._day.setdefault((rec.lane, rec.day), Totals()).add(rec.tokens, rec.cost)
        if rec.task_id is not None:
            self._task.setdefault((rec.lane, rec.task_id), Totals()).add(rec.tokens, rec.cost)
        row = self._summary.setdefault((rec.lane, rec.provider, rec.model), {
            "lane": rec.lane, "provider": rec.provider, "model": rec.model, "calls": 0, "errors": 0,
            "input_tokens": 0, "output_tokens": 0, "cost": 0.0, "latency_ms": 0.0})
        row["calls"] += 1
        row["errors"] += 0 if rec.ok else 1
        row["input_tokens"] += rec.input_tokens
        row["output_tokens"] += rec.output_tokens
        row["cost"] += rec.cost
        row["latency_ms"] += rec.latency_ms

    def day_totals(self, lane: str, day: str) -> Totals:
        with self._lock:
            t = self._day.get((lane, day), Totals())
            return Totals(t.tokens, t.money)

    def task_totals(self, lane: str, task_id: str) -> Totals:
        with self._lock:
            t = self._task.get((lane, task_id), Totals())
            return Totals(t.tokens, t.money)

    def reserve(self, lane: str, task_id: Optional[str], day: str, budgets: Budgets,
                tokens: int, money: float) -> Reservation | str:
        """Hold the worst case of a call against the budgets, or say (a string) why it is refused.

        Without a task_id the per-task budgets bound the single call."""
        with self._lock:
            checks: list[tuple[str, Optional[float], float, float]] = []
            task = Totals()
            if task_id is not None:
                for src in (self._task, self._pending_task):
                    t = src.get((lane, task_id))
                    if t:
                        task.add(t.tokens, t.money)
            day_t = Totals()
            for src in (self._day, self._pending_day):
                t = src.get((lane, day))
                if t:
                    day_t.add(t.tokens, t.money)
            scope = f"task {task_id!r}" if task_id is not None else "this call"
            checks += [("tokens_per_task", budgets.tokens_per_task, task.tokens, tokens),
                       ("money_per_task", budgets.money_per_task, task.money, money),
                       ("tokens_per_day", budgets.tokens_per_day, day_t.tokens, tokens),
                       ("money_per_day", budgets.money_per_day, day_t.money, money)]
            for name, limit, used, need in checks:
                if limit is not None and used + need > limit + 1e-12:
                    where = scope if name.endswith("task") else f"lane today ({day})"
                    return (f"over budget: {name} is {limit:g}; {where} used {used:g} and this call "
                            f"could need {need:g}")
            res = Reservation(lane, task_id, day, tokens, money)
            self._pending_day.setdefault((lane, day), Totals()).add(tokens, money)
            if task_id is not None:
                self._pending_task.setdefault((lane, task_id), Totals()).add(tokens, money)
            return res

    def release(self, res: Reservation) -> None:
        with self._lock:
            self._pending_day[(res.lane, res.day)].add(res.tokens, res.money, -1)
            if res.task_id is not None:
                self._pending_task[(res.lane, res.task_id)].add(res.tokens, res.money, -1)

    def record(self, rec: UsageRecord, reservation: Optional[Reservation] = None) -> None:
        """Append to the log and the totals; releases the call's reservation if given."""
        line = rec.model_dump_json() + "\n"
        with self._lock:
            if self.log_path is not None:
                try:
                    self.log_path.parent.mkdir(parents=True, exist_ok=True)
                    with self.log_path.open("a", encoding="utf-8") as fh:
                        fh.write(line)
                except OSError as exc:
                    log.error("cannot append to usage log %s: %s", self.log_path, exc)
            self._add(rec)
        if reservation is not None:
            self.release(reservation)

    def summary(self) -> list[dict]:
        """Totals per lane/provider/model (`latency_ms` is the mean over calls), sorted."""
        with self._lock:
            rows = [dict(r) for _, r in sorted(self._summary.items())]
        for r in rows:
            r["tokens"] = r["input_tokens"] + r["output_tokens"]
            r["cost"] = round(r["cost"], 10)
            r["latency_ms"] = round(r["latency_ms"] / r["calls"], 2) if r["calls"] else 0.0
        return rows


def utc_day(now: datetime) -> str:
    return now.date().isoformat()
