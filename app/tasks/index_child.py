"""The window's indexing process: `python -m app.tasks.index_child`, driven by `app.tasks.index_process`.

It runs `Library.update` (scan, decoders, the image model, the catalog's writes, under the catalog's
writer lock) away from the window, and speaks in JSON lines. Its first line on stdin is the request:
{"paths": {data, cache, config}, "only": [paths] or null, "batch_size": n, "crashed": [files]} to index
(after recording the files that crashed or hung an earlier run as problems, each file with its "reason"),
or {"paths", "probe": [files]} to open the given files one at a time, and nothing else (finding which file
crashed or hung the decoder; a file marked "gpu" is decoded as the GPU pipeline decoded it). Then
"pause", "resume" and "cancel" lines may follow; the end of stdin means the window is gone, and this
process ends at once (the catalog keeps every commit; the rest is redone next time). A decoder that hangs
is the window's to time: it stops this process (`index_process.HANG_LIMIT`).

On stdout, one event a line: {"event": "progress", …Progress}, {"event": "wait", "message"} (another
process holds the writer lock), {"event": "decoding", "file": FileInfo} and {"event": "decoded",
"path"} around each file a decoder opens ("decoding" has "gpu": true for a file of a GPU batch), then
{"event": "result", …} or {"event": "error", "message"}.
A native crash ends the process with no result: the files between "decoding" and "decoded" are the
suspects. Anything else written to stdout (a library's print) goes to stderr, the log.

Test hook: `GLIMPSE_TEST_DECODER_PLUGIN` names a module imported before any work (the tests' Pillow
plugin that aborts the process on one file). It is for tests only.
"""
from __future__ import annotations

import faulthandler
import importlib
import json
import os
import sys
import threading
from dataclasses import asdict
from pathlib import Path

CRASHED = "crashed the decoder"  # the reason shown for a file that ended the indexing process
HUNG = "hung the decoder"  # ... for a file that was in a decoder too long (the window stopped the process)
PLUGIN_ENV = "GLIMPSE_TEST_DECODER_PLUGIN"
NICE = 10  # below the window: its GUI thread and searches come first on a busy CPU

_out = None
_out_lock = threading.Lock()


def emit(event: dict) -> None:
    """One event to the window. A window that is gone ends this process."""
    line = (json.dumps(event, default=str) + "\n").encode("ascii")  # lone surrogates travel as \\udcxx
    try:
        with _out_lock:
            _out.write(line)
            _out.flush()
    except (BrokenPipeError, ValueError, OSError):
        os._exit(1)


def _listen(control) -> None:
    for line in sys.stdin:
        word = line.strip()
        if word == "pause":
            control.pause()
        elif word == "resume":
            control.resume()
        elif word == "cancel":
            control.cancel()
    os._exit(0)  # stdin closed: the window is gone (or killed); commits made so far are kept


def _files(rows) -> list:
    """FileInfos from the window's file dicts (which may carry "reason" and "gpu" besides)."""
    from dataclasses import fields

    from app.library.scanner import FileInfo

    names = {f.name for f in fields(FileInfo)}
    return [FileInfo(**{k: v for k, v in row.items() if k in names}) for row in rows or ()]


def record_crashes(library, files: list[dict]) -> None:
    """Problem rows for files that crashed or hung the decoder (their "reason"): as unreadable files,
    skipped until they change."""
    from app.library import photo

    rows = [{"path": f.path, "root": f.root, "size": f.size, "mtime_ns": f.mtime_ns, "hash": None,
             "status": "error", "error": row.get("reason") or CRASHED,
             "taken_at": photo.wall_clock(f.mtime_ns / 1e9)} for f, row in zip(_files(files), files or ())]
    if rows:
        library.catalog.commit(rows).result()


