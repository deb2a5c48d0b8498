"""Export both towers of an open_clip model to ONNX, and prove the export right.

- Each tower is wrapped in a small module that calls `encode_image` / `encode_text` with
  `normalize=True`; `.eval()` is called on the wrapper and on the model after wrapping.
- The default (dynamo) exporter, `external_data=False`, an example batch of 2, and a dynamic
  batch dimension, asserted in the saved graph and by running batches of 1 and 3.
- Outputs are named `image_embeds` / `text_embeds` (`embedding` collides with an internal node).
- Text pooling takes the argmax of the token ids cast to float: ONNX Runtime's CUDA provider
  has no int64 ArgMax. open_clip's pooling is patched for the export only.
- CLIP's own text tower (causal mask, end-of-text pooling) is exported with a dynamic sequence
  length too: the end-of-text token never attends to the padding after it, so a query can run at
  its own length (a 7-token query does a tenth of the work of 77) with the same result. The
  manifest says so (`variable_length`), the runtime trims the padding, and parity checks it.
- Parity with torch is checked on every export, on inputs that differ from the example ones:
  cosine > 0.9999 and max abs difference < 1e-4 per tower, or the export fails.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Callable
from pathlib import Path

import numpy as np

from .errors import ExportError
from .tokenizer import trim_padding

COSINE_MIN = 0.9999
MAX_ABS = 1e-4
PARITY_TEXTS = ["a photo of a cat", "grandma's cabin in the snow", "Kinder am Strand, 1998",
                "日本の桜", "a red car parked next to a tall building at night with rain"]


def tower(model, encode):
    """Wrap `encode(model, x)` in a module; `.eval()` on the wrapper, then on the model after wrapping."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m

        def forward(self, x):
            return encode(self.model, x)

    wrapper = Tower(model).eval()
    model.eval()
    return wrapper


def _encode_image(m, pixels):
    return m.encode_image(pixels, normalize=True)


def _encode_text(m, ids):
    return m.encode_text(ids, normalize=True)


def _pool_end_of_text(x, ids):
    """Features at each row's end-of-text token (the highest id), found by an argmax over floats."""
    import torch

    return x[torch.arange(x.shape[0], device=x.device), ids.to(torch.float32).argmax(dim=-1)]


def variable_length_text(model) -> bool:
    """Whether the text tower can run on unpadded ids: open_clip's CLIP class with a causal mask."""
    return (hasattr(model, "token_embedding") and getattr(model, "attn_mask", None) is not None
            and getattr(model, "text_pool_type", "argmax") == "argmax" and hasattr(model, "positional_embedding"))


def _encode_short_text(m, ids):
    """CLIP.encode_text(normalize=True) for ids of any length up to the context length."""
    import torch
    import torch.nn.functional as F

    n = ids.shape[1]
    x = m.token_embedding(ids) + m.positional_embedding[:n]
    x = _pool_end_of_text(m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n])), ids)
    proj = m.text_projection
    x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x, dim=-1)


@contextlib.contextmanager
def float_argmax_pooling():
    """Make open_clip pool the end-of-text token with an argmax over float ids (CUDA-friendly)."""
    import open_clip.model as oc_model
    import open_clip.transformer as oc_transformer

    original = oc_transformer.text_global_pool

    def pool(x, text=None, pool_type="argmax", eos_token_id=None):
        if pool_type == "argmax" and text is not None:
            return _pool_end_of_text(x, text)
        return original(x, text, pool_type=pool_type, eos_token_id=eos_token_id)

    oc_transformer.text_global_pool = pool
    oc_model.text_global_pool = pool
    try:
        yield
    finally:
        oc_transformer.text_global_pool = original
        oc_model.text_global_pool = original


