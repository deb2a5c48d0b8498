"""The window's link to the library: every call runs off the GUI thread and answers with a signal.

`Backend` owns the `Library` (opened in a worker, so `import lancedb` and the catalog never delay the
window), the `Watcher` that keeps the index current while the app is open (with file events, or with
reconcile scans only when watching is off), and short jobs on superqt workers (Qt's global thread
pool). Callbacks from the watcher's threads become queued signals, so slots always run on the GUI
thread. Searches carry a generation number; the window drops answers to queries it has replaced.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import create_worker

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.1  # seconds between progress signals
DATE_SORT_LIMIT = 1000  # a date-sorted answer holds the best this many matches


@dataclass(frozen=True)
class SearchRequest:
    generation: int
    text: str = ""
    images: tuple[str, ...] = ()     # image files (dropped, pasted)
    similar: tuple[str, ...] = ()    # indexed photos ("find similar")
    folder: str | None = None
    after: dt.date | None = None
    before: dt.date | None = None
    sort: str = "relevance"          # relevance | newest | oldest
    offset: int = 0
    k: int = 200
    fresh: bool = False

    @property
    def empty(self) -> bool:
        return not (self.text.strip() or self.images or self.similar)


@dataclass
class SearchAnswer:
    request: SearchRequest
    results: list = field(default_factory=list)
    more: bool = False
    seconds: float = 0.0


def user_message(e: BaseException) -> str:
    """One line a user can act on; unexpected errors keep their type for bug reports."""
    from app.library.catalog import CatalogError
    from app.library.folders import FolderError
    from app.library.query import QueryError
    from model.errors import ImageError, ModelError

    if isinstance(e, (ModelError, ImageError, CatalogError, FolderError, QueryError, OSError)):
        return str(e)
    return f"{type(e).__name__}: {e}"


class Backend(QObject):
    opened = Signal(object)          # status dict, once the library is open
    open_failed = Signal(str)
    status_changed = Signal(object)  # status dict
    errors_changed = Signal(object)  # list of {"path", "error", "root"}
    busy_changed = Signal(bool)      # indexing started / ended
    progress = Signal(object)        # app.library.indexer.Progress
    library_changed = Signal()       # photos were added, changed or removed
    answered = Signal(object)        # SearchAnswer
    search_failed = Signal(int, str)  # generation, message
    message = Signal(str)            # something the user should read in the status bar
    models_changed = Signal(object)  # {"installed": [...], "active": id, "providers": [...]}
    pull_progress = Signal(str, int, int)  # stage, done, total
    pull_finished = Signal(str, str)  # model id ("" on failure), message

    def __init__(self, settings=None, parent: QObject | None = None):
        """`settings`: the window's `Settings`, shared with the library so one object owns the file."""
        super().__init__(parent)
        self.settings = settings
        self.library = None
        self.watcher = None
        self._closed = False
        self._last_progress = 0.0
        self._pulling = False
        self.searching = 0  # searches sent and not answered yet
        self._watch_lock = threading.Lock()
        self.pull_finished.connect(self._model_installed)

    # -- jobs -----------------------------------------------------------------------------------------
    def _job(self, fn: Callable, *args, done: Callable | None = None, failed: Callable[[str], None] | None = None):
        """Run fn(*args) on a worker; `done(result)` / `failed(message)` run on the GUI thread."""
        if self._closed:
            return None

        def on_error(e: BaseException) -> None:
            msg = user_message(e)
            log.warning("background job failed: %s", msg, exc_info=e)
            (failed or self.message.emit)(msg)

        connect: dict[str, Any] = {"errored": on_error}
        if done is not None:
            connect["returned"] = done
        return create_worker(fn, *args, _connect=connect, _ignore_errors=True)

    # -- opening --------------------------------------------------------------------------------------
    def open(self) -> None:
        def work():
            from app.library.library import Library

            lib = Library(settings=self.settings)
            lib.catalog  # open (and migrate) now, not on the first search
            self._warm(lib)
            return lib, self._status(lib)

        def done(result):
            self.library, status = result
            if self.library.settings.warning:
                self.message.emit(self.library.settings.warning)
            self.opened.emit(status)
            self.start_watching()

        self._job(work, done=done, failed=self.open_failed.emit)

    @staticmethod
    def _warm(lib) -> None:
        """Load the text model and the photos' vectors while the window says "Opening…": the tokenizer's
        native loader holds the GIL for ~150 ms, which would otherwise stall the window at the first query."""
        if lib.models.active_id and lib.models.store.exists(lib.models.active_id):
            searcher = lib.searcher()
            searcher.encoder.warm("textual")
            searcher.data()

    @staticmethod
    def _status(lib) -> dict:
        status = lib.status()
        status["watch"] = bool(lib.settings["watch"])
        status["exclude"] = list(lib.settings["exclude"])
        status["has_model"] = bool(lib.models.active_id and lib.models.store.exists(lib.models.active_id))
        return status

    def refresh_status(self) -> None:
        if self.library is not None:
            lib = self.library
            self._job(lambda: self._status(lib), done=self.status_changed.emit)

    def refresh_errors(self) -> None:
        if self.library is not None:
            self._job(self.library.errors, done=self.errors_changed.emit)

    # -- keeping the index current --------------------------------------------------------------------
    def start_watching(self) -> None:
        """Start (or restart) the watcher when there is a model and a folder; it reconciles at start."""
        lib = self.library
        if lib is None or self._closed:
            return
        if not lib.folders.list() or not (lib.models.active_id and lib.models.store.exists(lib.models.active_id)):
            return
        def work():
            from app.library.watcher import Watcher

            with self._watch_lock:  # one watcher at a time, however many restarts are queued
                old = self.watcher
                paused = bool(old and old.control.paused)
                if old is not None:
                    old.stop()
                    self.watcher = None
                if self._closed:
                    return None
                watcher = Watcher(lib, on_update=self._on_update, on_progress=self._on_progress,
                                  on_busy=self._on_busy, observe=bool(lib.settings["watch"]))
                if paused:
                    watcher.control.pause()
                self.watcher = watcher
                return watcher.start()

        self._job(work)

    def rescan(self) -> None:
        if self.watcher is not None:
            self.watcher.request_reconcile()
        else:
            self.start_watching()

    def _on_progress(self, p) -> None:  # indexer thread
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY or p.done == p.total:
            self._last_progress = now
            self.progress.emit(p)

    def _on_update(self, update) -> None:  # watcher thread
        self.library_changed.emit()

    def _on_busy(self, busy: bool) -> None:  # watcher thread
        self.busy_changed.emit(busy)
        if not busy:
            if self.watcher is not None and self.watcher.error:
                self.message.emit(self.watcher.error)
                self.watcher.error = None
            self.refresh_status()

    @property
    def paused(self) -> bool:
        return bool(self.watcher and self.watcher.control.paused)

    def set_paused(self, paused: bool) -> None:
        if self.watcher is not None:
            (self.watcher.control.pause if paused else self.watcher.control.resume)()

    # -- folders and settings -------------------------------------------------------------------------
    def add_folder(self, path: str, done: Callable[[str], None] | None = None) -> None:
        lib = self.library

        def finished(root: str) -> None:
            self.message.emit(f"Added {root}; indexing starts now.")
            self.refresh_status()
            (self.rescan if self.watcher else self.start_watching)()
            if done:
                done(root)

        self._job(lib.folders.add, path, done=finished)

    def remove_folder(self, path: str) -> None:
        def finished(root: str) -> None:
            self.message.emit(f"Removed {root} from the library (the files are untouched).")
            self.refresh_status()
            self.library_changed.emit()
            self.rescan()

        self._job(self.library.folders.remove, path, done=finished)

    def set_exclusions(self, patterns: list[str]) -> None:
        def work():
            self.library.folders.set_exclusions(patterns)

        self._job(work, done=lambda _: self.rescan())

    def set_setting(self, key: str, value) -> None:
        """Library settings (JSON, in the config folder). Watching on/off restarts the watcher."""
        if self.library is None:
            return
        changed = self.library.settings[key] != value
        self.library.settings[key] = value
        if changed and key in ("watch", "provider"):
            self.start_watching()

    # -- search ---------------------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> None:
        lib = self.library
        if lib is None:
            return

        def answer(searcher, filters, terms, fresh: bool) -> SearchAnswer:
            t0 = time.perf_counter()
            if request.sort == "relevance":
                results = searcher.search(terms, k=request.k + 1, offset=request.offset, filters=filters, fresh=fresh)
                more = len(results) > request.k
                results = results[:request.k]
            else:
                results = searcher.search(terms, k=DATE_SORT_LIMIT, filters=filters, fresh=fresh)
                results.sort(key=lambda r: r.taken_at, reverse=request.sort == "newest")
                more = False
            return SearchAnswer(request, results, more, time.perf_counter() - t0)

        def work() -> SearchAnswer:
            from app.library.query import parse
            from app.library.search import Filters

            terms = parse(request.text, add=list(request.images), similar=list(request.similar))
            filters = Filters.dates(request.after.isoformat() if request.after else None,
                                    request.before.isoformat() if request.before else None, request.folder)
            searcher = lib.searcher()
            previous = searcher.loaded
            first = answer(searcher, filters, terms, request.fresh)
            if request.fresh or not searcher.catch_up(previous):
                return first
            # Answered at once from what was loaded; the catalog had changed, so answer again, up to date.
            self.answered.emit(first)
            return answer(searcher, filters, terms, True)

        def done(final: SearchAnswer) -> None:
            self.searching -= 1
            self.answered.emit(final)

        def failed(msg: str) -> None:
            self.searching -= 1
            self.search_failed.emit(request.generation, msg)

        self.searching += 1
        self._job(work, done=done, failed=failed)

    def photo_details(self, path: str, done: Callable[[dict], None]) -> None:
        lib = self.library
        self._job(lambda: lib.catalog.photo(path) or {}, done=done)

    # -- models ---------------------------------------------------------------------------------------
    def refresh_models(self, with_providers: bool = False) -> None:
        lib = self.library
        if lib is None:
            return

        def work() -> dict:
            from model.errors import CorruptModel

            installed = []
            for m in lib.models.store.list():
                if isinstance(m, CorruptModel):
                    installed.append({"id": m.model_id, "damaged": str(m)})
                else:
                    installed.append({"id": m.id, "architecture": m.manifest.get("architecture", "?"),
                                      "dim": m.embed_dim, "bytes": m.size_bytes, "lineage": m.manifest.get("lineage")})
            providers: list[str] = []
            if with_providers and lib.models.active_id and lib.models.store.exists(lib.models.active_id):
                providers = lib.encoder().providers_in_use()
            return {"installed": installed, "active": lib.models.active_id, "providers": providers,
                    "provider": lib.settings["provider"]}

        self._job(work, done=self.models_changed.emit)

    def use_model(self, model_id: str) -> None:
        def finished(_):
            self.message.emit(f"Now searching with {model_id}; photos without its vectors are being indexed.")
            self.refresh_models(with_providers=True)
            self.library_changed.emit()
            self.start_watching()

        self._job(self.library.models.use, model_id, done=finished)

    def remove_model(self, model_id: str) -> None:
        self._job(self.library.models.remove, model_id, done=lambda _: self.refresh_models())

    @property
    def pulling(self) -> bool:
        return self._pulling

    def pull(self, name: str | None = None) -> None:
        """Download a pretrained model (torch is imported here, in the worker, never at start-up)."""
        self._obtain(lambda progress: self._pull(name, progress))

    def import_model(self, path: str) -> None:
        def run(progress):
            from model.obtain import import_path

            return import_path(self.library.models.store, path, progress=progress)

        self._obtain(run)

    def _pull(self, name: str | None, progress):
        from model import registry
        from model.obtain import pull

        return pull(self.library.models.store, name or registry.default().name, progress=progress, quiet=True)

    def _obtain(self, run) -> None:
        """A download can take minutes and cannot be interrupted midway: it runs on a daemon thread
        of its own, so closing the window never waits for it (the store sweeps a half install)."""
        if self._pulling or self.library is None:
            return
        self._pulling = True
        lib = self.library

        def work() -> None:
            try:
                model = run(lambda stage, done, total: self.pull_progress.emit(stage, int(done), int(total or 0)))
                lib.models.adopt(model)
            except Exception as e:  # noqa: BLE001 - every failure becomes a message
                self._pulling = False
                self.pull_finished.emit("", user_message(e))
                return
            self._pulling = False
            self.pull_finished.emit(model.id, f"{model.id} is installed.")

        threading.Thread(target=work, name="glimpse-model", daemon=True).start()

    def _model_installed(self, model_id: str, message: str) -> None:
        if model_id:
            self.refresh_models(with_providers=True)
            self.refresh_status()
            self.start_watching()

    # -- closing --------------------------------------------------------------------------------------
    def close(self, timeout_ms: int = 30_000) -> None:
        """Stop indexing at the next batch, wait for every worker, and close the catalog."""
        self._closed = True
        with self._watch_lock:
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher = None
        QThreadPool.globalInstance().waitForDone(timeout_ms)
        if self.library is not None:
            self.library.close()
