"""Keeping the index current while the app runs: watchdog's native observer plus reconcile scans.

File-system events only say where to look. They are collected and debounced: nothing happens until no
event has arrived for `quiet` seconds (a file being copied keeps sending events; after `max_wait` the
batch goes anyway, and a file caught half-written is redone at its next event), then the touched files
and folders are rescanned with the scanner and indexed, so the catalog always follows what is on disk,
not what the events claimed. Sidecars and caption files (.xmp, .json, captions.csv…) count too: the
update reads their folder's captions again. A full reconcile scan runs at start, after the kernel's
event queue overflowed, every `reconcile_every` seconds, and when a root that was missing comes back.

Every `check_every` seconds (cheap: one `stat` per folder) the watcher follows what changed without an
event: the settings file (folders added or removed, exclusions changed, by another process too), and
the roots, mount points, out-of-sight folders and link targets of the last scan (a drive plugged in,
unplugged or mounted again). Either brings a reconcile, and the watches follow. inotify does not follow
symlinks, so each symlinked folder the scan followed gets a watch of its own on its target, whose
events are mapped back to the path under the root. Events outside the current roots are dropped.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .caption_index import is_caption_file
from .formats import is_photo_name
from .indexer import Control, Progress
from .library import Library, Update
from .scanner import Plan, within

log = logging.getLogger(__name__)


class _Events(FileSystemEventHandler):
    """Events of a root's watch, or of a link target's watch (`target`: paths are mapped to the links)."""

    def __init__(self, watcher: "Watcher", target: str | None = None):
        self.watcher = watcher
        self.target = target

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            path = os.fsdecode(path)
            name = os.path.basename(path)  # a sidecar or caption file changes captions (`caption_index`)
            if event.is_directory or is_photo_name(name) or is_caption_file(name) or self.watcher.is_link(path):
                for seen_as in self.watcher.paths_under_roots(path, self.target):
                    self.watcher.touch(seen_as)


def _identity(path: str) -> tuple[int, int] | None:
    """Which folder is at `path` now (None: none): it changes when a drive is mounted or plugged in."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


class _Overflow(logging.Handler):
    """watchdog logs a queue overflow but sends no event for it: listen to its log."""

    def __init__(self, watcher: "Watcher"):
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher.request_reconcile()