def _export(module, example, path: Path, input_name: str, output_name: str, max_len: int | None = None) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    dims = {0: batch} if max_len is None else {0: batch, 1: torch.export.Dim("length", min=2, max=max_len)}
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                              input_names=[input_name], output_names=[output_name],
                              dynamic_shapes=(dims,), optimize=True, verbose=False)
        except Exception as e:
            raise ExportError(f"ONNX export of {path.stem} failed: {str(e).splitlines()[0][:300]}") from e
    _assert_dynamic_batch(path, input_name)


@contextlib.contextmanager
def _quiet_exporter():
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _assert_dynamic_batch(path: Path, input_name: str) -> None:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {i.name: i for i in graph.input}
    if input_name not in inputs:
        raise ExportError(f"{path.name}: exported input is not named {input_name}")
    dim0 = inputs[input_name].type.tensor_type.shape.dim[0]
    if not dim0.dim_param or dim0.HasField("dim_value"):
        raise ExportError(f"{path.name}: the batch dimension was fixed to {dim0.dim_value} by the export")


def export_towers(model, out_dir: Path, image_size: tuple[int, int], tokens,
                  on_text: Callable[[], None] | None = None) -> bool:
    """Write `visual.onnx` and `textual.onnx` into `out_dir`. `tokens` is an int64 (N >= 2, ctx) example.
    `on_text()` is called between the two (progress).

    Returns whether the text tower takes ids of variable length.
    """
    import torch

    model.eval()
    h, w = image_size
    with torch.no_grad():
        _export(tower(model, _encode_image), torch.randn(2, 3, h, w), out_dir / "visual.onnx", "pixel_values", "image_embeds")
        if on_text is not None:
            on_text()
        if variable_length_text(model):
            example = torch.as_tensor(trim_padding(tokens[:2]), dtype=torch.long)
            _export(tower(model, _encode_short_text), example, out_dir / "textual.onnx", "input_ids", "text_embeds",
                    max_len=int(tokens.shape[1]))
            return True
        with float_argmax_pooling():
            _export(tower(model, _encode_text), torch.as_tensor(tokens[:2], dtype=torch.long),
                    out_dir / "textual.onnx", "input_ids", "text_embeds")
        return False


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine similarity between two (N, D) arrays."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(np.min(np.sum(a * b, axis=1) / (na * nb + 1e-12)))


def parity(model, out_dir: Path, image_size: tuple[int, int], tokens: np.ndarray, seed: int = 1,
           variable_length: bool = False) -> dict:
    """Compare the ONNX towers (CPU provider) with torch; raise ExportError past the thresholds.

    With `variable_length`, the text tower is checked on the full context and on trimmed ids.
    """
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    pixels = rng.standard_normal((3, 3, *image_size)).astype(np.float32)
    report = {}
    with torch.no_grad():
        expected = {"visual": model.encode_image(torch.from_numpy(pixels), normalize=True).numpy(),
                    "textual": model.encode_text(torch.from_numpy(tokens), normalize=True).numpy()}
    checks = [("visual", "visual", pixels), ("textual", "textual", tokens)]
    if variable_length:
        expected["textual_trimmed"] = expected["textual"]
        checks.append(("textual_trimmed", "textual", trim_padding(tokens)))
    for tower, onnx_name, feed in checks:
        sess = ort.InferenceSession(str(out_dir / f"{onnx_name}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: feed})[0]
        ref = expected[tower]
        if got.shape != ref.shape:
            raise ExportError(f"{onnx_name}.onnx ({tower}) returns shape {got.shape}, torch {ref.shape}")
        cos = cosine_min(got, ref)
        diff = float(np.max(np.abs(got - ref)))
        report[tower] = {"cosine_min": cos, "max_abs_diff": diff, "batch": int(len(ref)), "dim": int(ref.shape[1])}
        if not (cos > COSINE_MIN and diff < MAX_ABS):
            raise ExportError(f"{onnx_name}.onnx ({tower}) differs from torch: cosine {cos:.6f} (needs > {COSINE_MIN}), "
                              f"max abs diff {diff:.2e} (needs < {MAX_ABS:.0e})")
    return report
