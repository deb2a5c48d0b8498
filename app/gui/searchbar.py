"""The search field: query images as removable chips, then the text (`cat + snow - indoor`).

Typing searches after a short debounce (superqt's `qdebounced`); Enter searches at once; Esc clears.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass

from PySide6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QPalette, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QWidget
from superqt import QElidingLabel
from superqt.utils import qdebounced

from .thumbs import ThumbnailLoader
from .widgets import tool_button

DEBOUNCE_MS = 250
CHIP_ICON = 26       # px: the query picture in its chip
CHIP_TEXT_MIN = 96   # px: never cut the name to nothing
TOOLTIP_SIZE = 240   # px: the picture in the chip's tooltip


@dataclass(frozen=True)
class QueryImage:
    path: str
    kind: str = "image"  # image (a file) | similar (an indexed photo)

    @property
    def label(self) -> str:
        name = os.path.basename(self.path)
        return f"Like {name}" if self.kind == "similar" else name


class Chip(QFrame):
    removed = Signal(object)

    def __init__(self, image: QueryImage, thumbs: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self.image = image
        self.setObjectName("chip")
        self.setToolTip(image.path)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 0, 0, 0)
        lay.setSpacing(2)
        self.icon = QLabel(self)  # the picture in full colour (a disabled button greyed it out)
        self.icon.setFixedSize(CHIP_ICON, CHIP_ICON)
        self.icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.icon)
        self.text = QElidingLabel(image.label, self)
        self.text.setElideMode(Qt.TextElideMode.ElideMiddle)  # the start and the end of a name tell it apart
        self.text.setMinimumWidth(CHIP_TEXT_MIN)
        self.text.setMaximumWidth(180)
        lay.addWidget(self.text)
        self.close_button = tool_button(self, "×", "Remove this image from the query",
                                        lambda: self.removed.emit(self.image))
        lay.addWidget(self.close_button)
        self.thumbs = thumbs
        thumbs.loaded.connect(self._loaded)
        self._loaded(image.path)

    def _loaded(self, path: str) -> None:
        if path == self.image.path:
            pm = self.thumbs.pixmap(path)
            if pm is not None and not pm.isNull():
                self.icon.setPixmap(pm.scaled(CHIP_ICON, CHIP_ICON, Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation))
                self.setToolTip(chip_tooltip(self.image, pm))


def chip_tooltip(image: QueryImage, pm: QPixmap) -> str:
    """The picture, large enough to recognise, and its whole path (rich text; the picture inline as PNG)."""
    big = pm.scaled(TOOLTIP_SIZE, TOOLTIP_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    big.save(buffer, "PNG")
    what = "Photos like this one" if image.kind == "similar" else "This picture"
    return (f"<p><img src='data:image/png;base64,{bytes(data.toBase64()).decode()}'></p>"
            f"<p>{what}<br>{html.escape(image.path)}</p>")


class SearchBar(QFrame):
    changed = Signal()    # the query changed (debounced while typing)
    submitted = Signal()  # Enter, or a chip added or removed: search now
    paste_requested = Signal()  # Ctrl+V in the field when the clipboard holds an image or files

    def __init__(self, thumbs: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self.thumbs = thumbs
        self.images: list[QueryImage] = []
        self._chips: list[Chip] = []
        self.setObjectName("searchbar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(6, 3, 3, 3)
        self._layout.setSpacing(4)
        self.edit = QLineEdit(self)
        self.edit.setFrame(False)
        self.edit.setPlaceholderText("Describe a photo, or drop one here   (e.g. cat + snow - indoor)")
        self.edit.setClearButtonEnabled(False)
        self.edit.setAccessibleName("Search")
        self.edit.textEdited.connect(self._typed)
        self.edit.returnPressed.connect(self.submitted.emit)
        self.edit.installEventFilter(self)
        self._layout.addWidget(self.edit, 1)
        self.clear_button = tool_button(self, "×", "Clear the search (Esc)", self.clear)
        self._layout.addWidget(self.clear_button)
        font = self.edit.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.edit.setFont(font)
        self._update_clear()

    @property
    def text(self) -> str:
        return self.edit.text()

    def describe(self) -> str:
        """The query as a sentence names it: “red car”, or “this photo” for a picture alone."""
        pictures = "these photos" if len(self.images) > 1 else "this photo"
        if self.text.strip():
            return f"{pictures} and “{self.text.strip()}”" if self.images else f"“{self.text.strip()}”"
        return pictures

    def set_text(self, text: str) -> None:
        self.edit.setText(text)
        self._update_clear()

    @qdebounced(timeout=DEBOUNCE_MS)
    def _debounced(self) -> None:
        self.changed.emit()

    def _typed(self, _text: str) -> None:
        self._update_clear()
        self._debounced()

    def add_image(self, image: QueryImage) -> None:
        if image in self.images:
            return
        self.images.append(image)
        chip = Chip(image, self.thumbs, self)
        chip.removed.connect(self.remove_image)
        self._chips.append(chip)
        self._layout.insertWidget(len(self._chips) - 1, chip)
        self._update_clear()
        self.submitted.emit()

    def remove_image(self, image: QueryImage) -> None:
        for chip in list(self._chips):
            if chip.image == image:
                self._chips.remove(chip)
                self.images.remove(image)
                chip.hide()
                chip.deleteLater()
        self._update_clear()
        self.submitted.emit()

    def clear(self) -> None:
        had = bool(self.edit.text() or self.images)
        for chip in self._chips:
            chip.hide()  # at once: deleteLater waits for the event loop's next turn
            chip.deleteLater()
        self._chips.clear()
        self.images.clear()
        self.edit.clear()
        self._update_clear()
        if had:
            self.submitted.emit()

    def _update_clear(self) -> None:
        self.clear_button.setVisible(bool(self.edit.text() or self.images))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.edit and event.type() == QEvent.Type.KeyPress:
            if event.matches(QKeySequence.StandardKey.Paste):
                from PySide6.QtWidgets import QApplication

                mime = QApplication.clipboard().mimeData()
                if mime is not None and (mime.hasImage() or mime.hasUrls()):
                    self.paste_requested.emit()
                    return True
            elif event.key() == Qt.Key.Key_Escape and (self.edit.text() or self.images):
                self.clear()
                return True
            elif event.key() == Qt.Key.Key_Backspace and not self.edit.text() and self.images:
                self.remove_image(self.images[-1])
                return True
        return super().eventFilter(obj, event)
