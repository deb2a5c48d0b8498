"""One image space's vectors held in memory for exact search, kept in step with the catalog cheaply.

The vectors are cached in the order they were first loaded, one row per distinct content. When the
catalog changes, only vectors not seen before are read (a photo added while indexing costs its own
row, not a reload of the whole matrix); photos point into the cache by index, so copies share a row.
Rows whose content is gone stay until they make up a quarter of the cache, then it is rebuilt.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .catalog import Catalog


class VectorCache:
    def __init__(self, catalog: Catalog, space: str, dim: int):
        self.catalog = catalog
        self.space = space
        self.hashes = pa.array([], pa.string())
        self._buffer = np.zeros((0, dim), np.float32)  # rows beyond len(self) are spare room
        self.matrix = self._buffer[:0]

    def __len__(self) -> int:
        return len(self.hashes)

    def refresh(self) -> int:
        """Read the vectors added since the last refresh. Returns how many were read."""
        current = self.catalog.vector_hashes(self.space)
        new = pc.filter(current, pc.invert(pc.is_in(current, value_set=self.hashes)))
        if len(new) == 0:
            return 0
        gone = len(self.hashes) - (len(current) - len(new))
        if len(new) > max(2000, len(current) // 4) or gone > len(current) // 4:
            hashes, matrix = self.catalog.vectors(self.space)
            self.hashes, self._buffer = pa.array(hashes, pa.string()), matrix
            self.matrix = self._buffer[: len(hashes)]
            return len(hashes)
        wanted = new.to_pylist()
        for i in range(0, len(wanted), 500):
            hashes, vectors = self.catalog.vectors(self.space, wanted[i:i + 500])
            self._append(hashes, vectors)
        return len(wanted)

    def _append(self, hashes: list[str], vectors: np.ndarray) -> None:
        n, m = len(self.hashes), len(hashes)
        if n + m > len(self._buffer):  # grow by half, so appends cost no full copy each time
            bigger = np.empty((max(n + m, int(len(self._buffer) * 1.5) + 1024), self._buffer.shape[1]), np.float32)
            bigger[:n] = self._buffer[:n]
            self._buffer = bigger
        self._buffer[n:n + m] = vectors  # rows past a reader's view: searches in flight are not disturbed
        self.hashes = pa.concat_arrays([self.hashes, pa.array(hashes, pa.string())])
        self.matrix = self._buffer[: n + m]

    def index_of(self, hashes: pa.ChunkedArray | pa.Array) -> pa.Array:
        """For each hash, its row in `matrix` (null where the cache has no vector for it)."""
        return pc.index_in(hashes, value_set=self.hashes)
