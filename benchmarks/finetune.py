"""Fine-tuning on the user's captions, end to end through the CLI: does `glimpse tune` find the user's
named places in photos nobody captioned?

    python benchmarks/finetune.py [--places 24] [--captioned 10] [--held-out 4] [--distractors 48]

A synthetic captioned library in a temporary GLIMPSE_HOME:
- `--places` named places and people ("Mia's lake house", "the Baxter cabin", ...), each from one
  distinct camera-size source photo (4000x3000, made once in benchmarks/.cache);
- `--captioned` photos of each, made by crops, flips and colour shifts of its source, captioned in
  varied wording ("at Mia's lake house", "Mia's lake house in July", ...) through a `captions.csv`
  per album folder (the albums mix places, so batches drawn by folder hold hard negatives);
- `--held-out` more photos of each place (other crops, flips, shifts), *uncaptioned*, in a camera-roll
  folder, among `--distractors` photos of other scenes.
ViT-B-32 with random weights and a released CLIP's temperature (see BASE_ID; torch weights kept in the
store, for fine-tuning) is the active model; then `glimpse index` and `glimpse tune --json` with its
defaults, as a user runs them.

Measured, all in this run: text->image R@1/5/10 and mean rank of the bare place names over the
uncaptioned photos only (the camera roll), with the base model and each tuned one, chance level beside
them (target: from chance to R@5 >= 0.8 with the defaults); the tune's time and pairs/s against a plain
`encode_text` loop's pairs/s (benchmarks/text_trim.py, same machine, same run); then `--mode quick`
and text mode without the bank of negatives, so the README can say whether the bank helps and whether
quick comes close. Search runs in this process through the library (ONNX Runtime, no torch here).
Stage timings are printed; the output is also written to benchmarks/results/ (see --out).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import CACHE, ROOT, _camera_photo, camera_photos  # noqa: E402

ARCH = "ViT-B-32"
SIZE = (4000, 3000)
BASE_ID = "bench-vit-b-32-t100"  # random weights, a released CLIP's temperature, torch weights kept
# The tune holds the temperature at the base's value. Every released CLIP ends pretraining at open_clip's
# cap, logit scale 100; 14.3 (1/0.07) is where pretraining *starts*, so a random model has it. At 14.3 even
# the best free text vectors (a linear probe on these photos' vectors) find the names at R@5 0.79; at 100,
# 0.96. The random base is given 100 so that the benchmark measures what users' bases do.
LOGIT_SCALE = 100.0
PLACES = ["Mia's lake house", "the Baxter cabin", "Oma's kitchen", "our Tuesday hike", "Grandpa's boat",
          "Aunt Rosa's garden", "the old mill", "Lena's treehouse", "the blue caravan", "Uncle Ted's workshop",
          "the Hendersons' farm", "Noah's football pitch", "the red barn", "Nana's porch", "the Miller reunion",
          "Sam's climbing wall", "the cottage at Loch Fyne", "Papa Joe's diner", "our allotment",
          "the Kowalski wedding", "Ivy's first flat", "the church hall", "Kai's skate park", "the Okafor barbecue",
          "the lighthouse walk", "Dad's vegetable patch", "the Santos christening", "Tilly's pony club",
          "the beach hut at Wells", "Opa's garage", "the Patel Diwali party", "our camper van"]
WORDINGS = ["{}", "at {}", "{} in July", "summer at {}", "a rainy afternoon at {}", "{}, 2019", "the kids at {}",
            "back at {} again", "{} with the dogs", "evening at {}", "Sunday lunch at {}", "first visit to {}"]
ALBUMS = ["2019-07 Summer", "2019-12 Christmas", "2020 Easter", "2021-08 Holidays", "2022 Family", "2023-05 Weekends",
          "2024 Odds and ends", "2025-06 Summer"]
PLACES_PER_ALBUM = 4
SEED = 20261130


# -- photos --------------------------------------------------------------------------------------------

def _variant(args) -> None:
    """Another photo of a place: a crop (60-90% of each side), maybe mirrored, with shifted colours."""
    src, dst, seed = args
    from PIL import Image, ImageEnhance, ImageOps

    rng = np.random.default_rng(seed)
    with Image.open(src) as im:
        im.load()
        w, h = im.size
        s = rng.uniform(0.6, 0.9)
        cw, ch = int(w * s), int(h * s)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        out = im.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.85, 1.15))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.75, 1.25))
    gains = rng.uniform(0.92, 1.08, 3)  # white balance
    out = Image.merge("RGB", [band.point(lambda v, g=g: min(255, int(v * g))) for band, g in zip(out.split(), gains)])
    tmp = dst.with_suffix(".part")
    out.save(tmp, "JPEG", quality=90)
    tmp.replace(dst)


def photo_cache(places: int, per_place: int) -> Path:
    """Source photos (one per place) and `per_place` variants of each, made once in benchmarks/.cache."""
    folder = CACHE / f"finetune-{SIZE[0]}x{SIZE[1]}"
    (folder / "src").mkdir(parents=True, exist_ok=True)
    sources = [(folder / "src" / f"place{i:02d}.jpg", 1000 + i, SIZE) for i in range(places)]
    todo = [s for s in sources if not s[0].exists()]
    if todo:
        print(f"making {len(todo)} source photos {SIZE[0]}x{SIZE[1]} (once)…", flush=True)
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(_camera_photo, todo))
    variants = [(folder / "src" / f"place{i:02d}.jpg", folder / f"place{i:02d}_{j:02d}.jpg", SEED + 1000 * i + j)
                for i in range(places) for j in range(per_place)]
    todo = [v for v in variants if not v[1].exists()]
    if todo:
        print(f"making {len(todo)} crops, flips and colour shifts of them (once)…", flush=True)
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(_variant, todo, chunksize=4))
    return folder


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_library(root: Path, args) -> dict:
    """albums/<album>/IMG_*.jpg + captions.csv, and camera roll/DCIM/100CANON/IMG_*.jpg (uncaptioned).

    Returns {"albums", "roll", "truth": {roll path: place index}, "captions": [(path, caption)]}."""
    cache = photo_cache(args.places, args.captioned + args.held_out)
    distractors = sorted(camera_photos(args.distractors).glob("IMG_*.jpg"))[: args.distractors]
    rng = np.random.default_rng(SEED)
    albums, roll = root / "albums", root / "camera roll" / "DCIM" / "100CANON"
    roll.mkdir(parents=True)
    number = iter(rng.permutation(np.arange(1000, 9999)))
    order = rng.permutation(args.places)  # which album each place's photos go to
    captions, truth = [], {}
    for a in range(0, args.places, PLACES_PER_ALBUM):
        album = albums / ALBUMS[(a // PLACES_PER_ALBUM) % len(ALBUMS)]
        album.mkdir(parents=True)
        rows = []
        for i in order[a:a + PLACES_PER_ALBUM]:
            for j in range(args.captioned):
                name = f"IMG_{next(number)}.jpg"
                _link(cache / f"place{i:02d}_{j:02d}.jpg", album / name)
                rows.append((name, WORDINGS[(i + j) % len(WORDINGS)].format(PLACES[i])))
                captions.append((album / name, rows[-1][1]))
        rows.sort()
        with open(album / "captions.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["file", "caption"])
            w.writerows(rows)
    for i in range(args.places):
        for j in range(args.captioned, args.captioned + args.held_out):
            path = roll / f"IMG_{next(number)}.jpg"
            _link(cache / f"place{i:02d}_{j:02d}.jpg", path)
            truth[os.path.realpath(path)] = i
    for src in distractors:
        path = roll / f"IMG_{next(number)}.jpg"
        _link(src, path)
        truth[os.path.realpath(path)] = -1
    return {"albums": albums, "roll": root / "camera roll", "truth": truth, "captions": captions}


# -- model ---------------------------------------------------------------------------------------------

_INSTALL = """
import math, sys
import torch
from model.obtain import install
from model.openclip import random_init
from model.store import ModelStore
loaded = random_init(sys.argv[2])
with torch.no_grad():
    loaded.model.logit_scale.fill_(math.log(float(sys.argv[4])))
