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

The same arithmetic judges the average of any chain of states, e.g. the parameters of a
stochastic EM run (chapter "Stochastic and Monte Carlo EM"): :func:`batch_means` gives the
average of a (T,) or (T, P) chain with its batch-means standard error, and
:func:`batch_means_effective_sample_size` the number of independent states worth as much.
"""
from __future__ import annotations

import math

import numpy as np

from ._validation import check_generator

__all__ = ["batch_means", "batch_means_effective_sample_size", "batch_means_variance", "draw_latent",
           "effective_sample_size", "integrated_autocorrelation_time"]


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


# ------------------------------------------------------------ averages of chains of states
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

    B consecutive batches of b states are averaged and treated as nearly independent once b is
    much longer than the chain's correlation time: se(mean) = sd(batch means) / sqrt(B). The
    default B = floor(sqrt(T)) is consistent when the chain mixes geometrically and T grows
    (Flegal and Jones 2010); a chain whose correlation time is comparable to sqrt(T) gets too
    small an error: compare independent chains instead.

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


def batch_means_effective_sample_size(chain, n_batches: int | None = None):
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
