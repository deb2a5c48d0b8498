"""One writer at a time: two `glimpse index` runs, a writer that waits and can be cancelled, and a folder
removed while it is being indexed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow.compute as pc

from conftest import ROOT, make_photos
from model.jobs import Control


def _unique(library) -> tuple[int, int, int, int]:
    rows = library.catalog.photo_columns(["path"])["path"]
    vectors = library.catalog.vector_hashes(library.models.active().image_space)
    return len(rows), len(pc.unique(rows)), len(vectors), len(pc.unique(vectors))


def test_two_index_runs_at_once_neither_crash_nor_duplicate(library, tmp_path, glimpse_home):
    root = tmp_path / "photos"
    make_photos(root, 300, size=(640, 480))
    library.folders.add(str(root))
    env = {**os.environ, "GLIMPSE_HOME": str(glimpse_home)}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "app", "index", "--batch-size", "4"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = start()
    lock = library.catalog.lock
    deadline = time.monotonic() + 60
    while lock.holder().get("pid") != first.pid and time.monotonic() < deadline:
        time.sleep(0.01)
    # Hold the first as soon as it holds the writer lock (it writes its pid just after taking it), so the
    # two surely overlap. Counting its rows was not a sure sign: it holds the lock after its last commit.
    os.kill(first.pid, signal.SIGSTOP)
    assert first.poll() is None and library.catalog.count() < 300, "the first run should still be indexing"
    try:
        second = start()
        told = second.stderr.readline()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert f"process {first.pid}) is indexing; waiting for it to finish" in told
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    for p, (out, err) in zip((first, second), outputs):
        assert p.returncode == 0 and "Traceback" not in err, err
    assert outputs[0][0].startswith("300 indexed") and outputs[1][0].startswith("0 indexed"), outputs
    assert _unique(library) == (300, 300, 300, 300)


def _hold_lock(glimpse_home, seconds: float) -> subprocess.Popen:
    """Another process holding the catalog's writer lock (as a `glimpse index` would)."""
    code = ("import sys, time; from app.library.library import Library; lib = Library(); "
            "h = lib.catalog.lock.hold('indexing'); h.__enter__(); print('held', flush=True); "
            f"time.sleep({seconds})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "GLIMPSE_HOME": str(glimpse_home)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_waits_for_another_process_says_so_and_can_be_cancelled(library, tmp_path, glimpse_home):
    root = tmp_path / "photos"
    make_photos(root, 4)
    library.folders.add(str(root))
    library.catalog  # opened before the other process takes the lock
    holder = _hold_lock(glimpse_home, 60)
    try:
        told, control, result = [], Control(), {}
        worker = threading.Thread(target=lambda: result.setdefault(
            "update", library.update(control=control, on_wait=told.append)))
        worker.start()
        deadline = time.monotonic() + 20
        while not told and time.monotonic() < deadline:
            time.sleep(0.05)
        assert told and f"process {holder.pid}" in told[0] and "indexing" in told[0]
        assert library.catalog.count() == 0
        control.cancel()
        worker.join(10)
        assert not worker.is_alive() and result["update"].summary.cancelled
        assert library.catalog.count() == 0, "nothing was written beside the other process"
    finally:
        holder.kill()
        holder.wait()
    assert library.update().summary.encoded == 4, "once the lock is free, the update runs"


def test_a_folder_removed_while_it_is_indexed_stays_removed(library, tmp_path):
    root = tmp_path / "photos"
    make_photos(root, 240, size=(480, 360))
    library.folders.add(str(root))
    midway = threading.Event()

    def progress(p):
        if p.done >= 40:
            midway.set()

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("update", library.update(progress, batch_size=4)))
    worker.start()
    assert midway.wait(60)
    library.remove_folder(str(root))
    assert not worker.is_alive() and result["update"].summary.cancelled, "the update was cancelled and waited for"
    worker.join(60)
    assert library.catalog.count() == 0
    assert len(library.catalog.vector_hashes(library.models.active().image_space)) == 0
    library.update()
    assert library.catalog.count() == 0 and library.folders.list() == []


def test_a_folder_added_by_another_process_is_not_forgotten_by_this_one(library, tmp_path):
    from app.library.library import Library

    make_photos(tmp_path / "a", 3)
    library.folders.add(str(tmp_path / "a"))
    library.update()
    other = Library()  # another process's view of the same settings and catalog
    try:
        make_photos(tmp_path / "b", 4, start=10)
        other.folders.add(str(tmp_path / "b"))
        other.update()
    finally:
        other.close()
    library.update()  # this process still held the old folder list in memory
    assert library.catalog.count("status = 'ok'") == 7


def test_a_paused_update_gives_the_catalog_back_and_resumes_by_planning_again(library, tmp_path, glimpse_home):
    root = tmp_path / "photos"
    make_photos(root, 120, size=(480, 360))
    library.folders.add(str(root))
    control = Control()
    control.yield_when_paused = True  # as the window's indexing runs

    def pause_midway(p):
        if p.done >= 16:
            control.pause()

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault(
        "update", library.update(pause_midway, control, batch_size=4)), daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        control.cancel()  # let it go, then fail
        worker.join(30)
        raise AssertionError("a paused update ends instead of holding the writer lock")
    assert result["update"].summary.paused and 0 < library.catalog.count() < 120
    holder = _hold_lock(glimpse_home, 1)  # another process gets the lock at once
    holder.wait()
    control.resume()
    update = library.update(control=control)
    assert not update.summary.paused and library.catalog.count() == 120
    assert update.summary.encoded == 120 - result["update"].summary.encoded
