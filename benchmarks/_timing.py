"""Timing shared by the benchmarks."""
import time

import numpy as np


def best_time(fn, repeats: int) -> tuple[float, object]:
    """(the shortest wall time of ``repeats`` calls of ``fn``, in seconds; the last result)."""
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out
