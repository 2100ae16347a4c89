"""The store's unix socket: a long-running engine answers one-shot CLI processes through it.

`direng index --watch` (and the Jupyter server's engine) keep the index, the static matrix and
MiniLM loaded. A one-shot `direng search` would spend far longer loading them than searching,
so the long-running process owns `<store>/daemon.sock` and answers the read-only index calls of
the `Client` API on it (`SERVED`); `client.DaemonClient` is the other end.

Wire format: one JSON object per line each way. Request `{"method": "search", "params": {...}}`;
reply `{"result": ...}` (models as their JSON dumps) or `{"error": {"status", "code", "message",
...}}` — the REST API's error body, so `errors.from_reply` rebuilds the same exception.

Who may connect: the socket is created 0600 in the store directory (renamed into place only
once it has that mode and listens) and every peer's uid is checked (SO_PEERCRED) — the same
user who can read the store's files anyway. `daemon.json` beside it names the owner's pid.

A daemon that dies without cleaning up (kill -9) leaves a socket nobody listens on: connecting
is refused, and the client removes it (`remove_stale`) and answers in-process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import DirEngError, NotFoundError, NotIndexedError
from .processes import pid_alive
from .records import jsonable

log = logging.getLogger(__name__)

SOCKET_NAME = "daemon.sock"
INFO_NAME = "daemon.json"
#: The `Client` calls a daemon answers: the index's read-only queries.
SERVED = ("health", "status", "search", "graph", "path", "repo_map", "complete", "inspect")
MAX_REQUEST = 1 << 20
# AF_UNIX paths are limited to 108 bytes; a deeper store is reached through /proc/self/fd.
_MAX_PATH = 100


class DaemonGone(Exception):
    """No live daemon answered on the socket (absent, refused, closed or timed out)."""


def socket_path(store_dir: Path) -> Path:
    return Path(store_dir) / SOCKET_NAME


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """A name for `path` that fits in sockaddr_un."""
    if len(os.fsencode(str(path))) <= _MAX_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _error_body(exc: BaseException) -> dict:
    if isinstance(exc, DirEngError):
        status = 404 if isinstance(exc, NotFoundError) or exc.error_code == "unknown_symbol" else \
            409 if isinstance(exc, NotIndexedError) else 400
        return {"status": status, "code": exc.error_code, "message": str(exc), **exc.details()}
    if isinstance(exc, (TypeError, ValueError)):
        return {"status": 400, "code": "bad_request", "message": f"{type(exc).__name__}: {exc}"}
    return {"status": 500, "code": "internal", "message": f"{type(exc).__name__}: {exc}"}


# -- the daemon's side --------------------------------------------------------------------


class SocketServer:
    """Serves `api`'s `SERVED` methods on `<store_dir>/daemon.sock` from a few worker threads
    (few and reused: each thread keeps its own SQLite connection)."""

    def __init__(self, api: Any, store_dir: Path, workers: int = 4):
        self.api = api
        self.store_dir = Path(store_dir)
        self.path = socket_path(self.store_dir)
        self._sock: socket.socket | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="direng-socket")
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ino: tuple[int, int] | None = None

    def start(self) -> bool:
        """Listen; False when another live process already serves this store."""
        if self.path.exists():
            try:
                request(self.path, "health", {}, timeout=2)
                log.info("a daemon already serves %s; not taking its socket", self.store_dir)
                return False
            except DaemonGone:
                remove_stale(self.store_dir)
        tmp = self.path.with_name(f".{SOCKET_NAME}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _address(tmp) as addr:
                sock.bind(addr)
            os.chmod(tmp, 0o600)  # before listen(): nobody can connect until it is private
            sock.listen(64)
            os.replace(tmp, self.path)
        except OSError:
            sock.close()
            tmp.unlink(missing_ok=True)
            raise
        st = self.path.stat()
        self._ino = (st.st_dev, st.st_ino)
        self._sock = sock
        info = {"pid": os.getpid(), "socket": SOCKET_NAME, "started": time.time(),
                "root": str(getattr(self.api, "root", ""))}
        tmp_info = self.store_dir / f".{INFO_NAME}.{os.getpid()}"
        tmp_info.write_text(json.dumps(info))
        os.replace(tmp_info, self.store_dir / INFO_NAME)
        self._thread = threading.Thread(target=self._accept_loop, name="direng-socket-accept", daemon=True)
        self._thread.start()
        log.info("serving %s on %s", self.store_dir, self.path)
        return True

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            try:
                self._pool.submit(self._handle, conn)
            except RuntimeError:  # the pool is shut down: closing
                conn.close()
                return

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                peercred = getattr(socket, "SO_PEERCRED", None)  # Linux; elsewhere the 0600 mode alone
                if peercred is not None:
                    uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i")))[1]
                    if uid != os.getuid():
                        log.warning("refused a connection from uid %d on %s", uid, self.path)
                        return
                conn.settimeout(30)
                data = _read_line(conn)
                reply = self._answer(data)
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
            except OSError as exc:  # the client went away: nothing to answer
                log.debug("socket client: %s", exc)

    def _answer(self, data: bytes) -> dict:
        try:
            req = json.loads(data)
            method, params = req.get("method"), req.get("params") or {}
            if method not in SERVED or not isinstance(params, dict):
                raise ValueError(f"not served on the socket: {method!r}")
            return {"result": jsonable(getattr(self.api, method)(**params))}
        except Exception as exc:  # noqa: BLE001 — every failure is an error reply, never a dropped line
            if not isinstance(exc, (DirEngError, TypeError, ValueError)):
                log.exception("socket request failed")
            return {"error": _error_body(exc)}

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
            _unlink_if_same(self.path, self._ino)
            info = self.store_dir / INFO_NAME
            try:
                if json.loads(info.read_text()).get("pid") == os.getpid():
                    info.unlink()
            except (OSError, ValueError):
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(2)


def _read_line(conn: socket.socket) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > MAX_REQUEST:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


def _unlink_if_same(path: Path, ino: tuple[int, int] | None) -> None:
    """Remove `path` only if it is still the file we knew (another daemon may have replaced it)."""
    try:
        st = path.lstat()
    except OSError:
        return
    if ino is None or (st.st_dev, st.st_ino) == ino:
        path.unlink(missing_ok=True)


# -- the client's side --------------------------------------------------------------------


def request(path: Path, method: str, params: dict, timeout: float = 20) -> dict:
    """One call: the reply object (`result` or `error`); DaemonGone when no daemon answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _address(path) as addr:
            sock.connect(addr)
        sock.sendall(json.dumps({"method": method, "params": params}).encode() + b"\n")
        data = _read_line(sock)
    except (OSError, ValueError) as exc:  # refused, absent, reset, timed out
        raise DaemonGone(f"{type(exc).__name__}: {exc}") from None
    finally:
        sock.close()
    if not data:
        raise DaemonGone("the daemon closed the connection without a reply")
    try:
        reply = json.loads(data)
    except ValueError:
        raise DaemonGone("the daemon's reply is not JSON") from None
    if not isinstance(reply, dict) or not ("result" in reply or "error" in reply):
        raise DaemonGone("the daemon's reply has neither result nor error")
    return reply


def remove_stale(store_dir: Path) -> None:
    """Clean up after a daemon that died without doing so: its socket (nobody listens on it, as
    connecting was just refused) and `daemon.json` when its pid is gone."""
    path = socket_path(store_dir)
    try:
        st = path.lstat()
    except OSError:
        st = None
    if st is not None:
        try:
            request(path, "health", {}, timeout=1)
            return  # it answers after all (a new daemon took the name meanwhile)
        except DaemonGone:
            _unlink_if_same(path, (st.st_dev, st.st_ino))
    info = Path(store_dir) / INFO_NAME
    try:
        pid = int(json.loads(info.read_text()).get("pid"))
    except (OSError, ValueError, TypeError):
        return
    if not pid_alive(pid):
        info.unlink(missing_ok=True)
