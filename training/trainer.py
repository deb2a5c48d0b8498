"""The training loop of the four modes, one step at a time.

Modes
- `text` (the default, any CPU): the image tower is frozen, so the catalog's vectors of the captioned
  photos *are* the image features: nothing is decoded and the photo index stays valid. Only the text
  tower learns, run at each batch's own token length (`training.text`).
- `quick`: only the text projection (one linear layer) learns. The pooled text features before it are
  computed once, so an epoch is a matrix product: seconds on a CPU.
- `lora`: LoRA adapters (peft) on both towers' attention and MLP layers, merged into the weights at the
  end. peft wraps open_clip's `nn.MultiheadAttention` (`attn`) as a whole: an adapter on its `out_proj`
  alone would never run, since the attention calls `F.multi_head_attention_forward` with the raw weight.
- `full`: both towers learn.
The two-tower modes read photos from `images.ImageCache` and run under bf16 autocast on CUDA.

The loss is `training.loss.contrastive_loss` with the base model's temperature held fixed: a
temperature learned on a few hundred pairs would sharpen until the loss fits the training captions,
and the tuned text vectors must stay comparable with the base's image vectors and scores. In the
fixed-image modes the image vectors of all captioned *training* photos can be a bank of extra
negatives for every caption at no cost (like a MoCo queue, but never stale). Uncaptioned photos stay out
of the bank: they may well show the very place a caption names, and would be pushed away from it.

AdamW with a linear warmup then a cosine decay, gradients clipped at norm 1. Every step checks the loss:
NaN or infinity stops the run (`Diverged`). On CUDA, out of memory halves the batch and goes on (one
process only: ranks must agree on their batches).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import batches as batching
from . import distributed
from .encode import autocast, pooled_text
from .loss import contrastive_loss
from .text import encode_text_trimmed

MODES = ("text", "quick", "lora", "full")
TWO_TOWER = ("lora", "full")
LORA_TARGETS = ["c_fc", "c_proj", "attn"]
ANCHORS_PER_STEP = 8  # everyday prompts held near the base's vectors, sampled anew each step


@dataclass(frozen=True)
class Defaults:
    epochs: int
    batch_size: int
    lr: float


DEFAULTS = {
    "text": Defaults(epochs=15, batch_size=32, lr=2e-4),  # the bank brings the negatives: small batches, more steps
    "quick": Defaults(epochs=60, batch_size=256, lr=2e-3),
    "lora": Defaults(epochs=10, batch_size=128, lr=5e-4),
    "full": Defaults(epochs=5, batch_size=128, lr=1e-5),
}


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def text_parameter(name: str) -> bool:
    return not name.startswith("visual.") and name not in ("logit_scale", "logit_bias")


def prepare(model, mode: str, lora_rank: int = 8):
    """Freeze what the mode keeps fixed; returns (model to train, its trainable parameters).

    For `lora` the model is wrapped by peft (call `finish` to merge); the others return `model` itself."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    for name, p in model.named_parameters():
        p.requires_grad_(
            (mode == "text" and text_parameter(name))
            or (mode == "quick" and name == "text_projection")
            or (mode == "full" and name not in ("logit_scale", "logit_bias")))
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0,
                                                 target_modules=LORA_TARGETS))
    params = [p for p in model.parameters() if p.requires_grad]
    if mode == "quick" and not params:
        raise ValueError("quick mode needs a text projection matrix, and this model has none")
    return model, params


def finish(trained, mode: str):
    """The plain open_clip model after training (LoRA merged into its weights)."""
    if mode == "lora":
        trained = trained.merge_and_unload()
    for p in trained.parameters():
        p.requires_grad_(False)
    return trained.eval()


def clip_model(trained, mode: str):
    """The open_clip model inside `trained` (peft's wrapper for lora), for encoding."""
    return trained.get_base_model() if mode == "lora" else trained


def _project(pooled: torch.Tensor, proj) -> torch.Tensor:
    return proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj


