"""Scanning folders: exclusions, RAW beside JPEG, symlink loops, unreadable files, unmounted roots, folders."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.library.folders import FolderError
from app.library.formats import Exclusions
from app.library.scanner import walk
from conftest import ROOT, file_digests, make_photos


def _names(root: Path, patterns=()) -> set[str]:
    return {os.path.relpath(f.path, root) for f in walk(str(root), Exclusions(patterns))}


def test_exclusions_raw_twins_and_non_photos(tmp_path):
    root = tmp_path / "lib"
    for sub in ("", ".hidden", "@eaDir", ".git", "node_modules", "Trips/2020", "Trips/tmp", "Export"):
        make_photos(root / sub, 1)
    (root / "IMG_1.CR2").write_bytes(b"raw")
    (root / "IMG_1.JPG").write_bytes(b"jpg")
    (root / "IMG_2.NEF").write_bytes(b"raw")  # no JPEG beside it: indexed from its preview
    (root / "notes.txt").write_text("x")
    (root / ".secret.jpg").write_bytes(b"x")
    found = _names(root)
    assert found == {"photo_00000.jpg", "Trips/2020/photo_00000.jpg", "Trips/tmp/photo_00000.jpg",
                     "Export/photo_00000.jpg", "IMG_1.JPG", "IMG_2.NEF"}
    assert _names(root, ["tmp", "Export/*"]) == {"photo_00000.jpg", "Trips/2020/photo_00000.jpg", "IMG_1.JPG",
                                                 "IMG_2.NEF"}


def test_symlink_loops_are_cut(tmp_path):
    root = tmp_path / "lib"
    make_photos(root / "a", 2)
    os.symlink(root, root / "a" / "loop")
    os.symlink(root / "a", root / "again")
    os.symlink(root / "missing", root / "dangling.jpg")
    found = _names(root)
    assert sorted(found) in (["a/photo_00000.jpg", "a/photo_00001.jpg"], ["again/photo_00000.jpg", "again/photo_00001.jpg"])


def test_unmounted_or_missing_root_deletes_nothing(library, tmp_path):
    root = tmp_path / "disk"
    make_photos(root, 5)
    library.folders.add(str(root))
    library.update()
    assert library.catalog.count() == 5
    # The disk goes away (unmounted: the folder is gone) ...
    shutil.move(root, tmp_path / "elsewhere")
    update = library.update()
    assert update.plan.deleted == [] and library.catalog.count() == 5
    assert "not found" in update.plan.problems[0] and "kept" in update.plan.problems[0]
    # ... or its mount point stays behind, empty.
    root.mkdir()
    update = library.update()
    assert update.plan.deleted == [] and library.catalog.count() == 5 and "unmounted" in update.plan.problems[0]
    assert "unmounted" in library.status().folders[str(root)].problem
    # Back again: nothing to do.
    root.rmdir()
    shutil.move(tmp_path / "elsewhere", root)
    update = library.update()
    assert update.plan.problems == [] and update.plan.unchanged == 5 and update.summary.done == 0


def test_removing_a_folder_forgets_its_photos_and_keeps_the_files(library, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_photos(a, 3)
    make_photos(b, 2, start=10)
    for f in (a, b):
        library.folders.add(str(f))
    library.update()
    assert library.catalog.count() == 5
    digests = file_digests(a)
    library.folders.remove(str(a))
    assert library.catalog.count() == 2 and library.folders.list() == [str(b)]
    assert file_digests(a) == digests
    with pytest.raises(FolderError, match="not a watched folder"):
        library.folders.remove(str(a))
    with pytest.raises(FolderError, match="is already watched$"):
        library.folders.add(str(b / "."))
    (b / "sub").mkdir()
    with pytest.raises(FolderError, match="already watched as part of"):
        library.folders.add(str(b / "sub"))
    with pytest.raises(FolderError, match="contains the watched folder"):
        library.folders.add(str(tmp_path))
    with pytest.raises(FolderError, match="no such folder"):
        library.folders.add(str(tmp_path / "nowhere"))
    # Exclusions apply at the next scan, and settings persist: a new Library sees the same.
    make_photos(b / "tmp-export", 2, start=20)
    library.folders.set_exclusions(["tmp-*", " "])
    assert library.update().plan.todo == [] and library.catalog.count() == 2
    from app.library.library import Library
    again = Library()
    assert again.folders.list() == [str(b)] and again.folders.exclusions.patterns == ("tmp-*",)


_UNREADABLE = textwrap.dedent("""
    import json, os, sys
    from app.library.library import Library
    lib = Library()
    update = lib.update()
    print(json.dumps({"problems": update.plan.problems, "errors": update.summary.error_list,
                      "ok": lib.catalog.count("status = 'ok'")}))
