"""Screenshots of the real window for the README, taken from the screen of an X server.

    xvfb-run -a -s "-screen 0 1440x900x24" .venv/bin/python docs/screenshots/take.py

Builds a library of about 200 real photographs (`photos.py`) in a temporary GLIMPSE_HOME, with a tiny
locally made model with random weights (no pretrained weights can be downloaded here, so a text
query's ranking is arbitrary: the search screenshot searches with a photo, which random weights
answer by colour and layout; the window is the real one), then shows the library as it opens, a
search, the preview, the library panel, settings, the first-run welcome and the dark theme, and saves
each as docs/screenshots/*.png at 1440×900.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def make_library(home: Path) -> Path:
    """A library of about 200 real photographs (`photos.py` gathers them from Debian's packages once)."""
    import subprocess

    import tiny
    from app.library.library import Library
    from model.obtain import import_path

    source = Path(os.environ.get("GLIMPSE_SHOT_PHOTOS", "/tmp/glimpse-real-photos"))
    if not source.is_dir():
        subprocess.run([sys.executable, str(OUT / "photos.py"), str(source)], check=True)
    photos = home.parent / "Pictures"
    shutil.copytree(source, photos)
    (photos / "Family" / "scan_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 half a file")
    lib = Library()
    src = tiny.save_folder(tiny.make_model(seed=0), home.parent / "tiny-clip")
    lib.models.use(import_path(lib.models.store, src, name="tiny-demo").id)
    for album in sorted(photos.iterdir()):
        lib.folders.add(str(album))
    lib.update()
    lib.close()
    return photos


def wait_until(app, cond=lambda: True, timeout: float = 60.0, extra: float = 0.4) -> None:
    """Run the event loop until `cond()` (or `timeout`), then `extra` seconds more for painting."""
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    end = time.monotonic() + extra
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="glimpse-shots-")) / "home"
    os.environ["GLIMPSE_HOME"] = str(home)
    try:
        photos = make_library(home)
        from PySide6.QtCore import QMimeData, QUrl
        from PySide6.QtGui import QGuiApplication, QIcon
        from PySide6.QtWidgets import QApplication

        from app.gui.main import ICON
        from app.gui.theme import apply_theme
        from app.gui.window import MainWindow

        app = QApplication([])
        app.setWindowIcon(QIcon(str(ICON)))

        def settle(cond=lambda: True, timeout=60.0, extra=0.4):
            wait_until(app, cond, timeout, extra)

        def shoot(widget, name):
            widget.raise_()
            widget.activateWindow()
            settle()
            screen = QGuiApplication.primaryScreen()
            pixmap = screen.grabWindow(0, widget.x(), widget.y(), widget.frameGeometry().width(),
                                       widget.frameGeometry().height())
            pixmap.save(str(OUT / f"{name}.png"))
            print("saved", OUT / f"{name}.png", pixmap.width(), "x", pixmap.height())

        w = MainWindow()
        w.setGeometry(0, 0, 1440, 900)
        w.show()
        w.start()
        settle(lambda: w.status is not None and w.backend.watcher is not None and w.backend.watcher.idle)

        def answered():
            return (w.last_answer is not None and w.last_answer.request.generation == w.request.generation
                    and not w.backend.searching)

        def thumbnails_shown():
            w.view.flush_layout()
            shown = [i for i in range(w.model.rowCount())
                     if w.view.visualRect(w.model.index(i)).intersects(w.view.viewport().rect())]
            return all(w.model.thumbnail(i) is not None for i in shown)

        settle(lambda: answered() and w.request.browsing and thumbnails_shown(), extra=1.0)
        shoot(w, "results")  # the library as it opens: newest first, by month

        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(sorted((photos / "Nature").iterdir())[3]))])
        w.take(mime)
        settle(lambda: answered() and not w.request.browsing and thumbnails_shown(), extra=1.0)
        w.view.setCurrentIndex(w.model.index(2))
        shoot(w, "image-query")

        w.open_preview(w.model.index(0))
        settle(lambda: w.viewer.loaded_path is not None and w.viewer.fields["Format"].text() == "JPEG")
        shoot(w, "preview")
        w.close_preview()

        w.library_button.click()
        settle(lambda: w.panel.errors.topLevelItemCount() == 1)
        shoot(w, "library")
        w.library_button.click()

        dialog = w.open_settings()
        dialog.move(120, 80)
        dialog.tabs.setCurrentIndex(1)
        settle(lambda: dialog.models.topLevelItemCount() == 1 and "CPU" in dialog.in_use.text())
        shoot(dialog, "settings-model")
        dialog.tabs.setCurrentIndex(0)
        shoot(dialog, "settings-library")
        dialog.close()

        w.search.clear()
        settle(lambda: answered() and w.request.browsing and thumbnails_shown(), extra=1.0)
        apply_theme("dark")
        settle()
        shoot(w, "results-dark")
        apply_theme("system")
        w.close()

        # First run: a fresh home with nothing in it.
        os.environ["GLIMPSE_HOME"] = str(home.parent / "fresh")
        os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # as offline as this machine
        first = MainWindow()
        first.setGeometry(0, 0, 1440, 900)
        first.show()
        first.start()
        settle(lambda: first.status is not None)
        first.welcome.getter.download.click()
        settle(lambda: first.welcome.getter.download.isEnabled(), extra=0.2)
        shoot(first, "welcome")
        first.close()
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
