"""The catalog: photos and their vectors in an embedded LanceDB database under the data folder.

Tables
- `photos`, one row per file, keyed by path: where it is (root), size, mtime, content hash, what it
  shows (width, height, taken-at, camera, GPS, format) and its status ("ok" or "error" + reason).
- `vectors_<space>`, one per image space (see `model.store`: an id of the image tower's weights), keyed
  by content hash: a photo's vector lives with its content, not its path, so identical files are encoded
  once and a moved or copied photo keeps its vector. Vectors of different image towers never mix; models
  that share an image tower share a table. Each table records its space in its schema metadata.
- `captions`: captions found in the files (`app.library.caption_index`), one row per photo, source and
  the folder they were read in (the photo's own, or that of a captions.csv naming it): path, folder,
  source, text. A folder's rows are replaced whole when it is read again.
- `caption_folders`: per folder, a signature of what its captions come from (photos' names, sizes and
  times, and caption-bearing files), so unchanged folders are not read again, and the size and time of
  each photo when its embedded caption was read (JSON), so unchanged photos are not opened again.
- `typed_captions`: captions the user typed, keyed by content hash (like vectors), so they follow a
  photo that is moved or renamed: hash, text, set_at.
- `meta`: the schema version, migrated forward on open, and small facts the scanner keeps.

Paths are stored as UTF-8. A file name that is not valid UTF-8 (Python hands it over with surrogate
escapes) is stored with each surrogate written as U+FDD0 and four hex digits (`db_path`), and turned
back on reading (`real_path`), so `os.fsencode` gives the original bytes.

All writes in a process go through one writer thread (LanceDB's concurrent `merge_insert` can duplicate
keys); reads may come from any thread and always see the latest committed version. Across processes,
work that writes (an update, removing a folder, dropping a space) holds the catalog's `WriterLock`. A
batch is committed vectors first, then photos, so a process killed between the two leaves only a
vector that the next run reuses.
"""
from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable

os.environ.setdefault("LANCEDB_LOG", "error")  # LanceDB's own warnings are not for the user's terminal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .lock import WriterLock

SCHEMA_VERSION = 4  # 2: vector tables keyed by image space (older ones adopted by `Library`); 3: checksum;
#                     4: caption tables
PHOTOS = "photos"
META = "meta"
CAPTIONS = "captions"
CAPTION_FOLDERS = "caption_folders"
TYPED_CAPTIONS = "typed_captions"
ROWS_PER_PARTITION = 4096  # rows per IVF partition of the ANN index

