"""The window's keys and menus: its shortcuts, and the context menu of the results."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QMenu

from . import actions


def install_shortcuts(w) -> None:
    """`w`: the main window."""
    shortcuts = [
        (QKeySequence.StandardKey.Find, w.focus_search),
        (QKeySequence(Qt.Key.Key_Escape), w.escape),
        (QKeySequence.StandardKey.Paste, w.drops.paste),
        (QKeySequence.StandardKey.Preferences, w.open_settings),
        (QKeySequence("Ctrl+,"), w.open_settings),
        (QKeySequence("Ctrl+L"), lambda: w.library_button.toggle()),
        (QKeySequence("Ctrl+Q"), w.close),  # not StandardKey.Quit: it has no key on Windows (or offscreen)
        (QKeySequence.StandardKey.ZoomIn, lambda: w.view.zoom(1)),
        (QKeySequence("Ctrl+="), lambda: w.view.zoom(1)),
        (QKeySequence.StandardKey.ZoomOut, lambda: w.view.zoom(-1)),
    ]
    for key, slot in shortcuts:
        QShortcut(key, w, activated=slot)


def copy_paths(w, paths: list[str]) -> None:
    actions.copy_paths(paths)
    w.status_text.setText(f"Copied {paths[0]}" if len(paths) == 1 else f"Copied {len(paths)} paths")


def results_menu(w, pos: QPoint) -> None:
    """Right click on a result: preview, find similar, open, show in folder, copy the path(s)."""
    index = w.view.indexAt(pos)
    if not index.isValid():
        return
    if not w.view.selectionModel().isSelected(index):
        w.view.setCurrentIndex(index)
    paths = w.selected_paths()
    path = w.model.result(index.row()).path
    menu = QMenu(w)
    menu.addAction("Preview", lambda: w.open_preview(index))
    menu.addAction("Find similar", lambda: w.find_similar(path))
    menu.addSeparator()
    menu.addAction("Open", lambda: [actions.open_in_viewer(p) for p in paths])
    menu.addAction("Show in folder", lambda: actions.reveal(path))
    menu.addAction("Copy path" if len(paths) == 1 else f"Copy {len(paths)} paths", lambda: copy_paths(w, paths))
    menu.exec(w.view.viewport().mapToGlobal(pos))
