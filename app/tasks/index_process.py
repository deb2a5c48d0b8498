"""The window's indexing, in a child process: `index` does what `app.tasks.index` does, but the scan, the
decoders, the image model and the catalog's writes run in `python -m app.tasks.index_child`.

Why a process: decoder threads and the model run native code that holds the GIL for tens of
milliseconds at a time, which stalled the window; and a native crash in a decoder (libjpeg, libheif,
LibRaw on a hostile file) would take the window with it. The window keeps reading the catalog (search,
status: LanceDB shows other processes' commits) and gets progress as `model.jobs.Progress`, the same
as from any task. The child holds the catalog's writer lock while it writes; the window holds nothing
meanwhile (its runner runs one task at a time, and this one waits for the child to end).

Pause: the child ends at its next batch (the lock is given back) and says it paused; the caller waits
and runs it again. Cancel: the child stops its model run at once, keeps what was done, and ends. At
quit (`Control.quitting`) it is killed at once: the catalog keeps every commit (each is atomic), the
rest is redone next time. A child killed by the window's death sees its stdin close and ends too.

Crashes: the child reports each file a decoder opens and closes, so when it dies without a result
(a signal, an abort), the files open at that moment are the suspects. Decoders run in a pool, so there
may be several: a second child opens them one at a time, and the one it dies on is the culprit. The
next run records it as a problem, "crashed the decoder" (as an unreadable file: `Library.errors()`,
`glimpse status`, the window's problems list), and the scan skips it until its size or mtime changes;
the innocent suspects are indexed as usual. A crash that no file explains is retried, up to
`CRASH_LIMIT` times in a row, then the task fails with a message (details in the cache's index.log).

Hangs: a file in a decoder for longer than `HANG_LIMIT` (time paused not counted) stops the child, and the
files in its decoders then are the suspects, as after a crash; the probe child is stopped too when the
file it opens passes the limit, and that file is recorded as "hung the decoder" (if the probe opens them
all in time, the oldest suspect is: it did pass the limit). A hang is always explained: it never counts
towards `CRASH_LIMIT`.
"""
from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Callable

from app.library.indexer import Summary
from app.library.library import Library, Update
from app.library.scanner import Plan
from model.jobs import Job, Progress

from .child import child_env, open_log, stop
from .errors import IndexingStopped
from .index_child import CRASHED, HUNG

log = logging.getLogger(__name__)

CRASH_LIMIT = 3        # crashes in a row that no file explains before indexing gives up
CANCEL_GRACE = 10.0    # seconds a cancelled child has to end on its own before it is stopped
HANG_LIMIT = 120.0     # seconds one file may be in a decoder (a 100 MP PNG or a RAW on a busy laptop: a few)
_PROGRESS = {f.name for f in fields(Progress)}
_SUMMARY = {f.name for f in fields(Summary)}


@dataclass
class ChildPlan(Plan):
    """The child's scan as the window needs it: how many files changed, not which (`todo` and `deleted`
    stay empty: a first run would send the whole library)."""
    changed: int = 0

    @property
    def changes(self) -> int:
        return self.changed


_CHILD_PLAN = {f.name for f in fields(ChildPlan)} - {"todo", "deleted"}


@dataclass
class _Ended:
    update: Update | None = None           # None: it died without a result
    suspects: list[dict] = field(default_factory=list)  # files in a decoder when it died, oldest first
    code: int | None = None
    hung: bool = False                     # stopped because a file was in a decoder past HANG_LIMIT


def index(library: Library, job: Job, only: list[str] | None = None, batch_size: int = 32,
          on_wait: Callable[[str], None] | None = None,
          on_crash: Callable[[str, str], None] | None = None) -> Update:
    """`app.tasks.index` in a child process, surviving decoder crashes and hangs (`on_crash(path, reason)` for
    each file that crashed or hung one, reason `CRASHED` or `HUNG`). Returns the child's `Update` (its plan a
    `ChildPlan`)."""
    crashed: dict[str, dict] = {}   # path -> file and its "reason": recorded as problems by the next run
    unexplained = 0
    while True:
        request = {"only": only, "batch_size": batch_size, "crashed": list(crashed.values())}
        ended = _run(library, job, request, on_wait)
        if ended.update is not None:
            library.settings.reload(report=False)  # the child may have switched models: search follows now
            return ended.update
        if not ended.hung:
            log.warning("the indexing process crashed (exit %s) with %d files in its decoders",
                        ended.code, len(ended.suspects))
        found = _culprit(library, job, ended.suspects, ended.hung) if ended.suspects else None
        if job.control.cancelled:
            return Update(Plan(), Summary(cancelled=True))
        if found is None or found[0]["path"] in crashed:
            unexplained += 1
            if unexplained >= CRASH_LIMIT:
                raise IndexingStopped(f"Indexing stopped: its process crashed {unexplained} times "
                                      f"({_signal_name(ended.code)}). Details: {_log_path(library)}")
            continue
        unexplained = 0
        culprit, reason = found
        crashed[culprit["path"]] = {**culprit, "reason": reason}
        log.warning("%s %s; it is skipped until it changes", culprit["path"], reason)
        if on_crash is not None:
            on_crash(culprit["path"], reason)


def _culprit(library: Library, job: Job, suspects: list[dict], hung: bool) -> tuple[dict, str] | None:
    """Open the suspects one at a time in a child of their own: the file it dies or hangs on and the reason,
    or None. After a hang that the probe does not see again, the oldest suspect: it was past the limit."""
    if len(suspects) > 1:
        log.info("finding which of %d files %s", len(suspects), HUNG if hung else CRASHED)
    ended = _run(library, job, {"probe": suspects}, None)
    if ended.update is None and len(ended.suspects) == 1:
        return ended.suspects[0], HUNG if ended.hung else CRASHED
    if hung and ended.update is not None and not job.control.cancelled:
        return suspects[0], HUNG
    return None


