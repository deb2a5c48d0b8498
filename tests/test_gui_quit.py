"""Quitting while indexing: the window closes, the work stops and the process exits within a second.
What was committed stays, nothing is written after the close (the indexing process is gone), and the
next run resumes where it stopped.

Indexing runs a model whose image tower takes a second or two per batch on two cores, as a real one
does (the tiny model's batches take milliseconds, which would hide a close that waits for a batch)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from PySide6.QtCore import Qt, QThreadPool

import tiny
from conftest import ROOT, install_copy, make_photos, wait_for
from gui import WAIT, indexing_processes, library_threads, open_window

QUIT_S = 1.0   # close -> the window's work stopped, or the process gone
PHOTOS = 200   # several batches: still indexing when it closes
SLOW_CFG = {"embed_dim": 32,
            "vision_cfg": {"image_size": 384, "layers": 6, "width": 256, "patch_size": 16, "head_width": 64},
            "text_cfg": tiny.TINY_CFG["text_cfg"]}


@pytest.fixture(scope="session")
def slow_stored(tmp_path_factory):
    """A random model with a slow image tower (~70 GMAC a batch of 32), in a store of its own."""
    import open_clip
    import torch

    from model.obtain import import_path
    from model.store import ModelStore

    torch.manual_seed(0)
    model = open_clip.CLIP(**SLOW_CFG).eval()
    folder = tiny.save_folder(model, tmp_path_factory.mktemp("slow-src") / "slow-clip", model_cfg=SLOW_CFG)
    return import_path(ModelStore(tmp_path_factory.mktemp("slow-store")), folder)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quit") / "Photos"
    make_photos(folder, PHOTOS, size=(512, 384))
    return folder


@pytest.fixture
def slow_library(library, slow_stored, photo_folder):
    """A home with the slow model active and the photos' folder watched, nothing indexed yet."""
    install_copy(library, slow_stored)
    library.models.use(slow_stored.id)
    library.folders.add(str(photo_folder))
    library.close()
    return library


def _resumes(at_close: int) -> None:
    """A new Library finds the committed rows, indexes the rest and ends with every photo once."""
    from app.library.library import Library

    lib = Library()
    try:
        assert lib.catalog.count() == at_close, "rows were written after the close"
        update = lib.update()
        assert not update.summary.cancelled and update.summary.done == PHOTOS - at_close
        paths = lib.catalog.photo_columns(["path"])["path"].to_pylist()
        assert len(paths) == len(set(paths)) == PHOTOS
        assert lib.status().photos == lib.status().vectors == PHOTOS
    finally:
        lib.close()


def test_quit_returns_within_1_s_while_indexing(qtbot, slow_library, capsys):
    w = open_window(qtbot, wait_ready=False)
    encoded = [0]  # photos through the model so far (set on the runner's thread)
    w.backend.runner.progressed.connect(lambda task, p: encoded.__setitem__(0, max(encoded[0], p.encoded)),
                                        Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: w.backend.library is not None, timeout=WAIT)
    catalog = w.backend.library.catalog
    qtbot.waitUntil(lambda: catalog.count() > 0, timeout=WAIT)  # a commit landed: well under way
    seen = encoded[0]
    qtbot.waitUntil(lambda: encoded[0] > seen, timeout=WAIT)  # a batch was just encoded; the next one starts
    qtbot.wait(100)
    children = indexing_processes()
    assert len(children) == 1, "indexing runs in a process of its own"
    assert catalog.lock.holder()["pid"] == children[0], "it holds the writer lock; the window does not"

    start = time.monotonic()
    w.close()
    closed = time.monotonic() - start
    qtbot.waitUntil(lambda: not library_threads() and not indexing_processes(), timeout=WAIT)
    gone = time.monotonic() - start
    at_close = catalog.count()  # the indexing process is gone: nothing more is written
    with capsys.disabled():
        print(f"\nquit while indexing ({at_close}/{PHOTOS} committed): close returned in {closed:.2f} s, "
              f"threads and the indexing process gone in {gone:.2f} s")
    assert closed < QUIT_S, f"closing took {closed:.2f} s"
    assert gone < QUIT_S, f"the window's threads or its indexing process ran on for {gone:.2f} s after the close"
    assert 0 < at_close < PHOTOS
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    time.sleep(0.5)
    _resumes(at_close)


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"  # a zombie no one has reaped yet
    except OSError:
        return True


