"""Small widget makers the window's parts share."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QHeaderView, QToolButton, QTreeWidget, QWidget


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
