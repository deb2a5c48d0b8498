"""Reading one photo: its content hash, its metadata (EXIF), and its pixels ready for the model.

The content hash (BLAKE2b of the size, the first MiB and the last KiB) identifies a file's content
cheaply: a moved, renamed or copied photo has the same hash and keeps its vector. Camera RAW files
are read through the JPEG preview they embed (rawpy), which is what their thumbnails show anyway.
Pillow's decompression-bomb guard stays on. Originals are only ever opened for reading.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass, asdict

import numpy as np
from PIL import Image

from model.errors import ImageError
from model.preprocess import PreprocessConfig, image_errors, to_array, upright

from .formats import is_raw

try:  # HEIC/HEIF (iPhone photos)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - it is a dependency
    pillow_heif = None

HEAD = 1 << 20
TAIL = 1 << 10

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 271, 272, 274, 306
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 36867, 36868


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


@dataclass(frozen=True)
class RawInfo:
    format: str
    width: int
    height: int


def open_photo(path: str) -> tuple[Image.Image, RawInfo | None]:
    """Open a photo lazily. RAW files give their embedded preview, plus the RAW's own format and size."""
    if not is_raw(path):
        return Image.open(path), None
    try:
        import rawpy
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise ImageError("RAW files need rawpy (pip install rawpy)") from e
    try:
        with rawpy.imread(path) as raw:
            thumb = raw.extract_thumb()
            s = raw.sizes
            w, h = (s.height, s.width) if s.flip in (5, 6) else (s.width, s.height)
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise ImageError(f"RAW file without a readable preview ({type(e).__name__})") from e
    if thumb.format == rawpy.ThumbFormat.JPEG:
        img = Image.open(io.BytesIO(thumb.data))
    else:
        img = Image.fromarray(np.asarray(thumb.data))
    return img, RawInfo(os.path.splitext(path)[1].lstrip(".").upper(), w, h)


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
