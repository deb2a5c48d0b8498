"""The library panel: watched folders with their counts and state, and the files that could not be read."""
from __future__ import annotations

import os
import re

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from app.library.status import FolderStatus, LibraryStatus

from .widgets import list_tree


def short_path(path: str) -> str:
    """A path as people read it: the home folder as ~."""
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home not in ("", "/") and (path + os.sep).startswith(home + os.sep) else path


def short_state(root: str, problem: str | None) -> str:
    """A folder's state in a few words for its cell ("Folder not found"), which a narrow panel shows in
    full; the whole sentence ("…; its photos are kept") is the cell's tooltip."""
    if not problem:
        return "Watched"
    words = problem[len(root) + 2:] if problem.startswith(root + ": ") else problem
    words = re.split(r" \(|;| but ", words, maxsplit=1)[0].strip() or problem
    return words[:1].upper() + words[1:]


def start_folder(where: QStandardPaths.StandardLocation = QStandardPaths.StandardLocation.PicturesLocation) -> str:
    """Where a folder dialog opens: the user's Pictures folder (or `where`) when it exists, else home."""
    path = QStandardPaths.writableLocation(where)
    return path if path and os.path.isdir(path) else os.path.expanduser("~")


def choose_folder(parent: QWidget) -> str | None:
    path = QFileDialog.getExistingDirectory(parent, "Add a photo folder", start_folder())
    return path or None


class FoldersView(QWidget):
    """Folders with photo counts and state; add (dialog or drop on the window), remove, rescan."""
    add_requested = Signal(object)
    remove_requested = Signal(object)
    rescan_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.tree = list_tree(self, ["Folder", "Photos", "Unreadable", "State"], "Watched folders")
        self.tree.setTextElideMode(Qt.TextElideMode.ElideLeft)  # a folder's own name is its end
        for col in (1, 2, 3):
            self.tree.header().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._selection)
        lay.addWidget(self.tree)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add folder…", self)
        self.add_button.clicked.connect(self._add)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self._remove)
        self.rescan_button = QPushButton("Rescan", self)
        self.rescan_button.setToolTip("Look through every folder for changes now")
        self.rescan_button.clicked.connect(self.rescan_requested.emit)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        buttons.addWidget(self.rescan_button)
        lay.addLayout(buttons)

    def set_folders(self, folders: dict[str, FolderStatus]) -> None:
        selected = self.selected()
        self.tree.clear()
        for root, info in folders.items():
            state = short_state(root, info.problem)
            item = QTreeWidgetItem([short_path(root), f"{info.photos:,}", f"{info.errors:,}", state])
            item.setData(0, Qt.ItemDataRole.UserRole, root)
            item.setToolTip(0, root)
            item.setToolTip(3, info.problem or state)
            for col in (1, 2):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.tree.addTopLevelItem(item)
            if root == selected:
                item.setSelected(True)
        self._selection()

    def selected(self) -> str | None:
        items = self.tree.selectedItems()
        return items[0].data(0, Qt.ItemDataRole.UserRole) if items else None

    def _selection(self) -> None:
        self.remove_button.setEnabled(self.selected() is not None)

    def _add(self) -> None:
        path = choose_folder(self)
        if path:
            self.add_requested.emit(path)

    def _remove(self) -> None:
        root = self.selected()
        if root is None:
            return
        answer = QMessageBox.question(
            self, "Remove folder", f"Stop searching {root}?\n\nIts photos leave the library; "
            "the files themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_requested.emit(root)


class LibraryPanel(QWidget):
    reveal_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.setMinimumWidth(400)
        self.summary = QLabel("Opening the library…", self)
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.folders = FoldersView(self)
        lay.addWidget(self.folders, 2)
        self.errors_title = QLabel("<b>Files that could not be read</b>", self)
        lay.addWidget(self.errors_title)
        self.errors = list_tree(self, ["File", "Reason"], "Files that could not be read")
        self.errors.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.errors.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.errors.header().setStretchLastSection(True)
        self.errors.setColumnWidth(0, 180)
        self.errors.itemActivated.connect(lambda item, _col: self.reveal_requested.emit(
            item.data(0, Qt.ItemDataRole.UserRole)))
        lay.addWidget(self.errors, 1)

    def set_status(self, status: LibraryStatus) -> None:
        model = status.active_model or "no model yet"
        nxt = f" (preparing {status.next_model})" if status.next_model else ""
        self.summary.setText(f"<b>{status.photos:,}</b> photos searchable · {status.errors:,} unreadable · "
                             f"model: {model}{nxt}")
        self.folders.set_folders(status.folders)

    def set_errors(self, rows: list[dict]) -> None:
        self.errors.clear()
        self.errors_title.setText(f"<b>Files that could not be read ({len(rows):,})</b>")
        for r in rows:
            item = QTreeWidgetItem([os.path.basename(r["path"]), r["error"] or "unknown error"])
            item.setData(0, Qt.ItemDataRole.UserRole, r["path"])
            item.setToolTip(0, r["path"])
            item.setToolTip(1, r["error"] or "")
            self.errors.addTopLevelItem(item)
