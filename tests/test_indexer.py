"""Indexing real files: every format, bad inputs, metadata, moves and copies, cancel and pause."""
from __future__ import annotations

import os
import threading
import zlib
import struct

import numpy as np
import pytest
from PIL import Image

import images
from app.library.query import parse
from conftest import file_digests, make_photos
from model.runtime import Encoder


class CountingEncoder(Encoder):
    """The real encoder, counting how many images go through the model."""

    def __init__(self, model):
        super().__init__(model)
        self.images = 0

    def encode_arrays(self, pixels):
        self.images += len(pixels)
        return super().encode_arrays(pixels)


def _counting(library) -> CountingEncoder:
    enc = CountingEncoder(library.models.active())
    library._encoder = enc
    return enc


def _rows(library) -> dict[str, dict]:
    return {r["path"]: r for r in library.catalog.photos()}


def _bomb_png(path) -> None:
    """A small PNG that claims 30000 x 30000 pixels (900 MP): Pillow refuses it before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress(b"\x00" * 4096)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_every_format_is_indexed(library, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    pic = images.photo(96, 72, seed=3)
    for ext, kw in [("jpg", {}), ("png", {}), ("webp", {}), ("gif", {}), ("tif", {}), ("bmp", {}),
                    ("avif", {}), ("heic", {})]:
        pic.save(root / f"pic.{ext}", **kw)
    frames = [images.photo(96, 72, seed=s) for s in (4, 5)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    library.folders.add(str(root))
    update = library.update()
    rows = _rows(library)
    assert update.summary.errors == 0, update.summary.error_list
    assert {os.path.basename(p) for p in rows} == {"pic.jpg", "pic.png", "pic.webp", "pic.gif", "pic.tif",
                                                  "pic.bmp", "pic.avif", "pic.heic", "anim.gif"}
    assert {r["format"] for r in rows.values()} == {"JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "HEIF"}
    assert all(r["status"] == "ok" and r["width"] == 96 and r["height"] == 72 for r in rows.values())
    # The animated GIF is indexed by its first frame: it matches that frame saved alone.
    frames[0].save(tmp_path / "first.png")
    hits = library.searcher().search_vector(library.encoder().encode_images([str(tmp_path / "first.png")])[0], k=1)
    assert os.path.basename(hits[0].path) == "anim.gif"


def test_bad_files_are_recorded_and_indexing_goes_on(library, tmp_path):
    root = tmp_path / "photos"
    good = make_photos(root, 3)
    good_bytes = good[0].read_bytes()
    (root / "truncated.jpg").write_bytes(good_bytes[: len(good_bytes) // 3])
    (root / "corrupt.jpg").write_bytes(good_bytes[:200] + os.urandom(4000))
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("shopping list: milk, eggs")
    _bomb_png(root / "bomb.png")
    unicode_dir = root / "Ålesund ☃ 写真"
    images.photo(120, 90, seed=42).save(unicode_dir.mkdir() or unicode_dir / "fjord ü.jpg")
    library.folders.add(str(root))
    update = library.update()

    rows = _rows(library)
    reasons = {os.path.basename(p): r["error"] for p, r in rows.items() if r["status"] == "error"}
    assert set(reasons) == {"truncated.jpg", "corrupt.jpg", "empty.jpg", "notes.jpg", "bomb.png"}
    assert "too large" in reasons["bomb.png"]
    assert "not an image" in reasons["notes.jpg"] and "not an image" in reasons["empty.jpg"]
    assert reasons["truncated.jpg"].startswith("corrupt or truncated image (image file is truncated")
    ok = {os.path.basename(p) for p, r in rows.items() if r["status"] == "ok"}
    assert ok == {p.name for p in good} | {"fjord ü.jpg"}
    assert update.summary.errors == 5 and update.summary.done == 9
    assert [e["path"] for e in library.errors()] == sorted(str(root / n) for n in reasons)
    # Unchanged bad files are not retried; a fixed one is.
    again = library.update()
    assert again.plan.todo == [] and again.plan.unchanged == 9
    images.photo(80, 60, seed=9).save(root / "notes.jpg")
    fixed = library.update()
    assert [f.path for f in fixed.plan.todo] == [str(root / "notes.jpg")]
    assert _rows(library)[str(root / "notes.jpg")]["status"] == "ok"


def test_metadata_from_exif(library, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif[271], exif[272], exif[274] = "Canon", "EOS R6", 6  # orientation 6: rotate 90 degrees to view
    exif.get_ifd(0x8769)[36867] = "2021:07:04 12:30:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 51.0, 36.0), "E", (151.0, 12.0, 36.0)
    images.photo(200, 100, seed=1).save(root / "sydney.jpg", exif=exif)
    images.photo(64, 48, seed=2).save(root / "plain.png")
    os.utime(root / "plain.png", (1_600_000_000, 1_600_000_000))
    library.folders.add(str(root))
    library.update()
    rows = _rows(library)
    s = rows[str(root / "sydney.jpg")]
    assert (s["width"], s["height"]) == (100, 200)  # as displayed, upright
    assert (s["make"], s["camera"]) == ("Canon", "EOS R6")
    assert s["lat"] == pytest.approx(-33.86, abs=0.01) and s["lon"] == pytest.approx(151.21, abs=0.01)
    import datetime as dt
    assert dt.datetime.fromtimestamp(s["taken_at"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M") == "2021-07-04 12:30"
    p = rows[str(root / "plain.png")]
    local = dt.datetime.fromtimestamp(1_600_000_000)  # no EXIF: the file's time, as local wall-clock time
    assert dt.datetime.fromtimestamp(p["taken_at"], dt.timezone.utc).replace(tzinfo=None) == local
    assert p["lat"] is None and (p["make"], p["camera"]) == ("", "")


def test_moves_and_copies_keep_their_vector_without_encoding(library, tmp_path):
    root = tmp_path / "photos"
    paths = make_photos(root, 6)
    (root / "dup.jpg").write_bytes(paths[0].read_bytes())  # identical content in the first run
    library.folders.add(str(root))
    enc = _counting(library)
    first = library.update()
    assert enc.images == 6 and first.summary.encoded == 6 and first.summary.reused == 1
    before = {p: r["hash"] for p, r in _rows(library).items()}

    (root / "album").mkdir()
    os.rename(paths[1], root / "album" / "renamed.jpg")
    (root / "copy.jpg").write_bytes(paths[2].read_bytes())
    second = library.update()
    assert enc.images == 6, "a moved or copied photo must not be decoded or encoded again"
    assert second.summary.reused == 2 and second.summary.encoded == 0
    assert second.plan.deleted == [str(paths[1])]
    rows = _rows(library)
    assert str(paths[1]) not in rows
    moved = rows[str(root / "album" / "renamed.jpg")]
    assert moved["hash"] == before[str(paths[1])] and moved["status"] == "ok" and moved["width"] == 160
    q = library.encoder().encode_images([str(root / "album" / "renamed.jpg")])[0]
    hits = library.searcher().search_vector(q, k=1)
    assert hits[0].path == str(root / "album" / "renamed.jpg") and hits[0].score > 0.999


def test_originals_are_never_written(library, tmp_path):
    root = tmp_path / "photos"
    make_photos(root, 5)
    exif = Image.Exif()
    exif[274] = 8
    images.photo(90, 60, seed=7).save(root / "rotated.jpg", exif=exif)
    before = file_digests(root)
    stat_before = {p: os.stat(p).st_mtime_ns for p in before}
    library.folders.add(str(root))
    library.update()
    library.thumbnails.get(str(root / "rotated.jpg"))
    library.searcher().search_vector(library.encoder().encode_images([str(root / "rotated.jpg")])[0])
    assert file_digests(root) == before
    assert {p: os.stat(p).st_mtime_ns for p in before} == stat_before


def test_file_deleted_while_indexing(library, tmp_path):
    root = tmp_path / "photos"
    paths = make_photos(root, 40)
    library.folders.add(str(root))
    victim = paths[-1]
    removed = []

    def progress(p):
        if not removed and p.done >= 1:
            victim.unlink()
            removed.append(victim)

    from app.library.indexer import Indexer
    plan = library.scan()
    summary = Indexer(library.catalog, library.encoder(), batch_size=4, workers=1, prefetch=2).run(plan.todo, progress)
    assert removed and summary.done == 40
    assert summary.error_list == [(str(victim), "file not found")]
    # The next scan forgets it.
    update = library.update()
    assert update.plan.deleted == [str(victim)] and str(victim) not in _rows(library)
    assert library.catalog.count() == 39


def test_progress_cancel_and_pause(library, tmp_path):
    from app.library.indexer import Control, Indexer

    root = tmp_path / "photos"
    make_photos(root, 30)
    library.folders.add(str(root))
    plan = library.scan()
    control = Control()
    events = []

    def progress(p):
        events.append(p)
        if p.done >= 8:
            control.cancel()

    summary = Indexer(library.catalog, library.encoder(), batch_size=4, prefetch=4).run(plan.todo, progress, control)
    assert summary.cancelled and 8 <= summary.done < 30
    assert events[0].total == 30 and all(e.current.endswith(".jpg") for e in events)
    assert any(e.rate > 0 and e.eta_s is not None for e in events)
    committed = library.catalog.count()
    assert committed == summary.done  # what was counted was committed, nothing more
    # Pause: nothing moves until resumed.
    control = Control()
    control.pause()
    seen = []
    worker = threading.Thread(target=lambda: seen.append(
        Indexer(library.catalog, library.encoder(), batch_size=4).run(library.scan().todo, None, control)))
    worker.start()
    worker.join(1.0)
    assert worker.is_alive() and library.catalog.count() == committed
    control.resume()
    worker.join(60)
    assert not worker.is_alive() and library.catalog.count() == 30 and seen[0].done == 30 - committed


def test_raw_files_are_indexed_through_their_preview(library, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    scene = images.photo(320, 240, seed=21)
    images.dng(root / "IMG_0001.DNG", scene)
    images.dng(root / "IMG_0002.dng", images.photo(320, 240, seed=22))
    images.photo(320, 240, seed=23).save(root / "IMG_0002.jpg")  # shot as RAW+JPEG: the JPEG stands for it
    (root / "IMG_0003.NEF").write_bytes(os.urandom(5000))       # damaged RAW
    library.folders.add(str(root))
    update = library.update()
    rows = _rows(library)
    assert set(map(os.path.basename, rows)) == {"IMG_0001.DNG", "IMG_0002.jpg", "IMG_0003.NEF"}
    dng = rows[str(root / "IMG_0001.DNG")]
    assert dng["status"] == "ok" and dng["format"] == "DNG" and (dng["width"], dng["height"]) == (96, 64)
    assert "RAW file without a readable preview" in rows[str(root / "IMG_0003.NEF")]["error"]
    assert update.summary.errors == 1
    scene.save(tmp_path / "same-scene.jpg", quality=85)
    hits = library.searcher().search(parse(str(tmp_path / "same-scene.jpg")), k=1)
    assert hits[0].path == str(root / "IMG_0001.DNG")
    assert library.thumbnails.get(str(root / "IMG_0001.DNG")).exists()


def test_large_jpeg_keeps_its_full_size_although_decoded_small(library, tmp_path):
    """JPEGs are decoded at 1/8 scale for the model; the catalog still records the photo's real size."""
    root = tmp_path / "photos"
    root.mkdir()
    images.photo(1024, 768, seed=4).save(root / "big.jpg", quality=85)
    library.folders.add(str(root))
    library.update()
    row = _rows(library)[str(root / "big.jpg")]
    assert (row["width"], row["height"]) == (1024, 768)


