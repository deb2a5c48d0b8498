"""A tiny open_clip model made locally (no pretrained weights are reachable in tests)."""
from __future__ import annotations

import json
from pathlib import Path

TINY_ARCH = "glimpse-tiny"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register() -> None:
    from open_clip import factory

    if TINY_ARCH not in factory._MODEL_CONFIGS:
        factory._MODEL_CONFIGS[TINY_ARCH] = json.loads(json.dumps(TINY_CFG))


def make_model(seed: int = 0):
    import open_clip
    import torch

    register()
    torch.manual_seed(seed)
    return open_clip.create_model(TINY_ARCH).eval()


def save_folder(model, folder: Path, preprocess: dict | None = None, model_cfg: dict | None = None) -> Path:
    """Save as an open_clip folder: open_clip_config.json + open_clip_model.safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": model_cfg or TINY_CFG, "preprocess_cfg": preprocess or {
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic", "resize_mode": "shortest"}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder
