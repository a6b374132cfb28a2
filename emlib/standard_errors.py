"""Standard errors of a maximum-likelihood estimate found by EM, for any model of the interface.

Book: chapter "Slow convergence and acceleration", section "Standard errors from EM". The
asymptotic covariance of the estimate theta^ is the inverse of the observed information
I_o = -d^2 l / d theta^2 at theta^. EM never forms I_o, but it gives three ways to it:

- :func:`observed_information` -- minus the Hessian of ``model.log_likelihood``, by second
  differences (equation ``slow_convergence-hessian-fd``).
- :func:`louis_information` -- the missing-information principle of Orchard and Woodbury (1972),
  I_o = I_c - I_m, with the missing information computed as Louis (1982) does: the posterior
  covariance of the complete-data scores, summed over the data (``slow_convergence-louis``).
  :func:`complete_information` is I_c = -d^2 Q(theta | theta^) / d theta^2 at theta = theta^,
  :func:`missing_information` is I_m.
- :func:`sem_covariance` -- the supplemented EM idea of Meng and Rubin (1991): the rate matrix
  J of EM (:func:`emlib.em_map_jacobian`) and I_c give the covariance
  V = (I - J)^{-1} I_c^{-1} (``slow_convergence-sem``), since J = I_c^{-1} I_m.

Everything is computed in coordinates u = to_vector(theta) that the caller chooses (as for
:func:`emlib.em_map_jacobian`); by default the flattened parameters of :mod:`emlib.params`,
which suit models without constraints tying coordinates together. For mixture weights, which
sum to one, pass a chart that drops one weight. The complete-data pieces need the model's
``log_joint(X, params)`` and ``posterior(X, params)``, two arrays of the same shape with one
row per observation (or per group of observations) and one column per value of its latent
variable -- the layout of every model with a discrete latent variable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .params import flatten_params, unflatten_params
from .rate import em_map_jacobian

__all__ = ["LouisInformation", "complete_data_scores", "complete_information", "covariance_from_information",
           "louis_information", "missing_information", "observed_information", "sem_covariance",
           "standard_errors"]


@dataclass(frozen=True)
class LouisInformation:
    """The three informations of the missing-information principle, I_o = I_c - I_m.

    Attributes
    ----------
    observed : ndarray, shape (P, P)
        I_o = I_c - I_m.
    complete : ndarray, shape (P, P)
        I_c, the expected complete-data information.
    missing : ndarray, shape (P, P)
        I_m, the missing information (posterior covariance of the complete-data scores).
    """

    observed: np.ndarray
    complete: np.ndarray
    missing: np.ndarray


# ---------------------------------------------------------------------------- charts and differences
def _setup(model, X, params, to_vector, from_vector):
    """Checked data and parameters, the chart, and u = to_vector(params)."""
    if (to_vector is None) != (from_vector is None):
        raise ValueError("give both to_vector and from_vector (a chart and its inverse), or neither.")
    X = model.check_data(X)
    params = model.check_params(params, X)
    if to_vector is None:
        template = params
        to_vector = flatten_params

        def from_vector(u):
            return unflatten_params(template, u)

    u = np.asarray(to_vector(params), dtype=float)
    if u.ndim != 1 or u.size == 0:
        raise ValueError(f"to_vector must return a non-empty 1-D array; got shape {u.shape}.")
    return X, params, to_vector, from_vector, u


def _check_step(step: float) -> float:
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number; got {step!r}.")
    return float(step)


def _steps(u: np.ndarray, step: float) -> np.ndarray:
    """The difference step of each coordinate: ``step * max(1, |u_j|)``."""
    return step * np.maximum(1.0, np.abs(u))


def _hessian(f: Callable[[np.ndarray], float], u: np.ndarray, step: float) -> np.ndarray:
    """The Hessian of a scalar function by central second differences, symmetric, (P, P).

    H_ij = [f(u + h_i e_i + h_j e_j) - f(u + h_i e_i - h_j e_j)
            - f(u - h_i e_i + h_j e_j) + f(u - h_i e_i - h_j e_j)] / (4 h_i h_j)

    (for i = j the same formula, with steps 2 h_i). The error is O(h^2) from truncation plus
    O(eps |f| / h^2) from rounding, so the best relative step is near eps^(1/4), about 1e-4.
    """
    h = _steps(u, step)
    P = u.size
    H = np.empty((P, P))
    for i in range(P):
        for j in range(i, P):
            ei, ej = np.zeros(P), np.zeros(P)
            ei[i], ej[j] = h[i], h[j]
            H[i, j] = H[j, i] = (f(u + ei + ej) - f(u + ei - ej) - f(u - ei + ej) + f(u - ei - ej)) \
                / (4.0 * h[i] * h[j])
    return H


def _posterior_and_log_joint(model):
    """The model's ``posterior`` and ``log_joint``, or a clear error if it has none."""
    missing = [name for name in ("posterior", "log_joint") if not callable(getattr(model, name, None))]
    if missing:
        raise ValueError(f"{type(model).__name__} has no {' or '.join(missing)}; the complete-data "
                         "informations need log_joint(X, params) and posterior(X, params) arrays of one "
                         "shape (rows of data by values of the latent variable). Use "
                         "observed_information instead.")
    return model.posterior, model.log_joint


