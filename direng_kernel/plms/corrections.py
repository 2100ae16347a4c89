"""The routing book: every lane routing decision and every correction, in PLMS's own SQLite file.

Idea: a user who puts a task in another lane than the router chose is teaching the router. Each
record keeps the brief (scrubbed: it may quote a secret), the lane the router chose, the lane the
task got, where the record comes from (`models.ROUTING_SOURCES`) and when. The records whose
source is the user's word (`models.CORRECTION_SOURCES`) are the lane classifier's labelled
examples (`routing.py`).

The file is `<store>/routing.sqlite3`, beside PEX's task store but not in it: PLMS owns it. A row
that does not read back as a record (a lane that is not text, a timestamp that does not parse, a
source that is not a source) is skipped and counted (`RoutingHistory.skipped`), never fatal.
A correction naming a lane that is not registered is refused (`UnknownCorrectionLane`) with the
closest lane names.
"""

from __future__ import annotations

import difflib
import logging
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

from pydantic import BaseModel, ValidationError

from ..errors import DirEngError
from ..models import CORRECTION_SOURCES, RoutingSource

log = logging.getLogger(__name__)

DB_NAME = "routing.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS routing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    source TEXT NOT NULL,
    brief TEXT NOT NULL,
    routed TEXT NOT NULL,
    chosen TEXT NOT NULL,
    task_id TEXT
)
"""


class UnknownCorrectionLane(DirEngError, ValueError):
    """A correction to a lane that is not registered: refused, naming the closest lanes."""

    def __init__(self, lane: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(lane, known, n=3, cutoff=0.3)
        hint = f"; closest: {', '.join(close)}" if close else ""
        super().__init__(f"unknown lane {lane!r} for a routing correction (lanes: {', '.join(known)}){hint}")
        self.lane, self.closest = lane, close


class RoutingRecord(BaseModel):
    """One routing decision or correction."""

    at: datetime
    source: RoutingSource
    brief: str
    routed: str
    chosen: str
    task_id: Optional[str] = None

    @property
    def is_correction(self) -> bool:
        """The user's word (a labelled example), not the router's own unchanged guess."""
        return self.source in CORRECTION_SOURCES

    @property
    def misrouted(self) -> bool:
        return self.is_correction and self.routed != self.chosen


class RoutingHistory(BaseModel):
    """The records that read back, in order, and how many rows did not."""

    records: list[RoutingRecord]
    skipped: int = 0

    def corrections(self) -> list[RoutingRecord]:
        return [r for r in self.records if r.is_correction]


class RoutingBook:
    """Append-only routing records in `<store>/routing.sqlite3`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(_SCHEMA)

    @classmethod
    def for_store(cls, store_dir: str | Path) -> "RoutingBook":
        return cls(Path(store_dir) / DB_NAME)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def record(self, source: str, brief: str, routed: str, chosen: str, lanes: Iterable[str],
               task_id: str | None = None, at: datetime | None = None) -> RoutingRecord:
        """Append one record; `chosen` must be one of the registered `lanes`."""
        lanes = list(lanes)
        if chosen not in lanes:
            raise UnknownCorrectionLane(chosen, lanes)
        from ..security.scrub import scrub

        rec = RoutingRecord(at=at or datetime.now(timezone.utc), source=source, brief=scrub(brief),
                            routed=routed, chosen=chosen, task_id=task_id)
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO routing (at, source, brief, routed, chosen, task_id) VALUES (?, ?, ?, ?, ?, ?)",
                       (rec.at.isoformat(), rec.source, rec.brief, rec.routed, rec.chosen, rec.task_id))
        log.info("routing %s: %s -> %s", rec.source, rec.routed, rec.chosen)
        return rec

    def version(self) -> int:
        """The last correction's row id: it changes when a labelled example is added (the
        classifier refits then), not for the router's own decisions."""
        with self._connect() as db:
            return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM routing WHERE source != 'routed'").fetchone()[0])

    def history(self) -> RoutingHistory:
        """Every record in order; rows that do not validate are skipped and counted."""
        with self._connect() as db:
            rows = db.execute("SELECT at, source, brief, routed, chosen, task_id FROM routing ORDER BY id").fetchall()
        records, skipped = [], 0
        for at, source, brief, routed, chosen, task_id in rows:
            try:
                if not all(isinstance(v, str) for v in (at, source, brief, routed, chosen)):
                    raise ValueError("a field is not text")
                records.append(RoutingRecord(at=datetime.fromisoformat(at), source=source, brief=brief,
                                             routed=routed, chosen=chosen, task_id=task_id))
            except (ValueError, ValidationError) as exc:
                skipped += 1
                log.warning("skipped a corrupt routing row: %s", str(exc).splitlines()[0])
        return RoutingHistory(records=records, skipped=skipped)
