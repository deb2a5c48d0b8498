"""Files decoded in a GPU batch are reported as in a decoder (`Indexer.on_decode`, "gpu"), and the probe of
the window's indexing process decodes such a suspect through the GPU pipeline's decoder.

No GPU here: the pipeline runs on its CPU device (nvImageCodec's CPU decoder, as tests/test_gpu_pipeline.py
does), through the real indexer and catalog. The decoder is not replaced: its own count of what it decoded
is read while each file is reported in flight.
"""
from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import pytest

import images

from model import gpu_pipeline

try:
    gpu_pipeline._import_nvimgcodec()
    NVIMGCODEC = None
except ImportError as e:
    NVIMGCODEC = f"nvImageCodec is not installed here ({e}); pip install -e '.[dev]' brings it"
pytestmark = pytest.mark.skipif(NVIMGCODEC is not None, reason=NVIMGCODEC or "")


@pytest.fixture
def pipeline(tiny_stored):
    p = gpu_pipeline.GpuPipeline(tiny_stored, device="cpu", fp16=False, workers=2)
    p.batch_size = 4
    yield p
    p.close()


def _jpeg(path: Path, seed: int, mode: str = "RGB") -> None:
    buf = io.BytesIO()
    images.photo(200, 150, seed=seed).convert(mode).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())


def _todo(catalog, folder: Path, stored) -> list:
    from app.library.formats import Exclusions
    from app.library.scanner import plan

    return plan(catalog, [str(folder)], Exclusions(), stored.image_space).todo


def test_a_gpu_batch_reports_its_files_in_flight_while_it_decodes(tmp_path, pipeline, tiny_stored):
    from app.library.catalog import Catalog
    from app.library.indexer import Indexer
    from model.runtime import Encoder

    photos = tmp_path / "Photos"
    photos.mkdir()
    for i in range(7):
        _jpeg(photos / f"j{i}.jpg", i)
    _jpeg(photos / "cmyk.jpg", 20, "CMYK")  # refused by the device decoder: Pillow decodes it in the batch
    images.photo(150, 200, seed=30).save(photos / "p0.png")  # decoded by the CPU pool, never on the GPU
    in_flight: dict[str, bool] = {}  # path -> reported as decoded on the GPU
    decoded_at_start: dict[str, int] = {}
    gpu_files: dict[str, int] = {}  # name -> files the device decoder decoded while this one was in flight

    def on_decode(info, starting: bool, gpu: bool = False) -> None:
        name = Path(info.path).name
        if starting:
            assert info.path not in in_flight, f"{name} reported twice"
            in_flight[info.path] = gpu
            if gpu:
                decoded_at_start[name] = pipeline.stats["device_decoded"] + pipeline.stats["cpu_decoded"]
        elif in_flight.pop(info.path):
            gpu_files[name] = pipeline.stats["device_decoded"] + pipeline.stats["cpu_decoded"] - decoded_at_start[name]

    catalog = Catalog(tmp_path / "catalog")
    try:
        summary = Indexer(catalog, Encoder(tiny_stored, provider="cpu"), batch_size=4, on_decode=on_decode,
                          gpu=pipeline).run(_todo(catalog, photos, tiny_stored))
    finally:
        catalog.close()
    assert summary.done == 9 and summary.encoded == 9 and summary.errors == 0
    assert summary.device == "CPU (GPU pipeline code), decode on GPU, fp32"
    assert pipeline.stats == {"device_decoded": 7, "cpu_decoded": 1, "arrays": 1}
    # Every JPEG was reported as in a GPU decoder, from before its batch's decode to after it: while it was
    # reported, exactly its batch's JPEGs were decoded (batches of 4, the PNG taking a place in one).
    assert sorted(gpu_files) == ["cmyk.jpg"] + [f"j{i}.jpg" for i in range(7)]
    batches: dict[int, list[str]] = {}
    for name, start in decoded_at_start.items():
        batches.setdefault(start, []).append(name)
    assert len(batches) >= 2 and all(len(b) <= 4 for b in batches.values()), batches
    assert all(gpu_files[name] == len(b) for b in batches.values() for name in b), (batches, gpu_files)
    assert in_flight == {}, "every file reported as in a decoder is reported out of it"


def test_the_probe_decodes_a_gpu_suspect_through_the_gpu_decoder(tmp_path, library, pipeline, tiny_stored,
                                                                 monkeypatch):
    from app.tasks import index_child

    photos = tmp_path / "Photos"
    photos.mkdir()
    _jpeg(photos / "gpu.jpg", 1)
    _jpeg(photos / "cpu.jpg", 2)
    files = {Path(f.path).name: asdict(f) for f in _todo(library.catalog, photos, tiny_stored)}
    said: list[dict] = []
    monkeypatch.setattr(index_child, "emit", said.append)  # the events the window would read

    index_child.probe(library, [{**files["gpu.jpg"], "gpu": True}, files["cpu.jpg"]], pipeline)
    assert pipeline.stats == {"device_decoded": 1, "cpu_decoded": 0, "arrays": 0}
    assert [(e["event"], Path(e.get("path") or e["file"]["path"]).name, e.get("gpu")) for e in said] == [
        ("decoding", "gpu.jpg", True), ("decoded", "gpu.jpg", None),
        ("decoding", "cpu.jpg", None), ("decoded", "cpu.jpg", None)]  # that one by Pillow, as the CPU pool did


def test_a_crash_in_the_gpu_decoder_is_found_by_the_probe_and_the_file_skipped(library, tmp_path, monkeypatch):
    """The window's indexing process, with the GPU pipeline's code on the CPU device: a JPEG that crashes
    its decoder (a real abort; Pillow opens the file well) is a suspect because its batch was reported, the
    probe finds it by decoding it as the batch did, and every other photo is indexed."""
    import crash_plugin
    from conftest import make_photos

    from app.tasks import index_process
    from app.tasks.index_child import CRASHED
    from model.jobs import Job

    photos = tmp_path / "Photos"
    make_photos(photos, 6)
    crash_plugin.write_gpu_crash(photos / "bad.jpg", seed=99)
    library.folders.add(str(photos))
    monkeypatch.setenv("GLIMPSE_TEST_DECODER_PLUGIN", "crash_plugin")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    monkeypatch.setenv(crash_plugin.GPU_ON_CPU, "1")
    told: list[tuple[str, str]] = []
    update = index_process.index(library, Job(), on_crash=lambda path, why: told.append((Path(path).name, why)))
    assert told == [("bad.jpg", CRASHED)]
    assert update.summary.encoded == 6 and update.summary.device == "CPU (GPU pipeline code), decode on GPU, fp32"
    assert {Path(r["path"]).name: r["error"] for r in library.errors()} == {"bad.jpg": CRASHED}
    log = (library.paths.cache / "index.log").read_text(errors="replace")
    assert log.count("Fatal Python error: Aborted") == 2, "the indexing process and the probe both aborted"
