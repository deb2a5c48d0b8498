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
from conftest import ROOT, make_photos, run_glimpse, wait_for


def _wait(predicate, timeout=120.0, what="condition"):
    wait_for(predicate, timeout, what)


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


def _under(library, folder) -> list[str]:
    return sorted(p for p in library.catalog.photo_columns(["path"])["path"].to_pylist()
                  if p.startswith(str(folder) + os.sep))


def test_follows_folders_added_and_removed_by_another_process(watching, tmp_path):
    """`glimpse folders add/remove/exclude` while a watcher runs: the added folder is indexed and watched;
    the removed one stays forgotten when a file in it changes; the exclusion applies."""
    library, root, watcher, _ = watching
    second = tmp_path / "second"
    make_photos(second, 2, start=100)
    r = run_glimpse("folders", "add", str(second))
    assert r.returncode == 0, r.stderr
    _wait(lambda: len(_under(library, second)) == 2, timeout=30, what="the added folder indexed")
    make_photos(second, 1, start=110)
    _wait(lambda: len(_under(library, second)) == 3, timeout=30, what="a new photo in the added folder")
    r = run_glimpse("folders", "remove", str(second))
    assert r.returncode == 0, r.stderr
    make_photos(second, 1, start=120)           # changes in the folder no longer watched ...
    images.photo(64, 64, seed=5).save(second / "photo_00100.jpg")
    time.sleep(2 * watcher.quiet + watcher.check_every + 1)
    _wait(lambda: watcher.idle, timeout=30, what="the watcher idle")
    assert _under(library, second) == [] and library.catalog.count() == 3  # ... bring nothing back
    # Exclusions set meanwhile apply at once.
    make_photos(root / "tmp-export", 2, start=130)
    _wait(lambda: library.catalog.count() == 5 and watcher.idle, timeout=30, what="the export folder indexed")
    from app.library.settings import Settings
    Settings(library.settings.path)["exclude"] = ["tmp-*"]  # as another process writes it
    _wait(lambda: library.catalog.count() == 3 and watcher.idle, timeout=30, what="the exclusion applied")


def test_photos_added_through_a_symlinked_folder(library, tmp_path):
    """inotify does not follow symlinks: the watcher watches the link's target and indexes the photos
    under the link's path, also for a link made while it runs."""
    root, card = tmp_path / "photos", tmp_path / "card"
    make_photos(root, 1)
    make_photos(card, 2, start=10)
    os.symlink(card, root / "card")
    library.folders.add(str(root))
    watcher = Watcher(library, quiet=0.3).start()
    try:
        _wait(lambda: watcher.idle and library.catalog.count() == 3, timeout=60, what="the first reconcile")
        for p in make_photos(tmp_path / "staging", 2, start=20):
            shutil.copy(p, card / p.name)
        _wait(lambda: len(_under(library, root / "card")) == 4, timeout=30, what="photos added through the link")
        (card / "photo_00010.jpg").unlink()
        _wait(lambda: library.catalog.photo(str(root / "card" / "photo_00010.jpg")) is None, timeout=30,
              what="a photo deleted through the link")
        other = tmp_path / "other"
        make_photos(other, 1, start=30)
        os.symlink(other, root / "other")  # a link made while watching
        _wait(lambda: len(_under(library, root / "other")) == 1 and watcher.idle, timeout=30,
              what="the new link's photos")
        make_photos(other, 1, start=31)
        _wait(lambda: len(_under(library, root / "other")) == 2, timeout=30, what="a photo added through it")
        _wait(lambda: watcher.idle, timeout=30, what="the watcher idle")
        assert _under(library, card) == [] and _under(library, other) == [] and library.catalog.count() == 6
    finally:
        watcher.stop()


def test_a_root_that_comes_back_is_watched_again(library, tmp_path):
    """A root that was missing (unplugged) when watching began is watched once it is back."""
    root = tmp_path / "disk"
    make_photos(root, 2)
    library.folders.add(str(root))
    library.update()
    shutil.move(root, tmp_path / "unplugged")
    runs = []
    watcher = Watcher(library, quiet=0.3, check_every=0.5, on_busy=lambda busy: busy and runs.append(1)).start()
    try:
        _wait(lambda: watcher.idle and runs, timeout=60, what="the first reconcile")
        assert library.catalog.count() == 2
        before = len(runs)
        shutil.move(tmp_path / "unplugged", root)
        _wait(lambda: watcher.idle and len(runs) > before, timeout=30, what="the reconcile when it came back")
        time.sleep(3 * watcher.check_every)  # nothing more to come
        _wait(lambda: watcher.idle, timeout=30, what="the watcher idle")
        make_photos(root, 1, start=10)  # only the watch can see this one now
        _wait(lambda: library.catalog.count() == 3, timeout=30, what="a photo copied in after it came back")
    finally:
        watcher.stop()


def test_a_drive_mounted_again_inside_a_root_is_watched(library, tmp_path):
    """A drive mounted inside a root, unmounted and mounted again: files put on it are seen again."""
    from test_scanner import _mount_tmpfs

    root, drive = tmp_path / "photos", tmp_path / "photos" / "drive"
    make_photos(root, 1)
    drive.mkdir()
    _mount_tmpfs(drive)
    make_photos(drive, 1, start=10)
    library.folders.add(str(root))
    runs = []
    watcher = Watcher(library, quiet=0.3, check_every=0.5, on_busy=lambda busy: busy and runs.append(1)).start()
    try:
        _wait(lambda: watcher.idle and library.catalog.count() == 2, timeout=60, what="the first reconcile")
        before = len(runs)
        subprocess.run(["umount", str(drive)], check=True)
        _wait(lambda: watcher.idle and len(runs) > before, timeout=30, what="the reconcile after the unmount")
        assert library.catalog.count() == 2
        before = len(runs)
        _mount_tmpfs(drive)
        _wait(lambda: watcher.idle and len(runs) > before, timeout=30, what="the reconcile after the mount")
        time.sleep(3 * watcher.check_every)  # nothing more to come
        _wait(lambda: watcher.idle, timeout=30, what="the watcher idle")
        make_photos(drive, 2, start=20)
        _wait(lambda: len(_under(library, drive)) == 2 and library.catalog.photo(str(drive / "photo_00021.jpg")),
              timeout=30, what="photos put on the drive mounted again")
    finally:
        watcher.stop()
        if os.path.ismount(drive):
            subprocess.run(["umount", str(drive)], check=True)


def test_a_drive_mounted_for_the_first_time_inside_a_root_is_watched(library, tmp_path):
    """A folder no scan has seen as a mount point gets a drive mounted on it while watching: the photos
    on it, and those copied onto it afterwards, are indexed without waiting for the periodic scan."""
    from test_scanner import _mount_tmpfs

    root, drive = tmp_path / "photos", tmp_path / "photos" / "card"
    make_photos(root, 1)
    drive.mkdir()
    library.folders.add(str(root))
    watcher = Watcher(library, quiet=0.3, check_every=0.5).start()
    try:
        _wait(lambda: watcher.idle and library.catalog.count() == 1, timeout=60, what="the first reconcile")
        _mount_tmpfs(drive)
        make_photos(drive, 2, start=10)
        _wait(lambda: len(_under(library, drive)) == 2, timeout=30, what="the photos on the new drive")
        _wait(lambda: watcher.idle, timeout=30, what="the watcher idle")
        make_photos(drive, 1, start=20)
        _wait(lambda: len(_under(library, drive)) == 3, timeout=30, what="a photo copied onto the drive")
    finally:
        watcher.stop()
        if os.path.ismount(drive):
            subprocess.run(["umount", str(drive)], check=True)
