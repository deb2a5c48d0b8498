"""What a drop or a paste holds: image files to search with, folders to add, raw image data, or junk;
and `DropHandler`, which takes drops on the window and pastes and says what they hold."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from superqt.utils import create_worker

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


class DropHandler(QObject):
    """Drops on the widget it filters, and pastes: images become query terms, folders are to be added,
    anything else is explained. Pixels without a file are saved as a PNG off the GUI thread first."""
    images = Signal(list)   # image files to search with
    folders = Signal(list)  # folders to add to the library
    notice = Signal(str)    # a line for the user

    def __init__(self, cache: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.cache = cache

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if may_hold_something(event.mimeData()):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop:
            self.take(event.mimeData())
            event.acceptProposedAction()
            return True
        return super().eventFilter(obj, event)

    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        if mime is None or not (mime.hasImage() or mime.hasUrls()):
            self.notice.emit("The clipboard holds no image. Copy a photo (or an image file) first, then paste.")
            return
        self.take(mime)

    def take(self, mime: QMimeData) -> None:
        dropped = classify(mime)
        if dropped.image_data is not None:
            create_worker(save_query_image, dropped.image_data, self.cache / "queries", _ignore_errors=True,
                          _connect={"returned": lambda path: self.images.emit([path]),
                                    "errored": lambda e: self.notice.emit(f"Could not use the pasted image: {e}")})
        if dropped.rejected:
            self.notice.emit(dropped.rejection())
        if dropped.folders:
            self.folders.emit(dropped.folders)
        if dropped.images:
            self.images.emit(dropped.images)
