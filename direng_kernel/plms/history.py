"""Reading run history: every row that validates as a `RunRecord`, and a count of those that do not.

A corrupt row (a duration that is not a number or negative, a timestamp that does not parse, sizes
that are not a JSON object of sizes, ...) is skipped with a warning in the log and counted in
`RunHistory.skipped`: one bad row never hides the rest of the history from the planner.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from .estimate import RunRecord

log = logging.getLogger(__name__)


class RunHistory(BaseModel):
    """The records that read back, in the order given, and how many rows did not."""

    records: list[RunRecord]
    skipped: int = 0


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        return f"{'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_history(rows: Iterable[Any]) -> RunHistory:
    """Validate each row (a mapping of `RunRecord` fields); skip and count the ones that fail."""
    records, skipped = [], 0
    for row in rows:
        try:
            records.append(row if isinstance(row, RunRecord) else RunRecord.model_validate(row))
        except (ValidationError, TypeError, ValueError) as exc:
            skipped += 1
            log.warning("skipped a corrupt run history row: %s", _why(exc))
    return RunHistory(records=records, skipped=skipped)
