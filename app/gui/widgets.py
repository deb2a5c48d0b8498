"""Small widget makers the window's parts share."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import QHeaderView, QLabel, QToolButton, QTreeWidget, QWidget


def tool_button(parent: QWidget, text: str, tip: str, slot: Callable | None = None, *, flat: bool = True,
                checkable: bool = False) -> QToolButton:
    b = QToolButton(parent)
    b.setText(text)
    b.setToolTip(tip)
    b.setAutoRaise(flat)
    b.setCheckable(checkable)
    if slot is not None:
        b.clicked.connect(slot)
    return b


def list_tree(parent: QWidget, labels: list[str], name: str = "") -> QTreeWidget:
    """A flat list with columns; the first column takes the spare width."""
    tree = QTreeWidget(parent)
    tree.setHeaderLabels(labels)
    tree.setRootIsDecorated(False)
    tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    if name:
        tree.setAccessibleName(name)
    return tree


class Notice(QLabel):
    """A message the user should read, shown in a framed box for `ms` milliseconds."""

    def __init__(self, parent: QWidget, ms: int):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setVisible(False)
        self.setObjectName("notice")
        self._restyling = False
        self._style()
        self.timer = QTimer(self, singleShot=True, interval=ms, timeout=self.hide)

    def _style(self) -> None:
        self._restyling = True
        self.setStyleSheet("#notice { background: palette(alternate-base); border: 1px solid palette(mid);"
                           " border-radius: 4px; padding: 6px; }")
        self._restyling = False

    def changeEvent(self, event) -> None:
        # A style sheet takes palette colours when it is set: a switch to the dark theme sets it again.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange) and not self._restyling:
            self._style()
        super().changeEvent(event)

    def show_text(self, text: str) -> None:
        self.setText(text)
        self.show()
        self.timer.start()
