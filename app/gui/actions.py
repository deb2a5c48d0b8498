"""What the user can do with a photo outside Glimpse: open it, show it in the file manager, copy its path."""
from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication


def open_in_viewer(path: str) -> bool:
    """The system's default application for the file."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def reveal(path: str) -> bool:
    """Show the file selected in the file manager (its folder where selecting is not possible)."""
    try:
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", path])
            return True
        if sys.platform == "win32":
            subprocess.Popen(["explorer", f"/select,{os.path.normpath(path)}"])
            return True
        if _freedesktop_show_item(path):
            return True
    except OSError:
        pass
    return QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))


def _freedesktop_show_item(path: str) -> bool:
    """org.freedesktop.FileManager1.ShowItems (Nautilus, Dolphin, Nemo, Thunar…) selects the file.
    Sent without waiting for a reply, and only to a file manager already running."""
    try:
        from PySide6.QtDBus import QDBusConnection, QDBusMessage
    except ImportError:
        return False
    bus = QDBusConnection.sessionBus()
    service = "org.freedesktop.FileManager1"
    if not bus.isConnected() or not bus.interface().isServiceRegistered(service).value():
        return False
    msg = QDBusMessage.createMethodCall(service, "/org/freedesktop/FileManager1", service, "ShowItems")
    msg.setArguments([[QUrl.fromLocalFile(path).toString()], ""])
    return bus.send(msg)


def copy_paths(paths: list[str]) -> None:
    """Plain text for terminals and editors, file URLs for file managers."""
    from PySide6.QtCore import QMimeData

    data = QMimeData()
    data.setText("\n".join(paths))
    data.setUrls([QUrl.fromLocalFile(p) for p in paths])
    QGuiApplication.clipboard().setMimeData(data)
