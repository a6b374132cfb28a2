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

from ..em import MAX_ITER, ConvergenceMonitor, check_driver_arguments
from ..interface import check_discrete_latent
from ..models._chunks import row_slices

#: Rows per chunk when the model declares its rows independent (``independent_rows``); None
#: sizes chunks so that a chunk's (n, K) log-joint, one-hot and work arrays stay near
#: ``emlib.models._chunks.CHUNK_BYTES``.
CHUNK_ROWS = None


@dataclass(frozen=True)
class CEMResult:
    """What :func:`cem` returns. Not an :class:`emlib.EMResult`: its trace is another objective.

    ``params`` and ``n_iter`` mean what they mean for :class:`emlib.EMResult`; ``converged`` is
    True when the assignments stopped changing (or the ``tol`` rule was met). The trace,
    ``classification_log_likelihood`` (n_iter + 1,), holds L_C(theta_t) = max_z log p(X, z | theta_t)
    of every iterate, which never exceeds log p(X | theta_t); ``labels`` (N,) are the hard
    assignments z_n of the last C-step, made at the returned parameters.
    """

    params: Any
    classification_log_likelihood: np.ndarray
    n_iter: int
    converged: bool
    labels: np.ndarray

    @property
    def objective(self) -> np.ndarray:
        """The trace of the objective: ``classification_log_likelihood``."""
        return self.classification_log_likelihood

    @property
    def log_likelihood(self) -> np.ndarray:
        """Deprecated name of :attr:`classification_log_likelihood` (the trace is L_C, not log p(X | theta))."""
        return self.classification_log_likelihood


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
        kept = np.take_along_axis(log_joint, previous[:, None], axis=1)[:, 0]
        best = np.take_along_axis(log_joint, labels[:, None], axis=1)[:, 0]
        labels = np.where(kept >= best, previous, labels)
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
    """L_C(theta) = max_z log p(X, z | theta) = sum_n max_k log p(x_n, z_n = k | theta) (equation ``classification_em-lc``).

    It is the ELBO F(q, theta) at the one-hot q of the C-step (whose entropy is zero), so
    L_C(theta) <= log p(X | theta), with gap KL(q || p(z | x, theta)) = -sum_n log r_{n z_n}.
    """
    return float(model.log_joint(X, params).max(axis=1).sum())


class _Classifier:
    """The E- and C-steps of CEM and the statistics of the one-hot q, in row chunks when the model
    declares its rows independent (a mixture), else over the whole data (e.g. the genetic linkage
    model, whose X is one vector of counts)."""

    def __init__(self, model, X):
        self.model, self.X = model, X
        independent = bool(getattr(model, "independent_rows", False)) and np.ndim(X) == 2
        n_values = getattr(model, "n_components", 1)
        self.chunks = (row_slices(X.shape[0], 8 * (4 * n_values + X.shape[1]), CHUNK_ROWS) if independent
                       else [slice(None)])
        self.n_values = None  # K, the number of values of each z_n, known after the first C-step

    def classify(self, params, previous):
        """New labels (ties keep ``previous``) and L_C at ``params``."""
        labels, objective = [], 0.0
        for c in self.chunks:
            log_joint = self.model.log_joint(self.X[c], params)
            self.n_values = log_joint.shape[1]
            chunk_labels = _c_step(log_joint, None if previous is None else previous[c])
            objective += float(np.take_along_axis(log_joint, chunk_labels[:, None], axis=1).sum())
            labels.append(chunk_labels)
        return (labels[0] if len(labels) == 1 else np.concatenate(labels)), objective

    def stats(self, labels):
        """The statistics of the one-hot q of ``labels``, chunk by chunk."""
        total = None
        for c in self.chunks:
            chunk = labels[c]
            onehot = np.zeros((chunk.shape[0], self.n_values))
            onehot[np.arange(chunk.shape[0]), chunk] = 1.0
            part = self.model.expected_stats(self.X[c], onehot)
            total = part if total is None else total + part
        return total


def cem(model, X, init, *, max_iter: int = MAX_ITER, tol: float = 0.0,
        callback: Callable[[int, Any, float], None] | None = None) -> CEMResult:
    """Fit ``model`` to ``X`` by classification EM (E-step, C-step, M-step; algorithm ``classification_em-alg-cem``).

    Each iteration takes the one-hot assignments z_t of the current parameters theta_t, computes
    the statistics ``model.expected_stats(X, onehot(z_t))``, the M-step theta_{t+1}, and the new
    assignments z_{t+1}. It stops with ``converged=True`` when z_{t+1} = z_t: then theta_{t+1} is a
    fixed point (one more iteration changes nothing), which happens after finitely many
    iterations (chapter theorem ``classification_em-thm-finite``). Ties in the arg-max keep the
    current label. For a model with ``independent_rows`` (the mixtures) the data are processed
    in chunks of rows, so memory stays a small multiple of one chunk's (N_chunk, K) arrays.

    Parameters
    ----------
    model : object with the model interface and a discrete latent variable (q of shape (N, K))
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
        default 0 differs from :func:`emlib.em`'s on purpose: CEM stops at a fixed point of the
        assignments, which it reaches in finitely many iterations.
    callback : callable ``(t, params_t, objective_t)``, optional
        Called after every M-step with theta_t and L_C(theta_t).

    Returns
    -------
    CEMResult
        With ``classification_log_likelihood`` L_C(theta_t), t = 0, ..., n_iter (non-decreasing
        when the M-step is exact, e.g. ``reg_covar=0``), and the final ``labels``.

    Raises
    ------
    ValueError
        For bad arguments, data or parameters, for a model with continuous latent variables, or
        when a component receives no point (the M-step cannot place an empty cluster; start
        elsewhere or use fewer components).
    """
    check_driver_arguments(model, callback, driver="cem",
                           methods=("check_data", "check_params", "log_joint", "expected_stats", "m_step"))
    check_discrete_latent(model, driver="cem")
    monitor = ConvergenceMonitor(max_iter, tol, objective="classification log-likelihood")
    X = model.check_data(X)
    params = model.check_params(init, X)
    classifier = _Classifier(model, X)
    with monitor:
        labels, objective = classifier.classify(params, None)
        monitor.record(objective)
        while not monitor.done:
            params = model.m_step(classifier.stats(labels))
            new_labels, objective = classifier.classify(params, labels)
            monitor.record(objective)
            if np.array_equal(new_labels, labels):
                monitor.mark_converged()
            labels = new_labels
            if callback is not None:
                callback(monitor.n_iter, params, objective)
    result = monitor.result(params)
    return CEMResult(params=result.params, classification_log_likelihood=result.log_likelihood,
                     n_iter=result.n_iter, converged=result.converged, labels=labels)
