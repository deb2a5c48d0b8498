"""The window's job runner, driven through the real window: heavy tasks run one at a time, show the same
way in the status bar, obey Pause and Cancel, and closing stops them."""
from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtCore import Qt

import tiny
from conftest import make_photos
from gui import WAIT, close_window, indexed_window, library_threads, open_window, search, wait_idle


def _prepared(library, folder, n):
    """A library with a model and a folder of n photos, none indexed yet (the window indexes them)."""
    make_photos(folder, n)
    library.folders.add(str(folder))
    library.close()


def _model_folder(tiny_folder, tmp_path, name):
    """The tiny open_clip folder under another name (an import stores it under that name)."""
    return shutil.copytree(tiny_folder, tmp_path / name)


def _staging(library):
    return [p.name for p in library.paths.models.iterdir() if p.name.startswith(".")]


def test_an_import_waits_for_indexing_to_pause_then_indexing_goes_on(qtbot, library, tmp_path, tiny_folder):
    from app.gui.jobs import IndexTask, ObtainTask

    _prepared(library, tmp_path / "Big", 300)
    source = _model_folder(tiny_folder, tmp_path, "second-model")
    w = open_window(qtbot)
    runner = w.backend.runner
    events = []
    runner.started.connect(lambda task: events.append(("start", task)))
    runner.ended.connect(lambda task: events.append(("end", task)))
    qtbot.waitUntil(lambda: " of 300" in w.jobs.text.text(), timeout=WAIT)
    assert isinstance(runner.current, IndexTask)
    getter = w.open_settings().getter
    getter.import_folder(str(source))
    # Queued behind the indexing batch, which stops at its next batch for it.
    assert getter.note.text() == "Importing second-model: waiting for indexing to pause…"
    assert not getter.import_button.isEnabled() and not getter.download.isEnabled()
    qtbot.waitUntil(lambda: "second-model is installed." in getter.note.text(), timeout=WAIT)
    assert getter.import_button.isEnabled()
    wait_idle(qtbot, w, photos=300)  # indexing went on afterwards and finished
    assert "second-model" in library.models.store.ids()

    running = None
    for kind, task in events:  # never two tasks at once
        if kind == "start":
            assert running is None, f"{task.title} started while {running.title} ran"
            running = task
        else:
            assert task is running
            running = None
    order = [(kind, type(task)) for kind, task in events]
    i = order.index(("start", ObtainTask))
    assert order[i - 1] == ("end", IndexTask) and events[i - 1][1].preempted
    assert ("start", IndexTask) in order[i + 2:]
    close_window(qtbot, w)


def test_cancelling_a_running_import_leaves_no_half_model(qtbot, library, tmp_path, tiny_folder):
    from app.gui.jobs import ObtainTask

    library.close()
    source = _model_folder(tiny_folder, tmp_path, "holiday-model")
    w = open_window(qtbot)
    runner = w.backend.runner
    gate = threading.Event()

    def hold(task, p):  # on the runner's thread: keep the import at its first step until the click
        if isinstance(task, ObtainTask) and p.stage == "export":
            gate.wait(WAIT / 1000)

    dialog = w.open_settings()
    # Connected last, so the window's own (queued) slots have their progress before this holds the runner.
    runner.progressed.connect(hold, Qt.ConnectionType.DirectConnection)
    dialog.getter.import_folder(str(source))
    # The status bar shows it the way it shows indexing: the stage, a determinate bar, Cancel.
    step = "Importing holiday-model: export 0 of 3"
    qtbot.waitUntil(lambda: w.jobs.text.text() == step and dialog.getter.note.text() == step, timeout=WAIT)
    assert w.jobs.bar.isVisible() and w.jobs.bar.maximum() > 0 and w.jobs.bar.value() == 0
    assert w.jobs.cancel.isVisible() and not w.jobs.pause.isVisible()  # nothing to pause in an import
    w.jobs.cancel.click()
    gate.set()
    qtbot.waitUntil(lambda: dialog.getter.note.text() == "Cancelled; nothing was installed.", timeout=WAIT)
    assert w.status_text.text() == "Cancelled: Importing holiday-model."
    assert "holiday-model" not in library.models.store.ids() and _staging(library) == []
    qtbot.waitUntil(lambda: not w.jobs.isVisible(), timeout=WAIT)
    assert dialog.getter.import_button.isEnabled()
    runner.progressed.disconnect(hold)

    # Closing the window while an import runs cancels it too, and leaves nothing behind.
    dialog.getter.import_folder(str(source))
    qtbot.waitUntil(lambda: w.jobs.text.text().startswith("Importing holiday-model"), timeout=WAIT)
    close_window(qtbot, w)
    assert not library_threads()
    assert "holiday-model" not in library.models.store.ids() and _staging(library) == []


