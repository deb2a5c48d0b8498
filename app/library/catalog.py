"""The catalog: photos and their vectors in an embedded LanceDB database under the data folder.

Tables
- `photos`, one row per file, keyed by path: where it is (root), size, mtime, content hash, what it
  shows (width, height, taken-at, camera, GPS, format) and its status ("ok" or "error" + reason).
- `vectors_<model>`, one per model, keyed by content hash: a photo's vector lives with its content, not
  its path, so identical files are encoded once and a moved or copied photo keeps its vector. Vectors of
  different models never mix; each table records its model id in its schema metadata.
- `meta`: the schema version, migrated forward on open.

All writes go through one writer thread (LanceDB's concurrent `merge_insert` can duplicate keys); reads
may come from any thread and always see the latest committed version. A batch is committed vectors
first, then photos, so a process killed between the two leaves only a vector that the next run reuses.
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

SCHEMA_VERSION = 1
PHOTOS = "photos"
META = "meta"

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
])
META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])

# version -> function(catalog) bringing the database from version-1 to version. Add one per change.
MIGRATIONS: dict[int, Callable[["Catalog"], None]] = {}


class CatalogError(Exception):
    """A catalog that cannot be used, with a message fit for the user."""


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def vector_table_name(model_id: str) -> str:
    return "vectors_" + re.sub(r"[^A-Za-z0-9_]", "_", model_id)


def vector_schema(model_id: str, dim: int) -> pa.Schema:
    return pa.schema([pa.field("hash", pa.string(), nullable=False),
                      pa.field("vector", pa.list_(pa.float32(), dim), nullable=False)],
                     metadata={"model_id": model_id})


def photo_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in PHOTO_SCHEMA} for r in rows], schema=PHOTO_SCHEMA)


class Catalog:
    def __init__(self, folder: Path):
        import lancedb

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.db = lancedb.connect(str(self.folder), read_consistency_interval=timedelta(0))
        except Exception as e:
            raise CatalogError(f"The catalog at {self.folder} cannot be opened ({e}).") from e
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="catalog-writer")
        self._tables: dict[str, object] = {}
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
        if PHOTOS not in names:
            self.db.create_table(PHOTOS, schema=PHOTO_SCHEMA, exist_ok=True)
        if META not in names:
            self.db.create_table(META, data=pa.table({"key": ["schema_version"], "value": [str(SCHEMA_VERSION)]},
                                                     schema=META_SCHEMA), exist_ok=True)
        for name in self._table_names():  # a damaged table fails here, at open, not in the middle of work
            self.table(name).count_rows()
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise CatalogError(f"The catalog at {self.folder} was written by a newer Glimpse (schema {version}); "
                               f"this one reads schema {SCHEMA_VERSION}. Update Glimpse.")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](self)
            self._set_meta("schema_version", str(target))

    def _table_names(self) -> list[str]:
        if hasattr(self.db, "list_tables"):
            result = self.db.list_tables()
            return list(getattr(result, "tables", result))
        return list(self.db.table_names())

    def table(self, name: str):
        with self._lock:
            t = self._tables.get(name)
            if t is None:
                t = self._tables[name] = self.db.open_table(name)
            return t

    def has_table(self, name: str) -> bool:
        return name in self._tables or name in self._table_names()

    def schema_version(self) -> int:
        rows = self.table(META).search().where("key = 'schema_version'").limit(1).to_arrow()
        return int(rows["value"][0].as_py()) if rows.num_rows else 0

    def _set_meta(self, key: str, value: str) -> None:
        (self.table(META).merge_insert("key").when_matched_update_all().when_not_matched_insert_all()
         .execute(pa.table({"key": [key], "value": [value]}, schema=META_SCHEMA)))

    # -- the one writer -------------------------------------------------------------------------
    def write(self, fn: Callable, *args) -> Future:
        """Run `fn(*args)` on the writer thread. Every write to the database goes through here."""
        return self._writer.submit(fn, *args)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def _vectors(self, model_id: str, dim: int):
        name = vector_table_name(model_id)
        if not self.has_table(name):
            self.db.create_table(name, schema=vector_schema(model_id, dim), exist_ok=True)
        return self.table(name)

    def _commit(self, photos: list[dict], model_id: str | None, hashes: list[str], vectors: np.ndarray | None):
        if model_id and hashes:
            dim = vectors.shape[1]
            data = pa.table({"hash": pa.array(hashes, pa.string()),
                             "vector": pa.FixedSizeListArray.from_arrays(
                                 pa.array(np.ascontiguousarray(vectors, np.float32).ravel()), dim)},
                            schema=vector_schema(model_id, dim))
            (self._vectors(model_id, dim).merge_insert("hash").when_matched_update_all()
             .when_not_matched_insert_all().execute(data))
        if photos:
            now = int(time.time())
            for r in photos:
                r.setdefault("indexed_at", now)
            (self.table(PHOTOS).merge_insert("path").when_matched_update_all().when_not_matched_insert_all()
             .execute(photo_table(photos)))

    def commit(self, photos: list[dict], model_id: str | None = None, hashes: list[str] = (),
               vectors: np.ndarray | None = None) -> Future:
        """Add or replace photo rows (by path) and vectors (by hash); vectors are written first."""
        return self.write(self._commit, list(photos), model_id, list(hashes), vectors)

    def _delete(self, where: str) -> None:
        self.table(PHOTOS).delete(where)

    def delete_paths(self, paths: Iterable[str]) -> Future:
        paths = list(paths)
        chunks = [paths[i:i + 500] for i in range(0, len(paths), 500)]

        def run():
            for chunk in chunks:
                self._delete("path IN (" + ", ".join(sql_str(p) for p in chunk) + ")")
        return self.write(run)

    def delete_root(self, root: str) -> Future:
        return self.write(self._delete, f"root = {sql_str(root)}")

    def _compact(self, keep_versions_for: timedelta) -> None:
        for name in self._table_names():
            if name == PHOTOS or name.startswith("vectors_"):
                self.table(name).optimize(cleanup_older_than=keep_versions_for)

    def compact(self, keep_versions_for: timedelta = timedelta(minutes=5)) -> Future:
        """Merge small fragments and update indices (LanceDB `optimize`); drop old versions."""
        return self.write(self._compact, keep_versions_for)

    def _sweep_vectors(self, model_id: str) -> int:
        name = vector_table_name(model_id)
        if not self.has_table(name):
            return 0
        used = self.photo_columns(["hash"])["hash"]
        table = self.table(name)
        hashes = table.to_arrow().select(["hash"])["hash"]
        orphans = pc.filter(hashes, pc.invert(pc.is_in(hashes, value_set=used.combine_chunks()))).to_pylist()
        for i in range(0, len(orphans), 500):
            table.delete("hash IN (" + ", ".join(sql_str(h) for h in orphans[i:i + 500]) + ")")
        return len(orphans)

    def sweep_vectors(self, model_id: str) -> Future:
        """Drop vectors no photo uses any more (after deletions). Runs on the writer, so it never races a commit."""
        return self.write(self._sweep_vectors, model_id)

    def _ensure_ann(self, model_id: str, min_rows: int) -> bool:
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
            # benchmarks/query_latency.py for the figures.
            table.create_index("vector", config=HnswSq(distance_type="dot", num_partitions=max(1, n // 4096)))
        else:
            table.optimize()  # brings rows added since into the index
        return True

    def ensure_ann(self, model_id: str, min_rows: int) -> Future:
        """Build (or refresh) the ANN index of a model's vectors once there are at least `min_rows`."""
        return self.write(self._ensure_ann, model_id, min_rows)

    # -- reads (any thread) ---------------------------------------------------------------------
    def photo_columns(self, columns: list[str], where: str | None = None) -> pa.Table:
        q = self.table(PHOTOS).search()
        if where:
            q = q.where(where)
        return q.select(columns).limit(None).to_arrow()

    def photos(self, where: str | None = None) -> list[dict]:
        return self.photo_columns(PHOTO_SCHEMA.names, where).to_pylist()

    def photo(self, path: str) -> dict | None:
        rows = self.photos(f"path = {sql_str(path)}")
        return rows[0] if rows else None

    def count(self, where: str | None = None) -> int:
        return self.table(PHOTOS).count_rows(where)

    def vector_table(self, model_id: str):
        name = vector_table_name(model_id)
        return self.table(name) if self.has_table(name) else None

    def vector_hashes(self, model_id: str) -> pa.Array:
        table = self.vector_table(model_id)
        if table is None:
            return pa.array([], pa.string())
        return table.search().select(["hash"]).limit(None).to_arrow()["hash"].combine_chunks()

    def vectors(self, model_id: str, hashes: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        table = self.vector_table(model_id)
        if table is None:
            return [], np.zeros((0, 0), np.float32)
        q = table.search()
        if hashes is not None:
            q = q.where("hash IN (" + ", ".join(sql_str(h) for h in hashes) + ")")
        data = q.select(["hash", "vector"]).limit(None).to_arrow()
        return data["hash"].to_pylist(), fixed_list_to_numpy(data["vector"])

    def versions(self) -> tuple:
        """Changes whenever anything is committed (used to know when cached search data is stale)."""
        return tuple(self.table(n).version for n in sorted(self._table_names()) if n != META)

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