""")


def _without_root_file_access() -> None:
    """In the child, before exec: drop root's right to ignore file permissions (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH) from the capability bounding set, so the exec'd program is refused like a user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_permission_denied_file_and_folder(library, tmp_path, glimpse_home):
    """The scan runs in a process that cannot override file permissions (root otherwise reads everything)."""
    root = tmp_path / "photos"
    make_photos(root, 3)
    make_photos(root / "private", 2, start=5)
    library.folders.add(str(root))
    library.close()
    os.chmod(root / "photo_00001.jpg", 0o000)
    os.chmod(root / "private", 0o000)
    try:
        r = subprocess.run([sys.executable, "-c", _UNREADABLE], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "GLIMPSE_HOME": str(glimpse_home)}, timeout=300,
                           preexec_fn=_without_root_file_access if os.geteuid() == 0 else None)
    finally:
        os.chmod(root / "private", 0o755)
        os.chmod(root / "photo_00001.jpg", 0o644)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] == 2
    assert out["errors"] == [[str(root / "photo_00001.jpg"), "cannot be read (Permission denied)"]]
    assert out["problems"] == [f"{root / 'private'}: Permission denied"]


def _rows(library) -> dict[str, str]:
    """path -> root, as the catalog holds them."""
    return {r["path"]: r["root"] for r in library.catalog.photos()}


def test_a_full_scan_forgets_roots_no_longer_watched_but_not_what_a_watched_root_holds(library, tmp_path):
    """Rows of a root that is no longer watched (an update brought them back while the folder was being
    removed) go at the next full scan; rows that lie under a watched root stay and join that root."""
    old, kept = tmp_path / "old", tmp_path / "old" / "kept"
    make_photos(old, 2)
    make_photos(kept, 2, start=10)
    library.folders.add(str(old))
    library.update()
    assert library.catalog.count() == 4
    library.settings["folders"] = []     # `old` is no longer watched, and its rows are still there ...
    library.folders.add(str(kept))       # ... while a folder inside it is.
    assert library.update(only=[str(kept / "photo_00010.jpg")]).plan.deleted == []  # not a file event's business
    assert library.catalog.count() == 4
    update = library.update()
    assert update.plan.deleted == [str(old / "photo_00000.jpg"), str(old / "photo_00001.jpg")]
    assert _rows(library) == {str(kept / "photo_00010.jpg"): str(kept), str(kept / "photo_00011.jpg"): str(kept)}
    assert library.status().folders[str(kept)].photos == 2
    assert library.status().vectors == 2 and update.summary.encoded == 0


def test_unplugged_link_target_keeps_its_photos(library, tmp_path):
    """A folder linked into a root from a drive that is then unplugged: the link dangles. Its photos
    stay (and their vectors), with one line saying why; plugged back, nothing is encoded again."""
    root, drive = tmp_path / "photos", tmp_path / "drive"
    make_photos(root, 2)
    make_photos(drive / "trip", 3, start=10)
    os.symlink(drive / "trip", root / "trip")
    library.folders.add(str(root))
    library.update()
    assert library.catalog.count() == 5
    shutil.move(drive, tmp_path / "drive-unplugged")
    update = library.update()
    assert update.plan.deleted == [] and library.catalog.count() == 5 and library.status().vectors == 5
    assert update.plan.problems == [f"{root / 'trip'}: link target is missing (unplugged?); its 3 photos are kept"]
    # A file event under the link (the watcher's partial scan) deletes nothing either.
    assert library.update(only=[str(root / "trip" / "photo_00010.jpg")]).plan.deleted == []
    assert library.update(only=[str(root / "trip")]).plan.deleted == []
    assert library.catalog.count() == 5
    shutil.move(tmp_path / "drive-unplugged", drive)
    update = library.update()
    assert update.plan.problems == [] and update.plan.unchanged == 5 and update.summary.encoded == 0
    # The link removed on purpose: its photos go.
    os.unlink(root / "trip")
    assert len(library.update().plan.deleted) == 3 and library.catalog.count() == 2


_RESCAN = textwrap.dedent("""
    import json, sys
    from app.library.library import Library
    lib = Library()
    full = lib.update()
    part = lib.update(only=sys.argv[1:])
    print(json.dumps({"problems": full.plan.problems, "deleted": full.plan.deleted + part.plan.deleted,
                      "ok": lib.catalog.count("status = 'ok'"), "vectors": lib.status().vectors}))
""")


@pytest.mark.parametrize("mode", [0o000, 0o644], ids=["unreadable", "listable-not-enterable"])
def test_folder_that_became_unreadable_keeps_its_photos(library, tmp_path, glimpse_home, mode):
    """Indexed, then made unreadable (or listable but not enterable: no x bit): the rescan (full, and a file
    event's partial one) reports it and forgets nothing. The scan runs where root's file-access override
    is dropped, as for a user."""
    root = tmp_path / "photos"
    make_photos(root, 3)
    make_photos(root / "private", 2, start=5)
    library.folders.add(str(root))
    library.update()
    assert library.catalog.count("status = 'ok'") == 5
    library.close()
    os.chmod(root / "private", mode)
    try:
        r = subprocess.run([sys.executable, "-c", _RESCAN, str(root / "private" / "photo_00005.jpg")], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "GLIMPSE_HOME": str(glimpse_home)},
                           timeout=300, preexec_fn=_without_root_file_access if os.geteuid() == 0 else None)
    finally:
        os.chmod(root / "private", 0o755)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["deleted"] == [] and out["ok"] == 5 and out["vectors"] == 5
    if mode == 0o000:
        assert out["problems"] == [f"{root / 'private'}: Permission denied"]
    else:
        assert f"{root / 'private' / 'photo_00005.jpg'}: Permission denied" in out["problems"]


