"""Helpers for the window tests: real windows on a real library, real events, and thread checks."""
from __future__ import annotations

import threading
from pathlib import Path

import shiboken6
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QThreadPool, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

WAIT = 60_000  # ms: generous, CI machines are slow; tests finish as soon as the condition holds


# Process-wide helpers that third-party libraries start once and keep, not threads of the window's.
SINGLETONS = {"LanceDBBackgroundEventLoop", "tqdm_monitor"}


def library_threads() -> list[threading.Thread]:
    """Python threads Glimpse starts (watcher, observer, catalog writer, decoders, model downloads)."""
    return [t for t in threading.enumerate()
            if t is not threading.main_thread() and not isinstance(t, threading._DummyThread)
            and t.name not in SINGLETONS]


def indexing_processes(parent: int | None = None) -> list[int]:
    """Pids of the window's indexing processes (`app.tasks.index_child`) whose parent is `parent` (this
    process by default). Linux (/proc)."""
    import os

    parent = parent or os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z" or int(fields[1]) != parent:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"app.tasks.index_child" in f.read():
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def open_window(qtbot, wait_ready: bool = True):
    from app.gui.window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.start()
    if wait_ready:
        qtbot.waitUntil(lambda: w.status is not None, timeout=WAIT)
    return w


def indexed_window(qtbot, library, folders, photos: int):
    """Index `folders` with the library, close it, and open the window on it once it shows `photos`."""
    for folder in folders:
        library.folders.add(str(folder))
    library.update()
    library.close()
    w = open_window(qtbot)
    wait_idle(qtbot, w, photos=photos)
    return w


def wait_idle(qtbot, w, photos: int | None = None) -> None:
    """Until the watcher has nothing left to do (and the status shows `photos`, if given)."""
    def idle() -> bool:
        watcher = w.backend.watcher
        if watcher is None or not watcher.idle or w.busy:
            return False
        return photos is None or (w.status is not None and w.status.photos == photos)
    qtbot.waitUntil(idle, timeout=WAIT)


def close_window(qtbot, w) -> None:
    """Close as the user does, then prove nothing is left running."""
    w.close()
    try:
        qtbot.waitUntil(lambda: not library_threads(), timeout=WAIT)
    except Exception:
        raise AssertionError(f"threads left running after close: {[t.name for t in library_threads()]}") from None
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    if shiboken6.isValid(w.thumbs.pool):
        assert w.thumbs.pool.activeThreadCount() == 0


def answered(w) -> bool:
    """The results on screen answer the latest query."""
    return (w.last_answer is not None and w.request is not None and w.last_answer.request.generation == w.request.generation
            and not w.backend.searching)


def search(qtbot, w, text: str) -> None:
    w.search.edit.setFocus()
    w.search.edit.clear()
    qtbot.keyClicks(w.search.edit, text)
    qtbot.keyClick(w.search.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: answered(w) and w.request.text == text, timeout=WAIT)


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drop(widget, mime: QMimeData) -> bool:
    """A real drag-enter then drop, as Qt delivers them; returns whether the drag was accepted."""
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return True


def browse(qtbot, w) -> None:
    """Clear the query and wait for the library itself (every photo, newest first) up to date."""
    w.search.clear()
    w.run_search()
    qtbot.waitUntil(lambda: w.request.browsing and answered(w), timeout=WAIT)
