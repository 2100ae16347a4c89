"""The refresh daemon (the Vector-Ops lane's engine): keep an index fresh within seconds.

Filesystem events (watchdog: inotify on Linux, polling elsewhere) and moves of git HEAD both
wake it; after a short debounce it runs an incremental refresh, which touches only files
whose content hash changed. A second thread fills MiniLM vectors in small batches while
nothing is pending, yielding as soon as a change arrives — so a commit is searchable in about
a second even while the background embedding (and the model's own loading) is far from done.

The filling is idle-time work in the strict sense. It waits while this process answers a query
(and for `QUERY_QUIET_S` after), and its thread runs at the lowest CPU priority — as do the
OpenMP workers torch starts from it — so that neither the queries this daemon serves nor other
processes (a one-shot `direng search`, the user's own programs) compete with it for the cores.
Before, a one-shot search beside a filling daemon spent two thirds of its time waiting for a
CPU (`docs/benchmarks.md`, "CLI latency").
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

from . import git
from .vector_location import RETRY_S as VECTORS_RETRY_S, VectorStoreError

log = logging.getLogger(__name__)
IGNORED_PARTS = {".direng", "__pycache__", "node_modules", ".venv", ".ipynb_checkpoints"}
QUERY_QUIET_S = 1.0  # the filling resumes this long after the last query ended


def lower_thread_priority() -> bool:
    """Give the calling thread (and the threads it starts from now on) the lowest CPU priority.
    Linux only: there the nice value is per thread; elsewhere it would slow the whole process."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError as exc:
        log.debug("cannot lower the MiniLM thread's priority: %s", exc)
        return False
    return True


class RefreshDaemon:
    def __init__(self, workbench, *, debounce: float = 0.15, poll: float = 0.5, dense: bool = True,
                 dense_batch: int = 32):
        self.wb = workbench
        workbench.set_static_cache(False)  # a long-lived process: its search patches its own matrix
        self.debounce = debounce
        self.poll = poll
        self.dense = dense
        self.dense_batch = dense_batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = threading.Event()  # a refresh is running
        self.first_refresh = threading.Event()  # set once the first pass is done (or on stop)
        self._thread: threading.Thread | None = None
        self._dense_thread: threading.Thread | None = None
        self._observer = None
        self.last_report = None
        self.last_error: str | None = None
        self._vectors_error: str | None = None  # why the MiniLM filling is paused, if it is
        self.refreshes = 0

    # -- change detection -------------------------------------------------------
    def _on_event(self, path: str) -> None:
        parts = Path(path).parts
        if IGNORED_PARTS.intersection(parts):
            return
        if ".git" in parts and not any(p in ("HEAD", "refs", "packed-refs", "index") for p in parts):
            return
        self._wake.set()

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # polling through HEAD and the periodic scan still works
            log.warning("watchdog is not installed: refreshing by polling only")
            return
        daemon = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type in ("opened", "closed_no_write"):
                    return
                daemon._on_event(event.src_path)
                if getattr(event, "dest_path", ""):
                    daemon._on_event(event.dest_path)

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.wb.root), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    # -- loop -------------------------------------------------------------------
    def refresh_now(self):
        try:
            self.last_report = self.wb.index()
            self.last_error = None
            self.refreshes += 1
        except Exception as exc:  # noqa: BLE001 — keep watching; surface the error in status
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("refresh failed: %s", self.last_error)
        return self.last_report

    def _loop(self) -> None:
        head = git.head_commit(self.wb.root)
        self._refresh()
        while not self._stop.is_set():
            woke = self._wake.wait(self.poll)
            if self._stop.is_set():
                break
            new_head = git.head_commit(self.wb.root)
            if woke or new_head != head:
                time.sleep(self.debounce)  # let an editor's save or git's checkout settle
                head = new_head
                self._refresh()

    def _refresh(self) -> None:
        self._busy.set()
        self._wake.clear()
        try:
            self.refresh_now()
        finally:
            self._busy.clear()
            self.first_refresh.set()

    def _dense_loop(self) -> None:
        """Fill MiniLM vectors in small batches, on its own thread so a refresh never waits for it
        (loading the model alone takes seconds); each batch yields as soon as a change arrives."""
        lower_thread_priority()

        def interrupted() -> bool:
            return (self._stop.is_set() or self._wake.is_set() or self._busy.is_set()
                    or self.wb.busy_answering(QUERY_QUIET_S))

        while not self._stop.is_set():
            if interrupted() or self.refreshes == 0:
                time.sleep(0.1)
                continue
            try:
                done = self.wb.fill_dense(limit=self.dense_batch, should_stop=interrupted)
            except VectorStoreError as exc:  # a vector server down: try again later, say why once
                if self._vectors_error != str(exc):
                    log.warning("MiniLM filling paused, retrying every %.0f s: %s", VECTORS_RETRY_S, exc)
                self.last_error = self._vectors_error = str(exc)
                self._stop.wait(VECTORS_RETRY_S)
                continue
            except Exception as exc:  # noqa: BLE001 — keep refreshing without vectors; say why
                self.last_error = f"dense embedding: {type(exc).__name__}: {exc}"
                log.error("%s", self.last_error)
                return
            if self._vectors_error is not None:  # the server answers again
                log.info("MiniLM filling resumed")
                if self.last_error == self._vectors_error:
                    self.last_error = None
                self._vectors_error = None
            if done == 0:
                self._stop.wait(1.0)

    def start(self) -> "RefreshDaemon":
        self._start_observer()
        self._thread = threading.Thread(target=self._loop, name="direng-refresh", daemon=True)
        self._thread.start()
        if self.dense:
            self._dense_thread = threading.Thread(target=self._dense_loop, name="direng-dense", daemon=True)
            self._dense_thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self.first_refresh.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
        for thread in (self._thread, self._dense_thread):
            if thread is not None:
                thread.join(timeout)

    def run_forever(self) -> None:
        self.start()
        try:
            while self._thread and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()