def probe(library, rows: list[dict], pipeline=None) -> None:
    """Open each file as indexing did, one at a time: metadata, then pixels for each model being indexed;
    a file marked "gpu" (it was in a GPU batch) alone through the GPU pipeline's decoder (`pipeline`, by
    default the one this computer runs), or as the CPU would where that does not run."""
    from app.library import photo

    encoder = library.encoder()
    configs = [encoder.preprocess]
    nxt = library.next_encoder()
    if nxt is not None:
        configs.append(nxt.preprocess)
    for info, row in zip(_files(rows), rows):
        gpu = bool(row.get("gpu"))
        if gpu and pipeline is None:
            from model import gpu_pipeline

            pipeline = gpu_pipeline.pipeline_for(encoder.model, encoder.provider)[0]
        emit({"event": "decoding", "file": asdict(info), **({"gpu": True} if gpu else {})})
        try:
            if gpu and pipeline is not None:
                with open(info.path, "rb") as f:
                    pipeline.preprocess([f.read()])
            else:
                for cfg in configs:  # load reads the metadata first, as the indexer does
                    photo.load(info.path, info.mtime_ns / 1e9, cfg)
        except Exception:  # noqa: BLE001 - an error is the indexer's to report; only a crash counts here
            pass
        emit({"event": "decoded", "path": info.path})


def update(library, request: dict, control):
    from app.library.indexer import Summary
    from app.library.library import Update
    from app.library.lock import CatalogBusy
    from app.library.scanner import Plan

    def on_wait(message: str) -> None:
        emit({"event": "wait", "message": message})

    def on_decode(info, starting: bool, gpu: bool = False) -> None:
        if starting:
            emit({"event": "decoding", "file": asdict(info), **({"gpu": True} if gpu else {})})
        else:
            emit({"event": "decoded", "path": info.path})

    try:
        with library.catalog.lock.hold("indexing", on_wait, lambda: control.cancelled):
            record_crashes(library, request.get("crashed"))
            return library.update(progress=lambda p: emit({"event": "progress", **asdict(p)}), control=control,
                                  only=request.get("only"), batch_size=int(request.get("batch_size") or 32),
                                  on_wait=on_wait, on_decode=on_decode)
    except CatalogBusy:  # cancelled while another process held the catalog
        return Update(Plan(), Summary(cancelled=True))


def result(u) -> dict:
    """What the window needs of an `Update`: all of it but the plan's file lists (how many files changed,
    not which: a first run has them all). `index_process.ChildPlan` reads it back."""
    from dataclasses import fields

    plan = {f.name: getattr(u.plan, f.name) for f in fields(u.plan) if f.name not in ("todo", "deleted")}
    return {"event": "result", "summary": asdict(u.summary), "switched_to": u.switched_to, "repaired": u.repaired,
            "caption_folders": u.caption_folders, "plan": {**plan, "changed": u.plan.changes}}


def main() -> int:
    global _out
    # stdout is ours alone: what anything else prints there goes to stderr (the log).
    _out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    faulthandler.enable()  # a native crash leaves its stack in the log
    try:
        os.nice(NICE)
    except (AttributeError, OSError):
        pass
    if os.environ.get(PLUGIN_ENV):
        importlib.import_module(os.environ[PLUGIN_ENV])
    request = json.loads(sys.stdin.readline() or "{}")
    if "paths" not in request:
        return 2

    from app.library.library import Library
    from app.library.paths import Paths
    from model.jobs import Control

    from .errors import USER_ERRORS, user_message

    control = Control()
    control.yield_when_paused = True  # paused, the update ends at its next batch and gives back the lock
    threading.Thread(target=_listen, args=(control,), daemon=True, name="window").start()
    library = Library(Paths(**{k: Path(v) for k, v in request["paths"].items()}))
    try:
        if request.get("probe"):
            probe(library, request["probe"])
            emit({"event": "result"})
        else:
            emit(result(update(library, request, control)))
        return 0
    except Exception as e:  # noqa: BLE001 - said to the window as one line
        expected = isinstance(e, USER_ERRORS)
        if not expected:
            import traceback

            traceback.print_exc()
        emit({"event": "error", "message": getattr(e, "window_message", None) or user_message(e),
              "expected": expected})
        return 1
    finally:
        library.close()


if __name__ == "__main__":
    sys.exit(main())