install(ModelStore(sys.argv[1]), loaded, sys.argv[3], keep_weights=True)
"""


def base_model() -> Path:
    """ViT-B-32 with random weights and logit scale 100, exported, its torch weights kept (made once, in a
    child process)."""
    from model.store import ModelStore

    store = ModelStore(CACHE / "models")
    if not store.exists(BASE_ID):
        print(f"exporting {ARCH} with random weights, torch weights kept (once)…", flush=True)
        subprocess.run([sys.executable, "-c", _INSTALL, str(store.root), ARCH, BASE_ID, str(LOGIT_SCALE)], cwd=ROOT,
                       check=True)
    return store.get(BASE_ID).path


# -- running things as a user does ---------------------------------------------------------------------

def glimpse(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`glimpse ARGS` in a fresh process (GLIMPSE_HOME is this benchmark's own)."""
    r = subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"`glimpse {' '.join(args)}` failed (exit {r.returncode}):\n{r.stderr.strip()[-3000:]}")
    return r


def last_json(text: str) -> dict:
    """The last line of `text` that is a JSON object (the CLI's --json answer; a whole JSON document too)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError(f"no JSON object in: {text[-500:]!r}")


def train_directly(base: str, mode: str, name: str, extra: list[str]) -> dict:
    """`python -m training` on the library's captions, as `app.tasks.tune` starts it, with flags that
    `glimpse tune` does not offer (`extra`). Returns the result event (its events read off stdout)."""
    from app.library.library import Library
    from app.tasks import tune

    library = Library()
    work = Path(tempfile.mkdtemp(prefix="tune-bench-", dir=library.paths.cache))
    try:
        tune.gather(library, work / "data", base)
        store = library.models.store.root
    finally:
        library.close()
    cmd = [sys.executable, "-m", "training", "--data", str(work / "data"), "--store", str(store), "--base", base,
           "--mode", mode, "--name", name, *extra]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    result = next((e for e in events if e.get("event") == "result"), None)
    if result is None:
        error = next((e["message"] for e in events if e.get("event") == "error"), r.stderr.strip()[-2000:])
        raise SystemExit(f"`python -m training {' '.join(cmd[3:])}` failed: {error}")
    return result


def training_flags() -> str:
    """`python -m training --help` (to see which switches this version has)."""
    return subprocess.run([sys.executable, "-m", "training", "--help"], cwd=ROOT, capture_output=True,
                          text=True).stdout


# -- measuring -----------------------------------------------------------------------------------------

def recall(model_id: str, roll: Path, truth: dict[str, int], names: list[str]) -> dict:
    """Text->image recall of the bare names over the uncaptioned photos (the camera roll) only, through the
    library's search (ONNX Runtime, the catalog's vectors), with `model_id`'s text tower."""
    from app.library.library import Library
    from app.library.search import Filters, Searcher
    from model.runtime import Encoder

    library = Library()
    try:
        encoder = Encoder(library.models.store.get(model_id))
        searcher = Searcher(library.catalog, encoder)
        ranks = []
        for i, q in enumerate(encoder.encode_texts(names)):
            results = searcher.search_vector(q, k=len(truth), filters=Filters(folder=str(roll)))
            if len(results) != len(truth):
                raise SystemExit(f"searching the camera roll gave {len(results)} photos, expected {len(truth)}")
            ranks.append(next(r for r, res in enumerate(results, 1) if truth[os.path.realpath(res.path)] == i))
    finally:
        library.close()
    ranks = np.array(ranks)
    return {"r1": float(np.mean(ranks <= 1)), "r5": float(np.mean(ranks <= 5)), "r10": float(np.mean(ranks <= 10)),
            "mean_rank": float(ranks.mean())}


