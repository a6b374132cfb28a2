"""Coordinate-ascent variational inference (CAVI) for :class:`emlib.BayesianGaussianMixture`.

Book: chapter "Mean-field variational inference". EM alternates q(z) = p(z | x, theta) with a
point estimate of theta; CAVI alternates q(z) with a *distribution* q(theta), each the exact
maximizer of the ELBO given the other (Bishop 2006, §10.2; Blei, Kucukelbir and McAuliffe
2017). The ELBO therefore never decreases, which the driver checks at every sweep.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._validation import check_probability_rows
from ..em import ConvergenceMonitor
from ..models.bayesian_gaussian_mixture import BayesianGaussianMixture, VariationalPosterior


@dataclass(frozen=True)
class CAVIResult:
    """What :func:`cavi` returns.

    Attributes
    ----------
    params : GaussianMixtureParams
        Posterior point summaries: expected weights E[pi_k], means m_k, E[Lambda_k]^{-1}.
    elbo : ndarray, shape (n_iter + 1,)
        The ELBO after the start and after every sweep; never decreasing.
    n_iter : int
        Sweeps taken (each: update q(z), then q(pi, mu, Lambda)).
    converged : bool
        Whether the relative change of the ELBO fell below ``tol`` before ``max_iter``.
    posterior : VariationalPosterior
        The global variational factors.
    responsibilities : ndarray, shape (N, K)
        The final q(z).
    """

    params: Any
    elbo: np.ndarray
    n_iter: int
    converged: bool
    posterior: VariationalPosterior
    responsibilities: np.ndarray


def cavi(model: BayesianGaussianMixture, X, *, init=None, rng: np.random.Generator | None = None,
         max_iter: int = 1000, tol: float = 1e-8,
         callback: Callable[[int, VariationalPosterior, float], None] | None = None) -> CAVIResult:
    """Fit the mean-field posterior of a Bayesian Gaussian mixture by coordinate ascent.

    Parameters
    ----------
    model : BayesianGaussianMixture
    X : array_like, shape (N, D)
    init : array_like, shape (N, K), optional
        A starting q(z) (rows summing to one). Default: ``model.init_responsibilities(X, rng)``.
    rng : numpy.random.Generator, optional
        Needed only when ``init`` is not given.
    max_iter, tol, callback
        As for :func:`emlib.em`; the callback receives ``(t, posterior_t, elbo_t)``.

    Returns
    -------
    CAVIResult
    """
    X = model.check_data(X)
    if init is None:
        if rng is None:
            raise ValueError("give either init (a starting q(z), shape (N, K)) or rng to draw one.")
        init = model.init_responsibilities(X, rng)
    if np.shape(init) != (X.shape[0], model.n_components):
        raise ValueError(f"init must be a q(z) of shape (N, K) = {(X.shape[0], model.n_components)}; "
                         f"got {np.shape(init)}.")
    q = check_probability_rows(init, "init")
    monitor = ConvergenceMonitor(max_iter, tol)
    prior = model.prior(X)
    post = model.update_posterior(model.expected_stats(X, q), prior)
    monitor.record(model.elbo(X, q, post, prior))
    converged = False
    while monitor.n_iter < monitor.max_iter and not converged:
        q = model.posterior(X, post)                                 # optimal q(z) given q(theta)
        post = model.update_posterior(model.expected_stats(X, q), prior)  # optimal q(theta) given q(z)
        value = model.elbo(X, q, post, prior)
        if value < monitor.trace[-1] - 1e-9 * abs(monitor.trace[-1]):
            raise RuntimeError(f"the ELBO decreased from {monitor.trace[-1]} to {value}: a bug, please report it.")
        converged = monitor.record(value)
        if callback is not None:
            callback(monitor.n_iter, post, value)
    return CAVIResult(post.expected_params(), np.array(monitor.trace), monitor.n_iter, converged, post, q)
