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

from .._validation import check_callable, check_probability_rows
from ..em import MAX_ITER, TOL, ConvergenceMonitor
from ..models.bayesian_gaussian_mixture import BayesianGaussianMixture, VariationalPosterior

#: The ELBO may fall by at most this fraction of its size between sweeps (rounding); a larger
#: decrease is impossible for coordinate ascent and is reported as a bug.
ELBO_DECREASE_RTOL = 1e-9


@dataclass(frozen=True)
class CAVIResult:
    """What :func:`cavi` returns. Not an :class:`emlib.EMResult`: its trace is the ELBO.

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
        The global variational factors: CAVI's iterate (what the callback receives).
    responsibilities : ndarray, shape (N, K)
        The final q(z).
    """

    params: Any
    elbo: np.ndarray
    n_iter: int
    converged: bool
    posterior: VariationalPosterior
    responsibilities: np.ndarray

    @property
    def objective(self) -> np.ndarray:
        """The trace of the objective: ``elbo``."""
        return self.elbo


def cavi(model: BayesianGaussianMixture, X, init=None, *, rng: np.random.Generator | None = None,
         max_iter: int = MAX_ITER, tol: float = TOL,
         callback: Callable[[int, VariationalPosterior, float], None] | None = None) -> CAVIResult:
    """Fit the mean-field posterior of a Bayesian Gaussian mixture by coordinate ascent.

    Each sweep sets q(z) to its optimum given q(pi, mu, Lambda) and then q(pi, mu, Lambda) to its
    optimum given q(z) (algorithm ``variational_inference-alg-cavi``, updates
    ``variational_inference-cavi-update``), so the ELBO never decreases (corollary
    ``variational_inference-cor-monotone``);
    a decrease beyond rounding (``ELBO_DECREASE_RTOL``) raises ``RuntimeError``.

    Parameters
    ----------
    model : BayesianGaussianMixture
    X : array_like, shape (N, D)
    init : array_like, shape (N, K), optional
        A starting q(z) (rows summing to one). Default: ``model.init_responsibilities(X, rng)``.
    rng : numpy.random.Generator, optional
        Required when ``init`` is not given (the start is then random); not used otherwise.
    max_iter, tol
        As for :func:`emlib.em`.
    callback : callable ``(t, posterior_t, elbo_t)``, optional
        Called after every sweep, as in :func:`emlib.em`; CAVI's iterate is the variational
        posterior q(pi, mu, Lambda) (a :class:`VariationalPosterior`).

    Returns
    -------
    CAVIResult
    """
    if not isinstance(model, BayesianGaussianMixture):
        raise ValueError(f"model must be an emlib.BayesianGaussianMixture; got {type(model).__name__}.")
    check_callable(callback, "callback")
    monitor = ConvergenceMonitor(max_iter, tol, monotone_rtol=ELBO_DECREASE_RTOL, objective="ELBO")
    X = model.check_data(X)
    if init is None:
        if rng is None:
            raise ValueError("give either init (a starting q(z), shape (N, K)) or rng to draw one.")
        init = model.init_responsibilities(X, rng)
    if np.shape(init) != (X.shape[0], model.n_components):
        raise ValueError(f"init must be a q(z) of shape (N, K) = {(X.shape[0], model.n_components)}; "
                         f"got {np.shape(init)}.")
    q = check_probability_rows(init, "init")
    prior = model.prior(X)
    with monitor:
        post = model.update_posterior(model.expected_stats(X, q), prior)
        monitor.record(model.elbo(X, q, post, prior))
        while not monitor.done:
            q = model.posterior(X, post)                                      # optimal q(z) given q(theta)
            post = model.update_posterior(model.expected_stats(X, q), prior)  # optimal q(theta) given q(z)
            value = model.elbo(X, q, post, prior)
            monitor.record(value)
            if callback is not None:
                callback(monitor.n_iter, post, value)
    return CAVIResult(post.expected_params(), np.array(monitor.trace), monitor.n_iter, monitor.converged, post, q)
