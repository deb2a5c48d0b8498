"""The GPU indexing pipeline (model/gpu_pipeline.py) on a machine without a GPU.

What can be shown here is shown with the real parts: the fallback and its reason (real ONNX Runtime),
the preprocessing maths in torch against the CPU path on real JPEG files, and the whole pipeline code
(nvImageCodec's decoder, torch, ONNX Runtime through IO binding) run on the CPU device through the real
indexer and catalog: batching, routing of JPEG and other formats, order, errors, the fall back when the
GPU fails mid-run, and the fp16 parity gate. The CUDA device itself is measured by benchmarks/index_gpu.py.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import images
from conftest import ROOT

from model import gpu_pipeline
from model.preprocess import PreprocessConfig, open_image, to_array
from model.runtime import Encoder, cpu_threads, cuda_missing

try:
    gpu_pipeline._import_nvimgcodec()
    NVIMGCODEC = None
except ImportError as e:
    NVIMGCODEC = f"nvImageCodec is not installed here ({e}); pip install -e '.[dev]' brings it"
needs_nvimgcodec = pytest.mark.skipif(NVIMGCODEC is not None, reason=NVIMGCODEC or "")


def _jpeg(img: Image.Image, orientation: int | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[274] = orientation
        kw["exif"] = exif.tobytes()
    img.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- the fallback on this machine --------------------------------------------------------------------
def test_without_a_gpu_indexing_falls_back_to_the_cpu_with_the_reason(library, tmp_path):
    from conftest import make_photos

    reason = gpu_pipeline.unavailable_reason()
    assert reason, "this machine has no NVIDIA GPU: the GPU pipeline must say why it cannot run"
    if cuda_missing():  # onnxruntime without CUDA, or no driver: that is the reason given
        assert reason == cuda_missing()
    assert gpu_pipeline.pipeline_for(library.encoder().model) == (None, reason)
    expected = f"CPU, {cpu_threads()} threads" if cuda_missing() else f"GPU: {gpu_pipeline.gpu_name()}, decode on CPU"
    assert gpu_pipeline.describe() == expected

    photos = tmp_path / "Photos"
    make_photos(photos, 3)
    library.folders.add(str(photos))
    seen = []
    summary = library.update(progress=seen.append).summary
    assert summary.encoded == 3 and summary.errors == 0
    # One wording: what progress showed (the CLI's bar, the window's job bar) is the summary's device.
    assert summary.device == expected and {p.device for p in seen if p.stage == "Indexing"} == {expected}
    assert summary.gpu_note == gpu_pipeline.phrase(reason)  # and why not the GPU, apart


def test_switching_models_asks_for_the_gpu_pipeline_where_it_encodes(library, tmp_path, monkeypatch):
    """The CLI's `glimpse models use` re-encodes in its own process, with the GPU pipeline where it runs.
    (The window's switch encodes in the indexing child instead: tests/test_switch_in_child.py.) Whether
    the pipeline is asked for is seen through `pipeline_for`, the one door to it."""
    from app import tasks
    from conftest import make_photos
    from model.jobs import Job

    import json
    import shutil

    folder = library.paths.models / "other"  # another image tower: switching to it re-indexes
    shutil.copytree(library.models.active().path, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(dict(manifest, id="other", image_space="a" * 16)))
    make_photos(tmp_path / "Photos", 2)
    library.folders.add(str(tmp_path / "Photos"))
    library.update()
    asked = []
    real = gpu_pipeline.pipeline_for
    monkeypatch.setattr(gpu_pipeline, "pipeline_for", lambda *a, **kw: asked.append(a) or real(*a, **kw))
    assert tasks.activate(library, "other", Job(lambda p: None))
    assert library.models.active_id == "other" and len(asked) == 1


def test_cpu_chosen_in_the_settings_is_the_reason(monkeypatch):
    monkeypatch.setenv("GLIMPSE_PROVIDER", "cpu")
    assert gpu_pipeline.unavailable_reason() == "the CPU was chosen in the settings (provider: cpu)"
    assert gpu_pipeline.describe() == f"CPU, {cpu_threads()} threads"


def test_asking_whether_it_can_run_loads_no_torch():
    code = ("import sys; import app.library.indexer; from model import gpu_pipeline; "
            "print(gpu_pipeline.describe()); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "False", r.stdout


# -- the preprocessing maths: torch against model.preprocess, on real JPEG files ------------------------
CONFIGS = {
    "shortest-bicubic-224": PreprocessConfig(),
    "shortest-bilinear-256": PreprocessConfig(size=(256, 256), interpolation="bilinear"),
    "longest-pad": PreprocessConfig(resize_mode="longest", fill_color=0),
    "squash": PreprocessConfig(resize_mode="squash"),
    "not-square": PreprocessConfig(size=(224, 320)),
}
# (width, height, EXIF orientation): DCT scales 4, 2 and 1 on the CPU path, portrait, rotated, upscaled.
SHAPES = [(2016, 1512, None), (1512, 2016, None), (2016, 1512, 6), (900, 600, 8), (640, 427, 3), (150, 100, None)]


@pytest.fixture(scope="module")
def jpeg_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("jpegs")
    paths = []
    for i, (w, h, orientation) in enumerate(SHAPES):
        p = folder / f"photo_{w}x{h}_{orientation}.jpg"
        p.write_bytes(_jpeg(images.photo(w, h, seed=i), orientation))
        paths.append(p)
    return paths


def _full_decode(path: Path):
    """What the GPU decoder hands over: the full-size upright RGB image, (h, w, 3) uint8."""
    import torch

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_torch_preprocessing_matches_the_cpu_path(jpeg_files, name, record_property):
    cfg = CONFIGS[name]
    worst = 1.0
    for path in jpeg_files:
        want = to_array(open_image(path, cfg), cfg)
        got = gpu_pipeline.preprocess_one(_full_decode(path), cfg).numpy()
        assert got.shape == want.shape == (3, *cfg.size)
        worst = min(worst, _cos(got, want))
        assert np.abs(got - want).mean() < 0.02, path.name  # on the normalised scale (~ -1.8..2.1)
    record_property("min_cosine", worst)
    print(f"{name}: preprocessed tensors, min cosine torch vs CPU path {worst:.6f}")
    assert worst >= 0.9995


def test_vectors_of_torch_preprocessing_match_the_cpu_path(jpeg_files, tiny_stored, record_property):
    cfg = tiny_stored.preprocess
    encoder = Encoder(tiny_stored, provider="cpu")
    want = encoder.encode_arrays(np.stack([to_array(open_image(p, cfg), cfg) for p in jpeg_files]))
    got = encoder.encode_arrays(np.stack([gpu_pipeline.preprocess_one(_full_decode(p), cfg).numpy()
                                          for p in jpeg_files]))
    cosines = np.sum(want * got, axis=1)
    record_property("min_cosine", float(cosines.min()))
    print(f"tiny model vectors, torch vs CPU preprocessing: min cosine {cosines.min():.6f}")
    assert cosines.min() >= 0.99
    # and each photo is nearest its own CPU vector: the maths follow the photo, not just any photo
    assert list(np.argmax(got @ want.T, axis=1)) == list(range(len(jpeg_files)))


def test_draft_scale_is_pillows():
    for w, h in [(4032, 3024), (2016, 1512), (640, 480), (300, 200), (2000, 448), (447, 2000)]:
        im = Image.open(io.BytesIO(_jpeg(Image.new("RGB", (w, h)))))
        im.draft("RGB", (224, 224))
        s = gpu_pipeline.draft_scale(w, h, 224)
        assert im.size == ((w + s - 1) // s, (h + s - 1) // s), (w, h, s)


# -- the whole pipeline code on the CPU device ------------------------------------------------------
@needs_nvimgcodec
def test_decoder_split_from_the_environment_variable():
    assert gpu_pipeline.decoder_backends("") is None  # every backend: the default
    assert len(gpu_pipeline.decoder_backends("hw:0.5,gpu")) == 2
    with pytest.raises(ValueError, match="unknown decoder 'nvdec'"):
        gpu_pipeline.decoder_backends("nvdec")


@pytest.fixture
def pipeline(tiny_stored):
    p = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=False, workers=2)
    yield p
    p.close()


def _sources(cfg: PreprocessConfig) -> tuple[list, list[str | None]]:
    """JPEGs (one rotated), a CPU-preprocessed array (as PNG, HEIC, RAW arrive), a CMYK JPEG (which
    Pillow decodes) and a damaged one: what each should give."""
    photos = [images.photo(160 + 16 * i, 120, seed=100 + i) for i in range(6)]
    sources = [_jpeg(photos[0]), _jpeg(photos[1], orientation=6), to_array(photos[2], cfg), _jpeg(photos[3]),
               _jpeg(photos[4].convert("CMYK")), b"\xff\xd8\xff\xe0 not really a JPEG", _jpeg(photos[5])]
    want: list = []
    for s in sources:
        try:
            want.append(s if isinstance(s, np.ndarray) else gpu_pipeline.cpu_pixels(s, cfg))
        except Exception as e:
            want.append(str(e))
    return sources, want


@needs_nvimgcodec
def test_pipeline_keeps_order_and_routes_each_source(pipeline, tiny_stored):
    cfg = tiny_stored.preprocess
    sources, want = _sources(cfg)
    batch, errors = pipeline.preprocess(sources)
    assert errors == [None, None, None, None, None, want[5], None]  # Pillow's reason for the damaged one
    assert want[5].startswith("corrupt or truncated image")
    assert pipeline.stats == {"device_decoded": 4, "cpu_decoded": 1, "arrays": 1}  # the CMYK one went to Pillow
    expected = [w for w in want if not isinstance(w, str)]
    got = batch.numpy()
    for i, w in enumerate(expected):
        assert _cos(got[i], w) >= 0.999, i  # the rotated photo too: EXIF orientation applied on decode
    assert _cos(got[1], gpu_pipeline.cpu_pixels(_jpeg(images.photo(176, 120, seed=101)), cfg)) < 0.99

    vectors, errors2 = pipeline.encode(sources)  # through IO binding
    assert errors2 == errors and vectors.shape == (6, tiny_stored.embed_dim)
    cpu = Encoder(tiny_stored, provider="cpu").encode_arrays(np.stack(expected))
    assert np.sum(vectors * cpu, axis=1).min() >= 0.99
    assert list(np.argmax(vectors @ cpu.T, axis=1)) == list(range(6))


@needs_nvimgcodec
def test_small_pixel_budget_decodes_in_chunks_in_order(tiny_stored):
    p = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=False, pixel_budget=30_000)
    try:
        sources, want = _sources(tiny_stored.preprocess)
        batch, errors = p.preprocess(sources)
        expected = [w for w in want if not isinstance(w, str)]
        assert [_cos(a, b) >= 0.999 for a, b in zip(batch.numpy(), expected)] == [True] * 6
    finally:
        p.close()


def _index(catalog_dir: Path, folder: Path, stored, gpu) -> tuple[object, dict[str, dict], dict[str, np.ndarray]]:
    """Index `folder` into a fresh catalog with the real indexer; returns its summary, rows and vectors by name."""
    from app.library.catalog import Catalog
    from app.library.formats import Exclusions
    from app.library.indexer import Indexer
    from app.library.scanner import plan

    catalog = Catalog(catalog_dir)
    try:
        encoder = Encoder(stored, provider="cpu")
        todo = plan(catalog, [str(folder)], Exclusions(), stored.image_space).todo
        summary = Indexer(catalog, encoder, batch_size=4, gpu=gpu).run(todo)
        rows = {Path(r["path"]).name: r for r in catalog.photos()}
        hashes, vectors = catalog.vectors(stored.image_space)
    finally:
        catalog.close()
    by_hash = dict(zip(hashes, vectors))
    return summary, rows, {name: by_hash.get(r["hash"]) for name, r in rows.items()}


def _mixed_folder(folder: Path) -> None:
    """11 JPEGs (a rotated one, a CMYK one, a copy), 3 PNGs, 1 WebP and a damaged JPEG."""
    folder.mkdir(parents=True)
    for i in range(10):
        orientation = 6 if i == 3 else None
        img = images.photo(200, 150, seed=i)
        (folder / f"j{i:02d}.jpg").write_bytes(_jpeg(img.convert("CMYK") if i == 7 else img, orientation))
    (folder / "copy-of-j02.jpg").write_bytes((folder / "j02.jpg").read_bytes())
    for i in range(3):
        images.photo(150, 200, seed=50 + i).save(folder / f"p{i}.png")
    images.photo(180, 120, seed=60).save(folder / "w0.webp")
    (folder / "broken.jpg").write_bytes((folder / "j00.jpg").read_bytes()[:300])


@needs_nvimgcodec
def test_indexer_through_the_pipeline_matches_the_cpu_run(tmp_path, pipeline, tiny_stored):
    """Ragged batches (16 files, batches of 4, a copy reusing a vector), JPEGs to the pipeline's decoder,
    PNG and WebP to the CPU pool, a damaged JPEG as an error row: the same rows and vectors as the CPU."""
    _mixed_folder(tmp_path / "Photos")
    pipeline.batch_size = 4
    summary, rows, vectors = _index(tmp_path / "gpu", tmp_path / "Photos", tiny_stored, pipeline)
    assert summary.done == 16 and summary.encoded == 14 and summary.reused == 1 and summary.errors == 1
    assert summary.device == "CPU (GPU pipeline code), decode on GPU, fp32"
    assert pipeline.stats == {"device_decoded": 9, "cpu_decoded": 1, "arrays": 4}  # CMYK JPEG: Pillow
    assert rows["broken.jpg"]["status"] == "error" and "corrupt or truncated" in rows["broken.jpg"]["error"]

    summary_cpu, rows_cpu, vectors_cpu = _index(tmp_path / "cpu", tmp_path / "Photos", tiny_stored, False)
    assert summary_cpu.encoded == 14 and summary_cpu.errors == 1
    assert summary_cpu.gpu_note == "the GPU pipeline was not asked for"
    keys = ("status", "width", "height", "hash", "format")
    assert {n: tuple(r[k] for k in keys) for n, r in rows.items()} == \
        {n: tuple(r[k] for k in keys) for n, r in rows_cpu.items()}
    decoded = [n for n in rows if n != "copy-of-j02.jpg"]  # a copy's row may or may not carry one (timing)
    assert [rows[n]["checksum"] for n in decoded] == [rows_cpu[n]["checksum"] for n in decoded]
    cosines = {name: float(v @ vectors_cpu[name]) for name, v in vectors.items() if v is not None}
    assert len(cosines) == 15 and min(cosines.values()) >= 0.99, cosines
    names = sorted(n for n in cosines if n != "copy-of-j02.jpg")  # each row got its own photo's vector
    sim = np.stack([vectors[n] for n in names]) @ np.stack([vectors_cpu[n] for n in names]).T
    assert [names[j] for j in np.argmax(sim, axis=1)] == names


@needs_nvimgcodec
def test_a_gpu_failure_mid_run_falls_back_and_loses_no_rows(tmp_path, tiny_stored):
    class FailsOnSecondBatch(gpu_pipeline.GpuPipeline):
        calls = 0

        def run(self, batch, control=None):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore detail")
            return super().run(batch, control)

    failing = FailsOnSecondBatch(tiny_stored, device="cpu", fp16=False)
    failing.batch_size = 4
    _mixed_folder(tmp_path / "Photos")
    try:
        summary, rows, vectors = _index(tmp_path / "catalog", tmp_path / "Photos", tiny_stored, failing)
        closed_by_the_indexer = failing.closed
    finally:
        failing.close()
    assert failing.calls == 2  # after the failure, the GPU pipeline is not used again in this run
    assert closed_by_the_indexer  # and its workers are stopped
    assert summary.done == 16 and summary.encoded == 14 and summary.errors == 1 and summary.reused == 1
    assert len(rows) == 16 and sum(v is not None for v in vectors.values()) == 15
    assert summary.device == f"CPU, {cpu_threads()} threads"  # the CPU encoder of `_index`
    assert summary.gpu_note == ("the GPU pipeline failed during the run "
                                "(RuntimeError: CUDA error: an illegal memory access was encountered)")


@needs_nvimgcodec
def test_a_cancel_ends_the_model_run(pipeline, tiny_stored):
    from model.jobs import Cancelled, Control

    control = Control()
    control.cancel()
    sources, _ = _sources(tiny_stored.preprocess)
    with pytest.raises(Cancelled):
        pipeline.encode(sources, control)


@needs_nvimgcodec
def test_fp16_only_where_it_agrees_with_fp32(tiny_stored, monkeypatch):
    sources, _ = _sources(tiny_stored.preprocess)
    p = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=True)
    runs = []
    real_run = p._run
    monkeypatch.setattr(p, "_run", lambda session, *a, **kw: runs.append(session) or real_run(session, *a, **kw))
    try:
        fp32 = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=False)
        v16, _ = p.encode(sources)
        assert len(runs) == 2, "the first batch runs once in each precision, and its fp16 vectors are kept"
        again, _ = p.encode(sources)
        assert len(runs) == 3 and runs[-1] is p._session16 and np.allclose(again, v16, atol=1e-6)
        v32, _ = fp32.encode(sources)
        fp32.close()
    finally:
        p.close()
    assert p.precision == "fp16" and p.fp16_note.startswith("fp16: cosine >= "), p.fp16_note
    assert np.sum(v16 * v32, axis=1).min() >= gpu_pipeline.FP16_COS_MIN

    monkeypatch.setattr(gpu_pipeline, "FP16_COS_MIN", 1.0001)  # a bar no fp16 model clears
    strict = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=True)
    try:
        strict.encode(sources)
    finally:
        strict.close()
    assert strict.precision == "fp32" and strict.fp16_note.startswith("fp16 not used: cosine"), strict.fp16_note


@needs_nvimgcodec
def test_the_summary_names_fp16_once_its_check_passed(tmp_path, tiny_stored):
    from conftest import make_photos

    make_photos(tmp_path / "Photos", 3)
    p = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=True)
    try:
        summary, rows, vectors = _index(tmp_path / "catalog", tmp_path / "Photos", tiny_stored, p)
    finally:
        p.close()
    assert summary.encoded == 3 and summary.device == "CPU (GPU pipeline code), decode on GPU, fp16"