def test_everything_is_committed_when_run_returns(library, tmp_path):
    """Committing every batch (as a slow model does), the last commits are still in flight when the
    last batch is encoded; run() returns only once they are in the catalog."""
    from app.library.indexer import Indexer

    make_photos(tmp_path / "photos", 40)
    library.folders.add(str(tmp_path / "photos"))
    plan = library.scan()
    summary = Indexer(library.catalog, library.encoder(), batch_size=4, commit_seconds=0).run(plan.todo)
    assert summary.done == 40
    assert library.catalog.count("status = 'ok'") == 40


def test_a_file_name_that_is_not_utf8_is_indexed_with_the_rest(library, tmp_path, glimpse_home):
    from conftest import run_glimpse

    root = tmp_path / "photos"
    make_photos(root, 5)
    odd = os.path.join(os.fsencode(root), b"f\xe9te.jpg")  # Latin-1 bytes, as an old camera or zip leaves them
    images.photo(160, 120, seed=77).save(os.fsdecode(odd), format="JPEG")
    library.folders.add(str(root))
    library.close()
    env = {"GLIMPSE_HOME": str(glimpse_home)}
    first = run_glimpse("index", env=env)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    assert first.stdout.startswith("6 indexed (6 encoded") and "0 could not be read" in first.stdout
    again = run_glimpse("index", env=env)
    assert "0 indexed" in again.stdout and "6 unchanged" in again.stdout

    from app.library.library import Library

    lib = Library()
    try:
        found = {os.fsencode(h.path) for h in lib.searcher().search(parse(os.fsdecode(odd)), k=6)}
        assert odd in found
        assert lib.searcher().search(parse(os.fsdecode(odd)), k=1)[0].path == os.fsdecode(odd)
    finally:
        lib.close()
    import subprocess
    import sys

    from conftest import ROOT

    listing = subprocess.run([sys.executable, "-m", "app", "search", os.fsdecode(odd), "-k", "1"], cwd=ROOT,
                             env={**os.environ, **env}, capture_output=True)
    assert listing.returncode == 0 and listing.stdout.rstrip().endswith(b" " + odd), listing.stderr
    as_json = subprocess.run([sys.executable, "-m", "app", "search", os.fsdecode(odd), "-k", "1", "--json"],
                             cwd=ROOT, env={**os.environ, **env}, capture_output=True)
    import json

    import base64

    row = json.loads(as_json.stdout.decode("utf-8"), strict=True)[0]  # valid UTF-8 JSON
    assert row["path"].endswith("f\ufffdte.jpg") and base64.b64decode(row["path_bytes"]) == odd


