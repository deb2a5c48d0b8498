"""User settings, a JSON file written atomically. Unknown keys are kept; a damaged file is set aside.

Several processes share the file (the window, `glimpse folders add`, `glimpse watch`): each write takes
a lock file beside it, re-reads the file and changes only its own key, so one process never undoes
another's change. `reload()` picks up what other processes wrote.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

DEFAULTS: dict[str, Any] = {
    "active_model": None,
    "next_model": None,  # a model whose image space is being indexed before it becomes active
    "provider": "auto",  # auto | cuda | cpu
    "int8_image_tower": False,  # index with the model's int8 image tower on the CPU (model.quantize)
    "folders": [],       # watched roots, absolute paths
    "exclude": [],       # glob patterns on names or relative paths, besides hidden and known folders
    "watch": True,
    "exact_search_limit": 50_000,  # photos searched exactly in memory; more use the ANN index
    "album_captions": False,  # album folder names as weak captions ("2019-07 Mia's lake house")
    "gui": {},           # the window's own state (geometry, sort, theme), owned by app.gui
}


class Settings:
    def __init__(self, path: Path):
        self.path = path
        self._data = dict(DEFAULTS)
        self._lock = threading.Lock()  # the window writes from its thread and from workers
        self._file_lock = FileLock(path.with_name(path.name + ".lock"), timeout=30)
        self._seen: tuple | None = None  # the file's identity when last read or written
        self._changed: set[str] = set()  # keys other processes changed, not yet reported by reload()
        self.warning: str | None = None
        try:
            loaded, self._seen = self._read()
            self._data.update(loaded)
        except FileNotFoundError:
            pass
        except (ValueError, OSError) as e:
            backup = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            try:
                os.replace(path, backup)
            except OSError:
                backup = path
            self.warning = f"Settings file {path} was unreadable ({e}); kept as {backup.name}, using defaults."

    def __getitem__(self, key: str) -> Any:
        return self._data.get(key, DEFAULTS.get(key))

    def __setitem__(self, key: str, value: Any) -> None:
        self.update(key, lambda _: value)

    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Set `key` to `change(its value in the file now)`, holding the file's lock: a read-modify-write
        that no other process can interleave. `change` may raise to leave the file as it is."""
        with self._lock, self._locked():
            try:
                on_disk, _ = self._read()
            except (ValueError, OSError):  # missing, or damaged since: our own view is the best there is
                on_disk = {k: v for k, v in self._data.items()}
            value = change(on_disk.get(key, DEFAULTS.get(key)))
            merged = {**on_disk, key: value}
            self._seen = self._write(merged)
            self._absorb({**DEFAULTS, **merged}, own=key)
            return value

    def reload(self, report: bool = True) -> set[str]:
        """Follow changes other processes made to the file; returns the keys whose values changed since
        the last reload() (this process's own changes are not reported). Cheap when nothing changed.
        `report=False` follows them and returns nothing: the next reload() still reports them."""
        with self._lock:
            try:
                if _identity(os.stat(self.path)) != self._seen:
                    loaded, self._seen = self._read()
                    self._absorb({**DEFAULTS, **loaded})
            except FileNotFoundError:
                if self._seen is not None:
                    self._seen = None
                    self._absorb(dict(DEFAULTS))
            except (ValueError, OSError):
                pass  # being edited by hand, or unreadable for now: keep what we have
            if not report:
                return set()
            changed, self._changed = self._changed, set()
            return changed

    # -- the file ------------------------------------------------------------------------------------
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return _Lock(self._file_lock)

    def _absorb(self, data: dict, own: str | None = None) -> None:
        self._changed |= {k for k in data.keys() | self._data.keys()
                          if k != own and data.get(k) != self._data.get(k)}
        self._data = data

    def _read(self) -> tuple[dict, tuple]:
        with open(self.path, "rb") as f:
            identity = _identity(os.fstat(f.fileno()))
            loaded = json.loads(f.read().decode("utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError("not a JSON object")
        return loaded, identity

    def _write(self, data: dict) -> tuple:
        """Write atomically (a temporary file renamed over the old one); returns the new file's identity."""
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(data, indent=2, sort_keys=True))
                f.flush()
                os.fsync(f.fileno())
                identity = _identity(os.fstat(f.fileno()))
            os.replace(tmp, self.path)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError) and e.filename is None:  # a full disk: say which file it was
                raise OSError(e.errno, e.strerror, str(self.path)) from e
            raise
        return identity


def _identity(st: os.stat_result) -> tuple:
    # Every write renames a new file into place, so the inode changes even when mtime is coarse.
    return st.st_ino, st.st_size, st.st_mtime_ns


class _Lock:
    """The settings lock file, held across processes; after 30 s of waiting, write anyway (a process
    stuck while holding it must not cost the user their change)."""

    def __init__(self, lock: FileLock):
        self.lock = lock
        self.held = False

    def __enter__(self):
        try:
            self.lock.acquire()
            self.held = True
        except Timeout:
            pass
        return self

    def __exit__(self, *exc):
        if self.held:
            self.lock.release()