PHOTO_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("root", pa.string(), nullable=False),
    pa.field("size", pa.int64(), nullable=False),
    pa.field("mtime_ns", pa.int64(), nullable=False),
    pa.field("hash", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("taken_at", pa.int64()),
    pa.field("make", pa.string()),
    pa.field("camera", pa.string()),
    pa.field("lat", pa.float64()),
    pa.field("lon", pa.float64()),
    pa.field("format", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("indexed_at", pa.int64()),
    pa.field("checksum", pa.string()),  # of the whole file, to tell a touched photo from an edited one
])
META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])
CAPTION_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),    # the photo
    pa.field("folder", pa.string(), nullable=False),  # where it was read (the photo's folder, or a caption file's)
    pa.field("source", pa.string(), nullable=False),  # one of `captions.SOURCES`
    pa.field("text", pa.string(), nullable=False),
])
CAPTION_FOLDER_SCHEMA = pa.schema([
    pa.field("folder", pa.string(), nullable=False),
    pa.field("signature", pa.string(), nullable=False),
    pa.field("embedded", pa.string()),  # JSON {photo name: [size, mtime_ns]} when its embedded caption was read
])
TYPED_SCHEMA = pa.schema([
    pa.field("hash", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("set_at", pa.int64()),
])
CAPTION_TABLES = {CAPTIONS: CAPTION_SCHEMA, CAPTION_FOLDERS: CAPTION_FOLDER_SCHEMA, TYPED_CAPTIONS: TYPED_SCHEMA}

# version -> function(catalog) bringing the database from version-1 to version. Add one per change.
MIGRATIONS: dict[int, Callable[["Catalog"], None]] = {
    2: lambda catalog: None,  # vector tables by image space: `Library` adopts the old ones (it knows the models)
    3: lambda catalog: catalog.table(PHOTOS).add_columns({"checksum": "cast(null as string)"}),
    4: lambda catalog: catalog._create_caption_tables(),
}


class CatalogError(Exception):
    """A catalog that cannot be used, with a message fit for the user."""


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


VECTORS_PREFIX = "vectors_"
_ESC = "\ufdd0"  # a Unicode noncharacter: never part of a real file name
_ESCAPED = re.compile(_ESC + "(~|[0-9a-f]{4})")


def db_path(path: str) -> str:
    """A path as the catalog stores it: valid UTF-8 whatever bytes the file name has."""
    if _ESC not in path and path.isascii():
        return path
    out = []
    for c in path:
        if c == _ESC:
            out.append(_ESC + "~")
        elif "\ud800" <= c <= "\udfff":
            out.append(f"{_ESC}{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def real_path(stored: str) -> str:
    """The inverse of `db_path`."""
    if _ESC not in stored:
        return stored
    return _ESCAPED.sub(lambda m: _ESC if m.group(1) == "~" else chr(int(m.group(1), 16)), stored)


def real_paths(column) -> list[str]:
    """A stored path column as Python strings (a plain `to_pylist` unless some name needed escaping)."""
    if len(column) and pc.any(pc.match_substring(column, _ESC)).as_py():
        return [real_path(p) for p in column.to_pylist()]
    return column.to_pylist()


def vector_table_name(space: str) -> str:
    """One table per space, and never one table for two spaces."""
    if re.fullmatch(r"[0-9a-z]{1,64}", space):
        return VECTORS_PREFIX + space
    return VECTORS_PREFIX + "x" + space.encode("utf-8").hex()


def vector_schema(space: str, dim: int) -> pa.Schema:
    return pa.schema([pa.field("hash", pa.string(), nullable=False),
                      pa.field("vector", pa.list_(pa.float32(), dim), nullable=False)],
                     metadata={"image_space": space})


def photo_table(rows: list[dict]) -> pa.Table:
    """Photo rows as the catalog stores them (paths through `db_path`)."""
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in PHOTO_SCHEMA} | {
        "path": db_path(r["path"]), "root": db_path(r["root"])} for r in rows], schema=PHOTO_SCHEMA)


def _decoded(row: dict) -> dict:
    for key in ("path", "root"):
        if row.get(key):
            row[key] = real_path(row[key])
    return row


