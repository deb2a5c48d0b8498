"""Building open_clip models (torch) from a pretrained tag's weights, a folder, or a weights file.

Imported only to obtain, export or train a model. Weights load from safetensors, or from torch
files with `weights_only=True`, so no file can run code when it is loaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ExportError, ImportError_
from .store import describe_architecture
from .tokenizer import build_clip_bpe

WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                "pytorch_model.bin")


@dataclass
class Loaded:
    """An open_clip model with what the store needs to know about it."""
    model: object  # open_clip CLIP / CustomTextCLIP, in eval mode
    name: str  # open_clip model name used for the tokenizer ('ViT-B-32' or 'local-dir:...')
    architecture: str
    model_cfg: dict
    preprocess: dict
    lineage: dict = field(default_factory=dict)


def _quiet_open_clip():
    import logging

    import open_clip

    logging.getLogger("root").setLevel(logging.WARNING)
    return open_clip


def from_weights(architecture: str, weights: str | Path, preprocess: dict | None = None,
                 quick_gelu: bool | None = None, lineage: dict | None = None) -> Loaded:
    """A registered architecture with a weights file (safetensors or torch, loaded weights-only)."""
    open_clip = _quiet_open_clip()
    if architecture not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(architecture, open_clip.list_models(), n=4, cutoff=0.6)
        raise ImportError_(f"Unknown architecture '{architecture}'"
                           + (f" (did you mean {', '.join(close)}?)" if close else "")
                           + ": give open_clip's name, e.g. ViT-B-32 "
                             "(the part before the / in `glimpse models list --available`).")
    try:
        model = open_clip.create_model(architecture, pretrained=None, force_quick_gelu=bool(quick_gelu))
        open_clip.load_checkpoint(model, str(weights), weights_only=True)
    except Exception as e:
        _refuse_pickled(e, weights)
        raise ImportError_(f"The weights in {weights} do not fit {architecture}: {_first_line(e)}") from e
    model.eval()
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    pp = merge_preprocess_dict(PreprocessCfg(), preprocess or {})
    pp["size"] = model.visual.image_size
    cfg = open_clip.get_model_config(architecture)
    if quick_gelu:
        cfg["quick_gelu"] = True
    return Loaded(model, architecture, architecture, cfg, pp, lineage or {})


def from_folder(folder: str | Path) -> Loaded:
    """An open_clip folder: `open_clip_config.json` (model_cfg, preprocess_cfg) plus weights."""
    folder = Path(folder)
    cfg_path = folder / "open_clip_config.json"
    if not cfg_path.is_file():
        raise ImportError_(f"{folder} has no open_clip_config.json. Give a folder as saved by open_clip "
                           "(config + open_clip_model.safetensors), or a weights file with --arch NAME.")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        model_cfg = config["model_cfg"]
    except (ValueError, KeyError, TypeError) as e:
        raise ImportError_(f"{cfg_path} is not a valid open_clip config (needs 'model_cfg'): {_first_line(e)}") from e
    if not any((folder / n).is_file() for n in WEIGHT_NAMES):
        raise ImportError_(f"{folder} holds no weights: expected one of {', '.join(WEIGHT_NAMES[:3])}.")
    open_clip = _quiet_open_clip()
    name = f"local-dir:{folder.resolve()}"
    try:
        model = open_clip.create_model(name, weights_only=True)
    except Exception as e:
        _refuse_pickled(e, folder)
        raise ImportError_(f"open_clip cannot load {folder}: {_first_line(e)}") from e
    model.eval()
    arch = config.get("architecture") or model_cfg.get("name") or registered_name(model_cfg, open_clip) \
        or describe_architecture(model_cfg)
    return Loaded(model, name, str(arch), model_cfg, dict(model.visual.preprocess_cfg),
                  {"kind": "import", "path": str(folder.resolve())})


def registered_name(model_cfg: dict, open_clip) -> str | None:
    """The open_clip architecture whose config is `model_cfg` (a folder's config rarely names it)."""
    for name in open_clip.list_models():
        if open_clip.get_model_config(name) == model_cfg:
            return name
    return None


def tokenizer_spec(loaded: Loaded, out_dir: Path) -> dict:
    """Write the model's tokenizer as `tokenizer.json` into `out_dir`; return the manifest's spec."""
    open_clip = _quiet_open_clip()
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    try:
        tok = open_clip.get_tokenizer(loaded.name)
    except Exception as e:
        raise ExportError(f"Cannot build the tokenizer of {loaded.architecture}: {_first_line(e)}") from e
    context_length = int(getattr(tok, "context_length", None) or loaded.model.context_length)
    kwargs = loaded.model_cfg.get("text_cfg", {}).get("tokenizer_kwargs", {})
    path = out_dir / "tokenizer.json"
    if isinstance(tok, SimpleTokenizer):
        if kwargs.get("clean", "lower") != "lower" or kwargs.get("reduction_mask"):
            raise ExportError(f"Tokenizer options {kwargs} of {loaded.architecture} are not supported.")
        merges = sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)
        build_clip_bpe(tok.encoder, merges, path)
        return {"kind": "clip-bpe", "file": path.name, "context_length": context_length, "clean": "lower",
                "sot_id": int(tok.sot_token_id), "eot_id": int(tok.eot_token_id)}
    if isinstance(tok, HFTokenizer):
        if tok.strip_sep_token or kwargs.get("clean", "whitespace") != "whitespace":
            raise ExportError(f"Tokenizer options {kwargs} of {loaded.architecture} are not supported.")
        tok.tokenizer.backend_tokenizer.save(str(path))
        return {"kind": "hf", "file": path.name, "context_length": context_length, "clean": "whitespace",
                "pad_id": int(tok.tokenizer.pad_token_id), "pad_token": str(tok.tokenizer.pad_token)}
    raise ExportError(f"The tokenizer of {loaded.architecture} ({type(tok).__name__}) is not supported yet.")


