"""Fine-tuning as a user meets it: `glimpse tune`, and the use case's promises (nothing lost, no re-encoding)."""
from __future__ import annotations

import json
import os
import signal

import pytest

import captioned
from conftest import run_glimpse


@pytest.fixture
def captioned_library(library, tmp_path):
    """The tiny model's library with 8 places x 5 captioned photos, indexed."""
    uncaptioned = captioned.make(tmp_path / "photos", places=8, per_place=5, uncaptioned=2)
    library.folders.add(str(tmp_path / "photos"))
    library.update()
    assert len(library.captions()) == 40
    return library, uncaptioned


def _vector_rows(library) -> int:
    return library.catalog.vector_table(library.models.active().image_space).count_rows()


def test_glimpse_tune_installs_a_text_model_that_shares_the_image_space(captioned_library):
    library, _ = captioned_library
    base = library.models.active()
    rows = _vector_rows(library)
    library.close()

    r = run_glimpse("tune", "--json", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["mode"] == "text" and set(out["before"]) == {"r1", "r5", "r10", "mean_rank"}
    assert isinstance(out["activated"], bool) and 0 <= out["agreement"] <= 1 and out["alpha"] in (0.25, 0.5, 0.75, 1.0)

    from app.library.library import Library
    again = Library()
    tuned = again.models.store.get(out["model"])
    assert tuned.image_space == base.image_space
    assert tuned.manifest["lineage"]["kind"] == "finetune" and tuned.manifest["lineage"]["base"] == base.id
    assert (tuned.path / "open_clip_model.safetensors").is_file()
    # Activating it re-encodes nothing: it is active at once and the next update encodes no photo.
    assert again.activate(tuned.id) is True
    update = again.update()
    assert update.summary.encoded == 0 and _vector_rows(again) == rows
    again.close()


def test_fewer_than_20_captions_is_refused_with_a_clear_message(library, tmp_path):
    captioned.make(tmp_path / "photos", places=3, per_place=5, uncaptioned=0)
    library.folders.add(str(tmp_path / "photos"))
    library.update()
    library.close()
    r = run_glimpse("tune")
    assert r.returncode == 1
    assert "20" in r.stderr and "caption" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("stage", ["train", "export"])
def test_a_killed_training_process_leaves_the_library_as_it_was(captioned_library, stage):
    from app.tasks import tune
    from model.jobs import Job

    library, _ = captioned_library
    active, ids, count = library.models.active_id, library.models.store.ids(), library.catalog.count()
    pid = {}

    def on_event(event):
        if event.get("event") == "child":
            pid["child"] = event["pid"]
        if event.get("event") == "progress" and event.get("stage") == stage and "killed" not in pid:
            pid["killed"] = True
            os.kill(pid["child"], signal.SIGKILL)

    with pytest.raises(tune.TuneError, match="stopped unexpectedly"):
        tune.run(library, tune.TuneOptions(epochs=2), Job(), on_event)
    assert pid.get("killed")
    from model.store import ModelStore

    store = ModelStore(library.models.store.root)  # opening the store sweeps what the kill left
    assert store.ids() == ids and not [p for p in store.root.iterdir() if p.name.startswith(".")]
    assert library.models.active_id == active and library.catalog.count() == count
    from app.library.query import parse

    assert library.searcher().search(parse("Mia's lake house"), k=3)


def test_cancel_kills_the_child_and_installs_nothing(captioned_library):
    from app.tasks import tune
    from model.jobs import Cancelled, Job

    library, _ = captioned_library
    ids = library.models.store.ids()
    job = Job()
    seen = {}

    def on_event(event):
        if event.get("event") == "child":
            seen["pid"] = event["pid"]
        if event.get("event") == "progress" and event.get("stage") == "train":
            job.control.cancel()

    with pytest.raises(Cancelled):
        tune.run(library, tune.TuneOptions(epochs=3), job, on_event)
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)  # gone, not left running
    assert library.models.store.ids() == ids


def test_a_two_tower_model_takes_over_only_when_its_vectors_are_complete(captioned_library):
    from app.tasks import tune
    from model.jobs import Control, Job

    library, _ = captioned_library
    base = library.models.active()
    outcome = tune.run(library, tune.TuneOptions(mode="full", device="cpu", epochs=1), Job())
    tuned = library.models.store.get(outcome.result["model"])
    assert tuned.image_space != base.image_space

    assert library.activate(tuned.id) is False          # it becomes the next model
    assert library.models.active_id == base.id          # search keeps the old vectors meanwhile
    control = Control()

    def stop_early(p):
        if p.done >= 5:
            control.cancel()

    library.update(progress=stop_early, control=control, batch_size=4)
    assert library.models.active_id == base.id          # half its vectors: still the base
    update = library.update()
    assert update.switched_to == tuned.id and library.models.active_id == tuned.id
    assert library.space_complete(tuned.image_space)


def test_glimpse_tune_in_two_processes(captioned_library):
    """`--processes 2`: torchrun starts two training processes (gloo on the CPU); rank 0 reports and installs."""
    library, _ = captioned_library
    library.close()
    r = run_glimpse("tune", "--json", "--epochs", "1", "--processes", "2", "--name", "two-procs")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["model"] == "two-procs" and out["after"]["r5"] is not None


def test_work_folders_of_killed_runs_are_swept(library):
    """A `glimpse tune` killed before its clean-up leaves its work folder (captions, vectors); the next
    run removes it, but never the folder of a run still going."""
    import subprocess
    import sys

    from app.tasks import tune
    from model.jobs import Job

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = library.paths.cache
    (cache / "tune-killed").mkdir(parents=True)
    (cache / "tune-killed" / "pid").write_text(str(dead.pid))
    (cache / "tune-running").mkdir()
    (cache / "tune-running" / "pid").write_text(str(os.getpid()))
    with pytest.raises(tune.TuneError, match="needs at least 20"):
        tune.run(library, tune.TuneOptions(), Job())
    assert not (cache / "tune-killed").exists() and (cache / "tune-running").exists()
    assert sorted(p.name for p in cache.glob("tune-*")) == ["tune-running"]
