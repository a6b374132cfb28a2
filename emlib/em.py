"""The EM driver: the algorithm of the book's chapter "The EM algorithm", on one screen.

The driver knows nothing about any particular model. It calls the pieces that every model
supplies (the contract is :class:`emlib.interface.Model`)::

    stats, loglik = model.e_step(X, params)   # E-step: expected sufficient statistics E_q[t(x, z)]
    params = model.m_step(stats)               # M-step: argmax_theta Q(theta | theta_t)

and records the log-likelihood ``log p(X | theta_t)`` of every iterate. The
:class:`ConvergenceMonitor` carries the loop state that every driver of :mod:`emlib` shares.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._validation import check_callable, check_integer, check_number
from .interface import check_model
from .models._fit_warnings import OneWarningPerFit

#: Defaults shared by the drivers unless a driver documents why it differs.
MAX_ITER = 1000
TOL = 1e-8


@dataclass(frozen=True)
class EMResult:
    """What EM and its likelihood-based variants return.

    Attributes
    ----------
    params : parameters dataclass
        The last iterate theta_T.
    log_likelihood : ndarray, shape (n_iter + 1,)
        ``log_likelihood[t]`` is log p(X | theta_t), the total over the data, starting with the
        initial parameters (t = 0). Drivers whose trace is another objective return another
        type that names it (e.g. :class:`emlib.variants.classification.CEMResult`).
    n_iter : int
        The number of iterations (M-steps) taken.
    converged : bool
        True only when the stopping rule was met; False when ``max_iter`` was reached first.
    """

    params: Any
    log_likelihood: np.ndarray
    n_iter: int
    converged: bool

    @property
    def objective(self) -> np.ndarray:
        """The trace of the objective: here ``log_likelihood`` (see :class:`emlib.interface.FitResult`)."""
        return self.log_likelihood


class ConvergenceMonitor:
    """The loop state every driver shares: the objective trace, the stopping rule, one warning per fit.

    Stops when the relative change ``|f_t - f_{t-1}| <= tol * |f_t|``; ``tol=0`` never stops
    early. Refuses a NaN or infinite objective with a ``ValueError``, since continuing would
    only produce NaN parameters. Use it as a context manager around the loop, so that the
    models' component warnings are issued once per fit, at the caller's line::

        monitor = ConvergenceMonitor(max_iter, tol)
        with monitor:
            monitor.record(objective_of_theta_0)
            while not monitor.done:
                ...
                monitor.record(objective_of_theta_t)
        return monitor.result(params)

    Parameters
    ----------
    max_iter : int
        The largest number of iterations; must be non-negative.
    tol : float
        Relative tolerance on the objective; must be non-negative.
    monotone_rtol : float, optional
        For drivers whose objective provably never decreases: a decrease by more than
        ``monotone_rtol * |f_{t-1}|`` (the slack for rounding) raises ``RuntimeError``. None (the
        default) does not check.
    objective : str
        The objective's name, for messages.
    """

    def __init__(self, max_iter: int, tol: float, *, monotone_rtol: float | None = None,
                 objective: str = "objective"):
        self.max_iter = check_integer(max_iter, "max_iter", minimum=0)
        self.tol = check_number(tol, "tol", minimum=0.0, hint=" (0 never stops early)")
        self.monotone_rtol = None if monotone_rtol is None else check_number(monotone_rtol, "monotone_rtol",
                                                                             minimum=0.0)
        self.objective = objective
        self.trace: list[float] = []
        self.converged = False
        self._warnings = OneWarningPerFit()

    def __enter__(self) -> "ConvergenceMonitor":
        self._warnings.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return self._warnings.__exit__(exc_type, exc, tb)

    def record(self, value: float) -> bool:
        """Append the objective of the newest iterate; return True (and set ``converged``) when the rule says stop."""
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(
                f"the {self.objective} became {value} at iteration {len(self.trace)}: the fit broke down (the "
                "parameters left the region where the model is defined). Start from other parameters, or "
                "check the data and the model's settings."
            )
        if self.monotone_rtol is not None and self.trace:
            previous = self.trace[-1]
            if value < previous - self.monotone_rtol * abs(previous):
                raise RuntimeError(f"the {self.objective} decreased from {previous!r} to {value!r} at iteration "
                                   f"{len(self.trace)}, which the algorithm rules out: a bug, please report it.")
        self.trace.append(value)
        if len(self.trace) >= 2 and self.tol > 0:
            previous = self.trace[-2]
            self.converged = self.converged or abs(value - previous) <= self.tol * abs(value)
        return self.converged

    def mark_converged(self) -> None:
        """Stop with ``converged=True`` for a driver-specific reason (e.g. CEM's labels stopped changing)."""
        self.converged = True

    @property
    def n_iter(self) -> int:
        """Iterations recorded so far (the trace also holds the initial value)."""
        return len(self.trace) - 1

    @property
    def done(self) -> bool:
        """True once the rule was met or ``max_iter`` iterations were recorded."""
        return self.converged or self.n_iter >= self.max_iter

    def result(self, params, converged: bool | None = None) -> EMResult:
        """Package the trace and the last parameters (``converged`` defaults to the monitor's)."""
        return EMResult(params=params, log_likelihood=np.array(self.trace), n_iter=self.n_iter,
                        converged=bool(self.converged if converged is None else converged))


def check_driver_arguments(model, callback, *, driver: str, methods: tuple[str, ...] | None = None) -> None:
    """The checks every driver makes before its first iteration: the model's methods and the callback."""
    if methods is None:
        check_model(model, driver=driver)
    else:
        check_model(model, methods, driver=driver)
    check_callable(callback, "callback")


def em(model, X, init, *, max_iter: int = MAX_ITER, tol: float = TOL,
       callback: Callable[[int, Any, float], None] | None = None) -> EMResult:
    """Fit ``model`` to ``X`` by the EM algorithm, starting from ``init``.

    Each iteration is one E-step and one M-step (equations ``em_algorithm-estep`` and
    ``em_algorithm-mstep``, algorithm ``em_algorithm-alg-em`` of the chapter "The EM algorithm"),
    so the log-likelihood never decreases (theorem ``em_algorithm-thm-monotone``). The log-likelihood of the new
    parameters comes out of the next E-step at no extra cost.

    Parameters
    ----------
    model : object with the model interface (:class:`emlib.interface.Model`)
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
    check_driver_arguments(model, callback, driver="em", methods=("check_data", "check_params", "e_step", "m_step"))
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    return run_em_loop(model, X, init, monitor, lambda params, stats, t: model.m_step(stats), callback)


def run_em_loop(model, X, init, monitor: ConvergenceMonitor,
                update: Callable[[Any, Any, int], Any], callback) -> EMResult:
    """The loop of :func:`em` with the M-step replaced by ``update(params_{t-1}, stats, t) -> params_t``.

    Checks the data and the start, then alternates the E-step (whose log-likelihood is recorded)
    and ``update`` until the monitor is done. :func:`emlib.gem` supplies its steps here.
    """
    X = model.check_data(X)
    params = model.check_params(init, X)
    with monitor:
        stats, loglik = model.e_step(X, params)
        monitor.record(loglik)
        while not monitor.done:
            params = update(params, stats, monitor.n_iter + 1)
            stats, loglik = model.e_step(X, params)
            monitor.record(loglik)
            if callback is not None:
                callback(monitor.n_iter, params, loglik)
    return monitor.result(params)
