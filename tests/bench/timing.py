"""Shared by the benchmarks: time a call repeatedly, and the 95th percentile."""

import time


def timed(fn, n: int) -> list[float]:
    """Milliseconds of `n` calls of `fn`."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]
