"""Generalized EM (GEM) and expectation-conditional maximization (ECM).

Book: chapter "Generalized EM and ECM". EM's M-step maximizes Q(theta | theta_t); generalized
EM (Dempster, Laird and Rubin 1977) only asks that the new parameters do not decrease it,

    Q(theta_{t+1} | theta_t) >= Q(theta_t | theta_t),                  (generalized_em-gem-condition)

which is already enough for the log-likelihood to be monotone. The driver :func:`gem` is the EM
loop of :func:`emlib.em` with the M-step replaced by one or more *steps*, each a callable

    step(stats, params) -> params

that receives the expected sufficient statistics of the E-step and the current parameters. A
list of steps is applied in turn after one E-step: these are the conditional-maximization
(CM) steps of ECM (Meng and Rubin 1993). The driver checks after every step that Q did not fall.

Two families of steps for the Gaussian mixture are supplied here:

* :func:`gaussian_mixture_gradient_step`: gradient ascent on Q with a backtracking step size
  (a GEM M-step that increases Q without maximizing it);
* :func:`linear_means_cm_steps`: the two CM-steps of ECM for a mixture whose means are linear
  in known covariates, mu_k = sum_p C_kp beta_p, a model whose joint M-step has no closed form.

Both evaluate Q from the statistics alone with
:meth:`emlib.GaussianMixture.expected_complete_loglik`, the chapter's equation
(generalized_em-q-stats).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._validation import as_float_array, check_bool, check_integer, check_number
from ..bounds import expected_complete_loglik
from ..em import MAX_ITER, TOL, ConvergenceMonitor, EMResult, check_driver_arguments, run_em_loop
from ..interface import check_discrete_latent
from ..models._numerics import empty_components
from ..models.gaussian_mixture import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats

#: A step may lower Q by at most this fraction of |Q| (rounding in the sum over N K terms);
#: anything larger is reported as a decrease.
Q_RELATIVE_SLACK = 1e-10

#: The Armijo constant c of the gradient step: a step of length alpha along the gradient g is
#: accepted when it raises Q / N by at least c alpha ||g||^2.
ARMIJO = 1e-4

Step = Callable[[Any, Any], Any]


# ---------------------------------------------------------------------------------- the driver
def _as_steps(m_step, name: str = "m_step") -> tuple[Step, ...] | None:
    """The steps of ``m_step`` as a tuple, or None for the model's own M-step."""
    if m_step is None:
        return None
    if callable(m_step):
        return (m_step,)
    if isinstance(m_step, (list, tuple)) and len(m_step) > 0 and all(callable(s) for s in m_step):
        return tuple(m_step)
    raise ValueError(
        f"{name} must be None (the model's exact M-step), a callable step(stats, params) -> params, "
        f"or a non-empty list of such callables (the CM-steps of ECM); got {m_step!r}."
    )


def gem(model, X, init, *, m_step=None, max_iter: int = MAX_ITER, tol: float = TOL,
        callback: Callable[[int, Any, float], None] | None = None, check_q: bool = True) -> EMResult:
    """Fit ``model`` to ``X`` by generalized EM: an E-step, then steps that do not decrease Q
    (definition ``generalized_em-def-gem``; with a list of CM-steps, algorithm ``generalized_em-alg-ecm``).

    Each iteration computes the expected sufficient statistics at theta_t (the E-step), then
    applies the steps of ``m_step`` in turn, each to the output of the one before, all with the
    same statistics. With ``m_step=None`` the single step is the model's own M-step and the
    result is exactly that of :func:`emlib.em` (the model's M-step is not checked: with
    ``reg_covar > 0`` it is not Q's exact maximizer, and EM does not check it either).

    Parameters
    ----------
    model : object with the model interface
        E.g. :class:`emlib.GaussianMixture`. Needs ``e_step`` and ``m_step``, and, to check Q
        after the steps, ``posterior`` and ``log_joint`` over a discrete latent variable.
    X : array_like, shape (N, D)
        The observed data.
    init : parameters dataclass
        theta_0.
    m_step : None, callable ``(stats, params) -> params``, or list of such callables
        ``None``: the model's M-step ``model.m_step(stats)`` (plain EM). One callable: a GEM step,
        e.g. :func:`gaussian_mixture_gradient_step`. A list: CM-steps applied in turn after each
        E-step (ECM), e.g. :func:`linear_means_cm_steps`; repeating the list (``steps * 20``)
        runs several cycles per E-step.
    max_iter : int
        At most this many iterations (E-steps followed by all the steps).
    tol : float
        Stop when the relative change of the log-likelihood is at most ``tol``; 0 never stops early.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every iteration, as in :func:`emlib.em`.
    check_q : bool
        After every step of ``m_step`` (not for ``m_step=None``), compute
        Q(theta | theta_t) = E_q[log p(x, z | theta)] with q = p(z | x, theta_t) from the model's
        ``log_joint`` and raise if it fell (by more than ``Q_RELATIVE_SLACK`` times its size).
        Costs two extra passes over the data per step.

    Returns
    -------
    EMResult
        ``log_likelihood[t]`` = log p(X | theta_t), t = 0, ..., n_iter; it never decreases
        (chapter theorem ``generalized_em-thm-monotone``).

    Raises
    ------
    ValueError
        If an argument is not of the forms above, if a step returns parameters the model rejects,
        or (with ``check_q``) if a step decreased Q.
    """
    steps = _as_steps(m_step)
    check_q = check_bool(check_q, "check_q") and steps is not None
    needs = ("check_data", "check_params", "e_step", "m_step") + (("posterior", "log_joint") if check_q else ())
    check_driver_arguments(model, callback, driver="gem", methods=needs)
    if check_q:
        check_discrete_latent(model, driver="gem with check_q=True")
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    if steps is None:
        return run_em_loop(model, X, init, monitor, lambda params, stats, t: model.m_step(stats), callback)
    data = model.check_data(X)   # for the Q check; run_em_loop checks the same data again, cheaply
    return run_em_loop(model, data, init, monitor,
                       lambda params, stats, t: _apply_steps(model, data, params, stats, steps, check_q, t), callback)


