"""Settings → Personalize and the preview's caption field, driven through the real window on a real
captioned library: what was found, a tiny fine-tune run to the end (progress bar, live chart), Cancel,
Use this model, back to the base, Discard, and captions typed in the preview."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt

import captioned
from conftest import make_photos
from gui import WAIT, close_window, indexed_window, search

QUERY = "Mia's lake house"


def _tab(qtbot, w):
    dialog = w.open_settings()
    tab = dialog.personalize
    dialog.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.summary is not None, timeout=WAIT)
    return dialog, tab


def _captioned_window(qtbot, library, tmp_path, places=6, per_place=4, uncaptioned=2):
    captioned.make(tmp_path / "photos", places=places, per_place=per_place, uncaptioned=uncaptioned)
    return indexed_window(qtbot, library, [tmp_path / "photos"], photos=places * (per_place + uncaptioned))


def _results(w) -> list[tuple[str, float]]:
    return [(r.path, round(r.score, 5)) for r in (w.model.result(i) for i in range(w.model.rowCount()))]


def _ended(tab) -> bool:
    return tab.task is not None and tab.task.finished.is_set() and not tab.bar.isVisible()


def test_the_tab_shows_the_captions_found_and_refuses_fewer_than_20(qtbot, library, tmp_path):
    w = _captioned_window(qtbot, library, tmp_path, places=3, per_place=5, uncaptioned=1)
    _dialog, tab = _tab(qtbot, w)
    text = tab.found.text()
    assert "15 captioned photos" in text and "15 distinct captions" in text
    assert "From captions.csv: 15." in text and "lake house" in text  # examples of the captions
    assert "at least 20 captioned photos" in text and "preview" in text and "captions.csv" in text
    assert not tab.fine_tune.isEnabled()
    assert tab.mode.currentData() == "text" and tab.mode.currentText() == "Text only (fast, any computer)"
    assert tab.device.text().startswith(("CPU", "GPU"))
    if not tab.summary["gpu"]:  # two-tower modes need CUDA
        assert not tab.mode.model().item(2).isEnabled() and not tab.mode.model().item(3).isEnabled()
    close_window(qtbot, w)


def test_fine_tune_runs_to_the_end_then_use_back_and_discard(qtbot, library, tmp_path):
    from app.gui.jobs import TuneTask

    w = _captioned_window(qtbot, library, tmp_path)  # 24 captioned photos, 12 uncaptioned
    base = library.models.active_id
    search(qtbot, w, QUERY)
    before = _results(w)
    assert 0 < len(before) <= 36  # the photos that stand out for the query (the relevance floor)

    dialog, tab = _tab(qtbot, w)
    assert "24 captioned photos" in tab.found.text() and "captions.csv: 24" in tab.found.text()
    assert tab.fine_tune.isEnabled() and tab.estimate.text() != "–"
    bars, jobbar = [], []
    w.backend.runner.progressed.connect(lambda task, p: isinstance(task, TuneTask) and bars.append(tab.bar.value()))
    w.backend.runner.progressed.connect(lambda task, p: jobbar.append(w.jobs.text.text()))
    tab.epochs.setValue(3)
    qtbot.mouseClick(tab.fine_tune, Qt.MouseButton.LeftButton)
    assert tab.bar.isVisible() and tab.chart.isVisible() and not tab.fine_tune.isEnabled()
    qtbot.waitUntil(lambda: _ended(tab), timeout=WAIT * 3)
    assert tab.task.state == "done", tab.note.text()
    # The progress bar moved and the job bar showed the run; the chart got a loss curve and R@5 per epoch.
    assert any(0 < v < 1000 for v in bars) or len(set(bars)) > 1
    assert any(t.startswith("Personalizing") for t in jobbar)
    losses, recalls = tab.chart.points()
    assert losses >= 3 and recalls >= 3  # the base's R@5 at 0, then one per epoch
    assert tab.chart.x.max() == 3
    # The result: recall before and after, the user's captions as searches, and the choice.
    model_id = tab.model_id
    assert model_id and model_id != base and tab.result_box.isVisible()
    for key in ("before", "after"):
        assert all(tab.metrics[key, m].text() != "–" for m in ("r1", "r5", "r10", "mean_rank"))
    assert "Agreement" in tab.summary_line.text()
    assert tab.example_rows and all(cells for _caption, cells in tab.example_rows)
    assert w.backend.library.models.active_id == base  # nothing is activated until the user says so

    qtbot.mouseClick(tab.use, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.note.text() == f"Glimpse now searches with {model_id}.", timeout=WAIT)
    assert w.backend.library.models.active_id == model_id
    search(qtbot, w, QUERY)
    after = _results(w)
    assert after and after != before  # the fine-tuned text tower answers differently
    # Its base is one click away, and gives the old answers back.
    qtbot.waitUntil(lambda: tab.back.isVisible() and tab.back.text() == f"Back to {base}", timeout=WAIT)
    qtbot.mouseClick(tab.back, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.backend.library.models.active_id == base and not w.busy, timeout=WAIT)
    qtbot.waitUntil(lambda: not tab.back.isVisible(), timeout=WAIT)
    search(qtbot, w, QUERY)
    assert _results(w) == before
    # Discard deletes it.
    qtbot.mouseClick(tab.discard, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.note.text().startswith(f"Discarded {model_id}"), timeout=WAIT)
    assert model_id not in w.backend.library.models.store.ids() and not tab.result_box.isVisible()
    dialog.close()
    close_window(qtbot, w)


def test_cancel_kills_the_run_and_changes_nothing(qtbot, library, tmp_path):
    w = _captioned_window(qtbot, library, tmp_path)
    store = library.models.store
    active, ids = library.models.active_id, sorted(store.ids())
    _dialog, tab = _tab(qtbot, w)
    pids = []
    tab.relay.event.connect(lambda e: e.get("event") == "child" and pids.append(e["pid"]))
    tab.epochs.setValue(200)
    qtbot.mouseClick(tab.fine_tune, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.chart.points()[0] > 0, timeout=WAIT * 2)  # training is under way
    assert pids and _alive(pids[0])
    qtbot.mouseClick(w.jobs.cancel, Qt.MouseButton.LeftButton)  # the status bar's Cancel
    qtbot.waitUntil(lambda: _ended(tab), timeout=WAIT)
    assert tab.task.state == "cancelled" and tab.note.text() == "Cancelled; nothing was changed."
    assert not _alive(pids[0])
    assert w.backend.library.models.active_id == active and sorted(store.ids()) == ids
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no half-installed model
    assert tab.fine_tune.isEnabled() and not tab.result_box.isVisible()
    close_window(qtbot, w)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not running
        return f.read().split(")")[-1].split()[0] != "Z"


def test_captions_typed_in_the_preview_persist(qtbot, library, tmp_path):
    from app.library.library import Library

    folder = tmp_path / "photos"
    paths = [str(p) for p in make_photos(folder, 3)]
    (folder / "captions.csv").write_text("file,caption\nphoto_00001.jpg,the Baxter cabin\n", encoding="utf-8")
    w = indexed_window(qtbot, library, [folder], photos=3)
    search(qtbot, w, "a photo")
    rows = {w.model.result(i).path: i for i in range(w.model.rowCount())}
    viewer, field = w.viewer, w.viewer.caption

    # No caption yet: an empty field to type in; Enter saves it.
    w.open_preview(w.model.index(rows[paths[0]]))
    qtbot.waitUntil(lambda: field.path == paths[0] and not field.edit.isReadOnly(), timeout=WAIT)
    assert field.edit.text() == "" and not field.override.isVisible()
    field.edit.setFocus()
    qtbot.keyClicks(field.edit, "Oma's kitchen")
    qtbot.keyClick(field.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: field.origin.text() == "typed", timeout=WAIT)
    assert w.pages.currentWidget() is viewer  # Enter in the field saved; it did not open the photo

    # A caption from a file: read-only, with its source, and Override to type one of our own.
    viewer.show_row(rows[paths[1]])
    qtbot.waitUntil(lambda: field.path == paths[1] and field.origin.text() == "from captions.csv", timeout=WAIT)
    assert field.edit.text() == "the Baxter cabin" and field.edit.isReadOnly() and field.override.isVisible()
    qtbot.mouseClick(field.override, Qt.MouseButton.LeftButton)
    assert not field.edit.isReadOnly()
    qtbot.keyClicks(field.edit, "the Baxter cabin in winter")
    viewer.show_row(rows[paths[2]])  # moving on saves what was typed for the photo it was typed for
    qtbot.waitUntil(lambda: (w.backend.library.caption_of(paths[1]) or None) is not None
                    and w.backend.library.caption_of(paths[1]).source == "typed", timeout=WAIT)
    qtbot.waitUntil(lambda: not w.busy, timeout=WAIT)
    close_window(qtbot, w)

    again = Library()
    first, second = again.caption_of(paths[0]), again.caption_of(paths[1])
    assert (first.text, first.source) == ("Oma's kitchen", "typed")
    assert (second.text, second.source) == ("the Baxter cabin in winter", "typed")
    assert again.caption_of(paths[2]) is None
    again.close()
