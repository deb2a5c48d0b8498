"""The window's link to the library: short calls run on superqt workers (Qt's global thread pool) and
answer with a signal; heavy work goes to the one job runner (`jobs.JobRunner`), one task at a time.

`Backend` owns the `Library` (opened in a worker, so `import lancedb` and the catalog never delay the
window), the runner, and the `Watcher` that keeps the index current while the app is open (with file
events, or with reconcile scans only when watching is off): each of its batches is a task of the
runner (`_run_update`) that indexes in a child process (`app.tasks.index_process`: decoders and the
model never stall this process, and a decoder's crash is survived), as is every other write (removing
a folder or a model, exclusions, a model download, import or switch), so no two of them ever run at
once; while the child writes, this process only reads the catalog. Slots
always run on the GUI thread. Searches follow `app.library.session`; the window drops answers to
queries it has replaced.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import create_worker

from app.library.session import SearchAnswer, SearchRequest

from .jobs import (ActivateTask, CaptionTask, ExclusionsTask, IndexTask, JobRunner, ObtainTask, RemoveFolderTask,
                   QuantizeTask, RemoveModelTask, Task, TuneTask)

log = logging.getLogger(__name__)
INDEXING_STARTS = "indexing starts now."


def caption_fields(caption) -> dict:
    """A `CaptionPair` (or None) as the preview shows it."""
    return {"caption": caption.text if caption else None, "caption_source": caption.source if caption else None}


def gpu_name() -> str | None:
    """The NVIDIA GPU fine-tuning can use, by name; None without one. Asks the driver (and nvidia-smi),
    never torch, which must not load into the window: the training child makes the final choice."""
    import shutil
    import subprocess

    from model.runtime import cuda_driver_present

    if not cuda_driver_present():
        return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "NVIDIA GPU"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "NVIDIA GPU"
    first = next((line for line in out.splitlines() if line.startswith("GPU ")), "")
    if not first:
        return None  # the driver is there, but no GPU answers
    return first.split(":", 1)[1].split("(UUID")[0].strip() or "NVIDIA GPU"


class Backend(QObject):
    opened = Signal(object)          # LibraryStatus, once the library is open
    open_failed = Signal(str)
    status_changed = Signal(object)  # LibraryStatus
    errors_changed = Signal(object)  # list of {"path", "error", "root"}
    library_changed = Signal()       # photos were added, changed or removed
    answered = Signal(object)        # SearchAnswer
    search_failed = Signal(int, str)  # generation, message
    message = Signal(str)            # something the user should read
    models_changed = Signal(object)  # {"installed": [...], "active": id, "providers": [...]}

    def __init__(self, settings=None, parent: QObject | None = None):
        """`settings`: the window's `Settings`, shared with the library so one object owns the file."""
        super().__init__(parent)
        self.settings = settings
        self.library = None
        self.watcher = None
        self.runner = JobRunner(self)
        self.runner.said.connect(self.message)
        self._closed = False
        self.searching = 0  # searches sent and not answered yet
        self._said: set[str] = set()  # folder problems the user was told of
        self._models_seen: tuple | None = None  # (active, next) when the model list was last refreshed
        self._watch_lock = threading.Lock()

    # -- short jobs -----------------------------------------------------------------------------------
    def _job(self, fn: Callable, *args, done: Callable | None = None, failed: Callable[[str], None] | None = None):
        """Run fn(*args) on a worker; `done(result)` / `failed(message)` run on the GUI thread."""
        if self._closed:
            return None

        def on_error(e: BaseException) -> None:
            from app.tasks import user_message

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
            return lib, lib.status()

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

    def refresh_status(self) -> None:
        if self.library is not None:
            self._job(self.library.status, done=self.status_changed.emit)

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
                if self.watcher is not None:
                    self.watcher.stop()
                    self.watcher = None
                if self._closed:
                    return None
                self.watcher = Watcher(lib, on_update=lambda _update: self.library_changed.emit(),
                                       observe=bool(lib.settings["watch"]), run_update=self._run_update)
                return self.watcher.start()

        self._job(work)

    def rescan(self) -> None:
        if self.watcher is not None:
            self.watcher.request_reconcile()
        else:
            self.start_watching()

    def _run_update(self, _progress, control, only: list[str] | None = None):  # the watcher's thread
        """Index one batch of the watcher as a task of the runner (in the indexing process: `IndexTask`),
        and wait for it. A batch that stepped aside for a user's task is sent again after it; one the user
        cancelled waits for the next change or rescan. The watcher's own control (cancelled when it stops)
        cancels the task."""
        while True:
            task = self.runner.submit(IndexTask(self.library, only), then=self._indexed)
            while not task.finished.wait(0.1):
                if control.cancelled:
                    self.runner.cancel(task, by_user=False)
            if not task.preempted or control.cancelled:
                break
        if task.result is not None:
            return task.result
        from app.library.indexer import Summary
        from app.library.library import Update
        from app.library.scanner import Plan

        return Update(Plan(), Summary(cancelled=True))

    def _indexed(self, task: Task) -> None:
        if task.state == "failed":
            self.message.emit(task.message)
        elif self.watcher is not None and self.watcher.error:
            self.message.emit(self.watcher.error)
            self.watcher.error = None
        plan = getattr(task.result, "plan", None)
        new = [p for p in (plan.problems if plan is not None else []) if p not in self._said]
        if new:  # a folder that cannot be read hides its photos: say so, once for each
            self._said.update(new)
            more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
            self.message.emit(f"Some photos cannot be indexed: {new[0]}{more}.")
        switched = getattr(task.result, "switched_to", None)
        if switched:  # a preparation carried on by indexing (after a restart, or started elsewhere) ended
            self.message.emit(f"Now searching with {switched}.")
        models = (self.library.models.active_id, self.library.settings["next_model"])
        if self._models_seen is not None and models != self._models_seen:  # another process chose or removed one
            self.refresh_models()
        self.refresh_status()
        self.refresh_errors()

    # -- folders and settings -------------------------------------------------------------------------
    def add_folder(self, path: str, done: Callable[[str], None] | None = None) -> None:
        lib = self.library

        def finished(root: str) -> None:
            self.message.emit(f"Added {root}; {INDEXING_STARTS}")
            self.refresh_status()
            (self.rescan if self.watcher else self.start_watching)()
            if done:
                done(root)

        self._job(lib.folders.add, path, done=finished)

    def remove_folder(self, path: str) -> Task | None:
        """A task of the runner: a running indexing batch (or model preparation) steps aside for it, and
        the next one no longer sees the folder."""
        if self.library is None:
            return None

        def then(task: Task) -> None:
            if task.state == "done":
                self.message.emit(f"Removed {task.result} from the library (the files are untouched).")
                self.library_changed.emit()
                self.rescan()
            elif task.state == "failed":
                self.message.emit(task.message)
            self.refresh_status()

        return self.runner.submit(RemoveFolderTask(self.library, path), then=then)

    def set_exclusions(self, patterns: list[str]) -> Task | None:
        if self.library is None:
            return None

        def then(task: Task) -> None:
            if task.state == "done":
                self.rescan()
            elif task.state == "failed":
                self.message.emit(task.message)

        return self.runner.submit(ExclusionsTask(self.library, patterns), then=then)

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
        """Answer on a worker (`session.answer`): an answer from what is loaded may come first, then
        the up-to-date one."""
        lib = self.library
        if lib is None:
            return

        def work() -> SearchAnswer:
            from app.library.session import answer

            return answer(lib, request, early=self.answered.emit)

        def done(final: SearchAnswer) -> None:
            self.searching -= 1
            self.answered.emit(final)

        def failed(msg: str) -> None:
            self.searching -= 1
            self.search_failed.emit(request.generation, msg)

        self.searching += 1
        self._job(work, done=done, failed=failed)

    def photo_details(self, path: str, done: Callable[[dict], None]) -> None:
        """The photo's catalog row, with its caption ("caption", "caption_source"; None when it has none)."""
        lib = self.library

        def work() -> dict:
            row = dict(lib.catalog.photo(path) or {})
            try:
                row.update(caption_fields(lib.caption_of(path)))
            except Exception:  # noqa: BLE001 - the details show without a caption
                log.warning("cannot read the caption of %s", path, exc_info=True)
            return row

        self._job(work, done=done)

    def set_caption(self, path: str, text: str, done: Callable[[dict], None] | None = None) -> None:
        """Type a caption for a photo ("" clears the typed one: a caption from its files shows again).
        `done` gets {"caption", "caption_source"} as now stored."""
        lib = self.library
        if lib is None:
            return
        if isinstance(self.runner.current, TuneTask):
            # Fine-tuning writes nothing to the catalog and may run for long: the caption need not wait.
            self._job(lambda: caption_fields(lib.set_caption(path, text)), done=done)
            return

        def then(task: Task) -> None:
            if task.state == "done":
                if done is not None:
                    done(caption_fields(task.result))
            elif task.state == "failed":
                self.message.emit(task.message)

        self.runner.submit(CaptionTask(lib, path, text), then=then)

    # -- models ---------------------------------------------------------------------------------------
    def refresh_models(self, with_providers: bool = False) -> None:
        lib = self.library
        if lib is None:
            return

        def work() -> dict:
            from app.tasks.tune import base_of
            from model.errors import CorruptModel

            installed = []
            for m in lib.models.store.list():
                if isinstance(m, CorruptModel):
                    installed.append({"id": m.model_id, "damaged": str(m)})
                else:
                    installed.append({"id": m.id, "architecture": m.architecture,
                                      "dim": m.embed_dim, "bytes": m.size_bytes, "lineage": m.manifest.get("lineage"),
                                      "base": base_of(m)})
            providers: list[str] = []
            if with_providers and lib.models.active_id and lib.models.store.exists(lib.models.active_id):
                providers = lib.encoder().providers_in_use()
            self._models_seen = (lib.models.active_id, lib.settings["next_model"])
            return {"installed": installed, "active": lib.models.active_id, "providers": providers,
                    "provider": lib.settings["provider"]}

        self._job(work, done=self.models_changed.emit)

    def use_model(self, model_id: str) -> Task | None:
        """Make a model the one search uses: a task of the runner, as making its vectors may take long."""
        if self.library is None:
            return None
        return self._activate(model_id, self.library.models.active_id)

    def _activate(self, model_id: str, old: str | None, resume: bool = False, paused: bool = False) -> Task:
        """Submit the switch; one that stepped aside for an edit (a removal) is sent again after it."""
        def then(task: Task) -> None:
            if task.state == "cancelled" and task.preempted:
                self._activate(model_id, old, resume=True, paused=task.was_paused)
                return
            if task.state == "done":
                if task.result is not None:  # None: nothing left to do (the model was removed meanwhile)
                    self.message.emit(f"Now searching with {model_id}." if task.result else
                                      f"{model_id} is not active yet: its vectors are finished at the next rescan.")
            elif task.state == "failed":
                self.message.emit(task.message)
            else:
                self.message.emit(f"Stopped preparing {model_id}; search keeps {old}, and its vectors are "
                                  "finished at the next rescan.")
            self.refresh_models(with_providers=True)
            self.refresh_status()
            self.library_changed.emit()

        task = ActivateTask(self.library, model_id, resume=resume)
        if paused:
            task.control.pause()
        return self.runner.submit(task, then=then)

    def remove_model(self, model_id: str) -> Task | None:
        """A task of the runner: a model being prepared steps aside for it (and carries on after, unless it
        is the one removed), so its preparation never switches to a model that is gone."""
        if self.library is None:
            return None

        def then(task: Task) -> None:
            if task.state == "done":
                took_over, complete = task.result
                self.message.emit(f"Removed {model_id}." + (f" Search now uses {took_over}." if took_over else ""))
                if took_over and not complete:  # its vectors were dropped at an earlier switch: make them
                    self.use_model(took_over)
            elif task.state == "failed":
                self.message.emit(task.message)
            self.refresh_models()
            self.refresh_status()

        return self.runner.submit(RemoveModelTask(self.library, model_id), then=then)

    def quantize(self, model_id: str) -> Task | None:
        """Make a model's int8 image tower, then index with it (a task: up to a minute)."""
        if self.library is None or self.runner.find(QuantizeTask) is not None:
            return None

        def then(task: Task) -> None:
            if task.state == "done":
                self.message.emit(f"{task.result} Indexing uses it on the CPU.")
            elif task.state == "failed":
                self.message.emit(task.message)
            self.refresh_models(with_providers=True)

        return self.runner.submit(QuantizeTask(self.library, model_id), then=then)

    def pull(self, name: str | None = None) -> Task | None:
        """Download a pretrained model (torch is imported by the task, never at start-up)."""
        return self._obtain(ObtainTask(self.library, name=name))

    def import_model(self, path: str) -> Task | None:
        return self._obtain(ObtainTask(self.library, path=path))

    def _obtain(self, task: ObtainTask) -> Task | None:
        if self.library is None or self.runner.find(ObtainTask) is not None:
            return None
        return self.runner.submit(task, then=self._obtained)

    def _obtained(self, task: Task) -> None:
        if task.state == "done":
            self.refresh_models(with_providers=True)
            self.refresh_status()
            self.start_watching()

    # -- personalizing -------------------------------------------------------------------------------
    def caption_summary(self, done: Callable[[dict], None]) -> None:
        """What fine-tuning would learn from (`Library.caption_summary`), with "gpu" (the NVIDIA GPU's
        name, or None) and "active" (the model it would start from)."""
        lib = self.library
        if lib is None:
            return

        def work() -> dict:
            summary = dict(lib.caption_summary())
            summary["gpu"] = gpu_name()
            summary["active"] = lib.models.active_id
            return summary

        self._job(work, done=done)

    def tune(self, options, on_event: Callable[[dict], None] | None = None) -> Task | None:
        """Fine-tune (`app.tasks.tune.run` in a task of the runner; the training is a child process).
        `on_event(dict)` is called on the runner's thread. Installs a new model, activates nothing."""
        if self.library is None or self.runner.find(TuneTask) is not None:
            return None

        def then(task: Task) -> None:
            if task.state == "done":
                self.message.emit(f"Fine-tuned {task.result.result.get('model')}: see Settings → Personalize.")
            elif task.state == "failed":
                self.message.emit(task.message)
            self.refresh_models()

        return self.runner.submit(TuneTask(self.library, options, on_event), then=then)

    # -- closing --------------------------------------------------------------------------------------
    def close(self, timeout_ms: int = 30_000) -> None:
        """Cancel the running task (indexing stops at once, dropping rows not written yet; a download
        stops at its next progress report), drop the queued ones, stop the watcher, wait for every worker,
        and close the catalog."""
        self._closed = True
        self.runner.close()
        with self._watch_lock:
            if self.watcher is not None:
                self.watcher.stop(timeout=1.0)  # its thread only waits for the runner's task, stopped above
                self.watcher = None
        QThreadPool.globalInstance().waitForDone(timeout_ms)
        if self.library is not None:
            self.library.close()
