"""The executor backends PAS knows, and the one place that picks one (papermill `engines.py` style).

`DIRENG_EXECUTOR` (a Jupyter server's `DirEngExtension.pas_executor` sets it) names the backend
as a URL, read when an executor is built:

    unset, "" or "local"     → `local` (`pas.backends`): papermill on this host, cold or from the
                               kernel pool (the default)
    dask://HOST:PORT         → `dask` (`pas.dask_backend`): each run is a task on that `distributed`
                               scheduler, whose worker starts the same papermill process
    dask+tls://HOST:PORT     → the same over TLS (certificates from dask's own configuration)

Other schemes are factories in the `direng.executors` entry point group (or `register_backend`),
`factory(spec, **options) -> Backend`, so a site can plug in e.g. a dask-gateway cluster
without touching PAS. Building a backend connects to nothing; its `check()` does, with timeouts.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from .backends import EXECUTOR_ENV, Backend, ExecutorSpec, ExecutorUnavailable, LocalBackend

ENTRY_POINTS = "direng.executors"


def _local(spec: ExecutorSpec, **options: Any) -> Backend:
    return LocalBackend(kernel_pool=options.get("kernel_pool"))


def _dask(spec: ExecutorSpec, **options: Any) -> Backend:
    from importlib.util import find_spec

    if find_spec("distributed") is None:
        raise ExecutorUnavailable(f"{EXECUTOR_ENV}={spec.url}: the dask backend needs distributed "
                                  "(pip install 'direng-workbench[dask]')")
    from .dask_backend import DaskBackend

    return DaskBackend(spec.address, tls=spec.kind == "dask+tls")


_FACTORIES: dict[str, Callable[..., Backend]] = {"local": _local, "dask": _dask, "dask+tls": _dask}
_lock = threading.Lock()


def register_backend(kind: str, factory: Callable[..., Backend]) -> None:
    """A backend for `DIRENG_EXECUTOR=<kind>://…`: `factory(spec, **options)` returns it."""
    with _lock:
        _FACTORIES[kind] = factory


def _factory(kind: str) -> Callable[..., Backend]:
    with _lock:
        if kind in _FACTORIES:
            return _FACTORIES[kind]
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        if ep.name == kind:
            factory = ep.load()
            register_backend(kind, factory)
            return factory
    raise ExecutorUnavailable(f"{EXECUTOR_ENV}: no executor backend {kind!r}; backends: "
                              f"{', '.join(sorted(_FACTORIES))} (or a '{ENTRY_POINTS}' entry point)")


def configured() -> ExecutorSpec:
    """The backend `DIRENG_EXECUTOR` names (local when unset)."""
    return ExecutorSpec.parse(os.environ.get(EXECUTOR_ENV))


def select_backend(url: str | None = None, **options: Any) -> Backend:
    """The backend for `url` (default: `DIRENG_EXECUTOR`). Building one connects to nothing:
    `check()` does, with its timeouts."""
    spec = ExecutorSpec.parse(url) if url is not None else configured()
    return _factory(spec.kind)(spec, **options)


def health(backend: Backend | None = None) -> dict:
    """The `executor` entry of health: the live backend's, else the configured one's, asked once."""
    if backend is not None:
        return backend.health()
    try:
        spec = configured()
        probe = _factory(spec.kind)(spec)
    except ExecutorUnavailable as exc:
        return {"ok": False, "kind": None, "address": None, "workers": None, "error": str(exc)}
    try:
        return probe.health()
    finally:
        probe.close()


__all__ = ["ENTRY_POINTS", "configured", "health", "register_backend", "select_backend"]