class Catalog:
    def __init__(self, folder: Path):
        from .lance import import_lancedb

        lancedb = import_lancedb()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.db = lancedb.connect(str(self.folder), read_consistency_interval=timedelta(0))
        except Exception as e:
            raise CatalogError(f"The catalog at {self.folder} cannot be opened ({e}).") from e
        self.lock = WriterLock(self.folder)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="catalog-writer")
        self._tables: dict[str, tuple] = {}  # name -> (handle, `_identity` when opened)
        self._lock = threading.Lock()
        try:
            self.write(self._open_or_create).result()
        except CatalogError:
            self._writer.shutdown(wait=False)
            raise
        except Exception as e:
            self._writer.shutdown(wait=False)
            raise CatalogError(f"The catalog at {self.folder} is damaged ({str(e).splitlines()[0][:200]}). "
                               "Move that folder aside and run `glimpse index` to build it again; "
                               "your photos are not affected.") from e

    # -- set-up -------------------------------------------------------------------------------
    def _open_or_create(self) -> None:
        names = set(self._table_names())
        if (PHOTOS not in names or META not in names or not set(CAPTION_TABLES) <= names
                or self.schema_version() != SCHEMA_VERSION):
            with self.lock.hold("creating the catalog"):  # never while another process is mid-way
                self._create_or_migrate()
        for name in self._table_names():  # a damaged table fails here, at open, not in the middle of work
            try:
                self.table(name).count_rows()
            except Exception:
                if name in self._table_names():
                    raise
                with self._lock:  # dropped by another process since the listing (an unused image space)
                    self._tables.pop(name, None)

    def _create_or_migrate(self) -> None:
        names = set(self._table_names())
        if PHOTOS not in names:
            self.db.create_table(PHOTOS, schema=PHOTO_SCHEMA, exist_ok=True)
        if META not in names:
            self.db.create_table(META, data=pa.table({"key": ["schema_version"], "value": [str(SCHEMA_VERSION)]},
                                                     schema=META_SCHEMA), exist_ok=True)
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise CatalogError(f"The catalog at {self.folder} was written by a newer Glimpse (schema {version}); "
                               f"this one reads schema {SCHEMA_VERSION}. Update Glimpse.")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](self)
            self._set_meta("schema_version", str(target))
        self._create_caption_tables()  # a catalog created at this version (no migration ran)

    def _create_caption_tables(self) -> None:
        names = set(self._table_names())
        for name, schema in CAPTION_TABLES.items():
            if name not in names:
                self.db.create_table(name, schema=schema, exist_ok=True)

    def _table_names(self) -> list[str]:
        if hasattr(self.db, "list_tables"):
            result = self.db.list_tables()
            return list(getattr(result, "tables", result))
        return list(self.db.table_names())

    def table(self, name: str):
        """The open table. A handle is reused while its folder is the same one: another process (the
        window's indexing child, `glimpse models use`) may drop a table this one holds, or drop it and make
        it again, and a stale handle then fails ("Not found: …/_versions")."""
        with self._lock:
            ident = self._identity(name)
            cached = self._tables.get(name)
            if cached is None or cached[1] != ident:
                cached = self._tables[name] = (self.db.open_table(name), ident)
            return cached[0]

    def _identity(self, name: str) -> tuple[int, int] | None:
        """The table's folder as the file system knows it now (inode, change time), None when absent."""
        try:
            st = os.stat(self.folder / f"{name}.lance")
        except OSError:
            return None
        return st.st_ino, st.st_ctime_ns

    def has_table(self, name: str) -> bool:
        """Whether the table is there now (another process may have dropped it)."""
        return os.path.isdir(self.folder / f"{name}.lance" / "_versions") or name in self._table_names()

    def schema_version(self) -> int:
        if META not in self._table_names():
            return 0
        rows = self.table(META).search().where("key = 'schema_version'").limit(1).to_arrow()
        return int(rows["value"][0].as_py()) if rows.num_rows else 0

    def _set_meta(self, key: str, value: str) -> None:
        (self.table(META).merge_insert("key").when_matched_update_all().when_not_matched_insert_all()
         .execute(pa.table({"key": [key], "value": [value]}, schema=META_SCHEMA)))

    def meta(self, key: str) -> str | None:
        """A small fact kept in the `meta` table, or None."""
        rows = self.table(META).search().where(f"key = {sql_str(key)}").limit(1).to_arrow()
        return rows["value"][0].as_py() if rows.num_rows else None

    def set_meta(self, key: str, value: str) -> Future:
        return self.write(self._set_meta, key, value)

    # -- the one writer -------------------------------------------------------------------------
    def write(self, fn: Callable, *args) -> Future:
        """Run `fn(*args)` on the writer thread. Every write to the database goes through here."""
        return self._writer.submit(fn, *args)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def _vectors(self, space: str, dim: int):
        name = vector_table_name(space)
        if not self.has_table(name):
            self.db.create_table(name, schema=vector_schema(space, dim), exist_ok=True)
        return self.table(name)

    def _commit(self, photos: list[dict], space: str | None, hashes: list[str], vectors: np.ndarray | None):
        if space and hashes:
            dim = vectors.shape[1]
            data = pa.table({"hash": pa.array(hashes, pa.string()),
                             "vector": pa.FixedSizeListArray.from_arrays(
                                 pa.array(np.ascontiguousarray(vectors, np.float32).ravel()), dim)},
                            schema=vector_schema(space, dim))
            (self._vectors(space, dim).merge_insert("hash").when_matched_update_all()
             .when_not_matched_insert_all().execute(data))
        if photos:
            now = int(time.time())
            for r in photos:
                r.setdefault("indexed_at", now)
            (self.table(PHOTOS).merge_insert("path").when_matched_update_all().when_not_matched_insert_all()
             .execute(photo_table(photos)))

    def commit(self, photos: list[dict], space: str | None = None, hashes: list[str] = (),
               vectors: np.ndarray | None = None) -> Future:
        """Add or replace photo rows (by path) and vectors (by hash, in `space`); vectors are written first."""
        return self.write(self._commit, list(photos), space, list(hashes), vectors)

    def _delete(self, where: str) -> None:
        self.table(PHOTOS).delete(where)

    def delete_paths(self, paths: Iterable[str]) -> Future:
        paths = list(paths)
        chunks = [paths[i:i + 500] for i in range(0, len(paths), 500)]

        def run():
            for chunk in chunks:
                self._delete("path IN (" + ", ".join(sql_str(db_path(p)) for p in chunk) + ")")
        return self.write(run)

    def delete_root(self, root: str) -> Future:
        return self.write(self._delete, f"root = {sql_str(db_path(root))}")

    def _compact(self, keep_versions_for: timedelta) -> None:
        for name in self._table_names():
            if name in (PHOTOS, *CAPTION_TABLES) or name.startswith("vectors_"):
                self.table(name).optimize(cleanup_older_than=keep_versions_for)

    def compact(self, keep_versions_for: timedelta = timedelta(minutes=5)) -> Future:
        """Merge small fragments and update indices (LanceDB `optimize`); drop old versions."""
        return self.write(self._compact, keep_versions_for)

    def _sweep_vectors(self, space: str) -> int:
        name = vector_table_name(space)
        if not self.has_table(name):
            return 0
        used = self.photo_columns(["hash"])["hash"]
        table = self.table(name)
        hashes = table.to_arrow().select(["hash"])["hash"]
        orphans = pc.filter(hashes, pc.invert(pc.is_in(hashes, value_set=used.combine_chunks()))).to_pylist()
        for i in range(0, len(orphans), 500):
            table.delete("hash IN (" + ", ".join(sql_str(h) for h in orphans[i:i + 500]) + ")")
        return len(orphans)

    def sweep_vectors(self, space: str) -> Future:
        """Drop vectors no photo uses any more (after deletions). Runs on the writer, so it never races a commit."""
        return self.write(self._sweep_vectors, space)

    def spaces(self) -> dict[str, str]:
        """The image spaces that have vectors here: {space: table name}. Tables of the schema-1 layout
        (keyed by model id) are listed as `model:<id>`."""
        out = {}
        for name in self._table_names():
            if name.startswith(VECTORS_PREFIX):
                meta = self.table(name).schema.metadata or {}
                space = meta.get(b"image_space")
                out[space.decode() if space else "model:" + meta.get(b"model_id", b"?").decode()] = name
        return out

    def _drop_table(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)
        self.db.drop_table(name)

    def drop_space(self, space: str) -> Future:
        """Forget every vector of an image space (no model in use makes them any more)."""
        def run():
            name = self.spaces().get(space)
            if name:
                self._drop_table(name)
        return self.write(run)

    def _adopt(self, legacy: str, space: str) -> None:
        old = self.table(self.spaces()[legacy])
        data = old.to_arrow()
        dim = data.schema.field("vector").type.list_size
        self._vectors(space, dim).merge_insert("hash").when_matched_update_all().when_not_matched_insert_all() \
            .execute(data.cast(vector_schema(space, dim)))
        self._drop_table(old.name)

    def adopt_vectors(self, legacy: str, space: str) -> Future:
        """Move a schema-1 table (`model:<id>` in `spaces()`) into `space`'s table."""
        return self.write(self._adopt, legacy, space)

    def _repair_duplicates(self) -> int:
        """Rows that share a key (left by two writers before the writer lock existed): keep one each."""
        fixed = 0
        for name, key in [(PHOTOS, "path"), *((n, "hash") for n in self.spaces().values())]:
            table = self.table(name)
            keys = table.search().select([key]).limit(None).to_arrow()[key]
            counts = pc.value_counts(keys)
            dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
            for i in range(0, len(dup), 500):
                chunk = dup[i:i + 500].to_pylist()
                where = f"{key} IN (" + ", ".join(sql_str(k) for k in chunk) + ")"
                rows = table.search().where(where).limit(None).to_arrow()
                keep = pc.index_in(pa.array(chunk, pa.string()), value_set=rows[key])  # first row of each key
                table.delete(where)
                table.add(rows.take(keep))
                fixed += len(rows) - len(chunk)
        return fixed

    def repair_duplicates(self) -> Future:
        return self.write(self._repair_duplicates)

    def _ensure_ann(self, model_id: str, min_rows: int, rows_per_partition: int | None = None) -> bool:
        name = vector_table_name(model_id)
        if not self.has_table(name):
            return False
        table = self.table(name)
        n = table.count_rows()
        if n < max(min_rows, 256):
            return False
        if not table.list_indices():
            from lancedb.index import HnswSq

            # IVF partitions of ~4k rows, an HNSW graph in each, 8-bit scalar quantisation. On clustered
            # 512-d vectors this beat IVF-PQ (recall@10 0.67) and smaller partitions; see
            # benchmarks/query_latency.py for the figures. (Tests ask for smaller partitions.)
            per = rows_per_partition or ROWS_PER_PARTITION
            table.create_index("vector", config=HnswSq(distance_type="dot", num_partitions=max(1, n // per)))
        else:
            table.optimize()  # brings rows added since into the index
        return True

    def ensure_ann(self, model_id: str, min_rows: int, rows_per_partition: int | None = None) -> Future:
        """Build (or refresh) the ANN index of a model's vectors once there are at least `min_rows`."""
        return self.write(self._ensure_ann, model_id, min_rows, rows_per_partition)

    # -- captions -------------------------------------------------------------------------------
    def _replace_captions(self, folders: list[str], rows: list[dict], folder_rows: list[dict]) -> None:
        # One commit per 500 folders (merge, and delete what the folder no longer says), so a reader
        # never sees a folder's captions gone between a delete and an add.
        captions, seen = self.table(CAPTIONS), self.table(CAPTION_FOLDERS)
        for i in range(0, len(folders), 500):
            chunk = folders[i:i + 500]
            keep = set(chunk)
            keyed = {(r["path"], r["folder"], r["source"]): r for r in rows if r["folder"] in keep}
            table = pa.Table.from_pylist([{"path": db_path(r["path"]), "folder": db_path(r["folder"]),
                                           "source": r["source"], "text": r["text"]} for r in keyed.values()],
                                         schema=CAPTION_SCHEMA)
            (captions.merge_insert(["path", "folder", "source"]).when_matched_update_all()
             .when_not_matched_insert_all()
             .when_not_matched_by_source_delete("folder IN (" + ", ".join(sql_str(db_path(f)) for f in chunk) + ")")
             .execute(table))
        if folder_rows:  # last: a process killed before this reads those folders again
            (seen.merge_insert("folder").when_matched_update_all().when_not_matched_insert_all().execute(
                pa.Table.from_pylist([r | {"folder": db_path(r["folder"])} for r in folder_rows],
                                     schema=CAPTION_FOLDER_SCHEMA)))

    def replace_captions(self, folders: list[str], rows: list[dict], folder_rows: list[dict]) -> Future:
        """Replace the captions read in `folders` by `rows` ({path, folder, source, text}), and record
        what each folder looked like when read (`folder_rows`: {folder, signature, embedded})."""
        return self.write(self._replace_captions, list(folders), list(rows), list(folder_rows))

    def forget_caption_folders(self, folders: Iterable[str]) -> Future:
        """Drop the captions read in folders that hold no photo any more."""
        folders = list(folders)

        def run():
            for i in range(0, len(folders), 500):
                where = "folder IN (" + ", ".join(sql_str(db_path(f)) for f in folders[i:i + 500]) + ")"
                self.table(CAPTIONS).delete(where)
                self.table(CAPTION_FOLDERS).delete(where)
        return self.write(run)

    def caption_rows(self, where: str | None = None) -> list[dict]:
        """Captions found in files ({path, folder, source, text}, real paths)."""
        q = self.table(CAPTIONS).search()
        if where:
            q = q.where(where)
        rows = q.select(CAPTION_SCHEMA.names).limit(None).to_arrow()
        return [{"path": p, "folder": f, "source": s, "text": t} for p, f, s, t in zip(
            real_paths(rows["path"]), real_paths(rows["folder"]), rows["source"].to_pylist(), rows["text"].to_pylist())]

    def caption_folders(self, columns: list[str], where: str | None = None) -> list[dict]:
        """Rows of `caption_folders` (real folder paths)."""
        q = self.table(CAPTION_FOLDERS).search()
        if where:
            q = q.where(where)
        rows = q.select(columns).limit(None).to_arrow().to_pylist()
        for r in rows:
            if "folder" in r:
                r["folder"] = real_path(r["folder"])
        return rows

    def typed_captions(self, hashes: Iterable[str] | None = None) -> dict[str, str]:
        """Captions the user typed: {content hash: text}."""
        q = self.table(TYPED_CAPTIONS).search()
        if hashes is not None:
            q = q.where("hash IN (" + (", ".join(sql_str(h) for h in hashes) or "''") + ")")
        rows = q.select(["hash", "text"]).limit(None).to_arrow()
        return dict(zip(rows["hash"].to_pylist(), rows["text"].to_pylist()))

    def _set_typed(self, hash_: str, text: str) -> None:
        table = self.table(TYPED_CAPTIONS)
        if text:
            (table.merge_insert("hash").when_matched_update_all().when_not_matched_insert_all().execute(
                pa.table({"hash": [hash_], "text": [text], "set_at": [int(time.time())]}, schema=TYPED_SCHEMA)))
        else:
            table.delete(f"hash = {sql_str(hash_)}")

    def set_typed_caption(self, hash_: str, text: str) -> Future:
        """Set (or, with an empty text, clear) the typed caption of a content hash."""
        return self.write(self._set_typed, hash_, text)

    # -- reads (any thread) ---------------------------------------------------------------------
    def photo_columns(self, columns: list[str], where: str | None = None) -> pa.Table:
        q = self.table(PHOTOS).search()
        if where:
            q = q.where(where)
        return q.select(columns).limit(None).to_arrow()

    def photos(self, where: str | None = None) -> list[dict]:
        """Whole rows as dicts, with real paths."""
        return [_decoded(r) for r in self.photo_columns(PHOTO_SCHEMA.names, where).to_pylist()]

    def photo(self, path: str) -> dict | None:
        rows = self.photos(f"path = {sql_str(db_path(path))}")
        return rows[0] if rows else None

    def count(self, where: str | None = None) -> int:
        return self.table(PHOTOS).count_rows(where)

    def vector_table(self, space: str):
        name = vector_table_name(space)
        return self.table(name) if self.has_table(name) else None

    def vector_hashes(self, space: str) -> pa.Array:
        table = self.vector_table(space)
        if table is None:
            return pa.array([], pa.string())
        return table.search().select(["hash"]).limit(None).to_arrow()["hash"].combine_chunks()

    def vectors(self, space: str, hashes: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        table = self.vector_table(space)
        if table is None:
            return [], np.zeros((0, 0), np.float32)
        q = table.search()
        if hashes is not None:
            q = q.where("hash IN (" + ", ".join(sql_str(h) for h in hashes) + ")")
        data = q.select(["hash", "vector"]).limit(None).to_arrow()
        return data["hash"].to_pylist(), fixed_list_to_numpy(data["vector"])

    def versions(self) -> tuple:
        """Changes whenever anything is committed (used to know when cached search data is stale)."""
        return tuple(self.table(n).version for n in sorted(self._table_names())
                     if n != META and n not in CAPTION_TABLES)  # captions are not searched

    def size_bytes(self) -> int:
        total = 0
        for f in self.folder.rglob("*"):
            try:  # LanceDB's temporary files come and go while it writes
                total += f.stat().st_size if f.is_file() else 0
            except FileNotFoundError:
                pass
        return total


def fixed_list_to_numpy(column) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dim = column.type.list_size
    flat = column.values.to_numpy(zero_copy_only=False)
    return np.asarray(flat, np.float32).reshape(-1, dim)
