"""The driver shared by the extrapolation methods (SQUAREM and Aitken's method).

Book: chapter "Slow convergence and acceleration", algorithm ``slow_convergence-alg-cycle``.
Both methods treat EM as a map M on parameter vectors and run in *cycles*. From theta_0 a cycle

1. takes two EM steps, theta_1 = M(theta_0) and theta_2 = M(theta_1);
2. asks the method for candidate points extrapolated from (theta_0, theta_1, theta_2), most
   aggressive first (SQUAREM backtracks its step length; Aitken proposes one point);
3. with the safeguard on, accepts the first candidate that lies in the parameter space and does
   not lower the log-likelihood below l(theta_0); if none qualifies, falls back to theta_2, the
   plain EM double step;
4. optionally takes one stabilizing EM step from the accepted point.

The log-likelihood of every point comes out of the E-step that the next EM step needs anyway,
so nothing is computed twice. The cost is counted in E-steps (each the expensive half of one
evaluation of the EM map): plain EM with n_iter iterations makes n_iter + 1 of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .._validation import check_bool
from ..em import ConvergenceMonitor, EMResult, check_driver_arguments
from ..params import flatten_params, unflatten_params

#: A method proposes candidate vectors from (theta_0, theta_1, theta_2), most aggressive first.
Proposer = Callable[[np.ndarray, np.ndarray, np.ndarray], Iterable[np.ndarray]]


@dataclass(frozen=True)
class AcceleratedEMResult(EMResult):
    """What the accelerated drivers return: an :class:`emlib.EMResult` plus the cost.

    ``n_iter`` counts cycles, and ``log_likelihood[t]`` is l(theta) after t cycles.

    Attributes
    ----------
    em_evaluations : ndarray of int, shape (n_iter + 1,)
        ``em_evaluations[t]``: E-steps made by the time ``log_likelihood[t]`` was known (1 for
        the initial value). Each E-step is followed by at most one M-step, so this is the number
        of evaluations of the EM map, counted the way plain EM's ``n_iter + 1`` counts them.
    n_rejected : int
        Candidates the safeguard turned down (outside the parameter space, or lowering l).
    """

    em_evaluations: np.ndarray
    n_rejected: int

    @property
    def n_em_evaluations(self) -> int:
        """Total E-steps (evaluations of the EM map) of the whole run."""
        return int(self.em_evaluations[-1])


class _CountingEStep:
    """model.e_step on fixed data, counting the calls."""

    def __init__(self, model, X):
        self.model, self.X, self.count = model, X, 0

    def __call__(self, params):
        self.count += 1
        return self.model.e_step(self.X, params)


def _try_candidate(model, X, template, vector: np.ndarray, e_step: _CountingEStep, stabilize: bool):
    """Evaluate a candidate vector.

    Returns ``((params, stats, loglik, next_params), "")`` where ``next_params`` is the
    stabilizing EM step M(params) (or ``params`` itself without stabilization), or
    ``(None, reason)`` if the candidate is not a point where the EM map is defined.
    """
    if not np.all(np.isfinite(vector)):
        return None, "the extrapolated vector is not finite."
    try:
        params = model.check_params(unflatten_params(template, vector), X)
        with np.errstate(all="ignore"):  # an extreme trial point may overflow; it is rejected below
            stats, loglik = e_step(params)
        if not np.isfinite(loglik):
            return None, f"the log-likelihood there is {loglik}."
        next_params = model.m_step(stats) if stabilize else params
    except ValueError as exc:
        return None, str(exc)
    return (params, stats, loglik, next_params), ""


def run_extrapolation_cycles(model, X, init, propose: Proposer, *, method: str, max_iter: int, tol: float,
                             callback: Callable[[int, Any, float], None] | None, safeguard: bool,
                             stabilize: bool) -> AcceleratedEMResult:
    """Run safeguarded extrapolation cycles until the log-likelihood settles (see module docstring).

    Parameters
    ----------
    model, X, init, max_iter, tol, callback
        As for :func:`emlib.em`; ``max_iter`` counts cycles and ``callback(t, params_t, loglik_t)``
        is called after every cycle.
    propose : callable ``(theta_0, theta_1, theta_2) -> iterable of vectors``, each of shape (P,)
        The method's candidates (flattened with :func:`emlib.params.flatten_params`), most
        aggressive first. An empty iterable means: take the plain EM double step theta_2.
    method : str
        The method's name, for error messages.
    safeguard : bool
        Reject candidates outside the parameter space or with l below l(theta_0). Without it
        the first candidate is taken whatever its log-likelihood, and a candidate outside the
        parameter space stops the run with a ``ValueError``.
    stabilize : bool
        Take one EM step from the accepted point (SQUAREM does, Aitken's method does not).

    Returns
    -------
    AcceleratedEMResult
    """
    safeguard, stabilize = check_bool(safeguard, "safeguard"), check_bool(stabilize, "stabilize")
    check_driver_arguments(model, callback, driver=method, methods=("check_data", "check_params", "e_step", "m_step"))
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    X = model.check_data(X)
    params = model.check_params(init, X)
    e_step = _CountingEStep(model, X)
    n_rejected = 0
    with monitor:
        stats, loglik = e_step(params)
        monitor.record(loglik)
        evaluations = [e_step.count]
        while not monitor.done:
            theta1 = model.m_step(stats)
            stats1, _ = e_step(theta1)
            theta2 = model.m_step(stats1)
            accepted = None
            for vector in propose(flatten_params(params), flatten_params(theta1), flatten_params(theta2)):
                trial, reason = _try_candidate(model, X, params, vector, e_step, stabilize)
                if trial is None and not safeguard:
                    raise ValueError(f"{method} without its safeguard left the parameter space in cycle "
                                     f"{monitor.n_iter + 1}: {reason} Run it with safeguard=True.")
                if trial is not None and (not safeguard or trial[2] >= loglik):
                    accepted = trial
                    break
                n_rejected += 1
            if accepted is None:  # the plain EM double step theta_2, which never lowers l
                stats2, loglik2 = e_step(theta2)
                accepted = (theta2, stats2, loglik2, model.m_step(stats2) if stabilize else theta2)
            params, stats, loglik, next_params = accepted
            if stabilize:  # one more EM step from the accepted point
                params = next_params
                stats, loglik = e_step(params)
            monitor.record(loglik)
            evaluations.append(e_step.count)
            if callback is not None:
                callback(monitor.n_iter, params, loglik)
    base = monitor.result(params)
    return AcceleratedEMResult(params=base.params, log_likelihood=base.log_likelihood, n_iter=base.n_iter,
                               converged=base.converged, em_evaluations=np.array(evaluations),
                               n_rejected=n_rejected)
