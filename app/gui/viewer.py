"""The preview: one photo large (EXIF orientation applied), its details, its caption, and ←/→ through the results.

The caption field shows the photo's caption and where it came from. A typed caption (or none) is
edited in place; a caption from the photo's files (XMP, a sidecar, captions.csv…) shows read-only,
with Override to type one of Glimpse's own instead (the files are never written). It is saved on Enter
or when the field loses focus, through `caption_sink` (the backend, off the GUI thread); fine-tuning
learns from it.
"""
from __future__ import annotations

import os
from collections import OrderedDict

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QSizePolicy, QVBoxLayout,
                               QWidget)
from superqt import QElidingLabel
from superqt.utils import create_worker

from app.library.units import human_size

from .results import when
from .widgets import tool_button

MAX_SIDE = 2560  # decoded size: sharp on a 4K screen, 1/2 or 1/4 JPEG scale for a camera photo
KEEP_DECODED = 5  # photos kept decoded: the one shown, its neighbours, the last two seen
# Where a caption came from, as the preview says it.
CAPTION_SOURCES = {"typed": "typed", "xmp": "from XMP", "iptc": "from IPTC", "exif": "from EXIF",
                   "xmp-sidecar": "from an XMP sidecar", "takeout": "from Google Takeout",
                   "captions.csv": "from captions.csv", "metadata.csv": "from metadata.csv",
                   "metadata.jsonl": "from metadata.jsonl", "album": "from the album's name"}


def load_preview(path: str, max_side: int = MAX_SIDE) -> QImage:
    """Decode a photo for the screen (worker thread). RAW and HEIC as the indexer reads them."""
    from PIL import Image

    from model.imagefile import decode, image_errors

    img = decode(path, max_side)
    with image_errors():
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    data = img.tobytes("raw", "RGB")
    return QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888).copy()


class ImageCanvas(QWidget):
    """Paints a pixmap scaled to fit, centred, never enlarged past 2× (small photos stay sharp)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.note = ""
        self.provisional = False
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)

    def set_image(self, image: QImage | QPixmap | None, note: str = "", provisional: bool = False) -> None:
        """`provisional`: a thumbnail standing in until the photo is decoded, scaled up to fit."""
        self.pixmap = QPixmap.fromImage(image) if isinstance(image, QImage) else image
        self.note = note
        self.provisional = provisional
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Window).darker(115))
        if self.pixmap is not None and not self.pixmap.isNull():
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            dpr = self.devicePixelRatioF()
            native = QSize(int(self.pixmap.width() * 2 / dpr), int(self.pixmap.height() * 2 / dpr))
            area = self.rect().adjusted(8, 8, -8, -8).size()
            if not self.provisional:
                area = area.boundedTo(native)
            size = self.pixmap.size().scaled(area, Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(self.rect().center())
            p.drawPixmap(target, self.pixmap)
        elif self.note:
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.note)
        p.end()


class CaptionEdit(QLineEdit):
    """Enter saves and Esc reverts; neither reaches the preview (where they open or close the photo)."""
    done = Signal()  # the user is finished with the field: the preview takes the keys again

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.original = ""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            super().keyPressEvent(event)  # editingFinished: the field saves
            event.accept()
            self.done.emit()
        elif key == Qt.Key.Key_Escape:
            self.setText(self.original)
            self.done.emit()
            event.accept()
        else:
            super().keyPressEvent(event)


class CaptionField(QWidget):
    """The caption, its source, and Override for a caption that comes from the photo's files."""
    edited = Signal(object, str)  # path, text ("" clears a typed caption)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = ""
        self.source: str | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.edit = CaptionEdit(self)
        self.edit.setAccessibleName("Caption")
        self.edit.editingFinished.connect(self.commit)
        lay.addWidget(self.edit)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        self.origin = QLabel("", self)
        self.origin.setStyleSheet("color: palette(placeholder-text)")
        self.override = tool_button(self, "Override", "Type your own caption instead (the file is not changed)",
                                    self.start_override)
        row.addWidget(self.origin, 1)
        row.addWidget(self.override)
        lay.addLayout(row)
        self.show_caption("", None, None)

    def show_caption(self, path: str, text: str | None, source: str | None, loading: bool = False,
                     editable: bool = True) -> None:
        """What the catalog holds for `path`: typed or none is editable, a file's caption read-only."""
        self.path, self.source = path, source
        self.edit.original = text or ""
        self.edit.setText(text or "")
        from_file = source is not None and source != "typed"
        self._read_only(from_file or loading or not editable)
        self.edit.setPlaceholderText("…" if loading else "Add a caption (Enter saves)" if editable else "")
        self.origin.setText(CAPTION_SOURCES.get(source, f"from {source}") if source else "")
        self.origin.setVisible(bool(source))
        self.override.setVisible(from_file and not loading and editable)
        self.edit.setToolTip("From the photo's files; Override to type your own" if from_file else
                             "Your caption for this photo: fine-tuning learns from it")

    def _read_only(self, on: bool) -> None:
        self.edit.setReadOnly(on)
        self.edit.setStyleSheet("QLineEdit { background: palette(window); }" if on else "")  # not for typing

    def start_override(self) -> None:
        self._read_only(False)
        self.override.setVisible(False)
        self.origin.setText(f"{self.origin.text()}; type to override")
        self.edit.setFocus()
        self.edit.selectAll()

    def commit(self) -> None:
        """Save a changed caption (on Enter, focus out, or moving to another photo)."""
        if self.edit.isReadOnly() or not self.path:
            return
        text = self.edit.text().strip()
        if text == self.edit.original.strip():
            return
        if not text and self.source != "typed":
            return  # nothing typed, nothing to clear
        self.edit.original = text
        self.edited.emit(self.path, text)


