"""One process writes the catalog at a time: a lock file beside the database.

LanceDB lets two processes write one table, but two Glimpse updates at once each plan the same files,
so both add them (duplicate rows no later run removed), and one's compaction can preempt the other's
commit. Work that writes (an update, removing a folder, dropping an image space) holds this lock for
its whole length. It is an OS lock (`filelock`: `flock` on POSIX), so a killed process releases it.
Within a process it is reentrant and shared by threads one at a time. Whoever holds it writes who they
are beside it, so a waiting process can say whom it waits for.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout


class CatalogBusy(Exception):
    """Another process holds the writer lock and waiting was given up (cancelled)."""


class WriterLock:
    def __init__(self, folder: Path):
        self._file = FileLock(str(folder / ".writer.lock"), thread_local=False)
        self._info = folder / ".writer.json"
        self._local = threading.RLock()  # one thread of this process at a time
        self._depth = 0

    def holder(self) -> dict:
        """Who holds the lock ({} if unknown)."""
        try:
            return json.loads(self._info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @contextlib.contextmanager
    def hold(self, what: str, on_wait: Callable[[str], None] | None = None,
             cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the lock for `what` ("indexing", "removing a folder"…). While another process holds it,
        `on_wait(message)` is called once and this waits; `cancelled()` true gives up with CatalogBusy."""
        while not self._local.acquire(timeout=0.2):
            if cancelled():
                raise CatalogBusy("cancelled while waiting for the catalog")
        try:
            if self._depth == 0:
                self._acquire(what, on_wait, cancelled)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._file.release()
        finally:
            self._local.release()

    def _acquire(self, what: str, on_wait, cancelled) -> None:
        told = False
        while True:
            try:
                self._file.acquire(timeout=0.2)
                break
            except Timeout:
                if cancelled():
                    raise CatalogBusy(self.busy_message()) from None
                if not told and on_wait is not None:
                    on_wait(self.busy_message())
                    told = True
        try:
            tmp = self._info.with_name(self._info.name + f".{os.getpid()}")
            tmp.write_text(json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}), encoding="utf-8")
            os.replace(tmp, self._info)
        except OSError:
            pass  # only used for messages

    def busy_message(self) -> str:
        h = self.holder()
        who = f"another Glimpse (process {h['pid']}) is {h.get('what', 'writing')}" if h.get("pid") else \
            "another Glimpse is writing to the catalog"
        return who[0].upper() + who[1:] + "; waiting for it to finish."
