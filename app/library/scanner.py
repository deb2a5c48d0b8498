"""Finding what changed in the watched folders, without opening any unchanged file.

A walk lists every photo with its size and mtime (one `stat` each, from `os.scandir`). Compared with
the catalog it gives the plan: new files, changed files (size or mtime differ), files whose vector for
the active model is missing, and deletions (mark-and-sweep: what the catalog has under a root that the
walk did not see). A root that is missing, unreadable or looks unmounted (empty while the catalog
holds photos from it) is reported and skipped: it never counts as a deletion. The same goes for what
lies under a folder that cannot be listed, under a symlink whose target is gone (an unplugged drive),
and under a mount point inside a root (one now, or at the last full scan: the `mount_points` meta
fact) that is unmounted or empty while the catalog holds photos there. Directory symlinks are followed
once (a loop is cut where a folder is seen again; a link to a folder that holds a watched root, such as
`/`, is not followed). A full scan also forgets the photos of roots no longer watched.
"""
from __future__ import annotations

import dataclasses
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow.compute as pc

from .catalog import Catalog, real_paths
from .formats import PHOTO_EXTENSIONS, RAW_EXTENSIONS, SIDECAR_JPEG, Exclusions, extension


@dataclass(frozen=True)
class FileInfo:
    path: str
    root: str
    size: int
    mtime_ns: int
    known_hash: str | None = None  # the content hash the catalog holds for this path, when it has a row
    known_checksum: str | None = None  # and its whole-file checksum


@dataclass
class Plan:
    todo: list[FileInfo] = field(default_factory=list)      # new, changed, or missing a vector
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)      # roots or folders that could not be read
    skipped_roots: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)          # folders out of sight whose photos were kept
    linked_dirs: dict[str, str] = field(default_factory=dict)  # symlinked folder under a root -> its target
    mount_points: list[str] = field(default_factory=list)  # mount points in the roots (full scans only)

    @property
    def changes(self) -> int:
        return len(self.todo) + len(self.deleted)


@dataclass
class Walked:
    """What a walk met besides photos."""
    unlisted: list[str] = field(default_factory=list)  # folders that could not be listed, dangling links
    mounts: list[str] = field(default_factory=list)    # mount points (the start included)
    linked: dict[str, str] = field(default_factory=dict)  # symlinked folders followed -> real target


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
         root: str | None = None, walked: Walked | None = None, roots: list[str] = ()) -> Iterator[FileInfo]:
    """Every photo under `start` (within `root`, default `start`). RAW files beside a JPEG of the same
    name are left to the JPEG. Relative paths for the user's patterns are taken from `root`. A link to a
    folder holding `root` or one of `roots` is not followed. What else it meets goes into `walked`."""
    problems = problems if problems is not None else []
    walked = walked if walked is not None else Walked()
    root = root or start
    cut = len(root.rstrip(os.sep)) + 1
    real_roots = {os.path.realpath(r) for r in (root, *roots)}
    seen_dirs: set[tuple[int, int]] = set()
    # (folder, st_dev of its parent or None for the start, real target when it is a symlink)
    stack: list[tuple[str, int | None, str | None]] = [
        (start, None, os.path.realpath(start) if os.path.islink(start) else None)]
    while stack:
        folder, parent_dev, target = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            problems.append(f"{folder}: {e.strerror or e}")
            if not isinstance(e, FileNotFoundError):
                walked.unlisted.append(folder)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue  # a symlink loop, or a folder linked twice
        seen_dirs.add(key)
        if target:
            walked.linked[folder] = target
        elif os.path.ismount(folder) if parent_dev is None else st.st_dev != parent_dev:
            walked.mounts.append(folder)
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            problems.append(f"{folder}: {e.strerror or e}")
            walked.unlisted.append(folder)
            continue
        names = _Names(entries)
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=True):
                    if exclusions.skips_folder(name, entry.path[cut:]):
                        continue
                    linked_to = os.path.realpath(entry.path) if entry.is_symlink() else None
                    if linked_to and any(within(r, linked_to) for r in real_roots):
                        problems.append(f"{entry.path}: not followed (it links to {linked_to}, "
                                        "which holds a watched folder)")
                        continue
                    stack.append((entry.path, st.st_dev, linked_to))
                    continue
                if entry.is_symlink() and not os.path.exists(entry.path):
                    walked.unlisted.append(entry.path)  # its target is gone: an unplugged drive?
                    continue
                if _skips_file(name, entry.path[cut:], exclusions, names):
                    continue
                info = entry.stat(follow_symlinks=True)
            except OSError as e:  # a dangling link, or a file gone since the listing
                if not isinstance(e, FileNotFoundError):  # e.g. a folder that lists but cannot be entered
                    problems.append(f"{entry.path}: {e.strerror or e}")
                    walked.unlisted.append(entry.path)  # out of sight, not gone: its row is kept
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
    known = catalog.photo_columns(["path", "root", "size", "mtime_ns", "hash", "status", "checksum"])
    if model_id:  # unchanged and complete: an error row, or an ok row whose content has a vector
        has_vector = pc.fill_null(pc.is_in(known["hash"], value_set=catalog.vector_hashes(model_id)), False)
        complete = pc.or_(pc.not_equal(known["status"], "ok"), has_vector).to_pylist()
    else:
        complete = [True] * known.num_rows
    paths, roots_col = real_paths(known["path"]), real_paths(known["root"])
    sizes, mtimes = known["size"].to_pylist(), known["mtime_ns"].to_pylist()
    hashes = known["hash"].to_pylist()
    catalog_rows = {p: (s, m, c, h, k) for p, s, m, c, h, k in
                    zip(paths, sizes, mtimes, complete, hashes, known["checksum"].to_pylist())}
    per_root: dict[str, int] = {}
    for r in roots_col:
        per_root[r] = per_root.get(r, 0) + 1

    watched = set(roots)
    row_roots = dict(zip(paths, roots_col))
    recorded = _recorded_mounts(catalog)
    record: dict[str, list[str]] = {}

    for root in roots:
        problem = root_problem(root, per_root.get(root, 0))
        if problem:
            result.problems.append(problem)
            result.skipped_roots.append(root)
            record[root] = recorded.get(root, [])
            continue
        starts = [root] if only is None else [f for f in only if within(f, root)]
        mounts_seen: set[str] = set()
        for start in starts:
            seen: set[str] = set()
            walked = Walked()
            if os.path.isdir(start):
                files = walk(start, exclusions, result.problems, root, walked, roots)
            elif os.path.isfile(start):  # one file the watcher saw change
                files = _one_file(start, root, exclusions)
            else:
                files = ()  # gone: everything the catalog has there is a deletion, unless it is out of sight
                hidden = _out_of_sight(start, root)
                if hidden:
                    walked.unlisted.append(hidden[0])
                    if hidden[1]:
                        result.problems.append(f"{hidden[0]}: {hidden[1]}")
            for info in files:
                seen.add(info.path)
                row = catalog_rows.get(info.path)
                if (row and row[0] == info.size and row[1] == info.mtime_ns and row[2]
                        and row_roots[info.path] == root):  # a row left by a root no longer watched moves here
                    result.unchanged += 1
                else:
                    result.todo.append(dataclasses.replace(info, known_hash=row[3], known_checksum=row[4])
                                       if row else info)
            prefix = start.rstrip(os.sep) + os.sep
            gone = [p for p, r in zip(paths, roots_col)
                    if (r == root or r not in watched) and (p == start or p.startswith(prefix)) and p not in seen]
            kept = _out_of_sight_photos(start, root, exclusions, walked, recorded.get(root, []), gone, seen,
                                        result.problems)
            result.deleted.extend(p for p in gone if not any(within(p, k) for k in kept))
            result.kept.extend(kept)
            result.linked_dirs.update(walked.linked)
            mounts_seen.update(walked.mounts)
            mounts_seen.update(m for m in recorded.get(root, []) if m in kept
                               or any(within(m, u) for u in walked.unlisted))
        record[root] = sorted(mounts_seen)
    result.todo = list({f.path: f for f in result.todo}.values())
    if only is None and roots:
        # Photos of roots no longer watched (an update that ran while its folder was removed), except
        # those under a watched root, which that root's scan has taken care of. With no roots at all
        # (a settings file lost?) nothing is forgotten: Folders.remove forgets a root's photos anyway.
        result.deleted.extend(p for p, r in zip(paths, roots_col)
                              if r not in watched and not any(within(p, w) for w in roots))
        result.mount_points = [m for root in roots for m in record[root]]
        if record != recorded:
            catalog.set_meta(MOUNTS, json.dumps(record, sort_keys=True)).result()
    result.deleted = sorted(set(result.deleted))
    return result


