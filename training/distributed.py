"""Training on several processes (`torchrun`), as open_clip_train does it.

Each rank encodes its slice of the global batch; the features are gathered from every rank *with their
gradient* (`torch.distributed.nn.functional.all_gather`, open_clip_train's `gather_with_grad`), the
caption ids too, and every rank computes the full loss over the global batch (not a local one).

Why the gradients are then averaged: every rank's loss is the same number L, and the backward of the
gathering all_gather sums, over ranks, the gradient each rank's copy of L sends to a slice of features.
So the features of rank r receive world * dL/d(features_r), and rank r's parameter gradient is world
times its own share of dL/dtheta. Averaging over ranks (sum / world, as DDP does) gives sum of shares =
dL/dtheta: exactly the gradient of one process on the whole batch. `tests/test_training_ddp.py` checks it.

Init from the environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): gloo on the CPU,
nccl on CUDA. A single process (no WORLD_SIZE, or 1) never touches torch.distributed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(device: str) -> World:
    """Join the process group torchrun describes (nothing for a single process)."""
    world = from_env()
    if world.size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(world.local_rank)
        torch.distributed.init_process_group(backend, rank=world.rank, world_size=world.size)
    return world


def close() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def gather(x: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's `x`, concatenated in rank order; the gradient flows back to each rank's slice."""
    if world.size == 1:
        return x
    if x.requires_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(world.size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def average_gradients(params, world: World) -> None:
    """Replace each gradient by its mean over ranks (see the module docstring for why the mean)."""
    if world.size == 1:
        return
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad.div_(world.size)


def local_slice(batch, world: World):
    """This rank's share of a global batch (its length is a multiple of the world size)."""
    per = len(batch) // world.size
    return batch[world.rank * per:(world.rank + 1) * per]
