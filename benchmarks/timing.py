"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import time

import numpy as np


def rate(fn, items_per_call: int, seconds: float, warmup: int = 1, min_calls: int = 2) -> float:
    """Items per second of `fn`, called repeatedly for at least `seconds` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < min_calls:
        fn()
        n += 1
    return n * items_per_call / (time.perf_counter() - start)


def p50_ms(fn, n: int = 30) -> float:
    """Median milliseconds of `n` calls after one warm-up."""
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))
