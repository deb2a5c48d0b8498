"""Captions in the catalog: the pass that reads them from the watched folders, and the one chosen per photo.

`refresh` runs at the end of every update (`Library.update`, so the scanner, `glimpse index` and the
watcher all keep captions current). It looks at each folder that holds indexed photos, and at the
folders above them up to their root (a captions.csv may name `sub/IMG_1.jpg`). A folder's signature
is the names, sizes and times of its photos (as the catalog holds them, just updated) and of its
caption-bearing files (*.xmp, *.json, captions.csv, metadata.csv, metadata.jsonl): one `scandir` and a
`stat` per caption file. Only folders whose signature changed are read again, and in them the embedded
caption is read again only from photos whose size or time changed. A folder that cannot be listed now
(an unplugged drive) keeps its captions. Captions of folders that hold no photo any more are dropped.

Album folder names are not stored: `album_name` of the photo's folder is applied when the captions are
asked for, only while the `album_captions` setting is on, so turning it on or off needs no update.

Typed captions live in `typed_captions`, keyed by content hash: one follows its photo when it is moved
or renamed. The chosen caption of a photo is the first of `PRIORITY` it has.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass
from typing import Callable

from model.jobs import Control, Progress

from . import captions
from .catalog import Catalog, db_path, real_paths, sql_str
from .scanner import within

TYPED = "typed"
# Best first. Embedded text is the user's own, written in their photo tool; caption files are often
# made by scripts; album names are weak (every photo of a folder gets the same words).
PRIORITY = (TYPED, captions.XMP, captions.IPTC, captions.EXIF, captions.XMP_SIDECAR, captions.TAKEOUT,
            captions.CAPTIONS_CSV, captions.METADATA_CSV, captions.METADATA_JSONL, captions.ALBUM)
_RANK = {s: i for i, s in enumerate(PRIORITY)}
EMBEDDED = (captions.XMP, captions.IPTC, captions.EXIF)
CAPTION_FILES = frozenset((captions.CAPTIONS_CSV, captions.METADATA_CSV, captions.METADATA_JSONL))
STAGE = "Reading captions"
log = logging.getLogger(__name__)
FLUSH_EVERY = 2000  # photos read between commits


class CaptionError(ValueError):
    """A caption that cannot be set or written, with a message fit for the user."""


@dataclass(frozen=True)
class CaptionPair:
    """A photo and the caption chosen for it: what fine-tuning trains on."""
    path: str
    hash: str
    text: str
    source: str  # one of PRIORITY
    folder: str  # the photo's folder

    def to_dict(self) -> dict:
        return asdict(self)


def is_caption_file(name: str) -> bool:
    """A file whose change may change captions: an XMP or JSON sidecar, or a caption file."""
    if name.startswith("."):
        return False
    return name in CAPTION_FILES or os.path.splitext(name)[1].lower() in (".xmp", ".json")


# -- the pass ----------------------------------------------------------------------------------------

def refresh(catalog: Catalog, only: list[str] | None = None, progress: Callable[[Progress], None] | None = None,
            control: Control | None = None) -> int:
    """Read again the captions of folders that changed (within `only` when given). Returns how many
    folders were read. Call it holding the catalog's writer lock, after the photos are up to date."""
    control = control or Control()
    ok = catalog.photo_columns(["path", "root", "size", "mtime_ns"], "status = 'ok'")
    photos: dict[str, dict[str, tuple[int, int]]] = {}  # folder -> {name: (size, mtime_ns)}
    folders: set[str] = set()
    for path, root, size, mtime in zip(real_paths(ok["path"]), real_paths(ok["root"]),
                                       ok["size"].to_pylist(), ok["mtime_ns"].to_pylist()):
        folder, name = os.path.split(path)
        photos.setdefault(folder, {})[name] = (size, mtime)
        while folder not in folders:  # the folder and those above it, up to its root
            folders.add(folder)
            parent = os.path.dirname(folder)
            if folder == root or parent == folder or not within(parent, root):
                break
            folder = parent

    known = {r["folder"]: r["signature"] for r in catalog.caption_folders(["folder", "signature"])}
    gone = [f for f in known if f not in folders]
    if gone:
        catalog.forget_caption_folders(gone).result()

    changed = []
    for folder in sorted(folders if only is None else _in_scope(folders, only)):
        listing = _listing(folder, photos.get(folder, {}))
        if listing is not None and listing[1] != known.get(folder):
            changed.append((folder, *listing))
    if not changed:
        return 0

    total = sum(len(photos.get(f, ())) for f, _, _ in changed) or len(changed)
    done, read = 0, 0
    batch: list[tuple[str, list[dict], dict]] = []
    pending = 0
    for i in range(0, len(changed), 500):
        if control.cancelled:
            break
        chunk = changed[i:i + 500]
        before = _embedded_before(catalog, [f for f, _, _ in chunk])
        for folder, names, signature in chunk:
            if control.cancelled:
                break
            here = photos.get(folder, {})
            rows, seen = _read_folder(folder, here, names, *before.get(folder, ({}, {})))
            batch.append((folder, rows, {"folder": folder, "signature": signature,
                                         "embedded": json.dumps(seen, sort_keys=True)}))
            pending += max(1, len(here))
            done += len(here) or 1
            read += 1
            if pending >= FLUSH_EVERY:
                _flush(catalog, batch)
                batch, pending = [], 0
            if progress:
                progress(Progress(STAGE, done, total))
    _flush(catalog, batch)
    return read


