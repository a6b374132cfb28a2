"""Small numerical helpers shared by the models: chunked passes over data, log-sum-exp."""
from __future__ import annotations

from typing import Iterator

import numpy as np

#: Work arrays of about this many numbers (512 KB of float64) per chunk keep the E-step in the
#: processor's cache while each matrix product stays large enough for BLAS; measured with
#: benchmarks/gmm_vs_sklearn.py, chunks of 512-1024 rows at K*D = 80 were fastest.
DEFAULT_CHUNK_ELEMENTS = 1 << 16


def iter_chunks(X: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Yield consecutive row blocks of ``X`` with at most ``size`` rows (views, no copies)."""
    for start in range(0, X.shape[0], size):
        yield X[start:start + size]


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log sum_k exp(a[n, k]) for each row n, computed stably; shape (N,).

    Rows must contain at least one finite entry (a data point has positive density under at
    least one component), which every model here guarantees.
    """
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def normalize_log_rows(a: np.ndarray) -> np.ndarray:
    """Turn log-joint rows into probabilities in place, and return each row's log-normalizer.

    On return ``a[n] = exp(a[n]) / sum_k exp(a[n, k])`` (the posterior) and the result is
    ``log sum_k exp(a[n, k])`` (the log-likelihood of point n): one exponential per entry.
    """
    top = a.max(axis=1, keepdims=True)
    a -= top
    np.exp(a, out=a)
    total = a.sum(axis=1, keepdims=True)
    a /= total
    return (top + np.log(total)).ravel()
