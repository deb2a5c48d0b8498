"""The int8 image tower (`glimpse models quantize`), the setting that indexes with it, and what the user is
told while indexing: images/s, time left and the device, in the CLI and the window; `glimpse doctor`'s
pipeline. Real ONNX sessions and real files throughout."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from conftest import ROOT, make_photos, run_glimpse


def _vectors(encoder, pixels: np.ndarray) -> np.ndarray:
    return encoder.encode_arrays(pixels)


def test_quantize_adds_an_int8_tower_that_agrees_with_fp32(store_copy, tiny_stored):
    from model.quantize import AGREEMENT, check_images, quantize
    from model.runtime import Encoder

    before = store_copy.get(tiny_stored.id)
    assert before.int8_path is None
    model = quantize(store_copy, tiny_stored.id)
    assert model.int8_path is not None and model.int8_path.is_file()
    model.verify()  # its checksum is in the manifest
    assert model.image_space == before.image_space  # interchangeable vectors: the same space (model.quantize)
    assert not list(model.path.glob("*.tmp")) and not list(store_copy.root.glob(".staging-*"))

    fp32, int8 = Encoder(model, "cpu"), Encoder(model, "cpu", int8=True)
    assert (fp32.image_tower, int8.image_tower) == ("fp32", "int8")
    assert int8.providers_in_use() == ["CPUExecutionProvider"]
    pixels = check_images(model.preprocess, 8)
    a, b = _vectors(fp32, pixels), _vectors(int8, pixels)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= AGREEMENT, cosine  # the stated bound, on new inputs through real sessions
    assert not np.allclose(a, b, atol=1e-6)   # really another tower, not the fp32 one again
    assert model.manifest["int8"]["cosine_min"] >= AGREEMENT
    # Made from another image tower (replaced since): not used.
    stale = json.loads((model.path / "manifest.json").read_text())
    stale["int8"]["from"] = "0" * 64
    (model.path / "manifest.json").write_text(json.dumps(stale))
    assert store_copy.get(model.id).int8_path is None
    assert Encoder(store_copy.get(model.id), "cpu", int8=True).image_tower == "fp32"


def test_a_tower_that_disagrees_is_not_installed(store_copy, tiny_stored, monkeypatch):
    from model import quantize as q

    monkeypatch.setattr(q, "AGREEMENT", 1.0000001)  # no int8 tower agrees that well
    with pytest.raises(q.QuantizeError, match="disagrees with fp32"):
        q.quantize(store_copy, tiny_stored.id)
    model = store_copy.get(tiny_stored.id)
    assert model.int8_path is None and not list(model.path.glob("visual.int8*"))
    model.verify()


def test_the_setting_switches_the_encoder_and_indexing_reports_the_device(library, tmp_path):
    from app.library.catalog import Catalog
    from app.library.indexer import Indexer
    from app.library.scanner import plan
    from app.library.formats import Exclusions
    from model.quantize import quantize
    from model.runtime import cpu_threads

    assert library.encoder().image_tower == "fp32"
    quantize(library.models.store, library.models.active_id)
    assert library.encoder().image_tower == "fp32"  # made, not chosen
    library.settings["int8_image_tower"] = True
    encoder = library.encoder()
    assert encoder.image_tower == "int8" and encoder.visual_file.name.startswith("visual.int8-")
    assert library.models.encoder().image_tower == "int8"

    photos = make_photos(tmp_path / "p", 5)
    catalog = Catalog(tmp_path / "catalog")
    todo = plan(catalog, [str(photos[0].parent)], Exclusions(), encoder.image_space).todo
    seen = []
    Indexer(catalog, encoder, batch_size=2).run(todo, progress=seen.append)
    catalog.close()
    assert seen[-1].done == 5 and seen[-1].rate > 0
    assert seen[-1].device == f"CPU, {cpu_threads()} threads, int8"
    library.settings["int8_image_tower"] = False
    assert library.encoder().image_tower == "fp32"


def test_the_job_bar_shows_rate_time_left_and_device():
    from app.gui.jobbar import describe
    from app.gui.jobs import IndexTask
    from model.jobs import Progress

    p = Progress("Indexing", 120, 300, 25.0, 150.0, device="CPU, 2 threads")
    assert describe(IndexTask(None), p) == "Indexing 120 of 300 · 25.0 images/s · about 2 min left · CPU, 2 threads"
    p = Progress("Indexing", 120, 300, 900.0, 0.2, device="GPU: NVIDIA H200, decode on GPU")
    assert describe(IndexTask(None), p).endswith("900.0 images/s · less than a minute left · "
                                                 "GPU: NVIDIA H200, decode on GPU")
    assert describe(IndexTask(None), p, paused=True) == "Paused: Indexing 120 of 300"


def _on_a_terminal(*args: str, timeout: float = 240) -> str:
    """Run `glimpse ARGS` with stderr on a pseudo-terminal (where the bar shows); all it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # 200 columns for the bar
    proc = subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=slave, env={**os.environ, "COLUMNS": "200"})
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("no output")
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=timeout)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode(errors="replace") + out.decode()


