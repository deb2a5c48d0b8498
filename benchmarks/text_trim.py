"""Text-tower training speed: a plain `encode_text` loop (77 tokens) against the trimmed tower.

One training step = tokens -> text tower -> contrastive loss against random fixed image vectors ->
backward -> AdamW step on the text tower. Both variants run in the same process, alternating, on
the same batches of caption-like texts. Random weights (same compute as trained ones), no download.

    .venv/bin/python benchmarks/text_trim.py [--arch ViT-B-32] [--batch 64] [--seconds 60]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tiny.py: the tiny test model

PLACES = ["Mia's lake house", "the Baxter cabin", "Oma's kitchen", "our Tuesday hike", "Grandpa's boat",
          "the old school gym", "Aunt Rosa's garden", "the summer camp by the river"]
FRAMES = ["{}", "{} in winter", "kids playing at {}", "sunset over {}, 2019", "a rainy afternoon at {} with the dogs"]


def captions(n: int, rng: random.Random) -> list[str]:
    return [rng.choice(FRAMES).format(rng.choice(PLACES)) for _ in range(n)]


def make_model(arch: str):
    import open_clip

    if arch == "tiny":
        import tiny

        return tiny.make_model(0)
    return open_clip.create_model(arch, pretrained=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny", help="'tiny' or an open_clip architecture (random weights)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60.0, help="total measuring time (at least 3 rounds)")
    args = ap.parse_args()

    import open_clip
    import torch
    import torch.nn.functional as F

    from training.loss import CaptionLoss
    from training.text import batch_length, encode_text_trimmed

    torch.manual_seed(0)
    model = make_model(args.arch).train()
    for p in model.visual.parameters():
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    loss_fn = CaptionLoss(model.logit_scale.exp().item())
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    dim = model.text_projection.shape[-1]
    rng = random.Random(0)
    batches = []
    for _ in range(8):
        tokens = tokenizer(captions(args.batch, rng))
        batches.append((tokens, F.normalize(torch.randn(args.batch, dim), dim=-1)))

    def plain(tokens):
        return model.encode_text(tokens, normalize=True)

    def trimmed(tokens):
        return encode_text_trimmed(model, tokens)

    def step(encode, i):
        tokens, image = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss_fn(image, encode(tokens)).backward()
        opt.step()

    print(f"arch={args.arch} batch={args.batch} threads={torch.get_num_threads()} "
          f"tokens: 77 full vs {sum(batch_length(t) for t, _ in batches) / len(batches):.1f} trimmed (mean)", flush=True)
    for encode in (plain, trimmed):  # warm-up
        step(encode, 0)
    done = {"plain": [0, 0.0], "trimmed": [0, 0.0]}
    rounds = 0
    while rounds < 3 or sum(v[1] for v in done.values()) < args.seconds:  # alternate: same machine state for both
        for name, encode in (("plain", plain), ("trimmed", trimmed)):
            t0 = time.perf_counter()
            step(encode, rounds)
            done[name][1] += time.perf_counter() - t0
            done[name][0] += args.batch
        rounds += 1
    rate = {k: n / t for k, (n, t) in done.items()}
    for k, r in rate.items():
        print(f"{k:8s} {r:9.1f} pairs/s  ({done[k][0]} pairs in {done[k][1]:.1f} s)")
    print(f"ratio trimmed/plain: {rate['trimmed'] / rate['plain']:.2f}x")


if __name__ == "__main__":
    main()