def test_the_app_exits_within_1_s_of_a_quit_while_indexing(slow_library, tmp_path, capsys):
    """The real process: Ctrl+C closes the window as its close button does; the process is gone soon after."""
    from app.library.library import Library

    log = tmp_path / "app.log"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with open(log, "wb") as out:
        app = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        lib = Library()
        try:
            wait_for(lambda: lib.catalog.count() > 0 or app.poll() is not None, timeout=120, what="a first commit")
            assert app.poll() is None, log.read_text()
            children = indexing_processes(app.pid)
            assert len(children) == 1, "indexing runs in a process of its own"
            sent = time.monotonic()
            app.send_signal(signal.SIGINT)
            app.wait(timeout=60)
            took = time.monotonic() - sent
            wait_for(lambda: _ended(children[0]), timeout=QUIT_S, what="the indexing process to end")
        finally:
            lib.close()
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    with capsys.disabled():
        print(f"\nthe app exited {took:.2f} s after Ctrl+C while indexing")
    assert app.returncode == 0, log.read_text()
    assert took < QUIT_S, f"the process ran on for {took:.2f} s after the quit"
    lib = Library()  # it opens, and resumes
    try:
        update = lib.update()
        paths = lib.catalog.photo_columns(["path"])["path"].to_pylist()
        assert not update.summary.cancelled and len(paths) == len(set(paths)) == PHOTOS
    finally:
        lib.close()


def test_a_cancel_ends_a_model_run_at_once(slow_stored):
    """Cancelling stops the model in the middle of a batch (which takes seconds), not after it."""
    import numpy as np

    from model.jobs import Cancelled, Control
    from model.runtime import Encoder

    encoder = Encoder(slow_stored, provider="cpu")
    pixels = np.random.default_rng(0).random((64, 3, 384, 384), np.float32)
    encoder.encode_arrays(pixels[:2])  # the session is open
    control = Control()
    start = time.monotonic()
    threading.Timer(0.2, control.cancel).start()
    with pytest.raises(Cancelled), encoder.stopped_by(control):
        encoder.encode_arrays(pixels)
    assert time.monotonic() - start < 0.2 + 0.5
    with encoder.stopped_by(Control()):  # a new block runs again
        assert encoder.encode_arrays(pixels[:2]).shape == (2, 32)
    assert encoder.encode_arrays(pixels[:2]).shape == (2, 32)


@pytest.mark.parametrize("quitting", [False, True])
def test_a_cancel_at_quit_writes_nothing_more(library, tmp_path, quitting):
    """A cancel keeps what was indexed (rows waiting for their group are written); a cancel at quit
    hands nothing more to the catalog's writer: those rows are indexed again next time."""
    from app.library.indexer import Control, Indexer

    make_photos(tmp_path / "photos", 40)
    library.folders.add(str(tmp_path / "photos"))
    control = Control()

    def progress(p):  # after each batch, before its rows go to the writer
        if p.done >= 20 and not control.cancelled:
            library.catalog.write(lambda: None).result()  # the first group (16 rows) has landed
            control.cancel(quitting=quitting)

    summary = Indexer(library.catalog, library.encoder(), batch_size=4, commit_every=16, commit_seconds=600) \
        .run(library.scan().todo, progress, control)
    assert summary.cancelled and 16 < summary.done < 40
    committed = library.catalog.count()
    assert committed == (16 if quitting else summary.done)
    assert library.update().summary.done == 40 - committed  # the next run resumes
    paths = library.catalog.photo_columns(["path"])["path"].to_pylist()
    assert len(paths) == len(set(paths)) == 40