def test_cli_index_shows_images_per_second_time_left_and_device(library, tmp_path):
    from model.runtime import cpu_threads

    library.close()
    photos = tmp_path / "Photos"
    make_photos(photos, 40)
    assert run_glimpse("folders", "add", str(photos)).returncode == 0
    text = _on_a_terminal("index", "--batch-size", "4")
    device = f"CPU, {cpu_threads()} threads"
    # The bar, while indexing: "Indexing: 40%|████ | 16/40 [00:01, 23.5 images/s, 00:01 left, CPU, 2 threads]"
    assert "images/s," in text and " left, " in text and device in text, text
    # The summary: "40 indexed (40 encoded, 0 reused, 31.0 images/s on CPU, 2 threads), …"
    assert f"images/s on {device})" in text and "40 indexed" in text, text


def test_doctor_says_which_pipeline_runs_and_why_not_the_gpu(library):
    from model.gpu_pipeline import unavailable_reason
    from model.runtime import cpu_threads, cuda_missing

    library.close()
    r = run_glimpse("doctor")
    assert r.returncode == 0, r.stderr
    lines = {line[:21].strip(): line[21:].strip() for line in r.stdout.splitlines() if line.startswith("  ")}
    why = unavailable_reason("auto")
    if why is None:  # a GPU machine with the GPU extra
        assert lines["indexing pipeline"].startswith("GPU decode (nvImageCodec) + ONNX Runtime CUDA, on ")
        assert "why not the GPU" not in lines
    else:
        expected = ("CPU decode + ONNX Runtime CUDA, on " if cuda_missing() is None
                    else f"CPU decode + ONNX Runtime on the CPU ({cpu_threads()} threads)")
        assert lines["indexing pipeline"].startswith(expected), r.stdout
        assert lines["why not the GPU"] == why[:1].upper() + why[1:]
    # The CPU chosen in the settings: doctor says so.
    r = run_glimpse("doctor", env={"GLIMPSE_PROVIDER": "cpu"})
    assert f"indexing pipeline  CPU decode + ONNX Runtime on the CPU ({cpu_threads()} threads)" in r.stdout
    assert "why not the GPU    The CPU was chosen in the settings" in r.stdout


def test_cli_quantize_then_info_and_doctor_say_so(library):
    library.close()
    r = run_glimpse("models", "quantize", "--use")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Added an int8 image tower to '{library.models.active_id}'"), r.stdout
    assert "Indexing uses it on the CPU (setting int8_image_tower is on; `glimpse models quantize --off`" in r.stdout
    assert json.loads(library.paths.settings_file.read_text())["int8_image_tower"] is True
    info = run_glimpse("models", "info")
    assert "  int8 tower    visual.int8-" in info.stdout and ": cosine to fp32 ≥ 0.9" in info.stdout
    assert "checksums     ok" in info.stdout
    assert "int8 tower         yes, indexing uses it on the CPU" in run_glimpse("doctor").stdout
    r = run_glimpse("models", "quantize", "no-such-model")
    assert r.returncode == 1 and r.stderr.startswith("glimpse: No model named 'no-such-model'"), r.stderr
    r = run_glimpse("models", "quantize", "--off")
    assert r.returncode == 0 and r.stdout.startswith("Indexing uses the fp32 image tower"), r.stdout
    assert json.loads(library.paths.settings_file.read_text())["int8_image_tower"] is False
    assert "int8 tower         yes, not in use" in run_glimpse("doctor").stdout
    assert "--off" in run_glimpse("models", "quantize", "--help").stdout