def _refuse_pickled(e: BaseException, source) -> None:
    """torch's weights-only refusal, said plainly (its own text suggests loading the file unsafely)."""
    if "Weights only load failed" in str(e):
        raise ImportError_(f"{source} holds Python objects besides weights, which could run code when loaded; "
                           "Glimpse does not load it. Save the weights as safetensors or a plain state dict.") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def from_stored(stored, fetch: bool = True) -> Loaded:
    """The torch model of a stored model: its own `open_clip_model.safetensors` (imported and fine-tuned
    models keep theirs), else a pulled model's weights from the Hugging Face cache (downloaded again
    only when the cache lost them and `fetch`). The lineage is the stored model's own."""
    if (stored.path / WEIGHT_NAMES[0]).is_file():
        loaded = from_folder(stored.path)
        loaded.architecture = stored.manifest.get("architecture") or loaded.architecture
    else:
        lineage = stored.manifest.get("lineage") or {}
        hub = lineage.get("hf_hub")
        if not hub:
            raise ImportError_(f"Model '{stored.id}' keeps no torch weights (it was installed before Glimpse "
                               "kept them): import or pull it again to fine-tune it.")
        from .download import fetch_weights

        if not fetch:
            from .errors import OfflineError
            raise OfflineError(f"The weights of '{stored.id}' are not in the Hugging Face cache.")
        weights = fetch_weights(hub, quiet=True)
        cfg = json.loads((stored.path / "open_clip_config.json").read_text(encoding="utf-8"))
        loaded = from_weights(stored.manifest["architecture"], weights, preprocess=cfg.get("preprocess_cfg"),
                              quick_gelu=cfg.get("model_cfg", {}).get("quick_gelu"))
    loaded.lineage = dict(stored.manifest.get("lineage") or {})
    return loaded


def save_weights(model, path: Path) -> None:
    """The model's weights as safetensors (open_clip's own file name loads them back)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def random_init(architecture: str, seed: int = 0) -> Loaded:
    """A registered architecture with random weights: same compute as the real one (benchmarks, checks)."""
    open_clip = _quiet_open_clip()
    import torch
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    torch.manual_seed(seed)
    model = open_clip.create_model(architecture, pretrained=None).eval()
    pp = merge_preprocess_dict(PreprocessCfg(), {"size": model.visual.image_size})
    return Loaded(model, architecture, architecture, open_clip.get_model_config(architecture), pp,
                  {"kind": "random", "seed": seed})
