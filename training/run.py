"""One fine-tuning run, from the dataset folder to a model installed in the store.

load the training set -> refuse too few captions -> load the base's torch weights -> split by photo
(seeded, >= 10% held out) -> evaluate the base -> (two-tower: cache the photos) -> (text mode: fit the
projection alone first, `_fit_head`) -> train, evaluating
held-out R@5 after each epoch -> WiSE-FT: choose alpha on the held-out split -> export to ONNX with the
parity check and install atomically (with the tuned weights and the lineage in the manifest).

Everything the run has to say goes through `emit(event)` as one dict (the JSON-lines protocol of
`python -m training`, see `__main__`). Nothing is installed unless the run completes: a failure, a
cancel (SIGTERM, raised as `model.jobs.Cancelled`) or a kill leaves at most the store's `.staging-*`
folder, which the store sweeps when next opened.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from model.errors import ModelError
from model.store import ModelStore, valid_id

from . import data as datasets
from . import distributed, evaluate, wise
from .batches import steps_per_epoch
from .encode import image_vectors, text_vectors
from .trainer import DEFAULTS, MODES, TWO_TOWER, Diverged, Trainer, finish

AGREEMENT_SAMPLE = 500     # library photos decoded for agreement in two-tower modes
EXAMPLES = 5
ANCHOR_WEIGHT = 5.0        # weight of the drift of ANCHOR_PROMPTS in the loss (0: no distillation)
BANK_DEFAULT = True        # see the report of tests/test_training.py::test_bank_helps_held_out_recall
HEAD_EPOCHS = 60           # text mode: quick mode's epochs on the projection first (see _fit_head)


class Refused(Exception):
    """The run cannot start (too few captions, an unknown base, no CUDA): exit code 2."""


class Failed(Exception):
    """The run stopped (diverged, export failed): exit code 1. Nothing was installed."""


@dataclass
class Options:
    data: Path
    store: Path
    base: str
    mode: str = "text"
    epochs: int | None = None
    device: str = "auto"
    name: str | None = None
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None
    bank: bool | None = None
    dry_run: bool = False
    anchor: float | None = None


def pick_device(asked: str) -> str:
    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if asked == "cuda" and not torch.cuda.is_available():
        raise Refused("No CUDA GPU is available to torch here: use --device cpu (text or quick mode).")
    if asked not in ("cpu", "cuda"):
        raise Refused(f"Unknown device '{asked}': use auto, cpu or cuda.")
    return asked


def free_name(store: ModelStore, base: str) -> str:
    """f"{base}-tuned", or with a numeric suffix when that is taken. A fine-tune of a fine-tune is
    numbered, not named `X-tuned-tuned`."""
    stem = re.sub(r"-tuned(-\d+)?$", "", base) + "-tuned"
    name, n = stem, 2
    while store.exists(name):
        name, n = f"{stem}-{n}", n + 1
    return name


class _Clock:
    """Progress events at most every 0.2 s (and always for the last item), with an ETA."""

    def __init__(self, emit, stage: str):
        self.emit, self.stage, self.start, self.last = emit, stage, time.monotonic(), 0.0

    def __call__(self, done: int, total: int, **more) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total and not more:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        eta = (total - done) / rate if done and total else None
        self.emit({"event": "progress", "stage": self.stage, "done": done, "total": total,
                   "eta_s": None if eta is None else round(eta, 1), **more})


def run(opts: Options, emit: Callable[[dict], None], check: Callable[[], None] = lambda: None) -> dict:
    """Fine-tune as `opts` says; returns the result event (the plan on a dry run). Raises Refused or Failed."""
    started = time.monotonic()
    try:
        ds = datasets.load(opts.data)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise Refused(f"Cannot read the training set in {opts.data}: {e}") from e
    refusal = datasets.refusal(len(ds.pairs), len(np.unique(ds.caption_ids())))
    if refusal:
        raise Refused(refusal)
    if opts.mode not in MODES:
        raise Refused(f"Unknown mode '{opts.mode}': choose one of {', '.join(MODES)}.")
    device = pick_device(opts.device)
    world = distributed.init(device)
    if world.size > 1 and device == "cuda":
        device = f"cuda:{world.local_rank}"
    if not world.main:
        emit = lambda event: None  # noqa: E731  only rank 0 speaks
    defaults = DEFAULTS[opts.mode]
    epochs = opts.epochs or defaults.epochs
    batch_size = opts.batch_size or defaults.batch_size
    lr = opts.lr or defaults.lr
    bank = BANK_DEFAULT if opts.bank is None else opts.bank
    torch.manual_seed(opts.seed)

    store = ModelStore(opts.store)
    try:
        base = store.get(opts.base)
    except ModelError as e:
        raise Refused(str(e)) from e
    name = opts.name or free_name(store, base.id)
    if not valid_id(name):
        raise Refused(f"'{name}' cannot name a model: use letters, digits, '.', '_', '+' and '-'.")
    if opts.name and store.exists(name):
        raise Refused(f"A model named '{name}' exists already: choose another --name.")

    prepare = _Clock(emit, "prepare")
    prepare(0, 3)
    from model.openclip import from_stored
    from model.tokenizer import Tokenizer

    try:
        loaded = from_stored(base)
    except ModelError as e:
        raise Refused(str(e)) from e
    model = loaded.model.eval()
    prepare(1, 3)
    tokenizer = Tokenizer(base.tokenizer_path, base.manifest["tokenizer"])
    tokens = torch.from_numpy(tokenizer(ds.captions))
    prompt_tokens = torch.from_numpy(tokenizer(list(evaluate.GENERIC_PROMPTS)))
    caption_ids, folders = ds.caption_ids(), ds.folder_ids()
    train, held = datasets.split(len(ds.pairs), opts.seed)
    query_rows, query_ids = evaluate.queries(held, caption_ids, ds.captions)
    vectors = _normalised(ds.vectors)
    library = _normalised(ds.library) if len(ds.library) else vectors
    library_paths = list(ds.library_paths) if len(ds.library) else [p.path for p in ds.pairs]
    logit_scale = float(model.logit_scale.detach().exp())
    prepare(2, 3)

    # The base, as the user searches with it now: its text tower against the catalog's vectors.
    model.to(device)
    before = evaluate.recall(text_vectors(model, tokens[query_rows], device), vectors[held], query_ids,
                             caption_ids[held])
    base_prompts = text_vectors(model, prompt_tokens, device)
    prepare(3, 3)
    steps = epochs * steps_per_epoch(len(train), batch_size)
    plan = {"mode": opts.mode, "device": device, "pairs": len(ds.pairs), "train": len(train), "held_out": len(held),
            "distinct": int(len(np.unique(caption_ids))), "epochs": epochs, "batch_size": batch_size,
            "estimate_s": _estimate(model, opts.mode, tokens[train[:batch_size]], steps, len(ds.pairs), device)}
    emit({"event": "start", **plan})
    if opts.dry_run:
        return {"event": "plan", **plan, "model": name, "base": base.id, "lr": lr, "bank": bank, "before": before,
                "fingerprint": ds.fingerprint()}

    two_tower = opts.mode in TWO_TOWER
    cache = None
    sample = np.arange(len(library))
    if two_tower:
        from model.preprocess import PreprocessConfig

        from .images import ImageCache

        rng = np.random.default_rng(opts.seed)
        sample = np.sort(rng.choice(len(library), min(AGREEMENT_SAMPLE, len(library)), replace=False))
        paths = [p.path for p in ds.pairs] + [library_paths[i] for i in sample]
        cache = ImageCache(Path(opts.data) / "image-cache", paths, PreprocessConfig.from_dict(base.manifest["preprocess"]),
                           progress=_Clock(emit, "cache"), check=check)
        unreadable = int((~cache.ok[:len(ds.pairs)]).sum())
        if unreadable:
            emit({"event": "note", "message": f"{unreadable} captioned photos could not be read and are left out."})
        train = train[cache.ok[train]]
        held = held[cache.ok[held]]
        query_rows, query_ids = evaluate.queries(held, caption_ids, ds.captions)
        sample_ok = cache.ok[len(ds.pairs):]
        sample = sample[sample_ok]
        library_rows = len(ds.pairs) + np.flatnonzero(sample_ok)
        base_gallery = image_vectors(model, cache, library_rows, device) if len(library_rows) else library[sample]
    else:
        library_rows = None
        base_gallery = library

    def measure(m, with_agreement: bool = True) -> dict:
        """Held-out recall (and agreement) of the model `m` as it stands."""
        gallery = image_vectors(m, cache, held, device) if two_tower else vectors[held]
        out = evaluate.recall(text_vectors(m, tokens[query_rows], device), gallery, query_ids, caption_ids[held])
        if with_agreement:
            tuned_gallery = image_vectors(m, cache, library_rows, device) if two_tower and len(library_rows) else None
            out["agreement"] = evaluate.agreement(base_prompts, text_vectors(m, prompt_tokens, device),
                                                  base_gallery, tuned_gallery)
        return out

    base_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    texts = ds.captions
    t_tokens, t_vectors, t_ids, t_folders, t_train = tokens, vectors, caption_ids, folders, train
    if not two_tower:  # names as captions of their own (see data.shared_phrases); image side fixed
        phrases = datasets.shared_phrases([texts[i] for i in train])
        extra = [(int(i), p) for i, p in zip(train, phrases)
                 if p and datasets.text_key(p) != datasets.text_key(texts[i])]
        if extra:
            rows = np.array([i for i, _ in extra], np.int64)
            texts = texts + [p for _, p in extra]
            t_tokens = torch.cat([tokens, torch.from_numpy(tokenizer([p for _, p in extra]))])
            t_vectors = np.concatenate([vectors, vectors[rows]])
            t_ids = datasets.caption_ids_of(texts)
            t_folders = np.concatenate([folders, folders[rows]])
            t_train = np.concatenate([train, len(ds.pairs) + np.arange(len(extra))])
    common = dict(tokens=t_tokens, vectors=t_vectors, caption_ids=t_ids, folders=t_folders, train=t_train,
                  logit_scale=logit_scale, seed=opts.seed, device=device, images=cache, bank=bank, world=world,
                  on_note=lambda message: emit({"event": "note", "message": message}),
                  anchors=torch.from_numpy(tokenizer(list(evaluate.ANCHOR_PROMPTS))),
                  anchor_weight=ANCHOR_WEIGHT if opts.anchor is None else opts.anchor,
                  related=datasets.related_captions(texts))
    try:
        if opts.mode == "text" and HEAD_EPOCHS:
            model = _fit_head(model, common, emit, check)
    except Diverged as e:
        raise Failed(str(e)) from e
    trainer = Trainer(model, opts.mode, epochs=epochs, batch_size=batch_size, lr=lr, **common)
    clock = _Clock(emit, "train")
    train_start = time.monotonic()
    seen = 0
    try:
        for epoch in range(epochs):
            def on_step(loss: float) -> None:
                check()
                clock(trainer.step_count, trainer.total_steps, loss=round(loss, 5))
            loss = trainer.epoch(epoch, on_step)
            seen += len(t_train)
            r5 = measure(trainer.model, with_agreement=False)["r5"] if world.main else None
            emit({"event": "epoch", "epoch": epoch + 1, "loss": round(loss, 5) if np.isfinite(loss) else None,
                  "r5": r5})
            check()
    except Diverged as e:
        raise Failed(str(e)) from e
    train_seconds = time.monotonic() - train_start
    tuned = finish(trainer.trained, opts.mode)
    if not world.main:
        return {}

    # WiSE-FT: alpha chosen on the held-out split, agreement kept.
    tuned_state = {k: v.detach().to("cpu", copy=True) for k, v in tuned.state_dict().items()}
    judge = _Clock(emit, "evaluate")
    candidates = []
    for i, alpha in enumerate(wise.ALPHAS):
        judge(i, len(wise.ALPHAS))
        tuned.load_state_dict(wise.interpolate(base_state, tuned_state, alpha))
        candidates.append({"alpha": alpha, **measure(tuned)})
        check()
    judge(len(wise.ALPHAS), len(wise.ALPHAS))
    overlap = evaluate.prompt_overlap(base_prompts, base_gallery)
    enforce = overlap is None or overlap < wise.KNOWS_NOTHING
    if not enforce:
        emit({"event": "note", "message": f"{base.id} finds nearly the same photos for every everyday prompt "
                                          f"(overlap {overlap:.2f}), so it has no general knowledge here to "
                                          "keep: agreement is reported, not enforced."})
    chosen = wise.choose(candidates, enforce=enforce)
    alpha = chosen["alpha"]
    tuned.load_state_dict(wise.interpolate(base_state, tuned_state, alpha))
    after = {k: chosen[k] for k in ("r1", "r5", "r10", "mean_rank")}
    examples = _examples(tuned, ds, tokens, query_rows, held, vectors, library, library_paths, sample,
                         cache, library_rows, device)

    metrics = {"before": before, "after": after, "agreement": chosen["agreement"], "candidates": candidates,
               "agreement_enforced": enforce, "prompt_overlap": overlap}
    loaded.model = tuned.to("cpu").eval()
    loaded.lineage = {"kind": "finetune", "base": base.id, "mode": opts.mode, "fingerprint": ds.fingerprint(),
                      "alpha": alpha, "metrics": metrics}
    extra = {"finetune": {"base": base.id, "mode": opts.mode, "fingerprint": ds.fingerprint(), "alpha": alpha,
                          "epochs": epochs, "before": before, "after": after, "agreement": chosen["agreement"],
                          "captions": len(ds.pairs)}}
    export = _Clock(emit, "export")
    check()
    from model.obtain import install

    try:
        stored = install(store, loaded, name, progress=lambda stage, done, total: export(done, total),
                         image_space=None if two_tower else base.image_space, keep_weights=True, extra=extra,
                         exists="fail" if opts.name else "number")  # another run may have taken the name
    except ModelError as e:
        raise Failed(f"The tuned model could not be exported ({e}); nothing was installed.") from e
    return {"event": "result", "model": stored.id, "base": base.id, "mode": opts.mode, "device": device,
            "before": before, "after": after, "agreement": chosen["agreement"], "alpha": alpha,
            "seconds": round(time.monotonic() - started, 2),
            "pairs_per_s": round(seen / max(train_seconds, 1e-9), 2), "image_space": stored.image_space,
            "fingerprint": ds.fingerprint(), "examples": examples, "candidates": candidates,
            "agreement_enforced": enforce, "prompt_overlap": overlap}


def _fit_head(model, common: dict, emit, check):
    """Text mode's first stage: the text projection alone, as quick mode trains it (seconds on a CPU).

    Linear probing, then fine-tuning (LP-FT, Kumar et al., ICLR 2022): a tower fine-tuned under a head
    that already fits moves its features less, and generalises better. On benchmarks/finetune.py the
    names' R@5 on uncaptioned photos rose from 0.79-0.83 to 0.88 with it, in 4 s more."""
    quick = DEFAULTS["quick"]
    head = Trainer(model, "quick", epochs=HEAD_EPOCHS, batch_size=quick.batch_size, lr=quick.lr, **common)
    clock = _Clock(emit, "head")
    for epoch in range(HEAD_EPOCHS):
        head.epoch(epoch)
        clock(epoch + 1, HEAD_EPOCHS)
        check()
    return finish(head.trained, "quick")


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _examples(model, ds, tokens, query_rows, held, vectors, library, library_paths, sample, cache,
              library_rows, device) -> list[dict]:
    """A few held-out captions as queries, with their top photos among the held-out and library ones."""
    rows = query_rows[:EXAMPLES]
    if not len(rows):
        return []
    if cache is not None:
        held_vecs = image_vectors(model, cache, held, device)
        lib_vecs = image_vectors(model, cache, library_rows, device) if len(library_rows) else library[:0]
        lib_paths = [library_paths[i] for i in sample]
    else:
        held_vecs, lib_vecs, lib_paths = vectors[held], library, library_paths
    paths = [ds.pairs[i].path for i in held]
    known = set(paths)
    extra = [i for i, p in enumerate(lib_paths) if p not in known]
    gallery = np.concatenate([held_vecs, lib_vecs[extra]]) if extra else held_vecs
    paths += [lib_paths[i] for i in extra]
    best = evaluate.top(text_vectors(model, tokens[rows], device), gallery, 5)
    return [{"caption": ds.pairs[r].text, "paths": [paths[j] for j in b]} for r, b in zip(rows.tolist(), best.tolist())]


def _estimate(model, mode: str, tokens: torch.Tensor, steps: int, pairs: int, device: str) -> float:
    """Seconds the run should take: one timed forward of a batch, times 3 for the backward, times steps."""
    if mode == "quick":
        return round(2.0 + steps * 0.01, 1)
    t = time.monotonic()
    text_vectors(model, tokens, device)
    per_step = 3 * (time.monotonic() - t)
    if mode in TWO_TOWER:
        size = model.visual.image_size
        size = size if isinstance(size, (tuple, list)) else (size, size)
        n = max(1, len(tokens))
        x = torch.zeros(n, 3, *size, device=device)
        t = time.monotonic()
        with torch.no_grad():
            model.encode_image(x)
        per_step += 3 * (time.monotonic() - t)
        return round(pairs * 0.02 + steps * per_step + 10, 1)
    return round(steps * per_step + 5 + (HEAD_EPOCHS * 0.1 if mode == "text" else 0), 1)