def test_cli_int8_file_deleted_by_hand_leaves_the_model_working(library, tmp_path):
    """The int8 tower is optional: without its file, search works, `models list` does not say DAMAGED, and
    `models info` and doctor say it is missing."""
    from model.quantize import quantize

    model = quantize(library.models.store, library.models.active_id)
    library.settings["int8_image_tower"] = True
    library.close()
    int8 = model.int8_path
    int8.unlink()
    photos = tmp_path / "Photos"
    make_photos(photos, 3)
    assert run_glimpse("folders", "add", str(photos)).returncode == 0
    assert run_glimpse("index").returncode == 0
    r = run_glimpse("search", "a photo")
    assert r.returncode == 0 and str(photos) in r.stdout, r.stdout + r.stderr
    listed = run_glimpse("models", "list").stdout
    assert "DAMAGED" not in listed and f"* {model.id}" in listed, listed
    info = run_glimpse("models", "info")
    assert info.returncode == 0, info.stdout + info.stderr
    assert f"int8 tower    unusable: its file {int8.name} is missing; indexing uses the fp32 tower" \
        in info.stdout
    doctor = run_glimpse("doctor")
    assert doctor.returncode == 0 and "int8 tower         unusable (its file" in doctor.stdout, doctor.stdout


def test_cli_quantize_of_a_model_that_is_not_active_says_so(library, tiny_stored):
    import shutil

    library.close()
    shutil.copytree(tiny_stored.path, library.paths.models / "other")
    r = run_glimpse("models", "quantize", "other", "--use")
    assert r.returncode == 0, r.stderr
    assert "Indexing uses it on the CPU once 'other' is the active model (`glimpse models use other`)" in r.stdout
    assert "Indexing uses it on the CPU (" not in r.stdout


def test_settings_box_for_the_int8_tower(qtbot, library):
    """Settings → Model: the box is off until the active model has an int8 tower (its tooltip says that
    turning it on makes one: tests/test_gui_jobs.py does that); ticked, the library's encoder runs it. The
    dialog on a real Backend, without a window."""
    from app.gui.backend import Backend
    from app.gui.settings_dialog import SettingsDialog
    from gui import WAIT
    from model.quantize import quantize

    library.close()
    backend = Backend()
    with qtbot.waitSignal(backend.opened, timeout=WAIT):
        backend.open()
    dialog = SettingsDialog(backend, "light")
    qtbot.addWidget(dialog)
    box = dialog.int8
    qtbot.waitUntil(lambda: dialog.models.topLevelItemCount() == 1, timeout=WAIT)
    assert box.isEnabled() and not box.isChecked()
    assert "turning this on makes one" in box.toolTip() and "glimpse" not in box.toolTip()
    quantize(backend.library.models.store, library.models.active_id)
    backend.refresh_models()
    qtbot.waitUntil(lambda: "cosine ≥ 0.9" in box.toolTip(), timeout=WAIT)
    box.click()
    assert box.isChecked() and backend.library.settings["int8_image_tower"] is True
    assert backend.library.encoder().image_tower == "int8"
    box.click()
    assert backend.library.encoder().image_tower == "fp32"
    dialog.close()
    backend.close()


def test_the_int8_tower_is_optional_missing_or_damaged_the_model_runs_fp32(store_copy, tiny_stored):
    """Deleting or truncating the int8 file by hand: the model still opens (not DAMAGED), runs its fp32
    tower, and says what is wrong with the int8 one."""
    from model.errors import CorruptModel
    from model.quantize import quantize
    from model.runtime import Encoder

    model = quantize(store_copy, tiny_stored.id)
    int8 = model.int8_path
    assert int8.name.startswith("visual.int8-") and model.verify_int8() is None
    int8.write_bytes(int8.read_bytes()[:1000])
    model = store_copy.get(tiny_stored.id)
    assert model.int8_path is None and model.int8_problem == f"its file {int8.name} has the wrong size"
    int8.unlink()
    (entry,) = store_copy.list()
    assert not isinstance(entry, CorruptModel), entry
    model = store_copy.get(tiny_stored.id)
    model.verify()
    assert model.int8_path is None and model.int8_problem == f"its file {int8.name} is missing"
    encoder = Encoder(model, "cpu", int8=True)
    assert encoder.image_tower == "fp32" and encoder.encode_arrays(
        np.zeros((1, 3, *model.preprocess.size), np.float32)).shape == (1, model.embed_dim)


def test_an_int8_file_damaged_in_place_fails_its_checksum_and_is_not_run(store_copy, tiny_stored):
    from model.quantize import quantize
    from model.runtime import Encoder

    int8 = quantize(store_copy, tiny_stored.id).int8_path
    data = bytearray(int8.read_bytes())
    data[50:3000] = b"\x00" * 2950  # same size, garbage inside
    int8.write_bytes(bytes(data))
    model = store_copy.get(tiny_stored.id)
    assert model.verify_int8() == f"its file {int8.name} fails its checksum"
    assert Encoder(model, "cpu", int8=True).image_tower == "fp32"  # it does not load: fp32 runs


