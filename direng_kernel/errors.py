"""Errors with messages meant for people: surfaces print `str(err)` as one line.

Each error class also has a stable machine-readable `error_code` (snake case of the class name
unless it sets one), which crosses the HTTP boundary as the reply's `code`, so a client rebuilds
the same exception (`from_reply`) instead of parsing the message.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class DirEngError(Exception):
    """Base class: a user-facing failure with a clear one-line message."""

    exit_code = 1
    error_code: ClassVar[str] = "error"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "error_code" not in cls.__dict__:
            cls.error_code = _snake(cls.__name__.removesuffix("Error") or cls.__name__)

    def details(self) -> dict[str, Any]:
        """Structured fields a reply carries besides `code` and `message`."""
        return {}


class RootError(DirEngError):
    """The root to index is missing, not a directory, or empty."""

    error_code = "bad_root"


class NotIndexedError(DirEngError):
    """The store has no index yet."""


class UnknownSymbolError(DirEngError):
    """A symbol name that the index does not know; carries close matches."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown symbol {name!r}{hint}")

    def details(self) -> dict[str, Any]:
        return {"name": self.name, "suggestions": list(self.suggestions)}


class StoreError(DirEngError):
    """The index store is unreadable or was written by an incompatible version."""

    error_code = "store_unreadable"


class NotFoundError(DirEngError):
    """A named thing (task, run, passport, lane) that does not exist."""


class RemoteError(DirEngError):
    """The server answered with an error that has no more specific class here."""

    def __init__(self, message: str, code: str = "error", status: int | None = None):
        self.code = code
        self.status = status
        super().__init__(message)


class RemoteNotFound(RemoteError, NotFoundError):
    """A 404 from the server: a task, run, passport, lane or endpoint it does not have."""


def from_reply(status: int, payload: dict) -> DirEngError:
    """The exception an error reply `{"status", "code", "message", ...}` stands for."""
    message = str(payload.get("message") or f"HTTP {status}")
    code = str(payload.get("code") or "")
    if code == UnknownSymbolError.error_code and isinstance(payload.get("name"), str):
        return UnknownSymbolError(payload["name"], [str(s) for s in payload.get("suggestions") or []])
    for cls in (NotIndexedError, StoreError, RootError):
        if code == cls.error_code:
            return cls(message)
    if status == 404:
        return RemoteNotFound(message, code or NotFoundError.error_code, status)
    return RemoteError(message, code or "error", status)
