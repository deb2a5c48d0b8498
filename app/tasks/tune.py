"""Fine-tuning on the user's captions: the use case behind `glimpse tune` and the Personalize tab.

The library's captioned photos and their vectors are written to a work folder (`training.data`, numpy
only), then `python -m training` runs in a **child process**: torch never loads into the window's
process, a cancel is a real kill, and a crash of the child (or a `kill -9`) leaves the active model and
the catalog as they were — the child only ever adds a new model to the store, atomically. Its progress
comes back as JSON lines, one event each (see `training/__main__.py`); `run` forwards every event to
`on_event` (the window's chart) and turns progress into the common `Job` protocol.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from app.library.catalog import real_paths
from app.library.library import Library
from model.errors import ModelError
from model.jobs import Cancelled, Job, Progress
from training import data  # numpy only: the training set's format and its refusal rule, no torch

from .child import child_env as _child_env, open_log, stop as _stop

MIN_CAPTIONED = data.MIN_CAPTIONED  # for the window, which may not import training itself

MODES = ("text", "quick", "lora", "full")
LIBRARY_SAMPLE = 50_000   # photos whose vectors judge agreement (the whole library up to this)
STAGES = {"prepare": "Preparing", "cache": "Reading photos", "head": "Fitting the projection",
          "train": "Fine-tuning", "evaluate": "Evaluating", "export": "Exporting"}


class TuneError(ModelError):
    """Fine-tuning cannot start or did not finish; the message says why (nothing was changed)."""


@dataclass
class TuneOptions:
    mode: str = "text"
    epochs: int | None = None
    device: str = "auto"
    name: str | None = None
    dry_run: bool = False
    batch_size: int | None = None
    seed: int = 0
    base: str | None = None      # default: the active model
    processes: int = 1           # data-parallel training processes (torchrun), e.g. one per GPU


@dataclass
class Outcome:
    result: dict                  # the child's "result" event (or its "plan" on a dry run)
    activated: bool = False
    reason: str = ""              # why it was (not) made active
    events: list[dict] = field(default_factory=list)


def gather(library: Library, folder: Path, base_id: str) -> dict:
    """Write the training set (captioned photos with their base vectors, and a library sample) to `folder`.

    Returns counts: {"pairs", "distinct", "missing"} (captioned photos without a vector yet are left out)."""
    base = library.models.store.get(base_id)
    space = base.image_space
    pairs = library.captions()
    all_hashes, all_vectors = library.catalog.vectors(space)  # read once: the pairs' and the library's
    wanted = {p.hash for p in pairs}
    found = {h: v for h, v in zip(all_hashes, all_vectors) if h in wanted}
    kept = [p for p in pairs if p.hash in found]
    rows = library.catalog.photo_columns(["path", "hash"], "status = 'ok'")
    path_of = dict(zip(rows["hash"].to_pylist(), real_paths(rows["path"])))
    keep = [i for i, h in enumerate(all_hashes) if h in path_of]
    if len(keep) > LIBRARY_SAMPLE:
        keep = sorted(np.random.default_rng(0).choice(keep, LIBRARY_SAMPLE, replace=False).tolist())
    dim = base.embed_dim
    dataset = data.Dataset(
        [data.Pair(p.path, p.hash, p.text, p.source, p.folder) for p in kept],
        np.stack([found[p.hash] for p in kept]) if kept else np.zeros((0, dim), np.float32),
        all_vectors[keep] if keep else np.zeros((0, dim), np.float32),
        [path_of[all_hashes[i]] for i in keep],
        {"base": base.id, "image_space": space, "store": str(library.models.store.root),
         "written": time.time()})
    data.save(folder, dataset)
    return {"pairs": len(kept), "distinct": int(len(np.unique(dataset.caption_ids()))),
            "missing": len(pairs) - len(kept)}


def _sweep(cache: Path) -> None:
    """Remove work folders of runs whose process is gone (killed before its own clean-up)."""
    for folder in cache.glob("tune-*"):
        try:
            os.kill(int((folder / "pid").read_text()), 0)
            continue  # a run in progress (another window, another `glimpse tune`)
        except PermissionError:
            continue  # alive, under another user
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):  # no pid written yet (just made), or unreadable: only old ones go
            try:
                if time.time() - folder.stat().st_mtime > 3600:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass


def _command(options: TuneOptions, data_dir: Path, store: Path, base: str) -> list[str]:
    launch = [sys.executable, "-m", "training"]
    if options.processes > 1:  # one per GPU (gloo on CPUs): torchrun starts them, rank 0 reports
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                  str(options.processes), "-m", "training"]
    cmd = [*launch, "--data", str(data_dir), "--store", str(store), "--base", base,
           "--mode", options.mode, "--device", options.device, "--seed", str(options.seed)]
    for flag, value in (("--epochs", options.epochs), ("--name", options.name), ("--batch-size", options.batch_size)):
        if value is not None:
            cmd += [flag, str(value)]
    if options.dry_run:
        cmd.append("--dry-run")
    return cmd


def run(library: Library, options: TuneOptions, job: Job, on_event: Callable[[dict], None] | None = None) -> Outcome:
    """Fine-tune in a child process; returns its result. Installs a new model, activates nothing."""
    if options.mode not in MODES:
        raise TuneError(f"Unknown mode '{options.mode}': choose one of {', '.join(MODES)}.")
    base = options.base or library.models.active().id
    library.paths.cache.mkdir(parents=True, exist_ok=True)
    _sweep(library.paths.cache)
    work = Path(tempfile.mkdtemp(prefix="tune-", dir=library.paths.cache))
    (work / "pid").write_text(str(os.getpid()))
    log_path = library.paths.cache / "tune.log"
    events: list[dict] = []
    try:
        job.report("Gathering captions")
        counts = gather(library, work / "data", base)
        refusal = data.refusal(counts["pairs"], counts["distinct"])
        if refusal:  # said here, before the child spends seconds importing torch
            raise TuneError(refusal)
        if counts["missing"]:
            note = {"event": "note", "message": f"{counts['missing']} captioned photos have no vector yet and are "
                                                "left out (run `glimpse index` first to use them)."}
            events.append(note)
            if on_event:
                on_event(note)
        with open_log(log_path) as log:  # past 1 MB the old log becomes tune.log.old
            log.write(f"--- {time.ctime()} pid {os.getpid()}: fine-tuning {base} ({options.mode})\n".encode())
            log.flush()
            child = subprocess.Popen(_command(options, work / "data", library.models.store.root, base),
                                     stdout=subprocess.PIPE, stderr=log, env=_child_env(), start_new_session=True)
            if on_event is not None:
                on_event({"event": "child", "pid": child.pid})
            try:
                result = _follow(child, job, on_event, events)
            finally:
                _stop(child)
        if result is None:
            error = next((e["message"] for e in reversed(events) if e.get("event") == "error"), None)
            raise TuneError(error or f"Fine-tuning stopped unexpectedly (exit {child.returncode}); "
                                     f"nothing was changed. Details: {log_path}")
        return Outcome(result, events=events)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _follow(child: subprocess.Popen, job: Job, on_event, events: list[dict]) -> dict | None:
    lines: queue.Queue = queue.Queue()

    def read():
        for raw in child.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="tune-output").start()
    result = None
    while True:
        if job.control.cancelled:
            _stop(child)
            raise Cancelled("Fine-tuning cancelled; nothing was changed.")
        try:
            raw = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if raw is None:
            child.wait()
            return result
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # a stray line from a library: not ours
        if not isinstance(event, dict):
            continue
        events.append(event)
        kind = event.get("event")
        if kind in ("result", "plan"):
            result = event
        elif kind == "progress" and job.on_progress is not None:
            stage = event.get("stage", "train")
            job.on_progress(Progress(STAGES.get(stage, stage.capitalize()), int(event.get("done") or 0),
                                     int(event.get("total") or 0), eta_s=event.get("eta_s")))
        if on_event is not None:
            on_event(event)


def better(result: dict) -> tuple[bool, str]:
    """Whether a tuned model should replace its base: its held-out R@5 must beat the base's (at equal
    R@5, as when both find every held-out photo, a better mean rank decides)."""
    before, after = result.get("before") or {}, result.get("after") or {}
    b, a = before.get("r5"), after.get("r5")
    if a is None or b is None:
        return False, "no held-out recall to compare"
    if a > b:
        return True, f"held-out R@5 rose from {b:.2f} to {a:.2f}"
    rank_b, rank_a = before.get("mean_rank"), after.get("mean_rank")
    if a == b and rank_a is not None and rank_b is not None and rank_a < rank_b:
        return True, f"held-out R@5 stayed at {a:.2f} and the mean rank fell from {rank_b:.1f} to {rank_a:.1f}"
    return False, f"held-out R@5 did not beat the base ({a:.2f} vs {b:.2f}); {result.get('base')} stays active"


def tune(library: Library, options: TuneOptions, job: Job, on_event: Callable[[dict], None] | None = None,
         activate: bool = True) -> Outcome:
    """`run`, then make the new model active when it beats its base (a two-tower model re-indexes first)."""
    outcome = run(library, options, job, on_event)
    if options.dry_run or outcome.result.get("event") != "result":
        return outcome
    ok, outcome.reason = better(outcome.result)
    if ok and activate:
        from .models import activate as activate_model

        outcome.activated = activate_model(library, outcome.result["model"], job)
    return outcome


def base_of(model) -> str | None:
    """The model a fine-tune was made from (None for others)."""
    lineage = model.manifest.get("lineage") or {}
    return lineage.get("base") if lineage.get("kind") == "finetune" else None
