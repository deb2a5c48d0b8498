"""Fine-tuning runs on the tiny model: recall rises, NaN stops, refusals, the `python -m training` protocol."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from conftest import ROOT, make_photos  # noqa: E402
from training import data  # noqa: E402
from training.run import Failed, Options, Refused, run  # noqa: E402

NAMES = ["Mia's lake house", "the Baxter cabin", "Oma's kitchen", "our Tuesday hike", "grandpa's boat",
         "the old mill", "Uncle Joe's farm", "the red barn", "Lotte's garden", "the Zimmer chalet"]
WORDING = ["{}", "at {}", "{} in summer", "a day at {}", "evening at {}", "{} with the kids",
           "morning at {}", "{} again", "snow at {}", "back at {}", "{}, last year", "weekend at {}"]


def synthetic(places: int = 10, per_place: int = 16, dim: int = 32, seed: int = 0, paths=None) -> data.Dataset:
    """Photos of named places: image vectors in one cluster per place, captions naming it in varied words.
    Albums (folders) hold half a place each; the library holds more photos of the places, uncaptioned."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(places, dim))

    def photo(k):
        return centres[k] + 0.35 * rng.normal(size=dim) * np.linalg.norm(centres[k]) / np.sqrt(dim)

    pairs, vectors = [], []
    for k in range(places):
        for j in range(per_place):
            i = len(pairs)
            path = str(paths[i % len(paths)]) if paths else f"/photos/{k}/{j}.jpg"
            pairs.append(data.Pair(path, f"h{k}-{j}", WORDING[(j + k) % len(WORDING)].format(NAMES[k]), "test",
                                   f"/photos/album{k}-{j % 2}"))
            vectors.append(photo(k))
    library = [photo(k) for k in range(places) for _ in range(6)] + list(rng.normal(size=(40, dim)))
    norm = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return data.Dataset(pairs, norm(np.array(vectors)), norm(np.array(library)),
                        [f"/library/{i}.jpg" for i in range(len(library))], {"base": "tiny-clip"})


def _run(store, folder: Path, dataset: data.Dataset, events: list | None = None, **options) -> dict:
    data.save(folder, dataset)
    sink = events.append if events is not None else (lambda e: None)
    return run(Options(folder, store.root, "tiny-clip", device="cpu", **options), sink)


def test_quick_mode_trains_only_the_projection(store_copy, tmp_path):
    result = _run(store_copy, tmp_path / "data", synthetic(), mode="quick")
    assert result["after"]["r5"] > result["before"]["r5"] + 0.2
    assert result["after"]["mean_rank"] < result["before"]["mean_rank"] - 2
    from safetensors.torch import load_file

    base = load_file(store_copy.get("tiny-clip").path / "open_clip_model.safetensors")
    tuned = load_file(store_copy.get(result["model"]).path / "open_clip_model.safetensors")
    changed = sorted(k for k in base if not torch.equal(base[k], tuned[k]))
    assert changed == ["text_projection"]


def test_nan_loss_stops_the_run_and_installs_nothing(store_copy, tmp_path):
    poisoned = synthetic()
    poisoned.vectors[3, 0] = np.nan
    before = store_copy.ids()
    with pytest.raises(Failed, match=r"training diverged: the loss became NaN at step 1; nothing was installed"):
        _run(store_copy, tmp_path / "data", poisoned)
    assert store_copy.ids() == before
    assert not [p for p in store_copy.root.iterdir() if p.name.startswith(".")]


def test_too_few_captions_are_refused(store_copy, tmp_path):
    small = synthetic(places=1, per_place=19)
    with pytest.raises(Refused, match="Only 19 captioned photos: fine-tuning needs at least 20"):
        _run(store_copy, tmp_path / "data", small)


def test_dry_run_plans_and_installs_nothing(store_copy, tmp_path):
    events: list[dict] = []
    plan = _run(store_copy, tmp_path / "data", synthetic(), events, dry_run=True)
    assert plan["event"] == "plan" and plan["pairs"] == 160 and plan["held_out"] == 20 and plan["train"] == 140
    assert plan["estimate_s"] > 0 and plan["before"]["r5"] is not None and plan["model"] == "tiny-clip-tuned"
    assert [e["event"] for e in events if e["event"] != "progress"] == ["start"]
    assert store_copy.ids() == ["tiny-clip"]


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_two_tower_modes_run_on_real_photos(store_copy, tmp_path, mode):
    if mode == "lora":
        pytest.importorskip("peft")
    photos = make_photos(tmp_path / "photos", 8)
    dataset = synthetic(places=4, per_place=6, paths=photos)
    events: list[dict] = []
    result = _run(store_copy, tmp_path / "data", dataset, events, mode=mode, epochs=1, batch_size=8)
    assert result["mode"] == mode and result["device"] == "cpu"
    caching = [e for e in events if e["event"] == "progress" and e["stage"] == "cache"]
    assert caching and caching[-1]["done"] == caching[-1]["total"] == 24 + 64  # the pairs and the library sample (its paths are made up: unreadable)
    assert list((tmp_path / "data" / "image-cache").glob("pixels-*.u8"))
    tuned = store_copy.get(result["model"])
    assert tuned.manifest["lineage"]["mode"] == mode
    assert tuned.image_space != store_copy.get("tiny-clip").image_space  # a new image tower: re-index
    assert "lora" not in " ".join(json.loads((tuned.path / "manifest.json").read_text())["files"])


