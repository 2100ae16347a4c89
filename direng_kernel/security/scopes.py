"""The DirEng API's authorization scopes, least-privilege presets and the JupyterHub mapping.

Eight scopes, `resource:action`; a token carries them space-separated in its `scope` claim
(RFC 8693 / OAuth 2 style). Each endpoint needs exactly one scope for each HTTP method
(declared by its handler, see `docs/security-tokens.md`).

Presets:

    KERNEL_SCOPES  what a notebook kernel's DIRENG_TOKEN carries: read and write the index and
                   tasks, and execute runs; no policy changes, no replay, no secrets.
    LANE_SCOPES    what a delegated lane gets: read-only (cannot approve tasks, start runs or
                   change the policy).

JupyterHub custom scopes (JupyterHub >= 3.0, `c.JupyterHub.custom_scopes`) must match
`^custom:[a-z0-9][a-z0-9_\\-*:]+[a-z0-9_*]$`; `hub_scope("runs:execute")` is
`custom:direng:runs:execute`. Which of them a Hub token holds on a single-user server is decided
by `server/hub.py`. Only this module's standard library imports load on import.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..errors import DirEngError
from ..models import SCOPES

ALL_SCOPES: tuple[str, ...] = tuple(SCOPES)  # models.SCOPES is the one list

KERNEL_SCOPES: tuple[str, ...] = ("index:read", "index:write", "tasks:read", "tasks:write", "runs:execute")
LANE_SCOPES: tuple[str, ...] = ("index:read", "tasks:read")
PRESETS: dict[str, tuple[str, ...]] = {"kernel": KERNEL_SCOPES, "lane": LANE_SCOPES, "all": ALL_SCOPES}

HUB_PREFIX = "custom:direng:"
#: JupyterHub's own check for custom scope names (jupyterhub/scopes.py, `_custom_scope_pattern`).
HUB_CUSTOM_SCOPE_RE = re.compile(r"^custom:[a-z0-9][a-z0-9_\-*:]+[a-z0-9_*]$")

_SPLIT = re.compile(r"[\s,]+")


class UnknownScopeError(DirEngError):
    """A scope name that is not one of the eight DirEng scopes."""

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__(f"unknown scope {scope!r} (known: {', '.join(ALL_SCOPES)})")


def validate_scope(scope: str) -> str:
    """`scope` itself if it is a DirEng scope, else `UnknownScopeError`."""
    if not isinstance(scope, str) or scope not in SCOPES:
        raise UnknownScopeError(str(scope))
    return scope


def parse_scopes(value: str | Iterable[str] | None, *, strict: bool = True) -> tuple[str, ...]:
    """Scopes from a space/comma-separated string or an iterable of such strings, deduplicated in
    order. Preset names (`kernel`, `lane`, `all`) are not expanded here (see `expand_presets`).
    `strict`: unknown names raise `UnknownScopeError`; otherwise they are dropped (a token from a
    newer server may carry scopes this one does not know: they grant nothing here)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            if strict:
                raise UnknownScopeError(repr(item))
            continue
        for name in _SPLIT.split(item.strip()):
            if not name:
                continue
            if name not in SCOPES:
                if strict:
                    raise UnknownScopeError(name)
                continue
            if name not in out:
                out.append(name)
    return tuple(out)


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Every name must be a DirEng scope (strict `parse_scopes`)."""
    return parse_scopes(scopes, strict=True)


def expand_presets(values: Iterable[str]) -> tuple[str, ...]:
    """Like `validate_scopes`, but `kernel`, `lane` and `all` stand for their preset's scopes."""
    out: list[str] = []
    for value in values:
        for name in _SPLIT.split(value.strip()):
            if not name:
                continue
            for scope in PRESETS.get(name, (name,)):
                validate_scope(scope)
                if scope not in out:
                    out.append(scope)
    return tuple(out)


def format_scopes(scopes: Iterable[str]) -> str:
    """The `scope` claim's value: the scopes space-separated."""
    return " ".join(scopes)


def describe(scope: str) -> str:
    """The one-line description of a scope."""
    return SCOPES[validate_scope(scope)]


# -- JupyterHub -----------------------------------------------------------------------------------

def hub_scope(scope: str) -> str:
    """The JupyterHub custom scope for a DirEng scope: `index:read` → `custom:direng:index:read`."""
    name = HUB_PREFIX + validate_scope(scope)
    assert HUB_CUSTOM_SCOPE_RE.match(name), name
    return name


def from_hub_scope(name: str) -> str | None:
    """The DirEng scope for a JupyterHub custom scope (a `!filter` suffix is dropped), or None."""
    if not isinstance(name, str):
        return None
    base = name.split("!", 1)[0]
    if not base.startswith(HUB_PREFIX):
        return None
    scope = base[len(HUB_PREFIX):]
    return scope if scope in SCOPES else None


def hub_custom_scopes() -> dict[str, dict[str, str]]:
    """The value for `c.JupyterHub.custom_scopes` in `jupyterhub_config.py`."""
    return {hub_scope(s): {"description": f"DirEng: {d}"} for s, d in SCOPES.items()}
