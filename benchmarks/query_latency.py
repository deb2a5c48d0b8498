"""Query latency and recall: a text query end to end, the vector search alone, and folder-filtered searches.

    python benchmarks/query_latency.py [--rows 10000,100000] [--queries 60]     (about 3 min on 2 cores)
    python benchmarks/query_latency.py --rows 1000000                          (builds a 1M catalog once)

Catalogs of synthetic, clustered 512-d vectors (the default model's size; clusters as photo libraries
have them: many similar shots) are built once in benchmarks/.cache. Each cluster is one folder (an
event), /photos/g<c % 5>/e<c % 100>/, so /photos/g0 holds about 20% of the photos and /photos/g0/e00
about 1%. Queries are held-out cluster members: vectors of the same clusters that were never stored,
so no query finds itself. Up to the exact limit (50k) search is exact in memory; past it the ANN
index answers, and recall@10 against exact search (numpy, same vectors) is printed, unfiltered and
with each folder filter. A filter keeping at most the exact limit is searched exactly over its
subset (the first query with it reads the subset's vectors: "first"); a bigger one is pre-filtered
inside the ANN search; the 20% filter is also run with an exact limit of rows/10 to measure that way.
Ratios are against the unfiltered ANN search of the same run. End to end = encoding the text with the
default architecture (ONNX, trimmed) plus searching. Targets on 2 cores: <= 40 ms p50 end to end at
100k, <= 60 ms at 1M, recall@10 >= 0.95, with or without a filter.
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


HELD_OUT = 1000  # cluster members generated with the library but never stored: the queries


def clustered(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n stored vectors and their clusters, plus HELD_OUT more of the same clusters for queries."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(64, n // 500), dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), n + HELD_OUT)
    out = np.empty((n + HELD_OUT, dim), np.float32)
    for s in range(0, n + HELD_OUT, 100_000):
        m = min(100_000, n + HELD_OUT - s)
        x = centres[labels[s:s + m]] + rng.normal(scale=0.6, size=(m, dim)).astype(np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out[:n], labels[:n], out[n:]


def folder_of(cluster: int) -> str:
    return f"/photos/g{cluster % 5}/e{cluster % 100:02d}"


def build(n: int, space: str, dim: int, exact_limit: int):
    from app.library.catalog import Catalog

    folder = CACHE / f"query-v2-{n}-{space}"
    vectors, labels, queries = clustered(n, dim, seed=n)
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"building a catalog of {n} photos (once)…", flush=True)
        catalog = Catalog(folder / "catalog")
        chunk = 100_000
        for s in range(0, n, chunk):
            hashes = [f"{i:032x}" for i in range(s, min(n, s + chunk))]
            rows = [{"path": f"{folder_of(labels[i])}/IMG_{i:07d}.jpg", "root": "/photos", "size": 4_000_000,
                     "mtime_ns": 0, "hash": h, "width": 4032, "height": 3024, "taken_at": 1_500_000_000 + i * 60,
                     "status": "ok"} for i, h in zip(range(s, s + chunk), hashes)]
            catalog.commit(rows, space, hashes, vectors[s:s + len(hashes)]).result()
        catalog.compact().result()
        t0 = time.perf_counter()
        if catalog.ensure_ann(space, exact_limit + 1).result():
            print(f"  ANN index built in {time.perf_counter() - t0:.0f} s", flush=True)
        catalog.close()
        (folder / "done").touch()
    return Catalog(folder / "catalog"), vectors, labels, queries


def recall_at_10(searcher, vectors: np.ndarray, qs: np.ndarray, rows: np.ndarray | None = None, filters=None) -> float:
    """Mean share of the exact top 10 (numpy, over `rows` or all) that the searcher returns."""
    from app.library.search import Filters

    hits = []
    for q in qs:
        scores = vectors @ q if rows is None else vectors[rows] @ q
        top = np.argpartition(-scores, 10)[:10]
        truth = set((top if rows is None else rows[top]).tolist())
        got = {int(r.path[-11:-4]) for r in searcher.search_vector(q, k=10, filters=filters or Filters())}
        hits.append(len(truth & got) / 10)
    return float(np.mean(hits))


def filtered(catalog, encoder, vectors, labels, qs, unfiltered_p50: float) -> None:
    """Folder-filtered searches past the exact limit: time, first query, recall against exact, ratio."""
    from app.library.search import DEFAULT_EXACT_LIMIT, Filters, Searcher

    n = len(vectors)
    for folder, keep in (("/photos/g0/e00", labels % 100 == 0), ("/photos/g0", labels % 5 == 0)):
        rows = np.flatnonzero(keep)
        # Past the default limit the filter is pre-filtered; below it, a smaller limit shows that way too.
        for limit in [DEFAULT_EXACT_LIMIT] + ([n // 10] if n // 10 < len(rows) <= DEFAULT_EXACT_LIMIT else []):
            searcher = Searcher(catalog, encoder, exact_limit=limit)
            searcher.data()
            f = Filters(folder=folder)
            t0 = time.perf_counter()
            searcher.search_vector(qs[0], k=20, filters=f)
            first = (time.perf_counter() - t0) * 1000
            p50, p95 = percentiles(lambda q: searcher.search_vector(q, k=20, filters=f), list(qs))
            way = "exact, subset" if len(rows) <= limit else f"pre-filter (limit {limit // 1000}k)"
            recall = recall_at_10(searcher, vectors, qs, rows, f)
            print(f"{n:>9} | {folder:15} {len(rows) / n:5.1%} | {way:22} | {first:6.0f} ms | {p50:7.1f} ms "
                  f"{p95:7.1f} | {recall:.3f}     | {p50 / unfiltered_p50:5.2f}x", flush=True)


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
    ap.add_argument("--rows", default="10000,100000", help="library sizes, comma-separated")
    ap.add_argument("--queries", type=int, default=60)
    args = ap.parse_args(argv)
    if not 10 <= args.queries <= HELD_OUT:
        ap.error(f"--queries must be between 10 and {HELD_OUT}")

    from app.library.query import parse
    from app.library.search import DEFAULT_EXACT_LIMIT, Searcher
    from model.runtime import Encoder, cpu_threads

    stored = bench_model()
    encoder = Encoder(stored)
    dim = stored.embed_dim
    print(f"model {stored.manifest['architecture']} ({dim} dims), {cpu_threads()} CPU threads, "
          f"exact search up to {DEFAULT_EXACT_LIMIT} photos, {args.queries} held-out queries")
    texts = [parse(t) for t in (TEXTS * (args.queries // len(TEXTS) + 1))[: args.queries]]
    text_p50, _ = percentiles(lambda t: encoder.encode_texts([t[0].value]), texts)
    print(f"text encoding alone: p50 {text_p50:.1f} ms\n")
    print(f"{'photos':>9} | {'mode':5} | {'end-to-end p50':>14} {'p95':>7} | {'search p50':>10} {'p95':>7} | recall@10")
    ann_sizes = []
    for n in [int(s) for s in args.rows.split(",")]:
        catalog, vectors, labels, qs = build(n, stored.image_space, dim, DEFAULT_EXACT_LIMIT)
        qs = qs[: args.queries]
        searcher = Searcher(catalog, encoder)
        searcher.data()
        e2e = percentiles(lambda t: searcher.search(t, k=20), texts)
        alone = percentiles(lambda q: searcher.search_vector(q, k=20), list(qs))
        mode = "ANN" if searcher.uses_ann else "exact"
        recall = f"{recall_at_10(searcher, vectors, qs):.3f}" if searcher.uses_ann else ""
        print(f"{n:>9} | {mode:5} | {e2e[0]:11.1f} ms {e2e[1]:7.1f} | {alone[0]:7.1f} ms {alone[1]:7.1f} | {recall}", flush=True)
        if searcher.uses_ann and n <= 200_000:  # the same library searched exactly, for the ratio
            exact = Searcher(catalog, encoder, exact_limit=n + 1)
            exact.data()
            ex = percentiles(lambda q: exact.search_vector(q, k=20), list(qs))
            print(f"{'':>9} | exact | {'':>14} {'':>7} | {ex[0]:7.1f} ms {ex[1]:7.1f} | 1.000   "
                  f"(exact time / ANN time: {ex[0] / alone[0]:.2f}x)", flush=True)
            del exact
        if searcher.uses_ann:
            ann_sizes.append((catalog, vectors, labels, qs, alone[0]))
        else:
            catalog.close()
    if ann_sizes:
        print("\nwith a folder filter, past the exact limit (k=20; ratio: filtered p50 / unfiltered ANN p50)")
        print(f"{'photos':>9} | {'folder':15} {'kept':>5} | {'searched':22} | {'first':>9} | {'search p50':>10} "
              f"{'p95':>7} | recall@10 | ratio")
        for catalog, vectors, labels, qs, unfiltered in ann_sizes:
            filtered(catalog, encoder, vectors, labels, qs, unfiltered)
            catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