def _log_path(library: Library):
    return library.paths.cache / "index.log"


def _signal_name(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def _run(library: Library, job: Job, request: dict, on_wait) -> _Ended:
    """One child, from start to end. Forwards pause and cancel; kills it at quit."""
    paths = library.paths
    request = {"paths": {"data": str(paths.data), "cache": str(paths.cache), "config": str(paths.config)},
               **request}
    with open_log(_log_path(library)) as err:
        what = f"probing {len(request['probe'])} files" if "probe" in request else "indexing"
        err.write(f"--- {time.ctime()}: {what}\n".encode())
        err.flush()
        child = subprocess.Popen([sys.executable, "-m", "app.tasks.index_child"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err, env=child_env(), start_new_session=True)
    talk = _Talk(child)
    talk.say(json.dumps(request))
    lines: queue.Queue = queue.Queue()

    def read():
        with child.stdout:
            for raw in child.stdout:
                lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="index-output").start()
    control = job.control
    in_flight: dict[str, tuple[dict, float]] = {}  # path -> its file and when it went in, oldest first
    clock = _PausableClock()
    result = error = None
    hung: list[dict] = []
    paused = False
    cancelled_at = None
    try:
        with control.on_cancel(lambda: talk.kill() if control.quitting else talk.say("cancel")):
            while not (talk.stopping and control.quitting):  # killed at quit: its teardown is not waited for
                if control.paused != paused and not control.cancelled:
                    paused = control.paused
                    clock.pause(paused)
                    talk.say("pause" if paused else "resume")
                if control.cancelled:
                    cancelled_at = cancelled_at or time.monotonic()
                    if time.monotonic() - cancelled_at > CANCEL_GRACE:
                        talk.stopping = True
                        stop(child)
                if in_flight and clock() - next(iter(in_flight.values()))[1] > HANG_LIMIT:
                    # Every file in a decoder is a suspect: a decoder stuck holding the GIL stalls the others.
                    hung = [f for f, _ in in_flight.values()]
                    log.warning("%s was in a decoder for over %.0f s: stopping the indexing process",
                                hung[0]["path"], HANG_LIMIT)
                    stop(child)
                    break
                try:
                    raw = lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if raw is None:  # it has ended (or is ending: its output is closed)
                    child.wait()
                    break
                try:
                    event = json.loads(raw)
                    kind = event["event"]
                except (ValueError, KeyError, TypeError):
                    continue
                if kind == "progress":
                    job.progress(Progress(**{k: v for k, v in event.items() if k in _PROGRESS}))
                elif kind == "decoding":
                    file = {**event["file"], "gpu": True} if event.get("gpu") else event["file"]
                    in_flight[file["path"]] = (file, clock())
                elif kind == "decoded":
                    in_flight.pop(event["path"], None)
                elif kind == "wait" and on_wait is not None:
                    on_wait(event["message"])
                elif kind == "result":
                    result = event
                elif kind == "error":
                    error = event
    finally:
        if child.poll() is None:
            talk.kill()
            if not control.quitting:
                child.wait()
        talk.close()
    if error is not None:
        raise IndexingStopped(error["message"] if error.get("expected") else
                              f"{error['message']} (details: {_log_path(library)})")
    if result is not None:
        return _Ended(_update(result) if "summary" in result else Update(Plan(), Summary()), code=child.returncode)
    if talk.stopping or control.cancelled:  # ended by the window, not by a crash
        return _Ended(Update(Plan(), Summary(cancelled=True)), code=child.returncode)
    if hung:
        return _Ended(None, hung, child.returncode, hung=True)
    return _Ended(None, [f for f, _ in in_flight.values()], child.returncode)


class _PausableClock:
    """Monotonic seconds that stand still while the child is paused: a file's time in a decoder is not
    counted while the window holds the child."""

    def __init__(self):
        self._paused_at: float | None = None
        self._paused_for = 0.0

    def pause(self, paused: bool) -> None:
        now = time.monotonic()
        if paused and self._paused_at is None:
            self._paused_at = now
        elif not paused and self._paused_at is not None:
            self._paused_for += now - self._paused_at
            self._paused_at = None

    def __call__(self) -> float:
        return (time.monotonic() if self._paused_at is None else self._paused_at) - self._paused_for


class _Talk:
    """The child's stdin, written from the runner's thread and from whoever cancels."""

    def __init__(self, child: subprocess.Popen):
        self.child = child
        self.stopping = False  # the window ended it: its death is no crash
        self._lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._lock:
            try:
                self.child.stdin.write(line.encode("ascii") + b"\n")
                self.child.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # it has ended; its end is read from its stdout

    def kill(self) -> None:
        self.stopping = True
        try:
            self.child.kill()
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            try:
                self.child.stdin.close()
            except OSError:
                pass


def _update(event: dict) -> Update:
    s = dict(event["summary"])
    s["error_list"] = [tuple(e) for e in s.get("error_list") or ()]
    summary = Summary(**{k: v for k, v in s.items() if k in _SUMMARY})
    plan = ChildPlan(**{k: v for k, v in event["plan"].items() if k in _CHILD_PLAN})
    return Update(plan, summary, event.get("switched_to"), event.get("repaired", 0), event.get("caption_folders", 0))
