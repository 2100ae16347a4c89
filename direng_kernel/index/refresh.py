"""The refresh daemon (the Vector-Ops lane's engine): keep an index fresh within seconds.

Filesystem events (watchdog: inotify on Linux, polling elsewhere) and moves of git HEAD both
wake it; after a short debounce it runs an incremental refresh, which touches only files
whose content hash changed. When nothing is pending it spends idle time filling MiniLM
vectors in small batches, yielding as soon as a new change arrives — so a commit is
searchable in about a second even while the background embedding is far from done.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from . import git

log = logging.getLogger(__name__)
IGNORED_PARTS = {".direng", "__pycache__", "node_modules", ".venv"}


class RefreshDaemon:
    def __init__(self, workbench, *, debounce: float = 0.15, poll: float = 0.5, dense: bool = True,
                 dense_batch: int = 32):
        self.wb = workbench
        self.debounce = debounce
        self.poll = poll
        self.dense = dense
        self.dense_batch = dense_batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer = None
        self.last_report = None
        self.last_error: str | None = None
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
        self.refresh_now()
        while not self._stop.is_set():
            woke = self._wake.wait(self.poll)
            if self._stop.is_set():
                break
            new_head = git.head_commit(self.wb.root)
            if woke or new_head != head:
                time.sleep(self.debounce)  # let an editor's save or git's checkout settle
                self._wake.clear()
                head = new_head
                self.refresh_now()
                continue
            if self.dense:
                try:
                    self.wb.fill_dense(limit=self.dense_batch, should_stop=self._wake.is_set)
                except Exception as exc:  # noqa: BLE001
                    self.last_error = f"dense embedding: {type(exc).__name__}: {exc}"
                    log.error("%s", self.last_error)
                    self.dense = False

    def start(self) -> "RefreshDaemon":
        self._start_observer()
        self._thread = threading.Thread(target=self._loop, name="direng-refresh", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        self.start()
        try:
            while self._thread and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()