@pytest.fixture
def twin(library):
    """A second model whose image tower is the active one's (so it sees photos the same way)."""
    active = library.models.active()
    shutil.copytree(active.path, library.paths.models / "tiny-twin")
    return "tiny-twin"


def _use(qtbot, w, model_id):
    dialog = w.open_settings()
    qtbot.waitUntil(lambda: dialog.models.topLevelItemCount() >= 2, timeout=WAIT)
    rows = [dialog.models.topLevelItem(i) for i in range(dialog.models.topLevelItemCount())]
    next(r for r in rows if r.text(0) == model_id).setSelected(True)
    dialog.use.click()
    return dialog


def test_a_model_that_sees_photos_alike_is_used_at_once(qtbot, library, tmp_path, twin):
    make_photos(tmp_path / "Pics", 5)
    w = indexed_window(qtbot, library, [tmp_path / "Pics"], photos=5)
    before = w.status.vectors
    stages, seen = [], []
    w.backend.runner.progressed.connect(lambda task, p: stages.append(p.stage))
    w.backend.message.connect(seen.append)
    dialog = _use(qtbot, w, twin)
    qtbot.waitUntil(lambda: w.notice.isVisible() and w.notice.text() == f"Now searching with {twin}.", timeout=WAIT)
    assert seen == [f"Now searching with {twin}."]  # no "Preparing…" first
    assert not any(s.startswith("Preparing") for s in stages)  # nothing was encoded again
    qtbot.waitUntil(lambda: w.status.active_model == twin, timeout=WAIT)
    assert w.status.next_model is None and w.status.vectors == before
    qtbot.waitUntil(lambda: any(dialog.models.topLevelItem(i).text(0) == twin and
                                dialog.models.topLevelItem(i).text(3) == "active"
                                for i in range(dialog.models.topLevelItemCount())), timeout=WAIT)
    search(qtbot, w, "a lake")
    assert w.model.rowCount() == 5
    close_window(qtbot, w)


@pytest.fixture(scope="session")
def other_folder(tmp_path_factory):
    """A model with other weights: its image space differs from the tiny model's."""
    return tiny.save_folder(tiny.make_model(seed=1), tmp_path_factory.mktemp("other") / "tiny-other")


def test_a_model_that_sees_photos_differently_is_prepared_first(qtbot, library, tmp_path, other_folder):
    from model.obtain import import_path

    import_path(library.models.store, other_folder)
    make_photos(tmp_path / "Pics", 6)
    w = indexed_window(qtbot, library, [tmp_path / "Pics"], photos=6)
    old = w.status.active_model
    seen = []
    w.backend.message.connect(seen.append)
    _use(qtbot, w, "tiny-other")
    qtbot.waitUntil(lambda: "Now searching with tiny-other." in seen, timeout=WAIT)
    assert seen[0] == f"Preparing tiny-other: search keeps {old} until its vectors are made."
    qtbot.waitUntil(lambda: w.status.active_model == "tiny-other" and w.status.vectors == 6, timeout=WAIT)
    assert w.status.next_model is None
    search(qtbot, w, "a lake")
    assert w.model.rowCount() == 6
    close_window(qtbot, w)
