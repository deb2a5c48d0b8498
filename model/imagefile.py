"""The one place that reads image files: indexing, query images, thumbnails, the preview and training.

`open_photo` opens any supported file lazily (HEIC through pillow-heif; camera RAW through the JPEG
preview it embeds, via rawpy, which is what its thumbnail shows anyway); `decode` gives the upright RGB
image, at a reduced JPEG scale when the model needs less. Whatever a decoder raises becomes an
`ImageError` whose message is the reason shown to the user, and the warnings Pillow prints for odd but
readable files (a malformed MPO, a truncated EXIF block) are kept off the user's terminal. Pillow's
decompression-bomb guard stays on. Files are only ever opened for reading.
"""
from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF (iPhone photos)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - it is a dependency
    pillow_heif = None

# Camera RAW: read through the JPEG preview embedded in the file.
RAW_EXTENSIONS = frozenset({".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2",
                            ".raf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl"})


# Pillow's warnings about odd but readable files ("malformed MPO", "corrupt EXIF data", a large image)
# are for developers. Set once for the process: `catch_warnings` per call is not thread-safe, and the
# decoders run on many threads.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image that cannot be decoded or converted; the message is the reason."""


@contextmanager
def image_errors() -> Iterator[None]:
    """Turn whatever Pillow (or a plugin) raises while decoding into `ImageError` with a plain reason."""
    try:
        yield
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"image too large to decode safely ({e})") from e
    except FileNotFoundError as e:
        raise ImageError("file not found") from e
    except PermissionError as e:
        raise ImageError("permission denied") from e
    except IsADirectoryError as e:
        raise ImageError("a folder, not an image") from e
    except Image.UnidentifiedImageError as e:
        raise ImageError("not an image, or a format Glimpse cannot read") from e
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise ImageError(f"corrupt or truncated image ({e})") from e


def is_raw(path: str | Path) -> bool:
    return os.path.splitext(str(path))[1].lower() in RAW_EXTENSIONS


@dataclass(frozen=True)
class RawInfo:
    format: str
    width: int
    height: int


def open_photo(path: str | Path) -> tuple[Image.Image, RawInfo | None]:
    """Open a photo lazily. RAW files give their embedded preview, plus the RAW's own format and size.
    Call inside `image_errors()`."""
    path = str(path)
    if not is_raw(path):
        return Image.open(path), None
    try:
        import rawpy
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise ImageError("RAW files need rawpy (pip install rawpy)") from e
    try:
        # LibRaw takes a UTF-8 path; a name that is not UTF-8 is handed over as an open file instead.
        with (rawpy.imread(path) if path.isascii() or _utf8(path) else _raw_from_file(rawpy, path)) as raw:
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


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _raw_from_file(rawpy, path: str):
    with open(path, "rb") as f:
        return rawpy.imread(f)


def upright_rgb(img: Image.Image, longest: int | None = None) -> Image.Image:
    """Load an opened image (a JPEG at the smallest DCT scale covering `longest`), apply EXIF orientation, RGB."""
    with image_errors():
        if longest and img.format == "JPEG":
            img.draft("RGB", (longest, longest))
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow image to 8-bit RGB: palette, CMYK, 16-bit and float, with or without alpha."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_to_uint8(np.asarray(img)), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise ImageError(f"unsupported colour mode {mode}") from e


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale a 16-bit, 32-bit or float greyscale array to 0..255."""
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float64))
        hi = max(1.0, float(a.max(initial=0.0)))
    else:
        hi = 65535.0 if a.max(initial=0) > 255 else 255.0
    return np.clip(a * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)


def decode(path: str | Path, longest: int | None = None) -> Image.Image:
    """A photo as an upright RGB image. With `longest`, a JPEG is decoded at the smallest DCT scale whose
    sides still cover `longest` pixels (up to 8x less work), before its EXIF orientation is applied."""
    with image_errors():
        img, _ = open_photo(path)
        with img:
            return upright_rgb(img, longest)
