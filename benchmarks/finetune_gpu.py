"""Two-tower fine-tuning on an NVIDIA GPU: pairs/s of LoRA and full fine-tuning, and the exported ONNX on
ONNX Runtime's CUDA provider against torch. Run by hand on a machine with a GPU (never in CI or tests).

    python benchmarks/finetune_gpu.py [--batch 256] [--seconds 20] [--out FILE]

About three minutes. ViT-B-32 with random weights (the same compute as trained ones), bf16 autocast:
1. for `lora` and `full`, the training package's own step (`training.trainer.Trainer.step`: both towers,
   the contrastive loss at the base's fixed temperature, the anchor prompts' drift term, AdamW, gradient
   clipping) on synthetic 224x224 photos held as uint8 pixels and normalised on the device, as the
   trainer's image cache does; timed after warm-up, CUDA synchronised. Target: >= 2,500 pairs/s on an
   H200-class GPU;
2. the fully tuned model exported as `glimpse tune` exports it (`model.obtain.install`, with its CPU
   parity check), then run on the CUDA execution provider (checked really in use) against torch fp32 on
   the GPU: cosine > 0.9999 for both towers.
The log is written to benchmarks/results/finetune_gpu-<gpu>-<date>.log (or --out). Exits 2 without a
CUDA GPU, 1 when a check fails. `--dry-run-on-cpu` walks every step on the CPU at a small batch (to
test this script; its figures mean nothing).
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ARCH = "ViT-B-32"
TARGET = 2500.0      # pairs/s
COS_MIN = 0.9999
PLACES = ["Mia's lake house", "the Baxter cabin", "Oma's kitchen", "our Tuesday hike", "Grandpa's boat",
          "the old school gym", "Aunt Rosa's garden", "the summer camp by the river"]
FRAMES = ["{}", "{} in winter", "kids playing at {}", "sunset over {}, 2019", "a rainy afternoon at {} with the dogs"]


class Log:
    """Prints and keeps every line for the log file."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def synthetic_photos(n: int, cfg):
    """An `ImageCache` of n random photos, held in memory: the trainer reads them through the same
    `batch()` (uint8 -> device -> normalised) as real ones, with no files decoded."""
    from training.images import ImageCache

    class Synthetic(ImageCache):
        def __init__(self):  # noqa: D401  (no files: pixels made here)
            h, w = cfg.size
            self.cfg = cfg
            self.paths = [f"synthetic-{i}" for i in range(n)]
            self.pixels = np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
            self.ok = np.ones(n, bool)

    return Synthetic()


def trainer_for(mode: str, loaded, batch: int, device: str):
    """A `training.trainer.Trainer` of `mode` as `training.run` builds it, on synthetic pairs."""
    import torch

    from model.preprocess import PreprocessConfig
    from training import evaluate
    from training.run import ANCHOR_WEIGHT
    from training.trainer import DEFAULTS, Trainer

    import open_clip

    tokenizer = open_clip.get_tokenizer(ARCH)
    n = 4 * batch  # four distinct batches, drawn in turn
    rng = random.Random(0)
    tokens = tokenizer([rng.choice(FRAMES).format(rng.choice(PLACES)) + f" #{i}" for i in range(n)])
    model = loaded.model
    dim = model.text_projection.shape[-1]
    return Trainer(model, mode, tokens=tokens, vectors=np.zeros((n, dim), np.float32),
                   caption_ids=np.arange(n), folders=np.zeros(n, np.int64), train=np.arange(n),
                   logit_scale=float(model.logit_scale.detach().exp()), epochs=1, batch_size=batch,
                   lr=DEFAULTS[mode].lr, device=device,
                   images=synthetic_photos(n, PreprocessConfig.from_dict(loaded.preprocess)),
                   anchors=torch.as_tensor(tokenizer(list(evaluate.ANCHOR_PROMPTS))), anchor_weight=ANCHOR_WEIGHT,
                   on_note=lambda message: print(f"  note: {message}", flush=True))


