"""One progress and cancel protocol for every long job: indexing, pull, import, activation, training.

A job is handed a `Job`: it calls `job.report(stage, done, total, …)` as it goes, and `job.check()` (or
`job.report`, which checks too) where it can stop. A cancelled job raises `Cancelled` from there, so
work unwinds through its own `finally` blocks (a half-installed model is swept, a half batch is
dropped). `Control` is the switchboard another thread holds: pause, resume, cancel. It lives in the
bottom layer so that the model layer, the library, training and both fronts share it.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterator


class Cancelled(Exception):
    """The user cancelled the job."""


@dataclass(frozen=True)
class Progress:
    stage: str               # what is happening, for people: "Indexing", "download", "Preparing tiny-v2"
    done: int = 0
    total: int = 0           # 0: unknown
    rate: float = 0.0        # items per second, over the last few seconds
    eta_s: float | None = None
    current: str = ""        # the item at hand (a file)
    errors: int = 0
    encoded: int = 0
    device: str = ""         # what does the work, for people: "CPU, 2 threads", "GPU: NVIDIA H200, decode on GPU"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class Control:
    """Pause, resume and cancel a running job from another thread."""

    def __init__(self):
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()
        # True: a job that holds a shared resource (the catalog's writer lock) ends at its next checkpoint
        # when paused, instead of waiting there, and its caller waits for resume and runs it again.
        self.yield_when_paused = False
        # True: the process is quitting; work done but not saved yet is dropped, not saved (redone next time).
        self.quitting = False
        self._hooks: list[Callable[[], None]] = []
        self._hooks_lock = threading.Lock()

    def cancel(self, quitting: bool = False) -> None:
        """Stop the job at its next checkpoint (`quitting`: see above)."""
        if quitting:
            self.quitting = True
        with self._hooks_lock:
            self._cancel.set()
            self._running.set()
            hooks = list(self._hooks)
        for fn in hooks:
            fn()

    @contextlib.contextmanager
    def on_cancel(self, fn: Callable[[], None]) -> Iterator[None]:
        """Within the block, a cancel also calls fn() (at once if cancelled already): it stops work that has
        no checkpoint of its own, such as a model run."""
        with self._hooks_lock:
            self._hooks.append(fn)
            now = self._cancel.is_set()
        if now:
            fn()
        try:
            yield
        finally:
            with self._hooks_lock:
                self._hooks.remove(fn)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def yielding(self) -> bool:
        """Paused, and asked to end rather than wait (see `yield_when_paused`)."""
        return self.yield_when_paused and self.paused

    def checkpoint(self) -> bool:
        """Wait while paused; returns False once cancelled."""
        self._running.wait()
        return not self._cancel.is_set()


class Job:
    """What a long task is given: where its progress goes, and the control that may stop it."""

    def __init__(self, on_progress: Callable[[Progress], None] | None = None, control: Control | None = None):
        self.on_progress = on_progress
        self.control = control or Control()

    def check(self) -> None:
        """Wait while paused; raise Cancelled once cancelled."""
        if not self.control.checkpoint():
            raise Cancelled("cancelled")

    def report(self, stage: str, done: int = 0, total: int = 0, **more) -> None:
        """Report progress (the `(stage, done, total)` callback the model layer takes), then check."""
        if self.on_progress is not None:
            self.on_progress(Progress(stage, int(done), int(total or 0), **more))
        self.check()

    def progress(self, p: Progress) -> None:
        """Pass on a whole Progress (the indexer's callback)."""
        if self.on_progress is not None:
            self.on_progress(p)
