"""Online EM: a running average of expected sufficient statistics over a stream of mini-batches.

Book: chapter "Online EM" (``book/online_em.ipynb``), after Cappé and Moulines (2009). Batch EM
iterates s <- s_bar(theta(s)) on the per-point expected statistics of the whole data. Online EM
replaces the whole-data average by one mini-batch B_t and moves only part of the way
(eq. ``online_em-update``)::

    stats_t, loglik_t = model.e_step(B_t, theta_{t-1})       # E-step on the new batch only
    s_t = (1 - gamma_t) * s_{t-1} + gamma_t * stats_t / |B_t|  # stochastic approximation
    theta_t = model.m_step(s_t)                                # M-step from the running average

with gamma_1 = 1 and gamma_t = (t + t0) ** (-alpha), 1/2 < alpha <= 1 (the Robbins-Monro
conditions, eq. ``online_em-robbins-monro``). Only s_t, theta_t and one batch are held in
memory, so a stream far larger than memory passes through in constant memory. The update uses
nothing but the additivity of the statistics (``a + b``, ``c * a``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..em import ConvergenceMonitor, EMResult


@dataclass(frozen=True)
class OnlineEMResult(EMResult):
    """What :func:`online_em` returns.

    Attributes
    ----------
    params : parameters dataclass
        theta_T, the parameters after the last batch.
    log_likelihood : ndarray, shape (n_batches,)
        The prequential trace: ``log_likelihood[t]`` is the average log-likelihood per point of
        batch t + 1 under theta_t, the parameters in force before that batch was used, i.e.
        (1/|B_{t+1}|) log p(B_{t+1} | theta_t), t = 0, ..., n_batches - 1. Each batch is scored
        before it updates the parameters, so on a stream of new points this is an
        out-of-sample measure (not from the second pass on, when a finite data set is streamed
        again: its points have already shaped theta_t). It is
        NOT the log-likelihood of the whole data (which a stream never holds) and, unlike
        :func:`emlib.em`, it has one entry per batch (theta_T itself is not scored: no batch
        follows it).
    n_iter : int
        The number of M-steps taken: ``n_batches - n_warmup`` (0 if the stream ended first).
    converged : bool
        Always False: online EM has no stopping rule; it runs to the end of the stream.
    stats : statistics object
        s_T, the running average of the per-point expected sufficient statistics.
    n_batches : int
        The number of mini-batches used.
    n_points : int
        The total number of data points seen.
    """

    stats: Any
    n_batches: int
    n_points: int


def online_em(model, batches: Iterable, init, *, alpha: float = 0.6, t0: float = 0.0,
              step_size: Callable[[int], float] | None = None, n_warmup: int = 0,
              max_batches: int | None = None,
              callback: Callable[[int, Any, float], None] | None = None) -> OnlineEMResult:
    """Fit ``model`` to a stream of mini-batches by online EM (algorithm ``online_em-alg``).

    For t = 1, 2, ...: the E-step on batch B_t under the current parameters gives its expected
    statistics and its log-likelihood; the statistics, divided by the batch size so that
    batches of any size can be mixed, enter the running average
    s_t = (1 - gamma_t) s_{t-1} + gamma_t s_bar(B_t) (with gamma_1 = 1, so s_1 is the first
    batch's statistics); after the first ``n_warmup`` batches, each update is followed by the
    M-step theta_t = m_step(s_t).

    Memory: one batch, s_t and theta_t, plus one float per batch for the trace. ``batches`` may
    be a generator producing the data on the fly; nothing else of a batch is kept once the next
    one arrives.

    Parameters
    ----------
    model : object of the model interface
        Needs ``check_data``, ``check_params``, ``e_step`` and ``m_step``, and statistics that
        support ``a + b`` and ``c * a``. Because s_t is an average per point, the M-step must
        depend only on ratios of the statistics (true of maximum-likelihood M-steps such as
        :class:`emlib.GaussianMixture`'s: pi_k = N_k / N, mu_k = S1_k / N_k, ...).
    batches : iterable of array_like, each of shape (N_b, D)
        The mini-batches (a list, or a generator for a stream). Each must pass
        ``model.check_data`` (for a K-component mixture: at least K rows) and have the
        dimension of ``init``. Sizes may differ.
    init : parameters dataclass
        theta_0.
    alpha : float
        The step-size exponent, 1/2 < alpha <= 1. Near 1/2: fast forgetting of early batches
        and noisy estimates; 1 with ``t0=0``: s_t is the plain average of all batch statistics.
    t0 : float
        >= 0; delays the decay of the step sizes, gamma_t = (t + t0) ** (-alpha) for t >= 2.
    step_size : callable ``t -> gamma_t``, optional
        A schedule to use instead of ``(t + t0) ** (-alpha)`` (then ``alpha`` and ``t0`` are not
        used); called for t = 2, 3, ... and must return a number in (0, 1].
    n_warmup : int
        >= 0; the first ``n_warmup`` batches only build up s_t (theta stays theta_0), a common
        precaution when the first batches are small.
    max_batches : int, optional
        Stop after this many batches (the rest of the stream is not consumed).
    callback : callable ``(t, params_t, score_t)``, optional
        Called after each batch t = 1, 2, ... with the parameters after that batch and the
        batch's prequential score (its per-point log-likelihood under theta_{t-1}).

    Returns
    -------
    OnlineEMResult
        See its attributes for the meaning of the trace.

    Raises
    ------
    ValueError
        For a bad step-size setting, an empty batch, a stream with no batch, a batch of the
        wrong dimension, or a single array passed instead of an iterable of batches.
    """
    gamma = _step_sizes(alpha, t0, step_size)
    n_warmup = _check_count(n_warmup, "n_warmup", minimum=0)
    if max_batches is not None:
        max_batches = _check_count(max_batches, "max_batches", minimum=1)
    if isinstance(batches, np.ndarray):
        raise ValueError("batches must be an iterable of mini-batches, not one array; split the data, "
                         "e.g. np.array_split(X, n_batches), or pass a generator of arrays.")
    try:
        stream = iter(batches)
    except TypeError:
        raise ValueError("batches must be an iterable of arrays of shape (N_b, D), such as a list or a "
                         f"generator; got {type(batches).__name__}.") from None
    params = model.check_params(init)
    monitor = ConvergenceMonitor(max_batches if max_batches is not None else sys.maxsize, 0.0)
    stats, n_points, n_mstep, t = None, 0, 0, 0
    for batch in stream:
        t += 1
        if np.ndim(batch) >= 1 and np.shape(batch)[0] == 0:
            raise ValueError(f"batch {t} is empty (0 rows); every mini-batch must hold at least one point. "
                             "Drop empty batches from the stream.")
        batch = model.check_data(batch)
        model.check_params(params, batch)
        n_b = batch.shape[0]
        batch_stats, loglik = model.e_step(batch, params)
        monitor.record(loglik / n_b)  # scores theta_{t-1} on unseen data; refuses NaN
        batch_stats = (1.0 / n_b) * batch_stats
        if stats is None:
            stats = batch_stats  # gamma_1 = 1
        else:
            g = gamma(t)
            stats = (1.0 - g) * stats + g * batch_stats
        if t > n_warmup:
            params = model.m_step(stats)
            n_mstep += 1
        n_points += n_b
        if callback is not None:
            callback(t, params, monitor.trace[-1])
        del batch, batch_stats  # hold no batch while the stream produces the next one
        if t == monitor.max_iter:
            break
    if t == 0:
        raise ValueError("batches yielded no mini-batch; online EM needs at least one batch of data.")
    return OnlineEMResult(params=params, log_likelihood=np.array(monitor.trace), n_iter=n_mstep,
                          converged=False, stats=stats, n_batches=t, n_points=n_points)


def _step_sizes(alpha, t0, step_size) -> Callable[[int], float]:
    """Validate the step-size settings and return t -> gamma_t (for t >= 2)."""
    if step_size is not None:
        if not callable(step_size):
            raise ValueError(f"step_size must be a callable t -> gamma_t or None; got {type(step_size).__name__}.")

        def checked(t):
            g = step_size(t)
            if not isinstance(g, (int, float, np.integer, np.floating)) or not 0 < g <= 1:
                raise ValueError(f"step_size({t}) returned {g!r}; every step size must be a number in (0, 1].")
            return float(g)
        return checked
    if not isinstance(alpha, (int, float, np.integer, np.floating)) or not 0.5 < alpha <= 1:
        raise ValueError(
            f"alpha must satisfy 1/2 < alpha <= 1 (so that sum gamma_t diverges and sum gamma_t**2 "
            f"converges, the Robbins-Monro conditions); got {alpha!r}."
        )
    if not isinstance(t0, (int, float, np.integer, np.floating)) or not np.isfinite(t0) or t0 < 0:
        raise ValueError(f"t0 must be a finite number >= 0; got {t0!r}.")
    alpha, t0 = float(alpha), float(t0)
    return lambda t: (t + t0) ** (-alpha)


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)
