"""The audit log: append-only JSON Lines with a SHA-256 hash chain.

Each line is one record, written as canonical JSON (sorted keys, no spaces, UTF-8):

    {"actor": "alice", "at": "2026-01-02T03:04:05.678901Z", "data": {"name": "OPENAI_KEY", "ok": true},
     "event": "secret.access", "hash": "<64 hex>", "prev": "<64 hex>", "seq": 7}

`hash` = sha256 of the canonical JSON of the record without `hash`; `prev` is the previous
record's `hash` (the first record's `prev` is 64 zeros); `seq` counts from 1. Editing a record
breaks its hash, deleting or reordering breaks the seq run and the chain, a cut tail line no
longer parses — `verify()` names the first bad record. (Removing whole records from the END
cannot be seen from the file alone: keep `AuditReport.head` somewhere else to pin it.)

The file is `$DIRENG_AUDIT_LOG`, else `jupyter_data_dir()/direng/audit.jsonl` (0600, its
directory 0700). `record()` holds an exclusive flock(2) on the file while it reads the last
record and appends the new line (O_APPEND, one write, fsync), so concurrent processes neither
interleave lines nor fork the chain. Data are redacted (known secrets and detected ones)
before they are hashed and written; token and key ids (`jti`, `kid`, `active_kid`: random or
thumbprints, high-entropy by design) are spared the detectors so that records can be matched.

Events in use: `token.issue`, `token.retired_key_use`, `secret.access`, `secret.set`,
`secret.delete`, `policy.change`, `command.denied`, `replay`, and the API's refusals
`auth.failed` (401, or no valid Jupyter login) and `auth.denied` (403: authenticated, but
without the scope). Refusals go through a `RateLimit` (`record_limited`): a burst from one
client for one reason is one record, whose `suppressed` counts the previous burst's rest.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import getpass
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from ..config import user_data_path
from ..errors import DirEngError
from .scrub import global_redactor

__all__ = ["record", "record_limited", "verify", "read_records", "audit_log_path", "AuditReport", "AuditError",
           "RateLimit", "GENESIS", "EVENTS", "ENV_AUDIT_LOG"]

log = logging.getLogger(__name__)

ENV_AUDIT_LOG = "DIRENG_AUDIT_LOG"
GENESIS = "0" * 64
EVENTS = frozenset({"token.issue", "token.retired_key_use", "secret.access", "secret.set", "secret.delete",
                    "policy.change", "command.denied", "replay", "auth.failed", "auth.denied"})
#: Top-level data keys holding token/key identifiers: not secrets, but random-looking enough for
#: the entropy detector; scanning them would replace the very ids a reader needs to match records.
_IDENTIFIERS = frozenset({"jti", "kid", "active_kid"})
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FIELDS = ("seq", "at", "event", "actor", "data", "prev", "hash")
_EVENT_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TAIL_CHUNK = 64 * 1024


class AuditError(DirEngError):
    """The audit log cannot be written or read."""


def audit_log_path() -> Path:
    """`$DIRENG_AUDIT_LOG`, else the user's Jupyter data dir's `direng/audit.jsonl`."""
    return user_data_path(ENV_AUDIT_LOG, "audit.jsonl")


def _canonical(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no login name (containers): fall back to the uid
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _parse(line: bytes) -> dict | None:
    """A structurally valid record, or None."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if (not isinstance(rec, dict) or set(rec) != set(_FIELDS) or type(rec["seq"]) is not int
            or not isinstance(rec["hash"], str) or not isinstance(rec["prev"], str)
            or not isinstance(rec["event"], str) or not isinstance(rec["data"], dict)):
        return None
    return rec


def _last_record(fd: int) -> tuple[int, str, bool]:
    """(seq, hash, needs_newline) of the last parseable record; reads the tail only."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS, False
    chunk = _TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        needs_newline = not data.endswith(b"\n")
        lines = data.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first piece may be a partial line
        for line in reversed(lines):
            if line.strip():
                rec = _parse(line)
                if rec is not None:
                    return rec["seq"], rec["hash"], needs_newline
        if start == 0:
            # nothing parseable at all: chain from genesis; verify() will name the damage
            return 0, GENESIS, needs_newline
        chunk *= 4


@contextlib.contextmanager
def _open_locked(path: Path, exclusive: bool) -> Iterator[int]:
    flags = (os.O_RDWR | os.O_APPEND | os.O_CREAT) if exclusive else os.O_RDONLY
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise AuditError(f"cannot open audit log {path}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def record(event: str, actor: str | None = None, **data: Any) -> dict:
    """Append one record and return it. `data` must be JSON-able (other values are str()-ed)
    and is redacted before hashing. Raises AuditError when the log cannot be written: callers
    that gate an action on the audit (a secret read, say) then refuse the action."""
    if not isinstance(event, str) or not _EVENT_RE.fullmatch(event):
        raise AuditError(f"invalid audit event name {event!r} (use dotted lower-case words)")
    try:
        normalized = json.loads(json.dumps(data, default=str, ensure_ascii=False))
    except (TypeError, ValueError) as err:
        raise AuditError(f"audit data for {event} is not JSON-serialisable: {err}") from None
    redactor = global_redactor()
    ids = {k: v for k, v in normalized.items() if k in _IDENTIFIERS and isinstance(v, str) and _ID_RE.fullmatch(v)}
    clean = redactor.redact_obj({k: v for k, v in normalized.items() if k not in ids}, scan=True)
    clean.update(redactor.redact_obj(ids, scan=False))  # known secrets are still replaced
    who = redactor.redact(str(actor)) if actor is not None else _default_actor()
    path = audit_log_path()
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    except OSError as err:
        raise AuditError(f"cannot create audit log directory {path.parent}: {err.strerror or err}") from None
    with _open_locked(path, exclusive=True) as fd:
        seq, prev, needs_newline = _last_record(fd)
        rec = {
            "seq": seq + 1,
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "event": event,
            "actor": who,
            "data": clean,
            "prev": prev,
        }
        rec["hash"] = _hash(rec)
        payload = (("\n" if needs_newline else "") + _canonical(rec) + "\n").encode("utf-8")
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as err:
            raise AuditError(f"cannot write audit log {path}: {err.strerror or err}") from None
    return rec


class RateLimit:
    """At most one record per key every `window_s` seconds (a key: client address and reason,
    say). The ones held back are counted and the count rides on the key's next record, so a
    flood of refusals costs a line per window, not a line (and an fsync) per request. At most
    `max_keys` keys are tracked: past that the least recently recorded are forgotten (their
    held-back counts are logged, not lost silently)."""

    def __init__(self, window_s: float = 60.0, *, max_keys: int = 4096, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.max_keys, self.clock = float(window_s), int(max_keys), clock
        self._keys: dict[Hashable, list] = {}  # key → [time of its last record, held back since]; oldest first
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> int | None:
        """None: hold this one back. Else record it: the number held back since the key's last record."""
        now = self.clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return None
            self._keys.pop(key, None)
            self._keys[key] = [now, 0]
            while len(self._keys) > self.max_keys:
                old_key, (_, held) = next(iter(self._keys.items()))
                del self._keys[old_key]
                if held:
                    log.warning("DirEng audit: %d refusals for %r were held back and not recorded "
                                "(too many distinct clients and reasons)", held, old_key)
            return entry[1] if entry else 0


