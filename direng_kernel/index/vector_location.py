"""Where a store's MiniLM vectors live: its own embedded chroma, or a shared chroma server.

The default is `<store>/chroma/` (chromadb's PersistentClient): one store, any number of local
processes. `DIRENG_VECTORS=http://HOST:PORT` (the server's `vectors` traitlet sets it) puts them
in a chroma server instead (`chroma run`), so processes that cannot share a directory — or a team
that wants one vector service — share one collection. That collection is named after the store's
identity (the `store_id` its SQLite database carries), so many stores, or many repositories, on
one chroma server never mix; the SQLite store stays the source of truth for which ids are
current, exactly as with the embedded store.

A server never makes us wait forever: `ping` answers within its timeouts, and the client's HTTP
session gets connect and request timeouts (chromadb's own has none), so an unreachable or
silent server is one `VectorStoreError` line. Nothing here imports chromadb.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import DirEngError

VECTORS_ENV = "DIRENG_VECTORS"
TIMEOUT_ENV = "DIRENG_VECTORS_TIMEOUT"
EMBEDDED_DIR = "chroma"
#: The embedded collection keeps the name it always had: existing stores keep their vectors.
EMBEDDED_COLLECTION = "direng-minilm"
CONNECT_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 1.0  # `health` is polled, also as a liveness probe: a heartbeat answers in ms
REQUEST_TIMEOUT_S = 30.0  # one upsert batch or query; DIRENG_VECTORS_TIMEOUT overrides it
RETRY_S = 10.0  # a server that failed is asked again after this long (meanwhile: its last error)
DEFAULT_PORTS = {"http": 8000, "https": 443}  # 8000: `chroma run`'s own default


class VectorStoreError(DirEngError):
    """The vector store is unreachable, refused a request, or is configured wrongly."""

    error_code = "vectors_unavailable"


@dataclass(frozen=True)
class VectorLocation:
    """The embedded store's folder, or a chroma server's address."""

    path: Path | None = None
    host: str | None = None
    port: int | None = None
    ssl: bool = False

    @property
    def is_embedded(self) -> bool:
        return self.host is None

    @property
    def url(self) -> str | None:
        if self.is_embedded:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl else 'http'}://{host}:{self.port}"

    def describe(self) -> str:
        return f"embedded chroma {self.path}" if self.is_embedded else f"chroma server {self.url}"


def locate(store_dir: Path) -> VectorLocation:
    """`DIRENG_VECTORS` when set (checked), else the store's own `chroma/` folder."""
    raw = os.environ.get(VECTORS_ENV, "").strip()
    if not raw:
        return VectorLocation(path=Path(store_dir) / EMBEDDED_DIR)
    hint = (f"{VECTORS_ENV}={raw!r} is not a chroma server URL: use http://HOST:PORT "
            "(or unset it for the store's own chroma/)")
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        raise VectorStoreError(hint) from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.query \
            or parts.fragment or parts.path not in ("", "/"):
        raise VectorStoreError(hint)
    return VectorLocation(host=parts.hostname, port=port or DEFAULT_PORTS[parts.scheme], ssl=parts.scheme == "https")


def collection_name(location: VectorLocation, store_id: str | None, store_dir: Path) -> str:
    """The store's collection: the embedded one's fixed name, on a server one per store identity
    (a store that could not record an id, being read-only, is named by its directory)."""
    if location.is_embedded:
        return EMBEDDED_COLLECTION
    ident = store_id or hashlib.sha256(str(Path(store_dir).resolve()).encode()).hexdigest()[:32]
    return f"direng-minilm-{ident}"


def request_timeout() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_ENV, REQUEST_TIMEOUT_S))
    except ValueError:
        return REQUEST_TIMEOUT_S
    return value if value > 0 else REQUEST_TIMEOUT_S


def http_timeout():
    """The timeouts every request to a chroma server runs under."""
    import httpx

    return httpx.Timeout(request_timeout(), connect=min(CONNECT_TIMEOUT_S, request_timeout()))


def unreachable(location: VectorLocation, exc: BaseException) -> VectorStoreError:
    """The one-line error for a server that failed us: where, and the cause's first line."""
    first = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    return VectorStoreError(f"{location.describe()} is unavailable: {first} (it holds the MiniLM vectors: "
                            f"set {VECTORS_ENV}, or unset it for the store's own chroma/)")


def ping(location: VectorLocation, timeout: float | None = None) -> None:
    """Does the server answer its heartbeat? Raises VectorStoreError within the timeouts (or
    `timeout` seconds for each step, as `health` asks: it must stay quick to poll) if not."""
    if location.is_embedded:
        return
    import httpx

    try:
        reply = httpx.get(f"{location.url}/api/v2/heartbeat",
                          timeout=http_timeout() if timeout is None else httpx.Timeout(timeout))
        reply.raise_for_status()
        reply.json()["nanosecond heartbeat"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise unreachable(location, exc) from None
