"""The EM map and its Jacobian: what sets the speed of EM near a maximum.

Book: chapter "Slow convergence and acceleration". EM iterates theta_{t+1} = M(theta_t) with
the map M(theta) = m_step(e_step(X, theta)). Near a fixed point theta* the error obeys
theta_{t+1} - theta* ~ J (theta_t - theta*) (equation ``slow_convergence-linear``), J the Jacobian of M at theta*, so EM converges
linearly with rate the spectral radius of J (theorem ``slow_convergence-thm-rate``).
:func:`em_map_jacobian` computes J by central finite differences of M, in coordinates the
caller chooses (for a mixture, coordinates in which the weights automatically sum to one).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ._validation import check_callable, check_number
from .interface import check_model
from .params import flatten_params, unflatten_params

_EM_MAP_METHODS = ("check_data", "check_params", "e_step", "m_step")


def em_map(model, X, params):
    """One EM step M(theta) = m_step(e_step(X, theta)): the parameters after one iteration."""
    check_model(model, _EM_MAP_METHODS, driver="em_map")
    X = model.check_data(X)
    params = model.check_params(params, X)
    return model.m_step(model.e_step(X, params)[0])


def em_map_jacobian(model, X, params, *, to_vector: Callable | None = None,
                    from_vector: Callable | None = None, step: float = 1e-6) -> np.ndarray:
    """The Jacobian of the EM map at ``params``, by central finite differences.

    In coordinates u = to_vector(theta), the map is g(u) = to_vector(M(from_vector(u))) and

        J[i, j] = (g_i(u + h_j e_j) - g_i(u - h_j e_j)) / (2 h_j),   h_j = step * max(1, |u_j|).

    The error is of order h^2 (truncation) plus eps / h (rounding); ``step=1e-6`` balances them.
    This is how Meng and Rubin's (1991) SEM algorithm obtains the rate matrix of EM.

    Parameters
    ----------
    model : object with the model interface
    X : array_like
        The data.
    params : parameters dataclass
        The point (usually the maximum-likelihood estimate theta*).
    to_vector, from_vector : callable, optional
        A chart: ``to_vector(params) -> ndarray (P,)`` and its inverse. Both or neither; by
        default :func:`emlib.params.flatten_params` and :func:`emlib.params.unflatten_params`,
        which suit models without constraints tying coordinates together. For mixture weights,
        which must sum to one, pass a chart that drops one weight (see the book).
    step : float
        Relative finite-difference step, positive.

    Returns
    -------
    ndarray, shape (P, P)
        ``J[i, j]`` = d g_i / d u_j.
    """
    check_model(model, _EM_MAP_METHODS, driver="em_map_jacobian")
    if (to_vector is None) != (from_vector is None):
        raise ValueError("give both to_vector and from_vector (a chart and its inverse), or neither.")
    check_callable(to_vector, "to_vector")
    check_callable(from_vector, "from_vector")
    step = check_number(step, "step", above=0.0)
    if to_vector is None:
        to_vector = flatten_params

        def from_vector(u):
            return unflatten_params(params, u)

    X = model.check_data(X)
    params = model.check_params(params, X)
    u = np.asarray(to_vector(params), dtype=float)
    if u.ndim != 1:
        raise ValueError(f"to_vector must return a 1-D array; got shape {u.shape}.")

    def g(w):
        return np.asarray(to_vector(em_map(model, X, from_vector(w))), dtype=float)

    jac = np.empty((u.size, u.size))
    for j in range(u.size):
        h = step * max(1.0, abs(u[j]))
        e = np.zeros_like(u)
        e[j] = h
        jac[:, j] = (g(u + e) - g(u - e)) / (2.0 * h)
    return jac
