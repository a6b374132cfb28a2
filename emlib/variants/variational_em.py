"""Variational EM: EM with q(z) restricted to a factorized family, and theta kept a point.

Book: chapter "Mean-field variational inference", section "Variational EM". EM is coordinate
ascent on the ELBO F(q, theta) = E_q[log p(x, z | theta)] + H(q) (Neal and Hinton 1998), and its
E-step sets q to the exact posterior, where F = log p(x | theta). When that posterior is too
costly (its table grows like 2^M for M coupled binary latent variables), variational EM
maximizes F over a tractable family instead, here the mean-field family
q(z_n) = prod_m q(z_nm) (Ghahramani 1995; Jordan et al. 1999)::

    E-step   q_{t+1} = argmax_{q in family} F(q, theta_t)       # coordinate sweeps, warm started
    M-step   theta_{t+1} = argmax_theta F(q_{t+1}, theta)       # the model's usual M-step

Both steps increase F, so the trace F(q_t, theta_t) never decreases, which the driver checks.
Unlike EM, F stays below log p(x | theta) by KL(q || p(z | x, theta)), and the fixed points
maximize F, not the likelihood. Full variational Bayes (:func:`emlib.cavi`) goes one step
further and makes theta a distribution as well.

The model supplies, besides ``check_data``, ``check_params`` and ``m_step``:

    q = model.mean_field_init(X, params)           # a starting q
    q = model.mean_field_sweep(X, params, q)       # one sweep of coordinate updates, F never drops
    stats = model.mean_field_stats(X, q)           # E_q[t(x, z)], additive over points
    F = model.mean_field_elbo(X, params, q)        # F(q, theta)

(:class:`emlib.BinaryFactors` is such a model.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._validation import check_callable, check_integer, check_number
from ..em import ConvergenceMonitor

_PIECES = ("mean_field_init", "mean_field_sweep", "mean_field_stats", "mean_field_elbo", "m_step")
_ROUNDING = 1e-9  # relative: a drop of F smaller than this is rounding, not a decrease


@dataclass(frozen=True)
class VariationalEMResult:
    """What :func:`variational_em` returns.

    Attributes
    ----------
    params : parameters dataclass
        theta_T, the last iterate (a point, as in EM).
    elbo : ndarray, shape (n_iter + 1,)
        ``elbo[t]`` = F(q_t, theta_t), the evidence lower bound after the E-step at theta_t
        (t = 0 is the start). Never decreasing. It is a lower bound on the log-likelihood
        log p(X | theta_t), not the log-likelihood itself: the gap is KL(q_t || p(z | x, theta_t)).
    n_iter : int
        The number of M-steps taken.
    converged : bool
        True only when the relative change of the ELBO fell to ``tol`` before ``max_iter``.
    q : ndarray
        The variational parameters of the last E-step, e.g. (N, M) probabilities lambda_nm.
    n_sweeps : ndarray of int, shape (n_iter + 1,)
        Coordinate sweeps taken by each E-step.
    """

    params: Any
    elbo: np.ndarray
    n_iter: int
    converged: bool
    q: np.ndarray
    n_sweeps: np.ndarray

    @property
    def objective(self) -> np.ndarray:
        """The trace under its own name, :attr:`elbo` (see :class:`emlib.interface.FitResult`)."""
        return self.elbo


def _check_increase(previous: float, value: float, what: str) -> None:
    if value < previous - _ROUNDING * max(abs(previous), 1.0):
        raise RuntimeError(f"the ELBO decreased from {previous!r} to {value!r} in {what}; both steps of "
                           "variational EM maximize it, so this is a bug in the model's pieces.")


def variational_e_step(model, X, params, q, *, max_sweeps: int = 100, sweep_tol: float = 1e-10):
    """Maximize F(q, theta) over the model's factorized family by coordinate sweeps from ``q``.

    Sweeps until the relative change of F is at most ``sweep_tol`` or ``max_sweeps`` sweeps
    were made. Returns ``(q, F, n_sweeps)``.
    """
    value = model.mean_field_elbo(X, params, q)
    for sweep in range(1, max_sweeps + 1):
        q = model.mean_field_sweep(X, params, q)
        new = model.mean_field_elbo(X, params, q)
        _check_increase(value, new, "a coordinate sweep of the E-step")
        done = abs(new - value) <= sweep_tol * abs(new)
        value = new
        if done:
            return q, value, sweep
    return q, value, max_sweeps


def variational_em(model, X, init, *, max_iter: int = 1000, tol: float = 1e-8, max_sweeps: int = 100,
                   sweep_tol: float = 1e-10,
                   callback: Callable[[int, Any, float], None] | None = None) -> VariationalEMResult:
    """Fit ``model`` to ``X`` by variational EM (mean-field E-step, exact M-step), from ``init``.

    Parameters
    ----------
    model : object with the mean-field pieces listed in this module's docstring
        For example :class:`emlib.BinaryFactors`.
    X : array_like, shape (N, D)
    init : parameters dataclass
        theta_0.
    max_iter : int
        At most this many E-step/M-step pairs; 0 runs the first E-step only.
    tol : float
        Stop when the relative change of the ELBO is at most ``tol``; 0 never stops early.
    max_sweeps : int
        At most this many coordinate sweeps per E-step (each warm started from the previous q).
    sweep_tol : float
        An E-step stops when one sweep changes F by at most ``sweep_tol`` relative.
    callback : callable ``(t, params_t, elbo_t)``, optional
        Called after every iteration t = 1, 2, ... with the new parameters and their ELBO.

    Returns
    -------
    VariationalEMResult
        Its objective is the ELBO (``result.elbo``), never the log-likelihood.

    Raises
    ------
    ValueError
        For bad data, parameters or settings, or a model without the mean-field pieces.
    RuntimeError
        If the ELBO ever decreases (a bug in the model's pieces).
    """
    missing = [name for name in _PIECES if not callable(getattr(model, name, None))]
    if missing:
        raise ValueError(f"{type(model).__name__} does not supply the mean-field pieces {missing} that "
                         "variational EM needs; for a model with a tractable posterior use emlib.em.")
    max_sweeps = check_integer(max_sweeps, "max_sweeps", minimum=1)
    sweep_tol = check_number(sweep_tol, "sweep_tol", minimum=0.0)
    check_callable(callback, "callback")
    monitor = ConvergenceMonitor(max_iter, tol)
    X = model.check_data(X)
    params = model.check_params(init, X)
    q, value, sweeps = variational_e_step(model, X, params, model.mean_field_init(X, params),
                                          max_sweeps=max_sweeps, sweep_tol=sweep_tol)
    monitor.record(value)
    n_sweeps = [sweeps]
    converged = False
    while monitor.n_iter < monitor.max_iter and not converged:
        params = model.m_step(model.mean_field_stats(X, q))
        _check_increase(monitor.trace[-1], model.mean_field_elbo(X, params, q), "the M-step")
        q, value, sweeps = variational_e_step(model, X, params, q, max_sweeps=max_sweeps, sweep_tol=sweep_tol)
        n_sweeps.append(sweeps)
        converged = monitor.record(value)
        if callback is not None:
            callback(monitor.n_iter, params, value)
    return VariationalEMResult(params=params, elbo=np.array(monitor.trace), n_iter=monitor.n_iter,
                               converged=converged, q=q, n_sweeps=np.array(n_sweeps))
