"""The int8 image tower: `visual.onnx` quantised by ONNX Runtime, for faster indexing on a CPU.

Dynamic quantisation (`onnxruntime.quantization.quantize_dynamic`): weights stored as int8, activations
quantised per batch at run time, so no calibration photos are needed. Measured on 2 shared CPU cores
(ViT-B-32, batch 32): fp32 18.7 images/s, int8 45.3 images/s (2.4x); its file is a quarter of the size.
For ViT-B-32-256 on 96 camera photos (benchmarks/results/index_throughput-cpu2-2026-11-30b.txt): encoder
2.2x, whole pipeline 1.8x fp32's, `glimpse index` 3.2x rclip's; against fp32 on those photos, cosine
>= 0.9998, top-10 overlap 93% for 20 text queries and 98.8% for 96 image queries (random weights).
It runs on the CPU only: with CUDA the fp32 (or fp16) tower is faster, and the encoder uses that.

**Image space.** An int8 tower is a different image space only if its vectors differ materially. Here
it is installed only when its vectors agree with the fp32 tower's on a check set (cosine of every
image >= AGREEMENT); it then keeps the model's image space, so int8 and fp32 vectors are mixed in one
catalog on purpose (a search ranks them together, and switching the setting re-encodes nothing). A
tower that agrees less is not installed: `QuantizeError` says by how much. The check uses synthetic
photo-like images; random weights (all that can be had offline here) agree at cosine 0.9998 for
ViT-B-32. Agreement on trained weights cannot be checked here, which is why int8 is not the default.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ModelError
from .preprocess import PreprocessConfig, batch as preprocess_batch
from .store import INT8_FILE, ModelStore, StoredModel

AGREEMENT = 0.99  # the least cosine between an image's int8 and fp32 vectors for the tower to be installed
CHECK_IMAGES = 16


class QuantizeError(ModelError):
    """The int8 tower could not be made, or disagrees with the fp32 one."""


def check_images(cfg: PreprocessConfig, n: int = CHECK_IMAGES) -> np.ndarray:
    """n photo-like images (smooth colour fields with edges and noise), preprocessed for the model."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1234)
    images = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse, "RGB").resize((320, 240), Image.Resampling.BICUBIC)
        d = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, 280)), int(rng.integers(0, 200))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            d.rectangle([x0, y0, x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60))], fill=colour)
        a = np.asarray(img, np.float32) + rng.normal(0, 6, (240, 320, 1))
        images.append(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB"))
    return preprocess_batch(images, cfg)


def agreement(fp32_path: Path, int8_path: Path, pixels: np.ndarray) -> np.ndarray:
    """Cosine between each image's vectors from the two towers (real CPU sessions)."""
    from .runtime import make_session

    out = []
    for path in (fp32_path, int8_path):
        session = make_session(path, "cpu")
        v = session.run(None, {session.get_inputs()[0].name: pixels})[0].astype(np.float64)
        out.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
    return (out[0] * out[1]).sum(axis=1)


def quantize(store: ModelStore, model_id: str, say: Callable[[str], None] | None = None) -> StoredModel:
    """Make `model_id`'s int8 image tower, check it against fp32 and add it to the model's folder.

    Everything is made in a staging folder of the store (swept at its next open if this process dies),
    from a hard link (or copy) of `visual.onnx` there, since ONNX Runtime writes a shape-inferred copy
    of its input beside it. The file is then added by `ModelStore.add_file` (a name of its own, then
    the manifest): a crash leaves the model as it was. Returns the model as stored now."""
    say = say or (lambda _text: None)
    model = store.get(model_id)
    model.verify()
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with store.staging() as tmp:
        source, staged = tmp / "visual.onnx", tmp / INT8_FILE
        try:
            os.link(model.visual_path, source)  # files in the store are never written in place
        except OSError:
            shutil.copyfile(model.visual_path, source)
        say(f"Quantising the image tower of '{model_id}' to int8…")
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))  # it warns on the root logger ("pre-process" advice)
        try:
            quantize_dynamic(source, staged, weight_type=QuantType.QInt8)
        except Exception as e:
            raise QuantizeError(f"ONNX Runtime could not quantise '{model_id}' "
                                f"({str(e).splitlines()[0][:200]}).") from e
        finally:
            root.setLevel(level)
        say("Checking its vectors against the fp32 tower…")
        cosine = agreement(model.visual_path, staged, check_images(model.preprocess))
        if float(cosine.min()) < AGREEMENT:
            raise QuantizeError(f"The int8 tower of '{model_id}' disagrees with fp32 (cosine as low as "
                                f"{cosine.min():.4f}, below {AGREEMENT}); it was not installed.")
        info = {"from": model.manifest["files"]["visual.onnx"],
                "method": "onnxruntime quantize_dynamic, int8 weights",
                "onnxruntime": onnxruntime.__version__, "check_images": int(len(cosine)),
                "cosine_min": round(float(cosine.min()), 6), "cosine_mean": round(float(cosine.mean()), 6)}
        return store.add_file(model_id, staged, "int8", info)
