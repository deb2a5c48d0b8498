"""GPU indexing end to end on camera-size JPEGs: run by hand on a machine with an NVIDIA GPU.

    PYTHONUNBUFFERED=1 python benchmarks/index_gpu.py [--photos 2000] [--arch ViT-B-32] [--budget 540]

One command, one run, ratios from the same machine. It makes --photos photo-like 4032x3024 JPEGs
(quality 90, made once in benchmarks/.cache, all cores), exports the architecture with random weights
(the same compute as trained ones, once), then prints images/s for:
  1. end to end, file to stored vector: the real Library (scan, indexer, catalog writes, tidy) with the
     pipeline it picks itself (the GPU pipeline where it can run), page cache warm;
  2. GPU decode alone (nvImageCodec, bytes already in memory), for each split of a batch between the
     hardware JPEG decoder and the CUDA one (GLIMPSE_GPU_DECODERS), and decode + resize/crop/normalise;
  3. the encoder alone: preprocessed batches already on the GPU, through IO binding (fp32, and fp16);
  4. the CPU-decode pipeline on the same machine: the same indexer with the GPU pipeline off (Pillow
     decoders on every core, the encoder on CUDA where ONNX Runtime has it);
  5. end to end again with the fastest decoder split of 2, when that is not the default.
Target: >= 1,500 images/s end to end. On 16 cores, making 2,064 photos takes about two minutes and the
ViT-B-32 export about one (both kept in benchmarks/.cache for a second run).

Without a GPU it says why the GPU pipeline cannot run and still measures 1 (through the CPU path) and 4,
so it can be tried anywhere with small counts; --dry-run-on-cpu also runs the GPU stages' code (stages
1 to 3 through the GPU pipeline on the CPU device) to test this script:
    python benchmarks/index_gpu.py --photos 16 --warm 4 --batch 8 --dry-run-on-cpu
Each stage prints as soon as it is measured; past --budget seconds the remaining stages are skipped
(said so), so a run under a hard time limit still reports what it got.

A machine without network needs, beyond torch: onnxruntime-gpu (a 256 MB wheel), nvidia-nvimgcodec-cu13
and nvidia-nvjpeg (the `gpu` extra), lancedb (75 MB) with pydantic, deprecation and lance-namespace,
open_clip_torch, ftfy, platformdirs, watchdog, filelock, pillow-heif, rawpy, tokenizers, safetensors.
The script names what fails to import and stops (exit 2).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NEEDED = ["numpy", "PIL", "onnxruntime", "lancedb", "pyarrow", "torch", "open_clip", "ftfy", "platformdirs",
          "watchdog", "filelock", "pillow_heif", "rawpy", "tokenizers", "safetensors", "onnx"]
TARGET = 1500.0
DEVICE = "cuda"  # "cpu" with --dry-run-on-cpu: the GPU stages' code, run on the CPU, to test this script


def _missing() -> list[str]:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if "lancedb" not in missing:
        try:  # its own needs (pydantic, lance-namespace...) show only on import
            importlib.import_module("lancedb")
        except ImportError as e:
            missing.append(f"lancedb's {e.name or e}")
    return missing


class Stages:
    """Runs the stages in turn, each after checking the time left; collects the figures."""

    def __init__(self, budget: float):
        self.start, self.budget, self.rows = time.perf_counter(), budget, []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def run(self, name: str, fn) -> None:
        if self.elapsed() > self.budget:
            print(f"[{self.elapsed():5.0f} s] SKIPPED {name}: past the --budget of {self.budget:.0f} s", flush=True)
            self.rows.append((name, None, "skipped (time budget)"))
            return
        print(f"[{self.elapsed():5.0f} s] {name}…", flush=True)
        try:
            rate, note = fn()
        except Exception as e:  # one stage failing still lets the others report
            import traceback

            traceback.print_exc()
            rate, note = None, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        self.rows.append((name, rate, note))
        shown = f"{rate:8.0f} images/s" if rate is not None else "       -"
        print(f"[{self.elapsed():5.0f} s] {name}: {shown}  {note}", flush=True)


def _read_all(paths: list[Path]) -> int:
    return sum(len(p.read_bytes()) for p in paths)  # into the page cache, as right after a scan


def end_to_end(stored, folder: Path, warm_folder: Path, batch: int):
    """The real Library, as `glimpse index` runs it, in a fresh home; a small warm-up folder first (the
    pipeline's start: torch, CUDA, the sessions and the fp16 check), then the timed folder."""
    from app.library.library import Library

    home = Path(tempfile.mkdtemp(prefix="glimpse-bench-home-"))
    os.environ["GLIMPSE_HOME"] = str(home)
    lib = Library()
    try:
        shutil.copytree(stored.path, lib.paths.models / stored.id)
        lib.models.use(stored.id)
        lib.folders.add(str(warm_folder))
        t0 = time.perf_counter()
        warm = lib.update(batch_size=batch).summary
        print(f"    warm-up: {warm.encoded} photos in {time.perf_counter() - t0:.1f} s on {warm.device}", flush=True)
        lib.folders.add(str(folder))
        n = len(list(folder.glob("*.jpg")))
        t0 = time.perf_counter()
        update = lib.update(batch_size=batch)
        seconds = time.perf_counter() - t0
        s = update.summary
        if s.encoded != n or s.errors:
            raise RuntimeError(f"expected {n} photos encoded, got {s.encoded} ({s.errors} errors: {s.error_list[:3]})")
        stored_vectors = len(lib.catalog.vector_hashes(stored.image_space))
        note = (f"{s.device}; {n} photos, indexer {s.seconds:.2f} s ({n / s.seconds:.0f}/s), whole update "
                f"(scan, writes, tidy) {seconds:.2f} s; {stored_vectors} vectors stored")
        return n / seconds, note
    finally:
        lib.close()
        shutil.rmtree(home, ignore_errors=True)


_dry_pipelines: dict = {}


def _pipeline(stored):
    from model import gpu_pipeline

    if DEVICE == "cpu":
        if stored.image_space not in _dry_pipelines:
            _dry_pipelines[stored.image_space] = gpu_pipeline.GpuPipeline(stored, "cpu")
        return _dry_pipelines[stored.image_space]
    pipeline, reason = gpu_pipeline.pipeline_for(stored)
    if pipeline is None:
        raise _Unavailable(reason)
    return pipeline


def _sync() -> None:
    if DEVICE == "cuda":
        import torch

        torch.cuda.synchronize()


class _Unavailable(Exception):
    pass


DECODER_SPLITS = ["", "hw", "gpu", "hw:0.7,gpu", "hw:0.5,gpu", "hybrid"]  # see model.gpu_pipeline.decoder_backends
best_split: dict[str, float] = {}


def gpu_decode(stored, paths: list[Path], batch: int):
    """nvImageCodec alone, each way of splitting a batch between the hardware decoder and the CUDA one."""
    from model import gpu_pipeline

    pipeline = _pipeline(stored)
    nv = gpu_pipeline._import_nvimgcodec()
    data = [p.read_bytes() for p in paths]

    def decode_all(decoder) -> int:
        refused = 0
        for i in range(0, len(data), batch):
            streams = [nv.CodeStream(d) for d in data[i:i + batch]]
            refused += sum(im is None for im in decoder.decode(streams, params=pipeline._params))
        _sync()
        return refused

    rates = {}
    for spec in DECODER_SPLITS if DEVICE == "cuda" else [""]:
        try:
            decoder = gpu_pipeline._decoder(DEVICE, spec)
            decode_all(decoder)  # warm-up
            t0 = time.perf_counter()
            refused = decode_all(decoder)
            seconds = time.perf_counter() - t0
        except Exception as e:
            print(f"    decoders {spec or 'default'!r}: {type(e).__name__}: {e}", flush=True)
            continue
        if refused:
            print(f"    decoders {spec or 'default'!r}: refused {refused} of {len(data)}", flush=True)
            continue
        rates[spec] = len(data) / seconds
        print(f"    decoders {spec or 'default'!r}: {rates[spec]:.0f} images/s", flush=True)
        del decoder
    if rates:
        spec = max(rates, key=rates.get)
        best_split[spec] = rates[spec]

    def prep_all():
        for i in range(0, len(data), batch):
            x, errors = pipeline.preprocess(data[i:i + batch])
            assert not any(errors)
        _sync()

    prep_all()
    t0 = time.perf_counter()
    prep_all()
    prep = len(data) / (time.perf_counter() - t0)
    splits = ", ".join(f"{k or 'default'} {v:.0f}" for k, v in rates.items())
    return rates.get(""), (f"{len(data)} JPEGs in batches of {batch}; by decoders ({gpu_pipeline.DECODERS_ENV}): "
                           f"{splits}; default decode + resize/crop/normalise: {prep:.0f} images/s")


def encoder_alone(stored, paths: list[Path], batch: int):
    from benchmarks.timing import rate

    pipeline = _pipeline(stored)
    x, _ = pipeline.preprocess([p.read_bytes() for p in paths[:batch]])
    if len(x) < batch:
        x = x.repeat((batch + len(x) - 1) // len(x), 1, 1, 1)[:batch]
    pipeline.run(x)  # the fp16 check, if not done yet

    def fp32():
        pipeline._run(pipeline._session, x)

    r32 = rate(fp32, batch, 3.0, warmup=3, min_calls=3)
    note = f"batch {batch}, IO binding, fp32 {r32:.0f}/s"
    best = r32
    if pipeline._session16 is not None:
        r16 = rate(lambda: pipeline._run(pipeline._session16, x), batch, 3.0, warmup=3, min_calls=3)
        note += f", fp16 {r16:.0f}/s"
        best = r16
    return best, note + f"; in use: {pipeline.precision} ({pipeline.fp16_note})"


def cpu_decode_pipeline(stored, folder: Path, batch: int):
    """The same indexer with the GPU pipeline off: CPU decoders on every core, the encoder where ORT runs."""
    from app.library.catalog import Catalog
    from app.library.formats import Exclusions
    from app.library.indexer import Indexer
    from app.library.scanner import plan
    from model.runtime import Encoder, cpu_threads

    encoder = Encoder(stored)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "catalog")
        try:
            todo = plan(catalog, [str(folder)], Exclusions(), stored.image_space).todo
            summary = Indexer(catalog, encoder, batch_size=batch, gpu=False).run(todo)
        finally:
            catalog.close()
    if summary.encoded != len(todo) or summary.errors:
        raise RuntimeError(f"expected {len(todo)} encoded, got {summary.encoded} ({summary.errors} errors)")
    return len(todo) / summary.seconds, (f"{len(todo)} photos, {cpu_threads()} decoder threads, "
                                         f"encoder on {encoder.device()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=2000, help="camera-size JPEGs to index (default 2000)")
    ap.add_argument("--arch", default=None, help="open_clip architecture (default: the default model's)")
    ap.add_argument("--batch", type=int, default=128, help="batch for the GPU stages and the CPU pipeline")
    ap.add_argument("--warm", type=int, default=64, help="photos indexed first, untimed (the pipeline's start)")
    ap.add_argument("--budget", type=float, default=540.0, help="skip stages that would start after this many s")
    ap.add_argument("--dry-run-on-cpu", action="store_true", help="run the GPU stages' code on the CPU (to test this script)")
    args = ap.parse_args(argv)
    if args.photos < 1 or args.batch < 1:
        ap.error("--photos and --batch must be at least 1")
    missing = _missing()
    if missing:
        print(f"Missing Python packages: {', '.join(missing)}. Install them (or carry their wheels) first.")
        return 2

    import onnxruntime as ort

    from benchmarks.common import CACHE, bench_model, camera_photos
    from model import gpu_pipeline

    stages = Stages(args.budget)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"index_gpu: {time.strftime('%Y-%m-%d %H:%M:%S')}; {os.cpu_count()} CPUs, load {load}; "
          f"onnxruntime {ort.__version__} {ort.get_available_providers()}", flush=True)
    reason = gpu_pipeline.unavailable_reason()
    print(f"pipeline: {gpu_pipeline.describe()}", flush=True)
    if args.dry_run_on_cpu:  # the Library picks the GPU pipeline's code, on the CPU device
        global DEVICE
        DEVICE, reason = "cpu", None
        gpu_pipeline.pipeline_for = lambda model, provider="auto": (_pipeline(model), None)
        print("DRY RUN: the GPU pipeline's code runs on the CPU; the figures say nothing of a GPU", flush=True)
    if reason:
        print(f"GPU pipeline UNAVAILABLE here: {gpu_pipeline.phrase(reason)}. Measuring the CPU path only.",
              flush=True)
    try:
        print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip() or "nvidia-smi: nothing")
    except (OSError, subprocess.TimeoutExpired):
        print("nvidia-smi: not found")

    t0 = time.perf_counter()
    stored = bench_model(args.arch)
    print(f"[{stages.elapsed():5.0f} s] model {stored.manifest['architecture']} ready in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    everything = camera_photos(args.photos + args.warm)
    all_paths = sorted(everything.glob("IMG_*.jpg"))[: args.photos + args.warm]
    work = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))  # beside the photos: hard links work
    folder, warm_folder = work / "photos", work / "warm"
    folder.mkdir()
    warm_folder.mkdir()
    for i, p in enumerate(all_paths):  # hard links: the same files, in two folders of their own
        target = (warm_folder if i >= args.photos else folder) / p.name
        try:
            os.link(p, target)
        except OSError:
            shutil.copy2(p, target)
    paths = sorted(folder.glob("*.jpg"))
    size_mb = _read_all(all_paths) / len(all_paths) / 1e6
    print(f"[{stages.elapsed():5.0f} s] {len(paths)} + {args.photos + args.warm - len(paths)} (warm-up) JPEGs "
          f"4032x3024, mean {size_mb:.1f} MB, ready in {time.perf_counter() - t0:.0f} s", flush=True)

    try:
        stages.run("1. end to end, file to stored vector (Library)", lambda: end_to_end(
            stored, folder, warm_folder, args.batch))
        sample = paths[: min(len(paths), 512)]
        for name, fn in [("2. GPU decode alone", lambda: gpu_decode(stored, sample, args.batch)),
                         ("3. encoder alone", lambda: encoder_alone(stored, sample, args.batch))]:
            if reason:
                why = gpu_pipeline.phrase(reason)
                print(f"[{stages.elapsed():5.0f} s] {name}: not measured ({why})", flush=True)
                stages.rows.append((name, None, f"not measured: {why}"))
            else:
                stages.run(name, fn)
        _read_all(paths)
        stages.run("4. CPU-decode pipeline (same indexer, GPU pipeline off)",
                   lambda: cpu_decode_pipeline(stored, folder, args.batch))
        spec = next(iter(best_split), "")
        if spec and DEVICE == "cuda":  # another split of the decoding beat the default: end to end with it too
            from model import gpu_pipeline

            gpu_pipeline.forget(_pipeline(stored))
            os.environ[gpu_pipeline.DECODERS_ENV] = spec
            stages.run(f"5. end to end, {gpu_pipeline.DECODERS_ENV}={spec}", lambda: end_to_end(
                stored, folder, warm_folder, args.batch))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'stage':<58} | {'images/s':>9} | notes")
    for name, rate, note in stages.rows:
        print(f"{name:<58} | {'-' if rate is None else round(rate):>9} | {note}")
    e2e = max((r[1] for r in stages.rows if r[0].startswith(("1.", "5.")) and r[1]), default=None)
    cpu = next((r[1] for r in stages.rows if r[0].startswith("4.")), None)
    if e2e and cpu:
        print(f"end to end (best) / CPU-decode pipeline: {e2e / cpu:.2f}x")
    met = bool(e2e and not reason and DEVICE == "cuda" and e2e >= TARGET)
    verdict = ("not measurable here (no GPU pipeline)" if reason else "not measurable (dry run on the CPU)"
               if DEVICE == "cpu" else "MET" if met else "NOT MET")
    print(f"target >= {TARGET:.0f} images/s end to end on the GPU: {verdict}")
    print(f"total {stages.elapsed():.0f} s")
    return 0 if all(r[1] is not None or "not measured" in r[2] for r in stages.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
