"""The main window: the search field and the results grid, the preview, the library panel, the status bar.

Before anything is typed, the grid shows the library itself, newest first with month headers; a
search refines it, and clearing the query returns to it at the place left. A search shows only the
matches above its relevance floor, and says so when nothing in the library looks like the query.

Nothing here touches the disk, the model or the database: every request goes to `Backend`, and its
answers come back as signals. The window arranges widgets and keeps what is on screen; the search
session (`app.library.session`), the job display (`jobbar`), drops and pastes (`drops`) and the keys
and menus (`menus`) live in modules of their own.
"""
from __future__ import annotations

import gc
import os

from PySide6.QtCore import QByteArray, QModelIndex, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (QApplication, QDockWidget, QHBoxLayout, QLabel, QMainWindow, QStackedWidget,
                               QVBoxLayout, QWidget)
from superqt import QElidingLabel

from app.library.paths import Paths
from app.library.session import SearchAnswer, SearchRequest, Session
from app.library.settings import Settings
from app.library.status import LibraryStatus

from . import actions, menus
from .backend import Backend
from .drops import DropHandler
from .empty import empty_text
from .filterbar import FilterBar
from .grid import ROW_HEIGHT, ResultsView, zoom_slider
from .backend import INDEXING_STARTS
from .jobbar import UP_TO_DATE, JobBar
from .jobs import IndexTask
from .library_panel import LibraryPanel
from .results import PathRole, ResultsModel
from .searchbar import QueryImage, SearchBar
from .settings_dialog import SettingsDialog
from .theme import apply_theme
from .thumbs import ThumbnailLoader
from .viewer import Viewer
from .widgets import Notice, tool_button
from .welcome import Welcome

