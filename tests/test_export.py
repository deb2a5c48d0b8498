"""Export to ONNX: both towers, dynamic batch, CUDA-friendly pooling, parity enforced, atomic install."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from model.errors import ExportError, ImportError_
from model.export import PARITY_TEXTS, parity
from model.store import ModelStore


def test_store_folder_holds_both_towers_and_a_complete_manifest(tiny_stored):
    names = {p.name for p in tiny_stored.path.iterdir()}
    # An imported model keeps its torch weights (its source may go away): for fine-tuning and export.
    assert {"visual.onnx", "textual.onnx", "tokenizer.json", "open_clip_config.json", "manifest.json",
            "open_clip_model.safetensors"} == names
    m = json.loads((tiny_stored.path / "manifest.json").read_text())
    assert m["embed_dim"] == 32
    assert m["preprocess"]["size"] == [64, 64] and m["preprocess"]["interpolation"] == "bicubic"
    assert m["tokenizer"]["kind"] == "clip-bpe" and m["tokenizer"]["context_length"] == 77
    assert m["lineage"]["kind"] == "import"
    assert set(m["files"]) == names - {"manifest.json"} and all(len(h) == 64 for h in m["files"].values())
    for tower in ("visual", "textual"):
        assert m["parity"][tower]["cosine_min"] > 0.9999 and m["parity"][tower]["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("tower, name", [("visual", "pixel_values"), ("textual", "input_ids")])
def test_batch_dimension_is_dynamic(tiny_stored, tower, name):
    import onnxruntime as ort

    graph = onnx.load(str(tiny_stored.path / f"{tower}.onnx")).graph
    (inp,) = graph.input
    assert inp.name == name and inp.type.tensor_type.shape.dim[0].dim_param
    assert graph.output[0].name == ("image_embeds" if tower == "visual" else "text_embeds")
    sess = ort.InferenceSession(str(tiny_stored.path / f"{tower}.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 3, 7):
        x = (np.random.default_rng(n).standard_normal((n, 3, 64, 64)).astype(np.float32) if tower == "visual"
             else np.tile(np.array([[49406, 320, 1125, 49407] + [0] * 73]), (n, 1)))
        assert sess.run(None, {name: x})[0].shape == (n, 32)


def test_text_pooling_argmax_runs_on_floats(tiny_stored):
    """ONNX Runtime's CUDA provider has no int64 ArgMax: the export must cast the ids first."""
    graph = onnx.load(str(tiny_stored.path / "textual.onnx")).graph
    argmaxes = [n for n in graph.node if n.op_type == "ArgMax"]
    assert argmaxes, "pooling is an ArgMax"
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*graph.value_info, *graph.input]}
    for node in argmaxes:
        assert types.get(node.input[0]) == onnx.TensorProto.FLOAT


def test_parity_check_rejects_an_export_that_differs(tiny_stored, tiny_folder):
    """The check runs the saved ONNX against torch: another model's weights must fail it."""
    from model.openclip import from_folder

    other = from_folder(tiny_folder).model
    import torch

    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    from model.tokenizer import Tokenizer

    tokens = Tokenizer(tiny_stored.tokenizer_path, tiny_stored.manifest["tokenizer"])(PARITY_TEXTS)
    with pytest.raises(ExportError, match="differs from torch"):
        parity(other, tiny_stored.path, (64, 64), tokens)


def test_failed_install_leaves_nothing_behind(tmp_path, tiny_folder):
    from model.obtain import import_path

    store = ModelStore(tmp_path / "models")
    (tiny_folder.parent / "broken").mkdir(exist_ok=True)
    (tiny_folder.parent / "broken" / "open_clip_config.json").write_text(
        (tiny_folder / "open_clip_config.json").read_text())
    (tiny_folder.parent / "broken" / "open_clip_model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ImportError_, match=r"^open_clip cannot load \S*broken: "):
        import_path(store, tiny_folder.parent / "broken")
    assert list((tmp_path / "models").iterdir()) == []


def test_leftovers_of_a_crash_are_swept_and_never_listed(tmp_path, tiny_stored):
    import shutil

    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_stored.path, root / ".staging-abc123")  # a crash mid-export
    (root / ".trash-def456").mkdir()
    store = ModelStore(root)
    assert store.ids() == [] and list(root.iterdir()) == []


def test_reinstall_replaces_a_model_whole(store_copy, tiny_stored):
    """Installing over an existing id swaps the folder in one rename."""
    model_id = tiny_stored.id
    (store_copy.root / model_id / "visual.onnx").write_bytes(b"damaged")
    with store_copy.staging() as tmp:
        import shutil

        for f in tiny_stored.path.iterdir():
            if f.name != "manifest.json":
                shutil.copy(f, tmp / f.name)
        store_copy.install(tmp, {k: v for k, v in tiny_stored.manifest.items() if k not in ("files", "sizes")})
    store_copy.get(model_id).verify()
    assert store_copy.ids() == [model_id]


def test_text_tower_runs_at_the_query_length_with_the_same_vectors(tiny_stored):
    """CLIP's causal text tower: trimming the padding changes nothing but the work done."""
    import onnxruntime as ort

    from model.runtime import Encoder

    assert tiny_stored.manifest["tokenizer"]["variable_length"] is True
    graph = onnx.load(str(tiny_stored.path / "textual.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_param, "sequence length is dynamic"
    enc = Encoder(tiny_stored)
    texts = ["a cat", "grandma's cabin in the snow at night, seen from the frozen lake"]
    tokens = enc.tokenize(texts)
    full = enc.encode_tokens(tokens, trim=False)
    trimmed = enc.encode_tokens(tokens)
    assert np.abs(full - trimmed).max() < 1e-5
    sess = ort.InferenceSession(str(tiny_stored.textual_path), providers=["CPUExecutionProvider"])
    short = sess.run(None, {"input_ids": tokens[:1, :4]})[0]  # "a cat" is sot, a, cat, eot
    assert np.abs(short - full[:1]).max() < 1e-5
