"""The main window: the search field and the results grid, the preview, the library panel, the status bar.

Nothing here touches the disk, the model or the database: every request goes to `Backend`, and its
answers come back as signals. The window only arranges widgets and keeps track of what is on screen.
"""
from __future__ import annotations

import itertools
import os

from PySide6.QtCore import QByteArray, QModelIndex, QPoint, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QDockWidget, QHBoxLayout, QLabel, QMainWindow, QMenu, QProgressBar,
                               QStackedWidget, QVBoxLayout, QWidget)
from superqt import QElidingLabel
from superqt.utils import create_worker

from app.library.paths import Paths
from app.library.settings import Settings

from . import actions
from .backend import Backend, SearchAnswer, SearchRequest
from .drops import classify, may_hold_something, save_query_image
from .filterbar import FilterBar
from .grid import ResultsView
from .library_panel import LibraryPanel
from .results import PathRole, ResultsModel
from .searchbar import QueryImage, SearchBar
from .settings_dialog import SettingsDialog
from .theme import apply_theme
from .thumbs import ThumbnailLoader
from .viewer import Viewer
from .widgets import tool_button
from .welcome import Welcome

PAGE = 200               # results fetched per page while scrolling
REFRESH_AFTER_MS = 1500  # after the library changes, the visible answer is refreshed at most this often
NOTICE_MS = 9000


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None):
        super().__init__()
        self.settings = settings or Settings(Paths.default().settings_file)
        self.paths = Paths.default()
        self.backend = Backend(self.settings, self)
        self.thumbs = ThumbnailLoader(self)
        self.model = ResultsModel(self.thumbs, self)
        self.status: dict | None = None
        self.busy = False
        self._last_progress = None
        self._generation = itertools.count(1)
        self.request: SearchRequest | None = None   # the answer on screen (or coming) is for this
        self.last_answer: SearchAnswer | None = None
        self._closing = False
        self.page_size = PAGE
        self.setWindowTitle("Glimpse")
        self.setAcceptDrops(True)
        self.resize(1200, 800)
        self._build()
        self._connect()
        self._restore()

    # -- building ------------------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 8, 8, 0)
        self.top = QWidget(central)
        top = QHBoxLayout(self.top)
        top.setContentsMargins(0, 0, 0, 0)
        self.search = SearchBar(self.thumbs, central)
        self.search.edit.setAcceptDrops(False)  # drops on the field are image queries, not text
        top.addWidget(self.search, 1)
        self.library_button = tool_button(self, "Library", "Folders, indexing and unreadable files", flat=False,
                                          checkable=True)
        self.settings_button = tool_button(self, "Settings", "Folders, model and appearance (Ctrl+,)", flat=False)
        top.addWidget(self.library_button)
        top.addWidget(self.settings_button)
        outer.addWidget(self.top)
        self.filters = FilterBar(central)
        outer.addWidget(self.filters)
        self.notice = QLabel(central)
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        self.notice.setObjectName("notice")
        self.notice.setStyleSheet("#notice { background: palette(alternate-base); border: 1px solid palette(mid);"
                                  " border-radius: 4px; padding: 6px; }")
        outer.addWidget(self.notice)
        self._notice_timer = QTimer(self, singleShot=True, interval=NOTICE_MS, timeout=lambda: self.notice.hide())

        self.pages = QStackedWidget(central)
        self.opening = QLabel("Opening your library…", self.pages, alignment=Qt.AlignmentFlag.AlignCenter)
        self.welcome = Welcome(self.backend, self.pages)
        self.results_page = QStackedWidget(self.pages)
        self.view = ResultsView(self.results_page)
        self.view.setModel(self.model)
        self.empty = QLabel(self.results_page, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.empty.setObjectName("empty")
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.results_page.addWidget(self.empty)
        self.results_page.addWidget(self.view)
        self.viewer = Viewer(self.backend.photo_details, self.pages)
        for w in (self.opening, self.welcome, self.results_page, self.viewer):
            self.pages.addWidget(w)
        outer.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.panel = LibraryPanel(self)
        self.dock = QDockWidget("Library", self)
        self.dock.setObjectName("library-dock")
        self.dock.setWidget(self.panel)
        self.dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()

        bar = self.statusBar()
        self.status_text = QElidingLabel("", self)
        bar.addWidget(self.status_text, 1)
        self.progress_text = QLabel("", self)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(False)
        self.pause_button = tool_button(self, "Pause", "Pause indexing (search keeps working)", flat=False,
                                        checkable=True)
        for w in (self.progress_text, self.progress_bar, self.pause_button):
            bar.addPermanentWidget(w)
            w.hide()
        self.count_text = QLabel("", self)
        bar.addPermanentWidget(self.count_text)
        self.pages.currentChanged.connect(self._page_changed)
        self.pages.setCurrentWidget(self.opening)
        self._show_empty()

    def _page_changed(self, _index: int) -> None:
        """The search field and filters belong to the results and the preview, not to the welcome."""
        searching = self.pages.currentWidget() in (self.results_page, self.viewer)
        self.top.setVisible(searching)
        self.filters.setVisible(searching)

    def _connect(self) -> None:
        be = self.backend
        be.opened.connect(self._opened)
        be.open_failed.connect(self._open_failed)
        be.status_changed.connect(self._status)
        be.errors_changed.connect(self.panel.set_errors)
        be.busy_changed.connect(self._busy)
        be.progress.connect(self._progress)
        be.library_changed.connect(self._library_changed)
        be.answered.connect(self._answered)
        be.search_failed.connect(self._search_failed)
        be.message.connect(self.show_notice)
        be.pull_finished.connect(lambda model_id, _m: model_id and self.backend.refresh_status())

        self.search.changed.connect(self.run_search)
        self.search.submitted.connect(self.run_search)
        self.search.paste_requested.connect(self.paste)
        self.filters.changed.connect(self.run_search)
        self.model.more_wanted.connect(self._more)
        self.view.open_requested.connect(self.open_preview)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.viewer.closed.connect(self.close_preview)
        self.viewer.moved.connect(lambda row: self.view.setCurrentIndex(self.model.index(row)))
        self.viewer.find_similar.connect(self.find_similar)
        self.viewer.open_requested.connect(actions.open_in_viewer)
        self.viewer.reveal_requested.connect(actions.reveal)
        self.viewer.copy_requested.connect(lambda p: self._copy([p]))
        self.welcome.done.connect(self._welcome_done)
        self.library_button.toggled.connect(self._toggle_library)
        self.dock.visibilityChanged.connect(self.library_button.setChecked)
        self.settings_button.clicked.connect(self.open_settings)
        self.panel.folders.add_requested.connect(self.backend.add_folder)
        self.panel.folders.remove_requested.connect(self.backend.remove_folder)
        self.panel.folders.rescan_requested.connect(self.backend.rescan)
        self.panel.reveal_requested.connect(actions.reveal)
        self.pause_button.toggled.connect(self._pause)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_AFTER_MS, timeout=self._refresh)

        shortcuts = [
            (QKeySequence.StandardKey.Find, self.focus_search),
            (QKeySequence(Qt.Key.Key_Escape), self._escape),
            (QKeySequence.StandardKey.Paste, self.paste),
            (QKeySequence.StandardKey.Preferences, self.open_settings),
            (QKeySequence("Ctrl+,"), self.open_settings),
            (QKeySequence("Ctrl+L"), lambda: self.library_button.toggle()),
            (QKeySequence.StandardKey.Quit, self.close),
        ]
        for key, slot in shortcuts:
            QShortcut(key, self, activated=slot)
        self.search.edit.installEventFilter(self)

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the library in the background (the window is already on screen)."""
        self.backend.open()

    def _restore(self) -> None:
        state = self.settings["gui"] or {}
        if state.get("geometry"):
            self.restoreGeometry(QByteArray.fromBase64(state["geometry"].encode()))
        if state.get("state"):
            self.restoreState(QByteArray.fromBase64(state["state"].encode()))
        self.filters.set_sort(state.get("sort", "relevance"))
        self.theme = state.get("theme", "system")
        apply_theme(self.theme)

    def save_state(self) -> None:
        self.settings["gui"] = {**(self.settings["gui"] or {}),
                                "geometry": bytes(self.saveGeometry().toBase64()).decode(),
                                "state": bytes(self.saveState().toBase64()).decode(),
                                "sort": self.filters.sort_value, "theme": self.theme}

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:
            event.accept()
            return
        self._closing = True
        self.save_state()
        self.hide()
        self._refresh_timer.stop()
        self.thumbs.close()
        self.backend.close()
        event.accept()

    def _opened(self, status: dict) -> None:
        self._status(status)
        if status["folders"] and status["has_model"]:
            self.pages.setCurrentWidget(self.results_page)
            self.focus_search()
        else:
            self.pages.setCurrentWidget(self.welcome)
        self.thumbs.set_source(lambda path, lib=self.backend.library: str(lib.thumbnails.get(path)))
        self.backend.refresh_errors()
        if not self.search.text and not self.search.images:
            return
        self.run_search()

    def _open_failed(self, message: str) -> None:
        self.opening.setText(f"<h3>Glimpse could not open its library</h3><p>{message}</p>")
        self.opening.setWordWrap(True)

    def _welcome_done(self) -> None:
        self.pages.setCurrentWidget(self.results_page)
        self._show_empty()
        self.focus_search()

    # -- library state -------------------------------------------------------------------------------
    def _status(self, status: dict) -> None:
        self.status = status
        self.panel.set_status(status)
        self.welcome.set_status(status)
        self.filters.set_folders(list(status["folders"]))
        self.count_text.setText(f"{status['photos']:,} photos")
        problems = [f"{root}: {info['problem']}" for root, info in status["folders"].items() if info.get("problem")]
        if problems:
            self.status_text.setText(" · ".join(problems))
        self._show_empty()

    def _busy(self, busy: bool) -> None:
        self.busy = busy
        for w in (self.progress_text, self.progress_bar, self.pause_button):
            w.setVisible(busy)
        if busy:
            self.progress_text.setText("Looking for changes…")
            self.progress_bar.setRange(0, 0)
        else:
            self.status_text.setText("Library up to date.")
            self.backend.refresh_errors()
            self._library_changed()
        self._show_empty()

    def _progress(self, p) -> None:
        self._last_progress = p
        if not self.busy:
            self._busy(True)
        self.progress_bar.setRange(0, max(1, p.total))
        self.progress_bar.setValue(p.done)
        rate = f" · {p.rate:.1f} photos/s" if p.rate > 0 else ""
        eta = format_eta(p.eta_s)
        paused = "Paused: " if self.backend.paused else "Indexing "
        self.progress_text.setText(f"{paused}{p.done:,} of {p.total:,}{rate}{' · ' + eta if eta else ''}")
        self.progress_text.setToolTip(p.current)

    def _pause(self, paused: bool) -> None:
        self.backend.set_paused(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setToolTip("Resume indexing" if paused else "Pause indexing (search keeps working)")
        if self.busy and self._last_progress is not None:
            self._progress(self._last_progress)

    def _library_changed(self) -> None:
        self.thumbs.retry_failed()
        if self.request is not None and not self.request.empty and not self._refresh_timer.isActive():
            self._refresh_timer.start()
        self.backend.refresh_status()

    def _refresh(self) -> None:
        """Photos were indexed or removed: ask again, keeping the selection and the scroll position."""
        if self.request is None or self.request.empty or self.pages.currentWidget() is self.viewer:
            return
        self._send(fresh=True, k=max(self.page_size, self.model.rowCount()))

    # -- searching -----------------------------------------------------------------------------------
    def run_search(self) -> None:
        self._send(fresh=False, k=self.page_size)

    def _send(self, fresh: bool, k: int) -> None:
        images = tuple(i.path for i in self.search.images if i.kind == "image")
        similar = tuple(i.path for i in self.search.images if i.kind == "similar")
        request = SearchRequest(next(self._generation), self.search.text, images, similar,
                                self.filters.folder_value, self.filters.after_value, self.filters.before_value,
                                self.filters.sort_value, 0, k, fresh)
        self.request = request
        if request.empty:
            self.last_answer = None
            self.model.clear()
            self._show_empty()
            return
        self.backend.search(request)

    def _more(self) -> None:
        if self.request is None or self.request.empty:
            return
        r = self.request
        self.backend.search(SearchRequest(r.generation, r.text, r.images, r.similar, r.folder, r.after, r.before,
                                          r.sort, self.model.rowCount(), self.page_size, False))

    def _answered(self, answer: SearchAnswer) -> None:
        if self.request is None or answer.request.generation != self.request.generation:
            return  # an answer to a query the user has already changed
        if answer.request.offset:
            if answer.request.offset == self.model.rowCount():
                self.model.append(answer.results, answer.more)
        else:
            # A refresh of what is on screen (the library changed) keeps the selection and the scroll.
            refresh = answer.request.fresh or (self.last_answer is not None
                                               and self.last_answer.request is answer.request)
            keep = self.view.currentIndex().data(PathRole) if refresh else None
            scroll = self.view.verticalScrollBar().value()
            self.model.set_results(answer.results, answer.more)
            if keep is not None:
                rows = [i for i, r in enumerate(answer.results) if r.path == keep]
                if rows:
                    self.view.setCurrentIndex(self.model.index(rows[0]))
            if refresh:
                self.view.verticalScrollBar().setValue(scroll)
            else:
                self.view.scrollToTop()
        self.last_answer = answer
        shown = self.model.rowCount()
        self.status_text.setText(f"{shown:,}{'+' if answer.more else ''} results in {answer.seconds * 1000:.0f} ms")
        self._show_empty()

    def _search_failed(self, generation: int, message: str) -> None:
        if self.request is not None and generation == self.request.generation:
            self.model.clear()
            self.show_notice(message)
            self._show_empty(message)

    def _show_empty(self, error: str | None = None) -> None:
        has_results = self.model.rowCount() > 0
        self.results_page.setCurrentWidget(self.view if has_results else self.empty)
        if has_results:
            return
        s = self.status
        if s is None:
            text = "Opening your library…"
        elif error:
            text = f"<h3>That search did not work</h3><p>{error}</p>"
        elif not s["folders"]:
            text = ("<h3>Add a folder of photos to start</h3><p>Drop a folder here, or open "
                    "<b>Library</b> and choose <b>Add folder…</b></p>")
        elif not s.get("has_model"):
            text = "<h3>Glimpse needs a model</h3><p>Open <b>Settings → Model</b> to download or import one.</p>"
        elif s["photos"] == 0:
            text = ("<h3>Indexing your photos…</h3><p>Results appear as soon as the first photos are indexed.</p>"
                    if self.busy else "<h3>No photos found yet</h3><p>Glimpse found no photos in your folders. "
                    "Add another folder in <b>Library</b>.</p>")
        elif self.request is None or self.request.empty:
            text = (f"<h3>Describe a photo, or drop one here</h3><p>{s['photos']:,} photos are searchable. Try "
                    "<i>beach at sunset</i>, or <i>cat + snow - indoor</i>. Paste an image with Ctrl+V.</p>")
        else:
            text = "<h3>No photos match</h3><p>Try another description, or widen the folder and date filters.</p>"
        self.empty.setText(text)

    # -- image queries -------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if may_hold_something(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if may_hold_something(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        self.take(event.mimeData())
        event.acceptProposedAction()

    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        if mime is None or not (mime.hasImage() or mime.hasUrls()):
            self.show_notice("The clipboard holds no image. Copy a photo (or an image file) first, then paste.")
            return
        self.take(mime)

    def take(self, mime) -> None:
        """Images become query chips; folders are added to the library; anything else is explained."""
        dropped = classify(mime)
        if dropped.image_data is not None:  # pixels without a file: saved as a PNG off the GUI thread
            create_worker(save_query_image, dropped.image_data, self.paths.cache / "queries", _ignore_errors=True,
                          _connect={"returned": lambda path: self._query_images([path]),
                                    "errored": lambda e: self.show_notice(f"Could not use the pasted image: {e}")})
        if dropped.rejected:
            self.show_notice(dropped.rejection())
        if self.backend.library is not None:
            for folder in dropped.folders:
                self.backend.add_folder(folder)
        self._query_images(dropped.images)

    def _query_images(self, paths: list[str]) -> None:
        if paths:
            self.close_preview()
            for path in paths:
                self.search.add_image(QueryImage(path))

    def find_similar(self, path: str) -> None:
        self.close_preview()
        self.search.clear()
        self.search.add_image(QueryImage(path, "similar"))

    # -- results -------------------------------------------------------------------------------------
    def selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.view.selectedIndexes()})
        if not rows and self.view.currentIndex().isValid():
            rows = [self.view.currentIndex().row()]
        return [self.model.result(r).path for r in rows]

    def _context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        if not self.view.selectionModel().isSelected(index):
            self.view.setCurrentIndex(index)
        paths = self.selected_paths()
        path = self.model.result(index.row()).path
        menu = QMenu(self)
        menu.addAction("Preview", lambda: self.open_preview(index))
        menu.addAction("Find similar", lambda: self.find_similar(path))
        menu.addSeparator()
        menu.addAction("Open", lambda: [actions.open_in_viewer(p) for p in paths])
        menu.addAction("Show in folder", lambda: actions.reveal(path))
        menu.addAction("Copy path" if len(paths) == 1 else f"Copy {len(paths)} paths", lambda: self._copy(paths))
        menu.exec(self.view.viewport().mapToGlobal(pos))

    def _copy(self, paths: list[str]) -> None:
        actions.copy_paths(paths)
        self.status_text.setText(f"Copied {paths[0]}" if len(paths) == 1 else f"Copied {len(paths)} paths")

    def open_preview(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        self.viewer.show_results([self.model.result(r) for r in range(self.model.rowCount())], index.row())
        self.pages.setCurrentWidget(self.viewer)
        self.viewer.setFocus()

    def close_preview(self) -> None:
        if self.pages.currentWidget() is self.viewer:
            self.pages.setCurrentWidget(self.results_page)
            self.view.setFocus()
            if self.view.currentIndex().isValid():
                self.view.scrollTo(self.view.currentIndex())

    # -- keyboard and panels ------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.close_preview()
        self.search.edit.setFocus()
        self.search.edit.selectAll()

    def _escape(self) -> None:
        if self.pages.currentWidget() is self.viewer:
            self.close_preview()
        else:
            self.search.clear()
            self.search.edit.setFocus()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.search.edit and event.type() == event.Type.KeyPress and event.key() == Qt.Key.Key_Down \
                and self.model.rowCount():
            self.view.setFocus()
            if not self.view.currentIndex().isValid():
                self.view.setCurrentIndex(self.model.index(0))
            return True
        return super().eventFilter(obj, event)

    def _toggle_library(self, on: bool) -> None:
        self.dock.setVisible(on)
        if on:
            self.backend.refresh_status()
            self.backend.refresh_errors()

    def open_settings(self) -> SettingsDialog | None:
        if self.backend.library is None:
            return None
        dialog = getattr(self, "settings_dialog", None)
        if dialog is None:
            dialog = self.settings_dialog = SettingsDialog(self.backend, self.theme, self)
            dialog.theme_changed.connect(self._set_theme)
        dialog.show()
        dialog.raise_()
        return dialog

    def _set_theme(self, theme: str) -> None:
        self.theme = theme
        apply_theme(theme)
        self.save_state()

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()
        self._notice_timer.start()
        self.status_text.setText(text.splitlines()[0])
