"""ECME: expectation-conditional maximization *either*, on Q or on the log-likelihood itself.

Book: chapter "Generalized EM and ECM", section on ECME. ECM (Meng and Rubin 1993) replaces the
M-step by conditional maximizations (CM-steps) of Q(theta | theta_t), one block of parameters
at a time. Liu and Rubin (1994) observed that some blocks can be maximized over the actual
log-likelihood l(theta) instead, with the other blocks held fixed, and that this often speeds
the algorithm up a great deal: for the t distribution, the degrees of freedom have a large
fraction of missing information under Q, and none under l. One ECME iteration is

    stats = E-step at theta_t                       # Q(. | theta_t)
    for step in q_steps:       params = step(stats, params)     # CM-steps on Q
    for step in loglik_steps:  params = step(X, params)         # CM-steps on l

The CM-steps on Q come first: each keeps Q(. | theta_t) from falling, so after them l has not
fallen (the GEM argument); each CM-step on l then raises l directly. In the other order a CM-step
on Q after one on l has no guarantee, because the point it starts from may have a lower Q than
theta_t (proposition ``generalized_em-prop-ecme-monotone``).
"""
from __future__ import annotations

from typing import Any, Callable

from .._validation import check_bool
from ..em import ConvergenceMonitor, EMResult, check_driver_arguments, run_em_loop
from .gem import _as_steps

#: A CM-step may lower the log-likelihood by at most this fraction of |l| (rounding in a sum over
#: N terms); anything larger is reported as a decrease.
LOGLIK_RELATIVE_SLACK = 1e-10

LoglikStep = Callable[[Any, Any], Any]


def _as_loglik_steps(loglik_steps) -> tuple[LoglikStep, ...]:
    if callable(loglik_steps):
        return (loglik_steps,)
    if isinstance(loglik_steps, (list, tuple)) and len(loglik_steps) > 0 and all(callable(s) for s in loglik_steps):
        return tuple(loglik_steps)
    raise ValueError("loglik_steps must be a callable step(X, params) -> params that maximizes the "
                     "log-likelihood over one block of parameters, or a non-empty list of them; "
                     f"got {loglik_steps!r}.")


def ecme(model, X, init, *, loglik_steps, q_steps=None, max_iter: int = 1000, tol: float = 1e-8,
         callback: Callable[[int, Any, float], None] | None = None, check: bool = True) -> EMResult:
    """Fit ``model`` to ``X`` by ECME: CM-steps on Q(theta | theta_t), then CM-steps on l(theta).

    Parameters
    ----------
    model : object with the model interface
        Needs ``check_data``, ``check_params``, ``e_step``, ``m_step`` (when ``q_steps`` is None)
        and ``log_likelihood``; e.g. :class:`emlib.MultivariateT`.
    X : array_like, shape (N, D)
        The observed data.
    init : parameters dataclass
        theta_0.
    loglik_steps : callable ``(X, params) -> params``, or a non-empty list of them
        CM-steps on the log-likelihood: each maximizes l over one block of parameters with the
        others held at ``params`` (e.g. :meth:`emlib.MultivariateT.dof_loglik_step`).
    q_steps : None, callable ``(stats, params) -> params``, or a list of them
        CM-steps on Q, as for :func:`emlib.gem`; ``None`` is the model's exact M-step.
    max_iter : int
        At most this many iterations (an E-step and all the steps).
    tol : float
        Stop when the relative change of the log-likelihood is at most ``tol``; 0 never stops early.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every iteration, as in :func:`emlib.em`.
    check : bool
        Compute l after the Q-steps and after every l-step and raise if it fell (by more than
        ``LOGLIK_RELATIVE_SLACK`` times its size). Costs one pass over the data per step.

    Returns
    -------
    EMResult
        ``log_likelihood[t]`` = log p(X | theta_t), t = 0, ..., n_iter; it never decreases.

    Raises
    ------
    ValueError
        If the steps are not of the forms above, if a step returns parameters the model rejects,
        or (with ``check``) if the log-likelihood fell during an iteration.
    """
    check_driver_arguments(model, callback, driver="ecme",
                           methods=("check_data", "check_params", "e_step", "m_step", "log_likelihood"))
    q_steps = _as_steps(q_steps, "q_steps")
    loglik_steps = _as_loglik_steps(loglik_steps)
    check = check_bool(check, "check")
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    X = model.check_data(X)

    def refuse_drop(before: float, after: float, what: str, t: int) -> None:
        if after < before - LOGLIK_RELATIVE_SLACK * max(abs(before), 1.0):
            raise ValueError(f"{what} of iteration {t} lowered the log-likelihood from {before:.12g} "
                             f"to {after:.12g}. ECME is monotone only if the CM-steps on Q do not lower Q "
                             "and each CM-step on l maximizes l over its block: check the steps.")

    def update(params, stats, t):
        if q_steps is None:
            params = model.m_step(stats)
        else:
            for step in q_steps:
                params = model.check_params(step(stats, params), X)
        if check:
            current = model.log_likelihood(X, params)
            refuse_drop(monitor.trace[-1], current, "the CM-steps on Q", t)
        for j, step in enumerate(loglik_steps):
            params = model.check_params(step(X, params), X)
            if check:
                new = model.log_likelihood(X, params)
                refuse_drop(current, new, f"CM-step {j} on l", t)
                current = new
        return params

    return run_em_loop(model, X, init, monitor, update, callback)