def _fixed_posterior(model, X, params) -> tuple[np.ndarray, Callable]:
    posterior, log_joint = _posterior_and_log_joint(model)
    q = np.asarray(posterior(X, params), dtype=float)
    shape = np.shape(log_joint(X, params))
    if q.ndim != 2 or q.shape != shape:
        raise ValueError(f"{type(model).__name__}.posterior has shape {q.shape} but log_joint has shape "
                         f"{shape}; the complete-data informations need two matching 2-D arrays.")
    return q, log_joint


# ---------------------------------------------------------------------------- the informations
def observed_information(model, X, params, *, to_vector: Callable | None = None,
                         from_vector: Callable | None = None, step: float = 1e-4) -> np.ndarray:
    """I_o = -d^2 l / du^2: minus the Hessian of ``model.log_likelihood`` in the chart's coordinates.

    By central second differences (equation ``slow_convergence-hessian-fd``); uses only
    ``model.log_likelihood``, so it applies to every model.

    Parameters
    ----------
    model : object with the model interface
    X : array_like
        The data, as the model accepts them.
    params : parameters dataclass
        The point, usually the maximum-likelihood estimate.
    to_vector, from_vector : callable, optional
        A chart ``to_vector(params) -> ndarray (P,)`` and its inverse; both or neither (default:
        :func:`emlib.params.flatten_params` and :func:`emlib.params.unflatten_params`).
    step : float
        Relative difference step; the step of coordinate j is ``step * max(1, |u_j|)``.

    Returns
    -------
    ndarray, shape (P, P)
        Symmetric.
    """
    step = _check_step(step)
    X, params, to_vector, from_vector, u = _setup(model, X, params, to_vector, from_vector)
    return -_hessian(lambda w: model.log_likelihood(X, from_vector(w)), u, step)


def complete_information(model, X, params, *, to_vector: Callable | None = None,
                         from_vector: Callable | None = None, step: float = 1e-4) -> np.ndarray:
    """I_c = -d^2 Q(theta | theta^) / du^2 at theta = theta^: the expected complete-data information.

    Q(theta | theta^) = sum over rows and latent values of q * log_joint(X, theta), with
    q = posterior(X, theta^) held fixed; its Hessian by central second differences.

    Parameters and returns as in :func:`observed_information`; the model needs ``posterior``
    and ``log_joint`` (see the module docstring).
    """
    step = _check_step(step)
    X, params, to_vector, from_vector, u = _setup(model, X, params, to_vector, from_vector)
    q, log_joint = _fixed_posterior(model, X, params)
    support = q > 0

    def Q(w):
        return float(np.sum(q[support] * np.asarray(log_joint(X, from_vector(w)))[support]))

    return -_hessian(Q, u, step)


