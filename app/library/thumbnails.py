"""Thumbnails, cached on disk under the cache folder.

Made with JPEG draft decoding (a 12 MP photo decodes at 1/8 scale), EXIF orientation applied, saved as
JPEG. The cache key covers the path, size, mtime and thumbnail size, so an edited photo gets a new
thumbnail; files are written atomically, so a killed process never leaves half a thumbnail.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image

from model.imagefile import decode, image_errors



class Thumbnails:
    def __init__(self, folder: Path, size: int = 256):
        self.folder = Path(folder)
        self.size = size

    def key(self, path: str, size_bytes: int, mtime_ns: int) -> str:
        text = f"{path}\0{size_bytes}\0{mtime_ns}\0{self.size}"
        return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()  # any file name

    def cached(self, path: str) -> Path:
        """Where the thumbnail of `path` as it is now lives (it may not exist yet)."""
        st = os.stat(path)
        key = self.key(os.path.abspath(path), st.st_size, st.st_mtime_ns)
        return self.folder / key[:2] / f"{key}.jpg"

    def get(self, path: str) -> Path:
        """The thumbnail file for `path`, made if needed. Raises ImageError for an unreadable photo."""
        with image_errors():
            target = self.cached(path)
            if target.exists():
                return target
            thumb = decode(path, self.size)
            thumb.thumbnail((self.size, self.size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    thumb.save(f, "JPEG", quality=85, optimize=True)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
            return target
