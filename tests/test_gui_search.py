"""The window, driven as a user drives it: typing, dropping, pasting, browsing results, the preview."""
from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image, ImageEnhance
from PySide6.QtCore import QMimeData, QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QImage
from PySide6.QtWidgets import QApplication

import images
from conftest import make_photos
from gui import WAIT, answered, close_window, drop, file_mime, indexed_window, search

N = 12


@pytest.fixture(autouse=True)
def empty_clipboard_after():
    """Qt's offscreen platform crashes at process exit when its clipboard still holds a QMimeData made
    in Python (the xcb, Wayland, Windows and macOS clipboards do not); the tests leave it empty."""
    yield
    QApplication.clipboard().clear()


@pytest.fixture
def photos(library, tmp_path):
    """N photo files in one folder; the `window` fixture indexes them and opens the window."""
    folder = tmp_path / "Photos"
    return make_photos(folder, N)


@pytest.fixture
def window(qtbot, library, photos):
    w = indexed_window(qtbot, library, [photos[0].parent], photos=N)
    yield w
    close_window(qtbot, w)


def near_duplicate(src, dst):
    img = Image.open(src).convert("RGB").resize((150, 112))
    ImageEnhance.Brightness(img).enhance(1.1).save(dst, quality=80)
    return dst


def test_typing_a_description_shows_every_photo_ranked(qtbot, window, photos):
    qtbot.waitUntil(lambda: answered(window) and window.request.browsing, timeout=WAIT)
    assert window.model.rowCount() == N, "the window opens on the library itself"
    search(qtbot, window, "a red boat")
    assert window.results_page.currentWidget() is window.view
    assert window.model.rowCount() == N
    assert sorted(window.model.paths()) == sorted(map(str, photos))
    scores = [window.model.result(i).score for i in range(N)]
    assert scores == sorted(scores, reverse=True)
    tip = window.model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert f"{scores[0]:.3f}" not in tip and "Score" not in tip and "photo_" in tip  # no raw score
    # Thumbnails arrive off the GUI thread and are then painted.
    qtbot.waitUntil(lambda: window.model.thumbnail(0) is not None, timeout=WAIT)
    assert "results in" in window.status_text.text()


def test_typing_waits_for_a_pause_then_searches(qtbot, window):
    window.search.edit.setFocus()
    qtbot.keyClicks(window.search.edit, "snow")  # no Enter: the debounce sends it
    qtbot.waitUntil(lambda: window.request.text == "snow" and answered(window), timeout=WAIT)
    assert window.model.rowCount() == N and window.status_text.text().endswith("ms")


def test_dropping_a_photo_finds_its_near_duplicate_first(qtbot, window, photos, tmp_path):
    query = near_duplicate(photos[5], tmp_path / "copy from phone.jpg")
    assert drop(window, file_mime(query))
    assert [i.path for i in window.search.images] == [str(query)]
    qtbot.waitUntil(lambda: window.request.images == (str(query),) and answered(window), timeout=WAIT)
    assert window.model.rowCount() == N
    assert window.model.result(0).path == str(photos[5])
    # The chip can be told apart: the picture in colour, a name that is not cut to nothing, and a tooltip
    # with the picture large and the whole path.
    chip = window.search._chips[0]
    qtbot.waitUntil(lambda: chip.icon.pixmap() is not None and not chip.icon.pixmap().isNull(), timeout=WAIT)
    colours = chip.icon.pixmap().toImage()
    assert max(colours.pixelColor(x, y).hsvSaturation() for x in range(0, colours.width(), 3)
               for y in range(0, colours.height(), 3)) > 60, "the query picture is shown in colour"
    assert chip.text.width() >= 64 and chip.isEnabled()
    from PySide6.QtGui import QTextDocument

    doc = QTextDocument()
    doc.setHtml(chip.toolTip())
    assert str(query) in doc.toPlainText() and doc.size().height() > 200, "the tooltip shows the picture"
    # Combined with text, the image stays in the query; removing its chip leaves the text.
    search(qtbot, window, "at night")
    assert window.request.images == (str(query),) and window.request.text == "at night"
    window.search._chips[0].close_button.click()
    qtbot.waitUntil(lambda: window.request.images == () and answered(window),
                    timeout=WAIT)
    assert window.model.rowCount() == N


