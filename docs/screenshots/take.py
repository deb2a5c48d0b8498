"""Screenshots of the real window for the README, taken from the screen of an X server.

    xvfb-run -a -s "-screen 0 1440x900x24" .venv/bin/python docs/screenshots/take.py

Builds a small library in a temporary GLIMPSE_HOME (a tiny locally made model with random weights: no
pretrained weights can be downloaded here, so the ranking is arbitrary; the window is the real one),
then shows the main window with results, the preview, the library panel, settings, the first-run
welcome and the dark theme, and saves each as docs/screenshots/*.png.
"""
from __future__ import annotations

import datetime as dt
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
    from PIL import Image

    import tiny
    from app.library.library import Library
    from benchmarks.common import _camera_photo
    from model.obtain import import_path

    photos = home.parent / "Pictures"
    cameras = [("Fujifilm", "X100V"), ("Apple", "iPhone 15"), ("Sony", "ILCE-7M4"), ("Canon", "EOS R6")]
    for album, count, year in (("Holidays 2023", 22, 2023), ("Family", 14, 2024)):
        folder = photos / album
        folder.mkdir(parents=True)
        for i in range(count):
            path = folder / f"IMG_{year}{i:03d}.jpg"
            _camera_photo((path, year * 100 + i, (1600, 1200)))
            exif = Image.Exif()
            taken = dt.datetime(year, 1 + i % 12, 1 + (7 * i) % 27, 9 + i % 10, 12)
            exif[0x010F], exif[0x0110] = cameras[i % len(cameras)]
            exif[0x0132] = taken.strftime("%Y:%m:%d %H:%M:%S")
            with Image.open(path) as img:
                img.load()
                img.save(path, quality=88, exif=exif)
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
        w.setGeometry(0, 0, 1280, 800)
        w.show()
        w.start()
        settle(lambda: w.status is not None and w.backend.watcher is not None and w.backend.watcher.idle)

        def answered():
            return (w.last_answer is not None and w.last_answer.request.generation == w.request.generation
                    and not w.backend.searching)

        w.search.set_text("beach at sunset")
        w.run_search()
        settle(lambda: answered() and all(w.model.thumbnail(i) is not None for i in range(w.model.rowCount())))
        w.view.setCurrentIndex(w.model.index(2))
        shoot(w, "results")

        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(photos / "Family" / "IMG_2024003.jpg"))])
        w.take(mime)
        w.search.set_text("at night")
        w.run_search()
        settle(lambda: answered() and all(w.model.thumbnail(i) is not None for i in range(w.model.rowCount())))
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

        apply_theme("dark")
        settle()
        shoot(w, "results-dark")
        apply_theme("system")
        w.close()

        # First run: a fresh home with nothing in it.
        os.environ["GLIMPSE_HOME"] = str(home.parent / "fresh")
        os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # as offline as this machine
        first = MainWindow()
        first.setGeometry(0, 0, 1280, 800)
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
