"""The library: one object tying paths, settings, models, the catalog, folders, indexing and search.

Fronts (CLI, GUI) talk to this; it has no Qt and no torch.

Search and indexing may use different models. The active model (settings `active_model`) answers
queries: its text tower encodes them, and the vectors of its image space are searched. Activating a
model whose image space has no complete set of vectors makes it the *next* model (`next_model`):
updates then also index that space, in the background, while search keeps the active one; when the
space is complete the next model becomes active at once and the old space's vectors are dropped. A
model that shares the active one's image space (a text-tower fine-tune) is activated at once and
re-encodes nothing. A space's vectors are also dropped when no installed model uses it any more.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import pyarrow.compute as pc

from model.runtime import Encoder
from model.store import StoredModel

from . import caption_index, scanner
from .caption_index import CaptionError, CaptionPair
from .catalog import Catalog, db_path, real_paths, sql_str
from .folders import Folders
from .indexer import Control, Indexer, Progress, Summary
from .lock import CatalogBusy
from .models import Models
from .paths import Paths
from .search import Searcher
from .settings import Settings
from .status import FolderStatus, LibraryStatus
from .thumbnails import Thumbnails

COMPACT_AFTER = 500  # changes


@dataclass
class Update:
    plan: scanner.Plan
    summary: Summary
    switched_to: str | None = None   # the next model became active in this update
    repaired: int = 0                # duplicate rows removed
    caption_folders: int = 0         # folders whose captions were read again


class Library:
    def __init__(self, paths: Paths | None = None, settings: Settings | None = None):
        self.paths = paths or Paths.default()
        self.settings = settings or Settings(self.paths.settings_file)
        self.models = Models(self.paths, self.settings)
        self._encoder: Encoder | None = None
        self._next_encoder: Encoder | None = None
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()
        self._upgraded = False  # vector tables of the old layout looked for (see `searcher`)
        self._running: set[Control] = set()  # updates in progress (cancelled by remove_folder)
        self._idle = threading.Condition()

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
        """The active model's encoder (a new one when the active model changes, or is replaced)."""
        with self._lock:
            self._encoder = self._current(self._encoder, self.models.active())
            return self._encoder

    def next_encoder(self) -> Encoder | None:
        """The encoder of the model being prepared (None when no switch is pending)."""
        model = self.models.next()
        with self._lock:
            self._next_encoder = None if model is None else self._current(self._next_encoder, model)
            return self._next_encoder

    def _current(self, cached: Encoder | None, model) -> Encoder:
        """`cached` while it encodes `model` with the tower the settings ask for (int8 or not); else a new one."""
        if cached is not None and cached.model == model and cached.int8 == bool(self.settings["int8_image_tower"]):
            return cached
        return self.models.encoder(model)

    def searcher(self) -> Searcher:
        encoder = self.encoder()
        if not self._upgraded and any(key.startswith("model:") for key in self.catalog.spaces()):
            # A catalog from before image spaces: adopt its vectors now, so search answers before the
            # next `glimpse index` (unless another process is writing; then that one's update does it).
            with contextlib.suppress(CatalogBusy), self.catalog.lock.hold("upgrading", cancelled=lambda: True):
                self._adopt_legacy_vectors()
        self._upgraded = True  # checked once per process: listing the tables costs a few ms a search
        with self._lock:
            if self._searcher is None or self._searcher.encoder is not encoder:
                self._searcher = Searcher(self.catalog, encoder, exact_limit=int(self.settings["exact_search_limit"]))
            return self._searcher

    # -- keeping the index current ----------------------------------------------------------------
    def scan(self, only: list[str] | None = None, space: str | None = None) -> scanner.Plan:
        if space is None:
            model = self.models.active_or_none()
            space = model.image_space if model else None
        return scanner.plan(self.catalog, self.folders.list(), self.folders.exclusions, space, only)

    @contextlib.contextmanager
    def _tracked(self, control: Control):
        with self._idle:
            self._running.add(control)
        try:
            yield
        finally:
            with self._idle:
                self._running.discard(control)
                self._idle.notify_all()

    def cancel_updates(self, timeout: float | None = None) -> bool:
        """Cancel the updates running in this process and wait for them to stop. True once none runs."""
        with self._idle:
            for control in self._running:
                control.cancel()
            return self._idle.wait_for(lambda: not self._running, timeout)

    def update(self, progress: Callable[[Progress], None] | None = None, control: Control | None = None,
               only: list[str] | None = None, batch_size: int = 32,
               on_wait: Callable[[str], None] | None = None,
               on_decode: Callable[..., None] | None = None) -> Update:
        """Scan, forget deleted files, index new and changed ones, and tidy the database after big changes.

        Holds the catalog's writer lock throughout: while another process holds it, `on_wait(message)`
        is called once and this waits (a cancel ends the wait, and the update does nothing).
        `on_decode`: see `Indexer` (which files are in a decoder now). The GPU pipeline runs where it can
        (it loads torch: the window never calls this in its own process, but in `app.tasks.index_process`)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._promote_next_if_alone()
        self.encoder()  # fails early, with a clear message, when there is no model
        control = control or Control()
        with self._tracked(control):
            try:
                with self.catalog.lock.hold("indexing", on_wait, lambda: control.cancelled):
                    # What other processes changed while this one waited (folders, the models) counts.
                    self.settings.reload()
                    self._promote_next_if_alone()
                    return self._update(self.encoder(), progress, control, only, batch_size, on_decode)
            except CatalogBusy:
                return Update(scanner.Plan(), Summary(cancelled=True))

    def _promote_next_if_alone(self) -> None:
        """With the active model gone (removed) and a next one installed, the next one is all there is."""
        if self.models.active_or_none() is None and self.models.next() is not None:
            self.models.set_active(self.models.next().id)

    def _update(self, encoder: Encoder, progress, control: Control, only, batch_size: int,
                on_decode=None) -> Update:
        repaired = 0
        if only is None:
            self._adopt_legacy_vectors()
            self.prune_spaces()
            repaired = self.catalog.repair_duplicates().result()
        plan = self.scan(only, encoder.image_space)
        # New files first: a moved photo then takes its metadata from its old row, without opening the file.
        summary = Indexer(self.catalog, encoder, batch_size=batch_size, on_decode=on_decode) \
            .run(plan.todo, progress, control)
        if plan.deleted and not control.quitting:  # quitting: the next update forgets them
            self.catalog.delete_paths(plan.deleted).result()
            nxt = self.models.next()
            for space in {encoder.image_space, *([nxt.image_space] if nxt else [])}:
                self.catalog.sweep_vectors(space).result()
        captions_read = 0
        if not summary.cancelled and not summary.paused:  # captions follow the photos as they are now
            captions_read = caption_index.refresh(self.catalog, only, progress, control)
        if plan.changes >= COMPACT_AFTER and not summary.cancelled:
            self.tidy()
        switched = None
        if not summary.cancelled:
            switched = self._prepare_next(progress, control, batch_size, full=only is None, on_decode=on_decode)
        return Update(plan, summary, switched, repaired, captions_read)

    def _prepare_next(self, progress, control: Control, batch_size: int, full: bool,
                      on_decode=None) -> str | None:
        """Index the next model's image space; make it active when complete. Returns its id if so."""
        nxt = self.next_encoder()
        if nxt is None or not full:  # a full scan decides completeness; file events wait for the next one
            return None
        plan = self.scan(None, nxt.image_space)
        summary = Indexer(self.catalog, nxt, batch_size=batch_size, stage=f"Preparing {nxt.model_id}",
                          on_decode=on_decode).run(plan.todo, progress, control)
        # Photos under a folder that cannot be read now (an unplugged drive) have no vector in the new
        # space yet: switching would lose them from search, so the old model stays until they are back.
        if summary.cancelled or not self.space_complete(nxt.image_space):
            return None
        old = self.models.active_or_none()
        if not self.models.switch_to_next(nxt.model_id):  # changed meanwhile (here or by another process)
            return None
        if old is not None and old.image_space != nxt.image_space:
            self.catalog.drop_space(old.image_space).result()
        self.tidy()
        return nxt.model_id

    def tidy(self) -> None:
        """Compact the database, and build or refresh the ANN index where the library is large."""
        self.catalog.compact().result()
        model = self.models.active_or_none()
        if model:
            self.catalog.ensure_ann(model.image_space, int(self.settings["exact_search_limit"]) + 1).result()

    # -- models and their vectors --------------------------------------------------------------------
    def activate(self, model_id: str) -> bool:
        """Make a model the one search uses. True: at once (its image space is the active one's, or
        complete). False: it is the next model, made active once an update has indexed its space."""
        model = self.models.store.get(model_id)
        model.verify()
        active = self.models.active_or_none()
        if active is None or active.image_space == model.image_space or self.space_complete(model.image_space):
            self.models.set_active(model_id)
            return True
        self.models.set_next(model_id)
        return False

    def space_complete(self, space: str) -> bool:
        """Every photo that could be read has a vector in `space`."""
        hashes = self.catalog.photo_columns(["hash"], "status = 'ok'")["hash"]
        if len(hashes) == 0:
            return True
        return bool(pc.all(pc.is_in(hashes, value_set=self.catalog.vector_hashes(space))).as_py())

    def remove_model(self, model_id: str) -> str | None:
        """Delete a model, and the vectors of any image space no installed model uses any more.

        The active model removed, search goes on with another installed model rather than none: the one
        being prepared, else one whose vectors are complete (one sharing the removed model's image space
        first), else the one with the most vectors made (a switch drops the old model's vectors, so often
        none is complete: its vectors are then made by the next update). Returns that model's id, or None
        when the active model was not removed (or none is left)."""
        removed = self.models.store.get(model_id) if self.models.active_id == model_id else None
        self.models.remove(model_id)
        took_over = None
        if removed is not None:
            self._promote_next_if_alone()
            if self.models.active_or_none() is None:
                installed = [m for m in self.models.store.list() if isinstance(m, StoredModel)]
                if installed:
                    made = {m.image_space: len(self.catalog.vector_hashes(m.image_space)) for m in installed}
                    best = min(installed, key=lambda m: (not self.space_complete(m.image_space),
                                                         m.image_space != removed.image_space,
                                                         -made[m.image_space], m.id))
                    self.models.set_active(best.id)
            took_over = self.models.active_id
        with contextlib.suppress(CatalogBusy):  # another process is indexing: its next update prunes
            with self.catalog.lock.hold("removing a model", cancelled=lambda: True):
                self.prune_spaces()
        return took_over

    def prune_spaces(self) -> list[str]:
        """Drop the vectors of image spaces no installed model uses. Returns the spaces dropped. Nothing is
        dropped while a model is damaged: its space cannot be read, and pulling it again would reuse them."""
        models = self.models.store.list()
        if not all(isinstance(m, StoredModel) for m in models):
            return []
        used = {m.image_space for m in models}
        gone = [s for s in self.catalog.spaces() if s not in used and not s.startswith("model:")]
        for space in gone:
            self.catalog.drop_space(space).result()
        return gone

    def _adopt_legacy_vectors(self) -> None:
        """Vector tables of schema 1 were named by model id: give each to its model's space, or drop it."""
        for key in list(self.catalog.spaces()):
            if not key.startswith("model:"):
                continue
            try:
                model = self.models.store.get(key[len("model:"):])
            except Exception:  # noqa: BLE001 - not installed, or damaged: nothing can vouch for its vectors
                model = None
            table = self.catalog.table(self.catalog.spaces()[key])
            fits = model is not None and table.schema.field("vector").type.list_size == model.embed_dim
            if fits and model.image_space not in self.catalog.spaces():
                # Trusted as its model's vectors; a re-import under the same name before this version
                # cannot be told apart (the old layout did not record which weights made them).
                self.catalog.adopt_vectors(key, model.image_space).result()
            else:
                self.catalog.drop_space(key).result()

    # -- folders --------------------------------------------------------------------------------------
    def remove_folder(self, path: str, on_wait: Callable[[str], None] | None = None) -> str:
        """Stop watching a folder and forget its photos. A running update is cancelled and waited for
        first, so it cannot bring them back; the files are never touched. While another process writes
        the catalog, `on_wait(message)` is called once and this waits."""
        self.cancel_updates()
        with self.catalog.lock.hold("removing a folder", on_wait):
            folder = self.folders.remove(path)
            model = self.models.active_or_none()
            if model is not None:
                self.catalog.sweep_vectors(model.image_space).result()
        return folder

    # -- captions -------------------------------------------------------------------------------------
    def captions(self) -> list[CaptionPair]:
        """One caption per indexed photo that has one, from the best source (`caption_index.PRIORITY`);
        album folder names only while the `album_captions` setting is on. What fine-tuning trains on."""
        return caption_index.choose(self.catalog, album=bool(self.settings["album_captions"]))

    def caption_summary(self, examples: int = 5) -> dict:
        """{"photos", "distinct", "by_source", "by_folder", "examples": [{"path", "text", "source"}]}."""
        return caption_index.summary(self.captions(), examples)

    def caption_of(self, path: str) -> CaptionPair | None:
        """The caption chosen for an indexed photo, or None. CaptionError for a path not indexed."""
        photo = self._captionable(path)
        found = caption_index.choose(self.catalog, bool(self.settings["album_captions"]), photo["path"])
        return found[0] if found else None

    def set_caption(self, path: str, text: str, on_wait: Callable[[str], None] | None = None) -> CaptionPair | None:
        """Type a caption for an indexed photo (an empty text clears it). It is kept by the photo's
        content, so it follows the photo when it is moved or renamed. Returns the photo's caption now."""
        photo = self._captionable(path)
        text = " ".join((text or "").split())[:caption_index.captions.MAX_TEXT]
        with self.catalog.lock.hold("saving a caption", on_wait):
            self.catalog.set_typed_caption(photo["hash"], text).result()
        return self.caption_of(photo["path"])

    def clear_caption(self, path: str, on_wait: Callable[[str], None] | None = None) -> CaptionPair | None:
        """Forget the typed caption of a photo; returns the caption it has now from its files, if any."""
        return self.set_caption(path, "", on_wait)

    def export_captions(self, file) -> int:
        """Write `file,caption,source` rows (absolute paths) as CSV to a path or an open text stream;
        returns how many. A path is written atomically (a temp file beside it, then renamed over it), so
        a failure midway leaves an existing file as it was; CaptionError names the file."""
        import csv
        import secrets

        pairs = self.captions()

        def write(f) -> None:
            writer = csv.writer(f)
            writer.writerow(["file", "caption", "source"])
            writer.writerows([p.path, p.text, p.source] for p in pairs)

        if hasattr(file, "write"):
            write(file)
            return len(pairs)
        file = os.fspath(file)
        tmp = None
        try:
            if os.path.isdir(file):
                raise IsADirectoryError(21, "Is a directory", file)
            if os.path.exists(file) and not os.path.isfile(file):  # /dev/stdout, a pipe: nothing to keep
                with open(file, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
                    write(f)
                return len(pairs)
            folder, name = os.path.split(os.path.abspath(file))
            tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
            with open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(OSError):  # an existing file keeps its permissions
                os.chmod(tmp, os.stat(file).st_mode & 0o7777)
            os.replace(tmp, file)
            tmp = None
        except OSError as e:
            raise CaptionError(f"cannot write {file}: {e.strerror or e}") from e
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
        return len(pairs)

    def _captionable(self, path: str) -> dict:
        """The catalog row of an indexed photo, however the path was written; CaptionError otherwise."""
        photo = self.catalog.photo(path) or self.catalog.photo(os.path.normpath(os.path.abspath(path)))
        if photo is None:
            raise CaptionError(f"{path}: not an indexed photo (is its folder watched? `glimpse folders list`, "
                               "then `glimpse index`)")
        if photo["status"] != "ok" or not photo.get("hash"):
            raise CaptionError(f"{path}: could not be read ({photo.get('error') or 'unknown error'}), "
                               "so it cannot have a caption")
        return photo

    # -- what the user sees about the library ---------------------------------------------------
    def status(self) -> LibraryStatus:
        model = self.models.active_or_none()
        nxt = self.models.next()
        per_root = {}
        for root in self.folders.list():
            photos = self.catalog.count(f"root = {sql_str(db_path(root))} AND status = 'ok'")
            errors = self.catalog.count(f"root = {sql_str(db_path(root))} AND status = 'error'")
            per_root[root] = FolderStatus(photos, errors, scanner.root_problem(root, photos + errors))
        vectors = self.catalog.vector_table(model.image_space) if model else None
        return LibraryStatus(
            folders=per_root,
            photos=self.catalog.count("status = 'ok'"),
            errors=self.catalog.count("status = 'error'"),
            active_model=self.models.active_id,
            next_model=nxt.id if nxt else None,
            has_model=model is not None,
            vectors=vectors.count_rows() if vectors is not None else 0,
            database_bytes=self.catalog.size_bytes(),
            database=str(self.catalog.folder),
            watch=bool(self.settings["watch"]),
            exclude=tuple(self.settings["exclude"] or ()),
        )

    def distinct_contents(self) -> int:
        """How many readable photos differ in content (identical files share one vector). Reads every
        hash: for `glimpse status`, not for the window's status, which refreshes while indexing."""
        return pc.count_distinct(self.catalog.photo_columns(["hash"], "status = 'ok'")["hash"]).as_py()

    def errors(self) -> list[dict]:
        table = self.catalog.photo_columns(["path", "error", "root"], "status = 'error'")
        rows = [{"path": p, "error": e, "root": r} for p, e, r in
                zip(real_paths(table["path"]), table["error"].to_pylist(), real_paths(table["root"]))]
        return sorted(rows, key=lambda r: r["path"])

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.close()