def record_limited(limit: RateLimit, key: Hashable, event: str, actor: str | None = None, **data: Any) -> dict | None:
    """`record` unless `limit` holds this one back (then None); a record carries `suppressed`,
    the number of the key's events held back since its previous record, when there were any."""
    held = limit.admit(key)
    if held is None:
        return None
    if held:
        data["suppressed"] = held
    return record(event, actor, **data)


def read_records(path: str | os.PathLike | None = None) -> list[dict]:
    """All parseable records (for display; use `verify` to check them)."""
    p = Path(path) if path is not None else audit_log_path()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise AuditError(f"cannot read audit log {p}: {err.strerror or err}") from None
    return [rec for line in data.split(b"\n") if line.strip() and (rec := _parse(line)) is not None]


@dataclass
class AuditReport:
    """The outcome of `verify`: `ok`, how many records checked out, and the first bad one."""

    ok: bool
    path: str
    records: int = 0                 # records verified before the first bad one (all of them when ok)
    first_bad_seq: int | None = None  # the seq the first bad line should have carried
    line: int | None = None          # its 1-based line number
    reason: str | None = None
    head: str | None = None          # hash of the last good record (pin it to detect tail removal)
    exists: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.ok:
            head = f", head {self.head[:16]}" if self.head else ""
            return f"ok: {self.path}: {self.records} records, chain intact{head}"
        return (f"broken: {self.path}: record seq {self.first_bad_seq} (line {self.line}): {self.reason}; "
                f"{self.records} records before it verify")


def verify(path: str | os.PathLike | None = None) -> AuditReport:
    """Check the whole chain; stops at the first bad record (edited, deleted, reordered,
    truncated, or not a record at all)."""
    p = Path(path) if path is not None else audit_log_path()
    try:
        with _open_locked(p, exclusive=False) as fd:
            chunks = []
            while True:
                block = os.read(fd, 1 << 20)
                if not block:
                    break
                chunks.append(block)
    except FileNotFoundError:
        return AuditReport(ok=True, path=str(p), exists=False)
    data = b"".join(chunks)
    if not data:
        return AuditReport(ok=True, path=str(p))
    pieces = data.split(b"\n")
    terminated = data.endswith(b"\n")
    if terminated:
        pieces.pop()  # the empty piece after the final newline
    prev = GENESIS
    good = 0

    def bad(i: int, reason: str) -> AuditReport:
        return AuditReport(ok=False, path=str(p), records=good, first_bad_seq=good + 1, line=i + 1,
                           reason=reason, head=prev if good else None)

    for i, line in enumerate(pieces):
        expected = good + 1
        last_unterminated = i == len(pieces) - 1 and not terminated
        if not line.strip():
            return bad(i, "empty line inside the log (a record was removed or the file was spliced)")
        rec = _parse(line)
        if rec is None:
            if last_unterminated:
                return bad(i, "truncated last line (a partial or cut record)")
            return bad(i, "not a valid audit record (damaged or edited line)")
        if _hash(rec) != rec["hash"] or not _HEX64.fullmatch(rec["hash"]):
            return bad(i, f"hash mismatch: record {rec['seq']} was edited")
        if line.decode("utf-8") != _canonical(rec):
            return bad(i, "record is not in canonical form (the line was edited)")
        if rec["seq"] != expected:
            later = {r["seq"] for piece in pieces[i + 1:] if (r := _parse(piece)) is not None}
            if rec["seq"] > expected and expected not in later:
                gone = (f"record {expected} is" if rec["seq"] == expected + 1
                        else f"records {expected}..{rec['seq'] - 1} are")
                return bad(i, f"{gone} missing (deleted): found seq {rec['seq']}, expected {expected}")
            return bad(i, f"records out of order: found seq {rec['seq']}, expected {expected}")
        if rec["prev"] != prev:
            return bad(i, f"record {expected} does not chain to the previous record "
                          "(prev hash mismatch: a record before it was replaced)")
        prev = rec["hash"]
        good += 1
    return AuditReport(ok=True, path=str(p), records=good, head=prev if good else None)
