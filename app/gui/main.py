"""Start the window: Qt first, the window on screen, then the library opens in the background."""
from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

ICON = Path(__file__).resolve().parents[2] / "resources" / "icons" / "glimpse.svg"


def no_display() -> str | None:
    """Why the window cannot open here (one line), or None. Qt itself would abort with advice to reinstall."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set); run `glimpse` "
            "on your desktop, or use the command line (`glimpse --help`)")


def run(argv: list[str] | None = None) -> int:
    why = no_display()
    if why:
        print(f"glimpse: {why}", file=sys.stderr)
        return 1
    import signal

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["glimpse", *(argv or [])])  # argv[0] names the window class
    app.setApplicationName("Glimpse")
    app.setApplicationDisplayName("Glimpse")
    app.setOrganizationName("Glimpse")
    app.setDesktopFileName("glimpse")
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))

    from app.library.paths import Paths

    from .single import Instance, forward, server_name

    name = server_name(Paths.default().data)
    instance = Instance(name, app)
    if forward(name) or not instance.listen():
        print("Glimpse is already open: its window was brought forward.")
        return 0

    from .window import MainWindow

    window = MainWindow()
    instance.activated.connect(lambda: bring_forward(window))
    window.show()
    # Ctrl+C in the terminal closes the window as its close button does (saving state, stopping jobs).
    # Python runs signal handlers only between bytecodes, so a timer hands it control now and then.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer(window)
    wake.timeout.connect(lambda: None)
    wake.start(250)
    probe = os.environ.get("GLIMPSE_STARTUP_PROBE")
    if probe:
        QTimer.singleShot(0, lambda: _report_start(window, probe))
    else:
        QTimer.singleShot(0, window.start)
    # What start-up built lives as long as the window: set it aside from the garbage collector, so that a
    # full collection walks only what came after (each one otherwise stalls the GUI thread longer).
    QTimer.singleShot(2000, gc.freeze)
    return app.exec()


def bring_forward(window) -> None:
    """Show the window on top, restored if minimised (another launch asked for it)."""
    from PySide6.QtCore import Qt

    window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()


def _report_start(window, path: str) -> None:
    """For benchmarks/startup.py: when the first frame is out, record the time and what was imported."""
    window.repaint()
    Path(path).write_text(json.dumps({
        "shown_at": time.time(), "visible": window.isVisible(), "title": window.windowTitle(),
        "icon": not window.windowIcon().isNull(), "size": [window.width(), window.height()],
        "modules": {m: m in sys.modules for m in ("torch", "open_clip", "lancedb", "onnxruntime", "pyarrow")},
    }))
    window.close()
