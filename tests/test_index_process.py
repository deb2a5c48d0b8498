"""The window indexes in a child process, and survives a real native crash in a decoder.

The crash is real: a Pillow plugin (tests/crash_plugin.py, loaded by the child through its test hook)
calls os.abort() when it opens one file, as a crash in libjpeg or libheif would end the process.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import crash_plugin
from conftest import make_photos, run_glimpse, wait_for
from gui import WAIT, close_window, search, wait_idle

TESTS = str(Path(__file__).parent)
CRASHED = "crashed the decoder"


@pytest.fixture
def hostile_decoder(monkeypatch):
    """The indexing process loads the test plugin (files starting with CRASH abort it)."""
    monkeypatch.setenv("GLIMPSE_TEST_DECODER_PLUGIN", "crash_plugin")
    monkeypatch.setenv("PYTHONPATH", TESTS + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))


def _aborts(library) -> int:
    """How many indexing processes aborted (faulthandler writes this to the log when one does)."""
    log = library.paths.cache / "index.log"
    return log.read_text(errors="replace").count("Fatal Python error: Aborted") if log.exists() else 0


def _errors(library) -> dict[str, str]:
    return {Path(r["path"]).name: r["error"] for r in library.errors()}


def test_the_window_survives_a_decoder_crash_and_skips_the_file_until_it_changes(qtbot, library, tmp_path,
                                                                                  hostile_decoder):
    from app.gui.jobs import IndexTask
    from app.gui.window import MainWindow

    photos = tmp_path / "Photos"
    make_photos(photos, 12)
    crash_plugin.write_slow(photos / "slow.jpg")    # in a decoder when the crash comes: innocent
    crash_plugin.write_crash(photos / "bad.jpg", wait_for_slow=True)  # aborts the process that opens it
    library.folders.add(str(photos))
    library.close()

    w = MainWindow()
    qtbot.addWidget(w)
    said: list[str] = []
    w.backend.message.connect(said.append)
    ended: list = []
    w.backend.runner.ended.connect(lambda task: ended.append(task) if isinstance(task, IndexTask) else None)
    w.show()
    w.start()
    wait_idle(qtbot, w, photos=13)
    crashes = [m for m in said if m.startswith("bad.jpg crashed the decoder")]
    assert len(crashes) == 1, said
    assert _aborts(library) == 2, "the indexing process and the one that found the culprit both aborted"
    log = (library.paths.cache / "index.log").read_text(errors="replace")
    assert "probing 2 files" in log, "both files in the decoders were suspects"
    # Every other photo is indexed and searchable (the one in a decoder beside the culprit too)...
    assert w.status.errors == 1
    assert _errors(library) == {"bad.jpg": CRASHED}
    search(qtbot, w, "a lake")
    assert w.model.rowCount() == 13
    assert "slow.jpg" in {Path(r.path).name for r in w.last_answer.results}
    # ... and the file is a problem, with its reason, in the window's list.
    w.library_button.click()
    qtbot.waitUntil(lambda: w.panel.errors.topLevelItemCount() == 1, timeout=WAIT)
    item = w.panel.errors.topLevelItem(0)
    assert (item.text(0), item.text(1)) == ("bad.jpg", CRASHED)
    errors = run_glimpse("errors")
    assert errors.returncode == 0 and f"{photos / 'bad.jpg'}: {CRASHED}" in errors.stdout, errors.stdout

    # A second update does not open it again.
    before = len(ended)
    w.backend.rescan()
    qtbot.waitUntil(lambda: len(ended) > before, timeout=WAIT)
    wait_idle(qtbot, w, photos=13)
    assert _aborts(library) == 2 and len([m for m in said if CRASHED in m]) == 1

    # Once the file changes it is tried again: still hostile, it crashes and stays a problem...
    crash_plugin.write_crash(photos / "bad.jpg")
    w.backend.rescan()
    qtbot.waitUntil(lambda: _aborts(library) == 4, timeout=WAIT)
    wait_idle(qtbot, w, photos=13)
    assert len([m for m in said if CRASHED in m]) == 2 and _errors(library) == {"bad.jpg": CRASHED}
    # ... and once it is a good photo it is indexed (from the watcher's event: a batch of that one file).
    make_photos(tmp_path / "fix", 1, start=99)
    os.replace(tmp_path / "fix" / "photo_00099.jpg", photos / "bad.jpg")
    wait_idle(qtbot, w, photos=14)
    assert _errors(library) == {} and _aborts(library) == 4
    close_window(qtbot, w)


def test_a_crash_no_file_explains_stops_indexing_with_a_message(library, tmp_path, monkeypatch):
    """A process that dies outside the decoders is started again a few times, then indexing gives up."""
    from app.tasks.errors import IndexingStopped, user_message
    from app.tasks.index_process import CRASH_LIMIT, index
    from model.jobs import Job

    make_photos(tmp_path / "Photos", 2)
    library.folders.add(str(tmp_path / "Photos"))
    monkeypatch.setenv("GLIMPSE_TEST_DECODER_PLUGIN", "abort_plugin")
    monkeypatch.setenv("PYTHONPATH", TESTS)
    with pytest.raises(IndexingStopped) as e:
        index(library, Job())
    message = user_message(e.value)
    assert f"crashed {CRASH_LIMIT} times (signal SIGABRT)" in message and "index.log" in message, message
    assert _aborts(library) == CRASH_LIMIT and library.catalog.count() == 0


def _hangs(library) -> int:
    """How many times a hang file was opened (the test plugin says so in the log each time)."""
    log = library.paths.cache / "index.log"
    return log.read_text(errors="replace").count(crash_plugin.HANGING) if log.exists() else 0


@pytest.mark.timeout(90)  # a hang that is not stopped fails here, not at the suite's limit
def test_a_file_that_hangs_the_decoder_is_stopped_recorded_and_skipped(library, tmp_path, monkeypatch,
                                                                      hostile_decoder):
    """A decoder stuck on one file: the child is stopped past HANG_LIMIT (time paused not counted), the probe
    finds the file (and is stopped on it too), the file becomes a problem with its reason, and every other
    photo is indexed."""
    import threading
    import time

    from app.tasks import index_process
    from app.tasks.index_child import HUNG
    from model.jobs import Job

    monkeypatch.setattr(index_process, "HANG_LIMIT", 3.0)
    photos = tmp_path / "Photos"
    make_photos(photos, 6)
    crash_plugin.write_hang(photos / "stuck.jpg")
    library.folders.add(str(photos))
    told: list[tuple[str, str]] = []
    job, ended = Job(), []

    def index() -> None:
        try:
            ended.append(index_process.index(library, job,
                                             on_crash=lambda path, why: told.append((Path(path).name, why))))
        except Exception as e:  # noqa: BLE001 - shown by the assert below
            ended.append(e)

    run = threading.Thread(target=index)
    run.start()
    wait_for(lambda: _hangs(library) == 1, 60, "the decoder to hang")
    job.control.pause()  # paused, the file's time in the decoder stands still: the child is not stopped
    time.sleep(index_process.HANG_LIMIT + 1.0)
    assert "probing" not in (library.paths.cache / "index.log").read_text() and not told
    job.control.resume()
    run.join(60)
    assert len(ended) == 1 and not isinstance(ended[0], Exception), ended
    update = ended[0]
    assert told == [("stuck.jpg", HUNG)]
    assert _hangs(library) == 2, "the indexing process and the probe both hung on it, and were stopped"
    assert update.summary.encoded == 6 and library.catalog.count() == 7
    assert _errors(library) == {"stuck.jpg": HUNG}

    # The next update skips it: it is not opened again, so nothing hangs or waits for the limit.
    update = index_process.index(library, Job(), on_crash=lambda path, reason: told.append((path, reason)))
    assert _hangs(library) == 2 and len(told) == 1 and update.summary.done == 0
    assert _errors(library) == {"stuck.jpg": HUNG}