MOUNTS = "mount_points"  # meta key: {root: [mount points in it at the last full scan]}


def _recorded_mounts(catalog: Catalog) -> dict[str, list[str]]:
    try:
        value = json.loads(catalog.meta(MOUNTS) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _out_of_sight_photos(start: str, root: str, exclusions: Exclusions, walked: Walked, recorded: list[str],
                         gone: list[str], seen: set[str], problems: list[str]) -> list[str]:
    """The folders under `start` whose photos in `gone` are kept: folders that could not be listed, links
    whose target is missing, and mount points (now, or at the last full scan) that are empty or
    unmounted while the catalog holds photos there. Reports the links and mount points."""
    def held(folder: str) -> int:
        return sum(1 for p in gone if within(p, folder))

    kept = []
    for folder in walked.unlisted:
        n = held(folder)
        if n:
            kept.append(folder)
            if os.path.islink(folder) and not os.path.exists(folder):
                problems.append(f"{folder}: link target is missing (unplugged?); its {n} photos are kept")
    for mount in sorted(set(recorded) | set(walked.mounts)):
        if within(mount, start):
            folder, mounted = mount, mount in walked.mounts
            if not mounted and (_excluded(mount, root, exclusions) or any(within(mount, k) for k in kept)):
                continue  # excluded by the user, or already kept
        elif within(start, mount):
            folder, mounted = start, os.path.ismount(mount)
        else:
            continue
        n = held(folder)
        if not n or any(within(p, folder) for p in seen) or (mounted and not _empty(mount)):
            continue
        kept.append(folder)
        state = "empty" if os.path.isdir(mount) else "not found"
        problems.append(f"{mount}: {state} but held {n} photos (unmounted?); its photos are kept")
    return kept


def _empty(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False


def _out_of_sight(path: str, root: str) -> tuple[str, str] | None:
    """For a path that is no file or folder now: the path or link that hides it and why ("" when the
    caller reports it), or None when it is simply gone."""
    try:
        os.stat(path)
        return None
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as e:
        return path, f"{e.strerror or e}"
    while path != root and within(path, root):
        if os.path.islink(path) and not os.path.exists(path):
            return path, ""
        path = os.path.dirname(path)
    return None


def _excluded(folder: str, root: str, exclusions: Exclusions) -> bool:
    parts = os.path.relpath(folder, root).split(os.sep)
    return folder != root and any(exclusions.skips_folder(p, os.sep.join(parts[: i + 1])) for i, p in enumerate(parts))


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


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

