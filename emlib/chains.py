"""The Monte Carlo error of an average along a Markov chain: batch means and effective sample size.

Book: chapter "Stochastic and Monte Carlo EM". The states theta_1, ..., theta_T of a stochastic
EM chain are strongly correlated, so the standard error of their average is not sd / sqrt(T).
The method of batch means cuts the chain into B consecutive batches of b states, averages each
batch, and treats the B batch means as nearly independent once b is much longer than the
chain's correlation time:

    se(mean) = sd(batch means) / sqrt(B),        ESS = var(states) / se(mean)^2.

The effective sample size (ESS) is the number of independent draws that would give the same
standard error. The default B = floor(sqrt(T)) (batches of about sqrt(T) states) is the usual
choice; it is consistent when the chain mixes geometrically and T grows (Flegal and Jones 2010).
A short chain whose correlation time is comparable to sqrt(T) gets too small an error: compare
independent chains instead.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["batch_means", "effective_sample_size"]


def _states(chain) -> np.ndarray:
    arr = np.asarray(chain, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[0] < 4:
        raise ValueError(f"chain must be an array of shape (T,) or (T, P) with T >= 4 states; "
                         f"got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("chain contains NaN or infinite values.")
    return arr


def _n_batches(T: int, n_batches) -> int:
    if n_batches is None:
        return max(2, math.isqrt(T))
    if isinstance(n_batches, bool) or not isinstance(n_batches, (int, np.integer)) or not 2 <= n_batches <= T // 2:
        raise ValueError(f"n_batches must be an integer between 2 and T // 2 = {T // 2} (batches of at "
                         f"least two states); got {n_batches!r}.")
    return int(n_batches)


def batch_means(chain, n_batches: int | None = None):
    """The average of a chain and its batch-means standard error.

    The first ``T mod B`` states are dropped so that B batches of ``b = T // B`` states remain;
    the mean and the standard error are those of the remaining ``B b`` states.

    Parameters
    ----------
    chain : array_like, shape (T,) or (T, P)
        The states in order (e.g. the parameters after a burn-in, one row per iteration).
    n_batches : int, optional
        B, between 2 and T // 2; default floor(sqrt(T)).

    Returns
    -------
    mean, se : float or ndarray of shape (P,)
        The average of the states and its standard error, sd(batch means, ddof=1) / sqrt(B).
    """
    states = _states(chain)
    B = _n_batches(states.shape[0], n_batches)
    b = states.shape[0] // B
    used = states[states.shape[0] - B * b:]
    means = used.reshape(B, b, *states.shape[1:]).mean(axis=1)
    mean, se = used.mean(axis=0), means.std(axis=0, ddof=1) / math.sqrt(B)
    return (float(mean), float(se)) if states.ndim == 1 else (mean, se)


def effective_sample_size(chain, n_batches: int | None = None):
    """The number of independent draws with the same standard error: var(states) / se(mean)^2.

    Parameters as for :func:`batch_means`; the variance is that of the states used there.

    Returns
    -------
    float or ndarray of shape (P,)
        Close to T for independent states, much smaller for a slowly mixing chain.
    """
    states = _states(chain)
    B = _n_batches(states.shape[0], n_batches)
    used = states[states.shape[0] - B * (states.shape[0] // B):]
    _, se = batch_means(used, B)
    return used.var(axis=0, ddof=1) / np.square(se)
