"""Encoder throughput: eager torch against ONNX Runtime, same architecture, same machine, same run.

    python benchmarks/encoders.py [--arch ViT-B-32] [--seconds 6]

Random weights cost the same compute as trained ones, so this runs offline. The model is
exported through the same path as `glimpse models pull` (parity check included).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.timing import p50_ms, rate  # noqa: E402

TEXTS = ["a photo of a dog on the beach", "grandma's cabin in the snow", "birthday cake with candles",
         "a red car parked in front of a house", "mountains at sunset", "two kids playing football",
         "a bowl of ramen", "the eiffel tower at night"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=None, help="open_clip architecture (default: the default model's)")
    ap.add_argument("--seconds", type=float, default=6.0, help="time per measurement")
    ap.add_argument("--batches", default="8,32")
    args = ap.parse_args(argv)

    import torch

    from model import registry
    from model.obtain import install
    from model.openclip import random_init
    from model.runtime import Encoder, cpu_threads
    from model.store import ModelStore
    from model.tokenizer import trim_padding

    arch = args.arch or registry.default().architecture
    threads = cpu_threads()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = random_init(arch)
        t0 = time.perf_counter()
        stored = install(ModelStore(tmp), loaded, "bench")
        print(f"{arch}: exported and parity-checked in {time.perf_counter() - t0:.0f} s "
              f"(cosine ≥ {min(r['cosine_min'] for r in stored.manifest['parity'].values()):.6f}); "
              f"{threads} CPU threads, onnxruntime providers {Encoder(stored).providers_in_use('visual')}")
        enc = Encoder(stored)
        model = loaded.model
        h, w = stored.preprocess.size
        rows = []
        for b in [int(x) for x in args.batches.split(",")]:
            pixels = np.random.default_rng(0).standard_normal((b, 3, h, w)).astype(np.float32)
            tokens = enc.tokenize((TEXTS * (b // len(TEXTS) + 1))[:b])
            px_t, tok_t = torch.from_numpy(pixels), torch.from_numpy(tokens)

            def torch_img():
                with torch.inference_mode():
                    model.encode_image(px_t, normalize=True)

            def torch_txt():
                with torch.inference_mode():
                    model.encode_text(tok_t, normalize=True)

            ti = rate(torch_img, b, args.seconds)
            oi = rate(lambda: enc.encode_arrays(pixels), b, args.seconds)
            tt = rate(torch_txt, b, args.seconds)
            ot = rate(lambda: enc.encode_tokens(tokens, trim=False), b, args.seconds)
            trimmed = rate(lambda: enc.encode_tokens(tokens), b, args.seconds)
            rows.append((b, ti, oi, tt, ot, trimmed))
        one = enc.tokenize([TEXTS[1]])
        one_t = torch.from_numpy(one)

        def torch_one():
            with torch.inference_mode():
                model.encode_text(one_t, normalize=True)

        latency = {"torch (77 tokens)": p50_ms(torch_one), "ORT (77 tokens)": p50_ms(lambda: enc.encode_tokens(one, False)),
                   f"ORT (trimmed, {trim_padding(one).shape[1]} tokens)": p50_ms(lambda: enc.encode_tokens(one))}
    print(f"\n{'batch':>5} | {'images/s torch':>14} {'images/s ORT':>13} {'ratio':>6} | "
          f"{'texts/s torch':>13} {'texts/s ORT':>12} {'ratio':>6} | {'ORT trimmed':>11} {'ratio':>6}")
    for b, ti, oi, tt, ot, tr in rows:
        print(f"{b:>5} | {ti:>14.1f} {oi:>13.1f} {oi / ti:>5.2f}x | {tt:>13.1f} {ot:>12.1f} {ot / tt:>5.2f}x | "
              f"{tr:>11.1f} {tr / tt:>5.2f}x")
    print("\n(texts: torch and 'ORT' run the full 77-token context; 'ORT trimmed' cuts the padding after the\n"
          " batch's longest text, as search does: same vectors, checked at export)")
    base = latency["torch (77 tokens)"]
    print(f"\none query ({TEXTS[1]!r}), p50 of 30:")
    for name, ms in latency.items():
        print(f"  {name:<26} {ms:6.1f} ms  ({base / ms:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
