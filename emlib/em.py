"""The EM driver: the algorithm of the book's chapter "The EM algorithm", on one screen.

The driver knows nothing about any particular model. It calls three pieces that every model
supplies (see :mod:`emlib.models`)::

    stats, loglik = model.e_step(X, params)   # E-step: expected sufficient statistics E_q[t(x, z)]
    params = model.m_step(stats)               # M-step: argmax_theta Q(theta | theta_t)

and records the log-likelihood ``log p(X | theta_t)`` of every iterate. The
:class:`ConvergenceMonitor` is shared with the variant drivers in :mod:`emlib.variants`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class EMResult:
    """What every driver returns.

    Attributes
    ----------
    params : parameters dataclass
        The last iterate theta_T.
    log_likelihood : ndarray, shape (n_iter + 1,)
        ``log_likelihood[t]`` is the objective at theta_t, starting with the initial parameters
        (t = 0). For EM and its likelihood-based variants it is log p(X | theta_t), the total over
        the data; drivers that monitor another objective say so.
    n_iter : int
        The number of iterations (M-steps) taken.
    converged : bool
        True only when the stopping rule was met; False when ``max_iter`` was reached first.
    """

    params: Any
    log_likelihood: np.ndarray
    n_iter: int
    converged: bool


class ConvergenceMonitor:
    """Keep the objective trace and decide when to stop.

    Stops when the relative change ``|f_t - f_{t-1}| <= tol * |f_t|``; ``tol=0`` never stops
    early. Refuses a NaN or infinite objective with a ``ValueError``, since continuing would
    only produce NaN parameters.

    Parameters
    ----------
    max_iter : int
        The largest number of iterations; must be non-negative.
    tol : float
        Relative tolerance on the objective; must be non-negative.
    """

    def __init__(self, max_iter: int, tol: float):
        if not isinstance(max_iter, (int, np.integer)) or isinstance(max_iter, bool) or max_iter < 0:
            raise ValueError(f"max_iter must be a non-negative integer; got {max_iter!r}.")
        if not np.isfinite(tol) or tol < 0:
            raise ValueError(f"tol must be a non-negative number (0 never stops early); got {tol!r}.")
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.trace: list[float] = []

    def record(self, value: float) -> bool:
        """Append the objective of the newest iterate; return True when the rule says stop."""
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(
                f"the objective became {value} at iteration {len(self.trace)}: the fit broke down "
                "(usually a component collapsed onto a few points). Increase reg_covar, use fewer "
                "components, or start from other parameters."
            )
        self.trace.append(value)
        if len(self.trace) < 2 or self.tol == 0:
            return False
        previous = self.trace[-2]
        return abs(value - previous) <= self.tol * abs(value)

    @property
    def n_iter(self) -> int:
        """Iterations recorded so far (the trace also holds the initial value)."""
        return len(self.trace) - 1

    def result(self, params, converged: bool) -> EMResult:
        """Package the trace and the last parameters."""
        return EMResult(params=params, log_likelihood=np.array(self.trace), n_iter=self.n_iter,
                        converged=bool(converged))


def em(model, X, init, *, max_iter: int = 1000, tol: float = 1e-8,
       callback: Callable[[int, Any, float], None] | None = None) -> EMResult:
    """Fit ``model`` to ``X`` by the EM algorithm, starting from ``init``.

    Each iteration is one E-step and one M-step (equations ``em_algorithm-estep`` and
    ``em_algorithm-mstep`` of the chapter "The EM algorithm"). The log-likelihood of the new
    parameters comes out of the next E-step at no extra cost.

    Parameters
    ----------
    model : object with ``e_step(X, params) -> (stats, float)`` and ``m_step(stats) -> params``
        For example :class:`emlib.GaussianMixture`.
    X : array_like, shape (N, D)
        The observed data.
    init : parameters dataclass
        theta_0, e.g. from ``model.init_params(X, rng)``.
    max_iter : int
        At most this many E-step/M-step pairs.
    tol : float
        Stop when the relative change of the log-likelihood is at most ``tol``; 0 never stops early.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every M-step with the iteration number t = 1, 2, ..., the new parameters and
        their log-likelihood. A chapter can record anything it likes with it.

    Returns
    -------
    EMResult
        With ``log_likelihood`` of length ``n_iter + 1`` (the initial value first).
    """
    monitor = ConvergenceMonitor(max_iter, tol)
    X = model.check_data(X)
    params = model.check_params(init, X)
    stats, loglik = model.e_step(X, params)
    monitor.record(loglik)
    converged = False
    while monitor.n_iter < monitor.max_iter and not converged:
        params = model.m_step(stats)
        stats, loglik = model.e_step(X, params)
        converged = monitor.record(loglik)
        if callback is not None:
            callback(monitor.n_iter, params, loglik)
    return monitor.result(params, converged)