def _in_scope(folders: set[str], only: list[str]) -> set[str]:
    """The folders an update of `only` may have changed: those within a path of it, or holding one."""
    marks = set(only) | {os.path.dirname(p) for p in only}
    out = set()
    for folder in folders:
        f = folder
        while True:
            if f in marks:
                out.add(folder)
                break
            parent = os.path.dirname(f)
            if parent == f:
                break
            f = parent
    return out


def _listing(folder: str, photos: dict[str, tuple[int, int]]) -> tuple[set[str], str] | None:
    """The names in `folder` and its signature; None when it cannot be read now, or none of the
    photos the catalog holds there is present (an unmounted drive): its captions are kept."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return None
    names = {e.name for e in entries}
    if photos and not names.intersection(photos):
        return None
    h = hashlib.sha1()
    for name, (size, mtime) in sorted(photos.items()):
        h.update(f"p\0{name}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    for e in sorted(entries, key=lambda e: e.name):
        if is_caption_file(e.name):
            try:
                st = e.stat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                h.update(f"c\0{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return names, h.hexdigest()


def _embedded_before(catalog: Catalog, folders: list[str]) -> dict[str, tuple[dict, dict]]:
    """Per folder: {photo name: [size, mtime_ns]} when its embedded caption was read, and the
    embedded captions then found ({path: row})."""
    where = "folder IN (" + ", ".join(sql_str(db_path(f)) for f in folders) + ")"
    out: dict[str, tuple[dict, dict]] = {}
    for r in catalog.caption_folders(["folder", "embedded"], where):
        try:
            seen = json.loads(r["embedded"] or "{}")
        except ValueError:
            seen = {}
        out[r["folder"]] = (seen if isinstance(seen, dict) else {}, {})
    sources = ", ".join(sql_str(s) for s in EMBEDDED)
    for row in catalog.caption_rows(f"{where} AND source IN ({sources})"):
        if row["folder"] in out:
            out[row["folder"]][1][row["path"]] = row
    return out


def _read_folder(folder: str, photos: dict[str, tuple[int, int]], names: set[str], seen_before: dict,
                 embedded_before: dict) -> tuple[list[dict], dict]:
    """The captions read in one folder, and {photo name: [size, mtime_ns]} of the embedded reads."""
    rows, seen = [], {}
    for name, (size, mtime) in sorted(photos.items()):
        path = os.path.join(folder, name)
        if name not in names:
            continue  # gone since the scan; the next update forgets it
        if seen_before.get(name) == [size, mtime]:
            found = embedded_before.get(path)
            found = captions.Caption(path, found["text"], found["source"]) if found else None
        else:
            found = _guarded(captions.embedded, path)
        seen[name] = [size, mtime]
        side = (_guarded(captions.sidecar, path)
                if any(os.path.basename(p) in names for p in captions.sidecar_paths(path)) else None)
        takeout = (_guarded(captions.takeout, path)
                   if any(os.path.basename(p) in names for p in captions.takeout_paths(path)) else None)
        rows.extend({"path": c.path, "folder": folder, "source": c.source, "text": c.text}
                    for c in (found, side, takeout) if c)
    for name in sorted(names & CAPTION_FILES):
        rows.extend({"path": c.path, "folder": folder, "source": c.source, "text": c.text}
                    for c in _guarded(captions.folder_file, folder, name) or ())
    return rows, seen


def _guarded(read, *args):
    """A reader's answer, or None when it fails anyway: one odd file never stops the pass."""
    try:
        return read(*args)
    except Exception:  # readers catch what they know of; this is for what nobody has met yet
        log.warning("could not read captions for %s", os.path.join(*args), exc_info=True)
        return None


