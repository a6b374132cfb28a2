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

from .._validation import check_callable, check_integer, check_number
from ..em import ConvergenceMonitor, check_driver_arguments
from ..models._fit_warnings import ComponentStarvingWarning, warn_now

#: A component whose share of the running statistics (N_k / sum_j N_j) falls below this starts
#: starving: new batches give it (almost) nothing, its statistics decay geometrically, and some
#: hundreds of batches later the M-step finds it empty and the stream stops with an error.
STARVING_SHARE = 1e-6


@dataclass(frozen=True)
class OnlineEMResult:
    """What :func:`online_em` returns. Not an :class:`emlib.EMResult`: its trace is a prequential score.

    Attributes
    ----------
    params : parameters dataclass
        theta_T, the parameters after the last batch.
    prequential_log_likelihood : ndarray, shape (n_batches,)
        The prequential score (equation ``online_em-prequential``):
        ``prequential_log_likelihood[t]`` is the average log-likelihood per point of batch t + 1
        under theta_t, the parameters in force before that batch was used, i.e.
        (1/|B_{t+1}|) log p(B_{t+1} | theta_t), t = 0, ..., n_batches - 1. Each batch is scored
        before it updates the parameters, so on a stream of new points this is an out-of-sample
        measure (not from the second pass on, when a finite data set is streamed again: its
        points have already shaped theta_t). It is not the log-likelihood of the whole data
        (which a stream never holds) and, unlike :func:`emlib.em`'s trace, it has one entry per
        batch (theta_T itself is not scored: no batch follows it).
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

    params: Any
    prequential_log_likelihood: np.ndarray
    n_iter: int
    converged: bool
    stats: Any
    n_batches: int
    n_points: int

    @property
    def objective(self) -> np.ndarray:
        """The trace of the objective: ``prequential_log_likelihood``."""
        return self.prequential_log_likelihood

    @property
    def log_likelihood(self) -> np.ndarray:
        """Deprecated name of :attr:`prequential_log_likelihood` (a per-point score of each batch)."""
        return self.prequential_log_likelihood


def online_em(model, batches: Iterable, init, *, alpha: float = 0.6, t0: float = 0.0,
              step_size: Callable[[int], float] | None = None, n_warmup: int = 0,
              max_batches: int | None = None,
              callback: Callable[[int, Any, float], None] | None = None) -> OnlineEMResult:
    """Fit ``model`` to a stream of mini-batches by online EM (algorithm ``online_em-alg``).

    For t = 1, 2, ...: the E-step on batch B_t under the current parameters gives its expected
    statistics and its log-likelihood; the statistics, divided by the batch size so that
    batches of any size can be mixed, enter the running average
    s_t = (1 - gamma_t) s_{t-1} + gamma_t s_bar(B_t) (with gamma_1 = 1, so s_1 is the first
    batch's statistics, equation ``online_em-update``); after the first ``n_warmup`` batches,
    each update is followed by the M-step theta_t = m_step(s_t).

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
        The step-size exponent, 1/2 < alpha <= 1 (equation ``online_em-robbins-monro``). Near
        1/2: fast forgetting of early batches and noisy estimates; 1 with ``t0=0``: s_t is the
        plain average of all batch statistics.
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
        wrong dimension, or a single array passed instead of an iterable of batches; an error
        raised while a batch is processed names the batch.

    Warns
    -----
    ComponentStarvingWarning
        Once per component, as soon as its share of the running statistics falls below
        ``STARVING_SHARE``: long before the stream would stop with an error.
    """
    gamma = _step_sizes(alpha, t0, step_size)
    n_warmup = check_integer(n_warmup, "n_warmup", minimum=0)
    if max_batches is not None:
        max_batches = check_integer(max_batches, "max_batches", minimum=1)
    check_driver_arguments(model, callback, driver="online_em",
                           methods=("check_data", "check_params", "e_step", "m_step"))
    if isinstance(batches, np.ndarray):
        raise ValueError("batches must be an iterable of mini-batches, not one array; split the data, "
                         "e.g. np.array_split(X, n_batches), or pass a generator of arrays.")
    try:
        stream = iter(batches)
    except TypeError:
        raise ValueError("batches must be an iterable of arrays of shape (N_b, D), such as a list or a "
                         f"generator; got {type(batches).__name__}.") from None
    params = model.check_params(init)
    monitor = ConvergenceMonitor(max_batches if max_batches is not None else sys.maxsize, 0.0,
                                 objective="prequential log-likelihood")
    stats, n_points, n_mstep, t = None, 0, 0, 0
    starving: set[int] = set()
    with monitor:
        for batch in stream:
            t += 1
            try:
                stats, params, n_b = _update(model, batch, params, stats, gamma, t, t > n_warmup, monitor)
            except ValueError as exc:
                raise ValueError(f"batch {t}: {exc}") from exc
            n_mstep += t > n_warmup
            n_points += n_b
            _warn_starving(stats, t, starving)
            if callback is not None:
                callback(t, params, monitor.trace[-1])
            del batch  # hold no batch while the stream produces the next one
            if t == monitor.max_iter:
                break
    if t == 0:
        raise ValueError("batches yielded no mini-batch; online EM needs at least one batch of data.")
    return OnlineEMResult(params=params, prequential_log_likelihood=np.array(monitor.trace), n_iter=n_mstep,
                          converged=False, stats=stats, n_batches=t, n_points=n_points)


def _update(model, batch, params, stats, gamma, t: int, m_step: bool, monitor: ConvergenceMonitor):
    """One batch: score it, fold its statistics into the running average, and (after warm-up) the M-step."""
    if np.ndim(batch) >= 1 and np.shape(batch)[0] == 0:
        raise ValueError("it is empty (0 rows); every mini-batch must hold at least one point. "
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
    if m_step:
        params = model.m_step(stats)
    return stats, params, n_b


def _warn_starving(stats, t: int, warned: set[int]) -> None:
    """Warn once per component whose share of the running statistics fell below ``STARVING_SHARE``."""
    counts = getattr(stats, "counts", None)
    if counts is None or np.ndim(counts) != 1 or counts.sum() <= 0:
        return
    new = sorted(set(np.flatnonzero(counts / counts.sum() < STARVING_SHARE).tolist()) - warned)
    if new:
        warned.update(new)
        warn_now(f"component(s) {new} are starving: at batch {t} their share of the running statistics fell "
                 f"below {STARVING_SHARE:g}, so new batches give them (almost) nothing and their statistics "
                 "fade; the stream will stop with an error once they are empty. Start from other "
                 "parameters, use fewer components, or larger batches.", ComponentStarvingWarning)


def _step_sizes(alpha, t0, step_size) -> Callable[[int], float]:
    """Validate the step-size settings and return t -> gamma_t (for t >= 2)."""
    if step_size is not None:
        check_callable(step_size, "step_size")

        def checked(t):
            g = step_size(t)
            ok = isinstance(g, (int, float, np.integer, np.floating)) and not isinstance(g, (bool, np.bool_))
            if not ok or not 0 < g <= 1:
                raise ValueError(f"step_size({t}) returned {g!r}; every step size must be a number in (0, 1].")
            return float(g)
        return checked
    try:
        alpha = check_number(alpha, "alpha", above=0.5, maximum=1.0)
    except ValueError:
        raise ValueError(
            f"alpha must satisfy 1/2 < alpha <= 1 (so that sum gamma_t diverges and sum gamma_t**2 "
            f"converges, the Robbins-Monro conditions); got {alpha!r}."
        ) from None
    t0 = check_number(t0, "t0", minimum=0.0)
    return lambda t: (t + t0) ** (-alpha)
