"""The library as the window opens on it: every photo newest first under month headers, in justified
rows that keep each photo's shape and fill the width, with zoom, shaped placeholders and a search that
refines the view and returns to it."""
from __future__ import annotations

import datetime as dt

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

import images
from gui import WAIT, answered, close_window, indexed_window, search

# (name, size, taken): three months, photos of four shapes, taken out of name order.
SHOTS = [("a_march_wide", (240, 135), dt.datetime(2024, 3, 20, 9)),
         ("b_jan_square", (150, 150), dt.datetime(2024, 1, 2, 9)),
         ("c_feb_tall", (120, 160), dt.datetime(2024, 2, 14, 9)),
         ("d_march_late", (160, 120), dt.datetime(2024, 3, 28, 9)),
         ("e_jan_late", (200, 100), dt.datetime(2024, 1, 30, 9)),
         ("f_feb_early", (160, 120), dt.datetime(2024, 2, 1, 9))]
SHAPES = [(160, 120), (120, 160), (240, 135), (150, 150), (300, 100), (160, 120)]


def dated(folder, name: str, size, taken: dt.datetime, seed: int):
    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0132] = taken.strftime("%Y:%m:%d %H:%M:%S")
    path = folder / f"{name}.jpg"
    images.photo(*size, seed=seed).save(path, quality=90, exif=exif)
    return path


@pytest.fixture
def months(qtbot, library, tmp_path):
    folder = tmp_path / "Photos"
    for i, (name, size, taken) in enumerate(SHOTS):
        dated(folder, name, size, taken, i)
    w = indexed_window(qtbot, library, [folder], photos=len(SHOTS))
    yield w
    close_window(qtbot, w)


def shown_names(w) -> list[str]:
    return [p.rsplit("/", 1)[1].removesuffix(".jpg") for p in w.model.paths()]


def test_browse_view_is_newest_first_with_month_headers(qtbot, months):
    w = months
    # Nothing typed: the window shows the library itself, without a query.
    qtbot.waitUntil(lambda: answered(w) and w.request.browsing, timeout=WAIT)
    assert shown_names(w) == ["d_march_late", "a_march_wide", "c_feb_tall", "f_feb_early", "e_jan_late",
                              "b_jan_square"]
    assert w.results_page.currentWidget() is w.view and w.view.grouped
    lay = w.view.layout_
    assert [text for _, text, _ in lay.headers] == ["March 2024", "February 2024", "January 2024"]
    # Each month's header sits above its photos and below the month before.
    for (y, _, first), end in zip(lay.headers, [h[2] for h in lay.headers[1:]] + [len(SHOTS)]):
        tops = [w.view.visualRect(w.model.index(i)).top() + w.view.verticalOffset() for i in range(first, end)]
        assert min(tops) >= y + 30, "the photos start below their month's header"
        if first:
            previous = w.view.visualRect(w.model.index(first - 1))
            assert previous.bottom() + w.view.verticalOffset() < y, "a month starts below the month before"
    # The sort menu's "Oldest first" browses the other way.
    w.filters.set_sort("oldest")
    w.filters.changed.emit()
    qtbot.waitUntil(lambda: answered(w) and w.request.sort == "oldest", timeout=WAIT)
    assert shown_names(w)[0] == "b_jan_square" and [h[1] for h in lay.headers][0] == "January 2024"
    w.filters.set_sort("relevance")
    w.filters.changed.emit()
    qtbot.waitUntil(lambda: answered(w) and w.request.sort == "relevance", timeout=WAIT)

    # A search refines the view: ranked, no month headers; clearing returns to the library.
    search(qtbot, w, "a photo")
    qtbot.waitUntil(lambda: answered(w) and w.request.text == "a photo", timeout=WAIT)
    assert not w.view.grouped and "results in" in w.status_text.text()
    qtbot.keyClick(w.search.edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: answered(w) and w.request.browsing, timeout=WAIT)
    assert w.view.grouped and shown_names(w)[0] == "d_march_late"


def full_rows(view) -> list:
    return [r for r in view.layout_.rows if r.full]


