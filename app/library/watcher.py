"""Keeping the index current while the app runs: watchdog's native observer plus reconcile scans.

File-system events only say where to look. They are collected and debounced: nothing happens until no
event has arrived for `quiet` seconds (a file being copied keeps sending events; after `max_wait` the
batch goes anyway, and a file caught half-written is redone at its next event), then the touched files
and folders are rescanned with the scanner and indexed, so the catalog always follows what is on disk,
not what the events claimed. A full reconcile scan runs at start, after the kernel's event queue
overflowed, every `reconcile_every` seconds, and when a root that was missing comes back.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .formats import is_photo_name
from .indexer import Control, Progress
from .library import Library, Update

log = logging.getLogger(__name__)


class _Events(FileSystemEventHandler):
    def __init__(self, watcher: "Watcher"):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            path = os.fsdecode(path)
            if event.is_directory or is_photo_name(os.path.basename(path)):
                self.watcher.touch(path)


class _Overflow(logging.Handler):
    """watchdog logs a queue overflow but sends no event for it: listen to its log."""

    def __init__(self, watcher: "Watcher"):
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher.request_reconcile()


class Watcher:
    def __init__(self, library: Library, on_update: Callable[[Update], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None, quiet: float = 1.0,
                 reconcile_every: float | None = 900.0, control: Control | None = None, max_wait: float = 10.0,
                 on_busy: Callable[[bool], None] | None = None, observe: bool = True):
        self.library = library
        self.on_update = on_update
        self.on_progress = on_progress
        self.on_busy = on_busy  # called with True when work starts and False when it ends
        self.observe = observe  # False: no file events, only reconcile scans (at start, on request, periodic)
        self.quiet = quiet
        self.max_wait = max_wait  # a file that never stops changing does not hold back the others
        self.reconcile_every = reconcile_every
        self.control = control or Control()
        self._pending: set[str] = set()
        self._last_event = 0.0
        self._first_event = 0.0
        self._reconcile = True  # at start
        self._wake = threading.Condition()
        self._stop = False
        self._observer = None
        self._watched: dict[str, object] = {}
        self._thread: threading.Thread | None = None
        self._overflow = _Overflow(self)
        self.error: str | None = None

    # -- event side (observer thread) ---------------------------------------------------------------
    def touch(self, path: str) -> None:
        with self._wake:
            if not self._pending:
                self._first_event = time.monotonic()
            self._pending.add(path)
            self._last_event = time.monotonic()
            self._wake.notify()

    def request_reconcile(self) -> None:
        with self._wake:
            self._reconcile = True
            self._wake.notify()

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> "Watcher":
        logging.getLogger("watchdog").addHandler(self._overflow)
        if self.observe:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
            self._watch_roots()
        self._thread = threading.Thread(target=self._loop, name="glimpse-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self.control.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        logging.getLogger("watchdog").removeHandler(self._overflow)

    @property
    def idle(self) -> bool:
        """True when no change is waiting to be indexed."""
        with self._wake:
            return not self._pending and not self._reconcile and not self._busy

    _busy = False

    def _watch_roots(self) -> None:
        if self._observer is None:
            return
        roots = set(self.library.folders.list())
        for root in list(self._watched):
            if root not in roots or not os.path.isdir(root):
                self._observer.unschedule(self._watched.pop(root))
        for root in roots - set(self._watched):
            if os.path.isdir(root):
                try:
                    self._watched[root] = self._observer.schedule(_Events(self), root, recursive=True)
                except OSError as e:  # e.g. the inotify watch limit
                    self.error = f"{root}: cannot watch for changes ({e}); rescanning every few minutes instead"

    # -- work side (watcher thread) ------------------------------------------------------------------
    def _loop(self) -> None:
        next_reconcile = time.monotonic() + (self.reconcile_every or float("inf"))
        while True:
            with self._wake:
                while not self._stop:
                    now = time.monotonic()
                    if self._reconcile:
                        break
                    if self._pending and (now - self._last_event >= self.quiet
                                          or now - self._first_event >= self.max_wait):
                        break
                    if now >= next_reconcile:
                        self._reconcile = True
                        break
                    wait = self.quiet if self._pending else min(5.0, max(0.05, next_reconcile - now))
                    self._wake.wait(wait)
                if self._stop:
                    return
                full, self._reconcile = self._reconcile, False
                only = None if full else sorted(self._pending)
                self._pending.clear()
                self._busy = True
            if self.on_busy:
                self.on_busy(True)
            try:
                if full:
                    self._watch_roots()
                    next_reconcile = time.monotonic() + (self.reconcile_every or float("inf"))
                update = self.library.update(self.on_progress, self.control, only=only)
                if self.on_update and (update.plan.changes or update.plan.problems):
                    self.on_update(update)
            except Exception as e:  # keep watching; the next change or reconcile retries
                self.error = str(e)
                log.warning("watcher: %s", e)
            finally:
                with self._wake:
                    self._busy = False
                if self.on_busy:
                    self.on_busy(False)
