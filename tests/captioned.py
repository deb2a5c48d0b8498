"""A small captioned library on disk: named places, each photographed several times (crops, flips,
colour shifts of one scene), captioned through `captions.csv`, plus uncaptioned photos of the same places."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import images

PLACES = ["Mia's lake house", "the Baxter cabin", "Oma's kitchen", "our Tuesday hike", "Uncle Ted's boat",
          "the red barn", "Lena's garden", "the old mill", "grandpa's workshop", "the blue caravan"]
WORDINGS = ["{}", "at {}", "summer at {}", "a day at {}", "{} again", "{} in the evening"]


def variant(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    dx, dy = int(rng.integers(0, w // 6)), int(rng.integers(0, h // 6))
    out = img.crop((dx, dy, dx + w * 5 // 6, dy + h * 5 // 6)).resize((w, h))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    shift = rng.integers(-12, 13, 3)
    arr = np.clip(np.asarray(out, np.int16) + shift, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def make(root: Path, places: int = 6, per_place: int = 5, uncaptioned: int = 2, seed: int = 0) -> dict[str, list[Path]]:
    """Captioned photos in root/captioned (one captions.csv), uncaptioned ones in root/new.
    Returns {place: [uncaptioned paths]}."""
    rng = np.random.default_rng(seed)
    captioned, new = root / "captioned", root / "new"
    captioned.mkdir(parents=True, exist_ok=True)
    new.mkdir(parents=True, exist_ok=True)
    rows, out = [], {}
    for i, place in enumerate(PLACES[:places]):
        scene = images.photo(160, 120, seed=1000 + i)
        for j in range(per_place):
            name = f"p{i}_{j}.jpg"
            variant(scene, rng).save(captioned / name, quality=92)
            rows.append((name, WORDINGS[j % len(WORDINGS)].format(place)))
        out[place] = []
        for j in range(uncaptioned):
            p = new / f"n{i}_{j}.jpg"
            variant(scene, rng).save(p, quality=92)
            out[place].append(p)
    with open(captioned / "captions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption"])
        w.writerows(rows)
    return out
