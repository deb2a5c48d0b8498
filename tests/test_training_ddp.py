"""Two CPU processes on gloo give the same loss and the same updated weights as one process (same global batch)."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from conftest import make_photos  # noqa: E402

BATCHES = [np.array([0, 5, 9, 12, 3, 14, 7, 1]), np.array([2, 8, 11, 4, 15, 6, 10, 13])]


def _setup(mode: str, tokens, work: Path, world):
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny

    from model.preprocess import PreprocessConfig
    from training.images import ImageCache
    from training.trainer import Trainer

    model = tiny.make_model(seed=0)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(16, 32)).astype(np.float32)
    caption_ids = np.array([0, 1, 2, 3, 0, 4, 5, 6, 7, 1, 8, 9, 10, 11, 12, 13])  # repeats: multi-positive
    images = None
    if mode == "full":
        images = ImageCache(work / "cache", sorted(str(p) for p in (work / "photos").iterdir()),
                            PreprocessConfig(size=(64, 64)))
    return Trainer(model, mode, tokens=tokens, vectors=vectors, caption_ids=caption_ids,
                   folders=np.arange(16) // 4, train=np.arange(16), logit_scale=10.0, epochs=1, batch_size=8,
                   lr=1e-4, device="cpu", images=images, bank=(mode == "text"), world=world,
                   anchors=tokens[:12], anchor_weight=1.0, clip=None)  # more than a step samples


def _steps(trainer) -> tuple[list[float], dict]:
    """Losses of two steps, then the weights and the last step's gradients (AdamW hides a gradient's scale)."""
    losses = [trainer.step(b) for b in BATCHES]
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    state.update({f"grad:{k}": p.grad.clone() for k, p in trainer.model.named_parameters() if p.grad is not None})
    return losses, state


def _worker(rank: int, port: int, modes: list[str], tokens, work: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from training import distributed

    world = distributed.init("cpu")
    try:
        for mode in modes:
            losses, state = _steps(_setup(mode, tokens, Path(work), world))
            torch.save({"losses": losses, "state": state}, Path(work) / f"{mode}-rank{rank}.pt")
    finally:
        distributed.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process(tmp_path, tiny_stored):
    """Text mode (with the bank and the anchor term) and full fine-tuning (both towers, on real photos)."""
    from model.tokenizer import Tokenizer
    from training.distributed import World

    texts = [f"photo {i} at {'the lake house' if i % 2 else 'the Baxter cabin in winter'}" for i in range(16)]
    tokens = torch.from_numpy(Tokenizer(tiny_stored.tokenizer_path, tiny_stored.manifest["tokenizer"])(texts))
    make_photos(tmp_path / "photos", 16, size=(80, 64))
    modes = ["text", "full"]
    _setup("full", tokens, tmp_path, World())  # builds the photo cache once; the ranks read it
    torch.multiprocessing.spawn(_worker, args=(_free_port(), modes, tokens, str(tmp_path)), nprocs=2, join=True)
    for mode in modes:
        one_losses, one_state = _steps(_setup(mode, tokens, tmp_path, World()))
        for rank in (0, 1):
            got = torch.load(tmp_path / f"{mode}-rank{rank}.pt")
            assert np.allclose(got["losses"], one_losses, atol=1e-5), (mode, got["losses"], one_losses)
            for k, v in one_state.items():
                assert torch.allclose(got["state"][k], v, atol=1e-5), (mode, k, (got["state"][k] - v).abs().max().item(), v.abs().max().item())
        moved = [k for k, v in one_state.items() if k in _setup_state() and not torch.equal(v, _setup_state()[k])]
        assert "grad:text_projection" in one_state
        assert ("visual.conv1.weight" in moved) == (mode == "full") and "text_projection" in moved


_BASE: dict = {}


def _setup_state() -> dict:
    if not _BASE:
        sys.path.insert(0, str(Path(__file__).parent))
        import tiny

        _BASE.update(tiny.make_model(seed=0).state_dict())
    return _BASE
