"""Markov chain Monte Carlo for the sampling drivers: drawing latent variables and judging the draws.

Book: chapter "SAEM: stochastic approximation EM" (``book/saem.ipynb``). The drivers
:func:`emlib.saem` and :func:`emlib.ascent_mcem` replace the E-step's expectation by draws of
the latent variables. :func:`draw_latent` obtains them from a model, either by continuing its
Markov chains (``model.mcmc``) or exactly and independently (``model.sample_posterior``).

Draws from a Markov chain are dependent, so an average of m of them is worth fewer than m
independent draws. For a stationary series y_1, ..., y_m with autocorrelations rho_k, the
variance of the mean is approximately sigma^2 / m with the *asymptotic variance*

    sigma^2 = Var(y) (1 + 2 sum_{k >= 1} rho_k) = Var(y) tau_int                 (saem-asyvar)

(tau_int is the integrated autocorrelation time), and the *effective sample size* is
m / tau_int. Two estimators of sigma^2 are provided: :func:`batch_means_variance` (Jones,
Haran, Caffo and Neath 2006) and, through :func:`integrated_autocorrelation_time`, Geyer's
(1992) initial monotone sequence estimator.
"""
from __future__ import annotations

import math

import numpy as np

from ._validation import check_generator

__all__ = ["batch_means_variance", "draw_latent", "effective_sample_size", "integrated_autocorrelation_time"]


def _series(y, name: str = "y", minimum: int = 4) -> np.ndarray:
    try:
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D numeric array (one chain); got {type(y).__name__}.") from None
    if y.ndim != 1 or y.size < minimum:
        raise ValueError(f"{name} must be a 1-D array of at least {minimum} values (one chain); got shape {y.shape}.")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return y


def batch_means_variance(y) -> float:
    """The batch-means estimate of the asymptotic variance sigma^2 of eq. ``saem-asyvar``.

    The last a * b values of the series are cut into a consecutive batches of length
    b = floor(sqrt(m)); with batch means ybar_1, ..., ybar_a and their mean ybar,
    sigma^2 = b / (a - 1) sum_k (ybar_k - ybar)^2. For independent draws it estimates Var(y);
    for a chain it includes the autocorrelation, and sigma^2 / m is the variance of the mean.

    Parameters
    ----------
    y : array_like, shape (m,)
        One chain of scalar values, m >= 16 (at least four batches of four).

    Returns
    -------
    float
    """
    y = _series(y, minimum=16)
    b = math.isqrt(y.size)
    a = y.size // b
    means = y[y.size - a * b:].reshape(a, b).mean(axis=1)
    return float(b * means.var(ddof=1))


def integrated_autocorrelation_time(y) -> float:
    """tau_int = 1 + 2 sum_k rho_k by Geyer's initial monotone sequence estimator (>= 1 / m).

    The autocovariances gamma_k come from one FFT. Sums of adjacent pairs,
    Gamma_j = gamma_{2j} + gamma_{2j+1}, are positive and decreasing for a reversible chain;
    they are summed while positive, each capped by its predecessor, and
    tau_int = (2 sum_j Gamma_j - gamma_0) / gamma_0.

    Parameters
    ----------
    y : array_like, shape (m,)
        One chain, m >= 4.

    Returns
    -------
    float
        About 1 for independent draws, larger for positively correlated ones.
    """
    y = _series(y)
    m = y.size
    centred = y - y.mean()
    if not np.any(centred):
        raise ValueError("y is constant: its autocorrelation time is undefined (did the chain never move?).")
    size = 1 << (2 * m - 1).bit_length()
    spectrum = np.fft.rfft(centred, size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size)[:m] / m
    pairs = acov[: 2 * (m // 2)].reshape(-1, 2).sum(axis=1)
    positive = pairs > 0
    n_pos = int(np.argmin(positive)) if not positive.all() else pairs.size
    monotone = np.minimum.accumulate(pairs[:n_pos])
    tau = (2.0 * monotone.sum() - acov[0]) / acov[0]
    return float(max(tau, 1.0 / m))


def effective_sample_size(y) -> float:
    """m / tau_int: the number of independent draws whose mean would be as precise; see above."""
    y = _series(y)
    return y.size / integrated_autocorrelation_time(y)


def draw_latent(model, X, params, rng: np.random.Generator, n_draws: int, state=None, *,
                independent: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """n_draws completions of the latent variables under theta = ``params``.

    Parameters
    ----------
    model : object with ``mcmc(X, params, start, rng, n_steps)`` and ``posterior_mode(X, params)``,
        and, for ``independent=True``, ``sample_posterior(X, params, rng, n_samples)``; e.g.
        :class:`emlib.LogisticRandomIntercept`.
    X : array_like
        The data, already checked by ``model.check_data``.
    params : parameters dataclass
    rng : numpy.random.Generator
    n_draws : int
        m >= 1.
    state : ndarray, optional
        The current state of the Markov chains (the last draw of the previous call). None
        starts them at ``model.posterior_mode(X, params)``. Ignored when ``independent``.
    independent : bool
        Draw exactly and independently instead of by MCMC.

    Returns
    -------
    draws : ndarray, shape (n_draws, N)
    state : ndarray, shape (N,)
        The new state of the chains (the last draw).
    acceptance_rate : float
        The Metropolis acceptance rate of these sweeps; 1 for independent draws.
    """
    rng = check_generator(rng)
    if independent:
        draws = model.sample_posterior(X, params, rng, n_draws)
        return draws, draws[-1].copy(), 1.0
    start = model.posterior_mode(X, params) if state is None else state
    draws, rate = model.mcmc(X, params, start, rng, n_draws)
    return draws, draws[-1].copy(), rate
