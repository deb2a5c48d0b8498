"""The indexing pipeline: decoders → batches → ONNX encoder → the catalog's writer.

A pool of decoder threads (Pillow and numpy release the GIL) reads files ahead of the encoder through
a bounded window, so memory stays flat whatever the library's size. Each file is hashed first; content
the catalog already has a vector for (a moved, renamed or copied photo, or a copy met earlier in this
run) is not decoded or encoded again: its row takes the vector by hash and its metadata from the
catalog. A path whose file changed (new mtime or size) but whose cheap hash still matches its row
is hashed in full before any vector is reused, so an edit in the middle of an uncompressed photo
(BMP, TIFF) is not missed. A file that fails becomes an "error" row with its reason, and indexing goes on. Rows are
committed in groups by the catalog's one writer, so a killed process loses at most the last group and
the next run picks up exactly where this one stopped. A cancel ends a model run in progress at once; at
quit (`Control.quitting`) rows not written yet are dropped too, so closing the window waits for nothing.

Where CUDA and nvImageCodec work (`model.gpu_pipeline`), JPEGs are not decoded in the pool: their bytes
are decoded, resized and encoded on the GPU in batches, while other formats keep the CPU decoders. When the
GPU pipeline cannot run, or fails during a run, the CPU path takes over (the batch in hand included): a
failed pipeline is closed and forgotten. `Summary.device` says which ran, in the words progress showed
("CPU, 2 threads", "GPU: NVIDIA H200, decode on GPU, fp16"), and `Summary.gpu_note` why not the GPU one.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from model import gpu_pipeline
from model.imagefile import ImageError
from model.jobs import Cancelled, Control, Progress
from model.runtime import Encoder, cpu_threads

from . import photo
from .catalog import Catalog
from .scanner import FileInfo

META_COLUMNS = ["width", "height", "taken_at", "make", "camera", "lat", "lon", "format", "checksum"]


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    encoded: int = 0         # photos that went through the model
    reused: int = 0          # photos that took an existing vector (moves, copies, duplicates)
    errors: int = 0
    cancelled: bool = False
    paused: bool = False     # ended early because it was paused (Control.yield_when_paused)
    seconds: float = 0.0
    error_list: list[tuple[str, str]] = field(default_factory=list)
    device: str = ""         # the pipeline that ran, as progress said: "GPU: NVIDIA H200, decode on GPU, fp16"
    gpu_note: str = ""       # why the GPU pipeline did not run (or stopped), as a phrase; "" when it ran


@dataclass
class _Item:
    info: FileInfo
    hash: str | None = None
    pixels: np.ndarray | None = None
    data: bytes | None = None  # a JPEG's bytes, for the GPU pipeline to decode
    meta: photo.Meta | dict | None = None
    error: str | None = None
    duplicate_of_run: bool = False


class Indexer:
    def __init__(self, catalog: Catalog, encoder: Encoder, batch_size: int = 32, workers: int | None = None,
                 prefetch: int | None = None, commit_every: int = 256, commit_seconds: float = 2.0,
                 stage: str = "Indexing", on_decode: Callable[..., None] | None = None,
                 gpu: "gpu_pipeline.GpuPipeline | bool" = True):
        self.catalog = catalog
        # Told (info, True) before a decoder thread opens a file and (info, False) after, and (info, True,
        # gpu=True) for each JPEG of a GPU batch before its decode: the window's indexing process reports
        # which files were in a decoder when a native crash ended it (or one has been there too long).
        self.on_decode = on_decode
        self.encoder = encoder
        self.stage = stage
        self.batch_size = batch_size
        self.workers = workers or max(2, cpu_threads())
        self.prefetch = prefetch or max(2 * batch_size, 4 * self.workers)
        self.commit_every = commit_every
        self.commit_seconds = commit_seconds
        self.gpu = gpu  # True: the GPU pipeline where it can run; False: never; or the pipeline to use
        self._pipeline: gpu_pipeline.GpuPipeline | None = None

    # -- decoding (pool threads) ---------------------------------------------------------------
    def _prepare(self, info: FileInfo, known: set, claimed: dict, lock: threading.Lock,
                 metas: Callable[[str], dict | None]) -> _Item:
        item = _Item(info)
        try:
            item.hash = photo.content_hash(info.path, info.size)
            if info.known_hash and info.size > photo.HEAD + photo.TAIL and (
                    info.known_hash == item.hash or photo.is_full_hash(info.known_hash)):
                # Its time changed, yet its head and tail did not: compare all of it with what was indexed.
                checksum = photo.checksum(info.path)
                if checksum == info.known_checksum:
                    item.hash = info.known_hash  # touched, not edited: it keeps its vector
                else:  # edited in the middle (or indexed before checksums): new content, a new vector
                    item.hash = photo.full_hash(info.path)
        except OSError as e:
            item.error = "file not found" if isinstance(e, FileNotFoundError) else f"cannot be read ({e.strerror or e})"
            return item
        with lock:
            first = item.hash not in known and item.hash not in claimed
            if first:
                claimed[item.hash] = info.path
        if not first:  # the vector exists, or is being made from another copy in this run
            item.duplicate_of_run = item.hash not in known
            item.meta = metas(item.hash)
            if item.meta is None and not item.duplicate_of_run:
                try:
                    item.meta = photo.read_meta(info.path, info.mtime_ns / 1e9)
                except ImageError as e:
                    item.error = str(e)
            return item
        try:
            if self._pipeline is not None and gpu_pipeline.is_jpeg(info.path):  # decoded on the GPU
                item.meta = photo.read_meta(info.path, info.mtime_ns / 1e9)
                with open(info.path, "rb") as f:
                    item.data = f.read()
                item.meta.checksum = photo.checksum_bytes(item.data)
            else:
                item.pixels, item.meta = photo.load(info.path, info.mtime_ns / 1e9, self.encoder.preprocess)
                item.meta.checksum = photo.checksum(info.path)  # the file is in the page cache now: ~1 ms
        except ImageError as e:
            item.error = str(e)
        except OSError as e:
            item.error = "file not found" if isinstance(e, FileNotFoundError) else f"cannot be read ({e.strerror or e})"
        except Exception as e:  # a decoder plugin bug must not stop the run
            item.error = f"cannot be decoded ({type(e).__name__}: {e})"
        return item

    # -- the model: the GPU pipeline, or the CPU encoder ----------------------------------------
    def _choose_pipeline(self) -> str:
        """Pick the pipeline for this run; returns why not the GPU one ("" when it runs)."""
        reason = None
        if isinstance(self.gpu, gpu_pipeline.GpuPipeline):
            self._pipeline = self.gpu
        elif self.gpu:
            self._pipeline, reason = gpu_pipeline.pipeline_for(self.encoder.model, self.encoder.provider)
        else:
            self._pipeline, reason = None, "the GPU pipeline was not asked for"
        return "" if self._pipeline is not None else gpu_pipeline.phrase(reason or "")

    def _device(self) -> str:
        """Where this run encodes now, for people ("" before the CPU encoder's first batch)."""
        if self._pipeline is not None:
            return self._pipeline.describe()
        return self.encoder.device(open_session=False)

    def _encode(self, batch: list[_Item], control: Control, summary: Summary,
                pool: ThreadPoolExecutor) -> tuple[np.ndarray, list[str | None]]:
        """Vectors for the items that decoded (in order), and per item None or why it failed. `pool` is the
        run's decode pool: after a GPU failure, the bytes read for the GPU are decoded there."""
        if self._pipeline is not None:
            try:
                with self._decoding([it for it in batch if it.data is not None], gpu=True):
                    pixels, errors = self._pipeline.preprocess([it.pixels if it.data is None else it.data
                                                                for it in batch])
                return self._pipeline.run(pixels, control), errors
            except Cancelled:
                raise
            except Exception as e:  # the GPU failed: this batch and the rest of the run go through the CPU
                if control.cancelled:
                    raise Cancelled("cancelled") from None
                failed, self._pipeline = self._pipeline, None
                gpu_pipeline.forget(failed)
                failed.close()
                summary.gpu_note = f"the GPU pipeline failed during the run ({gpu_pipeline.first_line(e)})"
        errors: list[str | None] = [None] * len(batch)
        late = [i for i, it in enumerate(batch) if it.pixels is None]  # bytes that were meant for the GPU
        if late:
            with self._decoding([batch[i] for i in late]):
                for i, result in zip(late, pool.map(self._cpu_pixels, [batch[i].data for i in late])):
                    batch[i].data = None
                    if isinstance(result, str):
                        errors[i] = result
                    else:
                        batch[i].pixels = result
        pixels = [it.pixels for it, e in zip(batch, errors) if e is None]
        if not pixels:
            return np.zeros((0, self.encoder.embed_dim), np.float32), errors
        with self.encoder.stopped_by(control):  # a cancel ends the model's run at once
            return self.encoder.encode_arrays(np.stack(pixels)), errors

    def _cpu_pixels(self, data: bytes) -> np.ndarray | str:
        return gpu_pipeline.cpu_pixels_or_error(data, self.encoder.preprocess)

    @contextmanager
    def _decoding(self, items: list[_Item], gpu: bool = False):
        """Tell `on_decode` that these files are in a decoder for the length of the block: a batch is
        decoded at once (on the GPU), so a native crash there names all of them as suspects."""
        told = [it.info for it in items] if self.on_decode is not None else []
        for info in told:
            if gpu:
                self.on_decode(info, True, gpu=True)
            else:
                self.on_decode(info, True)
        try:
            yield
        finally:
            for info in told:
                self.on_decode(info, False)

    def _prepare_told(self, info: FileInfo, *args) -> _Item:
        self.on_decode(info, True)
        try:
            return self._prepare(info, *args)
        finally:
            self.on_decode(info, False)

    # -- the run ------------------------------------------------------------------------------
    def run(self, files: list[FileInfo], progress: Callable[[Progress], None] | None = None,
            control: Control | None = None) -> Summary:
        control = control or Control()
        space = self.encoder.image_space
        summary = Summary(total=len(files))
        start = time.perf_counter()
        if not files:
            return summary
        summary.gpu_note = self._choose_pipeline()
        summary.device = self._device()
        batch_size = self._pipeline.batch_size if self._pipeline is not None else self.batch_size
        prefetch = max(self.prefetch, 2 * batch_size)
        known = set(self.catalog.vector_hashes(space).to_pylist())
        metas = _MetaLookup(self.catalog)
        claimed: dict[str, str] = {}
        lock = threading.Lock()
        made: dict[str, dict] = {}            # hash -> metadata of content encoded in this run
        waiting: dict[str, list[FileInfo]] = {}  # copies waiting for their first copy's vector
        failed: dict[str, str] = {}              # hash -> why its first copy could not be read
        rows: list[dict] = []
        batch: list[_Item] = []
        out_hashes: list[str] = []
        out_vectors: list[np.ndarray] = []
        commits: deque[Future] = deque()
        last_commit = time.perf_counter()
        recent: deque[tuple[float, int]] = deque([(start, 0)])

        def report(current: str) -> None:
            if not progress:
                return
            now = time.perf_counter()
            recent.append((now, summary.done))
            while len(recent) > 2 and now - recent[0][0] > 5.0:
                recent.popleft()
            t0, d0 = recent[0]
            rate = (summary.done - d0) / (now - t0) if now > t0 else 0.0
            eta = (summary.total - summary.done) / rate if rate > 0 else None
            progress(Progress(self.stage, summary.done, summary.total, rate, eta, current, summary.errors,
                              summary.encoded, summary.device))

        def add_row(info: FileInfo, h: str | None, meta, error: str | None = None) -> None:
            row = {"path": info.path, "root": info.root, "size": info.size, "mtime_ns": info.mtime_ns, "hash": h,
                   "status": "error" if error else "ok", "error": error}
            if meta is not None:
                row.update(meta if isinstance(meta, dict) else meta.to_dict())
            elif error:
                row["taken_at"] = photo.wall_clock(info.mtime_ns / 1e9)
            rows.append(row)
            summary.done += 1
            if error:
                summary.errors += 1
                summary.error_list.append((info.path, error))

        def fail(info: FileInfo, h: str, meta, error: str) -> None:
            """A first copy could not be read: its row, and its copies waiting for its vector, get why."""
            add_row(info, h, meta, error)
            failed[h] = error
            for twin in waiting.pop(h, []):
                add_row(twin, h, None, error)

        def flush(force: bool = False) -> None:
            nonlocal rows, out_hashes, out_vectors, last_commit
            if control.quitting:
                return  # nothing more is handed to the writer (see the end of `run`)
            due = len(rows) >= self.commit_every or time.perf_counter() - last_commit >= self.commit_seconds
            if rows and (force or due):
                vectors = np.concatenate(out_vectors) if out_vectors else None
                commits.append(self.catalog.commit(rows, space, out_hashes, vectors))
                rows, out_hashes, out_vectors = [], [], []
                last_commit = time.perf_counter()
            # Forced (the end of a run): wait for every commit in flight, even with no rows left to add.
            while len(commits) > 2 or (force and commits):
                commits.popleft().result()

        def encode_batch() -> None:
            if not batch:
                return
            try:
                vectors, errors = self._encode(batch, control, summary, pool)
            except Cancelled:
                batch.clear()  # dropped; the next run redoes it
                return
            for it, error in zip(batch, errors):
                if error:  # a JPEG that neither the GPU nor Pillow could decode
                    fail(it.info, it.hash, it.meta, error)
            good = [it for it, error in zip(batch, errors) if not error]
            summary.device = self._device() or summary.device  # fp16 once its check on the first batch passed
            out_vectors.append(vectors)
            with lock:
                known.update(it.hash for it in good)
            for it in good:
                out_hashes.append(it.hash)
                made[it.hash] = it.meta.to_dict()
                add_row(it.info, it.hash, it.meta)
                summary.encoded += 1
                for twin in waiting.pop(it.hash, []):
                    add_row(twin, it.hash, made[it.hash])
                    summary.reused += 1
            batch.clear()
            report(batch_last)
            flush()

        batch_last = ""
        prepare = self._prepare if self.on_decode is None else self._prepare_told
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            window: deque[Future] = deque()
            todo = iter(files)
            exhausted = False
            while True:
                while not exhausted and len(window) < prefetch and not control.cancelled:
                    info = next(todo, None)
                    if info is None:
                        exhausted = True
                    else:
                        window.append(pool.submit(prepare, info, known, claimed, lock, metas.get))
                if control.yielding:
                    summary.paused = True
                    break
                if not window or not control.checkpoint():
                    break
                item = window.popleft().result()
                batch_last = item.info.path
                if item.error:
                    if item.hash and claimed.get(item.hash) == item.info.path:
                        fail(item.info, item.hash, item.meta, item.error)
                    else:
                        add_row(item.info, item.hash, item.meta, item.error)
                elif item.pixels is None and item.data is None:  # a copy: no decode
                    if item.hash in failed:
                        add_row(item.info, item.hash, None, failed[item.hash])
                    elif item.hash in known:
                        add_row(item.info, item.hash, item.meta or made.get(item.hash))
                        summary.reused += 1
                    else:
                        waiting.setdefault(item.hash, []).append(item.info)
                    report(item.info.path)
                else:
                    batch.append(item)
                    if len(batch) >= batch_size:
                        encode_batch()
                if not batch:
                    flush()
            for f in window:
                f.cancel()
        if control.cancelled or summary.paused:
            summary.cancelled = True  # the partial batch is dropped; the next run redoes it
        else:
            encode_batch()
        if control.quitting:  # rows not handed to the writer yet, or queued there, are dropped (redone next
            for f in commits:  # time); a commit being written is waited for: it cannot stop halfway
                f.cancel()
            for f in commits:
                if not f.cancelled():
                    f.result()
        else:
            flush(force=True)
        summary.seconds = time.perf_counter() - start
        report(batch_last)
        return summary


class _MetaLookup:
    """Metadata of content the catalog already knows, by hash. The columns are read once, on first
    need, and kept as Arrow arrays (a dict of row numbers, not a dict per photo: small at 1M photos)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._table = None
        self._row: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, h: str) -> dict | None:
        with self._lock:
            if self._table is None:
                self._table = self.catalog.photo_columns(["hash", *META_COLUMNS], "status = 'ok'")
                self._row = {v: i for i, v in enumerate(self._table["hash"].to_pylist())}
            i = self._row.get(h)
            return None if i is None else self._table.select(META_COLUMNS).slice(i, 1).to_pylist()[0]
