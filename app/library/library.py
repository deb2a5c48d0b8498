"""The library: one object tying paths, settings, models, the catalog, folders, indexing and search.

Fronts (CLI, GUI) talk to this; it has no Qt and no torch.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from model.runtime import Encoder

from . import scanner
from .catalog import Catalog, sql_str
from .folders import Folders
from .indexer import Control, Indexer, Progress, Summary
from .models import Models
from .paths import Paths
from .search import Searcher
from .settings import Settings
from .thumbnails import Thumbnails

COMPACT_AFTER = 500  # changes


@dataclass
class Update:
    plan: scanner.Plan
    summary: Summary


class Library:
    def __init__(self, paths: Paths | None = None, settings: Settings | None = None):
        self.paths = paths or Paths.default()
        self.settings = settings or Settings(self.paths.settings_file)
        self.models = Models(self.paths, self.settings)
        self._encoder: Encoder | None = None
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.paths.data / "catalog")

    @cached_property
    def folders(self) -> Folders:
        return Folders(self.settings, self.catalog)

    @cached_property
    def thumbnails(self) -> Thumbnails:
        return Thumbnails(self.paths.cache / "thumbnails")

    def encoder(self) -> Encoder:
        """The active model's encoder (a new one when the active model changes)."""
        with self._lock:
            model = self.models.active()
            if self._encoder is None or self._encoder.model_id != model.id:
                self._encoder = Encoder(model, provider=self.settings["provider"])
            return self._encoder

    def searcher(self) -> Searcher:
        encoder = self.encoder()
        with self._lock:
            if self._searcher is None or self._searcher.encoder is not encoder:
                self._searcher = Searcher(self.catalog, encoder, exact_limit=int(self.settings["exact_search_limit"]))
            return self._searcher

    # -- keeping the index current ----------------------------------------------------------------
    def scan(self, only: list[str] | None = None) -> scanner.Plan:
        model_id = self.models.active_id if self.models.active_id and self.models.store.exists(self.models.active_id) else None
        return scanner.plan(self.catalog, self.folders.list(), self.folders.exclusions, model_id, only)

    def update(self, progress: Callable[[Progress], None] | None = None, control: Control | None = None,
               only: list[str] | None = None, batch_size: int = 32) -> Update:
        """Scan, forget deleted files, index new and changed ones, and tidy the database after big changes."""
        encoder = self.encoder()  # fails early, with a clear message, when there is no model
        plan = self.scan(only)
        # New files first: a moved photo then takes its metadata from its old row, without opening the file.
        summary = Indexer(self.catalog, encoder, batch_size=batch_size).run(plan.todo, progress, control)
        if plan.deleted:
            self.catalog.delete_paths(plan.deleted).result()
            self.catalog.sweep_vectors(encoder.model_id).result()
        if plan.changes >= COMPACT_AFTER and not summary.cancelled:
            self.tidy()
        return Update(plan, summary)

    def tidy(self) -> None:
        """Compact the database, and build or refresh the ANN index where the library is large."""
        self.catalog.compact().result()
        model_id = self.models.active_id
        if model_id:
            self.catalog.ensure_ann(model_id, int(self.settings["exact_search_limit"]) + 1).result()

    # -- what the user sees about the library ---------------------------------------------------
    def status(self) -> dict:
        model_id = self.models.active_id
        per_root = {}
        for root in self.folders.list():
            photos = self.catalog.count(f"root = {sql_str(root)} AND status = 'ok'")
            errors = self.catalog.count(f"root = {sql_str(root)} AND status = 'error'")
            per_root[root] = {"photos": photos, "errors": errors,
                              "problem": scanner.root_problem(root, photos + errors)}
        vectors = self.catalog.vector_table(model_id) if model_id else None
        return {
            "folders": per_root,
            "photos": self.catalog.count("status = 'ok'"),
            "errors": self.catalog.count("status = 'error'"),
            "active_model": model_id,
            "vectors": vectors.count_rows() if vectors is not None else 0,
            "database_bytes": self.catalog.size_bytes(),
            "database": str(self.catalog.folder),
        }

    def errors(self) -> list[dict]:
        rows = self.catalog.photo_columns(["path", "error", "root"], "status = 'error'").to_pylist()
        return sorted(rows, key=lambda r: r["path"])

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()

