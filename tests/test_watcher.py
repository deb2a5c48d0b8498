"""The watcher keeps the index current: a burst of new files, edits, moves, deletions, `glimpse watch`."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import images
from app.library.watcher import Watcher
from conftest import ROOT, make_photos


def _wait(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def watching(library, tmp_path):
    root = tmp_path / "photos"
    make_photos(root, 3)
    library.folders.add(str(root))
    updates = []
    watcher = Watcher(library, on_update=updates.append, quiet=0.5).start()
    _wait(lambda: watcher.idle and library.catalog.count() == 3, what="the first reconcile")
    yield library, root, watcher, updates
    watcher.stop()
    assert not watcher._thread.is_alive()


def test_burst_of_500_files(watching, tmp_path):
    library, root, watcher, _ = watching
    staging = make_photos(tmp_path / "staging", 500, start=1000, size=(48, 36))
    (root / "import").mkdir()
    for p in staging:
        shutil.copy(p, root / "import" / p.name)
    _wait(lambda: library.catalog.count() == 503 and watcher.idle, what="500 new photos")
    time.sleep(1.5)  # nothing more arrives later
    rows = library.catalog.photo_columns(["path", "status"]).to_pylist()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 503 and all(r["status"] == "ok" for r in rows)
    assert {os.path.basename(p) for p in paths if "/import/" in p} == {p.name for p in staging}


def test_edit_move_and_delete(watching):
    library, root, watcher, updates = watching
    a, b, c = sorted(root.glob("*.jpg"))
    old_hash = library.catalog.photo(str(a))["hash"]
    images.photo(64, 64, seed=77).save(a)                     # edited in place
    (root / "trip").mkdir()
    os.rename(b, root / "trip" / "moved.jpg")                  # moved
    c.unlink()                                                 # deleted
    _wait(lambda: watcher.idle and library.catalog.count() == 2 and library.catalog.photo(str(a)) is not None
          and library.catalog.photo(str(a))["hash"] != old_hash
          and library.catalog.photo(str(root / "trip" / "moved.jpg")) is not None, what="edit, move and delete")
    assert library.catalog.photo(str(b)) is None and library.catalog.photo(str(c)) is None
    assert library.catalog.photo(str(a))["width"] == 64
    # A whole folder removed at once.
    shutil.rmtree(root / "trip")
    _wait(lambda: watcher.idle and library.catalog.count() == 1, what="folder removal")
    assert any(u.plan.deleted for u in updates)


def test_overflow_triggers_a_reconcile(watching):
    library, root, watcher, _ = watching
    watcher.stop()  # no events from now on: only a reconcile can find the new file
    w2 = Watcher(library, quiet=0.5)
    w2._reconcile = False
    make_photos(root, 1, start=50)
    w2.start()
    time.sleep(1.0)
    assert library.catalog.count() == 3
    import logging
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; filesystem events were lost")
    _wait(lambda: library.catalog.count() == 4 and w2.idle, what="the reconcile after an overflow")
    w2.stop()


def test_glimpse_watch_until_ctrl_c(library, tmp_path, glimpse_home):
    root = tmp_path / "photos"
    make_photos(root, 2)
    library.folders.add(str(root))
    library.close()
    proc = subprocess.Popen([sys.executable, "-m", "app", "watch", "--quiet-seconds", "0.3"], cwd=ROOT,
                            env={**os.environ, "GLIMPSE_HOME": str(glimpse_home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    from app.library.catalog import Catalog
    catalog = Catalog(glimpse_home / "data" / "catalog")
    try:
        _wait(lambda: catalog.count() == 2, what="the first index")
        make_photos(root, 1, start=9)
        _wait(lambda: catalog.count() == 3, what="a new photo")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Watching 1 folder(s)" in out and "Traceback" not in err
    assert "2 indexed" in out and "1 indexed" in out
    catalog.close()