def test_dropping_a_non_image_explains_and_breaks_nothing(qtbot, window, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    assert drop(window, file_mime(notes))
    assert window.notice.isVisible()
    assert "notes.txt: not an image Glimpse can search with" in window.notice.text()
    assert window.search.images == []
    search(qtbot, window, "beach")
    assert window.model.rowCount() == N


def test_pasting_an_image_searches_with_it(qtbot, window, photos, tmp_path):
    near = near_duplicate(photos[2], tmp_path / "near.jpg")
    QApplication.clipboard().setImage(QImage(str(near)))
    window.search.edit.setFocus()
    qtbot.keyClick(window.search.edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(window.search.images) == 1, timeout=WAIT)
    pasted = window.search.images[0].path
    assert os.path.basename(pasted).startswith("pasted-") and os.path.exists(pasted)
    qtbot.waitUntil(lambda: window.request.images == (pasted,) and answered(window), timeout=WAIT)
    assert window.model.result(0).path == str(photos[2])


def test_an_image_dragged_from_another_app_without_a_file(qtbot, window, photos, tmp_path):
    mime = QMimeData()
    mime.setImageData(QImage(str(near_duplicate(photos[7], tmp_path / "n.jpg"))))
    assert drop(window, mime)
    qtbot.waitUntil(lambda: window.request is not None and bool(window.request.images) and answered(window),
                    timeout=WAIT)
    assert window.model.result(0).path == str(photos[7])


def test_find_similar_from_a_result(qtbot, window, photos):
    search(qtbot, window, "anything")
    target = window.model.result(3).path
    window.find_similar(target)
    qtbot.waitUntil(lambda: window.request.similar == (target,) and answered(window),
                    timeout=WAIT)
    assert window.model.result(0).path == target
    assert window.model.result(0).score == pytest.approx(1.0, abs=1e-4)
    assert window.search._chips[0].text.text().startswith("Like photo_")


def test_keyboard_preview_and_arrows(qtbot, window, photos, tmp_path):
    search(qtbot, window, "mountains")
    qtbot.keyClick(window.search.edit, Qt.Key.Key_Down)  # from the field into the grid
    assert window.view.hasFocus() and window.view.currentIndex().row() == 0
    qtbot.keyClick(window.view, Qt.Key.Key_Right)
    assert window.view.currentIndex().row() == 1
    qtbot.keyClick(window.view, Qt.Key.Key_Return)
    assert window.pages.currentWidget() is window.viewer
    second = window.model.result(1).path
    qtbot.waitUntil(lambda: window.viewer.loaded_path == second, timeout=WAIT)
    assert window.viewer.canvas.pixmap.width() == 160
    qtbot.waitUntil(lambda: window.viewer.fields["Format"].text() == "JPEG", timeout=WAIT)
    assert window.viewer.fields["Dimensions"].text() == "160 × 120"
    assert window.viewer.fields["Folder"].text() == os.path.dirname(second)
    # The neighbours are decoded ahead: an arrow step shows the next photo at once, never a blank.
    third = window.model.result(2).path
    qtbot.waitUntil(lambda: third in window.viewer._decoded, timeout=WAIT)
    qtbot.keyClick(window.viewer, Qt.Key.Key_Right)
    assert window.viewer.loaded_path == third and not window.viewer.canvas.provisional
    assert window.view.currentIndex().row() == 2  # the grid follows the preview
    # A jump past them shows the grid's thumbnail scaled up at once, then the photo, sharp.
    last = window.model.result(window.model.rowCount() - 1).path
    qtbot.waitUntil(lambda: window.thumbs.pixmap(last) is not None, timeout=WAIT)  # as the grid has it
    qtbot.keyClick(window.viewer, Qt.Key.Key_End)
    canvas = window.viewer.canvas
    assert canvas.pixmap is not None and canvas.provisional and window.viewer.loaded_path != last
    qtbot.waitUntil(lambda: window.viewer.loaded_path == last and not canvas.provisional, timeout=WAIT)
    assert canvas.pixmap.width() == 160
    qtbot.keyClick(window.viewer, Qt.Key.Key_Home)
    qtbot.keyClick(window.viewer, Qt.Key.Key_Right)
    qtbot.keyClick(window.viewer, Qt.Key.Key_Escape)
    assert window.pages.currentWidget() is window.results_page and window.view.hasFocus()
    # Ctrl+F goes back to the field; Esc there clears the query.
    qtbot.keyClick(window.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.search.edit.hasFocus() and window.search.edit.selectedText() == "mountains"
    qtbot.keyClick(window.search.edit, Qt.Key.Key_Escape)
    assert window.search.text == "" and window.request.browsing  # back to the library itself
    qtbot.waitUntil(lambda: answered(window), timeout=WAIT)
    assert window.model.rowCount() == N and "newest first" in window.status_text.text().lower()


def test_preview_applies_exif_orientation_and_shows_camera(qtbot, library, tmp_path):
    folder = tmp_path / "Trip"
    folder.mkdir()
    img = images.photo(200, 100, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    exif[0x010F], exif[0x0110] = "Fujifilm", "X100V"
    img.save(folder / "sideways.jpg", exif=exif)
    w = indexed_window(qtbot, library, [folder], photos=1)
    search(qtbot, w, "a photo")
    w.open_preview(w.model.index(0))
    qtbot.waitUntil(lambda: w.viewer.loaded_path is not None, timeout=WAIT)
    assert (w.viewer.canvas.pixmap.width(), w.viewer.canvas.pixmap.height()) == (100, 200)
    qtbot.waitUntil(lambda: w.viewer.fields["Camera"].text() == "Fujifilm X100V", timeout=WAIT)
    assert w.viewer.fields["Dimensions"].text() == "100 × 200"
    close_window(qtbot, w)


def test_result_actions_open_reveal_and_copy(qtbot, window, photos):
    search(qtbot, window, "flowers")
    path = window.model.result(0).path
    opened = []

    class Catcher(QObject):
        @Slot(QUrl)
        def handle(self, url):
            opened.append(url.toLocalFile())

    catcher = Catcher()
    QDesktopServices.setUrlHandler("file", catcher, "handle")
    try:
        window.open_preview(window.model.index(0))
        qtbot.keyClick(window.viewer, Qt.Key.Key_Return)  # Enter in the preview: open in the system viewer
        qtbot.waitUntil(lambda: opened == [path], timeout=WAIT)
        window.viewer.reveal_requested.emit(path)  # no file manager on the bus: its folder opens
        qtbot.waitUntil(lambda: opened == [path, os.path.dirname(path)], timeout=WAIT)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    window.viewer.copy_requested.emit(path)
    assert QApplication.clipboard().text() == path
    assert QApplication.clipboard().mimeData().urls()[0].toLocalFile() == path


def test_filters_and_sorting_by_date(qtbot, library, tmp_path):
    import datetime as dt

    a, b = tmp_path / "2019", tmp_path / "2024"
    for folder, year in ((a, 2019), (b, 2024)):
        for i, p in enumerate(make_photos(folder, 3, start=year)):
            t = dt.datetime(year, 1 + i, 10, 12).timestamp()
            os.utime(p, (t, t))
    w = indexed_window(qtbot, library, [a, b], photos=6)
    qtbot.waitUntil(lambda: answered(w), timeout=WAIT)  # the library itself
    # Turned on, the dates start at the library's own oldest and newest days: all of it shows.
    w.filters.use_after.setChecked(True)
    w.filters.use_before.setChecked(True)
    assert w.filters.after.date().toPython() == dt.date(2019, 1, 10)
    assert w.filters.before.date().toPython() == dt.date(2024, 3, 10)
    qtbot.waitUntil(lambda: answered(w) and w.request.after is not None and w.request.before is not None,
                    timeout=WAIT)
    assert w.model.rowCount() == 6
    w.filters.use_after.setChecked(False)
    w.filters.use_before.setChecked(False)
    search(qtbot, w, "winter")
    assert w.model.rowCount() == 6
    w.filters.set_sort("newest")
    qtbot.waitUntil(lambda: answered(w) and w.request.sort == "newest", timeout=WAIT)
    taken = [w.model.result(i).taken_at for i in range(6)]
    assert taken == sorted(taken, reverse=True)
    w.filters.folder.setCurrentIndex(w.filters.folder.findData(str(a)))
    qtbot.waitUntil(lambda: answered(w) and w.request.folder == str(a), timeout=WAIT)
    assert {os.path.dirname(p) for p in w.model.paths()} == {str(a)} and w.model.rowCount() == 3
    w.filters.folder.setCurrentIndex(0)
    w.filters.after.setDate(dt.date(2024, 2, 1))
    w.filters.use_after.setChecked(True)
    qtbot.waitUntil(lambda: answered(w) and w.request.after == dt.date(2024, 2, 1),
                    timeout=WAIT)
    assert sorted(os.path.basename(p) for p in w.model.paths()) == ["photo_02025.jpg", "photo_02026.jpg"]
    w.filters.before.setDate(dt.date(2020, 1, 1))
    w.filters.use_before.setChecked(True)
    qtbot.waitUntil(lambda: answered(w) and w.request.before is not None, timeout=WAIT)
    assert w.model.rowCount() == 0 and "No photos match" in w.empty.text()
    close_window(qtbot, w)


def test_results_page_in_as_you_scroll(qtbot, window, photos):
    window.session.page_size = 5
    pages = []
    window.backend.answered.connect(lambda a: pages.append((a.request.offset, len(a.results), a.more)))
    search(qtbot, window, "a dog")
    # The first page does not fill the grid, so the view itself asks for more until nothing is left.
    qtbot.waitUntil(lambda: window.model.rowCount() == N, timeout=WAIT)
    assert pages[-3:] == [(0, 5, True), (5, 5, True), (10, 2, False)]
    assert not window.model.canFetchMore()
    assert sorted(window.model.paths()) == sorted(map(str, photos))  # no gaps, no repeats


def test_a_photo_copied_into_a_watched_folder_appears(qtbot, window, photos, tmp_path):
    search(qtbot, window, "a cat")
    new = tmp_path / "incoming.jpg"
    images.photo(160, 120, seed=999).save(new, quality=90)
    shutil.copy(new, photos[0].parent / "just copied.jpg")
    target = str(photos[0].parent / "just copied.jpg")
    qtbot.waitUntil(lambda: target in window.model.paths(), timeout=WAIT)
    assert window.model.rowCount() == N + 1
    qtbot.waitUntil(lambda: window.count_text.text() == f"{N + 1:,} photos", timeout=WAIT)
