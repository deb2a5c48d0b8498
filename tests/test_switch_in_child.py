"""Switching to a model with another image space re-encodes the library. The window does that in the
indexing child process (`ActivateTask` → `tasks.activate(update=…)` → `app.tasks.index_process`), so a
decoder crash during the re-encode is survived like one while indexing: the file is recorded, the rest
is encoded, and the new model takes over. The crash is real (tests/crash_plugin.py, as in
test_index_process.py)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from conftest import make_photos

TESTS = str(Path(__file__).parent)


def _another_model(library, name: str, space: str) -> str:
    """A copy of the active model that claims another image space: switching to it re-encodes."""
    folder = library.paths.models / name
    shutil.copytree(library.models.active().path, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(dict(manifest, id=name, image_space=space)))
    return name


def test_a_decoder_crash_while_a_model_is_prepared_is_survived_and_the_switch_completes(library, tmp_path,
                                                                                         monkeypatch):
    from app import tasks
    from app.tasks import index_process
    from app.tasks.index_child import CRASHED
    from model.jobs import Job

    photos = make_photos(tmp_path / "Photos", 6)
    library.folders.add(str(tmp_path / "Photos"))
    library.update()  # every photo has a vector of the active model
    old = library.models.active_id
    # One photo becomes hostile without its size or time changing: the active model's scan does not
    # open it again, but the new model must decode every photo.
    victim = photos[2]
    st = victim.stat()
    crash = b"GLIMPSE-CRASH\nN"  # tests/crash_plugin.py aborts the process that opens it
    victim.write_bytes(crash + os.urandom(st.st_size - len(crash)))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setenv("GLIMPSE_TEST_DECODER_PLUGIN", "crash_plugin")
    monkeypatch.setenv("PYTHONPATH", TESTS)

    space = "c" * 16
    job, said, crashed = Job(), [], []
    active = tasks.activate(library, _another_model(library, "other", space), job, on_prepare=said.append,
                            update=lambda: index_process.index(library, job, on_crash=lambda path, reason: crashed.append(path)))

    assert active and library.models.active_id == "other"
    assert said == [f"Preparing other: search keeps {old} until its vectors are made."]
    assert crashed == [str(victim)]
    assert {Path(r["path"]).name: r["error"] for r in library.errors()} == {victim.name: CRASHED}
    assert library.status().vectors == 5 and library.space_complete(space)
    log = (library.paths.cache / "index.log").read_text(errors="replace")
    assert log.count("Fatal Python error: Aborted") == 2  # the indexing child, then the probe: not this process
