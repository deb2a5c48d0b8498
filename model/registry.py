"""Base models Glimpse knows how to obtain by name.

Each entry is an open_clip architecture and pretrained tag. The weights come from the
Hugging Face Hub (the tag's `hf_hub` entry in open_clip). Licences are the weights' licences
as their publishers give them; Glimpse shows them before a pull.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaseModel:
    name: str
    architecture: str
    pretrained: str
    licence: str
    summary: str
    hf_hub: str = ""  # open_clip's 'org/repo/[file]' for the weights
    default: bool = False

    @property
    def model_id(self) -> str:
        return self.name


KNOWN: tuple[BaseModel, ...] = (
    BaseModel(
        name="vit-b-32-datacomp",
        architecture="ViT-B-32",
        pretrained="datacomp_xl_s13b_b90k",
        licence="MIT",
        summary="Default. ViT-B/32 trained on DataComp-1B: 69% ImageNet zero-shot, fast on a CPU.",
        hf_hub="laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K/",
        default=True,
    ),
    BaseModel(
        name="mobileclip2-s0",
        architecture="MobileCLIP2-S0",
        pretrained="dfndr2b",
        licence="Apple AMLR (apple-amlr): research use; read its terms before other use",
        summary="Fastest. Apple's MobileCLIP2-S0, about 3x less image compute than ViT-B/32.",
        hf_hub="timm/MobileCLIP2-S0-OpenCLIP/",
    ),
    BaseModel(
        name="xlm-roberta-vit-b-32",
        architecture="xlm-roberta-base-ViT-B-32",
        pretrained="laion5b_s13b_b90k",
        licence="MIT",
        summary="Multilingual queries (about 100 languages). Needs `pip install transformers` to pull.",
        hf_hub="laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k/",
    ),
)


def default() -> BaseModel:
    return next(m for m in KNOWN if m.default)


def find(name: str) -> BaseModel | None:
    """Look a base model up by its name, `ARCH/TAG`, or `ARCH:TAG` (case-insensitive)."""
    key = name.strip().lower().replace(":", "/")
    for m in KNOWN:
        if key in (m.name, f"{m.architecture}/{m.pretrained}".lower()):
            return m
    return None
