"""CUDA check for ONNX Runtime, run by hand on a machine with an NVIDIA GPU (never in CI or tests).

    python benchmarks/gpu_check.py [--arch ViT-B-32] [--seconds 3]

About five minutes. It exports the default architecture (random weights: same compute), then:
1. confirms both sessions really run on the CUDA execution provider (no silent CPU fallback);
2. checks CUDA against CPU on the same inputs (cosine > 0.999);
3. measures images/s at batch 64 and 256: plain `run` (host arrays in and out) and with IO
   binding (input already on the GPU, output left there);
4. converts the image tower to fp16, and measures it too if it passes parity with fp32.
Exits non-zero if CUDA is not used or parity fails.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.timing import rate  # noqa: E402
from model.export import cosine_min  # noqa: E402

COS_MIN = 0.999


def session(path, providers, level: str = "ORT_ENABLE_ALL"):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and arithmetic, fp32 inputs and outputs; the converter's graph re-sorted."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    half = OnnxModel(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True))
    half.topological_sort()
    onnx.save(half.model, str(dst))


def io_bound_runner(sess, pixels: np.ndarray, device: str = "cuda"):
    """A callable running `sess` with its input already on the GPU and its output kept there."""
    import onnxruntime as ort

    x = ort.OrtValue.ortvalue_from_numpy(pixels, device, 0)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(sess.get_inputs()[0].name, x)
    binding.bind_output(sess.get_outputs()[0].name, device, 0)

    def run():
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def timed(fn, items: int, seconds: float) -> float:
    return rate(fn, items, seconds, warmup=3, min_calls=3)  # a GPU warms up over several calls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--dry-run-on-cpu", action="store_true", help="walk every step on the CPU (to test this script)")
    args = ap.parse_args(argv)

    import torch

    dry = args.dry_run_on_cpu
    if not dry and not torch.cuda.is_available():
        print("No CUDA GPU here: this check needs an NVIDIA GPU and driver.")
        return 2
    if not dry:
        torch.backends.cudnn.version()  # loads cuDNN, which ONNX Runtime's CUDA provider needs too
    import onnxruntime as ort

    from model import registry
    from model.obtain import install
    from model.openclip import random_init
    from model.runtime import CPU, CUDA, Encoder

    device = "cpu" if dry else "cuda"
    provider = CPU if dry else CUDA
    gpu_name = "CPU (dry run)" if dry else torch.cuda.get_device_name(0)
    from model.store import ModelStore

    arch = args.arch or registry.default().architecture
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {gpu_name}; "
          f"onnxruntime {ort.__version__}, providers built {ort.get_available_providers()}", flush=True)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stored = install(ModelStore(tmp), random_init(arch), "check")
        print(f"{arch} exported and parity-checked (torch vs ORT CPU) in {time.perf_counter() - t0:.0f} s", flush=True)

        gpu, cpu = Encoder(stored, provider=device), Encoder(stored, provider="cpu")
        for tower in ("visual", "textual"):
            used = gpu.providers_in_use(tower)
            print(f"{tower} session providers: {used}")
            if used[0] != provider:
                print(f"FAIL: the {tower} session fell back to {used[0]}")
                ok = False
        if not ok:
            print("GPU CHECK FAILED: CUDA is not in use; nothing to measure")
            return 1
        h, w = stored.preprocess.size
        rng = np.random.default_rng(0)
        pixels = rng.standard_normal((16, 3, h, w)).astype(np.float32)
        texts = [f"a photo number {i} of a {c}" for i, c in enumerate(["cat", "dog", "car", "beach"] * 4)]
        img_cos = cosine_min(gpu.encode_arrays(pixels), cpu.encode_arrays(pixels))
        txt_cos = cosine_min(gpu.encode_texts(texts), cpu.encode_texts(texts))
        print(f"CUDA vs CPU parity: images cosine min {img_cos:.6f}, texts cosine min {txt_cos:.6f} "
              f"(needs > {COS_MIN})")
        ok &= img_cos > COS_MIN and txt_cos > COS_MIN

        sess32 = session(stored.visual_path, [provider])
        fp16_path = Path(tmp) / "visual_fp16.onnx"
        to_fp16(stored.visual_path, fp16_path)
        # ORT_ENABLE_ALL adds CPU layout passes that crash ORT 1.31 on this fp16 graph (seen on the CPU).
        sess16 = session(fp16_path, [provider], "ORT_ENABLE_EXTENDED")
        name = sess32.get_inputs()[0].name
        probe = rng.standard_normal((64, 3, h, w)).astype(np.float32)
        fp16_cos = cosine_min(sess16.run(None, {name: probe})[0], sess32.run(None, {name: probe})[0])
        fp16_ok = fp16_cos > COS_MIN
        print(f"fp16 image tower vs fp32: cosine min {fp16_cos:.6f} -> {'passes' if fp16_ok else 'FAILS'} parity")

        rows = []
        for batch in (64, 256):
            x = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
            plain = timed(lambda: sess32.run(None, {name: x}), batch, args.seconds)
            bound = timed(io_bound_runner(sess32, x, device), batch, args.seconds)
            half = timed(io_bound_runner(sess16, x, device), batch, args.seconds) if fp16_ok else float("nan")
            with torch.inference_mode():
                model = random_init(arch).model.to(device)
                xt = torch.from_numpy(x).to(device)

                def eager():
                    model.encode_image(xt, normalize=True)
                    if not dry:
                        torch.cuda.synchronize()

                eager_rate = timed(eager, batch, args.seconds)
            rows.append((batch, eager_rate, plain, bound, half))
            print(f"batch {batch}: torch eager {eager_rate:.0f}, ORT run {plain:.0f}, IO binding {bound:.0f}, "
                  f"fp16 {half:.0f} images/s", flush=True)
        tok = gpu.tokenize(texts * 16)
        text_rate = timed(lambda: gpu.encode_tokens(tok), len(tok), args.seconds)

    print(f"\n{arch} image tower, images/s on {gpu_name}")
    print(f"{'batch':>5} | {'torch eager':>11} | {'ORT run':>9} | {'ORT IO binding':>14} | {'ORT fp16+IOB':>12} | "
          f"{'IOB/run':>7} | {'ORT/torch':>9}")
    for batch, eager_rate, plain, bound, half in rows:
        print(f"{batch:>5} | {eager_rate:>11.0f} | {plain:>9.0f} | {bound:>14.0f} | {half:>12.0f} | "
              f"{bound / plain:>6.2f}x | {bound / eager_rate:>8.2f}x")
    print(f"texts/s at batch {len(tok)} (ORT run): {text_rate:.0f}")
    print("GPU CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
