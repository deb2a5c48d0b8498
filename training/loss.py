"""CLIP's symmetric InfoNCE for fine-tuning on the user's captions.

As open_clip's ClipLoss, with three differences:
- the temperature is a plain float, the base model's `logit_scale.exp()`, never learned;
- photos that share a caption are never each other's negatives: the target of a text row is
  spread evenly over every image in the batch with the same caption id, and likewise for image rows;
- in text-tower mode the image vectors are fixed, so extra image vectors (a bank, like a MoCo queue)
  can serve as negatives for the text->image direction; entries with the row's caption id are left out;
- captions that are related but not the same ("Aunt Rosa's garden in July" / "Aunt Rosa's garden,
  2019": one place in other words) are left out of each other's softmax: neither pulled together nor
  pushed apart. Without this, the other photos of a place, captioned in other words, were the hardest
  negatives of every caption (and, in the bank, of every step), and the name alone found the place
  no better than chance (benchmarks/finetune.py).

Features are expected L2-normalised, as for ClipLoss.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_caption(row_ids: torch.Tensor, col_ids: torch.Tensor) -> torch.Tensor:
    """Boolean [rows, cols]: True where the caption ids match."""
    return row_ids[:, None] == col_ids[None, :]


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, excluded: torch.Tensor | None = None):
    """Mean over rows of -sum(target * log_softmax(logits)); `excluded` columns are left out of the softmax."""
    if excluded is not None:
        logits = logits.masked_fill(excluded, float("-inf"))
    logp = F.log_softmax(logits, dim=-1)
    if excluded is not None:
        logp = logp.masked_fill(excluded, 0.0)  # target is 0 there: avoids 0 * -inf
    return -(target * logp).sum(dim=-1).mean()


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: float,
                     caption_ids: torch.Tensor | None = None,
                     bank: torch.Tensor | None = None, bank_ids: torch.Tensor | None = None,
                     related: torch.Tensor | None = None, bank_related: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of (image, text) pairs, with a multi-positive target.

    image, text: [N, D] normalised features of N pairs. caption_ids: [N] ints, equal for pairs that
    share a caption (None: all distinct, which is plain CLIP). bank: [M, D] fixed image vectors, extra
    negatives for the text->image direction; bank_ids: [M] their caption ids (required with a bank).
    related: [N, N] bool, pairs whose captions are related but not the same (`data.related_captions`):
    neither positives nor negatives, left out of both softmaxes; bank_related: [N, M] the same for the bank.
    """
    n = image.shape[0]
    if caption_ids is None:
        caption_ids = torch.arange(n, device=image.device)
    same = same_caption(caption_ids, caption_ids)
    positive = same.to(image.dtype)
    target = positive / positive.sum(dim=1, keepdim=True)  # symmetric: rows and columns alike
    aside = None if related is None else related.to(image.device) & ~same

    logits_per_image = logit_scale * image @ text.T
    logits_per_text = logit_scale * text @ image.T
    image_loss = _soft_cross_entropy(logits_per_image, target, aside)

    if bank is None or bank.shape[0] == 0:
        text_loss = _soft_cross_entropy(logits_per_text, target, aside)
    else:
        if bank_ids is None:
            raise ValueError("a bank of image vectors needs the caption id of each entry")
        bank = bank.to(text.dtype).detach()
        logits_per_text = torch.cat([logits_per_text, logit_scale * text @ bank.T], dim=1)
        in_bank = same_caption(caption_ids, bank_ids.to(caption_ids.device))
        if bank_related is not None:
            in_bank = in_bank | bank_related.to(in_bank.device)
        excluded = torch.cat([torch.zeros_like(same) if aside is None else aside, in_bank], dim=1)
        target = torch.cat([target, target.new_zeros(n, bank.shape[0])], dim=1)
        text_loss = _soft_cross_entropy(logits_per_text, target, excluded)
    return (image_loss + text_loss) / 2


class CaptionLoss(nn.Module):
    """`contrastive_loss` with the base model's temperature held fixed (a float, not a parameter)."""

    def __init__(self, logit_scale: float):
        super().__init__()
        self.logit_scale = float(logit_scale)

    def forward(self, image, text, caption_ids=None, bank=None, bank_ids=None, related=None, bank_related=None):
        return contrastive_loss(image, text, self.logit_scale, caption_ids, bank, bank_ids, related, bank_related)
