"""Input checks shared by every model and driver.

Each check raises a ``ValueError`` that says what is wrong and what to do about it, so that
bad input never travels further and turns into a silent NaN.
"""
from __future__ import annotations

import numpy as np


def as_data_matrix(X, *, name: str = "X", allow_nan: bool = False, min_rows: int = 1) -> np.ndarray:
    """Return ``X`` as a C-contiguous float array of shape (N, D), or raise ``ValueError``.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Data, one row per observation.
    allow_nan : bool
        Whether NaN marks a missing value (models with missing data); infinities are never allowed.
    min_rows : int
        The smallest acceptable N (for a mixture, the number of components).
    """
    try:
        X = np.ascontiguousarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of shape (N, D); got {type(X).__name__}: {exc}") from None
    if X.ndim != 2:
        hint = " Use X.reshape(-1, 1) for one-dimensional data." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array of shape (N, D); got {X.ndim} dimension(s), shape {X.shape}.{hint}")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {X.shape}); each row must hold at least one value.")
    if np.isinf(X).any():
        raise ValueError(f"{name} contains infinite values; remove or replace them before fitting.")
    if not allow_nan and np.isnan(X).any():
        n_bad = int(np.isnan(X).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN values (in {n_bad} rows); remove or impute them before fitting.")
    if X.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {X.shape[0]} rows but at least {min_rows} are needed "
            f"(a model with {min_rows} components needs at least {min_rows} points); "
            "use fewer components or more data."
        )
    return X


def as_float_array(value, shape: tuple[int, ...] | None, name: str) -> np.ndarray:
    """Return ``value`` as a read-only finite float array of the expected ``shape``.

    ``None`` in ``shape`` accepts any length along that axis.
    """
    arr = np.array(value, dtype=float)
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; every parameter must be finite.")
    arr.setflags(write=False)
    return arr


def check_probability_vector(weights: np.ndarray, name: str = "weights", atol: float = 1e-8) -> None:
    """Raise ``ValueError`` unless ``weights`` are non-negative and sum to one (within ``atol``)."""
    if np.any(weights < 0):
        raise ValueError(f"{name} must be non-negative; got {np.round(weights, 6).tolist()}.")
    total = float(weights.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to one; they sum to {total:.10g}. Divide them by their sum.")


def check_probability_rows(q, name: str = "q") -> np.ndarray:
    """Return ``q`` as a float array whose last axis holds probabilities summing to one.

    Used for every array of per-point distributions: a q(z) of shape (N, K), a proposal, a
    posterior. Raises ``ValueError`` saying what is wrong and how to fix it.
    """
    try:
        q = np.asarray(q, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of probabilities; got {type(q).__name__}: {exc}") from None
    if q.ndim == 0:
        raise ValueError(f"{name} must be an array whose last axis holds probabilities summing to one; got a scalar.")
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError(f"{name} must hold finite, non-negative probabilities.")
    sums = q.sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=0, atol=1e-8):
        worst = float(np.max(np.abs(sums - 1.0)))
        raise ValueError(f"each row of {name} must sum to one (worst row is off by {worst:.3g}); "
                         "divide each row by its sum.")
    return q


def check_generator(rng) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``, else raise a ``ValueError``."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0); "
            f"got {type(rng).__name__}. All randomness goes through it so that runs are reproducible."
        )
    return rng
