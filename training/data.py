"""The training set handed from the library to a training run: a folder of plain files.

The use-case layer (`app.tasks.tune`) reads the catalog and writes this folder; the training child
process (`python -m training`) reads it. So training never opens the catalog, and the layering holds
(training imports `model` only). numpy only: the window's process writes it without loading torch.

Files
- `pairs.jsonl`: one captioned photo per line: path, hash (content), text (the caption), source, folder.
- `vectors.npy`: [N, D] float32, the base model's vector of each pair's photo (row i = line i), from the
  catalog. In text-tower mode these are the training targets: nothing is decoded.
- `library.npy`: [M, D] float32, vectors of (a sample of) every photo, for the agreement check.
- `library_paths.json`: the M paths of `library.npy`.
- `meta.json`: base model id, its image space, the store folder, when it was written.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIN_CAPTIONED = 20      # fewer captioned photos than this: refuse to train
MIN_DISTINCT = 2        # and fewer distinct captions (one caption on every photo teaches nothing)
HELD_OUT = 0.1          # at least this share of captioned photos is held out for evaluation
HELD_OUT_ENOUGH = 20    # and at least this many where a quarter of the set allows


@dataclass
class Pair:
    path: str
    hash: str
    text: str
    source: str = ""
    folder: str = ""


@dataclass
class Dataset:
    pairs: list[Pair]
    vectors: np.ndarray                      # [N, D], row i = pairs[i]
    library: np.ndarray                      # [M, D]
    library_paths: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def captions(self) -> list[str]:
        return [p.text for p in self.pairs]

    def caption_ids(self) -> np.ndarray:
        """[N] int: equal for pairs whose caption is the same text (case and spacing ignored)."""
        return caption_ids_of(self.captions)

    def folder_ids(self) -> np.ndarray:
        ids: dict[str, int] = {}
        return np.array([ids.setdefault(p.folder, len(ids)) for p in self.pairs], np.int64)

    def fingerprint(self) -> str:
        """Names the data a model was trained on: the same photos with the same captions give the same id."""
        h = hashlib.sha256()
        for key in sorted(f"{p.hash}\t{p.text}" for p in self.pairs):
            h.update(key.encode("utf-8", "surrogatepass") + b"\n")
        return h.hexdigest()[:16]


def refusal(pairs: int, distinct: int) -> str | None:
    """Why a training set is too small to learn from (None when it is not): said by the use case before it
    starts the training process, and by the training process itself."""
    if pairs < MIN_CAPTIONED:
        return (f"Only {pairs} captioned photos: fine-tuning needs at least {MIN_CAPTIONED}. Add captions (in the "
                "preview, XMP sidecars or a captions.csv in a folder), run `glimpse index`, and try again.")
    if distinct < MIN_DISTINCT:
        return (f"All {pairs} captioned photos have the same caption: fine-tuning learns to tell captions apart, "
                "so it needs photos captioned with different words.")
    return None


def caption_ids_of(texts: list[str]) -> np.ndarray:
    """[N] int ids, equal for the same text (case and spacing ignored), numbered in order of appearance."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(text_key(t), len(ids)) for t in texts], np.int64)


def text_key(text: str) -> str:
    return " ".join(text.casefold().split())


STOPWORDS = frozenset("""a an the and or of in on at to for with from by our my his her their its this that
these those is are was were be been we i you he she they it me us them as into onto over under after before
during again last first day days time am pm de la le les der die das und im am von zu mit en el y""".split())
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
MAX_FAN_OUT = 5000   # a word pair shared by more distinct captions than this relates none of them


def _content_pairs(text: str) -> set[str]:
    """Pairs of neighbouring content words ("aunt rosa's", "rosa's garden"): what names a place or person."""
    words = [w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS and not w.isdigit()]
    if len(words) == 1:
        return {words[0]}
    return {f"{a} {b}" for a, b in zip(words, words[1:])}


def related_captions(texts: list[str]) -> list[np.ndarray]:
    """For each distinct caption id (as `Dataset.caption_ids`), the ids of captions that share a pair of
    neighbouring content words with it ("Aunt Rosa's garden in July", "Aunt Rosa's garden, 2019"), itself
    included. Users word one place many ways; such captions are not positives of each other (we cannot
    tell), but they must not be pushed apart as negatives either (see `training.loss`)."""
    ids: dict[str, int] = {}
    keys = []
    for t in texts:
        k = text_key(t)
        if k not in ids:
            ids[k] = len(ids)
            keys.append(t)
    index: dict[str, list[int]] = {}
    pairs = [_content_pairs(t) for t in keys]
    for i, ps in enumerate(pairs):
        for p in ps:
            index.setdefault(p, []).append(i)
    out = []
    for i, ps in enumerate(pairs):
        near = {i}
        for p in ps:
            if len(index[p]) <= MAX_FAN_OUT:
                near.update(index[p])
        out.append(np.array(sorted(near), np.int64))
    return out


def split(n: int, seed: int = 0, fraction: float = HELD_OUT, enough: int = HELD_OUT_ENOUGH) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split by photo: (train indices, held-out indices). At least `fraction` is held out, and
    up to `enough` photos (but never more than a quarter): among 2 held-out photos R@5 is 1 whatever
    the model does, so a small set holds out a larger share."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, int(np.ceil(n * fraction)), min(enough, n // 4)) if n > 1 else 0
    return np.sort(order[held:]), np.sort(order[:held])


def save(folder: str | Path, data: Dataset) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "pairs.jsonl", "w", encoding="utf-8", errors="surrogatepass") as f:
        for p in data.pairs:
            f.write(json.dumps(p.__dict__, ensure_ascii=True) + "\n")
    np.save(folder / "vectors.npy", np.ascontiguousarray(data.vectors, np.float32))
    np.save(folder / "library.npy", np.ascontiguousarray(data.library, np.float32))
    (folder / "library_paths.json").write_text(json.dumps(data.library_paths, ensure_ascii=True), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps(data.meta, indent=2), encoding="utf-8")
    return folder


def load(folder: str | Path) -> Dataset:
    folder = Path(folder)
    with open(folder / "pairs.jsonl", encoding="utf-8") as f:
        pairs = [Pair(**json.loads(line)) for line in f if line.strip()]
    vectors = np.load(folder / "vectors.npy")
    if len(vectors) != len(pairs):
        raise ValueError(f"{folder}: {len(pairs)} pairs but {len(vectors)} vectors")
    return Dataset(pairs, vectors, np.load(folder / "library.npy"),
                   json.loads((folder / "library_paths.json").read_text(encoding="utf-8")),
                   json.loads((folder / "meta.json").read_text(encoding="utf-8")))


MIN_SHARED = 3   # a phrase is a name when at least this many distinct captions hold it
MAX_PHRASE_WORDS = 24  # words of a caption looked at for shared phrases


def shared_phrases(texts: list[str], min_shared: int = MIN_SHARED) -> list[str | None]:
    """For each caption, the longest run of words (two content words at least) that it shares with at
    least `min_shared - 1` other distinct captions, or None: "Aunt Rosa's garden" in "Aunt Rosa's garden in
    July", "Aunt Rosa's garden, 2019", … The words a user keeps writing are the names they will search
    for; training on them as captions of their own teaches the name, not the wording around it."""
    words = [_WORD.findall(t.casefold())[:MAX_PHRASE_WORDS] for t in texts]
    keys = [text_key(t) for t in texts]
    holders: dict[tuple, set[str]] = {}
    for ws, key in zip(words, keys):
        for i in range(len(ws)):
            for j in range(i + 2, len(ws) + 1):
                gram = tuple(ws[i:j])
                if sum(w not in STOPWORDS and not w.isdigit() for w in gram) >= 2:
                    holders.setdefault(gram, set()).add(key)
    out: list[str | None] = []
    for ws in words:
        best = None
        for i in range(len(ws)):
            for j in range(len(ws), i + 1, -1):
                gram = tuple(ws[i:j])
                n = len(holders.get(gram, ()))
                if n >= min_shared and (best is None or (len(gram), n) > (len(best[0]), best[1])):
                    best = (gram, n)
                    break
        out.append(" ".join(best[0]) if best else None)
    return out