def _flush(catalog: Catalog, batch: list[tuple[str, list[dict], dict]]) -> None:
    if batch:
        catalog.replace_captions([f for f, _, _ in batch], [r for _, rows, _ in batch for r in rows],
                                 [seen for _, _, seen in batch]).result()


# -- choosing ----------------------------------------------------------------------------------------

def choose(catalog: Catalog, album: bool, path: str | None = None) -> list[CaptionPair]:
    """One caption per ok photo that has one (only the photo at `path` when given), best source first
    (`PRIORITY`); album names only when `album` is true. Sorted by path."""
    where = "status = 'ok'" + (f" AND path = {sql_str(db_path(path))}" if path is not None else "")
    ok = catalog.photo_columns(["path", "hash", "root"], where)
    paths, hashes = real_paths(ok["path"]), ok["hash"].to_pylist()
    roots = dict(zip(paths, real_paths(ok["root"])))
    if not paths:
        return []
    found = catalog.caption_rows(f"path = {sql_str(db_path(path))}" if path is not None else None)
    typed = catalog.typed_captions(hashes if path is not None else None)
    best: dict[str, tuple[tuple, dict]] = {}
    for row in found:
        # Of two caption files naming a photo, the one nearest to it wins.
        key = (_RANK.get(row["source"], len(PRIORITY)), -len(row["folder"]))
        if row["path"] not in best or key < best[row["path"]][0]:
            best[row["path"]] = (key, row)
    out = []
    for p, h in sorted(zip(paths, hashes)):
        folder = os.path.dirname(p)
        if h in typed:
            out.append(CaptionPair(p, h, typed[h], TYPED, folder))
        elif p in best:
            row = best[p][1]
            out.append(CaptionPair(p, h, row["text"], row["source"], folder))
        elif album and folder != roots[p]:  # a watched root's own name is no album ("Pictures")
            name = captions.album_name(os.path.basename(folder))
            if name:
                out.append(CaptionPair(p, h, name, captions.ALBUM, folder))
    return out


def summary(pairs: list[CaptionPair], examples: int = 5) -> dict:
    """Counts per source (best first) and per folder (most first), distinct texts, and a few examples
    drawn in turn from each source."""
    by_source: dict[str, int] = {}
    by_folder: dict[str, int] = {}
    for p in pairs:
        by_source[p.source] = by_source.get(p.source, 0) + 1
        by_folder[p.folder] = by_folder.get(p.folder, 0) + 1
    per_source: dict[str, list[CaptionPair]] = {}
    for p in pairs:
        per_source.setdefault(p.source, []).append(p)
    picked, texts = [], set()
    queues = [per_source[s] for s in sorted(per_source, key=lambda s: _RANK.get(s, len(PRIORITY)))]
    while len(picked) < examples and any(queues):
        for queue in queues:
            while queue and queue[0].text in texts:
                queue.pop(0)
            if queue and len(picked) < examples:
                p = queue.pop(0)
                texts.add(p.text)
                picked.append({"path": p.path, "text": p.text, "source": p.source})
    return {
        "photos": len(pairs),
        "distinct": len({p.text for p in pairs}),
        "by_source": dict(sorted(by_source.items(), key=lambda kv: _RANK.get(kv[0], len(PRIORITY)))),
        "by_folder": dict(sorted(by_folder.items(), key=lambda kv: (-kv[1], kv[0]))),
        "examples": picked,
    }
