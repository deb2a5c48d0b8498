"""One photo as the catalog sees it: its content hash, its metadata (EXIF), and its pixels for the model.

The content hash (BLAKE2b of the size, the first MiB and the last KiB) identifies a file's content
cheaply: a moved, renamed or copied photo has the same hash and keeps its vector. Files are opened
through `model.imagefile`, the one place that reads image files (RAW, HEIC, errors, warnings).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import zlib
import os
from dataclasses import dataclass, asdict

import numpy as np
from PIL import Image

from model.imagefile import RawInfo, image_errors, open_photo
from model.preprocess import PreprocessConfig, to_array, upright

HEAD = 1 << 20
TAIL = 1 << 10

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 271, 272, 274, 306
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 36867, 36868


FULL = "f:"  # marks a hash of the whole file


def full_hash(path: str) -> str:
    """A hash of the whole file, for when the cheap one cannot tell an edit apart."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)) if hasattr(hashlib, "file_digest") \
            else _digest_blocks(f)
    return FULL + digest.hexdigest()


def _digest_blocks(f):
    h = hashlib.blake2b(digest_size=16)
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h


def checksum(path: str) -> str:
    """CRC-32 of the whole file: not an identity (the content hash is), only the means to tell whether a
    file whose time changed still holds the same bytes. About 1 ms per 4 MB."""
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return f"crc32:{crc:08x}"


def checksum_bytes(data: bytes) -> str:
    """`checksum` of a file already read whole (the GPU pipeline reads JPEGs whole)."""
    return f"crc32:{zlib.crc32(data):08x}"


def is_full_hash(h: str) -> bool:
    return h.startswith(FULL)


def content_hash(path: str, size: int | None = None) -> str:
    """A cheap identity of a file's content: size + first 1 MiB + last 1 KiB."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size if size is None else size
        h = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=16)
        h.update(f.read(HEAD))
        if size > HEAD:
            f.seek(max(HEAD, size - TAIL))
            h.update(f.read(TAIL))
    return h.hexdigest()


@dataclass
class Meta:
    """What the catalog keeps about a photo's content (the same for every copy of it)."""
    width: int = 0
    height: int = 0
    taken_at: int = 0          # seconds, the camera's wall-clock time written as if it were UTC
    make: str = ""
    camera: str = ""
    lat: float | None = None
    lon: float | None = None
    format: str = ""
    checksum: str | None = None  # of the whole file (see `checksum`)

    def to_dict(self) -> dict:
        return asdict(self)


def wall_clock(timestamp: float) -> int:
    """A file time (UTC epoch) as local wall-clock seconds, the convention `Meta.taken_at` uses."""
    local = dt.datetime.fromtimestamp(timestamp)
    return int(local.replace(tzinfo=dt.timezone.utc).timestamp())


def _exif_time(value) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.strptime(value.strip()[:19].replace("-", ":"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return int(t.replace(tzinfo=dt.timezone.utc).timestamp())


def _degrees(value, ref) -> float | None:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    if not np.isfinite(deg):
        return None
    return -deg if str(ref).upper().startswith(("S", "W")) else deg


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 ").strip() if value else ""


def meta_of(img: Image.Image, mtime: float) -> Meta:
    """Metadata from an opened (not yet decoded) image: size as displayed, EXIF date, camera, GPS."""
    w, h = img.size
    meta = Meta(width=w, height=h, format=(img.format or "").upper())
    try:
        exif = img.getexif()
    except Exception:  # a damaged EXIF block never costs the photo
        exif = {}
    if exif:
        if exif.get(_ORIENTATION) in (5, 6, 7, 8):
            meta.width, meta.height = h, w
        meta.make, meta.camera = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
        try:
            sub = exif.get_ifd(_EXIF_IFD)
            meta.taken_at = (_exif_time(sub.get(_DATETIME_ORIGINAL)) or _exif_time(sub.get(_DATETIME_DIGITIZED))
                             or _exif_time(exif.get(_DATETIME)) or 0)
            gps = exif.get_ifd(_GPS_IFD)
            if gps:
                meta.lat, meta.lon = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
                if meta.lat is None or meta.lon is None:
                    meta.lat = meta.lon = None
        except Exception:
            pass
    if not meta.taken_at:
        meta.taken_at = wall_clock(mtime)
    return meta


def _with_raw(meta: Meta, raw: RawInfo | None) -> Meta:
    if raw:
        meta.format, meta.width, meta.height = raw.format, raw.width, raw.height
    return meta


def read_meta(path: str, mtime: float) -> Meta:
    """Metadata without decoding the pixels."""
    with image_errors():
        img, raw = open_photo(path)
        with img:
            return _with_raw(meta_of(img, mtime), raw)


def load(path: str, mtime: float, cfg: PreprocessConfig) -> tuple[np.ndarray, Meta]:
    """Decode a photo for the model: (float32 CHW array, metadata). Raises ImageError with the reason."""
    with image_errors():
        img, raw = open_photo(path)
        with img:
            meta = _with_raw(meta_of(img, mtime), raw)  # before decoding: draft() shrinks img.size
            return to_array(upright(img, cfg), cfg), meta