def _scores(model, X, params, to_vector, from_vector, step):
    """(scores, q): complete-data scores, shape (rows, values, P), and the posterior (rows, values)."""
    step = _check_step(step)
    X, params, to_vector, from_vector, u = _setup(model, X, params, to_vector, from_vector)
    q, log_joint = _fixed_posterior(model, X, params)
    support = q > 0
    h = _steps(u, step)
    scores = np.zeros(q.shape + (u.size,))
    for j in range(u.size):
        e = np.zeros(u.size)
        e[j] = h[j]
        with np.errstate(invalid="ignore"):  # -inf - -inf off the support; masked below
            diff = np.asarray(log_joint(X, from_vector(u + e))) - np.asarray(log_joint(X, from_vector(u - e)))
        scores[..., j] = np.where(support, diff / (2.0 * h[j]), 0.0)
    return scores, q


def complete_data_scores(model, X, params, *, to_vector: Callable | None = None,
                         from_vector: Callable | None = None, step: float = 1e-5) -> np.ndarray:
    """The complete-data scores d log p(x_n, z_n = k | theta) / du, by central differences.

    Parameters as in :func:`observed_information`; ``step`` is a first-difference step (the
    error is O(h^2) plus O(eps / h), so the best relative step is near eps^(1/3), about 6e-6).

    Returns
    -------
    ndarray, shape (rows, values, P)
        Entry [n, k, j]: the derivative of ``log_joint[n, k]`` along coordinate j (0 where the
        posterior gives that value no probability).
    """
    return _scores(model, X, params, to_vector, from_vector, step)[0]


def missing_information(model, X, params, *, to_vector: Callable | None = None,
                        from_vector: Callable | None = None, step: float = 1e-5) -> np.ndarray:
    """I_m = sum_n Cov_{q_n}[s_nk]: the posterior covariance of the complete-data scores (Louis 1982).

    With s_nk the complete-data score of row n and latent value k
    (:func:`complete_data_scores`) and q_nk the posterior,

        I_m = sum_n ( sum_k q_nk s_nk s_nk^T - sbar_n sbar_n^T ),   sbar_n = sum_k q_nk s_nk,

    and sbar_n is the observed-data score of row n (Fisher's identity).

    Parameters and returns as in :func:`observed_information`; the model needs ``posterior``
    and ``log_joint``. ``step`` is the first-difference step of :func:`complete_data_scores`.
    """
    s, q = _scores(model, X, params, to_vector, from_vector, step)
    mean = np.einsum("nk,nkp->np", q, s)
    missing = np.einsum("nk,nkp,nkq->pq", q, s, s) - mean.T @ mean
    return 0.5 * (missing + missing.T)


def louis_information(model, X, params, *, to_vector: Callable | None = None,
                      from_vector: Callable | None = None, step: float = 1e-4,
                      score_step: float = 1e-5) -> LouisInformation:
    """I_o = I_c - I_m, the missing-information principle, with Louis's (1982) I_m.

    Parameters
    ----------
    model, X, params, to_vector, from_vector
        As for :func:`observed_information`; the model needs ``posterior`` and ``log_joint``.
    step : float
        The second-difference step of :func:`complete_information`.
    score_step : float
        The first-difference step of :func:`missing_information`.

    Returns
    -------
    LouisInformation
    """
    complete = complete_information(model, X, params, to_vector=to_vector, from_vector=from_vector, step=step)
    missing = missing_information(model, X, params, to_vector=to_vector, from_vector=from_vector,
                                  step=score_step)
    return LouisInformation(observed=complete - missing, complete=complete, missing=missing)