def _apply_steps(model, X, params, stats, steps: tuple[Step, ...], check_q: bool, t: int):
    """The steps of one iteration, each checked not to lower Q(theta | theta_t)."""
    if check_q:
        q = model.posterior(X, params)
        q_value = expected_complete_loglik(model, X, params, q)
    for j, step in enumerate(steps):
        new = model.check_params(step(stats, params), X)
        if check_q:
            new_value = expected_complete_loglik(model, X, new, q)
            if new_value < q_value - Q_RELATIVE_SLACK * max(abs(q_value), 1.0):
                reg_covar = getattr(model, "reg_covar", 0.0)
                cause = (f" The model's reg_covar = {reg_covar:g} makes its M-step inexact: if the step calls "
                         "model.m_step, a decrease of that order is expected; use reg_covar=0 for exact "
                         "steps, or check_q=False." if reg_covar else "")
                raise ValueError(
                    f"step {j} of iteration {t} decreased Q(theta | theta_t) from {q_value:.10g} "
                    f"to {new_value:.10g}. A generalized EM step must not decrease Q, or the "
                    "log-likelihood can fall: use a smaller step size or an exact conditional "
                    f"maximization.{cause}"
                )
            q_value = new_value
        params = new
    return params


# ------------------------------------------------------- Q of a Gaussian mixture from statistics
def gaussian_mixture_q(stats: GaussianMixtureStats, params: GaussianMixtureParams) -> float:
    """Q(theta | theta_t) of a Gaussian mixture from the statistics of the E-step alone.

    Kept for the chapters; the computation is :meth:`emlib.GaussianMixture.expected_complete_loglik`
    (equation ``generalized_em-q-stats``), which new code should call.
    """
    if not isinstance(params, GaussianMixtureParams):
        raise ValueError(f"params must be GaussianMixtureParams; got {type(params).__name__}.")
    return GaussianMixture(params.n_components, params.covariance_type).expected_complete_loglik(stats, params)


def _check_stats(model: GaussianMixture, stats, params: GaussianMixtureParams) -> None:
    if not isinstance(stats, GaussianMixtureStats):
        raise ValueError(f"stats must be GaussianMixtureStats; got {type(stats).__name__}.")
    if stats.centred_sum_x.shape != params.means.shape or stats.centred_sum_xx.shape != params.covariances.shape:
        raise ValueError(
            f"stats (moments {stats.centred_sum_x.shape} and {stats.centred_sum_xx.shape}) do not match params "
            f"(means {params.means.shape}, covariances {params.covariances.shape}); compute them with the same model."
        )


# --------------------------------------------------------------------------- gradient GEM step
def _softmax(eta: np.ndarray) -> np.ndarray:
    w = np.exp(eta - eta.max())
    return w / w.sum()


