"""SAEM: stochastic approximation EM (Delyon, Lavielle and Moulines 1999), with an MCMC E-step.

Book: chapter "SAEM: stochastic approximation EM" (``book/saem.ipynb``). Stochastic EM draws
one completion z^(t) of the latent variables per iteration and takes the M-step on its
statistics; its parameters never settle. SAEM keeps the single draw but averages the
statistics with decreasing weights, a Robbins-Monro recursion (eq. ``saem-rm``)::

    z^(t)   ~ K_{theta_{t-1}}(z^(t-1), .)                  # model.mcmc: sweeps of a kernel that
                                                          # leaves p(z | x, theta_{t-1}) invariant
    s_t     = s_{t-1} + gamma_t (t(x, z^(t)) - s_{t-1})    # model.expected_stats on the draw
    theta_t = model.m_step(s_t)

With gamma_t = 1 for every t this is stochastic EM; with sum gamma_t = infinity and
sum gamma_t^2 < infinity the noise averages out and, under the assumptions of Delyon, Lavielle
and Moulines (1999, exact draws) or of Kuhn and Lavielle (2004, MCMC draws), theta_t converges to
a stationary point of the log-likelihood. Online EM (:func:`emlib.online_em`) is the same
recursion with the noise coming from mini-batches of data instead of from sampled z.

The step sizes are those of :mod:`emlib.variants.online` (gamma_t = t ** (-alpha),
1/2 < alpha <= 1), preceded by ``burn_in`` iterations with gamma_t = 1 (stochastic EM), the
usual way to run SAEM: large steps while far from the answer, then averaging.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._validation import check_callable, check_generator, check_integer, check_number
from ..em import ConvergenceMonitor, EMResult
from ..mcmc import draw_latent
from .online import _step_sizes
from .stochastic import _fields_of


@dataclass(frozen=True)
class SAEMResult(EMResult):
    """What :func:`saem` returns: an :class:`emlib.EMResult` plus the state of the recursion.

    Attributes
    ----------
    params : parameters dataclass
        theta_T = M(s_T).
    log_likelihood : ndarray, shape (n_iter + 1,)
        log p(X | theta_t), t = 0, ..., n_iter (exact, from ``model.log_likelihood``; not monotone).
    n_iter : int
    converged : bool
        False unless a positive ``tol`` was given and its rule fired (see :func:`saem`).
    stats : statistics object
        s_T, the stochastic-approximation average of the sampled statistics.
    latent : ndarray
        z^(T), the last state of the Markov chains (one value per latent variable).
    step_sizes : ndarray, shape (n_iter,)
        gamma_1, ..., gamma_T as used.
    acceptance_rate : float
        The Metropolis acceptance rate over all sweeps (1.0 for independent draws).
    """

    stats: Any
    latent: np.ndarray
    step_sizes: np.ndarray
    acceptance_rate: float


def saem(model, X, init, *, rng: np.random.Generator, step_sizes: float | Callable[[int], float] = 0.7,
         burn_in: int = 0, n_mcmc_steps: int = 1, independent: bool = False, max_iter: int = 500,
         tol: float = 0.0, callback: Callable[[int, Any, float], None] | None = None) -> SAEMResult:
    """Fit ``model`` to ``X`` by SAEM with one sampled completion per iteration (algorithm ``saem-alg``).

    Iteration t = 1, 2, ...: ``n_mcmc_steps`` sweeps of the model's Markov kernel under
    theta_{t-1}, continuing the chains from z^(t-1) (the chains start at the posterior modes
    under theta_0), give z^(t); its complete-data statistics enter
    s_t = (1 - gamma_t) s_{t-1} + gamma_t t(x, z^(t)); the M-step gives theta_t = M(s_t).

    Step sizes: gamma_t = 1 for t <= max(burn_in, 1); afterwards gamma_t = g(t - burn_in), with
    g(u) = u ** (-alpha) when ``step_sizes`` is the exponent alpha (1/2 < alpha <= 1, the
    Robbins-Monro conditions sum gamma = infinity, sum gamma^2 < infinity), or g = ``step_sizes``
    when it is a callable (values in (0, 1]; ``lambda t: 1.0`` gives stochastic EM). The
    conditions cannot be checked for a callable.

    Parameters
    ----------
    model : object of the model interface
        Needs ``check_data``, ``check_params``, ``expected_stats(X, z)`` (statistics of a
        completion), ``m_step``, ``log_likelihood``, and the sampling hooks ``mcmc`` and
        ``posterior_mode`` (or ``sample_posterior`` for ``independent=True``); e.g.
        :class:`emlib.LogisticRandomIntercept`. Statistics must support ``a + b`` and ``c * a``.
    X : array_like
        The observed data.
    init : parameters dataclass
        theta_0.
    rng : numpy.random.Generator
        The only source of randomness.
    step_sizes : float or callable ``u -> gamma``
        The exponent alpha, or the schedule after the burn-in (see above). Default 0.7.
    burn_in : int
        >= 0; the number of initial iterations with gamma_t = 1 (stochastic EM).
    n_mcmc_steps : int
        >= 1; Metropolis sweeps per iteration (the draw is the state after the last sweep).
    independent : bool
        Draw z^(t) exactly and independently from p(z | x, theta_{t-1}) (the setting of Delyon,
        Lavielle and Moulines) instead of by MCMC.
    max_iter : int
        At most this many iterations.
    tol : float
        0 (default, on purpose: a sampled path never settles, so a relative-change rule would stop
        it by chance) runs exactly ``max_iter`` iterations. A positive value applies the rule of
        :class:`emlib.ConvergenceMonitor` to log p(X | theta_t); with decreasing steps its change
        shrinks like gamma_t, so the rule fires eventually, which says the steps are small, not
        that theta_t is close to the maximum.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every M-step, as in :func:`emlib.em`.

    Returns
    -------
    SAEMResult

    Raises
    ------
    ValueError
        For bad arguments, or from the model (e.g. an M-step outside the parameter space).
    """
    rng = check_generator(rng)
    check_callable(callback, "callback")
    monitor = ConvergenceMonitor(max_iter, tol)
    if callable(step_sizes):
        gamma = _step_sizes(None, None, step_sizes)  # validates each gamma in (0, 1]
    else:
        alpha = check_number(step_sizes, "step_sizes")
        if not 0.5 < alpha <= 1:
            raise ValueError("step_sizes must be a callable t -> gamma_t or an exponent alpha with "
                             f"1/2 < alpha <= 1 (gamma_t = t**-alpha: the Robbins-Monro conditions); got {alpha!r}.")
        gamma = _step_sizes(alpha, 0.0, None)
    burn_in = check_integer(burn_in, "burn_in", minimum=0)
    n_mcmc_steps = check_integer(n_mcmc_steps, "n_mcmc_steps", minimum=1)
    X = model.check_data(X)
    params = model.check_params(init, X)
    monitor.record(model.log_likelihood(X, params))
    state, stats, used, rates = None, None, [], []
    converged = False
    while monitor.n_iter < monitor.max_iter and not converged:
        t = monitor.n_iter + 1
        draws, state, rate = draw_latent(model, X, params, rng, n_mcmc_steps, state, independent=independent)
        sampled = model.expected_stats(X, draws[-1])
        g = 1.0 if t <= max(burn_in, 1) else gamma(t - burn_in)
        stats = sampled if stats is None else (1.0 - g) * stats + g * sampled
        params = model.m_step(stats)
        loglik = model.log_likelihood(X, params)
        converged = monitor.record(loglik)
        used.append(g)
        rates.append(rate)
        if callback is not None:
            callback(t, params, loglik)
    base = monitor.result(params, converged)
    return SAEMResult(**_fields_of(base), stats=stats, latent=state, step_sizes=np.array(used),
                      acceptance_rate=float(np.mean(rates)) if rates else float("nan"))
