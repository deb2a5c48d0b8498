"""What the benchmarks share: a default-architecture model, camera-size photos, a memory probe.

Files are made once and kept in benchmarks/.cache (git-ignored). The model is exported in a child
process so that the measuring process never imports torch, as in the app.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"

_EXPORT = """
import sys
from model.obtain import install
from model.openclip import random_init
from model.store import ModelStore
install(ModelStore(sys.argv[1]), random_init(sys.argv[2]), sys.argv[3])
"""


def bench_model(arch: str | None = None):
    """The default architecture (random weights: the same compute as trained ones), exported to ONNX."""
    from model import registry
    from model.store import ModelStore

    arch = arch or registry.default().architecture
    store = ModelStore(CACHE / "models")
    model_id = "bench-" + arch.replace("/", "-")
    if not store.exists(model_id):
        print(f"exporting {arch} to ONNX (once)…", flush=True)
        subprocess.run([sys.executable, "-c", _EXPORT, str(store.root), arch, model_id], cwd=ROOT, check=True)
    return store.get(model_id)


def _camera_photo(args) -> None:
    path, seed, (w, h) = args
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    sw, sh = w // 8, h // 8
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32)
    horizon = sh * (0.35 + 0.3 * rng.random())
    sky = np.stack([90 + 60 * y / sh, 140 + 50 * y / sh, 230 - 40 * y / sh], -1)
    ground = np.stack([60 + 40 * rng.random() + 30 * np.sin(x / 17), 90 + 50 * rng.random() + 20 * np.cos(y / 11),
                       40 + 30 * rng.random() + 0 * x], -1)
    scene = np.where((y < horizon + 6 * np.sin(x / 23))[..., None], sky, ground)
    img = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(25):  # trees, houses, people: shapes with edges
        x0, y0 = int(rng.integers(0, sw)), int(rng.integers(int(horizon) - 20, sh))
        bw, bh = int(rng.integers(4, sw // 5)), int(rng.integers(4, sh // 3))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0 - bh, x0 + bw, y0], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(0.8)).resize((w, h), Image.Resampling.BICUBIC)
    a = np.asarray(img, np.float32)
    texture = np.asarray(Image.fromarray(rng.normal(128, 40, (h // 4, w // 4)).clip(0, 255).astype(np.uint8))
                         .resize((w, h), Image.Resampling.BILINEAR), np.float32) - 128
    a += texture[..., None] * 0.5 + rng.normal(0, 5.0, (h, w, 1)).astype(np.float32)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def camera_photos(n: int, size: tuple[int, int] = (4032, 3024)) -> Path:
    """A folder of n photo-like 12 MP JPEGs (quality 90), made once."""
    folder = CACHE / f"photos-{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(folder / f"IMG_{i:04d}.jpg", i, size) for i in range(n) if not (folder / f"IMG_{i:04d}.jpg").exists()]
    if todo:
        print(f"making {len(todo)} camera-size photos (once)…", flush=True)
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(_camera_photo, todo))
    return folder


class PeakMemory:
    """Samples this process's resident memory (Linux /proc) every 20 ms while in the `with` block."""

    def __enter__(self) -> "PeakMemory":
        self.peak = self.start = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
