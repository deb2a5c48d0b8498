"""Preprocessed photos for the two-tower modes, cached once as a uint8 memmap in the work folder.

Decoding a JPEG costs more than a ViT-B-32 forward on a GPU, so every photo is decoded, resized and
cropped exactly as the model's open_clip transform does (`model.preprocess`) once, before training,
and kept as uint8 pixels ([N, H, W, 3], 150 KB a photo at 224 px). Epochs then read the memmap and
decode nothing; normalisation (mean/std) happens on the device. A photo that cannot be read is marked
and left out of training (`ok`). A later run on the same photos reuses the cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from model.imagefile import ImageError
from model.preprocess import PreprocessConfig, open_image, resize_and_crop


def _pixels(path: str, cfg: PreprocessConfig) -> np.ndarray | None:
    try:
        return np.asarray(resize_and_crop(open_image(path, cfg), cfg), dtype=np.uint8)
    except (ImageError, OSError, ValueError):
        return None


class ImageCache:
    """`paths` preprocessed for `cfg`, in `folder` (built on first use)."""

    def __init__(self, folder: str | Path, paths: list[str], cfg: PreprocessConfig,
                 progress: Callable[[int, int], None] | None = None, check: Callable[[], None] | None = None):
        self.cfg = cfg
        self.paths = list(paths)
        h, w = cfg.size
        key = hashlib.sha256(json.dumps([self.paths, cfg.to_dict()]).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        file, done_file = folder / f"pixels-{key}.u8", folder / f"pixels-{key}.ok.npy"
        shape = (len(self.paths), h, w, 3)
        if done_file.is_file() and file.is_file():
            self.ok = np.load(done_file)
            self.pixels = np.memmap(file, np.uint8, "r", shape=shape) if len(self.paths) else np.zeros(shape, np.uint8)
            return
        self.ok = np.zeros(len(self.paths), bool)
        if not self.paths:
            self.pixels = np.zeros(shape, np.uint8)
            return
        out = np.memmap(file, np.uint8, "w+", shape=shape)
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            for i, px in enumerate(pool.map(lambda p: _pixels(p, cfg), self.paths)):
                if px is not None:
                    out[i] = px
                    self.ok[i] = True
                if progress:
                    progress(i + 1, len(self.paths))
                if check:
                    check()
        out.flush()
        np.save(done_file, self.ok)  # written last: a cache without it is rebuilt
        self.pixels = np.memmap(file, np.uint8, "r", shape=shape)

    def batch(self, rows, device: str | torch.device) -> torch.Tensor:
        """Normalised float32 NCHW pixels of cache rows, on `device`."""
        rows = np.asarray(rows, np.int64)
        x = torch.from_numpy(np.ascontiguousarray(self.pixels[rows]))
        x = x.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        mean = torch.tensor(self.cfg.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.cfg.std, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std
