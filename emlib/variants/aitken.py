"""Aitken's delta-squared extrapolation (Aitken 1926), alone and as an accelerator of EM.

Book: chapter "Slow convergence and acceleration", equations ``slow_convergence-aitken`` and
``slow_convergence-aitken-em``. A sequence that converges linearly, x_t = x* + c rho^t,
satisfies (x_2 - x_1) / (x_1 - x_0) = rho, and solving for x* gives

    x* = x_2 - (x_2 - x_1)^2 / (x_2 - 2 x_1 + x_0) = x_2 + rho / (1 - rho) (x_2 - x_1),

exactly for such a sequence and approximately for one that is linear only asymptotically.
:func:`aitken_limit` applies the first form to numbers (or elementwise). :func:`aitken_em`
applies the second form to the EM iterates as vectors, with one rate rho estimated from the
lengths of two successive steps, and restarts from the extrapolated point every two EM steps
(Steffensen's scheme), with the same safeguard as SQUAREM. One common rate keeps the jump an
affine combination of theta_1 and theta_2, so mixture weights still sum to one; coordinate-wise
rates would not.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from ..em import MAX_ITER, TOL
from ._extrapolation import AcceleratedEMResult, run_extrapolation_cycles


def aitken_limit(x0, x1, x2):
    """Aitken's delta-squared estimate of the limit from three consecutive terms, elementwise.

    Parameters
    ----------
    x0, x1, x2 : float or array_like, all of the same shape
        Three consecutive terms of a sequence (of numbers or of vectors, coordinate by coordinate).

    Returns
    -------
    float or ndarray, shape of the inputs
        x_2 - (x_2 - x_1)^2 / (x_2 - 2 x_1 + x_0). Where the second difference is 0 (a constant
        or arithmetic sequence, with no limit to estimate) the result is x_2.
    """
    x0, x1, x2 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x0, x1, x2)))
    d1 = x2 - x1
    d2 = x2 - 2.0 * x1 + x0
    step = np.divide(d1 * d1, d2, out=np.zeros_like(d1), where=d2 != 0)
    out = x2 - step
    return float(out) if out.ndim == 0 else out


def aitken_step(theta0, theta1, theta2) -> np.ndarray | None:
    """The Aitken jump for vectors: theta_2 + rho / (1 - rho) (theta_2 - theta_1).

    rho = ||theta_2 - theta_1|| / ||theta_1 - theta_0|| estimates the linear rate (equation
    slow_convergence-aitken-em). Exact when theta_t = theta* + rho^t u for a fixed vector u.

    Parameters
    ----------
    theta0, theta1, theta2 : array_like, shape (P,)
        Three consecutive iterates.

    Returns
    -------
    ndarray, shape (P,), or None
        None when the steps do not shrink (rho >= 1, or theta_1 = theta_0): there is no limit
        to extrapolate to.
    """
    theta0, theta1, theta2 = (np.asarray(a, dtype=float) for a in (theta0, theta1, theta2))
    first = float(np.linalg.norm(theta1 - theta0))
    second = float(np.linalg.norm(theta2 - theta1))
    if first == 0.0 or second >= first:
        return None
    rho = second / first
    return theta2 + rho / (1.0 - rho) * (theta2 - theta1)


def _aitken_candidates(theta0: np.ndarray, theta1: np.ndarray, theta2: np.ndarray) -> Iterator[np.ndarray]:
    jump = aitken_step(theta0, theta1, theta2)
    if jump is not None:
        yield jump


def aitken_em(model, X, init, *, max_iter: int = MAX_ITER, tol: float = TOL,
              callback: Callable[[int, Any, float], None] | None = None,
              safeguard: bool = True) -> AcceleratedEMResult:
    """EM accelerated by Aitken's delta-squared method, with one common rate for all coordinates.

    Each cycle takes two EM steps from theta_0 and jumps to the Aitken limit
    :func:`aitken_step` of (theta_0, theta_1, theta_2) (equation ``slow_convergence-aitken-em``):
    one rate rho estimated from the lengths of the two steps, applied to the whole vector (not
    coordinate by coordinate, which would break constraints such as weights summing to one). With the safeguard, a jump that leaves
    the parameter space or lowers the log-likelihood below l(theta_0) is replaced by theta_2.

    Parameters
    ----------
    model, X, init, max_iter, tol, callback
        As for :func:`emlib.squarem`; ``max_iter`` counts cycles (two or three evaluations of the
        EM map each).
    safeguard : bool
        As for :func:`emlib.squarem`.

    Returns
    -------
    AcceleratedEMResult
    """
    return run_extrapolation_cycles(model, X, init, _aitken_candidates, method="Aitken's method",
                                    max_iter=max_iter, tol=tol, callback=callback,
                                    safeguard=safeguard, stabilize=False)
