"""`glimpse models export NAME DIR`: the user's model as an open_clip folder that open_clip loads."""
from __future__ import annotations

import numpy as np

from conftest import run_glimpse


def test_exported_folder_loads_in_open_clip_and_gives_the_same_vectors(library, tmp_path):
    import open_clip
    import torch

    from model.runtime import Encoder

    stored = library.models.active()
    out = tmp_path / "my model"
    r = run_glimpse("models", "export", stored.id, str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{out}")
    model.eval()

    encoder = Encoder(stored, "cpu")
    texts = ["grandma's cabin in the snow", "a dog on a beach"]
    pixels = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        text = model.encode_text(torch.from_numpy(encoder.tokenize(texts)), normalize=True).numpy()
        image = model.encode_image(torch.from_numpy(pixels), normalize=True).numpy()
    np.testing.assert_allclose(text, encoder.encode_texts(texts), atol=1e-4)
    np.testing.assert_allclose(image, encoder.encode_arrays(pixels), atol=1e-4)


def test_export_refuses_a_folder_that_holds_files(library, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    r = run_glimpse("models", "export", library.models.active_id, str(tmp_path))
    assert r.returncode == 1
    assert "not an empty folder" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_export_to_a_place_that_cannot_be_written_is_one_line(library, tmp_path):
    r = run_glimpse("models", "export", library.models.active_id, "/proc/glimpse-model")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("glimpse: Cannot write /proc/glimpse-model")
