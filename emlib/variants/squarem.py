"""SQUAREM: squared extrapolation of the EM map (Varadhan and Roland 2008), with a safeguard.

Book: chapter "Slow convergence and acceleration", equations ``slow_convergence-squarem`` and
``slow_convergence-steplength``. With the EM map M, one cycle from theta_0 computes

    theta_1 = M(theta_0),  theta_2 = M(theta_1),
    r = theta_1 - theta_0,  v = theta_2 - 2 theta_1 + theta_0,
    alpha = min(-||r|| / ||v||, -1)                                 (the SqS3 step length)
    theta' = theta_0 - 2 alpha r + alpha^2 v,

then one stabilizing EM step theta_new = M(theta'). With alpha = -1, theta' = theta_2: the
plain EM double step. The safeguard: if theta' is outside the parameter space or has a lower
log-likelihood than theta_0, the step length is moved halfway towards -1,
alpha <- (alpha - 1) / 2, and tried again; close to -1 it gives up and takes theta_2. Then
l(theta_new) >= l(theta_0) in every cycle (theorem ``slow_convergence-thm-monotone``).

SQUAREM uses only the EM map theta -> m_step(e_step(X, theta)[0]), so it runs on every model
of the interface; parameters are turned into vectors by :func:`emlib.params.flatten_params`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from ..em import MAX_ITER, TOL
from ._extrapolation import AcceleratedEMResult, run_extrapolation_cycles

#: Backtracking stops once the step length is this close to -1 (the candidate is then almost
#: theta_2, so the cycle takes theta_2 itself).
_ALPHA_TOLERANCE = 0.1


def squarem_step_length(r, v) -> float:
    """The SqS3 step length alpha = min(-||r|| / ||v||, -1) (equation slow_convergence-steplength).

    Parameters
    ----------
    r : array_like, shape (P,)
        theta_1 - theta_0.
    v : array_like, shape (P,)
        theta_2 - 2 theta_1 + theta_0.

    Returns
    -------
    float
        At most -1; exactly -1 (the plain EM double step) when v = 0.
    """
    norm_v = float(np.linalg.norm(v))
    if norm_v == 0.0:
        return -1.0
    return min(-float(np.linalg.norm(r)) / norm_v, -1.0)


def squarem_extrapolate(theta0, theta1, theta2, alpha: float) -> np.ndarray:
    """theta' = theta_0 - 2 alpha r + alpha^2 v (equation slow_convergence-squarem).

    Parameters
    ----------
    theta0, theta1, theta2 : array_like, shape (P,)
        A point and its two EM images, as vectors.
    alpha : float
        The step length; -1 returns theta_2.

    Returns
    -------
    ndarray, shape (P,)
    """
    theta0, theta1, theta2 = (np.asarray(a, dtype=float) for a in (theta0, theta1, theta2))
    r = theta1 - theta0
    v = theta2 - 2.0 * theta1 + theta0
    return theta0 - 2.0 * alpha * r + alpha ** 2 * v


def _squarem_candidates(theta0: np.ndarray, theta1: np.ndarray, theta2: np.ndarray) -> Iterator[np.ndarray]:
    """SqS3 extrapolations with the step length backtracked towards -1, most aggressive first."""
    alpha = squarem_step_length(theta1 - theta0, theta2 - 2.0 * theta1 + theta0)
    while alpha < -1.0 - _ALPHA_TOLERANCE:
        yield squarem_extrapolate(theta0, theta1, theta2, alpha)
        alpha = 0.5 * (alpha - 1.0)


def squarem(model, X, init, *, max_iter: int = MAX_ITER, tol: float = TOL,
            callback: Callable[[int, Any, float], None] | None = None,
            safeguard: bool = True) -> AcceleratedEMResult:
    """Fit ``model`` to ``X`` by SQUAREM-accelerated EM, starting from ``init``.

    Parameters
    ----------
    model : object with the model interface (``check_data``, ``check_params``, ``e_step``, ``m_step``)
        Any model: SQUAREM only evaluates its EM map.
    X : array_like
        The observed data, as the model accepts them.
    init : parameters dataclass
        theta_0.
    max_iter : int
        At most this many SQUAREM cycles (each costs three evaluations of the EM map, more when
        the safeguard backtracks).
    tol : float
        Stop when the relative change of the log-likelihood between cycles is at most ``tol``;
        0 never stops early.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every cycle t = 1, 2, ...
    safeguard : bool
        True (default): backtrack the step length towards -1 when the extrapolated point is
        outside the parameter space or lowers the log-likelihood, so the trace never decreases.
        False: the bare SqS3 scheme, which can lower the log-likelihood and stops with a
        ``ValueError`` if it extrapolates outside the parameter space (shown in the book).

    Returns
    -------
    AcceleratedEMResult
        An :class:`emlib.EMResult` (``n_iter`` counts cycles, ``log_likelihood[t]`` is the
        log-likelihood after t cycles) with ``em_evaluations`` and ``n_rejected``.
    """
    return run_extrapolation_cycles(model, X, init, _squarem_candidates, method="SQUAREM",
                                    max_iter=max_iter, tol=tol, callback=callback,
                                    safeguard=safeguard, stabilize=True)