PAGE = 200               # results fetched per page while scrolling
REFRESH_AFTER_MS = 1500  # after the library changes, the visible answer is refreshed at most this often
NOTICE_MS = 9000
CLOSEST = "These are the closest photos."
LIVE_MS = 1000           # how often counts and results follow an indexing run


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None):
        super().__init__()
        self.settings = settings or Settings(Paths.default().settings_file)
        self.paths = Paths.default()
        self.backend = Backend(self.settings, self)
        self.thumbs = ThumbnailLoader(self)
        self.model = ResultsModel(self.thumbs, self)
        self.status: LibraryStatus | None = None
        self.session = Session(PAGE)
        self.drops = DropHandler(self.paths.cache, self)
        self._closing = False
        self._browse_place: tuple | None = None  # the library's filters, rows shown and scroll when a search began
        self._scroll_back: int | None = None     # where the library's next answer scrolls to
        self._answer_said = ""                    # the status text the last answer set
        self.setWindowTitle("Glimpse")
        self.setAcceptDrops(True)
        self.resize(1200, 800)
        self._build()
        self._connect()
        self._restore()

    request = property(lambda self: self.session.request)      # the answer on screen (or coming) is for this
    last_answer = property(lambda self: self.session.last)
    busy = property(lambda self: self.backend.runner.busy)      # a task runs or waits (indexing, a model…)

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
        self.notice = Notice(central, NOTICE_MS)
        outer.addWidget(self.notice)

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
        self.viewer = Viewer(self.backend.photo_details, self.pages, caption_sink=self.backend.set_caption,
                             thumbnail_source=self.thumbs.pixmap)
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
        self.jobs = JobBar(self.backend.runner, self)
        bar.addPermanentWidget(self.jobs)
        self.count_text = QLabel("", self)
        bar.addPermanentWidget(self.count_text)
        self.zoom = zoom_slider(self.view, self)
        bar.addPermanentWidget(self.zoom)
        self.pages.currentChanged.connect(self._page_changed)
        # Which screen, from the settings file alone (milliseconds), so the other one never flashes by
        # while the library opens: the results (saying "Opening your library…"), or the welcome, which
        # waits for the library before it takes a click.
        returning = bool(self.settings["folders"]) and bool(self.settings["active_model"])
        self.pages.setCurrentWidget(self.results_page if returning else self.welcome)
        self.welcome.setEnabled(False)
        self._page_changed(self.pages.currentIndex())
        self._show_empty()

    def _page_changed(self, _index: int) -> None:
        """The search field and filters belong to the results and the preview, not to the welcome; the
        zoom slider to the grid."""
        searching = self.pages.currentWidget() in (self.results_page, self.viewer)
        self.top.setVisible(searching)
        self.filters.setVisible(searching)
        self.zoom.setVisible(self.pages.currentWidget() is self.results_page)

    def _connect(self) -> None:
        be = self.backend
        be.opened.connect(self._opened)
        be.open_failed.connect(self._open_failed)
        be.status_changed.connect(self._status)
        be.errors_changed.connect(self.panel.set_errors)
        be.library_changed.connect(self._library_changed)
        be.answered.connect(self._answered)
        be.search_failed.connect(self._search_failed)
        be.message.connect(self.show_notice)
        be.runner.changed.connect(self._show_empty)
        self.jobs.said.connect(self.status_text.setText)
        self.drops.images.connect(self._query_images)
        self.drops.folders.connect(lambda folders: self.backend.library and [be.add_folder(f) for f in folders])
        self.drops.notice.connect(self.show_notice)
        self.installEventFilter(self.drops)

        self.search.changed.connect(self.run_search)
        self.search.submitted.connect(self.run_search)
        self.search.paste_requested.connect(self.drops.paste)
        self.filters.changed.connect(self.run_search)
        self.model.more_wanted.connect(self._more)
        self.view.open_requested.connect(self.open_preview)
        self.view.customContextMenuRequested.connect(lambda pos: menus.results_menu(self, pos))
        self.viewer.closed.connect(self.close_preview)
        self.viewer.moved.connect(lambda row: self.view.setCurrentIndex(self.model.index(row)))
        self.viewer.find_similar.connect(self.find_similar)
        self.viewer.open_requested.connect(actions.open_in_viewer)
        self.viewer.reveal_requested.connect(actions.reveal)
        self.viewer.copy_requested.connect(lambda p: menus.copy_paths(self, [p]))
        self.welcome.done.connect(self._welcome_done)
        self.library_button.toggled.connect(self._toggle_library)
        # A minimised window hides its dock too: that is not the user closing the panel.
        self.dock.visibilityChanged.connect(lambda on: self.isMinimized() or self.library_button.setChecked(on))
        self.settings_button.clicked.connect(self.open_settings)
        self.panel.folders.add_requested.connect(self.backend.add_folder)
        self.panel.folders.remove_requested.connect(self.backend.remove_folder)
        self.panel.folders.rescan_requested.connect(self.backend.rescan)
        self.panel.reveal_requested.connect(actions.reveal)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_AFTER_MS, timeout=self._refresh)
        # While indexing runs, counts and the answer on screen follow it (the indexer commits every 2 s).
        self._live_timer = QTimer(self, interval=LIVE_MS, timeout=self._library_changed)
        self.backend.runner.changed.connect(self._follow_indexing)
        self.jobs.said.connect(self._job_said)
        menus.install_shortcuts(self)
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
        self.view.set_row_height(state.get("row_height", ROW_HEIGHT))
        self.remember_query = bool(state.get("remember_query", False))
        self.theme = state.get("theme", "system")
        apply_theme(self.theme)

    def save_state(self) -> None:
        self.settings["gui"] = {**(self.settings["gui"] or {}),
                                "geometry": bytes(self.saveGeometry().toBase64()).decode(),
                                "state": bytes(self.saveState().toBase64()).decode(),
                                "sort": self.filters.sort_value, "theme": self.theme,
                                "row_height": self.view.row_height,
                                "remember_query": self.remember_query, "last_query": self._query_to_keep()}

    def _query_to_keep(self) -> dict | None:
        """The search on screen, kept for the next start when the user asked for that (Settings)."""
        if not self.remember_query or (not self.search.text and not self.search.images):
            return None
        return {"text": self.search.text, "images": [[i.path, i.kind] for i in self.search.images]}

    def _restore_query(self) -> None:
        last = (self.settings["gui"] or {}).get("last_query") if self.remember_query else None
        if not last or self.search.text or self.search.images:
            return
        for path, kind in last.get("images") or []:
            if os.path.exists(path):
                self.search.add_image(QueryImage(path, kind))
        self.search.set_text(last.get("text") or "")

    def set_remember_query(self, on: bool) -> None:
        self.remember_query = on
        self.save_state()

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
        # When the app quits after this, the interpreter's last garbage collection would walk every object
        # the libraries made (~0.3 s of the quit): frozen, they are freed without it.
        QApplication.instance().aboutToQuit.connect(gc.freeze)
        event.accept()

    def _opened(self, status: LibraryStatus) -> None:
        self._status(status)
        self.welcome.setEnabled(True)
        if status.folders and status.has_model:
            self._restore_query()
            self.pages.setCurrentWidget(self.results_page)
            self.focus_search()
        else:
            self.pages.setCurrentWidget(self.welcome)
        self.thumbs.set_source(lambda path, lib=self.backend.library: str(lib.thumbnails.get(path)))
        self.backend.refresh_errors()
        self.run_search()  # the library itself, or the query kept from last time

    def _open_failed(self, message: str) -> None:
        self.pages.setCurrentWidget(self.opening)
        self.opening.setText(f"<h3>Glimpse could not open its library</h3><p>{message}</p>")
        self.opening.setWordWrap(True)

    def _welcome_done(self) -> None:
        self.pages.setCurrentWidget(self.results_page)
        self.run_search()
        self._show_empty()
        self.focus_search()

    # -- library state -------------------------------------------------------------------------------
    def _status(self, status: LibraryStatus) -> None:
        self.status = status
        self.panel.set_status(status)
        self.welcome.set_status(status)
        self.filters.set_folders(list(status.folders))
        self.count_text.setText(f"{status.photos:,} photos")
        if status.problems:
            self.status_text.setText(" · ".join(status.problems))
        self._show_empty()

    def _library_changed(self) -> None:
        self.thumbs.retry_failed()
        if self.request is not None and not self.request.idle and not self._refresh_timer.isActive():
            self._refresh_timer.start()
        self.backend.refresh_status()

    def _follow_indexing(self) -> None:
        indexing = isinstance(self.backend.runner.current, IndexTask)
        if indexing and not self._live_timer.isActive():
            self._live_timer.start()
        elif not indexing:
            self._live_timer.stop()  # the last batch: the watcher's update says so (library_changed)

    def _job_said(self, text: str) -> None:
        if text == UP_TO_DATE and self.notice.isVisible() and self.notice.text().endswith(INDEXING_STARTS):
            self.notice.hide()  # "Added …; indexing starts now." is over

    def _refresh(self) -> None:
        """Photos were indexed or removed: ask again, keeping the selection and the scroll position."""
        request = self.session.again(self.model.rowCount())
        if request is not None and self.pages.currentWidget() is not self.viewer:
            self.backend.search(request)

    # -- searching -----------------------------------------------------------------------------------
    def run_search(self) -> None:
        """Ask for what the search field and filters say: a search, or with no terms the library itself."""
        if self.backend.library is None:
            return
        if not (self.search.text.strip() or self.search.images) and not (self.status and self.status.has_model):
            self.session.ask()  # nothing to browse with yet (no model): the welcome or the empty page says why
            self.model.clear()
            self._show_empty()
            return
        fields = dict(text=self.search.text, images=tuple(i.path for i in self.search.images if i.kind == "image"),
                      similar=tuple(i.path for i in self.search.images if i.kind == "similar"),
                      folder=self.filters.folder_value, after=self.filters.after_value,
                      before=self.filters.before_value, sort=self.filters.sort_value, browse=True, cut=True)
        leaving = self.request is not None and self.request.browsing
        browsing = SearchRequest(**fields).browsing
        key = (fields["folder"], fields["after"], fields["before"], fields["sort"])
        if leaving and not browsing:  # a search refines the library: keep the place in it
            self._browse_place = (key, self.model.rowCount(), self.view.verticalOffset())
        elif browsing and not leaving:
            place = self._browse_place
            if place is not None and place[0] == key:
                fields["k"], self._scroll_back = max(PAGE, place[1]), place[2]
            self.status_text.setText("")  # "60 results in 9 ms" belonged to the query just cleared
        self.filters.set_browsing(browsing)
        self.backend.search(self.session.ask(**fields))

    def _more(self) -> None:
        request = self.session.more(self.model.rowCount())
        if request is not None:
            self.backend.search(request)

    def _answered(self, answer: SearchAnswer) -> None:
        if answer.days is not None:
            self.filters.set_days(*answer.days)  # any answer knows the library's days, a replaced one too
        if not self.session.current(answer):
            return  # an answer to a query the user has already changed
        refresh = False
        if answer.request.offset:
            if answer.request.offset == self.model.rowCount():
                self.model.append(answer.results, answer.more)
        else:
            # A refresh of what is on screen (the library changed) keeps the selection and the scroll.
            refresh = answer.request.fresh or (self.last_answer is not None
                                               and self.last_answer.request is answer.request)
            keep = self.view.currentIndex().data(PathRole) if refresh else None
            scroll = self.view.verticalScrollBar().value()
            self.view.set_grouped(answer.request.browsing or answer.request.sort != "relevance")
            self.model.set_results(answer.results, answer.more)
            if keep is not None:
                rows = [i for i, r in enumerate(answer.results) if r.path == keep]
                if rows:
                    self.view.setCurrentIndex(self.model.index(rows[0]))
            back = self._scroll_back if answer.request.browsing else None
            self._scroll_back = None
            if refresh or back is not None:
                self.view.verticalScrollBar().setValue(scroll if refresh else back)
            else:
                self.view.scrollToTop()
        self.session.take(answer)
        text = self._answer_text(answer)
        # A refresh (photos were indexed) does not write over what a task said ("Library up to date.").
        if not refresh or self.status_text.text() in ("", self._answer_said):
            self.status_text.setText(text)
        self._answer_said = text
        if answer.absent and not answer.request.offset and not answer.request.fresh:
            self.notice.show_text(f"Nothing in your library looks much like {self.search.describe()}. "
                                  f"{CLOSEST}")
        elif not answer.absent and self.notice.isVisible() and self.notice.text().endswith(CLOSEST):
            self.notice.hide()  # it was about the query before
        self._show_empty()

    def _answer_text(self, answer: SearchAnswer) -> str:
        shown = self.model.rowCount()
        if answer.request.browsing:
            total = answer.total
            order = "oldest first" if answer.request.sort == "oldest" else "newest first"
            everything = self.status is not None and total == self.status.photos
            return order.capitalize() if total is None or everything else f"{total:,} photos here, {order}"
        if answer.absent:
            return f"No close match: the {shown} closest photos"
        return f"{shown:,}{'+' if answer.more else ''} results in {answer.seconds * 1000:.0f} ms"

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
        self.empty.setText(empty_text(self.status, self.request, self.busy, error))

    # -- image queries -------------------------------------------------------------------------------
    def take(self, mime) -> None:
        """Images become query chips; folders are added to the library; anything else is explained."""
        self.drops.take(mime)

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

    def open_preview(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        last, shown = self.last_answer, self.model.rowCount()
        total = None
        if last is not None and last.total is not None:
            total = f"{last.total:,}"
        elif last is not None and last.more:
            total = f"{shown:,}+"
        self.viewer.show_results([self.model.result(r) for r in range(shown)], index.row(), total)
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

    def escape(self) -> None:
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
            dialog.remember.setChecked(self.remember_query)
            dialog.remember.toggled.connect(self.set_remember_query)
        dialog.show()
        dialog.raise_()
        return dialog

    def _set_theme(self, theme: str) -> None:
        self.theme = theme
        apply_theme(theme)
        self.save_state()

    def show_notice(self, text: str) -> None:
        self.notice.show_text(text)
        self.status_text.setText(text.splitlines()[0])
