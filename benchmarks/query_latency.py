"""Query latency at 10k, 100k and 1M photos: a text query end to end, and the vector search alone.

    python benchmarks/query_latency.py [--sizes 10000,100000,1000000] [--queries 60]

Catalogs of synthetic, clustered 512-d vectors (the default model's size; clusters as photo libraries
have them: many similar shots) are built once in benchmarks/.cache. Up to the exact limit (50k) search
is exact in memory; past it, the ANN index answers, and its recall@10 against exact search (numpy, same
vectors) is printed. End to end = encoding the text with the default architecture (ONNX, trimmed) plus
searching. Targets on 2 cores: <= 40 ms p50 end to end at 100k, <= 60 ms at 1M, recall@10 >= 0.95.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import CACHE, bench_model  # noqa: E402

TEXTS = ["a photo of a dog on the beach", "grandma's cabin in the snow", "birthday cake with candles",
         "a red car parked in front of a house", "mountains at sunset", "two kids playing football",
         "a bowl of ramen", "the eiffel tower at night", "wedding", "cat + snow - indoor"]


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(64, n // 500), dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = centres[rng.integers(0, len(centres), m)] + rng.normal(scale=0.6, size=(m, dim)).astype(np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def build(n: int, model_id: str, dim: int, exact_limit: int):
    from app.library.catalog import Catalog

    folder = CACHE / f"query-{n}-{model_id}"
    vectors = clustered(n, dim, seed=n)
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"building a catalog of {n} photos (once)…", flush=True)
        catalog = Catalog(folder / "catalog")
        chunk = 100_000
        for s in range(0, n, chunk):
            hashes = [f"{i:032x}" for i in range(s, min(n, s + chunk))]
            rows = [{"path": f"/photos/{i // 1000:04d}/IMG_{i:07d}.jpg", "root": "/photos", "size": 4_000_000,
                     "mtime_ns": 0, "hash": h, "width": 4032, "height": 3024, "taken_at": 1_500_000_000 + i * 60,
                     "status": "ok"} for i, h in zip(range(s, s + chunk), hashes)]
            catalog.commit(rows, model_id, hashes, vectors[s:s + len(hashes)]).result()
        catalog.compact().result()
        t0 = time.perf_counter()
        if catalog.ensure_ann(model_id, exact_limit + 1).result():
            print(f"  ANN index built in {time.perf_counter() - t0:.0f} s", flush=True)
        catalog.close()
        (folder / "done").touch()
    return Catalog(folder / "catalog"), vectors


def percentiles(fn, args_list) -> tuple[float, float]:
    fn(args_list[0])
    times = []
    for a in args_list:
        t = time.perf_counter()
        fn(a)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=60)
    args = ap.parse_args(argv)

    from app.library.query import parse
    from app.library.search import DEFAULT_EXACT_LIMIT, Searcher
    from model.runtime import Encoder, cpu_threads

    stored = bench_model()
    encoder = Encoder(stored)
    dim = stored.embed_dim
    print(f"model {stored.manifest['architecture']} ({dim} dims), {cpu_threads()} CPU threads, "
          f"exact search up to {DEFAULT_EXACT_LIMIT} photos")
    texts = [parse(t) for t in (TEXTS * (args.queries // len(TEXTS) + 1))[: args.queries]]
    text_p50, _ = percentiles(lambda t: encoder.encode_texts([t[0].value]), texts)
    print(f"text encoding alone: p50 {text_p50:.1f} ms\n")
    print(f"{'photos':>9} | {'mode':5} | {'end-to-end p50':>14} {'p95':>7} | {'search p50':>10} {'p95':>7} | recall@10")
    for n in [int(s) for s in args.sizes.split(",")]:
        catalog, vectors = build(n, stored.id, dim, DEFAULT_EXACT_LIMIT)
        searcher = Searcher(catalog, encoder)
        searcher.data()
        rng = np.random.default_rng(1)
        qs = vectors[rng.integers(0, n, args.queries)] + rng.normal(scale=0.05, size=(args.queries, dim)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        e2e = percentiles(lambda t: searcher.search(t, k=20), texts)
        alone = percentiles(lambda q: searcher.search_vector(q, k=20), list(qs))
        mode = "ANN" if searcher.uses_ann else "exact"
        recall = ""
        if searcher.uses_ann:
            hits = []
            for q in qs:
                truth = set(np.argpartition(-(vectors @ q), 10)[:10].tolist())
                got = {int(r.path[-11:-4]) for r in searcher.search_vector(q, k=10)}
                hits.append(len(truth & got) / 10)
            recall = f"{np.mean(hits):.3f}"
        print(f"{n:>9} | {mode:5} | {e2e[0]:11.1f} ms {e2e[1]:7.1f} | {alone[0]:7.1f} ms {alone[1]:7.1f} | {recall}", flush=True)
        if searcher.uses_ann and n <= 200_000:  # the same library searched exactly, for the ratio
            exact = Searcher(catalog, encoder, exact_limit=n + 1)
            exact.data()
            ex = percentiles(lambda q: exact.search_vector(q, k=20), list(qs))
            print(f"{'':>9} | exact | {'':>14} {'':>7} | {ex[0]:7.1f} ms {ex[1]:7.1f} | 1.000   "
                  f"(exact time / ANN time: {ex[0] / alone[0]:.2f}x)", flush=True)
        catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
