"""Search: a query vector against the photos' vectors, with folder and date filters and paging.

Up to `exact_limit` photos the vectors are held in memory (`VectorCache`, one row per distinct
content, updated incrementally) and searched exactly with a matrix-vector product. Past it, LanceDB's
ANN index (IVF + HNSW, 8-bit scalar quantised) finds candidates, re-ranked with the full vectors (`refine_factor`); filters are applied to the
candidates, widening the candidate set until a page is full. Cached data is reloaded when the catalog
changes. No torch here: queries are encoded by ONNX Runtime.
"""
from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.runtime import Encoder

from . import photo
from .catalog import Catalog
from .query import QueryError, Term
from .vectors import VectorCache

DEFAULT_EXACT_LIMIT = 50_000


@dataclass(frozen=True)
class Result:
    path: str
    score: float
    taken_at: int
    size: int
    width: int
    height: int

    @property
    def taken(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.taken_at, dt.timezone.utc).replace(tzinfo=None)

    def to_dict(self) -> dict:
        return {"path": self.path, "score": round(self.score, 6), "taken_at": self.taken.isoformat(),
                "size": self.size, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Filters:
    folder: str | None = None
    after: int | None = None     # taken_at >= after (wall-clock seconds)
    before: int | None = None    # taken_at < before

    @staticmethod
    def dates(after: str | None = None, before: str | None = None, folder: str | None = None) -> "Filters":
        """From calendar dates (YYYY-MM-DD, inclusive) as a user types them."""
        def day(s: str, end: bool) -> int:
            try:
                d = dt.date.fromisoformat(s)
            except ValueError:
                raise QueryError(f"'{s}' is not a date (use YYYY-MM-DD)") from None
            d += dt.timedelta(days=1 if end else 0)
            return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp())
        return Filters(os.path.abspath(folder) if folder else None, day(after, False) if after else None,
                       day(before, True) if before else None)


class _Data:
    """The photos searchable with one model, as arrays. For exact search, `vectors` holds one row per
    distinct content and `vec_index` points each photo at its row; with the ANN index both are None."""

    def __init__(self, photos: pa.Table, vectors: np.ndarray | None = None, vec_index: np.ndarray | None = None):
        self.paths = photos["path"].combine_chunks()  # kept as Arrow: no million-item list built at once
        self.hash_column = photos["hash"]
        self.taken_at = photos["taken_at"].to_numpy(zero_copy_only=False)
        self.size = photos["size"].to_numpy(zero_copy_only=False)
        self.width = photos["width"].to_numpy(zero_copy_only=False)
        self.height = photos["height"].to_numpy(zero_copy_only=False)
        self.vectors = vectors
        self.vec_index = vec_index

    def __len__(self) -> int:
        return len(self.paths)

    def row_of(self, path: str) -> int | None:
        i = pc.index(self.paths, path).as_py()
        return None if i < 0 else i

    @cached_property
    def _by_hash(self) -> tuple[np.ndarray, np.ndarray]:
        hashes = self.hash_column.to_numpy(zero_copy_only=False).astype(str)
        order = np.argsort(hashes, kind="stable")
        return order, hashes[order]

    def hash_of(self, i: int) -> str:
        return self.hash_column[i].as_py()

    def rows_for(self, h: str) -> np.ndarray:
        order, sorted_hashes = self._by_hash
        lo, hi = np.searchsorted(sorted_hashes, h, "left"), np.searchsorted(sorted_hashes, h, "right")
        return order[lo:hi]

    def mask(self, f: Filters) -> np.ndarray | None:
        keep = None
        if f.folder:
            prefix = f.folder.rstrip(os.sep) + os.sep
            keep = pc.starts_with(self.paths, prefix).to_numpy(zero_copy_only=False)
        if f.after is not None:
            keep = (self.taken_at >= f.after) if keep is None else keep & (self.taken_at >= f.after)
        if f.before is not None:
            keep = (self.taken_at < f.before) if keep is None else keep & (self.taken_at < f.before)
        return keep

    def result(self, i: int, score: float) -> Result:
        return Result(self.paths[i].as_py(), float(score), int(self.taken_at[i]), int(self.size[i]),
                      int(self.width[i]), int(self.height[i]))


