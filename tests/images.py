"""Small real images made by the tests: photo-like gradients and shapes, in every colour mode."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, shapes and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        127 + 100 * np.sin(x / (w / (2 + rng.random() * 3)) + rng.random() * 6),
        127 + 100 * np.cos(y / (h / (2 + rng.random() * 3)) + rng.random() * 6),
        127 + 100 * np.sin((x + y) / ((w + h) / (3 + rng.random() * 4))),
    ], axis=-1)
    base += rng.normal(0, 6, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
        x1, y1 = x0 + int(rng.integers(1, max(2, w // 3))), y0 + int(rng.integers(1, max(2, h // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=colour)
    return img
