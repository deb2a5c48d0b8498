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
from PIL import Image

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


def decode(path: str | Path, longest: int | None = None) -> Image.Image:
    """A photo as an upright RGB image. With `longest`, a JPEG is decoded at the smallest DCT scale whose
    sides still cover `longest` pixels (up to 8x less work), before its EXIF orientation is applied."""
    from .preprocess import upright_rgb

    with image_errors():
        img, _ = open_photo(path)
        with img:
            return upright_rgb(img, longest)
