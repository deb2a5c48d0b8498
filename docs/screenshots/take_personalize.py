"""A screenshot of Settings → Personalize after a finished fine-tuning run, for the README.

    xvfb-run -a -s "-screen 0 1440x900x24" .venv/bin/python docs/screenshots/take_personalize.py

Builds a captioned library in a temporary GLIMPSE_HOME (named places photographed several times,
captioned through captions.csv; a tiny locally made model with random weights, as in `take.py`), runs
a real fine-tune from the tab (the child process, the chart, the result) and saves personalize.png.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(OUT)]

from take import wait_until  # noqa: E402


def make_library(home: Path) -> None:
    import captioned
    import tiny
    from app.library.library import Library
    from model.obtain import import_path

    photos = home.parent / "Pictures"
    captioned.make(photos, places=10, per_place=6, uncaptioned=3)
    lib = Library()
    src = tiny.save_folder(tiny.make_model(seed=0), home.parent / "tiny-clip")
    lib.models.use(import_path(lib.models.store, src, name="tiny-demo").id)
    lib.folders.add(str(photos))
    lib.update()
    lib.close()


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="glimpse-shots-")) / "home"
    os.environ["GLIMPSE_HOME"] = str(home)
    try:
        make_library(home)
        from PySide6.QtGui import QGuiApplication, QIcon
        from PySide6.QtWidgets import QApplication

        from app.gui.main import ICON
        from app.gui.window import MainWindow

        app = QApplication([])
        app.setWindowIcon(QIcon(str(ICON)))

        def settle(cond=lambda: True, timeout=300.0, extra=0.5):
            wait_until(app, cond, timeout, extra)

        w = MainWindow()
        w.setGeometry(0, 0, 1280, 800)
        w.show()
        w.start()
        settle(lambda: w.status is not None and w.backend.watcher is not None and w.backend.watcher.idle)
        dialog = w.open_settings()
        dialog.setGeometry(100, 20, 820, 860)
        tab = dialog.personalize
        dialog.tabs.setCurrentWidget(tab)
        settle(lambda: tab.summary is not None)
        tab.epochs.setValue(12)
        tab.fine_tune.click()
        settle(lambda: tab.task is not None and tab.task.finished.is_set() and tab.result_box.isVisible())
        cells = [c for _caption, row in tab.example_rows for c in row]
        settle(lambda: all(c.pixmap() is not None and not c.pixmap().isNull() for c in cells), timeout=30)
        dialog.raise_()
        dialog.activateWindow()
        settle()
        screen = QGuiApplication.primaryScreen()
        g = dialog.frameGeometry()
        pixmap = screen.grabWindow(0, g.x(), g.y(), g.width(), g.height())
        pixmap.save(str(OUT / "personalize.png"))
        print("saved", OUT / "personalize.png", pixmap.width(), "x", pixmap.height())
        dialog.close()
        w.close()
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