def pairs_per_s(trainer, batch: int, seconds: float, device: str, warmup: int = 3) -> tuple[float, int, float]:
    """Pairs/s of `trainer.step` after `warmup` steps (synchronised on CUDA); also the steps timed and the
    last loss."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rows = np.arange(len(trainer.train_rows))
    batches = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    loss = float("nan")
    for i in range(warmup):
        loss = trainer.step(batches[i % len(batches)])
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        loss = trainer.step(batches[steps % len(batches)])  # a float: waits for the step's loss anyway
        steps += 1
    sync()
    return steps * batch / (time.perf_counter() - start), steps, loss


def onnx_against_torch(model, stored, device: str, provider: str, log: Log) -> bool:
    """The stored ONNX towers on `provider` against the torch model (fp32, no autocast) on `device`."""
    import torch

    from model.export import cosine_min
    from model.runtime import Encoder

    encoder = Encoder(stored, provider="cpu" if provider == "CPUExecutionProvider" else "cuda")
    ok = True
    for tower in ("visual", "textual"):
        used = encoder.providers_in_use(tower)
        log(f"ONNX {tower} session providers: {used}")
        if used[0] != provider:
            log(f"FAIL: the {tower} session fell back to {used[0]}")
            ok = False
    if not ok:
        return False
    h, w = stored.preprocess.size
    pixels = np.random.default_rng(1).standard_normal((16, 3, h, w)).astype(np.float32)
    texts = [f"{f.format(p)}" for p in PLACES for f in FRAMES][:32]
    torch.backends.cuda.matmul.allow_tf32 = False  # a full-precision reference
    torch.backends.cudnn.allow_tf32 = False
    model = model.float().eval().to(device)
    with torch.no_grad():
        ref_img = model.encode_image(torch.from_numpy(pixels).to(device), normalize=True).float().cpu().numpy()
        tok = torch.from_numpy(encoder.tokenize(texts)).long().to(device)
        ref_txt = model.encode_text(tok, normalize=True).float().cpu().numpy()
    got_img, got_txt = encoder.encode_arrays(pixels), encoder.encode_texts(texts)
    for what, a, b in (("images", got_img, ref_img), ("texts", got_txt, ref_txt)):
        cos, diff = cosine_min(a, b), float(np.abs(a - b).max())
        passed = cos > COS_MIN
        ok &= passed
        log(f"ONNX on {provider} vs torch ({device}, fp32), {what}: cosine min {cos:.6f}, max abs diff {diff:.2e} "
            f"-> {'passes' if passed else 'FAILS'} (needs cosine > {COS_MIN})")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per mode, after warm-up")
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--out", type=Path, help="log file (default benchmarks/results/finetune_gpu-GPU-DATE.log)")
    ap.add_argument("--dry-run-on-cpu", action="store_true",
                    help="every step on the CPU at --batch 8 and 2 s (tests this script; figures meaningless)")
    args = ap.parse_args(argv)

    import torch

    dry = args.dry_run_on_cpu
    if not dry and not torch.cuda.is_available():
        print("No CUDA GPU here: this benchmark needs an NVIDIA GPU and driver (torch.cuda.is_available() is "
              "False). Use --dry-run-on-cpu to test the script itself.", file=sys.stderr)
        return 2
    if dry:
        args.batch, args.seconds = min(args.batch, 8), min(args.seconds, 2.0)
    device = "cpu" if dry else "cuda"
    if not dry:
        torch.backends.cudnn.version()  # loads cuDNN, which ONNX Runtime's CUDA provider needs too
    import onnxruntime as ort

    from model.obtain import install
    from model.openclip import random_init
    from model.runtime import CPU, CUDA
    from model.store import ModelStore

    provider = CPU if dry else CUDA
    gpu = "CPU (dry run)" if dry else torch.cuda.get_device_name(0)
    short = "cpu-dry-run" if dry else re.sub(r"[^a-z0-9]+", "-", gpu.lower().replace("nvidia", "")).strip("-")
    out = args.out or ROOT / "benchmarks" / "results" / f"finetune_gpu-{short}-{dt.date.today()}.log"
    log = Log()
    log(f"# python benchmarks/finetune_gpu.py {' '.join(argv if argv is not None else sys.argv[1:])}   "
        f"({dt.datetime.now():%Y-%m-%d %H:%M})")
    log(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {gpu}; onnxruntime {ort.__version__}, "
        f"providers built {ort.get_available_providers()}")
    log(f"{ARCH}, random weights; batch {args.batch}; {'no autocast (CPU)' if dry else 'bf16 autocast'}; "
        f"{args.seconds:.0f} s timed per mode after 3 warm-up steps")

    ok = True
    rates = {}
    tuned = None  # the fully tuned model, exported below
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        loaded = random_init(ARCH)
        t0 = time.perf_counter()
        trainer = trainer_for(mode, loaded, args.batch, device)
        rate, steps, loss = pairs_per_s(trainer, args.batch, args.seconds, device)
        trainable = sum(p.numel() for p in trainer.params)
        peak = torch.cuda.max_memory_allocated() / 2**30 if not dry else float("nan")
        rates[mode] = rate
        log(f"{mode:5s}: {rate:8.1f} pairs/s  ({steps} steps of {trainer.batch_size}, loss {loss:.3f}, "
            f"{trainable / 1e6:.1f} M trainable parameters, peak GPU memory {peak:.1f} GiB, "
            f"{time.perf_counter() - t0:.0f} s with set-up)")
        if not np.isfinite(loss):
            ok = False
        if mode == "full":
            from training.trainer import finish

            tuned = loaded
            tuned.model = finish(trainer.trained, mode)
        del trainer
        if not dry:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    what = "fully tuned" if tuned is not None else "base"
    loaded = tuned or random_init(ARCH)
    loaded.model = loaded.model.to("cpu").float().eval()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stored = install(ModelStore(tmp), loaded, "tuned", keep_weights=True)
        log(f"{what} {ARCH} exported as `glimpse tune` exports it (with its torch-vs-ORT-CPU parity check) "
            f"in {time.perf_counter() - t0:.0f} s")
        ok &= onnx_against_torch(loaded.model, stored, device, provider, log)

    log()
    for mode, rate in rates.items():
        log(f"{mode}: {rate:.0f} pairs/s -> {'reached' if rate >= TARGET else 'NOT reached'} (target >= {TARGET:,.0f} "
            f"pairs/s on an H200-class GPU)")
    log("FINETUNE GPU CHECK " + ("PASSED" if ok else "FAILED") + (" (dry run on the CPU)" if dry else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(log.lines) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
