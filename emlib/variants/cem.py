"""Classification EM (CEM): EM with the posterior q replaced by its arg-max.

Book: chapter "Classification EM and k-means". Between the E-step and the M-step, CEM (Celeux and
Govaert 1992) inserts a classification step: each point is given to its most probable component,

    z_n = argmax_k log p(x_n, z_n = k | theta_t),                      (classification_em-c-step)

and the M-step sees the one-hot q(z_n) = 1{z_n = k}. CEM is coordinate ascent on the
classification log-likelihood log p(x, z | theta) over the pair (z, theta), whose profile over z,

    L_C(theta) = max_z log p(x, z | theta) = sum_n max_k log p(x_n, z_n = k | theta),

is the objective the driver records (not log p(x | theta), which it never exceeds). For a model
whose latent variable is one label per point (q of shape (N, K)), nothing else changes: the
same ``expected_stats`` and ``m_step`` serve EM and CEM.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..em import ConvergenceMonitor, EMResult


@dataclass(frozen=True)
class CEMResult(EMResult):
    """What :func:`cem` returns: an :class:`emlib.EMResult` whose trace is L_C, plus the labels.

    Attributes
    ----------
    log_likelihood : ndarray, shape (n_iter + 1,)
        The classification log-likelihood L_C(theta_t) = max_z log p(X, z | theta_t) of every
        iterate (not the log-likelihood log p(X | theta_t)).
    labels : ndarray of int, shape (N,)
        The hard assignments z_n of the last C-step (made at the returned parameters).
    """

    labels: np.ndarray


def _check_labels(labels, shape: tuple[int, int]) -> np.ndarray:
    N, K = shape
    arr = np.asarray(labels)
    if arr.shape != (N,) or not np.issubdtype(arr.dtype, np.integer) or arr.min(initial=0) < 0 \
            or arr.max(initial=0) >= K:
        raise ValueError(f"previous must hold N = {N} integer labels in 0, ..., {K - 1}; "
                         f"got shape {arr.shape} and dtype {arr.dtype}.")
    return arr


def _c_step(log_joint: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """The arg-max of each row; ties keep the previous label (so a changed label is a strict gain)."""
    labels = log_joint.argmax(axis=1)
    if previous is not None:
        rows = np.arange(log_joint.shape[0])
        keep = log_joint[rows, previous] >= log_joint[rows, labels]
        labels = np.where(keep, previous, labels)
    return labels


def classify(model, X, params, previous=None) -> np.ndarray:
    """The C-step: z_n = argmax_k log p(x_n, z_n = k | theta) for every point.

    Parameters
    ----------
    model : object with ``log_joint(X, params) -> (N, K)``
    X : array_like, shape (N, D)
    params : the model's parameters dataclass
    previous : array_like of int, shape (N,), optional
        Labels to keep where they tie with the maximum (as :func:`cem` does); without it, ties go
        to the lowest index.

    Returns
    -------
    ndarray of int, shape (N,)
    """
    log_joint = model.log_joint(X, params)
    if previous is not None:
        previous = _check_labels(previous, log_joint.shape)
    return _c_step(log_joint, previous)


def classification_log_likelihood(model, X, params) -> float:
    """L_C(theta) = max_z log p(X, z | theta) = sum_n max_k log p(x_n, z_n = k | theta).

    It is the ELBO F(q, theta) at the one-hot q of the C-step (whose entropy is zero), so
    L_C(theta) <= log p(X | theta), with gap KL(q || p(z | x, theta)) = -sum_n log r_{n z_n}.
    """
    return float(model.log_joint(X, params).max(axis=1).sum())


def cem(model, X, init, *, max_iter: int = 1000, tol: float = 0.0,
        callback: Callable[[int, Any, float], None] | None = None) -> CEMResult:
    """Fit ``model`` to ``X`` by classification EM (E-step, C-step, M-step).

    Each iteration takes the one-hot assignments z_t of the current parameters theta_t, computes
    the statistics ``model.expected_stats(X, onehot(z_t))``, the M-step theta_{t+1}, and the new
    assignments z_{t+1}. It stops with ``converged=True`` when z_{t+1} = z_t: then theta_{t+1} is a
    fixed point (one more iteration changes nothing), which happens after finitely many
    iterations (chapter theorem ``classification_em-thm-finite``). Ties in the arg-max keep the
    current label.

    Parameters
    ----------
    model : object with the model interface and q of shape (N, K)
        E.g. :class:`emlib.GaussianMixture`. With ``covariance_type="diag"`` and
        ``fixed={"weights": 1/K, "covariances": sigma^2}`` (all equal) the assignments and means
        are exactly those of Lloyd's k-means algorithm.
    X : array_like, shape (N, D)
    init : parameters dataclass
        theta_0; its assignments are the first C-step.
    max_iter : int
        At most this many iterations.
    tol : float
        Also stop (``converged=True``) when the relative change of L_C is at most ``tol``. The
        default 0 stops only at a fixed point of the assignments.
    callback : callable ``(t, params_t, objective_t)``, optional
        Called after every M-step with theta_t and L_C(theta_t).

    Returns
    -------
    CEMResult
        An :class:`emlib.EMResult` whose ``log_likelihood`` holds the classification
        log-likelihood L_C(theta_t), t = 0, ..., n_iter (non-decreasing when the M-step is exact,
        e.g. ``reg_covar=0``), and whose ``labels`` are the final assignments.

    Raises
    ------
    ValueError
        For bad data or parameters, or when a component receives no point (the M-step cannot
        place an empty cluster; start elsewhere or use fewer components).
    """
    monitor = ConvergenceMonitor(max_iter, tol)
    X = model.check_data(X)
    params = model.check_params(init, X)
    log_joint = model.log_joint(X, params)
    rows, eye = np.arange(log_joint.shape[0]), np.eye(log_joint.shape[1])
    labels = _c_step(log_joint, None)
    monitor.record(log_joint[rows, labels].sum())
    converged = False
    while monitor.n_iter < monitor.max_iter and not converged:
        params = model.m_step(model.expected_stats(X, eye[labels]))
        log_joint = model.log_joint(X, params)
        new_labels = _c_step(log_joint, labels)
        objective = float(log_joint[rows, new_labels].sum())
        stop = monitor.record(objective)
        converged = stop or bool(np.array_equal(new_labels, labels))
        labels = new_labels
        if callback is not None:
            callback(monitor.n_iter, params, objective)
    result = monitor.result(params, converged)
    return CEMResult(params=result.params, log_likelihood=result.log_likelihood, n_iter=result.n_iter,
                     converged=result.converged, labels=labels)
