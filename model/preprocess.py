"""Image decoding and preprocessing in numpy and Pillow, identical to open_clip's eval transform.

open_clip's transform (resize, centre crop or pad, to tensor, normalise) is reproduced step by
step with the same Pillow calls torchvision makes, so vectors match the model's own pipeline;
`tests/test_preprocess.py` checks that for every registered architecture. Two things differ on
purpose, both before the transform: images are converted to RGB first (open_clip converts after
resizing, which resizes palette images with nearest-neighbour), and transparent pixels are laid
over white rather than dropped to whatever colour they hide.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np
from PIL import Image

from .imagefile import decode, image_errors, to_rgb, upright_rgb

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class PreprocessConfig:
    size: tuple[int, int] = (224, 224)  # height, width
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        size = d.get("size", 224)
        size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
        mean = d.get("mean", cls.mean)
        std = d.get("std", cls.std)
        mean = (float(mean),) * 3 if isinstance(mean, (int, float)) else tuple(float(v) for v in mean)
        std = (float(std),) * 3 if isinstance(std, (int, float)) else tuple(float(v) for v in std)
        interpolation = d.get("interpolation") or "bicubic"
        resize_mode = d.get("resize_mode") or "shortest"
        if interpolation not in ("bicubic", "bilinear", "random"):
            raise ValueError(f"unknown interpolation {interpolation!r}")
        if resize_mode not in ("shortest", "longest", "squash"):
            raise ValueError(f"unknown resize mode {resize_mode!r}")
        # open_clip treats 'random' as bicubic at inference.
        interpolation = "bilinear" if interpolation == "bilinear" else "bicubic"
        return cls(size, mean, std, interpolation, resize_mode, int(d.get("fill_color", 0) or 0))

    def to_dict(self) -> dict:
        return {
            "size": list(self.size), "mean": list(self.mean), "std": list(self.std),
            "interpolation": self.interpolation, "resize_mode": self.resize_mode,
            "fill_color": self.fill_color,
        }


def upright(img: Image.Image, cfg: PreprocessConfig | None = None) -> Image.Image:
    """Load an opened image (JPEG at a reduced DCT scale when `cfg` is given), apply EXIF orientation, RGB."""
    return upright_rgb(img, max(cfg.size) if cfg is not None else None)


def open_image(source: str | Path | BinaryIO, cfg: PreprocessConfig | None = None) -> Image.Image:
    """Decode an image file (through `model.imagefile`: RAW and HEIC too) to an upright RGB image.

    With `cfg`, JPEGs are decoded at the smallest DCT scale that still covers the model's
    input (`Image.draft`, up to 8x less work), before the EXIF orientation is applied.
    Pillow's decompression-bomb guard stays on. Errors become `ImageError` with the reason.
    """
    longest = max(cfg.size) if cfg is not None else None
    if isinstance(source, (str, Path)):
        return decode(source, longest)
    with image_errors():
        return upright_rgb(Image.open(source), longest)


def _resized_shortest(w: int, h: int, target: int) -> tuple[int, int]:
    # torchvision's Resize(int): the short side becomes `target`, the long side is truncated.
    if w <= h:
        return target, int(target * h / w)
    return int(target * w / h), target


def _keep_ratio(w: int, h: int, target_h: int, target_w: int, longest: float) -> tuple[int, int]:
    # open_clip's ResizeKeepRatio.get_params, without the random parts.
    ratio_h, ratio_w = h / target_h, w / target_w
    ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
    return round(w / ratio), round(h / ratio)


def _center_crop_or_pad(img: Image.Image, th: int, tw: int, fill: int) -> Image.Image:
    w, h = img.size
    if tw > w or th > h:
        left, top = (tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0
        padded = Image.new(img.mode, (w + max(tw - w, 0), h + max(th - h, 0)), (fill,) * len(img.getbands()))
        padded.paste(img, (left, top))
        img = padded
        w, h = img.size
        if (w, h) == (tw, th):
            return img
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return img.crop((left, top, left + tw, top + th))


def resize_and_crop(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    th, tw = cfg.size
    w, h = img.size
    if cfg.resize_mode == "squash":
        return img.resize((tw, th), _RESAMPLE[cfg.interpolation])
    if cfg.resize_mode == "longest":
        img = img.resize(_keep_ratio(w, h, th, tw, 1.0), _RESAMPLE[cfg.interpolation])
        return _center_crop_or_pad(img, th, tw, cfg.fill_color)
    if th == tw:
        size = _resized_shortest(w, h, th)
        resample = _RESAMPLE[cfg.interpolation]
    else:  # open_clip uses ResizeKeepRatio with its default (bicubic) here
        size, resample = _keep_ratio(w, h, th, tw, 0.0), Image.Resampling.BICUBIC
    if size != (w, h):
        img = img.resize(size, resample)
    return _center_crop_or_pad(img, th, tw, 0)


def to_array(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """An RGB image to the model's normalised float32 CHW input."""
    pixels = np.asarray(resize_and_crop(to_rgb(img), cfg)).transpose(2, 0, 1)
    x = pixels.astype(np.float32)  # one contiguous CHW copy, then in place: (x / 255 - mean) / std
    std = np.asarray(cfg.std, np.float64)
    x *= (1.0 / (255.0 * std)).astype(np.float32)[:, None, None]
    x -= (np.asarray(cfg.mean, np.float64) / std).astype(np.float32)[:, None, None]
    return x


def batch(images: Sequence[Image.Image], cfg: PreprocessConfig) -> np.ndarray:
    return np.stack([to_array(im, cfg) for im in images]) if images else np.zeros((0, 3, *cfg.size), np.float32)
