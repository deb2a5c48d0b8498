"""ONNX Runtime encoders: torch-free, normalised, lazy, on the provider they report."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from conftest import ROOT
from images import photo
from model.runtime import CPU, Encoder, cpu_threads


def test_encoding_in_a_fresh_process_never_imports_torch(tiny_stored, tmp_path):
    img = tmp_path / "p.jpg"
    photo(320, 240).save(img, quality=90)
    code = f"""
import json, sys
from model.store import ModelStore
from model.runtime import Encoder
enc = Encoder(ModelStore({str(tiny_stored.path.parent)!r}).get({tiny_stored.id!r}))
t = enc.encode_texts(["a cat", "snow"])
i = enc.encode_images([{str(img)!r}])
print(json.dumps({{"torch": "torch" in sys.modules, "open_clip": "open_clip" in sys.modules,
                  "shapes": [t.shape, i.shape], "dtype": str(t.dtype)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"torch": False, "open_clip": False, "shapes": [[2, 32], [1, 32]], "dtype": "float32"}


def test_outputs_are_unit_length_float32(tiny_stored):
    enc = Encoder(tiny_stored)
    texts = enc.encode_texts(["a dog on a beach", "a city at night", ""])
    images = enc.encode_images([photo(200, 150, seed=s) for s in range(3)])
    for v in (texts, images):
        assert v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_sessions_open_lazily_and_report_their_provider(tiny_stored):
    enc = Encoder(tiny_stored)
    assert enc._visual is None and enc._textual is None
    enc.encode_texts(["x"])
    assert enc._textual is not None and enc._visual is None
    assert enc.providers_in_use("textual") == [CPU]  # no GPU on this machine: the CPU, and said so


def test_thread_count_follows_cpu_affinity():
    code = "import os; os.sched_setaffinity(0, {0}); from model.runtime import cpu_threads; print(cpu_threads())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    import os

    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_imported_model_gives_the_same_vectors_as_torch(tiny_stored, tiny_folder):
    """Round trip: the open_clip folder in torch and the stored ONNX model agree."""
    import open_clip
    import torch
    from open_clip.transform import PreprocessCfg, image_transform_v2

    model = open_clip.create_model(f"local-dir:{tiny_folder}").eval()
    transform = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), False)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_folder}")
    images = [photo(w, h, seed=i) for i, (w, h) in enumerate([(640, 480), (300, 500), (64, 64)])]
    texts = ["grandma's cabin in the snow", "a red bicycle", "Strand 1998"]
    with torch.no_grad():
        t_img = model.encode_image(torch.stack([transform(im) for im in images]), normalize=True).numpy()
        t_txt = model.encode_text(tokenizer(texts), normalize=True).numpy()
    enc = Encoder(tiny_stored)
    o_img, o_txt = enc.encode_images(images), enc.encode_texts(texts)
    assert np.min(np.sum(t_img * o_img, axis=1)) > 0.9999 and np.abs(t_img - o_img).max() < 1e-4
    assert np.min(np.sum(t_txt * o_txt, axis=1)) > 0.9999 and np.abs(t_txt - o_txt).max() < 1e-4


def test_near_duplicate_is_nearest_even_with_random_weights(tiny_stored, tmp_path):
    enc = Encoder(tiny_stored)
    originals = [photo(640, 480, seed=s) for s in range(8)]
    library = enc.encode_images(originals)
    edited = originals[5].resize((500, 375)).rotate(2)
    path = tmp_path / "edited.jpg"
    edited.save(path, quality=60)
    query = enc.encode_images([path])[0]
    assert int(np.argmax(library @ query)) == 5