def gaussian_mixture_q_gradient(stats: GaussianMixtureStats,
                                params: GaussianMixtureParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradient of Q(theta | theta_t) of a diagonal mixture in the coordinates (eta, mu, s).

    pi = softmax(eta) and sigma^2 = exp(s); chapter equation ``generalized_em-grad``, with the
    scatter W_kd = sum_n r_nk (x_nd - mu_kd)^2 (:meth:`GaussianMixtureStats.scatter`):

        dQ/d eta_k = N_k - N pi_k,   dQ/d mu_kd = (S1_kd - N_k mu_kd) / sigma_kd^2,
        dQ/d s_kd  = (W_kd / sigma_kd^2 - N_k) / 2.

    Returns
    -------
    (d_eta, d_mu, d_s) : ndarrays of shapes (K,), (K, D), (K, D)
    """
    counts = stats.counts
    variances = params.covariances
    residual = stats.centred_sum_x + counts[:, None] * (stats.centre - params.means)   # S1_k - N_k mu_k
    d_eta = counts - counts.sum() * params.weights
    d_mu = residual / variances
    d_s = 0.5 * (stats.scatter(params.means) / variances - counts[:, None])
    return d_eta, d_mu, d_s


def gaussian_mixture_gradient_step(model: GaussianMixture, *, step_size: float = 1.0, n_steps: int = 1,
                                   shrink: float = 0.5, max_backtracks: int = 60) -> Step:
    """A GEM M-step for a diagonal Gaussian mixture: gradient ascent on Q with backtracking.

    The step works in unconstrained coordinates u = (eta, mu, s) with pi = softmax(eta) and
    sigma^2 = exp(s), with the gradient of :func:`gaussian_mixture_q_gradient` (chapter
    equation ``generalized_em-grad``), and takes ``n_steps`` steps u <- u + alpha g on Q / N,
    with g the gradient of Q / N. Each alpha starts at ``step_size`` and is multiplied by
    ``shrink`` until the Armijo condition Q(u + alpha g)/N >= Q(u)/N + c alpha ||g||^2 holds
    (c = ``ARMIJO``, equation ``generalized_em-armijo``), so every accepted step strictly increases Q; if none is found within
    ``max_backtracks`` trials the parameters are left unchanged. Parameters in ``model.fixed``
    are not moved.

    Parameters
    ----------
    model : GaussianMixture
        With ``covariance_type="diag"``.
    step_size : float
        The first trial step length alpha (positive).
    n_steps : int
        Gradient steps per E-step; many steps approach the exact M-step.
    shrink : float
        Backtracking factor in (0, 1).
    max_backtracks : int
        Trials per step before giving up.

    Returns
    -------
    callable ``step(stats, params) -> params``
        To be passed as ``m_step`` to :func:`gem`.
    """
    if not isinstance(model, GaussianMixture) or model.covariance_type != "diag":
        raise ValueError("gaussian_mixture_gradient_step needs a GaussianMixture with covariance_type='diag'; "
                         f"got {model!r}.")
    step_size = check_number(step_size, "step_size", above=0.0)
    shrink = check_number(shrink, "shrink", above=0.0, below=1.0)
    n_steps = check_integer(n_steps, "n_steps", minimum=1)
    max_backtracks = check_integer(max_backtracks, "max_backtracks", minimum=1)
    move = {name: name not in model.fixed for name in ("weights", "means", "covariances")}

    def step(stats: GaussianMixtureStats, params: GaussianMixtureParams) -> GaussianMixtureParams:
        _check_stats(model, stats, params)
        n_total = float(stats.counts.sum())
        with np.errstate(divide="ignore"):
            eta = np.log(params.weights)

        def objective(point: GaussianMixtureParams) -> float:
            return model.expected_complete_loglik(stats, point) / n_total

        def params_at(eta, mu, s):
            with np.errstate(over="ignore"):
                return GaussianMixtureParams(model.fixed.get("weights", _softmax(eta)), mu, np.exp(s))

        point = params
        mu, s = params.means, np.log(params.covariances)
        value = objective(point)
        for _ in range(n_steps):
            g_eta, g_mu, g_s = (g / n_total for g in gaussian_mixture_q_gradient(stats, point))
            g_eta = g_eta if move["weights"] else np.zeros_like(eta)
            g_mu = g_mu if move["means"] else np.zeros_like(mu)
            g_s = g_s if move["covariances"] else np.zeros_like(s)
            with np.errstate(invalid="ignore"):  # eta = -inf for an empty component: no move
                g_eta = np.where(np.isfinite(eta), g_eta, 0.0)
            sq_norm = float(np.sum(g_eta ** 2) + np.sum(g_mu ** 2) + np.sum(g_s ** 2))
            if sq_norm == 0.0:
                break
            alpha = step_size
            for _ in range(max_backtracks):
                with np.errstate(all="ignore"):
                    trial = (eta + alpha * g_eta, mu + alpha * g_mu, s + alpha * g_s)
                try:
                    trial_point = params_at(*trial)
                    trial_value = objective(trial_point)
                except ValueError:  # the trial left the parameter space (an overflowing variance)
                    trial_value = -np.inf
                if np.isfinite(trial_value) and trial_value >= value + ARMIJO * alpha * sq_norm:
                    (eta, mu, s), point, value = trial, trial_point, trial_value
                    break
                alpha *= shrink
            else:
                break  # no acceptable step: stay where we are (Q unchanged)
        return point

    return step


# ----------------------------------------------------------------------- ECM: linear means
def linear_means_cm_steps(model: GaussianMixture, design) -> tuple[Step, Step]:
    """The two CM-steps of ECM for a diagonal Gaussian mixture with means linear in covariates.

    The means are constrained to mu_k = sum_p C_kp beta_p (beta_p in R^D), i.e. ``means = design @
    beta``, with a known design matrix C of shape (K, P); e.g. ``C = [1, c_k]`` gives means
    a + b c_k on a line. The variances sigma_kd^2 are free. Q has no joint closed-form maximizer,
    but each block has one (chapter equations ``generalized_em-cm1`` and ``generalized_em-cm2``):

    1. given the variances, the weights pi_k = N_k / N and, for each dimension d, beta_d by weighted
       least squares: (C^T diag(N_k / sigma_kd^2) C) beta_d = C^T (S1_kd / sigma_kd^2)_k;
    2. given the means, sigma_kd^2 = (S2_kd - 2 mu_kd S1_kd + N_k mu_kd^2) / N_k.

    Both are exact conditional maximizers; ``model.reg_covar`` is not added (it would make the
    second step inexact).

    Parameters
    ----------
    model : GaussianMixture
        ``covariance_type="diag"``; ``fixed`` may hold the weights, not the means or covariances.
    design : array_like, shape (K, P)
        C, of full column rank P <= K.

    Returns
    -------
    (cm_means, cm_variances) : two callables ``(stats, params) -> params``
        Pass them as ``m_step=[cm_means, cm_variances]`` to :func:`gem`.
    """
    if not isinstance(model, GaussianMixture) or model.covariance_type != "diag":
        raise ValueError("linear_means_cm_steps needs a GaussianMixture with covariance_type='diag'; "
                         f"got {model!r}.")
    if {"means", "covariances"} & set(model.fixed):
        raise ValueError("linear_means_cm_steps estimates the means and the variances; the model must "
                         f"not fix them (it fixes {sorted(model.fixed)}).")
    K = model.n_components
    C = as_float_array(design, (K, None), "design")
    if np.linalg.matrix_rank(C) < C.shape[1]:
        raise ValueError(f"design must have full column rank (independent columns); its shape is {C.shape} "
                         f"but its rank is {np.linalg.matrix_rank(C)}.")
    fixed_weights = model.fixed.get("weights")

    def cm_means(stats: GaussianMixtureStats, params: GaussianMixtureParams) -> GaussianMixtureParams:
        _check_stats(model, stats, params)
        precision = 1.0 / params.covariances                                    # (K, D)
        gram = np.einsum("kp,kd,kq->dpq", C, stats.counts[:, None] * precision, C)  # (D, P, P)
        rhs = np.einsum("kp,kd->dp", C, precision * stats.sum_x)                 # (D, P)
        try:
            beta = np.linalg.solve(gram, rhs[..., None])[..., 0]                 # (D, P)
        except np.linalg.LinAlgError:
            raise ValueError("the weighted least-squares system for the means is singular: too few "
                             "components hold data to determine all coefficients.") from None
        weights = fixed_weights if fixed_weights is not None else stats.counts / stats.counts.sum()
        return GaussianMixtureParams(weights, C @ beta.T, params.covariances)

    def cm_variances(stats: GaussianMixtureStats, params: GaussianMixtureParams) -> GaussianMixtureParams:
        _check_stats(model, stats, params)
        counts, mu = stats.counts, params.means
        empty = empty_components(counts)
        if empty.size:
            raise ValueError(f"component(s) {empty.tolist()} received no "
                             "responsibility, so their variances are undefined; start elsewhere.")
        variances = stats.scatter(mu) / counts[:, None]
        if np.any(variances <= 0):
            raise ValueError("a variance became zero or negative: a component collapsed onto a "
                             "single point; start elsewhere or use fewer components.")
        return GaussianMixtureParams(params.weights, mu, variances)

    return cm_means, cm_variances
