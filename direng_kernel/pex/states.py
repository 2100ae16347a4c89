"""The task lifecycle as an explicit state machine.

    new → estimated → approved → queued → running → succeeded | failed | cancelled | interrupted
                                      ↑__________________________________________________|
                                              (an interrupted run of an idempotent lane is re-queued)

              estimated ──→ escalated ←── running          (PEX needs the user's decision)
    escalated → queued     retry, or raise the budget and retry (after a run)
    escalated → estimated  change the lane (re-estimated), or accept an estimate over the threshold
    escalated → cancelled

Any state before `running` may be cancelled; `running` may be cancelled, fail, succeed, be
interrupted (its worker died: lease expired) or escalate: a gate failed while the lane allows a
retry, a budget would be exceeded, or a command was denied. An estimate whose p90 is above the
lane's threshold escalates from `estimated`. A transition not in the table is refused with an
error naming both states, so a bug or a race can never move a task somewhere it cannot be.
"""

from __future__ import annotations

from ..errors import DirEngError
from ..models import TaskState as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.new: frozenset({S.estimated, S.cancelled}),
    S.estimated: frozenset({S.estimated, S.approved, S.cancelled, S.escalated}),
    S.approved: frozenset({S.queued, S.cancelled}),
    S.queued: frozenset({S.running, S.cancelled}),
    S.running: frozenset({S.succeeded, S.failed, S.cancelled, S.interrupted, S.escalated}),
    S.interrupted: frozenset({S.queued, S.failed, S.cancelled}),
    S.escalated: frozenset({S.queued, S.estimated, S.cancelled}),
    S.succeeded: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
}


class IllegalTransition(DirEngError):
    def __init__(self, task_id: str, old: S, new: S):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old])) or "none (final state)"
        super().__init__(f"task {task_id}: cannot go from {old.value} to {new.value} (allowed: {allowed})")


def check(task_id: str, old: S, new: S) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(task_id, old, new)
