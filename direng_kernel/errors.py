"""Errors with messages meant for people: surfaces print `str(err)` as one line."""


class DirEngError(Exception):
    """Base class: a user-facing failure with a clear one-line message."""

    exit_code = 1


class RootError(DirEngError):
    """The root to index is missing, not a directory, or empty."""


class NotIndexedError(DirEngError):
    """The store has no index yet."""


class UnknownSymbolError(DirEngError):
    """A symbol name that the index does not know; carries close matches."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown symbol {name!r}{hint}")


class StoreError(DirEngError):
    """The index store is unreadable or was written by an incompatible version."""


class NotFoundError(DirEngError):
    """A named thing (task, run, passport, lane) that does not exist."""
