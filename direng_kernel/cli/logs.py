"""How every `direng` command logs: one format, level WARNING (DEBUG with --debug), secrets redacted.

Both the full CLI and its light one-shot search (`fast.py`) set logging up here, so a warning
reads the same whichever path answered.
"""

from __future__ import annotations

import logging
import sys


class _LazyRedactingFilter(logging.Filter):
    """`security.scrub.RedactingFilter`, imported when the first record reaches a handler: most
    commands log nothing, and importing the detectors cost a one-shot search ~15 ms."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: logging.Filter | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._inner is None:
            from ..security.scrub import RedactingFilter

            self._inner = RedactingFilter()
        return bool(self._inner.filter(record))


def configure(debug: bool = False, redact: bool = True) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if redact:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _LazyRedactingFilter) for f in handler.filters):
                handler.addFilter(_LazyRedactingFilter())


def print_notices(notices: list[str]) -> None:
    """What the engine noted while answering (a part left out, a fallback taken), on stderr."""
    for note in notices:
        print(f"direng: note: {note}", file=sys.stderr)