class Viewer(QWidget):
    closed = Signal()
    moved = Signal(int)          # the row now shown
    find_similar = Signal(object)
    open_requested = Signal(object)
    reveal_requested = Signal(object)
    copy_requested = Signal(object)

    def __init__(self, details_source, parent: QWidget | None = None, caption_sink=None, thumbnail_source=None):
        """`details_source(path, done)` fetches the catalog row of a photo off the GUI thread (with its
        "caption" and "caption_source"); `caption_sink(path, text, done)` saves a typed caption off it, and
        `done({"caption", "caption_source"})` follows. Without a sink the caption is shown read-only.
        `thumbnail_source(path)`: the grid's thumbnail (a QPixmap) or None, shown scaled up at once while
        the photo decodes; the neighbours are decoded ahead, so an arrow step shows the photo at once."""
        super().__init__(parent)
        self.details_source = details_source
        self.caption_sink = caption_sink
        self.paths: list[str] = []
        self.row = -1
        self.loaded_path: str | None = None  # the path whose pixels are on screen
        self.thumbnail_source = thumbnail_source
        self._decoded: OrderedDict[str, QImage] = OrderedDict()  # the last photos decoded, newest last
        self._decoding: set[str] = set()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 0)
        self.back = tool_button(self, "← Results", "Back to the results (Esc)", self.closed.emit)
        self.prev = tool_button(self, "‹", "Previous photo (←)", lambda: self.step(-1))
        self.next = tool_button(self, "›", "Next photo (→)", lambda: self.step(1))
        self.title = QElidingLabel("", self)
        self.title.setElideMode(Qt.TextElideMode.ElideMiddle)
        bar.addWidget(self.back)
        bar.addWidget(self.prev)
        bar.addWidget(self.next)
        bar.addWidget(self.title, 1)
        for text, tip, signal in (("Find similar", "Search for photos like this one", self.find_similar),
                                  ("Open", "Open in the default viewer", self.open_requested),
                                  ("Show in folder", "Reveal in the file manager", self.reveal_requested),
                                  ("Copy path", "Copy the file's path", self.copy_requested)):
            bar.addWidget(tool_button(self, text, tip, lambda s=signal: s.emit(self.current_path)))
        outer.addLayout(bar)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        self.canvas = ImageCanvas(self)
        body.addWidget(self.canvas, 1)
        self.info = QFrame(self)
        self.info.setFrameShape(QFrame.Shape.StyledPanel)
        self.info.setFixedWidth(260)
        form = QFormLayout(self.info)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        self.caption = CaptionField(self.info)
        self.caption.edited.connect(self._caption_edited)
        self.caption.edit.done.connect(self.setFocus)
        form.addRow("<b>Caption</b>", self.caption)
        self.fields: dict[str, QLabel] = {}
        for key in ("Date", "Camera", "Dimensions", "File size", "Format", "Location", "Folder"):
            label = QLabel("–", self.info)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"<b>{key}</b>", label)
            self.fields[key] = label
        body.addWidget(self.info)
        outer.addLayout(body, 1)

    @property
    def current_path(self) -> str:
        return self.paths[self.row] if 0 <= self.row < len(self.paths) else ""

    def show_results(self, results: list, row: int, total: str | None = None) -> None:
        """`total`: how many there are in all, as said ("1,203", "200+"), when more than `results`."""
        self.total = total or f"{len(results):,}"
        self.results = results
        self.paths = [r.path for r in results]
        self.show_row(row)

    def show_row(self, row: int) -> None:
        if not 0 <= row < len(self.paths):
            return
        self.caption.commit()  # an edit in progress belongs to the photo it was typed for
        self.row = row
        path = self.paths[row]
        r = self.results[row]
        name = os.path.basename(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self.title.setText(f"{name}   ·   {row + 1:,} of {self.total}")
        self.prev.setEnabled(row > 0)
        self.next.setEnabled(row < len(self.paths) - 1)
        if path in self._decoded:
            self._decoded.move_to_end(path)
            self._shown(path, self._decoded[path], "")
        else:
            thumb = self.thumbnail_source(path) if self.thumbnail_source else None
            if thumb is not None and not thumb.isNull():
                self.canvas.set_image(thumb, "", provisional=True)  # sharpened when the photo arrives
            else:
                self.canvas.set_image(None, "Loading…")
            self._decode(path)
        self.fields["Date"].setText(when(r.taken_at))
        self.fields["Dimensions"].setText(f"{r.width} × {r.height}")
        self.fields["File size"].setText(human_size(r.size))
        self.fields["Folder"].setText(os.path.dirname(path))
        for key in ("Camera", "Format", "Location"):
            self.fields[key].setText("…")
        self.caption.show_caption(path, None, None, loading=True)
        self.details_source(path, lambda row_, p=path: self._details(p, row_))
        for near in (row + 1, row - 1):  # ahead, for the next arrow step
            if 0 <= near < len(self.paths):
                self._decode(self.paths[near])
        self.moved.emit(row)

    def _decode(self, path: str) -> None:
        if path in self._decoded or path in self._decoding:
            return
        self._decoding.add(path)
        create_worker(load_preview, path, _connect={"returned": lambda img, p=path: self._decoded_image(p, img),
                                                    "errored": lambda e, p=path: self._failed(p, str(e))},
                      _ignore_errors=True)

    def _decoded_image(self, path: str, image: QImage) -> None:
        self._decoding.discard(path)
        self._decoded[path] = image
        while len(self._decoded) > KEEP_DECODED:
            self._decoded.popitem(last=False)
        if path == self.current_path:
            self._shown(path, image, "")

    def _failed(self, path: str, error: str) -> None:
        self._decoding.discard(path)
        if path == self.current_path:
            self._shown(path, None, error)

    def _shown(self, path: str, image: QImage | None, error: str) -> None:
        if path != self.current_path:
            return  # the user has moved on
        self.loaded_path = path
        self.canvas.set_image(image, f"Cannot show this photo: {error}" if error else "")

    def _details(self, path: str, row: dict) -> None:
        if path != self.current_path:
            return
        camera = " ".join(x for x in (row.get("make"), row.get("camera")) if x)
        self.fields["Camera"].setText(camera or "–")
        self.fields["Format"].setText(row.get("format") or "–")
        lat, lon = row.get("lat"), row.get("lon")
        self.fields["Location"].setText(f"{lat:.5f}, {lon:.5f}" if lat is not None and lon is not None else "–")
        self.caption.show_caption(path, row.get("caption"), row.get("caption_source"),
                                  editable=self.caption_sink is not None)

    def _caption_edited(self, path: str, text: str) -> None:
        if self.caption_sink is not None:
            self.caption_sink(path, text, lambda fields, p=path: self._caption_saved(p, fields))

    def _caption_saved(self, path: str, fields: dict) -> None:
        if path == self.current_path and not (self.caption.edit.hasFocus() and not self.caption.edit.isReadOnly()):
            self.caption.show_caption(path, fields.get("caption"), fields.get("caption_source"))

    def step(self, delta: int) -> None:
        self.show_row(self.row + delta)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step(-1)
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_PageDown, Qt.Key.Key_Space):
            self.step(1)
        elif key == Qt.Key.Key_Home:
            self.show_row(0)
        elif key == Qt.Key.Key_End:
            self.show_row(len(self.paths) - 1)
        elif key in (Qt.Key.Key_Escape, Qt.Key.Key_Backspace):
            self.closed.emit()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_requested.emit(self.current_path)
        else:
            super().keyPressEvent(event)
