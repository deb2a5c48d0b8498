"""Search: a query vector against the photos' vectors, with folder and date filters and paging.

Up to `exact_limit` photos the vectors are held in memory (`VectorCache`, one row per distinct
content, updated incrementally) and searched exactly with a matrix-vector product. Past it, LanceDB's
ANN index (IVF + HNSW, 8-bit scalar quantised) finds candidates, re-ranked with the full vectors
(`refine_factor`). Cached data is reloaded when the catalog changes. No torch here: queries are
encoded by ONNX Runtime.

Filters past the exact limit act inside the search, never on the ANN's answers afterwards: the index
probes only the `nprobes` partitions nearest the query, so a folder whose photos lie elsewhere would
come back empty. Two ways, chosen by how many distinct contents the filter keeps (`_Subset`):
- at most `exact_limit`: those vectors are read from the catalog by hash (one query) and searched
  exactly, so the answer is exact. The matrix is kept for the next query with the same filter (the
  window asks many), and a new filter or catalog version rereads only the vectors not already held.
  One subset is held at a time, never more than exact search itself holds.
- more: LanceDB pre-filters: the ANN search runs over just the vectors whose hash is in the kept
  list (or not in the dropped one, whichever is shorter; the vector table has only `hash` and
  `vector`, and the photo rows live in another table), probing every partition. Its cost grows with
  the list (about 0.1 s per 20k hashes on 2 cores, every query; the probing itself is small beside
  it), which is why smaller subsets go the exact way, where a repeated query costs one matrix product.
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
from .catalog import Catalog, db_path, fixed_list_to_numpy, real_path
from .query import QueryError, Term
from .relevance import relevance
from .vectors import VectorCache

DEFAULT_EXACT_LIMIT = 50_000
SAMPLE = 4096  # past the exact limit, the relevance floor is judged on this many vectors
FILTERED_EF = 400  # HNSW search beam for pre-filtered ANN searches
ALL_PARTITIONS = 1 << 20  # as `minimum_nprobes`: LanceDB probes them all


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


class Hits(list):
    """Results, best first; `absent`: nothing stood out, so only the closest few are here. Browsing,
    `total` is how many photos there are in all."""
    absent = False
    total: int | None = None


def parse_day(text: str) -> dt.date:
    """A calendar day as a user types it (YYYY-MM-DD)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise QueryError(f"'{text}' is not a date (use YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Filters:
    folder: str | None = None
    after: int | None = None     # taken_at >= after (wall-clock seconds)
    before: int | None = None    # taken_at < before

    @staticmethod
    def dates(after: str | dt.date | None = None, before: str | dt.date | None = None,
              folder: str | None = None) -> "Filters":
        """From calendar days (dates, or YYYY-MM-DD as a user types them), both inclusive."""
        def day(s: str | dt.date, end: bool) -> int:
            d = s if isinstance(s, dt.date) else parse_day(s)
            # Counted in days, so the end of 9999-12-31 does not overflow the date type.
            return ((d - dt.date(1970, 1, 1)).days + (1 if end else 0)) * 86400
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
        self.sample: np.ndarray | None = None  # past the exact limit: vectors that judge relevance

    def __len__(self) -> int:
        return len(self.paths)

    @cached_property
    def days(self) -> tuple[dt.date, dt.date] | None:
        """The oldest and the newest photo's day (None with no photos): what a date filter starts from."""
        if not len(self.taken_at):
            return None
        return (dt.datetime.fromtimestamp(int(self.taken_at.min()), dt.timezone.utc).date(),
                dt.datetime.fromtimestamp(int(self.taken_at.max()), dt.timezone.utc).date())

    def row_of(self, path: str) -> int | None:
        i = pc.index(self.paths, db_path(path)).as_py()
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
            prefix = db_path(f.folder.rstrip(os.sep) + os.sep)
            keep = pc.starts_with(self.paths, prefix).to_numpy(zero_copy_only=False)
        if f.after is not None:
            keep = (self.taken_at >= f.after) if keep is None else keep & (self.taken_at >= f.after)
        if f.before is not None:
            keep = (self.taken_at < f.before) if keep is None else keep & (self.taken_at < f.before)
        return keep

    @cached_property
    def newest_first(self) -> np.ndarray:
        return np.argsort(-self.taken_at, kind="stable")

    def result(self, i: int, score: float) -> Result:
        return Result(real_path(self.paths[i].as_py()), float(score), int(self.taken_at[i]), int(self.size[i]),
                      int(self.width[i]), int(self.height[i]))


@dataclass(frozen=True, eq=False)
class _Subset:
    """What one filter keeps of an ANN-sized library, ready to search; kept for the next query."""
    data: _Data
    filters: Filters
    keep: np.ndarray                      # per photo row: does the filter keep it
    rows: np.ndarray                      # the kept photo rows
    hashes: pa.Array | None = None        # exact way: the distinct kept contents, in `vectors` order
    vectors: np.ndarray | None = None     # exact way: their vectors
    vec_index: np.ndarray | None = None   # exact way: each kept row's row in `vectors`
    where: object = None                  # ANN way: LanceDB's pre-filter on the vector table


def _top(scores: np.ndarray, k: int, offset: int) -> np.ndarray:
    """Indices of the best `k` scores after the first `offset`, best first."""
    n = min(k + offset, len(scores))
    if n == 0:
        return np.zeros(0, np.int64)
    top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")][offset:]


class Searcher:
    def __init__(self, catalog: Catalog, encoder: Encoder, exact_limit: int = DEFAULT_EXACT_LIMIT,
                 nprobes: int = 8, refine_factor: int = 3):
        self.catalog = catalog
        self.encoder = encoder
        self.exact_limit = exact_limit
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self._data: _Data | None = None
        self._version = None
        self._cache = VectorCache(catalog, encoder.image_space, encoder.embed_dim)
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._subset: _Subset | None = None  # the last filter's, past the exact limit

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    @property
    def space(self) -> str:
        """The image space whose vectors are searched (the model's own)."""
        return self.encoder.image_space

    def data(self, fresh: bool = True) -> _Data:
        """The searchable photos, brought up to date when the catalog has changed since the last query.

        With `fresh=False` (the window, while typing) a change is picked up in the background and this
        query is answered from what is already loaded, unless nothing is loaded yet.
        """
        if not fresh and self._data is not None:
            if self._refreshing is None or not self._refreshing.is_alive():
                refresh = threading.Thread(target=self.data, name="search-refresh", daemon=True)
                refresh.start()  # started before it is published: `catch_up` on another thread joins it
                self._refreshing = refresh
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
        table = self.catalog.vector_table(self.space)
        if table is None:
            return _Data(photos.slice(0, 0), np.zeros((0, self.encoder.embed_dim), np.float32), np.zeros(0, np.int64))
        if table.count_rows() > self.exact_limit:
            self._cache = VectorCache(self.catalog, self.space, self.encoder.embed_dim)  # memory back
            return _Data(photos.filter(pc.is_in(photos["hash"], value_set=self.catalog.vector_hashes(self.space))))
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
        _, vectors = self.catalog.vectors(self.space, [data.hash_of(i)])
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
               fresh: bool = True, cut: bool = False) -> Hits:
        return self.search_vector(self.query_vector(terms), k, offset, filters, fresh, cut)

    def search_vector(self, q: np.ndarray, k: int = 20, offset: int = 0, filters: Filters = Filters(),
                      fresh: bool = True, cut: bool = False) -> Hits:
        """The best `k` after `offset`; with `cut`, only those above the relevance floor (`relevance`)."""
        if k <= 0 or offset < 0:
            raise QueryError("k must be positive and offset not negative")
        data = self.data(fresh)
        if len(data) == 0:
            return Hits()
        q = np.asarray(q, np.float32)
        if data.vectors is None:
            sub = self._filtered(data, filters)
            if sub is not None and sub.vectors is not None:
                return self._best(data, (sub.vectors @ q)[sub.vec_index], k, offset, cut, sub.rows)
            rel = relevance(self._sample(data) @ q) if cut else None
            found = (self._ann(data, q, k, offset) if sub is None
                     else self._ann(data, q, k, offset, sub.keep, sub.where))
            hits = Hits(r for r in found if rel is None or r.score >= rel.floor)
            hits.absent = rel is not None and rel.absent
            return hits
        scores = (data.vectors @ q)[data.vec_index]
        keep = data.mask(filters)
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        return self._best(data, scores, k, offset, cut)

    @staticmethod
    def _best(data: _Data, scores: np.ndarray, k: int, offset: int, cut: bool, rows: np.ndarray | None = None) -> Hits:
        rel = relevance(scores) if cut else None
        if rel is not None:
            scores = np.where(scores >= rel.floor, scores, -np.inf)
        hits = Hits(data.result(i if rows is None else rows[i], scores[i]) for i in _top(scores, k, offset)
                    if np.isfinite(scores[i]))
        hits.absent = rel is not None and rel.absent
        return hits

    def _sample(self, data: _Data) -> np.ndarray:
        """Up to `SAMPLE` stored vectors (past the exact limit), read once per catalog version."""
        if data.sample is None:
            table = self.catalog.vector_table(self.space)
            read = None if table is None else table.search().select(["vector"]).limit(SAMPLE).to_arrow()
            data.sample = (np.zeros((0, self.encoder.embed_dim), np.float32) if read is None
                           else fixed_list_to_numpy(read["vector"]))
        return data.sample

    def browse(self, k: int = 200, offset: int = 0, filters: Filters = Filters(), newest: bool = True,
               fresh: bool = True) -> Hits:
        """All the photos the filters keep, newest (or oldest) first: the library when nothing is asked."""
        data = self.data(fresh)
        order = data.newest_first if newest else data.newest_first[::-1]
        keep = data.mask(filters)
        if keep is not None:
            order = order[keep[order]]
        hits = Hits(data.result(i, 0.0) for i in order[offset:offset + k])
        hits.total = len(order)
        return hits

    def _filtered(self, data: _Data, filters: Filters) -> _Subset | None:
        """The photos `filters` keeps, prepared the exact way or the pre-filtered ANN way (see the top);
        None without filters."""
        last = self._subset
        if last is not None and last.data is data and last.filters == filters:
            return last
        keep = data.mask(filters)
        if keep is None:
            return None
        from lancedb.expr import col

        rows = np.flatnonzero(keep)
        kept = data.hash_column.take(rows).combine_chunks()
        distinct = pc.unique(kept)
        if len(distinct) <= self.exact_limit:
            hashes, vectors = self._subset_vectors(distinct, last)
            index = pc.index_in(kept, value_set=hashes)  # null: a vector deleted since `data` was loaded
            present = pc.is_valid(index).to_numpy(zero_copy_only=False)
            sub = _Subset(data, filters, keep, rows[present], hashes, vectors,
                          pc.drop_null(index).to_numpy(zero_copy_only=False))
        else:
            dropped = pc.unique(data.hash_column.filter(pa.array(~keep)).combine_chunks())
            dropped = pc.filter(dropped, pc.invert(pc.is_in(dropped, value_set=distinct)))  # copies kept elsewhere
            if len(dropped) == 0:  # every content is kept: the plain ANN search, dropping only copies
                where = None
            elif len(distinct) <= len(dropped):
                where = col("hash").isin(distinct.to_pylist())
            else:
                where = ~col("hash").isin(dropped.to_pylist())
            sub = _Subset(data, filters, keep, rows, where=where)
        self._subset = sub
        return sub

    def _subset_vectors(self, hashes: pa.Array, last: _Subset | None) -> tuple[pa.Array, np.ndarray]:
        """The vectors of `hashes`, reusing those the last subset holds and reading the rest in one query."""
        from lancedb.expr import col

        held_hashes = pa.array([], pa.string()) if last is None or last.hashes is None else last.hashes
        at = pc.index_in(hashes, value_set=held_hashes)
        reused = pc.drop_null(at).to_numpy(zero_copy_only=False)
        missing = pc.filter(hashes, pc.is_null(at))
        parts_h, parts_v = [pc.filter(hashes, pc.is_valid(at))], [last.vectors[reused] if len(reused) else None]
        table = self.catalog.vector_table(self.space)
        if len(missing) and table is not None:
            read = (table.search().where(col("hash").isin(missing.to_pylist()))
                    .select(["hash", "vector"]).limit(None).to_arrow())
            parts_h.append(read["hash"].combine_chunks())
            parts_v.append(fixed_list_to_numpy(read["vector"]))
        vectors = [v for v in parts_v if v is not None and len(v)]
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.encoder.embed_dim), np.float32)
        return pa.concat_arrays(parts_h), matrix

    def _ann(self, data: _Data, q: np.ndarray, k: int, offset: int, keep: np.ndarray | None = None,
             where=None) -> list[Result]:
        """The ANN index's answer; with `where`, LanceDB pre-filters and probes every partition."""
        table = self.catalog.vector_table(self.space)
        if table is None:  # dropped since the data was loaded (the model was switched or removed)
            return []
        want = k + offset
        limit = max(want, 10)
        while True:
            query = (table.search(np.asarray(q, np.float32), vector_column_name="vector").distance_type("dot")
                     .refine_factor(self.refine_factor).limit(limit))
            if where is None:
                query = query.nprobes(self.nprobes)
            else:
                # Every partition, with a wide HNSW beam: evaluating the filter costs far more than this,
                # and otherwise LanceDB stops at the first partitions that fill the page, and the default
                # beam misses neighbours (recall@10 0.92 against 0.99+ at ef 400, 100k photos).
                query = (query.where(where, prefilter=True).minimum_nprobes(ALL_PARTITIONS).maximum_nprobes(0)
                         .ef(max(FILTERED_EF, 2 * limit * self.refine_factor)))
            found = query.select(["hash"]).to_arrow()
            rows, scores = [], []
            for h, d in zip(found["hash"].to_pylist(), found["_distance"].to_pylist()):
                for i in data.rows_for(h):
                    if keep is None or keep[i]:
                        rows.append(int(i))
                        scores.append(1.0 - d)  # LanceDB's dot "distance" is 1 - dot
            if len(rows) >= want or found.num_rows < limit:
                break
            limit *= 4
        order = np.argsort(-np.asarray(scores), kind="stable")[offset:want]
        return [data.result(rows[i], scores[i]) for i in order]