class Searcher:
    def __init__(self, catalog: Catalog, encoder: Encoder, exact_limit: int = DEFAULT_EXACT_LIMIT,
                 nprobes: int = 6, refine_factor: int = 3):
        self.catalog = catalog
        self.encoder = encoder
        self.exact_limit = exact_limit
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self._data: _Data | None = None
        self._version = None
        self._cache = VectorCache(catalog, encoder.model_id, encoder.embed_dim)
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def data(self, fresh: bool = True) -> _Data:
        """The searchable photos, brought up to date when the catalog has changed since the last query.

        With `fresh=False` (the window, while typing) a change is picked up in the background and this
        query is answered from what is already loaded, unless nothing is loaded yet.
        """
        if not fresh and self._data is not None:
            if self._refreshing is None or not self._refreshing.is_alive():
                self._refreshing = threading.Thread(target=self.data, name="search-refresh", daemon=True)
                self._refreshing.start()
            return self._data
        with self._lock:
            version = self.catalog.versions()
            if self._data is None or version != self._version:
                self._data, self._version = self._load(), version
            return self._data

    @property
    def loaded(self) -> _Data | None:
        """What queries are answered from right now (None until the first query)."""
        return self._data

    def catch_up(self, previous: _Data | None) -> bool:
        """Wait for the background refresh a `fresh=False` query started; True if it replaced `previous`."""
        refreshing = self._refreshing
        if refreshing is not None:
            refreshing.join()
        return previous is not None and self._data is not previous

    @property
    def uses_ann(self) -> bool:
        return self.data().vectors is None

    def _load(self) -> _Data:
        photos = self.catalog.photo_columns(["path", "hash", "taken_at", "size", "width", "height"], "status = 'ok'")
        table = self.catalog.vector_table(self.model_id)
        if table is None:
            return _Data(photos.slice(0, 0), np.zeros((0, self.encoder.embed_dim), np.float32), np.zeros(0, np.int64))
        if table.count_rows() > self.exact_limit:
            self._cache = VectorCache(self.catalog, self.model_id, self.encoder.embed_dim)  # memory back
            return _Data(photos.filter(pc.is_in(photos["hash"], value_set=self.catalog.vector_hashes(self.model_id))))
        self._cache.refresh()
        index = self._cache.index_of(photos["hash"])
        photos = photos.filter(pc.is_valid(index))
        return _Data(photos, self._cache.matrix, pc.drop_null(index).to_numpy(zero_copy_only=False))

    # -- query vectors --------------------------------------------------------------------------
    def vector_of(self, path: str) -> np.ndarray:
        """The stored vector of an indexed photo (for "find similar")."""
        data = self.data()
        i = data.row_of(os.path.abspath(path))
        if i is None:
            raise QueryError(f"{path} is not in the index (index it first, or search with the file itself)")
        if data.vectors is not None:
            return data.vectors[data.vec_index[i]]
        _, vectors = self.catalog.vectors(self.model_id, [data.hash_of(i)])
        return vectors[0]

    def query_vector(self, terms: list[Term]) -> np.ndarray:
        total = np.zeros(self.encoder.embed_dim, np.float32)
        texts = [t for t in terms if t.kind == "text"]
        if texts:
            for t, v in zip(texts, self.encoder.encode_texts([t.value for t in texts])):
                total += t.weight * v
        for t in terms:
            if t.kind == "image":
                if not os.path.isfile(t.value):
                    raise QueryError(f"{t.value}: no such image file")
                pixels, _ = photo.load(t.value, 0.0, self.encoder.preprocess)  # RAW and HEIC too
                total += t.weight * self.encoder.encode_arrays(pixels[None])[0]
            elif t.kind == "similar":
                total += t.weight * self.vector_of(t.value)
        norm = float(np.linalg.norm(total))
        if norm < 1e-6:
            raise QueryError("the query's terms cancel each other out")
        return total / norm

    # -- search ---------------------------------------------------------------------------------
    def search(self, terms: list[Term], k: int = 20, offset: int = 0, filters: Filters = Filters(),
               fresh: bool = True) -> list[Result]:
        return self.search_vector(self.query_vector(terms), k, offset, filters, fresh)

    def search_vector(self, q: np.ndarray, k: int = 20, offset: int = 0, filters: Filters = Filters(),
                      fresh: bool = True) -> list[Result]:
        if k <= 0 or offset < 0:
            raise QueryError("k must be positive and offset not negative")
        data = self.data(fresh)
        if len(data) == 0:
            return []
        if data.vectors is None:
            return self._ann(data, q, k, offset, filters)
        scores = (data.vectors @ np.asarray(q, np.float32))[data.vec_index]
        keep = data.mask(filters)
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        n = min(k + offset, len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")][offset:]
        return [data.result(i, scores[i]) for i in top if np.isfinite(scores[i])]

    def _ann(self, data: _Data, q: np.ndarray, k: int, offset: int, filters: Filters) -> list[Result]:
        table = self.catalog.vector_table(self.model_id)
        keep = data.mask(filters)
        want = k + offset
        limit = max(want, 10)
        while True:
            found = (table.search(np.asarray(q, np.float32), vector_column_name="vector").distance_type("dot")
                     .nprobes(self.nprobes).refine_factor(self.refine_factor).limit(limit)
                     .select(["hash"]).to_arrow())
            rows, scores = [], []
            for h, d in zip(found["hash"].to_pylist(), found["_distance"].to_pylist()):
                for i in data.rows_for(h):
                    if keep is None or keep[i]:
                        rows.append(int(i))
                        scores.append(1.0 - d)  # LanceDB's dot "distance" is 1 - dot
            if len(rows) >= want or found.num_rows < limit or limit >= len(data):
                break
            limit *= 4
        order = np.argsort(-np.asarray(scores), kind="stable")[offset:want]
        return [data.result(rows[i], scores[i]) for i in order]