def _record_mount_point(library, root: Path, folder: Path) -> None:
    """What a full scan writes when `folder` is a mount point: for a test that cannot mount."""
    from app.library.scanner import MOUNTS

    library.catalog.set_meta(MOUNTS, json.dumps({str(root): [str(folder)]})).result()


def test_unmounted_subfolder_keeps_its_photos(library, tmp_path):
    """A folder that was a mount point at the last scan, now unmounted: only the mount point is left,
    with a hidden file in it, or nothing at all. Its photos stay, scan after scan, with a clear line."""
    root = tmp_path / "photos"
    make_photos(root, 2)
    make_photos(root / "drive", 4, start=10)
    make_photos(root / "plain", 1, start=20)
    library.folders.add(str(root))
    library.update()
    _record_mount_point(library, root, root / "drive")
    shutil.move(root / "drive", tmp_path / "drive-away")
    (root / "drive").mkdir()
    (root / "drive" / ".hidden").write_text("left under the mount point")
    shutil.rmtree(root / "plain")  # an ordinary folder deleted: its photo goes
    for scan in range(2):  # the second scan still knows it was a mount point
        update = library.update()
        assert update.plan.deleted == ([str(root / "plain" / "photo_00020.jpg")] if scan == 0 else [])
        assert f"{root / 'drive'}: empty but held 4 photos (unmounted?); its photos are kept" in update.plan.problems
        assert library.catalog.count() == 6 and library.status().vectors == 6
    # A file event inside it (a partial scan) forgets nothing either; nor a scan with the folder gone.
    assert library.update(only=[str(root / "drive" / "photo_00010.jpg")]).plan.deleted == []
    shutil.rmtree(root / "drive")
    update = library.update()
    assert update.plan.deleted == [] and library.catalog.count() == 6
    assert f"{root / 'drive'}: not found but held 4 photos (unmounted?); its photos are kept" in update.plan.problems
    # Mounted again: nothing to do.
    shutil.move(tmp_path / "drive-away", root / "drive")
    update = library.update()
    assert update.plan.problems == [] and update.plan.unchanged == 6 and update.summary.done == 0


def _mount_tmpfs(folder: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "glimpse-test", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.strip()}")


def test_real_unmount_of_a_drive_inside_a_root(library, tmp_path):
    """A real mount point inside a root, with a hidden file underneath: unmounted, its photos stay;
    mounted again, empty, they still stay (an empty mount is not a deletion)."""
    root, drive = tmp_path / "photos", tmp_path / "photos" / "drive"
    make_photos(root, 1)
    drive.mkdir()
    (drive / ".hidden").write_text("under the mount")
    _mount_tmpfs(drive)
    try:
        make_photos(drive / "2019", 3, start=10)
        library.folders.add(str(root))
        update = library.update()
        assert library.catalog.count() == 4 and update.plan.mount_points == [str(drive)]
    finally:
        subprocess.run(["umount", str(drive)], check=True)
    for _ in range(2):
        update = library.update()
        assert update.plan.deleted == [] and library.catalog.count() == 4 and library.status().vectors == 4
        assert f"{drive}: empty but held 3 photos (unmounted?); its photos are kept" in update.plan.problems
    _mount_tmpfs(drive)
    try:
        update = library.update()
        assert update.plan.deleted == [] and library.catalog.count() == 4
        assert f"{drive}: empty but held 3 photos (unmounted?); its photos are kept" in update.plan.problems
    finally:
        subprocess.run(["umount", str(drive)], check=True)


def test_links_to_a_folder_holding_a_root_are_not_followed(library, tmp_path):
    """A link to `/` or to a folder above the root would walk the whole disk: it is skipped, with one line."""
    root = tmp_path / "photos"
    make_photos(root, 2)
    make_photos(tmp_path / "elsewhere", 3, start=10)
    os.symlink("/", root / "everything")
    os.symlink(tmp_path, root / "up")
    problems: list[str] = []
    found = {os.path.relpath(f.path, root) for f in walk(str(root), Exclusions(()), problems)}
    assert found == {"photo_00000.jpg", "photo_00001.jpg"}
    assert sorted(problems) == [f"{root / 'everything'}: not followed (it links to /, which holds a watched folder)",
                                f"{root / 'up'}: not followed (it links to {tmp_path}, which holds a watched folder)"]
    library.folders.add(str(root))
    update = library.update()
    assert library.catalog.count() == 2 and len(update.plan.problems) == 2
