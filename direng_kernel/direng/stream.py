"""A generative answer streamed to the user with the answer's redaction applied as it grows.

Idea: a secret or a piece of PII is a run of non-space characters, or a few short groups with
spaces between (card numbers, IBANs, phone numbers). The whole text so far is scrubbed (so a
pattern split across pieces is seen whole), and of the scrubbed text only what ends at a
whitespace at least `HOLD` characters before its end may go out: what is new of that goes out
as a `delta`. A pattern still arriving lies within the held tail, so it is never sent half-seen. Should redacting the longer text change something that
already went out (a private-key block recognised only once its end arrives), the listener gets
`replace` with the whole safe text so far instead. `reset()` voids the text (the broker fell
back after a partial answer, or the model turned to tools); `finish()` sends the rest.

Scrubbing the text so far runs once per `BATCH` new characters, or per 1/32 of the text so far
when that is more, so a long answer costs about a hundred scrubs, not one per token. The final `Answer` is scrubbed as a whole again by `DirEng.chat`; a client
shows it in place of the streamed text.
"""

from __future__ import annotations

import threading

from ..models import OnEvent
from ..security.scrub import scrub

HOLD = 64
BATCH = 24


class RedactedStream:
    def __init__(self, on_event: OnEvent, hold: int = HOLD, batch: int = BATCH):
        self.on_event, self.hold, self.batch = on_event, hold, batch
        self._raw = ""  # what the model said so far (never leaves this object unscrubbed)
        self._sent = ""  # the safe text the listener has
        self._judged = 0  # how much of _raw was judged at the last flush
        self._lock = threading.Lock()  # a provider's reader thread and the caller may both call

    def delta(self, text: str) -> None:
        with self._lock:
            self._raw += text
            if len(self._raw) - self._judged >= max(self.batch, len(self._raw) // 32):
                self._flush(final=False)

    def finish(self) -> None:
        with self._lock:
            self._flush(final=True)

    def reset(self) -> None:
        with self._lock:
            had = bool(self._sent)
            self._raw, self._sent, self._judged = "", "", 0
        if had:
            self.on_event("reset", {})

    def tool(self, name: str) -> None:
        self.on_event("tool", {"name": name})

    def _flush(self, final: bool) -> None:
        self._judged = len(self._raw)
        safe = scrub(self._raw) if self._raw else ""
        if not final:
            safe = safe[:self._boundary(safe)]
        if safe.startswith(self._sent):
            new = safe[len(self._sent):]
            if new:
                self._sent = safe
                self.on_event("delta", {"text": new})
        else:
            self._sent = safe
            self.on_event("replace", {"text": safe})

    def _boundary(self, text: str) -> int:
        """Where the text that may go out ends: at the last whitespace at least `hold`
        characters before the end (0 when there is none)."""
        i = len(text) - self.hold
        while i > 0 and not text[i - 1].isspace():
            i -= 1
        return max(i - 1, 0)
