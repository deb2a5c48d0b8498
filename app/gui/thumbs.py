"""Thumbnails for the grid, made and read off the GUI thread, newest request first.

The view asks only for the cells it paints, so a 10,000-result grid loads a screenful. Each request is
a QRunnable on a small pool of its own; its priority grows with every request, so what was just
scrolled into view is served before what scrolled past. `forget_queue()` drops requests not yet
started when the results change. QImages are made in the workers, QPixmaps (GUI-thread only) here.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

CACHE_ITEMS = 3000  # pixmaps kept in memory (256 px JPEGs: ~200 MB at most)


class _Relay(QObject):
    # object, not str: a path that is not valid UTF-8 (a lone surrogate) would come out of a QString changed.
    done = Signal(object, object)  # path, QImage | None


class _Load(QRunnable):
    def __init__(self, path: str, source: Callable[[str], str], relay: _Relay):
        super().__init__()
        self.path, self.source, self.relay = path, source, relay

    def run(self) -> None:
        image = None
        try:
            image = QImage(str(self.source(self.path)))
            if image.isNull():
                image = None
        except Exception:  # unreadable photo: shown as a broken tile, listed by the indexer already
            image = None
        self.relay.done.emit(self.path, image)


class ThumbnailLoader(QObject):
    loaded = Signal(object)  # a path (str) whose thumbnail (or failure) is now known

    def __init__(self, parent: QObject | None = None, threads: int = 2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._source: Callable[[str], str] | None = None
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        self._failed: set[str] = set()
        self._priority = 0
        self.requested = 0  # requests sent to the pool (the tests check that loading is lazy)
        self._relay = _Relay(self)
        self._relay.done.connect(self._done)

    def set_source(self, source: Callable[[str], str]) -> None:
        """`source(path)` returns a thumbnail file for the photo (made if needed); it runs in a worker."""
        self._source = source

    def pixmap(self, path: str) -> QPixmap | None:
        """The thumbnail if loaded; otherwise None, and a load is queued."""
        pm = self._cache.get(path)
        if pm is not None:
            self._cache.move_to_end(path)
            return pm
        if path not in self._pending and path not in self._failed and self._source is not None:
            self._pending.add(path)
            self._priority += 1
            self.requested += 1
            self.pool.start(_Load(path, self._source, self._relay), self._priority)
        return None

    def failed(self, path: str) -> bool:
        return path in self._failed

    def forget_queue(self) -> None:
        """Drop requests that have not started (the results they were for are gone)."""
        self.pool.clear()
        self._pending.clear()

    def retry_failed(self) -> None:
        """Files change (a half-copied photo is complete now): failed thumbnails are tried again."""
        self._failed.clear()

    def _done(self, path: str, image: QImage | None) -> None:
        self._pending.discard(path)
        if image is None:
            self._failed.add(path)
        else:
            self._cache[path] = QPixmap.fromImage(image)
            while len(self._cache) > CACHE_ITEMS:
                self._cache.popitem(last=False)
        self.loaded.emit(path)

    def close(self) -> None:
        """No more loads (a paint after the window closed asks for none), and wait for those running."""
        self._source = None
        self.pool.clear()
        self.pool.waitForDone()