def test_a_crash_while_adding_a_new_int8_tower_leaves_the_old_one_whole(store_copy, tiny_stored, monkeypatch):
    """Re-quantising never overwrites the file the manifest names: a crash before the manifest is
    replaced leaves the model (and its int8 tower) as they were."""
    from model import store as store_module
    from model.quantize import quantize

    first = quantize(store_copy, tiny_stored.id).int8_path
    real_replace = store_module.os.replace

    def crash_at_manifest(src, dst):
        if str(dst).endswith("manifest.json"):
            raise OSError("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", crash_at_manifest)
    with store_copy.staging() as tmp:
        staged = tmp / "visual.int8.onnx"
        staged.write_bytes(first.read_bytes() + b"another tower")  # other content, other size
        with pytest.raises(OSError, match="killed"):
            store_copy.add_file(tiny_stored.id, staged, "int8", store_copy.get(tiny_stored.id).manifest["int8"])
    monkeypatch.undo()
    model = store_copy.get(tiny_stored.id)
    assert model.int8_path == first and model.verify_int8() is None
    model.verify()


def test_adding_the_int8_tower_rereads_the_manifest_just_before_the_swap(store_copy, tiny_stored, monkeypatch):
    """What another process wrote to the manifest while the tower was being made is kept; a model whose
    image tower was replaced meanwhile gets no int8 tower made from the old one."""
    from model import store as store_module
    from model.errors import ModelError
    from model.quantize import quantize

    manifest_file = store_copy.root / tiny_stored.id / "manifest.json"
    real_sha = store_module.sha256

    def meanwhile(path):
        if path.name == "visual.int8.onnx":  # the staged file: "another process" changes the manifest now
            m = json.loads(manifest_file.read_text())
            manifest_file.write_text(json.dumps(dict(m, licence="changed meanwhile")))
        return real_sha(path)

    monkeypatch.setattr(store_module, "sha256", meanwhile)
    model = quantize(store_copy, tiny_stored.id)
    assert model.manifest["licence"] == "changed meanwhile" and model.int8_path is not None
    monkeypatch.undo()
    info = dict(model.manifest["int8"], **{"from": "0" * 64})
    with store_copy.staging() as tmp:
        staged = tmp / "visual.int8.onnx"
        staged.write_bytes(b"made from an older visual.onnx")
        with pytest.raises(ModelError, match="changed while"):
            store_copy.add_file(tiny_stored.id, staged, "int8", info)
    assert store_copy.get(tiny_stored.id).manifest["int8"] == model.manifest["int8"]
    assert sorted(p.name for p in model.path.glob("visual.int8*")) == [model.int8_path.name]


def test_quantize_writes_nothing_but_its_tower_in_the_model_folder_and_keeps_the_log_level(store_copy, tiny_stored,
                                                                                         monkeypatch):
    """ONNX Runtime writes a shape-inferred copy beside its input: that input is in the staging folder (swept
    if the process is killed), never the model's folder. The root logger's level is left as it was."""
    import logging

    import onnx.shape_inference

    from model.quantize import quantize

    written = []
    real = onnx.shape_inference.infer_shapes_path

    def record(src, dst=None, *args, **kwargs):
        written.append(dst)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path", record)
    before = sorted(p.name for p in (store_copy.root / tiny_stored.id).iterdir())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        model = quantize(store_copy, tiny_stored.id)
        assert root.level == logging.INFO
    finally:
        root.setLevel(level)
    assert written and all(store_copy.root / tiny_stored.id not in __import__("pathlib").Path(w).parents
                           for w in written), written
    after = sorted(p.name for p in model.path.iterdir())
    assert set(after) - set(before) == {model.int8_path.name}


def test_int8_follows_the_session_that_really_opened_not_the_providers_asked_for(store_copy, tiny_stored,
                                                                                monkeypatch):
    """Where CUDA is asked for but the session falls back to the CPU (here: the CUDA provider with no
    driver, as when a CUDA library is missing), the int8 tower runs."""
    from model import runtime
    from model.quantize import quantize

    model = quantize(store_copy, tiny_stored.id)
    monkeypatch.setattr(runtime, "cuda_missing", lambda: None)  # "a driver is there": CUDA is asked for
    assert runtime.providers_for("auto")[0][0] == runtime.CUDA
    encoder = runtime.Encoder(model, "auto", int8=True)
    assert encoder.providers_in_use() == [runtime.CPU]
    assert encoder.image_tower == "int8" and encoder.visual_file == model.int8_path
    assert encoder.device().endswith(", int8")
