"""Passes over the data in row chunks whose work arrays have a bounded size in bytes.

A chunk of n rows needs n times a fixed number of bytes of work arrays (for a Gaussian mixture
E-step with full covariances, about 8 (K D + D + K + the moment features) bytes per row, see
``GaussianMixture._bytes_per_row``). Sizing chunks by those bytes keeps the memory of a pass
bounded for any N *and* any D, while each matrix product stays large enough for BLAS.
"""
from __future__ import annotations

#: Bytes of work arrays per chunk. 512 KB stays in the processor's cache while the products
#: stay BLAS-sized; measured with benchmarks/gmm_vs_sklearn.py (N = 100,000, D = 10, K = 8),
#: where it gives 313 rows for full covariances and 1,170 for diagonal ones.
CHUNK_BYTES = 1 << 19

#: A chunk has at least this many rows, so that every product stays BLAS-sized (each call into a
#: threaded BLAS has a fixed cost) even when a row needs many bytes; the memory of a chunk then
#: grows like D (or K D), never like D^2.
MIN_ROWS = 256


def row_slices(n_rows: int, bytes_per_row: int, chunk_size: int | None = None) -> list[slice]:
    """Consecutive row blocks covering ``range(n_rows)``.

    Parameters
    ----------
    n_rows : int
        N, the number of rows.
    bytes_per_row : int
        Bytes of work arrays one row needs.
    chunk_size : int, optional
        Rows per block, overriding the size derived from ``CHUNK_BYTES``.

    Returns
    -------
    list of slice
        Each block holds ``max(MIN_ROWS, CHUNK_BYTES // bytes_per_row)`` rows (or ``chunk_size``),
        the last one fewer.
    """
    size = chunk_size or max(MIN_ROWS, CHUNK_BYTES // max(int(bytes_per_row), 1))
    return [slice(start, start + size) for start in range(0, n_rows, size)]