def test_justified_rows_keep_shapes_and_fill_the_width(qtbot, library, tmp_path):
    folder = tmp_path / "Shapes"
    for i in range(36):  # one month: a single section of many rows
        dated(folder, f"p{i:02d}", SHAPES[i % len(SHAPES)], dt.datetime(2024, 5, 1 + i % 28, 8 + i % 9), i)
    w = indexed_window(qtbot, library, [folder], photos=36)
    qtbot.waitUntil(lambda: answered(w) and w.model.rowCount() == 36, timeout=WAIT)
    view = w.view
    for width in (900, 1280, 1600):
        w.resize(width, 800)
        qtbot.waitUntil(lambda: view.viewport().width() == width - (w.width() - view.viewport().width()), timeout=WAIT)
        view.flush_layout()
        right = view.viewport().width() - view.layout_.margin
        assert len(full_rows(view)) >= 3, "enough photos for several full rows"
        for row in full_rows(view):
            rects = [view.visualRect(w.model.index(i)) for i in range(row.first, row.end)]
            assert abs(rects[0].left() - view.layout_.margin) <= 1
            assert abs(rects[-1].right() + 1 - right) <= 1, f"a full row fills the width at {width} px"
            for a, b in zip(rects, rects[1:]):
                assert b.left() - (a.right() + 1) == pytest.approx(view.layout_.gap, abs=1)
                assert a.height() == b.height()
            for i, rect in zip(range(row.first, row.end), rects):
                r = w.model.result(i)
                assert rect.width() / rect.height() == pytest.approx(r.width / r.height, rel=0.03), "shape kept"
        # No cell is square by accident: wide photos are wider than tall ones.
        widths = {(w.model.result(i).width, w.model.result(i).height): view.visualRect(w.model.index(i)).width()
                  for i in range(full_rows(view)[0].first, full_rows(view)[0].end)}
        assert len(set(widths.values())) > 1
    # Zooming and resizing keep the photo at the top of the view where it was (no creeping by a row).
    lay = view.layout_
    view.verticalScrollBar().setValue(lay.rows[2].y + 10)
    anchor = lay.rows[2].first
    for change in (lambda: view.zoom(1), lambda: view.zoom(-1), lambda: view.zoom(1), lambda: view.zoom(-1),
                   lambda: (w.resize(1000, 800), qtbot.wait(100), view.flush_layout()),
                   lambda: (w.resize(1600, 800), qtbot.wait(100), view.flush_layout())):
        change()
        top = view.verticalOffset()
        row = lay.rows[lay.rows_between(top, top)[0]]
        assert row.first <= anchor < row.end, ("the photo at the top stays at the top", view.verticalScrollBar().maximum(), top, [(r.y, r.first) for r in lay.rows])
    # A search and back: the library returns where it was left.
    place = view.verticalOffset()
    search(qtbot, w, "a photo")
    qtbot.waitUntil(lambda: answered(w) and w.request.text == "a photo", timeout=WAIT)
    qtbot.keyClick(w.search.edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: answered(w) and w.request.browsing, timeout=WAIT)
    assert view.verticalOffset() == place > 0
    close_window(qtbot, w)


def test_zoom_changes_the_row_height_and_the_slider_follows(qtbot, months):
    w = months
    qtbot.waitUntil(lambda: answered(w) and w.model.rowCount() == len(SHOTS), timeout=WAIT)
    before = w.view.row_height
    first = w.view.visualRect(w.model.index(0)).height()
    pos = QPointF(w.view.viewport().rect().center())
    event = QWheelEvent(pos, w.view.viewport().mapToGlobal(pos), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False)
    assert w.zoom.isVisible()  # with the grid (not on the welcome or the preview)
    w.view.wheelEvent(event)
    assert w.view.row_height > before and w.zoom.value() == w.view.row_height
    assert w.view.visualRect(w.model.index(0)).height() > first
    w.zoom.setValue(100)  # the slider drives the grid too
    assert w.view.row_height == 100
    w.save_state()
    assert w.settings["gui"]["row_height"] == 100  # kept for the next start


def test_placeholders_have_the_photos_shape_and_colours_of_their_own(qtbot, months):
    w = months
    qtbot.waitUntil(lambda: answered(w) and w.model.rowCount() == len(SHOTS), timeout=WAIT)
    w.thumbs.set_source(None)  # nothing loads: every cell is still a placeholder
    w.thumbs._cache.clear()
    view = w.view
    view.viewport().update()
    image = view.viewport().grab().toImage()
    colours, shapes = set(), []
    for i in range(w.model.rowCount()):
        rect = view.visualRect(w.model.index(i))
        r = w.model.result(i)
        shapes.append(round(rect.width() / rect.height(), 1) == round(r.width / r.height, 1))
        colours.add(image.pixelColor(rect.center()).name())
    assert all(shapes) and len(colours) >= 4, "shaped placeholders, and not all one grey"


def test_a_search_for_something_absent_says_so(qtbot, months):
    from app.library.session import SearchAnswer

    w = months
    qtbot.waitUntil(lambda: answered(w) and w.request.browsing, timeout=WAIT)
    closest = [w.model.result(i) for i in range(3)]
    w.search.set_text("a giraffe")
    request = w.session.ask(text="a giraffe", browse=True, cut=True)
    w._answered(SearchAnswer(request, closest, absent=True))  # as the search answers when nothing stands out
    assert w.notice.isVisible() and "Nothing in your library looks much like “a giraffe”" in w.notice.text()
    assert w.status_text.text() == "No close match: the 3 closest photos" and w.model.rowCount() == 3
    # The next answer that finds something takes the words away.
    w.search.clear()
    qtbot.waitUntil(lambda: answered(w) and w.request.browsing, timeout=WAIT)
    assert not w.notice.isVisible() and w.model.rowCount() == len(SHOTS)


def test_select_with_clicks_and_a_rubber_band(qtbot, months):
    w = months
    qtbot.waitUntil(lambda: answered(w) and w.model.rowCount() == len(SHOTS), timeout=WAIT)
    view, port = w.view, w.view.viewport()
    centre = lambda i: view.visualRect(w.model.index(i)).center()  # noqa: E731
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, pos=centre(0))
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, centre(2))
    assert sorted(i.row() for i in view.selectedIndexes()) == [0, 1, 2]
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, centre(4))
    assert w.selected_paths() == [w.model.result(i).path for i in (0, 1, 2, 4)]
    # A rubber band from empty space (right of March's short row) over the first two photos.
    march = view.visualRect(w.model.index(1))
    start = QPoint(port.width() - 10, march.bottom() - 5)
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=start)
    assert not view.indexAt(start).isValid()
    end = view.visualRect(w.model.index(0)).center()
    for k in range(1, 6):
        qtbot.mouseMove(port, start + (end - start) * k / 5)
    assert view._band.isVisible()
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=end)
    assert sorted(i.row() for i in view.selectedIndexes()) == [0, 1] and not view._band.isVisible()
