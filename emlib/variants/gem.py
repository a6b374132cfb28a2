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

Both evaluate Q from the statistics alone with :func:`gaussian_mixture_q`, the chapter's
equation (generalized_em-q-stats).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .._validation import as_float_array
from ..bounds import expected_complete_loglik
from ..em import ConvergenceMonitor, EMResult
from ..models.gaussian_mixture import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats

_LOG_2PI = np.log(2.0 * np.pi)

#: A step may lower Q by at most this fraction of |Q| (rounding in the sum over N K terms);
#: anything larger is reported as a decrease.
Q_RELATIVE_SLACK = 1e-10

Step = Callable[[Any, Any], Any]


# ---------------------------------------------------------------------------------- the driver
def _as_steps(model, m_step) -> tuple[Step, ...]:
    if m_step is None:
        return (lambda stats, params: model.m_step(stats),)
    if callable(m_step):
        return (m_step,)
    if isinstance(m_step, (list, tuple)) and len(m_step) > 0 and all(callable(s) for s in m_step):
        return tuple(m_step)
    raise ValueError(
        "m_step must be None (the model's exact M-step), a callable step(stats, params) -> params, "
        f"or a non-empty list of such callables (the CM-steps of ECM); got {m_step!r}."
    )


def gem(model, X, init, *, m_step=None, max_iter: int = 1000, tol: float = 1e-8,
        callback: Callable[[int, Any, float], None] | None = None, check_q: bool = True) -> EMResult:
    """Fit ``model`` to ``X`` by generalized EM: an E-step, then steps that do not decrease Q.

    Each iteration computes the expected sufficient statistics at theta_t (the E-step), then
    applies the steps of ``m_step`` in turn, each to the output of the one before, all with the
    same statistics. With ``m_step=None`` the single step is the model's exact M-step and the
    result equals :func:`emlib.em`.

    Parameters
    ----------
    model : object with the model interface
        E.g. :class:`emlib.GaussianMixture`. Needs ``e_step``, ``m_step``, ``posterior`` and
        ``log_joint`` (the last two only when ``check_q`` is true).
    X : array_like, shape (N, D)
        The observed data.
    init : parameters dataclass
        theta_0.
    m_step : None, callable ``(stats, params) -> params``, or list of such callables
        ``None``: the exact M-step ``model.m_step(stats)`` (plain EM). One callable: a GEM step,
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
        After every step, compute Q(theta | theta_t) = E_q[log p(x, z | theta)] with
        q = p(z | x, theta_t) from the model's ``log_joint`` and raise if it fell (by more than
        ``Q_RELATIVE_SLACK`` times its size). Costs two extra passes over the data per step.

    Returns
    -------
    EMResult
        ``log_likelihood[t]`` = log p(X | theta_t), t = 0, ..., n_iter; it never decreases
        (chapter theorem ``generalized_em-thm-monotone``).

    Raises
    ------
    ValueError
        If ``m_step`` is not of the forms above, if a step returns parameters the model rejects,
        or (with ``check_q``) if a step decreased Q.
    """
    steps = _as_steps(model, m_step)
    monitor = ConvergenceMonitor(max_iter, tol)
    X = model.check_data(X)
    params = model.check_params(init, X)
    stats, loglik = model.e_step(X, params)
    monitor.record(loglik)
    converged = False
    while monitor.n_iter < monitor.max_iter and not converged:
        t = monitor.n_iter + 1
        if check_q:
            q = model.posterior(X, params)
            q_value = expected_complete_loglik(model, X, params, q)
        for j, step in enumerate(steps):
            new = model.check_params(step(stats, params), X)
            if check_q:
                new_value = expected_complete_loglik(model, X, new, q)
                if new_value < q_value - Q_RELATIVE_SLACK * max(abs(q_value), 1.0):
                    raise ValueError(
                        f"step {j} of iteration {t} decreased Q(theta | theta_t) from {q_value:.10g} "
                        f"to {new_value:.10g}. A generalized EM step must not decrease Q, or the "
                        "log-likelihood can fall: use a smaller step size or an exact conditional "
                        "maximization."
                    )
                q_value = new_value
            params = new
        stats, loglik = model.e_step(X, params)
        converged = monitor.record(loglik)
        if callback is not None:
            callback(monitor.n_iter, params, loglik)
    return monitor.result(params, converged)


