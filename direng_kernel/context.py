"""The live notebook as context: what a kernel tells DirEng along with a message.

`notebook_context(shell)` describes where the user is (the notebook's path, the active cell,
the previous error) and what their namespace holds — names, types, shapes, and the columns
and dtypes of DataFrames and arrays — without a single value. It is capped (`MAX_NAMES`,
`MAX_COLUMNS`, `MAX_CHARS` of JSON) and every string in it is scrubbed of secrets before it
leaves the kernel. The magics (`%direng ask`, `%%direng`, `explain-error`) and the DirEng
kernel send it; `%direng context` shows it and `%direng context off` (or `DIRENG_CONTEXT=0`)
stops sending it.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from pathlib import Path

from .models import NotebookContext, VariableSummary
from .security.scrub import scrub

MAX_NAMES = 60
MAX_COLUMNS = 40
MAX_CHARS = 12_000
MAX_SOURCE = 4_000
#: Names IPython itself puts in every namespace.
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def context_enabled() -> bool:
    return os.environ.get("DIRENG_CONTEXT", "1").strip().lower() not in ("0", "off", "false", "no")


def _shape(value) -> list[int] | None:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return list(shape)
    return None


def summarize(name: str, value) -> VariableSummary | None:
    """One name's summary, or None for what is not worth telling (private names, IPython's own)."""
    if name.startswith("_") or name in _IPYTHON_NAMES:
        return None
    if isinstance(value, types.ModuleType):
        return VariableSummary(name=name, type="module")
    kind = type(value).__name__
    summary = VariableSummary(name=name, type=kind, shape=_shape(value))
    dtypes = getattr(value, "dtypes", None)
    if summary.shape is not None and hasattr(dtypes, "items") and hasattr(value, "columns"):  # a DataFrame
        summary.columns = {str(col): str(dtype) for col, dtype in list(dtypes.items())[:MAX_COLUMNS]}
    elif getattr(value, "dtype", None) is not None and summary.shape is not None:  # arrays, Series
        summary.dtype = str(value.dtype)
    elif isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        summary.length = len(value)
    return summary


def _error_text(limit_frames: int = 5) -> str | None:
    value = getattr(sys, "last_value", None)
    if value is None:
        return None
    frames = traceback.extract_tb(getattr(sys, "last_traceback", None))[-limit_frames:]
    where = "".join(f"\n  {Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(value).__name__}: {value}{where}"


def notebook_path(shell) -> str | None:
    """The notebook this kernel serves: JupyterLab's `__session__` (or `JPY_SESSION_NAME`)."""
    ns = getattr(shell, "user_ns", {}) or {}
    path = ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
    if not isinstance(path, str) or not path:
        return None
    try:
        return os.path.relpath(path, os.getcwd()) if os.path.isabs(path) else path
    except ValueError:
        return path


def notebook_context(shell, cell_source: str | None = None) -> NotebookContext:
    """The context of `shell` (an IPython shell) now, capped and scrubbed."""
    ns = getattr(shell, "user_ns", {}) or {}
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    names = [n for n in ns if n not in hidden]
    summaries, truncated = [], False
    for name in names:
        try:
            summary = summarize(name, ns[name])
        except Exception:  # noqa: BLE001 — a property that raises must not break a question
            summary = None
        if summary is None:
            continue
        if len(summaries) == MAX_NAMES:
            truncated = True
            break
        truncated |= len(summary.columns) == MAX_COLUMNS
        summaries.append(summary)
    source = cell_source if cell_source is not None else _last_input(shell)
    context = NotebookContext(path=notebook_path(shell), cell=getattr(shell, "execution_count", None),
                              cell_source=(source or "")[:MAX_SOURCE], error=_error_text(),
                              namespace=summaries, truncated=truncated)
    context = _scrubbed(context)
    while len(context.model_dump_json()) > MAX_CHARS and context.namespace:
        context.namespace = context.namespace[: len(context.namespace) // 2]
        context.truncated = True
    return context


def _last_input(shell) -> str:
    """The cell being run, as the user typed it (`In` holds IPython's transformed code)."""
    raw = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    history = raw if isinstance(raw, list) and raw else (getattr(shell, "user_ns", {}) or {}).get("In")
    return history[-1] if isinstance(history, list) and history else ""


def _scrubbed(context: NotebookContext) -> NotebookContext:
    """Every string scrubbed: names and column names may be secrets too."""
    data = context.model_dump()
    for key in ("path", "cell_source", "error"):
        if isinstance(data.get(key), str):
            data[key] = scrub(data[key])
    for var in data["namespace"]:
        var["name"] = scrub(var["name"])
        var["columns"] = {scrub(c): scrub(d) for c, d in var["columns"].items()}
    return NotebookContext.model_validate(data)