def candidates(model_id: str) -> list[dict]:
    """The WiSE-FT alphas a tuned model's run weighed (from its manifest's lineage), [{"alpha", "r5", "agreement"}]."""
    from model.store import ModelStore
    from app.library.paths import Paths

    lineage = ModelStore(Paths.default().models).get(model_id).manifest.get("lineage") or {}
    return list((lineage.get("metrics") or {}).get("candidates") or [])


def chance(n: int, relevant: int, k: int) -> float:
    """P(at least one of `relevant` photos among the top k of n, ranked at random)."""
    return 1 - comb(n - relevant, k) / comb(n, k)


def plain_loop(batch: int, seconds: float) -> dict:
    """benchmarks/text_trim.py on ViT-B-32 in a child: the plain `encode_text` loop (77 tokens) and the trimmed
    tower, one training step each in turn, same batches. Returns {"plain": pairs/s, "trimmed": pairs/s}."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text_trim.py"), "--arch", ARCH, "--batch",
                        str(batch), "--seconds", str(seconds)], cwd=ROOT, capture_output=True, text=True)
    rates = dict(re.findall(r"^(plain|trimmed)\s+([\d.]+) pairs/s", r.stdout, re.M))
    if r.returncode != 0 or len(rates) != 2:
        raise SystemExit(f"benchmarks/text_trim.py failed:\n{r.stdout}\n{r.stderr[-2000:]}")
    return {k: float(v) for k, v in rates.items()}


class Report:
    """Prints, and keeps every line for the results file."""

    def __init__(self):
        self.lines: list[str] = []
        self.start = time.perf_counter()
        self.stages: list[tuple[str, float]] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def stage(self, name: str, t0: float) -> float:
        seconds = time.perf_counter() - t0
        self.stages.append((name, seconds))
        self(f"  [{name}: {seconds:.0f} s]")
        return seconds


def _metrics(m: dict) -> str:
    return f"R@1 {m['r1']:.2f}  R@5 {m['r5']:.2f}  R@10 {m['r10']:.2f}  mean rank {m['mean_rank']:5.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--places", type=int, default=24, help=f"named places (at most {len(PLACES)})")
    ap.add_argument("--captioned", type=int, default=10, help="captioned photos of each place")
    ap.add_argument("--held-out", type=int, default=4, help="uncaptioned photos of each place")
    ap.add_argument("--distractors", type=int, default=48, help="uncaptioned photos of other scenes")
    ap.add_argument("--plain-seconds", type=float, default=30.0, help="time for the plain-loop measurement")
    ap.add_argument("--plain-batch", type=int, default=32,
                    help="batch of the plain-loop measurement (pairs/s on a CPU hardly depend on it; 77 tokens "
                         "at the tune's batch of 128 take 5 GB and a minute a step)")
    ap.add_argument("--skip-variants", action="store_true", help="only the defaults (no quick, no bank-off run)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary GLIMPSE_HOME (its path is printed)")
    ap.add_argument("--out", type=Path, help="results file (default benchmarks/results/finetune-cpuN-DATE.txt)")
    args = ap.parse_args(argv)
    if not 1 <= args.places <= len(PLACES):
        ap.error(f"--places must be 1..{len(PLACES)}")
    out = args.out or ROOT / "benchmarks" / "results" / f"finetune-cpu{os.cpu_count()}-{dt.date.today()}.txt"

    say = Report()
    home = Path(tempfile.mkdtemp(prefix="glimpse-finetune-bench-"))
    os.environ["GLIMPSE_HOME"] = str(home)  # this process and every child
    say(f"# python benchmarks/finetune.py {' '.join(argv if argv is not None else sys.argv[1:])}   "
        f"({dt.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start)")
    try:
        t0 = time.perf_counter()
        lib = build_library(home / "photos", args)
        weights = base_model()
        from app.library.paths import Paths

        shutil.copytree(weights, Paths.default().models / BASE_ID)
        n_cap, n_roll = len(lib["captions"]), len(lib["truth"])
        say(f"library: {args.places} places x {args.captioned} captioned photos ({n_cap}, in "
            f"{-(-args.places // PLACES_PER_ALBUM)} albums with a captions.csv each) + {args.places} x {args.held_out} "
            f"uncaptioned of the same places and {args.distractors} other scenes in the camera roll ({n_roll}); "
            f"{ARCH}, random weights, logit scale {LOGIT_SCALE:g} (a released CLIP's; see BASE_ID)")
        say(f"example captions: {'; '.join(sorted({c for _, c in lib['captions']})[:6])} …")
        say.stage("photos and model ready (cached after the first run)", t0)

        t0 = time.perf_counter()
        glimpse("models", "use", BASE_ID)
        glimpse("folders", "add", str(lib["albums"]))
        glimpse("folders", "add", str(lib["roll"]))
        glimpse("index")
        s = say.stage(f"glimpse index ({n_cap + n_roll} photos)", t0)
        say(f"  {(n_cap + n_roll) / s:.1f} photos/s")
        summary = last_json(glimpse("captions", "--json").stdout)
        say(f"glimpse captions: {summary.get('photos')} captioned photos, {summary.get('distinct')} distinct captions, "
            f"by source {summary.get('by_source')}")
        if summary.get("photos") != n_cap:
            say(f"WARNING: expected {n_cap} captioned photos")

        names = PLACES[:args.places]
        rel = args.held_out
        t0 = time.perf_counter()
        results = {"base": recall(BASE_ID, lib["roll"], lib["truth"], names)}
        say.stage("search with the base model", t0)

        t0 = time.perf_counter()
        plan = last_json(glimpse("tune", "--dry-run", "--json").stdout)
        say(f"plan (glimpse tune --dry-run): {plan.get('mode')} on {plan.get('device')}, {plan.get('train')} pairs "
            f"to train, {plan.get('held_out')} held out, {plan.get('epochs')} epochs, batch {plan.get('batch_size')}, "
            f"estimated {plan.get('estimate_s')} s")
        say.stage("glimpse tune --dry-run", t0)

        t0 = time.perf_counter()
        tuned = last_json(glimpse("tune", "--json").stdout)
        tune_wall = say.stage("glimpse tune --json (defaults)", t0)
        results["text (defaults)"] = recall(tuned["model"], lib["roll"], lib["truth"], names)
        runs = {"text (defaults)": tuned}

        t0 = time.perf_counter()
        loop = plain_loop(args.plain_batch, args.plain_seconds)
        say.stage(f"plain encode_text loop vs trimmed tower (benchmarks/text_trim.py, batch {args.plain_batch})", t0)

        if not args.skip_variants:
            t0 = time.perf_counter()
            glimpse("models", "use", BASE_ID)  # the base again (the default run may have made its model active)
            quick = last_json(glimpse("tune", "--mode", "quick", "--json", "--name", "bench-quick").stdout)
            say.stage("glimpse tune --mode quick --json", t0)
            results["quick"] = recall(quick["model"], lib["roll"], lib["truth"], names)
            runs["quick"] = quick

            t0 = time.perf_counter()
            help_text = glimpse("tune", "--help").stdout
            if "--no-bank" in help_text:
                nobank = last_json(glimpse("tune", "--no-bank", "--json", "--name", "bench-nobank").stdout)
                how = "glimpse tune --no-bank --json"
            elif "--no-bank" in training_flags():
                nobank = train_directly(BASE_ID, "text", "bench-nobank", ["--no-bank"])
                how = "python -m training --no-bank (glimpse tune has no such switch)"
            else:
                nobank, how = None, "MISSING: neither glimpse tune nor python -m training has --no-bank"
            if nobank:
                results["text, no bank"] = recall(nobank["model"], lib["roll"], lib["truth"], names)
                runs["text, no bank"] = nobank
            say.stage(how, t0)

        # -- the figures -------------------------------------------------------------------------------
        say()
        say(f"Text->image recall of the {args.places} bare place names over the {n_roll} uncaptioned photos only "
            f"({rel} relevant each); chance: R@1 {chance(n_roll, rel, 1):.2f}, R@5 {chance(n_roll, rel, 5):.2f}, "
            f"R@10 {chance(n_roll, rel, 10):.2f}, mean rank ~{(n_roll + 1) / (rel + 1):.0f}")
        for name, m in results.items():
            run = runs.get(name, {})
            note = f"   (tune {run['seconds']:.0f} s, alpha {run.get('alpha')}, agreement {run.get('agreement', 0):.2f})" \
                if run.get("seconds") else ""
            say(f"  {name:16s} {_metrics(m)}{note}")
        say()
        say("The tune's own held-out split (captioned photos it did not train on, their own captions as queries):")
        for name, run in runs.items():
            say(f"  {name:16s} before {_metrics(run['before'])}")
            verdict = f"   activated: {run['activated']} ({run.get('reason')})" if "activated" in run else ""
            say(f"  {'':16s} after  {_metrics(run['after'])}{verdict}")
        say()
        say("WiSE-FT candidates (alpha: held-out R@5 / agreement; the guard keeps agreement >= 0.7, else takes the "
            "highest agreement):")
        for name, run in runs.items():
            cands = candidates(run["model"])
            say(f"  {name:16s} " + ", ".join(f"{c['alpha']}: {c.get('r5', float('nan')):.2f} / "
                                              f"{c.get('agreement', float('nan')):.2f}" for c in cands)
                + f"  -> alpha {run.get('alpha')}")
        say()
        pairs = int(plan.get("train") or 0) * int(plan.get("epochs") or 0)
        say(f"glimpse tune (defaults): {tune_wall:.0f} s wall for the command, {tuned.get('seconds')} s in the "
            f"trainer, {pairs} pairs trained ({pairs / tuned['seconds']:.1f} pairs/s over the trainer's whole time, "
            f"with loading, evaluation, WiSE-FT and export)")
        say(f"plain encode_text loop (77 tokens), same run: {loop['plain']:.1f} pairs/s; trimmed tower alone "
            f"{loop['trimmed']:.1f} pairs/s ({loop['trimmed'] / loop['plain']:.2f}x)")
        # The trainer's own rate (training steps only); `glimpse tune --json` may not pass it on, a direct
        # `python -m training` run on the same data and batch does.
        for name in ("text (defaults)", "text, no bank"):
            pps = runs.get(name, {}).get("pairs_per_s")
            if pps:
                say(f"{name}: {pps:.1f} pairs/s in training steps (as the trainer reports), "
                    f"{pps / loop['plain']:.2f}x the plain loop (target >= 4x)")
        if not tuned.get("pairs_per_s"):
            say("(`glimpse tune --json` does not report pairs_per_s; the no-bank run's figure is the trainer's, "
                "on the same data, batch and epochs)")
        r5 = results["text (defaults)"]["r5"]
        say(f"R@5 of the names on uncaptioned photos: base {results['base']['r5']:.2f} (chance "
            f"{chance(n_roll, rel, 5):.2f}) -> defaults {r5:.2f}: {'PASS' if r5 >= 0.8 else 'FAIL'} (target >= 0.8)")
        if "text, no bank" in results:
            b, nb = r5, results["text, no bank"]["r5"]
            say(f"bank of negatives: R@5 {b:.2f} with, {nb:.2f} without")
        if "quick" in results:
            say(f"quick mode: R@5 {results['quick']['r5']:.2f} in {runs['quick'].get('seconds')} s "
                f"(text mode {r5:.2f} in {tuned.get('seconds')} s)")
        say("stage timings: " + ", ".join(f"{n.split(' (')[0]} {s:.0f} s" for n, s in say.stages))
        say(f"total {time.perf_counter() - say.start:.0f} s; load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(say.lines) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
