"""Judging a fine-tune: held-out recall@K and agreement with the base model (numpy only).

Recall is text->image retrieval on the held-out split, as retrieval papers report it: the queries are
the distinct captions of the held-out photos, the gallery is the held-out photos, and a query hits at K
when any photo with that caption (same caption id) is among its K best. The mean rank is that of the
first positive (1 = top). (Uncaptioned library photos as extra distractors were tried and dropped: they
hold unlabelled photos of the very places the captions name, so a model that finds them scored worse.
`data.split` holds out enough photos instead that R@5 does not saturate on a small set.)

Agreement guards against forgetting: for fixed generic prompts, the overlap of the top-10 photos of
the user's library under the base model and under the tuned one, averaged (1 = nothing drifted).
The prompts are things any family library holds, so drift there is damage the user would notice.
"""
from __future__ import annotations

import numpy as np

GENERIC_PROMPTS = (
    "a dog", "a cat", "a beach", "a birthday cake", "a car", "a mountain", "food on a plate",
    "a city street at night", "a child playing", "a group of people smiling", "a snowy landscape",
    "a sunset over the sea", "a forest path", "a bicycle", "flowers in a garden", "a living room",
    "a selfie", "a wedding", "a boat on a lake", "a document or screenshot",
)
# Generic prompts the training holds in place (a distillation term, see `trainer`), kept apart from the
# ones agreement is measured on, so the measure is not the thing optimised.
ANCHOR_PROMPTS = (
    "a photo", "a person", "two people", "a baby", "an old man", "a woman", "a house", "a tree", "the sky",
    "a river", "a road", "a train", "an airplane", "a horse", "a bird", "a fish", "a table", "a kitchen",
    "a bedroom", "a church", "a bridge", "a park", "a field", "a desert", "a lake", "a castle", "a market",
    "a concert", "a football game", "a christmas tree", "a swimming pool", "a playground", "a coffee cup",
    "a book", "a computer", "a phone", "a painting", "a statue", "a garden", "rain",
)
KS = (1, 5, 10)


def queries(held_out: np.ndarray, caption_ids: np.ndarray, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(pair row of each query, its caption id): one row per distinct caption among the held-out photos."""
    seen: dict[int, int] = {}
    for i in held_out:
        seen.setdefault(int(caption_ids[i]), int(i))
    rows = np.array(list(seen.values()), np.int64)
    return rows, caption_ids[rows] if len(rows) else np.zeros(0, np.int64)


def ranks(text: np.ndarray, gallery: np.ndarray, query_ids: np.ndarray, gallery_ids: np.ndarray) -> np.ndarray:
    """[Q] rank (1-based) of each query's best-placed positive in the gallery."""
    scores = text.astype(np.float32) @ gallery.astype(np.float32).T
    positive = query_ids[:, None] == gallery_ids[None, :]
    best = np.where(positive, scores, -np.inf).max(axis=1)
    # photos scored strictly above the best positive come first (ties count in the query's favour)
    return (scores > best[:, None]).sum(axis=1) + 1


def recall(text: np.ndarray, gallery: np.ndarray, query_ids: np.ndarray, gallery_ids: np.ndarray) -> dict:
    """{"r1", "r5", "r10", "mean_rank"} of text->image retrieval; all None without queries."""
    if len(text) == 0 or len(gallery) == 0:
        return {"r1": None, "r5": None, "r10": None, "mean_rank": None}
    r = ranks(text, gallery, query_ids, gallery_ids)
    out = {f"r{k}": round(float((r <= k).mean()), 4) for k in KS}
    out["mean_rank"] = round(float(r.mean()), 3)
    return out


def top(text: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """[Q, k'] gallery rows of each query's best k (k' = min(k, gallery size)), best first."""
    scores = text.astype(np.float32) @ gallery.astype(np.float32).T
    k = min(k, gallery.shape[0])
    if k == 0:
        return np.zeros((len(text), 0), np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def agreement(base_text: np.ndarray, tuned_text: np.ndarray, base_gallery: np.ndarray,
              tuned_gallery: np.ndarray | None = None, k: int = 10) -> float | None:
    """Mean overlap (0..1) of the top-k library photos per prompt, base vs tuned. `tuned_gallery`: the
    tuned image tower's vectors of the same photos (two-tower modes); the base's when None."""
    if len(base_gallery) == 0 or len(base_text) == 0:
        return None
    tuned_gallery = base_gallery if tuned_gallery is None else tuned_gallery
    a, b = top(base_text, base_gallery, k), top(tuned_text, tuned_gallery, k)
    kk = a.shape[1]
    return round(float(np.mean([len(set(x) & set(y)) / kk for x, y in zip(a.tolist(), b.tolist())])), 4)


def prompt_overlap(text: np.ndarray, gallery: np.ndarray, k: int = 10) -> float | None:
    """How much the top-k photos of *different* prompts overlap, beyond chance (0: as distinct as chance
    allows, 1: every prompt finds the same photos). A trained CLIP finds different photos for "a dog" and
    "a beach" (near 0); random weights find nearly the same ones for every prompt (0.35 for ViT-B-32)."""
    n = len(text)
    if n < 2 or len(gallery) <= k:
        return None
    tops = [set(t) for t in top(text, gallery, k).tolist()]
    kk = len(tops[0])
    mean = np.mean([len(tops[i] & tops[j]) / kk for i in range(n) for j in range(i + 1, n)])
    chance = kk / len(gallery)
    return round(float(max(0.0, (mean - chance) / (1 - chance))), 4)
