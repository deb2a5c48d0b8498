"""Batches drawn by folder: hard negatives, as the issue asks.

A user's albums are folders, and photos of one folder look alike (the same place, the same day). A batch
filled from a few folders at a time makes the contrastive loss tell apart captions of similar photos,
which random batches over the whole library almost never ask of it. Each epoch: photos are shuffled
within their folder, the folders are shuffled, the sequence is cut into batches, and the batches are
shuffled, all from one seeded generator, so every rank of a distributed run draws the same batches.
Photos sharing a caption may land in one batch: the loss treats them as positives of each other.
"""
from __future__ import annotations

import numpy as np


def by_folder(indices: np.ndarray, folders: np.ndarray, batch_size: int, seed: int, epoch: int,
              multiple: int = 1) -> list[np.ndarray]:
    """The epoch's batches of `indices` (rows of the dataset), a few folders per batch.

    `folders`: the folder id of every row of the dataset. `multiple`: every batch is cut down to a
    multiple of this (the number of ranks, which split each batch evenly); smaller leftovers are dropped.
    """
    rng = np.random.default_rng([seed, epoch])
    indices = np.asarray(indices)
    groups: dict[int, list[int]] = {}
    for i in indices:
        groups.setdefault(int(folders[i]), []).append(int(i))
    order = rng.permutation(len(groups))
    keys = list(groups)
    sequence = np.concatenate([rng.permutation(groups[keys[k]]) for k in order]) if keys else np.zeros(0, np.int64)
    batch_size = max(1, int(batch_size))
    batches = [sequence[i:i + batch_size] for i in range(0, len(sequence), batch_size)]
    if multiple > 1:
        batches = [b[: len(b) - len(b) % multiple] for b in batches]
    batches = [b.astype(np.int64) for b in batches if len(b)]
    return [batches[k] for k in rng.permutation(len(batches))]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // max(1, batch_size)))
