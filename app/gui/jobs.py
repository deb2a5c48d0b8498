"""The window's job runner: heavy work runs here, one task at a time, in the order asked.

Indexing (each batch the watcher sends; a child process), getting a model (download or import),
switching to a model (making its vectors), removing a folder or a model, setting exclusions, saving a
typed caption and fine-tuning (a child process) are each
a `Task` subclass, as in Vorta's jobs manager: one class per operation, `run(job)` doing the work on
the runner's thread through a `model.jobs.Job` (progress out; pause and cancel in, the same for every
task), and `then(task)` following on the GUI thread. A task whose work runs in a child process (indexing:
`app.tasks.index_process`; fine-tuning) waits for it on the runner's thread, forwarding pause and
cancel and passing its progress on. Everything that writes the catalog runs here, or in such a child
while its task waits, so no two writers of this window ever overlap. The runner's signals are all the
status bar needs. A task the user asked for does not wait behind a long indexing run: indexing stops at
its next batch (the catalog keeps what was done), the user's task runs, then indexing is sent again
(`Backend._run_update`).
An edit of the library (removing a folder or a model, exclusions) makes a model's preparation step
aside the same way; it is sent again after (`Backend.use_model`). Closing cancels the running task,
lets queued edits run, and drops the rest; indexing stops at once (its process is killed; rows it had
not committed are redone next time; a model's preparation ends its model run at once and drops rows not
written yet), a download at its next progress report. `app.tasks` (the catalog, and torch for a model)
is imported by the tasks when they run, never with the window.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from model.jobs import Cancelled, Control, Job, Progress

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.1  # seconds between progress signals of one stage


class Task:
    """One piece of heavy work. Subclasses set `title` and write `run`."""
    title = "Working"
    noun = ""               # what `done` and `total` count ("photos"); "" for steps, "bytes" for sizes
    pausable = False        # Pause/Resume applies
    yields = False          # stops at its next batch for a task the user asked for (indexing)
    steps_aside = False     # stops at its next batch for an edit, and is sent again after it (preparing a model)
    edit = False            # a short change the user asked for: preparation steps aside; closing runs it
    sticky_pause = False    # a pause outlasts the task: the next task of its class starts paused
    close_wait = 30.0       # seconds closing waits for it to stop (a batch of indexing ends within this)

    def __init__(self):
        self.control = Control()
        self.state = "queued"          # queued | running | done | failed | cancelled
        self.result = None
        self.message = ""              # why it failed (one line)
        self.progress: Progress | None = None
        self.waiting_for = ""          # while queued: what it waits for, for people
        self.by_user = False           # the user cancelled it
        self.preempted = False         # it stepped aside for a user's task
        self.was_paused = False        # it was paused when it stepped aside (sent again paused)
        self.blocked_by = ""           # while running: another process it waits for (the writer lock)
        self.notify: Callable[[], None] = lambda: None  # tells the runner's views something changed
        self.then: Callable[[Task], None] | None = None  # on the GUI thread, once it has ended
        self.say: Callable[[str], None] = lambda text: None  # a note for the user, while it runs
        self.finished = threading.Event()

    def run(self, job: Job):
        raise NotImplementedError

    def on_wait(self, message: str) -> None:
        """The library's on_wait: another process holds the catalog; the status bar says so until
        progress comes (or the task ends)."""
        self.blocked_by = message
        self.notify()


class IndexTask(Task):
    """One batch of the watcher: scan, index what is new or changed, forget what is gone. It runs in a
    child process (`app.tasks.index_process`): decoders and the model never hold this process's GIL, and
    a file that crashes a decoder is recorded as a problem while indexing starts again without it."""
    title = "Looking for changes"
    noun = "photos"
    pausable = yields = sticky_pause = True
    close_wait = 0.5  # at quit the child is killed at once; rows it had not committed are redone next time

    def __init__(self, library, only: list[str] | None = None):
        super().__init__()
        self.library, self.only = library, only

    def run(self, job: Job):
        def keep(update) -> None:  # kept before a cancel ends the task: the watcher reads its plan
            self.result = update

        return index_in_child(self, job, self.only, keep)


def index_in_child(task: Task, job: Job, only: list[str] | None = None, keep=None):
    """`Library.update` in the indexing child process (`app.tasks.index_process`), for the window's tasks
    that index: decoders and the model never hold this process's GIL, and a file that crashes a decoder
    is recorded as a problem while indexing starts again without it. Returns the child's `Update`, and
    gives each one to `keep` first (a cancel then ends the task)."""
    from app.tasks import index_process

    def crashed(path: str, reason: str) -> None:
        task.say(f"{Path(path).name} {reason}: it is skipped until the file changes; "
                 "indexing goes on.")

    # Paused, the child ends at its next batch and gives back the catalog's writer lock, so another
    # Glimpse (`glimpse index`) is not kept waiting by a paused window; resuming plans again.
    while True:
        result = index_process.index(task.library, job, only=only, on_wait=task.on_wait, on_crash=crashed)
        if keep is not None:
            keep(result)
        job.check()  # waits while paused, holding nothing; a cancel ends the task
        if not result.summary.paused:
            return result


class ObtainTask(Task):
    """Download a known model, or import a model folder; either way it is installed (and adopted).
    It stops at its next progress report; closing does not wait long for that (a stalled download, a big
    export): nothing is installed until its last step, and the store sweeps a half install at its next open."""
    close_wait = 5.0

    def __init__(self, library, name: str | None = None, path: str | None = None):
        super().__init__()
        self.library, self.name, self.path = library, name, path
        self.title = f"Importing {Path(path).name}" if path else f"Downloading {name or 'the default model'}"

    def run(self, job: Job):
        from app import tasks

        if self.path:
            return tasks.import_model(self.library, self.path, job)
        return tasks.pull(self.library, self.name, job)


class ActivateTask(Task):
    """Make a model the one search uses: at once when it sees photos as the active one does, else after
    its vectors are made (search keeps the active model meanwhile). Returns whether it is active; None
    when, sent again after stepping aside, there was nothing left to do (the model was removed, or
    another one chosen, meanwhile)."""
    noun = "photos"
    pausable = steps_aside = True
    close_wait = 0.5  # indexing, as IndexTask

    def __init__(self, library, model_id: str, resume: bool = False):
        super().__init__()
        self.library, self.model_id, self.resume = library, model_id, resume
        self.title = f"Switching to {model_id}"

    def run(self, job: Job) -> bool | None:
        from app import tasks

        prepare = self.say
        if self.resume:
            models = self.library.models
            if not models.store.exists(self.model_id):
                return None  # removed meanwhile
            if models.active_id == self.model_id:
                return True
            nxt = models.next()
            if nxt is not None:
                if nxt.id != self.model_id:
                    return None  # another model was chosen meanwhile
                prepare = None  # the user was told already
        return tasks.activate(self.library, self.model_id, job, on_prepare=prepare,
                              update=lambda: index_in_child(self, job))


class RemoveFolderTask(Task):
    """Stop watching a folder and forget its photos (the files are untouched). Returns the folder."""
    edit = True

    def __init__(self, library, path: str):
        super().__init__()
        self.library, self.path = library, path
        self.title = f"Removing {Path(path).name or path}"

    def run(self, job: Job) -> str:
        return self.library.remove_folder(self.path, on_wait=self.on_wait)


class QuantizeTask(Task):
    """Make a model's int8 image tower and index with it: `glimpse models quantize NAME --use` in a child
    process (ONNX's quantisation is Python work that would hold this process's lock for up to a minute;
    a cancel kills it, and the model keeps its old files: the tower is installed last). Returns the
    command's summary line."""
    close_wait = 0.5

    def __init__(self, library, model_id: str):
        super().__init__()
        self.library, self.model_id = library, model_id
        self.title = f"Making an int8 image tower for {model_id}"

    def run(self, job: Job) -> str:
        import subprocess
        import sys

        from app.tasks.child import child_env, stop
        from model.errors import ModelError

        job.report(self.title)
        child = subprocess.Popen([sys.executable, "-m", "app", "models", "quantize", self.model_id, "--use"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True,
                                 errors="replace")
        try:
            out, err = "", ""
            while True:
                try:
                    out, err = child.communicate(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    if job.control.cancelled:
                        stop(child, grace=0.5)
                        job.check()
        finally:
            if child.poll() is None:
                child.kill()
        self.library.settings.reload(report=False)  # --use turned the setting on in the child
        if child.returncode != 0:
            lines = [line.removeprefix("glimpse: ") for line in err.strip().splitlines()]
            raise ModelError(lines[-1] if lines else f"Making the int8 tower failed (exit {child.returncode}).")
        return out.strip().splitlines()[0] if out.strip() else f"Added an int8 image tower to {self.model_id}."


class RemoveModelTask(Task):
    """Delete a model, and the vectors no installed model can use any more. Returns `tasks.remove_model`'s
    answer: which model took over search (the active one removed), and whether its vectors are made."""
    edit = True

    def __init__(self, library, model_id: str):
        super().__init__()
        self.library, self.model_id = library, model_id
        self.title = f"Removing {model_id}"

    def run(self, job: Job) -> tuple[str | None, bool]:
        from app import tasks

        return tasks.remove_model(self.library, self.model_id)


class ExclusionsTask(Task):
    """Set the name patterns indexing skips (the next scan forgets the photos they match)."""
    title = "Saving exclusions"
    edit = True

    def __init__(self, library, patterns: list[str]):
        super().__init__()
        self.library, self.patterns = library, patterns

    def run(self, job: Job) -> None:
        self.library.folders.set_exclusions(self.patterns)


class CaptionTask(Task):
    """Save a caption typed in the preview ("" clears it). Returns the photo's caption now (a
    `CaptionPair` or None: with the typed one cleared, a caption from its files shows again)."""
    title = "Saving a caption"
    edit = True

    def __init__(self, library, path: str, text: str):
        super().__init__()
        self.library, self.path, self.text = library, path, text

    def run(self, job: Job):
        return self.library.set_caption(self.path, self.text, on_wait=self.on_wait)


class TuneTask(Task):
    """Fine-tune the active model on the user's captions (`app.tasks.tune.run`): the training runs in a
    child process (`python -m training`), so torch never loads into the window and Cancel kills it. Its
    events (`on_event(dict)`, called on the runner's thread) feed the Personalize tab's chart. Returns the
    `Outcome`: a new model is installed, nothing is activated (the user chooses)."""
    title = "Personalizing"
    noun = "steps"
    close_wait = 10.0   # the child gets SIGTERM, then SIGKILL after 5 s

    def __init__(self, library, options, on_event: Callable[[dict], None] | None = None):
        super().__init__()
        self.library, self.options, self.on_event = library, options, on_event

    def run(self, job: Job):
        from app.tasks import tune

        return tune.run(self.library, self.options, job, self.on_event)


class JobRunner(QObject):
    changed = Signal()                   # a task was queued, started, paused or ended
    started = Signal(object)             # task
    progressed = Signal(object, object)  # task, Progress
    ended = Signal(object)               # task; its state says done, failed or cancelled
    said = Signal(str)                   # a running task's note for the user

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.current: Task | None = None
        self._queue: deque[Task] = deque()
        self._cv = threading.Condition()
        self._held: set[type] = set()   # task classes the user paused (indexing stays paused)
        self._closed = False
        self._thread: threading.Thread | None = None
        self.ended.connect(self._then)

    # -- asking --------------------------------------------------------------------------------------
    def submit(self, task: Task, then: Callable[[Task], None] | None = None) -> Task:
        """Queue a task (it runs when those before it have ended). Any thread."""
        task.then = then
        task.say = self.said.emit
        task.notify = self.changed.emit
        with self._cv:
            if self._closed:
                task.state, task.message = "cancelled", "Glimpse is closing."
                task.finished.set()
                return task
            if type(task) in self._held:
                task.control.pause()
            running = self.current
            if running is not None and not task.yields:
                aside = running.yields or (task.edit and running.steps_aside)
                if aside and not running.preempted:  # it steps aside at its next batch
                    running.preempted, running.was_paused = True, running.control.paused
                    running.control.cancel()
                what = f"{running.title[:1].lower()}{running.title[1:]}"
                task.waiting_for = ("indexing to pause" if running.yields else
                                    f"{what} to pause" if aside else f"{what} to finish")
            elif self._queue:
                task.waiting_for = f"{len(self._queue)} earlier task{'s' if len(self._queue) > 1 else ''}"
            if task.yields:
                self._queue.append(task)
            else:  # the user's tasks go before queued indexing
                at = next((i for i, t in enumerate(self._queue) if t.yields), len(self._queue))
                self._queue.insert(at, task)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="glimpse-jobs", daemon=True)
                self._thread.start()
            self._cv.notify_all()
        self.changed.emit()
        return task

    def cancel(self, task: Task | None = None, by_user: bool = True) -> None:
        """Cancel a task (default: the running one); a queued one leaves the queue at once. Any thread."""
        with self._cv:
            task = task or self.current
            if task is None or task.finished.is_set():
                return
            task.by_user = by_user
            queued = task in self._queue
            if queued:
                self._queue.remove(task)
                task.state = "cancelled"
            task.control.cancel()
        if queued:
            task.finished.set()
            self.ended.emit(task)
            self.changed.emit()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the running task, where that applies (a paused indexing stays paused)."""
        task = self.current
        if task is None or not task.pausable:
            return
        (task.control.pause if paused else task.control.resume)()
        if task.sticky_pause:
            (self._held.add if paused else self._held.discard)(type(task))
        self.changed.emit()

    # -- what is going on ----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        task = self.current
        return bool(task and task.control.paused)

    @property
    def busy(self) -> bool:
        with self._cv:
            return self.current is not None or bool(self._queue)

    def queued(self) -> list[Task]:
        with self._cv:
            return list(self._queue)

    def find(self, kind: type) -> Task | None:
        """The running or queued task of this class, if any."""
        with self._cv:
            return next((t for t in [self.current, *self._queue] if isinstance(t, kind)), None)

    # -- running (the runner's thread) ---------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:  # closed; queued edits were run first
                    return
                task = self.current = self._queue.popleft()
                task.state = "running"
            self.started.emit(task)
            self.changed.emit()
            self._run(task)
            with self._cv:
                self.current = None
            self.ended.emit(task)
            task.finished.set()
            self.changed.emit()

    def _run(self, task: Task) -> None:
        last = {"stage": None, "at": 0.0}

        started = time.monotonic()

        def progress(p: Progress) -> None:
            now = time.monotonic()
            if not task.noun and p.eta_s is None and p.total and 0 < p.done < p.total and p.stage != "download":
                p = replace(p, eta_s=(now - started) * (p.total - p.done) / p.done)  # steps: from the pace so far
            task.progress, task.blocked_by = p, ""
            if p.stage != last["stage"] or now - last["at"] >= PROGRESS_EVERY or (p.total and p.done >= p.total):
                last["stage"], last["at"] = p.stage, now
                self.progressed.emit(task, p)

        job = Job(progress, task.control)
        try:
            job.check()  # cancelled while queued, or held paused: waits here
            task.result = task.run(job)
            task.state = "done"
        except Cancelled:
            task.state = "cancelled"
        except Exception as e:  # noqa: BLE001 - every failure becomes one line for the user
            from app import tasks

            # The window's own words where an error has them (a button to click, not a command to run).
            task.state, task.message = "failed", getattr(e, "window_message", None) or tasks.user_message(e)
            log.warning("%s failed: %s", task.title, task.message, exc_info=not isinstance(e, tasks.USER_ERRORS))

    def _then(self, task: Task) -> None:  # GUI thread
        if task.then is not None and not self._closed:
            task.then(task)

    # -- closing -------------------------------------------------------------------------------------
    def close(self) -> bool:
        """Cancel the running task and drop the queued ones, but for edits the user asked for (they run,
        so closing does not lose them); wait for the runner to stop, at most the `close_wait` of those.
        True once stopped (otherwise its daemon thread ends with the process)."""
        with self._cv:
            self._closed = True
            dropped = [t for t in self._queue if not t.edit]
            kept = [t for t in self._queue if t.edit]
            self._queue = deque(kept)
            wait = sum(t.close_wait for t in kept)
            if self.current is not None:
                if not self.current.edit:
                    self.current.control.cancel(quitting=True)
                wait += self.current.close_wait
            self._cv.notify_all()
            thread = self._thread
        for task in dropped:
            task.state = "cancelled"
            task.finished.set()
        if thread is not None:
            thread.join(wait or 5.0)  # an idle runner stops at once
            return not thread.is_alive()
        return True
