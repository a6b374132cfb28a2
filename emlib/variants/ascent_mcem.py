"""Monte Carlo EM with MCMC draws and sample sizes chosen by the ascent rule of Caffo, Jank and Jones (2005).

Book: chapter "SAEM: stochastic approximation EM" (``book/saem.ipynb``). Iteration t draws m
completions z^(1), ..., z^(m) of the latent variables under theta_{t-1} (by continuing the
model's Markov chains, or exactly), takes the M-step on the average of their statistics, and
estimates how much the step raised the Q-function (eq. ``saem-delta-q``)::

    lambda_j = log p(x, z^(j) | theta_new) - log p(x, z^(j) | theta_{t-1}),
    dQ_hat   = (1/m) sum_j lambda_j,      se = sqrt(sigma^2 / m),

with sigma^2 the variance of one lambda_j for independent draws, or the asymptotic variance of
the chain (batch means, :func:`emlib.mcmc.batch_means_variance`) for MCMC draws. The ascent rule:

- accept the step only when dQ_hat - z_{1-a} se > 0 (an increase is detected at level a);
  otherwise append ceil(m / augment) further draws and redo the M-step;
- start the next iteration with m_{t+1} = max(m_t, sigma^2 (z_{1-a} + z_{1-b})^2 / dQ_hat^2),
  the size at which an increase as large as this one would be detected with power 1 - b;
- stop when dQ_hat + z_{1-c} se < ``tol``: with confidence 1 - c the increase is below tol.

Because Q increases, so does the log-likelihood (EM's monotonicity argument), at least with the
probability the test controls. Booth and Hobert (1999) proposed the first such automated rule
(increase m when the step is swamped by Monte Carlo error, with independent draws); the
ascent-based form is that of Caffo, Jank and Jones (2005).

With ``schedule`` the sample sizes are fixed in advance instead (m_t = schedule(t), e.g.
geometric growth as Wei and Tanner advise), no step is rejected, and dQ_hat and se are reported
for every iteration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.stats import norm

from .._validation import check_callable, check_generator, check_integer
from ..em import ConvergenceMonitor, EMResult
from ..mcmc import batch_means_variance, draw_latent
from .stochastic import _fields_of

#: The fewest draws of one M-step: batch means need four batches of four.
MIN_SAMPLES = 16


@dataclass(frozen=True)
class AscentMCEMResult(EMResult):
    """What :func:`ascent_mcem` returns: an :class:`emlib.EMResult` plus the Monte Carlo record.

    Attributes
    ----------
    log_likelihood : ndarray, shape (n_iter + 1,)
        log p(X | theta_t), exact (``model.log_likelihood``), t = 0, ..., n_iter.
    converged : bool
        True when the stopping rule dQ_hat + z_{1-c} se < tol fired.
    n_samples : ndarray of int, shape (n_iter,)
        m_t, the number of draws behind the M-step accepted in iteration t.
    n_draws : int
        All draws made (for MCMC: all sweeps, burn-in included).
    delta_q : ndarray, shape (n_iter,)
        dQ_hat of the accepted step of each iteration.
    delta_q_se : ndarray, shape (n_iter,)
        Its standard error.
    n_augmented : int
        How many times a step was rejected and the sample enlarged.
    latent : ndarray
        The last state of the chains.
    acceptance_rate : float
        The Metropolis acceptance rate over all sweeps (1.0 for independent draws).
    """

    n_samples: np.ndarray
    n_draws: int
    delta_q: np.ndarray
    delta_q_se: np.ndarray
    n_augmented: int
    latent: np.ndarray
    acceptance_rate: float


def ascent_mcem(model, X, init, *, rng: np.random.Generator, n_samples: int = 100,
                schedule: Callable[[int], int] | None = None, independent: bool = False,
                standard_error: str = "batch_means", ascent_error: float = 0.25,
                power_error: float = 0.25, stop_error: float = 0.05, tol: float = 1e-3,
                augment: int = 3, mcmc_burn_in: int = 0, max_samples: int = 20_000,
                max_iter: int = 100,
                callback: Callable[[int, Any, float], None] | None = None) -> AscentMCEMResult:
    """Fit ``model`` by Monte Carlo EM with ascent-based sample sizes (module docstring).

    Parameters
    ----------
    model : object of the model interface
        Needs ``check_data``, ``check_params``, ``expected_stats(X, z)`` (averaging over draws
        z of shape (m, N)), ``m_step``, ``log_likelihood``, ``log_joint(X, params, z)``
        (per-draw complete-data log-densities, shape of z), and the sampling hooks ``mcmc``
        and ``posterior_mode`` (or ``sample_posterior`` when ``independent``); e.g.
        :class:`emlib.LogisticRandomIntercept`.
    X : array_like
    init : parameters dataclass
        theta_0.
    rng : numpy.random.Generator
        The only source of randomness.
    n_samples : int
        m_1 >= 16, the first sample size of the ascent rule (ignored with ``schedule``).
    schedule : callable ``t -> m_t``, optional
        Fixed sample sizes (each >= 16) instead of the ascent rule.
    independent : bool
        Exact independent draws (``model.sample_posterior``) instead of MCMC.
    standard_error : {"batch_means", "iid"}
        How se is computed: batch means (valid for MCMC draws), or the sample standard
        deviation over sqrt(m), which is valid only for independent draws and too small for
        positively correlated ones.
    ascent_error, power_error, stop_error : float
        a, b, c in (0, 1/2): the levels of the ascent test, of its power for the next sample
        size, and of the stopping rule.
    tol : float
        >= 0, the stopping threshold on the increase of Q (in units of the log-likelihood);
        0 never stops early. The default 1e-3 differs from :func:`emlib.em`'s on purpose: it is an
        absolute threshold on a Monte Carlo estimate, tested against its standard error, not a
        relative change of an exact trace.
    augment : int
        >= 1; a rejected step adds ceil(m / augment) draws.
    mcmc_burn_in : int
        >= 0; sweeps discarded at the start of every iteration (the chains continue from their
        last state, so a short burn-in suffices once theta changes little).
    max_samples : int
        The largest m_t; a step still undetected at this size is accepted.
    max_iter : int
        At most this many iterations (accepted M-steps); 100 by default, because every iteration
        may add draws until its ascent is detected.
    callback : callable ``(t, params_t, loglik_t)``, optional

    Returns
    -------
    AscentMCEMResult
    """
    rng = check_generator(rng)
    check_callable(callback, "callback")
    monitor = ConvergenceMonitor(max_iter, 0.0)  # records ell and refuses NaN; the rule is ours
    if standard_error not in ("batch_means", "iid"):
        raise ValueError(f"standard_error must be 'batch_means' or 'iid'; got {standard_error!r}.")
    for name, level in (("ascent_error", ascent_error), ("power_error", power_error),
                        ("stop_error", stop_error)):
        if not isinstance(level, (int, float, np.integer, np.floating)) or not 0 < level < 0.5:
            raise ValueError(f"{name} must be a probability strictly between 0 and 1/2; got {level!r}.")
    if not isinstance(tol, (int, float, np.integer, np.floating)) or not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0 (0 never stops early); got {tol!r}.")
    augment = check_integer(augment, "augment", minimum=1)
    mcmc_burn_in = check_integer(mcmc_burn_in, "mcmc_burn_in", minimum=0)
    max_samples = check_integer(max_samples, "max_samples", minimum=MIN_SAMPLES)
    if schedule is not None and not callable(schedule):
        raise ValueError(f"schedule must be a callable t -> m_t or None; got {type(schedule).__name__}.")
    m_next = check_integer(n_samples, "n_samples", minimum=MIN_SAMPLES) if schedule is None else None
    z_ascent, z_power, z_stop = (float(norm.ppf(1 - level)) for level in (ascent_error, power_error, stop_error))

    X = model.check_data(X)
    params = model.check_params(init, X)
    monitor.record(model.log_likelihood(X, params))
    state, n_draws, n_augmented = None, 0, 0
    used, delta_q, delta_se, rates, weights = [], [], [], [], []
    converged = False

    def sample(count, burn_in=0):
        nonlocal state, n_draws
        if burn_in and not independent:
            _, state, rate = draw_latent(model, X, params, rng, burn_in, state)
            n_draws += burn_in
            rates.append(rate)
            weights.append(burn_in)
        draws, state, rate = draw_latent(model, X, params, rng, count, state, independent=independent)
        n_draws += count
        rates.append(rate)
        weights.append(count)
        return draws

    while monitor.n_iter < monitor.max_iter and not converged:
        t = monitor.n_iter + 1
        if schedule is not None:
            m = schedule(t)
            if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or not MIN_SAMPLES <= m:
                raise ValueError(f"schedule({t}) returned {m!r}; sample sizes must be integers >= {MIN_SAMPLES}.")
            m = min(int(m), max_samples)
        else:
            m = m_next
        draws = sample(m, mcmc_burn_in)
        while True:
            new = model.m_step(model.expected_stats(X, draws))
            increments = _increments(model, X, params, new, draws)
            dq = float(increments.mean())
            if standard_error == "iid":
                se = float(increments.std(ddof=1) / math.sqrt(increments.size))
            else:
                se = math.sqrt(batch_means_variance(increments) / increments.size)
            if schedule is not None or dq - z_ascent * se > 0 or draws.shape[0] >= max_samples:
                break
            extra = min(math.ceil(draws.shape[0] / augment), max_samples - draws.shape[0])
            draws = np.vstack([draws, sample(extra)])
            n_augmented += 1
        params = new
        m_t = draws.shape[0]
        loglik = model.log_likelihood(X, params)
        monitor.record(loglik)
        used.append(m_t)
        delta_q.append(dq)
        delta_se.append(se)
        if callback is not None:
            callback(t, params, loglik)
        converged = dq + z_stop * se < tol
        if schedule is None:
            sigma2 = se * se * m_t
            wanted = sigma2 * (z_ascent + z_power) ** 2 / dq ** 2 if dq > 0 else float("inf")
            m_next = int(min(max_samples, max(m_t, math.ceil(wanted))))
    base = monitor.result(params, converged)
    rate = float(np.average(rates, weights=weights)) if rates else float("nan")
    return AscentMCEMResult(**_fields_of(base), n_samples=np.array(used, dtype=np.int64), n_draws=int(n_draws),
                            delta_q=np.array(delta_q), delta_q_se=np.array(delta_se),
                            n_augmented=int(n_augmented), latent=state, acceptance_rate=rate)


def _increments(model, X, old, new, draws, chunk: int = 4096) -> np.ndarray:
    """lambda_j = log p(x, z^(j) | new) - log p(x, z^(j) | old) for every draw (row); shape (m,)."""
    out = np.empty(draws.shape[0])
    for first in range(0, draws.shape[0], chunk):
        block = draws[first:first + chunk]
        out[first:first + chunk] = (model.log_joint(X, new, block) - model.log_joint(X, old, block)).sum(axis=1)
    return out
