"""The text tower at the batch's own token length.

CLIP's text tower is causal and pools at the end-of-text token, so nothing before that token sees
the padding after it: running on the first L columns (L = the batch's last end-of-text + 1) gives the
same vectors as the full context of 77, for a fraction of the work. The export relies on the same fact
(model.export.variable_length_text). Gradients flow as through `encode_text`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from model.export import variable_length_text


def batch_length(tokens: torch.Tensor) -> int:
    """Columns up to the batch's last end-of-text token (CLIP's ids: the end is the highest id)."""
    return int(tokens.argmax(dim=-1).max()) + 1 if tokens.numel() else 0


def encode_text_trimmed(model, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """`model.encode_text(tokens, normalize)` run on the first `batch_length(tokens)` columns only."""
    if not variable_length_text(model):
        raise ValueError("this text tower cannot be trimmed: it is not CLIP's causal tower with end-of-text pooling")
    n = batch_length(tokens)
    ids = tokens[:, :n]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(ids).to(cast_dtype) + model.positional_embedding[:n].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x, dim=-1) if normalize else x