# ---------------------------------------------------------------------------- covariances
def covariance_from_information(information) -> np.ndarray:
    """The inverse of a positive definite information matrix, by its Cholesky factor; (P, P).

    Raises
    ------
    ValueError
        If the matrix is not symmetric positive definite: the point is not a strict local
        maximum (or a parameter is not identified), and no standard error exists.
    """
    information = np.asarray(information, dtype=float)
    if information.ndim != 2 or information.shape[0] != information.shape[1]:
        raise ValueError(f"the information must be a square matrix; got shape {information.shape}.")
    if not np.all(np.isfinite(information)):
        raise ValueError("the information contains NaN or infinite values.")
    scale = max(float(np.abs(information).max()), 1e-300)
    if not np.allclose(information, information.T, rtol=1e-6, atol=1e-9 * scale):
        raise ValueError("the information matrix is not symmetric; a finite-difference step may be too "
                         "small or too large.")
    try:
        factor = cho_factor(0.5 * (information + information.T), lower=True)
    except np.linalg.LinAlgError:
        raise ValueError("the information matrix is not positive definite: the point is not a strict "
                         "local maximum of the likelihood, or a parameter is not identified, so it has "
                         "no standard errors.") from None
    return cho_solve(factor, np.eye(information.shape[0]))


def standard_errors(covariance) -> np.ndarray:
    """The square roots of the diagonal of a covariance matrix; shape (P,).

    Raises
    ------
    ValueError
        If a variance is negative or not finite.
    """
    covariance = np.asarray(covariance, dtype=float)
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"the covariance must be a square matrix; got shape {covariance.shape}.")
    variances = np.diag(covariance)
    if not np.all(np.isfinite(variances)) or np.any(variances < 0):
        raise ValueError(f"the variances {variances.tolist()} are not all finite and non-negative.")
    return np.sqrt(variances)


def sem_covariance(model, X, params, *, to_vector: Callable | None = None,
                   from_vector: Callable | None = None, complete=None, jacobian=None,
                   step: float = 1e-6) -> np.ndarray:
    """The covariance of theta^ from the rate of EM: V = (I - J)^{-1} I_c^{-1}.

    J is the Jacobian of the EM map at theta^ (:func:`emlib.em_map_jacobian`, central
    differences) and I_c the complete-data information. Since J = I_c^{-1} I_m (Dempster,
    Laird and Rubin 1977), I - J = I_c^{-1} I_o and V = I_o^{-1} (equation
    ``slow_convergence-sem``). Meng and Rubin (1991) write the same matrix as
    I_c^{-1} (I - DM)^{-1} with their DM = J^T (they differentiate row vectors), and obtain DM
    by forward-difference ratios along the EM sequence instead of central differences at
    theta^. V is symmetric in exact arithmetic; its asymmetry measures the error of J.

    Parameters
    ----------
    model, X, params, to_vector, from_vector
        As for :func:`observed_information`; ``params`` must be a fixed point of EM.
    complete : array_like, shape (P, P), optional
        I_c in the same coordinates, if known in closed form; by default
        :func:`complete_information`.
    jacobian : array_like, shape (P, P), optional
        J, if already computed; by default ``em_map_jacobian(..., step=step)``.
    step : float
        The relative step of the Jacobian's central differences.

    Returns
    -------
    ndarray, shape (P, P)
    """
    step = _check_step(step)
    X, params, to_vector, from_vector, u = _setup(model, X, params, to_vector, from_vector)
    P = u.size
    if jacobian is None:
        jacobian = em_map_jacobian(model, X, params, to_vector=to_vector, from_vector=from_vector, step=step)
    if complete is None:
        complete = complete_information(model, X, params, to_vector=to_vector, from_vector=from_vector)
    jacobian, complete = np.asarray(jacobian, dtype=float), np.asarray(complete, dtype=float)
    for name, matrix in (("jacobian", jacobian), ("complete", complete)):
        if matrix.shape != (P, P):
            raise ValueError(f"{name} must have shape ({P}, {P}) in the chart's coordinates; got {matrix.shape}.")
    try:
        return np.linalg.solve(np.eye(P) - jacobian, covariance_from_information(complete))
    except np.linalg.LinAlgError:
        raise ValueError("I - J is singular: the EM map has an eigenvalue 1 at this point (a direction "
                         "with no information in the data), so there are no standard errors.") from None