# ------------------------------------------------------- Q of a Gaussian mixture from statistics
def _check_stats(stats, params: GaussianMixtureParams) -> None:
    if not isinstance(stats, GaussianMixtureStats):
        raise ValueError(f"stats must be GaussianMixtureStats; got {type(stats).__name__}.")
    if stats.sum_x.shape != params.means.shape or stats.sum_xx.shape != params.covariances.shape:
        raise ValueError(
            f"stats (sum_x {stats.sum_x.shape}, sum_xx {stats.sum_xx.shape}) do not match params "
            f"(means {params.means.shape}, covariances {params.covariances.shape}); "
            "compute them with the same model."
        )


def _weights_term(counts: np.ndarray, weights: np.ndarray) -> float:
    """sum_k N_k log pi_k with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(weights), 0.0)
    return float(terms.sum())


def _q_diag(counts, sum_x, sum_xx, weights, means, variances) -> float:
    """Q for diagonal covariances from arrays (may be -inf or nan for absurd inputs)."""
    with np.errstate(all="ignore"):
        scatter = sum_xx - 2.0 * means * sum_x + counts[:, None] * means ** 2   # W_kd
        gauss = -0.5 * np.sum(counts[:, None] * (_LOG_2PI + np.log(variances)) + scatter / variances)
    return _weights_term(counts, weights) + float(gauss)


def gaussian_mixture_q(stats: GaussianMixtureStats, params: GaussianMixtureParams) -> float:
    """Q(theta | theta_t) of a Gaussian mixture, computed from the statistics of the E-step alone.

    With N_k, S1_k, S2_k the expected statistics under q = p(z | x, theta_t) (chapter equation
    ``generalized_em-q-stats``),

        Q = sum_k N_k log pi_k - 1/2 sum_k [ N_k log det(2 pi Sigma_k)
              + tr(Sigma_k^{-1} (S2_k - S1_k mu_k^T - mu_k S1_k^T + N_k mu_k mu_k^T)) ].

    It equals ``emlib.bounds.expected_complete_loglik(model, X, params, q)`` without another pass
    over the data: Q depends on the data only through the sufficient statistics.

    Parameters
    ----------
    stats : GaussianMixtureStats
        counts (K,), sum_x (K, D), sum_xx (K, D, D) or (K, D), e.g. from ``model.e_step``.
    params : GaussianMixtureParams
        theta, the parameters at which Q is evaluated.

    Returns
    -------
    float
    """
    _check_stats(stats, params)
    counts, sum_x, sum_xx = stats.counts, stats.sum_x, stats.sum_xx
    if params.covariance_type == "diag":
        return _q_diag(counts, sum_x, sum_xx, params.weights, params.means, params.covariances)
    total = _weights_term(counts, params.weights)
    for k in range(params.n_components):
        mu, s1 = params.means[k], sum_x[k]
        scatter = sum_xx[k] - np.outer(s1, mu) - np.outer(mu, s1) + counts[k] * np.outer(mu, mu)
        factor = cho_factor(params.covariances[k], lower=True)
        log_det = 2.0 * np.sum(np.log(np.diag(factor[0])))
        total -= 0.5 * (counts[k] * (params.n_features * _LOG_2PI + log_det)
                        + np.trace(cho_solve(factor, scatter)))
    return float(total)


# --------------------------------------------------------------------------- gradient GEM step
def _positive_int(value, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _softmax(eta: np.ndarray) -> np.ndarray:
    w = np.exp(eta - eta.max())
    return w / w.sum()


def gaussian_mixture_gradient_step(model: GaussianMixture, *, step_size: float = 1.0, n_steps: int = 1,
                                   shrink: float = 0.5, max_backtracks: int = 60) -> Step:
    """A GEM M-step for a diagonal Gaussian mixture: gradient ascent on Q with backtracking.

    The step works in unconstrained coordinates u = (eta, mu, s) with pi = softmax(eta) and
    sigma^2 = exp(s), where (chapter equation ``generalized_em-grad``, with
    W_kd = S2_kd - 2 mu_kd S1_kd + N_k mu_kd^2)

        dQ/d eta_k = N_k - N pi_k,   dQ/d mu_kd = (S1_kd - N_k mu_kd) / sigma_kd^2,
        dQ/d s_kd  = (W_kd / sigma_kd^2 - N_k) / 2,

    and takes ``n_steps`` steps u <- u + alpha g on Q / N, with g the gradient of Q / N. Each
    alpha starts at ``step_size`` and is multiplied by ``shrink`` until the Armijo condition
    Q(u + alpha g)/N >= Q(u)/N + 1e-4 alpha ||g||^2 holds, so every accepted step strictly increases
    Q; if none is found within ``max_backtracks`` trials the parameters are left unchanged.
    Parameters in ``model.fixed`` are not moved.

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
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a positive number; got {step_size!r}.")
    if not np.isfinite(shrink) or not 0 < shrink < 1:
        raise ValueError(f"shrink must lie strictly between 0 and 1; got {shrink!r}.")
    n_steps = _positive_int(n_steps, "n_steps")
    max_backtracks = _positive_int(max_backtracks, "max_backtracks")
    move = {name: name not in model.fixed for name in ("weights", "means", "covariances")}

    def step(stats: GaussianMixtureStats, params: GaussianMixtureParams) -> GaussianMixtureParams:
        _check_stats(stats, params)
        counts, sum_x, sum_xx = stats.counts, stats.sum_x, stats.sum_xx
        n_total = float(counts.sum())
        with np.errstate(divide="ignore"):
            eta = np.log(params.weights)
        mu, s = params.means.copy(), np.log(params.covariances)

        def objective(eta, mu, s):
            return _q_diag(counts, sum_x, sum_xx, _softmax(eta), mu, np.exp(s)) / n_total

        value = objective(eta, mu, s)
        for _ in range(n_steps):
            var = np.exp(s)
            scatter = sum_xx - 2.0 * mu * sum_x + counts[:, None] * mu ** 2
            g_eta = (counts - n_total * _softmax(eta)) / n_total if move["weights"] else np.zeros_like(eta)
            g_mu = (sum_x - counts[:, None] * mu) / var / n_total if move["means"] else np.zeros_like(mu)
            g_s = 0.5 * (scatter / var - counts[:, None]) / n_total if move["covariances"] else np.zeros_like(s)
            with np.errstate(invalid="ignore"):  # eta = -inf for an empty component: no move
                g_eta = np.where(np.isfinite(eta), g_eta, 0.0)
            sq_norm = float(np.sum(g_eta ** 2) + np.sum(g_mu ** 2) + np.sum(g_s ** 2))
            if sq_norm == 0.0:
                break
            alpha = float(step_size)
            for _ in range(max_backtracks):
                with np.errstate(all="ignore"):
                    trial = (eta + alpha * g_eta, mu + alpha * g_mu, s + alpha * g_s)
                trial_value = objective(*trial)
                if np.isfinite(trial_value) and trial_value >= value + 1e-4 * alpha * sq_norm:
                    eta, mu, s = trial
                    value = trial_value
                    break
                alpha *= shrink
            else:
                break  # no acceptable step: stay where we are (Q unchanged)
        weights = model.fixed.get("weights", _softmax(eta))
        return GaussianMixtureParams(weights, mu, np.exp(s))

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
        _check_stats(stats, params)
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
        _check_stats(stats, params)
        counts, mu = stats.counts, params.means
        tiny = 10 * np.finfo(float).eps * max(float(counts.sum()), 1.0)
        if np.any(counts <= tiny):
            raise ValueError(f"component(s) {np.flatnonzero(counts <= tiny).tolist()} received no "
                             "responsibility, so their variances are undefined; start elsewhere.")
        scatter = stats.sum_xx - 2.0 * mu * stats.sum_x + counts[:, None] * mu ** 2
        variances = scatter / counts[:, None]
        if np.any(variances <= 0):
            raise ValueError("a variance became zero or negative: a component collapsed onto a "
                             "single point; start elsewhere or use fewer components.")
        return GaussianMixtureParams(params.weights, mu, variances)

    return cm_means, cm_variances
