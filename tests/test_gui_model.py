"""The results model and grid without a window (as Vorta tests its models), and the app's start-up."""
from __future__ import annotations

import json
import os
import sys

import pytest
from PySide6.QtCore import QSize, Qt

from conftest import ROOT, make_photos, run_glimpse


def results(n: int, path_of=lambda i: f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg"):
    from app.library.search import Result

    return [Result(path_of(i), 1.0 - i / (n + 1), 1_600_000_000 + 60 * i, 4_000_000, 4032, 3024) for i in range(n)]


def on_screen(view) -> list[str]:
    """The paths of the grid cells that show in the view's viewport."""
    model, area = view.model(), view.viewport().rect()
    return [path for i, path in enumerate(model.paths()) if view.visualRect(model.index(i)).intersects(area)]


def test_results_model_passes_qt_model_tester(qtbot, qtmodeltester):
    from app.gui.results import ResultsModel
    from app.gui.thumbs import ThumbnailLoader

    loader = ThumbnailLoader()
    model = ResultsModel(loader)
    model.set_results(results(50), more=True)
    qtmodeltester.check(model, force_py=True)
    model.append(results(60)[50:], more=False)
    qtmodeltester.check(model, force_py=True)
    assert model.rowCount() == 60 and not model.canFetchMore()
    tip = model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("IMG_000000.jpg\n") and "Score" not in tip and "1.000" not in tip  # no raw score
    mime = model.mimeData([model.index(3)])  # results drag out to other apps as files
    assert mime.urls()[0].toLocalFile() == "/photos/000/IMG_000003.jpg"
    loader.close()


def test_grid_of_10000_results_loads_only_what_is_on_screen(qtbot, tmp_path):
    from app.gui.grid import ResultsView
    from app.gui.results import ResultsModel
    from app.gui.thumbs import ThumbnailLoader

    thumb = make_photos(tmp_path, 1)[0]
    asked = []

    def source(path: str) -> str:  # a real JPEG for every result
        asked.append(path)
        return str(thumb)

    loader = ThumbnailLoader()
    loader.set_source(source)
    model = ResultsModel(loader)
    view = ResultsView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(QSize(1000, 700))
    view.show()
    model.set_results(results(10_000), more=False)
    qtbot.waitUntil(lambda: loader.requested > 0 and not loader._pending, timeout=30_000)
    first = on_screen(view)
    assert len(first) == 16  # 4 x 4 cells of 200 px fill 1000 x 700, not 10,000
    assert sorted(asked) == sorted(first) and loader.requested == 16
    view.scrollToBottom()
    qtbot.waitUntil(lambda: model.thumbnail(9_999) is not None, timeout=30_000)
    last = on_screen(view)
    assert last[-1] == model.paths()[-1] and sorted(asked) == sorted(first + last) and loader.requested == 32
    # Page Down and End move through the grid like any list.
    view.setFocus()
    view.setCurrentIndex(model.index(0))
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.currentIndex().row() == 9_999
    loader.close()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: its reference count "
                    "never changes, so a dropped reference can neither be counted nor crash the window "
                    "(only None takes this path: an empty QVariant converts to None)")
def test_qt_bindings_keep_their_references_to_none(qapp):  # qapp: a QComboBox needs the application
    """PySide6 6.12.0 dropped a reference to None for every empty QVariant it returned; on Python 3.11
    the window aborted ("deallocating None") after a few thousand thumbnails. pyproject excludes it."""
    from PySide6.QtCore import QModelIndex
    from PySide6.QtWidgets import QComboBox

    combo = QComboBox()
    combo.addItem("All folders", None)
    before = sys.getrefcount(None)
    for _ in range(500):
        assert QModelIndex().data() is None and combo.currentData() is None
    assert sys.getrefcount(None) >= before - 50  # the bug drops about 1,000 here


def test_window_starts_without_torch_or_the_database(tmp_path):
    """The start-up probe records what was imported when the first frame was out (time: benchmarks/startup.py)."""
    probe = tmp_path / "probe.json"
    env = {"GLIMPSE_STARTUP_PROBE": str(probe), "QT_QPA_PLATFORM": "offscreen"}
    proc = run_glimpse(env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(probe.read_text())
    assert report["visible"] is True and report["title"] == "Glimpse" and report["icon"] is True
    assert report["size"] == [1200, 800]  # the first size, on a fresh home
    assert report["modules"] == {"torch": False, "open_clip": False, "lancedb": False, "onnxruntime": False,
                                 "pyarrow": False}


def test_the_installed_command_opens_the_window(tmp_path):
    """`glimpse` with no arguments is the window (the CLI stays one subcommand away)."""
    probe = tmp_path / "probe.json"
    env = {**os.environ, "GLIMPSE_STARTUP_PROBE": str(probe), "QT_QPA_PLATFORM": "offscreen"}
    import subprocess

    glimpse = os.path.join(os.path.dirname(sys.executable), "glimpse")
    proc = subprocess.run([glimpse], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(probe.read_text())["visible"] is True