class Trainer:
    """Steps of one mode over a dataset held in memory (`tokens`, `vectors`: one row per pair).

    `images`: the ImageCache whose first rows are the pairs (two-tower modes). `train`: the pair rows to
    train on. The global batch is the same on every rank; each rank encodes its slice."""

    def __init__(self, model, mode: str, *, tokens: torch.Tensor, vectors: np.ndarray, caption_ids: np.ndarray,
                 folders: np.ndarray, train: np.ndarray, logit_scale: float, epochs: int, batch_size: int,
                 lr: float, seed: int = 0, device: str = "cpu", images=None, bank: bool = False,
                 world: distributed.World = distributed.World(), weight_decay: float = 0.05,
                 warmup: float = 0.1, on_note: Callable[[str], None] | None = None,
                 anchors: torch.Tensor | None = None, anchor_weight: float = 0.0, clip: float | None = 1.0,
                 related: list[np.ndarray] | None = None):
        if mode in TWO_TOWER and images is None:
            raise ValueError(f"{mode} mode trains the image tower: it needs the photos (an ImageCache)")
        self.mode, self.device, self.world = mode, device, world
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.train_rows = np.asarray(train, np.int64)
        self.caption_ids, self.folders = np.asarray(caption_ids), np.asarray(folders)
        self.scale = float(logit_scale)
        self.images = images
        self.on_note = on_note or (lambda message: None)
        model.to(device)
        self.trained, self.params = prepare(model, mode)
        self.model = clip_model(self.trained, mode)
        self.tokens = tokens
        self.vectors = F.normalize(torch.as_tensor(np.asarray(vectors, np.float32)), dim=-1).to(device)
        self.pooled = pooled_text(self.model, tokens, device) if mode == "quick" else None
        self.anchor_weight = float(anchor_weight) if anchors is not None and len(anchors) else 0.0
        if self.anchor_weight:
            self.anchors = anchors
            self.anchor_pooled = pooled_text(self.model, anchors, device) if mode == "quick" else None
            with torch.no_grad(), autocast(device):
                self.anchor_targets = F.normalize(self._anchor_text().float(), dim=-1)
        self.bank = self.bank_ids = None
        if bank and mode not in TWO_TOWER:
            self.bank = self.vectors[torch.as_tensor(self.train_rows, device=device)]
            self.bank_ids = torch.as_tensor(self.caption_ids[self.train_rows], device=device)
        # Related captions (`data.related_captions`, by caption id): left out of each other's negatives.
        self.related = related
        self._bank_rows: dict[int, np.ndarray] = {}
        if related is not None and self.bank is not None:
            ids = self.caption_ids[self.train_rows]
            order = np.argsort(ids, kind="stable")
            cut = np.flatnonzero(np.diff(ids[order])) + 1
            self._bank_rows = {int(ids[g[0]]): g for g in np.split(order, cut) if len(g)}
        decay = [p for p in self.params if p.ndim >= 2]
        rest = [p for p in self.params if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                      {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
        self.clip = clip
        self.step_count = 0
        self.total_steps = max(1, epochs * batching.steps_per_epoch(len(self.train_rows), batch_size))
        self.warmup_steps = max(1, int(warmup * self.total_steps))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)

    def _lr_factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress))

    def batches(self, epoch: int) -> list[np.ndarray]:
        return batching.by_folder(self.train_rows, self.folders, self.batch_size, self.seed, epoch,
                                  multiple=self.world.size)

    def _text(self, rows: np.ndarray) -> torch.Tensor:
        if self.mode == "quick":
            return _project(self.pooled[torch.as_tensor(rows, device=self.pooled.device)], self.model.text_projection)
        return encode_text_trimmed(self.model, self.tokens[rows].to(self.device), normalize=False)

    def _anchor_text(self, rows: np.ndarray | None = None) -> torch.Tensor:
        if self.mode == "quick":
            pooled = self.anchor_pooled if rows is None else self.anchor_pooled[torch.as_tensor(rows)]
            return _project(pooled, self.model.text_projection)
        anchors = self.anchors if rows is None else self.anchors[torch.as_tensor(rows)]
        return encode_text_trimmed(self.model, anchors.to(self.device), normalize=False)

    def _anchor_rows(self) -> np.ndarray:
        """The anchors of this step: a sample, the same on every rank (seeded by the step)."""
        n = len(self.anchor_targets)
        if n <= ANCHORS_PER_STEP:
            return np.arange(n)
        return np.sort(np.random.default_rng((self.seed, self.step_count)).choice(n, ANCHORS_PER_STEP, replace=False))

    def _image(self, rows: np.ndarray) -> torch.Tensor:
        if self.mode in TWO_TOWER:
            return self.model.encode_image(self.images.batch(rows, self.device), normalize=False)
        return self.vectors[torch.as_tensor(rows, device=self.device)]

    def step(self, batch: np.ndarray) -> float:
        """One optimiser step on a global batch of pair rows; returns the loss (the same on every rank)."""
        local = distributed.local_slice(np.asarray(batch, np.int64), self.world)
        with autocast(self.device):
            text, image = self._text(local), self._image(local)
        text, image = F.normalize(text.float(), dim=-1), F.normalize(image.float(), dim=-1)
        ids = torch.as_tensor(self.caption_ids[local], device=text.device)
        text, image = distributed.gather(text, self.world), distributed.gather(image, self.world)
        ids = distributed.gather(ids, self.world)
        related, bank_related = self._related(np.asarray(batch, np.int64)[:len(ids)], text.device)
        loss = contrastive_loss(image, text, self.scale, ids, self.bank, self.bank_ids, related, bank_related)
        if self.anchor_weight:
            rows = self._anchor_rows()
            with autocast(self.device):
                anchor = self._anchor_text(rows)
            target = self.anchor_targets[torch.as_tensor(rows, device=self.anchor_targets.device)]
            drift = 1 - (F.normalize(anchor.float(), dim=-1) * target).sum(dim=-1).mean()
            loss = loss + self.anchor_weight * drift
        self.step_count += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "infinite"
            raise Diverged(f"training diverged: the loss became {what} at step {self.step_count}; "
                           "nothing was installed")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.params, self.world)
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.sched.step()
        return value

    def _related(self, rows: np.ndarray, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """[N, N] and [N, bank] masks of related-but-different captions for a global batch of pair rows."""
        if self.related is None:
            return None, None
        ids = self.caption_ids[rows]
        near = [self.related[int(c)] for c in ids]
        related = np.stack([np.isin(ids, r) for r in near])
        bank_related = None
        if self.bank is not None:
            bank_related = np.zeros((len(ids), len(self.train_rows)), bool)
            for i, r in enumerate(near):
                hits = [self._bank_rows[int(c)] for c in r if int(c) in self._bank_rows]
                if hits:
                    bank_related[i, np.concatenate(hits)] = True
            bank_related = torch.from_numpy(bank_related).to(device)
        return torch.from_numpy(related).to(device), bank_related

    def epoch(self, epoch: int, on_step: Callable[[float], None] | None = None) -> float:
        """One pass over the training rows; returns the mean loss. Out of GPU memory: halve and go on."""
        queue = self.batches(epoch)
        losses = []
        while queue:
            batch = queue.pop(0)
            before = self.step_count
            try:
                losses.append(self.step(batch))
            except torch.OutOfMemoryError:
                if self.world.size > 1 or self.batch_size <= 1:
                    raise
                self.step_count = before
                self.opt.zero_grad(set_to_none=True)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.batch_size //= 2
                rest = np.concatenate([batch, *queue])
                queue = [rest[i:i + self.batch_size] for i in range(0, len(rest), self.batch_size)]
                done = self.step_count
                left = (self.epochs - epoch - 1) * batching.steps_per_epoch(len(self.train_rows), self.batch_size)
                self.total_steps = done + len(queue) + left
                self.on_note(f"Out of GPU memory: the batch size is halved to {self.batch_size}, and training goes on.")
                continue
            if on_step:
                on_step(losses[-1])
        return float(np.mean(losses)) if losses else float("nan")