def _child(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "training", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_python_m_training_learns_the_names_and_keeps_the_image_space(store_copy, tmp_path):
    """Text mode with its defaults, as the window starts it: JSON lines out, a model in the store."""
    data.save(tmp_path / "data", synthetic())
    child = _child("--data", str(tmp_path / "data"), "--store", str(store_copy.root), "--base", "tiny-clip",
                   "--device", "cpu")
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-2000:]
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "progress" and "start" in kinds and kinds[-1] == "result"
    start = events[kinds.index("start")]
    assert {k: start[k] for k in ("mode", "device", "pairs", "train", "held_out", "distinct", "epochs")} == \
        {"mode": "text", "device": "cpu", "pairs": 160, "train": 140, "held_out": 20, "distinct": 120, "epochs": 15}
    assert start["estimate_s"] > 0
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert list(dict.fromkeys(stages)) == ["prepare", "head", "train", "evaluate", "export"]  # LP, then FT
    assert all("loss" in e for e in events if e["event"] == "progress" and e["stage"] == "train")
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, 16)) and epochs[-1]["r5"] > epochs[0]["r5"]
    result = events[-1]
    before, after = result["before"], result["after"]
    # from chance to finding the places by name, on photos the training never saw
    assert before["r5"] < 0.5 and after["r5"] >= 0.85
    assert after["mean_rank"] < before["mean_rank"] - 3
    assert result["agreement"] >= 0.7 and result["alpha"] in (0.25, 0.5, 0.75, 1.0)
    assert result["examples"] and all(len(x["paths"]) == 5 for x in result["examples"])
    assert result["model"] == "tiny-clip-tuned"
    base, tuned = store_copy.get("tiny-clip"), store_copy.get("tiny-clip-tuned")
    assert tuned.image_space == base.image_space == result["image_space"]  # zero re-encoding
    lineage = tuned.manifest["lineage"]
    assert lineage["kind"] == "finetune" and lineage["base"] == "tiny-clip" and lineage["mode"] == "text"
    assert lineage["fingerprint"] == synthetic().fingerprint() == result["fingerprint"]
    assert lineage["alpha"] == result["alpha"] and lineage["metrics"]["after"] == after
    assert tuned.manifest["finetune"]["after"] == after and tuned.manifest["finetune"]["captions"] == 160
    assert (tuned.path / "open_clip_model.safetensors").is_file()


def test_python_m_training_refuses_few_captions_with_exit_2(store_copy, tmp_path):
    data.save(tmp_path / "data", synthetic(places=1, per_place=12))
    child = _child("--data", str(tmp_path / "data"), "--store", str(store_copy.root), "--base", "tiny-clip")
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 2
    event = json.loads(out.splitlines()[-1])
    assert event["event"] == "error" and "needs at least 20" in event["message"]


def test_sigterm_stops_without_installing(store_copy, tmp_path):
    data.save(tmp_path / "data", synthetic())
    child = _child("--data", str(tmp_path / "data"), "--store", str(store_copy.root), "--base", "tiny-clip",
                   "--device", "cpu", "--epochs", "400")
    for line in child.stdout:
        if json.loads(line).get("stage") == "train":
            break
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1
    assert json.loads(out.splitlines()[-1]) == {"event": "error",
                                                "message": "Fine-tuning was cancelled; nothing was installed."}
    assert store_copy.ids() == ["tiny-clip"]


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_torch):
    """A GPU that holds only 8 pairs at a time: the first step of 32 fails, the batch halves twice, every
    training pair is still seen, and the user is told (the same code path as CUDA; faked memory limit)."""
    import copy

    from training.trainer import Trainer

    class SmallMemory(Trainer):
        def step(self, batch):
            if len(batch) > 8:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            self.seen.extend(int(i) for i in batch)
            return super().step(batch)

    ds = synthetic(places=4, per_place=10)
    notes: list[str] = []
    trainer = SmallMemory(copy.deepcopy(tiny_torch), "text", tokens=torch.randint(1, 400, (40, 8)),
                          vectors=ds.vectors, caption_ids=ds.caption_ids(), folders=ds.folder_ids(),
                          train=np.arange(40), logit_scale=100.0, epochs=1, batch_size=32, lr=1e-4,
                          on_note=notes.append)
    trainer.seen = []
    loss = trainer.epoch(0)
    assert np.isfinite(loss) and trainer.batch_size == 8
    assert sorted(trainer.seen) == list(range(40))
    assert notes and "halved to 16" in notes[0] and "halved to 8" in notes[-1]


def test_one_caption_on_every_photo_is_refused(store_copy, tmp_path):
    same = synthetic(places=2, per_place=15)
    for p in same.pairs:
        p.text = "vacation"
    with pytest.raises(Refused, match="same caption"):
        _run(store_copy, tmp_path / "data", same)
