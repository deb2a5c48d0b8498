"""Getting a model into the store: pull a pretrained tag, or import a folder or weights file.

Every path ends the same way (`install`): tokenizer written, both towers exported, parity
checked against torch, manifest with checksums written, and the folder renamed into the store.
Imports torch and open_clip; the runtime never imports this module.
"""
from __future__ import annotations

import datetime as _dt
import json
from importlib import metadata
from pathlib import Path
from typing import Callable

from . import openclip, registry
from .download import check_online, fetch_weights
from .errors import ImportError_, ModelError, ModelNotFound
from .export import PARITY_TEXTS, export_towers, parity
from .store import ModelStore, StoredModel, sanitize_id, valid_id
from .tokenizer import Tokenizer

Progress = Callable[[str, int, int], None]

# The steps of getting a model in, for people, with their rough share of the time (ViT-B-32 on 2 cores):
# reported as (step, percent done before it, 100), so a bar is determinate and time left can be judged.
STEPS = {"reading weights": 10, "exporting the image tower": 35, "exporting the text tower": 30, "checking": 20,
         "installing": 5}


def step(progress: Progress, name: str) -> None:
    """Report that step `name` of STEPS starts ("installed": all done)."""
    names = list(STEPS)
    done = sum(STEPS.values()) if name not in STEPS else sum(STEPS[n] for n in names[:names.index(name)])
    progress(name, done, sum(STEPS.values()))


def _noop(stage: str, done: int, total: int) -> None:
    pass


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def install(store: ModelStore, loaded: openclip.Loaded, model_id: str, *, licence: str | None = None,
            pretrained: str | None = None, progress: Progress | None = None,
            image_space: str | None = None, keep_weights: bool = False,
            extra: dict | None = None, exists: str = "replace") -> StoredModel:
    """Export `loaded` into the store as `model_id`, atomically, after a parity check.

    `image_space`: declare the base model's space when only the text tower differs from it (the
    default is the space of the exported image tower itself). `keep_weights`: store the torch weights
    too (`open_clip_model.safetensors`), so the model can be fine-tuned or exported as an open_clip
    folder later. `extra`: more manifest fields (a fine-tune's metrics). `exists`: see `ModelStore.install`."""
    progress = progress or _noop
    _check_id(model_id)
    pp = loaded.preprocess
    size = (pp["size"], pp["size"]) if isinstance(pp["size"], int) else tuple(pp["size"])
    with store.staging() as tmp:
        step(progress, "exporting the image tower")
        spec = openclip.tokenizer_spec(loaded, tmp)
        tokens = Tokenizer(tmp / spec["file"], spec)(PARITY_TEXTS)
        spec["variable_length"] = export_towers(loaded.model, tmp, size, tokens,
                                                on_text=lambda: step(progress, "exporting the text tower"))
        step(progress, "checking")
        report = parity(loaded.model, tmp, size, tokens, variable_length=spec["variable_length"])
        step(progress, "installing")
        if keep_weights:
            openclip.save_weights(loaded.model, tmp / openclip.WEIGHT_NAMES[0])
        (tmp / "open_clip_config.json").write_text(json.dumps(
            {"model_cfg": loaded.model_cfg, "preprocess_cfg": pp, "architecture": loaded.architecture},
            indent=2), encoding="utf-8")
        manifest = {
            "id": model_id,
            "architecture": loaded.architecture,
            "pretrained": pretrained,
            "lineage": loaded.lineage,
            "image_space": image_space,
            "licence": licence,
            "embed_dim": report["visual"]["dim"],
            "preprocess": {**pp, "size": list(size)},
            "tokenizer": spec,
            "parity": report,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": {d: _version(d) for d in ("glimpse", "torch", "open_clip_torch", "onnx", "onnxruntime-gpu",
                                                  "onnxruntime") if _version(d)},
            **(extra or {}),
        }
        stored = store.install(tmp, manifest, exists=exists)
    step(progress, "installed")
    return stored


def _check_id(model_id: str) -> None:
    if not valid_id(model_id):
        raise ModelError(f"'{model_id}' cannot name a model: use letters, digits, '.', '_', '+' and '-'.")


def resolve(name: str) -> registry.BaseModel:
    """A registry name, or any open_clip 'ARCH/TAG' (which needs open_clip, so torch, to look up)."""
    base = registry.find(name)
    if base:
        return base
    if "/" not in name and ":" not in name:
        known = ", ".join(m.name for m in registry.KNOWN)
        raise ModelNotFound(f"Unknown model '{name}'. Known: {known}; or any open_clip ARCH/TAG "
                            "(see `glimpse models list --available`).")
    check_online()  # before the slow open_clip import, so offline fails at once
    arch, tag = name.replace(":", "/").split("/", 1)
    cfg = openclip._quiet_open_clip().get_pretrained_cfg(arch, tag)
    if not cfg or not cfg.get("hf_hub"):
        raise ModelNotFound(f"open_clip has no downloadable weights for {arch}/{tag}.")
    return registry.BaseModel(sanitize_id(f"{arch}-{tag}".lower()), arch, tag, licence="see the model card",
                              summary="", hf_hub=cfg["hf_hub"])


def pull(store: ModelStore, name: str, progress: Progress | None = None, quiet: bool = False,
         cache_dir: str | None = None) -> StoredModel:
    """Download a pretrained model's weights and export it into the store.

    For known models the download (or the offline error) comes before torch is imported.
    """
    base = resolve(name)
    weights = fetch_weights(base.hf_hub, progress=progress, quiet=quiet, cache_dir=cache_dir)
    open_clip = openclip._quiet_open_clip()
    text_cfg = (open_clip.get_model_config(base.architecture) or {}).get("text_cfg", {})
    if "hf_model_name" in text_cfg and not _version("transformers"):
        raise ModelError(f"{base.architecture} has a Hugging Face text tower: install transformers first "
                         "(`pip install transformers`), then pull again.")
    cfg = open_clip.get_pretrained_cfg(base.architecture, base.pretrained) or {}
    step(progress or _noop, "reading weights")
    loaded = openclip.from_weights(base.architecture, weights, preprocess=cfg, quick_gelu=cfg.get("quick_gelu"),
                                   lineage={"kind": "pretrained", "tag": base.pretrained, "hf_hub": base.hf_hub})
    return install(store, loaded, base.model_id, licence=base.licence, pretrained=base.pretrained,
                   progress=progress)


def import_path(store: ModelStore, path: str | Path, architecture: str | None = None, name: str | None = None,
                progress: Progress | None = None) -> StoredModel:
    """Import an open_clip folder, or a weights file with its architecture named."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ImportError_(f"{path} does not exist.")
    if not path.is_dir() and not architecture:
        raise ImportError_(f"{path} is a weights file: name its architecture with --arch "
                           "(for example --arch ViT-B-32).")
    model_id = name or sanitize_id(path.resolve().name if path.is_dir() else f"{architecture}-{path.stem}")
    _check_id(model_id)  # before the slow part
    step(progress or _noop, "reading weights")
    if path.is_dir():
        loaded = openclip.from_folder(path)
    else:
        loaded = openclip.from_weights(architecture, path, lineage={"kind": "import", "path": str(path.resolve())})
    # The source may go away (a USB stick, a download folder): keep the weights for fine-tuning and export.
    return install(store, loaded, model_id, progress=progress, keep_weights=True)
