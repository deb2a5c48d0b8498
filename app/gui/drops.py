"""What a drop or a paste holds: image files to search with, folders to add, raw image data, or junk."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage

from app.library.formats import extension, PHOTO_EXTENSIONS  # light: no catalog, no decoders


@dataclass
class Dropped:
    images: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # files Glimpse cannot search with
    image_data: QImage | None = None                   # pixels with no file (a browser, a screenshot tool)

    @property
    def useful(self) -> bool:
        return bool(self.images or self.folders or self.image_data is not None)

    def rejection(self) -> str:
        names = ", ".join(os.path.basename(p) or p for p in self.rejected[:3])
        more = f" and {len(self.rejected) - 3} more" if len(self.rejected) > 3 else ""
        return (f"{names}{more}: not an image Glimpse can search with. "
                "Drop photos (JPEG, PNG, HEIC, RAW…) to find similar ones, or a folder to add it to the library.")


def may_hold_something(mime: QMimeData) -> bool:
    """Whether a drag is worth accepting (checked on drag-enter, before the data is read)."""
    return mime.hasUrls() or mime.hasImage()


def classify(mime: QMimeData) -> Dropped:
    out = Dropped()
    for url in mime.urls():
        if not url.isLocalFile():
            out.rejected.append(url.toString())
            continue
        path = os.path.abspath(url.toLocalFile())
        if os.path.isdir(path):
            out.folders.append(path)
        elif os.path.isfile(path) and extension(path) in PHOTO_EXTENSIONS:
            out.images.append(path)
        else:
            out.rejected.append(path)
    if not out.images and mime.hasImage():
        image = mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            out.image_data = image
    return out


def save_query_image(image: QImage, folder: Path) -> str:
    """Pasted or dragged-in pixels become a PNG under the cache folder, so they can be a query term."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("pasted-*.png"))[:-20]:  # keep the last few
        old.unlink(missing_ok=True)
    path = folder / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}.png"
    if not image.save(str(path), "PNG"):
        raise OSError(f"could not save the pasted image to {path}")
    return str(path)