class Watcher:
    def __init__(self, library: Library, on_update: Callable[[Update], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None, quiet: float = 1.0,
                 reconcile_every: float | None = 900.0, control: Control | None = None, max_wait: float = 10.0,
                 on_busy: Callable[[bool], None] | None = None, observe: bool = True,
                 run_update: Callable[..., Update] | None = None, check_every: float = 2.0):
        self.library = library
        # How a batch is indexed: `run_update(progress, control, only=…)`, by default `library.update`
        # (the window passes one that queues it in its job runner and waits for it).
        self.run_update = run_update or library.update
        self.on_update = on_update
        self.on_progress = on_progress
        self.on_busy = on_busy  # called with True when work starts and False when it ends
        self.observe = observe  # False: no file events, only reconcile scans (at start, on request, periodic)
        self.quiet = quiet
        self.max_wait = max_wait  # a file that never stops changing does not hold back the others
        self.reconcile_every = reconcile_every
        self.check_every = check_every  # settings and folders without events (see the module's notes)
        self.control = control or Control()
        self._pending: set[str] = set()
        self._last_event = 0.0
        self._first_event = 0.0
        self._reconcile = True  # at start
        self._wake = threading.Condition()
        self._stop = False
        self._observer = None
        self._watched: dict[str, tuple[object, tuple]] = {}   # root -> (its watch, its identity then)
        self._root_ids: dict[str, tuple | None] = {}          # root -> identity at the last reconcile
        self._polled: dict[str, tuple | None] = {}            # other folders to follow -> identity
        self._mount_points: set[str] = set()
        self._rewatch: set[str] = set()                       # roots whose watch must be made again
        self._links: dict[str, list[str]] = {}                # link target -> the links to it, under roots
        self._link_paths: frozenset[str] = frozenset()
        self._link_watches: dict[str, tuple[object, tuple]] = {}
        self._thread: threading.Thread | None = None
        self._overflow = _Overflow(self)
        self.error: str | None = None

    # -- event side (observer thread) ---------------------------------------------------------------
    def touch(self, path: str) -> None:
        with self._wake:
            if not self._pending:
                self._first_event = time.monotonic()
            self._pending.add(path)
            self._last_event = time.monotonic()
            self._wake.notify()

    def request_reconcile(self) -> None:
        with self._wake:
            self._reconcile = True
            self._wake.notify()

    def is_link(self, path: str) -> bool:
        """A symlink made (a folder, maybe) or a known symlinked folder removed: the scan must look."""
        return path in self._link_paths or os.path.islink(path)

    def paths_under_roots(self, path: str, target: str | None) -> list[str]:
        """`path` as the catalog sees it: through the links to `target` when it came from a target's watch."""
        if target is None:
            return [path]
        rest = path[len(target):] if within(path, target) else None
        return [] if rest is None else [link + rest for link in self._links.get(target, ())]

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> "Watcher":
        logging.getLogger("watchdog").addHandler(self._overflow)
        if self.observe:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
            self._watch_roots()
        self._thread = threading.Thread(target=self._loop, name="glimpse-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self.control.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        logging.getLogger("watchdog").removeHandler(self._overflow)

    @property
    def idle(self) -> bool:
        """True when no change is waiting to be indexed."""
        with self._wake:
            return not self._pending and not self._reconcile and not self._busy

    _busy = False

    def _watch_roots(self) -> None:
        """Watch the roots there are now; a root that came back, or was mounted again, is watched anew."""
        roots = set(self.library.folders.list())
        self._root_ids = {root: _identity(root) for root in roots}
        rewatch, self._rewatch = self._rewatch, set()
        if self._observer is None:
            return
        for root in list(self._watched):
            if root not in roots or root in rewatch or self._root_ids[root] != self._watched[root][1]:
                self._unschedule(self._watched.pop(root)[0])
        for root in roots - set(self._watched):
            if self._root_ids[root] is not None:
                try:
                    watch = self._observer.schedule(_Events(self), root, recursive=True)
                    self._watched[root] = (watch, self._root_ids[root])
                except OSError as e:  # e.g. the inotify watch limit
                    self.error = f"{root}: cannot watch for changes ({e}); rescanning every few minutes instead"

    def _watch_links(self, linked: dict[str, str], replace: bool) -> None:
        """A watch on the target of each symlinked folder a scan followed (those outside every root)."""
        roots = self.library.folders.list()
        links = {} if replace else {t: list(ls) for t, ls in self._links.items()}
        for link, target in linked.items():
            if not any(within(target, r) for r in roots):
                links.setdefault(target, [])
                if link not in links[target]:
                    links[target].append(link)
        self._links = links
        self._link_paths = frozenset(link for ls in links.values() for link in ls)
        if self._observer is None:
            return
        for target in list(self._link_watches):
            if target not in links or _identity(target) != self._link_watches[target][1]:
                self._unschedule(self._link_watches.pop(target)[0])
        for target in links:
            ident = _identity(target)
            if target not in self._link_watches and ident is not None:
                try:
                    self._link_watches[target] = (
                        self._observer.schedule(_Events(self, target), target, recursive=True), ident)
                except OSError as e:
                    self.error = f"{target}: cannot watch for changes ({e}); rescanning every few minutes instead"

    def _unschedule(self, watch) -> None:
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError):  # its folder is gone, and watchdog let go of it already
            pass

    def _after_scan(self, plan: Plan, full: bool) -> None:
        """Follow what the scan met: symlinked folders to watch, folders to poll."""
        self._watch_links(plan.linked_dirs, replace=full)
        if full:
            self._mount_points = set(plan.mount_points)
            self._polled = {}
        for path in (*plan.kept, *plan.mount_points, *self._links):
            self._polled[path] = _identity(path)

    _mounts: set[str] | None = None

    def _follow(self) -> None:
        """Settings other processes changed; roots and polled folders that appeared, went or were mounted."""
        try:
            changed = self.library.settings.reload()
        except Exception as e:  # noqa: BLE001 - an unreadable settings file: keep what we have
            log.warning("watcher: settings: %s", e)
            changed = set()
        roots = self.library.folders.list()
        # Another process chose or removed a model (glimpse models use, remove): an update follows it (a
        # new model's vectors, a rescan otherwise cheap), and the window refreshes after it.
        if (changed & {"folders", "exclude", "active_model", "next_model"} or set(roots) != set(self._root_ids)
                or any(_identity(r) != self._root_ids[r] for r in roots)):
            self.request_reconcile()
        mounts = _mount_points()
        if mounts is not None and mounts != self._mounts:  # a drive mounted or unmounted (Linux)
            if self._mounts is not None:
                touched = [m for m in mounts ^ self._mounts if any(within(m, r) for r in roots)]
                if touched:  # a root's watch is on the folder under a new mount: watch it again
                    self._rewatch.update(r for r in roots if any(within(m, r) for m in touched))
                    self.request_reconcile()
            self._mounts = mounts
        for path, before in list(self._polled.items()):
            now = _identity(path)
            if now != before:
                self._polled[path] = now
                if path in self._mount_points:  # the root's watch is on the folder under the mount
                    self._rewatch.update(r for r in self._root_ids if within(path, r))
                self.request_reconcile()

    # -- work side (watcher thread) ------------------------------------------------------------------
    def _loop(self) -> None:
        next_reconcile = time.monotonic() + (self.reconcile_every or float("inf"))
        next_check = 0.0
        while True:
            if time.monotonic() >= next_check:
                self._follow()
                next_check = time.monotonic() + self.check_every
            with self._wake:
                work = False
                while not self._stop and not work:
                    now = time.monotonic()
                    if now >= next_reconcile:
                        self._reconcile = True
                    work = self._reconcile or bool(self._pending) and (
                        now - self._last_event >= self.quiet or now - self._first_event >= self.max_wait)
                    if work or now >= next_check:
                        break
                    wait = self.quiet if self._pending else min(5.0, max(0.05, next_reconcile - now))
                    self._wake.wait(min(wait, next_check - now))
                if self._stop:
                    return
                if not work:
                    continue
            self._follow()  # the batch is checked against the folders as they are now
            next_check = time.monotonic() + self.check_every
            with self._wake:
                full, self._reconcile = self._reconcile, False
                roots = self.library.folders.list()
                only = None if full else sorted(p for p in self._pending if any(within(p, r) for r in roots))
                self._pending.clear()
                if only == []:
                    continue  # only events outside the watched folders
                self._busy = True
            if self.on_busy:
                self.on_busy(True)
            try:
                if full:
                    self._watch_roots()
                    next_reconcile = time.monotonic() + (self.reconcile_every or float("inf"))
                update = self.run_update(self.on_progress, self.control, only=only)
                self._after_scan(update.plan, full and not update.summary.cancelled)
                if self.on_update and (update.plan.changes or update.plan.problems):
                    self.on_update(update)
            except Exception as e:  # keep watching; the next change or reconcile retries
                self.error = str(e)
                log.warning("watcher: %s", e)
            finally:
                with self._wake:
                    self._busy = False
                if self.on_busy:
                    self.on_busy(False)


def _mount_points() -> set[str] | None:
    """Where file systems are mounted, from /proc/self/mountinfo (None where there is no such file)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    return {os.fsdecode(line.split(b" ")[4].decode("unicode_escape").encode("latin-1")) for line in lines
            if len(line.split(b" ")) > 4}
