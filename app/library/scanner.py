"""Finding what changed in the watched folders, without opening any unchanged file.

A walk lists every photo with its size and mtime (one `stat` each, from `os.scandir`). Compared with
the catalog it gives the plan: new files, changed files (size or mtime differ), files whose vector for
the active model is missing, and deletions (mark-and-sweep: what the catalog has under a root that the
walk did not see). A root that is missing, unreadable or looks unmounted (empty while the catalog
holds photos from it) is reported and skipped: it never counts as a deletion. Directory symlinks are
followed once (a loop is cut where a folder is seen again); unreadable folders are reported.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow.compute as pc

from .catalog import Catalog
from .formats import PHOTO_EXTENSIONS, RAW_EXTENSIONS, SIDECAR_JPEG, Exclusions, extension


@dataclass(frozen=True)
class FileInfo:
    path: str
    root: str
    size: int
    mtime_ns: int


@dataclass
class Plan:
    todo: list[FileInfo] = field(default_factory=list)      # new, changed, or missing a vector
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)      # roots or folders that could not be read
    skipped_roots: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.todo) + len(self.deleted)


def root_problem(root: str, catalog_count: int = 0) -> str | None:
    """Why a root cannot be scanned now, or None. Nothing under such a root is deleted."""
    if not os.path.exists(root):
        return f"{root}: folder not found (unmounted or moved?); its photos are kept"
    if not os.path.isdir(root):
        return f"{root}: not a folder"
    try:
        with os.scandir(root) as it:
            empty = next(it, None) is None
    except OSError as e:
        return f"{root}: cannot be read ({e.strerror or e}); its photos are kept"
    if empty and catalog_count:
        return f"{root}: folder is empty but held {catalog_count} photos (unmounted?); its photos are kept"
    return None


def walk(start: str, exclusions: Exclusions, problems: list[str] | None = None,
         root: str | None = None) -> Iterator[FileInfo]:
    """Every photo under `start` (within `root`, default `start`). RAW files beside a JPEG of the same
    name are left to the JPEG. Relative paths for the user's patterns are taken from `root`."""
    problems = problems if problems is not None else []
    root = root or start
    cut = len(root.rstrip(os.sep)) + 1
    seen_dirs: set[tuple[int, int]] = set()
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            problems.append(f"{folder}: {e.strerror or e}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue  # a symlink loop, or a folder linked twice
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            problems.append(f"{folder}: {e.strerror or e}")
            continue
        names = _Names(entries)
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=True):
                    if not exclusions.skips_folder(name, entry.path[cut:]):
                        stack.append(entry.path)
                    continue
                if _skips_file(name, entry.path[cut:], exclusions, names):
                    continue
                info = entry.stat(follow_symlinks=True)
            except OSError as e:  # a dangling link, or a file gone since the listing
                if not isinstance(e, FileNotFoundError):
                    problems.append(f"{entry.path}: {e.strerror or e}")
                continue
            if stat.S_ISREG(info.st_mode):
                yield FileInfo(entry.path, root, info.st_size, info.st_mtime_ns)


class _Names:
    """The names in one folder, listed only if a RAW file needs to look for its JPEG twin."""

    def __init__(self, entries=None, folder: str | None = None):
        self._entries, self._folder, self._names = entries, folder, None

    def get(self) -> set[str]:
        if self._names is None:
            self._names = ({e.name for e in self._entries} if self._entries is not None
                           else set(os.listdir(self._folder)))
        return self._names


def _skips_file(name: str, relative: str, exclusions: Exclusions, siblings: _Names) -> bool:
    """Not a photo, hidden, excluded by the user, or a RAW file whose JPEG twin stands for it."""
    ext = extension(name)
    if ext not in PHOTO_EXTENSIONS or name.startswith("."):
        return True
    if exclusions.patterns and exclusions.skips_file(name, relative):
        return True
    if ext in RAW_EXTENSIONS:
        stem = name[: name.rfind(".")]
        return any(stem + e in siblings.get() for e in SIDECAR_JPEG)
    return False


def plan(catalog: Catalog, roots: list[str], exclusions: Exclusions, model_id: str | None,
         only: list[str] | None = None) -> Plan:
    """Compare the folders on disk with the catalog. `only` limits the walk to some folders within the roots."""
    result = Plan()
    known = catalog.photo_columns(["path", "root", "size", "mtime_ns", "hash", "status"])
    if model_id:  # unchanged and complete: an error row, or an ok row whose content has a vector
        has_vector = pc.fill_null(pc.is_in(known["hash"], value_set=catalog.vector_hashes(model_id)), False)
        complete = pc.or_(pc.not_equal(known["status"], "ok"), has_vector).to_pylist()
    else:
        complete = [True] * known.num_rows
    paths, roots_col = known["path"].to_pylist(), known["root"].to_pylist()
    sizes, mtimes = known["size"].to_pylist(), known["mtime_ns"].to_pylist()
    catalog_rows = {p: (s, m, c) for p, s, m, c in zip(paths, sizes, mtimes, complete)}
    per_root: dict[str, int] = {}
    for r in roots_col:
        per_root[r] = per_root.get(r, 0) + 1

    for root in roots:
        problem = root_problem(root, per_root.get(root, 0))
        if problem:
            result.problems.append(problem)
            result.skipped_roots.append(root)
            continue
        starts = [root] if only is None else [f for f in only if _within(f, root)]
        for start in starts:
            seen: set[str] = set()
            if os.path.isdir(start):
                files = walk(start, exclusions, result.problems, root)
            elif os.path.isfile(start):  # one file the watcher saw change
                files = _one_file(start, root, exclusions)
            else:
                files = ()  # gone: everything the catalog has there is a deletion
            for info in files:
                seen.add(info.path)
                row = catalog_rows.get(info.path)
                if row and row[0] == info.size and row[1] == info.mtime_ns and row[2]:
                    result.unchanged += 1
                else:
                    result.todo.append(info)
            prefix = start.rstrip(os.sep) + os.sep
            result.deleted.extend(p for p, r in zip(paths, roots_col)
                                  if r == root and (p == start or p.startswith(prefix)) and p not in seen)
    # Photos of roots no longer watched are not this scan's business (Folders.remove forgets them).
    result.todo = list({f.path: f for f in result.todo}.values())
    result.deleted = sorted(set(result.deleted))
    return result


def _one_file(path: str, root: str, exclusions: Exclusions) -> list[FileInfo]:
    name = os.path.basename(path)
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)[:-1]
    if _skips_file(name, relative, exclusions, _Names(folder=os.path.dirname(path))):
        return []
    if any(exclusions.skips_folder(p, os.sep.join(parts[: i + 1])) for i, p in enumerate(parts)):
        return []
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [FileInfo(path, root, st.st_size, st.st_mtime_ns)] if stat.S_ISREG(st.st_mode) else []


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

