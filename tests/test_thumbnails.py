"""Thumbnails: small, upright, cached, and renewed when the photo is edited."""
from __future__ import annotations

import os

import pytest
from PIL import Image

import images
from app.library.thumbnails import Thumbnails
from model.imagefile import ImageError


def test_thumbnail_is_small_upright_and_cached(library, tmp_path):
    exif = Image.Exif()
    exif[274] = 6  # stored landscape, shown portrait
    src = tmp_path / "big.jpg"
    images.photo(1200, 800, seed=1).save(src, exif=exif, quality=90)
    thumbs = library.thumbnails
    path = thumbs.get(str(src))
    with Image.open(path) as t:
        assert t.size == (171, 256) and t.format == "JPEG"
    assert path.is_relative_to(library.paths.cache)
    mtime = path.stat().st_mtime_ns
    assert thumbs.get(str(src)) == path and path.stat().st_mtime_ns == mtime  # served from the cache

    images.photo(800, 800, seed=2).save(src, quality=90)  # the photo is edited
    os.utime(src, ns=(mtime + 10**9, mtime + 10**9))
    new = thumbs.get(str(src))
    assert new != path
    with Image.open(new) as t:
        assert t.size == (256, 256)


def test_thumbnail_of_a_bad_file_is_a_clear_error(library, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    with pytest.raises(ImageError, match="not an image"):
        library.thumbnails.get(str(bad))
    assert not any(p.suffix == ".part" for p in library.paths.cache.rglob("*"))


def test_a_file_name_that_is_not_utf8_gets_its_thumbnail(tmp_path):
    name = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"f\xe9te.jpg"))
    images.photo(640, 480, seed=3).save(name)
    thumb = Thumbnails(tmp_path / "cache").get(name)
    assert Image.open(thumb).size == (256, 192)
