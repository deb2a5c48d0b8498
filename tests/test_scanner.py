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
    assert "unmounted" in library.status()["folders"][str(root)]["problem"]
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
    assert any("private" in p and "Permission denied" in p for p in out["problems"])
