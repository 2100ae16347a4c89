"""The task lifecycle as an explicit state machine.

    new → estimated → approved → queued → running → succeeded | failed | cancelled | interrupted
                                      ↑__________________________________________________|
                                              (an interrupted run of an idempotent lane is re-queued)

Any state before `running` may be cancelled; `running` may be cancelled, fail, succeed or be
interrupted (its worker died: lease expired). A transition not in the table is refused with an
error naming both states, so a bug or a race can never move a task somewhere it cannot be.
"""

from __future__ import annotations

from ..errors import DirEngError
from ..models import TaskState as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.new: frozenset({S.estimated, S.cancelled}),
    S.estimated: frozenset({S.estimated, S.approved, S.cancelled}),
    S.approved: frozenset({S.queued, S.cancelled}),
    S.queued: frozenset({S.running, S.cancelled}),
    S.running: frozenset({S.succeeded, S.failed, S.cancelled, S.interrupted}),
    S.interrupted: frozenset({S.queued, S.failed, S.cancelled}),
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