def test_an_edit_in_the_middle_of_an_uncompressed_photo_gets_a_new_vector(library, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    path = root / "scan.bmp"
    images.photo(1000, 800, seed=5).save(path)  # 2.4 MB: the cheap hash sees its first MiB and last KiB
    library.folders.add(str(root))
    library.update()
    before = library.searcher().vector_of(str(path))
    enc = _counting(library)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched (a backup restored, say)
    assert library.update().summary.encoded == 0 and enc.images == 0, "the same bytes keep their vector"

    img = Image.open(path).convert("RGB")
    # BMP rows run bottom-up: rows 100-300 from the top lie past the first MiB and before the last KiB.
    img.paste(images.photo(1000, 200, seed=99), (0, 100))
    st = path.stat()
    img.save(path)
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    update = library.update()
    assert enc.images == 1 and update.summary.encoded == 1
    after = library.searcher().vector_of(str(path))
    assert np.dot(after, enc.encode_images([str(path)])[0]) > 0.999 and np.dot(after, before) < 0.999

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3 * 10**9))  # touched, not changed: nothing to encode
    enc.images = 0
    assert library.update().summary.encoded == 0 and enc.images == 0


def test_pillow_warnings_stay_off_the_terminal(library, tmp_path, glimpse_home):
    from conftest import run_glimpse

    root = tmp_path / "photos"
    root.mkdir()
    images.malformed_mpo(root / "DSCF0001.jpg")
    library.folders.add(str(root))
    library.close()
    r = run_glimpse("index", env={"GLIMPSE_HOME": str(glimpse_home)})
    assert r.returncode == 0 and r.stdout.startswith("1 indexed")
    assert "Warning" not in r.stderr and "MPO" not in r.stderr, r.stderr
