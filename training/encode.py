"""The towers run for evaluation (no gradient): text at each batch's own length, photos from the cache.

On CUDA the towers run under bf16 autocast, as in training; vectors come back as float32 numpy, L2
normalised. Texts are encoded sorted by token length, so each trimmed batch pads little.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from .text import encode_text_trimmed


def autocast(device: str):
    """bf16 autocast on CUDA (tensor cores, half the activation memory); nothing on the CPU."""
    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def text_vectors(model, tokens: torch.Tensor, device: str, batch: int = 256) -> np.ndarray:
    """[N, D] normalised text vectors of token rows."""
    if len(tokens) == 0:
        return np.zeros((0, _dim(model)), np.float32)
    order = np.argsort(tokens.argmax(dim=-1).numpy(), kind="stable")
    out = np.zeros((len(tokens), _dim(model)), np.float32)
    for i in range(0, len(order), batch):
        rows = order[i:i + batch]
        with autocast(device):
            x = encode_text_trimmed(model, tokens[rows].to(device), normalize=False)
        out[rows] = F.normalize(x.float(), dim=-1).cpu().numpy()
    return out


@torch.no_grad()
def image_vectors(model, cache, rows, device: str, batch: int = 128) -> np.ndarray:
    """[len(rows), D] normalised image vectors of cache rows (from the cached pixels)."""
    rows = np.asarray(rows, np.int64)
    out = np.zeros((len(rows), _dim(model)), np.float32)
    for i in range(0, len(rows), batch):
        with autocast(device):
            x = model.encode_image(cache.batch(rows[i:i + batch], device), normalize=False)
        out[i:i + batch] = F.normalize(x.float(), dim=-1).cpu().numpy()
    return out


@contextlib.contextmanager
def without_projection(model):
    """The text tower with its final projection left out (quick mode trains only that projection)."""
    proj = model.text_projection
    model.text_projection = None
    try:
        yield model
    finally:
        model.text_projection = proj


@torch.no_grad()
def pooled_text(model, tokens: torch.Tensor, device: str, batch: int = 256) -> torch.Tensor:
    """[N, width] pooled text features before the projection, float32 on `device`."""
    parts = []
    with without_projection(model):
        for i in range(0, len(tokens), batch):
            parts.append(encode_text_trimmed(model, tokens[i:i + batch].to(device), normalize=False).float())
    return torch.cat(parts) if parts else torch.zeros(0, model.ln_final.normalized_shape[0], device=device)


def _dim(model) -> int:
    proj = model.text_projection
    return int(proj.weight.shape[0] if isinstance(proj, torch.nn.Linear) else proj.shape[1])
