"""Gradient methods for the Gaussian mixture log-likelihood, to set beside EM.

Book: chapters "Maximum likelihood with hidden variables" (the gradient with respect to the
means, equation ``hidden_variables-grad-mu``) and "EM versus gradient methods" (the
unconstrained parameterization, the drivers, and the EM step as a preconditioned gradient step,
equation ``em_vs_gradient-precond``).

With responsibilities r_nk and the expected statistics N_k = sum_n r_nk, S1_k = sum_n r_nk x_n,
S2_k = sum_n r_nk x_n x_n^T of one E-step (``model.e_step``), the gradient of
ell(theta) = log p(X | theta) is

    d ell / d mu_k     = Sigma_k^{-1} (S1_k - N_k mu_k)
    d ell / d Sigma_k  = 1/2 (Sigma_k^{-1} C_k Sigma_k^{-1} - N_k Sigma_k^{-1}),
                         C_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T
    d ell / d alpha_j  = N_j - N pi_j          (pi = softmax(alpha), alpha_K = 0)

so one pass over the data gives the log-likelihood and its whole gradient, exactly as one pass
gives an EM step. Since the EM step for the means is mu_k' = S1_k / N_k,

    mu_k' - mu_k = (Sigma_k / N_k) d ell / d mu_k,

an EM step is a gradient step with the positive definite preconditioner blockdiag(Sigma_k / N_k)
(Xu and Jordan 1996); :func:`em_means_preconditioner` returns it.

The drivers :func:`gradient_ascent`, :func:`newton_ascent` and :func:`lbfgs_ascent` work on the
unconstrained vector of a :class:`MixtureObjective` (softmax logits for the weights, the means,
and the Cholesky factors of the covariances with log-diagonal), reuse
:class:`emlib.ConvergenceMonitor`, and return an :class:`emlib.EMResult`, so their traces compare
directly with those of :func:`emlib.em`.
Densities, responsibilities and statistics all come from the model's own public methods.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import optimize

from ._validation import check_bool, check_callable, check_integer, check_number
from .em import MAX_ITER, TOL, ConvergenceMonitor, EMResult
from .models._numerics import cholesky, empty_components, precision_cholesky, solve_cholesky, solve_lower
from .models.gaussian_mixture import GaussianMixture, GaussianMixtureParams

__all__ = ["MixtureObjective", "em_means_preconditioner", "gradient_ascent", "lbfgs_ascent", "means_gradient",
           "means_hessian", "newton_ascent"]


# ---------------------------------------------------------------------------- checks
def _check_mixture(model) -> GaussianMixture:
    if not isinstance(model, GaussianMixture):
        raise ValueError(f"model must be an emlib.GaussianMixture; got {type(model).__name__}. "
                         "The gradient formulas here are those of the Gaussian mixture.")
    return model


def _checked(model, X, params):
    model = _check_mixture(model)
    X = model.check_data(X)
    params = model.check_params(params, X)
    return model, X, params


def _means_gradient_from_stats(stats, params: GaussianMixtureParams) -> np.ndarray:
    """Sigma_k^{-1} (S1_k - N_k mu_k), with S1_k - N_k mu_k from the moments about the reference point."""
    residual = stats.centred_sum_x + stats.counts[:, None] * (stats.centre - params.means)   # (K, D)
    if params.covariance_type == "diag":
        return residual / params.covariances
    chol = cholesky(params.covariances)
    return solve_cholesky(chol, residual[:, :, None])[:, :, 0]


# ---------------------------------------------------------------------------- the means
def means_gradient(model, X, params) -> np.ndarray:
    """The gradient of ell(theta) = log p(X | theta) with respect to the component means.

    d ell / d mu_k = sum_n r_nk Sigma_k^{-1} (x_n - mu_k) = Sigma_k^{-1} (S1_k - N_k mu_k)
    (book: equation ``hidden_variables-grad-mu``). Valid whether or not the weights and
    covariances are fixed in ``model``.

    Parameters
    ----------
    model : GaussianMixture
    X : array_like, shape (N, D)
    params : GaussianMixtureParams

    Returns
    -------
    ndarray, shape (K, D)
    """
    model, X, params = _checked(model, X, params)
    stats, _ = model.e_step(X, params)
    return _means_gradient_from_stats(stats, params)


def means_hessian(model, X, params) -> np.ndarray:
    """The Hessian of ell(theta) with respect to the means (the other parameters held fixed).

    With a_nk = Sigma_k^{-1} (x_n - mu_k), block (j, k) is

        sum_n r_nj (delta_jk - r_nk) a_nj a_nk^T  -  delta_jk N_j Sigma_j^{-1}

    (book: equation ``hidden_variables-hessian``). The first term is the covariance of the
    "score" across components under the posterior: it is what lets the surface have saddle
    points and several maxima. Arguments as for :func:`means_gradient`.

    Returns
    -------
    ndarray, shape (K * D, K * D)
        Rows and columns ordered like ``params.means.ravel()``.
    """
    model, X, params = _checked(model, X, params)
    K, D = params.means.shape
    r = model.posterior(X, params)                       # (N, K)
    diff = X[:, None, :] - params.means[None, :, :]      # (N, K, D)
    if params.covariance_type == "diag":
        a = diff / params.covariances[None]
        precision_blocks = np.stack([np.diag(1.0 / s) for s in params.covariances])
    else:
        chol = cholesky(params.covariances)
        a = solve_cholesky(chol, diff.transpose(1, 2, 0)).transpose(2, 0, 1)        # Sigma_k^{-1}(x_n - mu_k)
        prec_chol = precision_cholesky(chol)
        precision_blocks = prec_chol @ prec_chol.transpose(0, 2, 1)          # Sigma_k^{-1} = P_k P_k^T
    ra = r[:, :, None] * a                                # (N, K, D): r_nk a_nk
    # sum_n r_nj a_nj (delta_jk a_nk - r_nk a_nk)^T, all blocks at once
    H = np.einsum("njd,nke->jdke", ra, -ra)
    for k in range(K):
        H[k, :, k, :] += np.einsum("nd,ne->de", ra[:, k], a[:, k])
        H[k, :, k, :] -= r[:, k].sum() * precision_blocks[k]
    return H.reshape(K * D, K * D)


def em_means_preconditioner(model, X, params) -> np.ndarray:
    """The matrix P(theta) with mu_EM - mu = P(theta) grad_mu ell(theta): P = blockdiag(Sigma_k / N_k).

    Xu and Jordan (1996); book: equation ``em_vs_gradient-precond``. P is positive definite
    whenever every N_k > 0, so the EM step for the means is an ascent direction. Arguments as
    for :func:`means_gradient`; the result is laid out like :func:`means_hessian`'s, (K D, K D).
    """
    model, X, params = _checked(model, X, params)
    stats, _ = model.e_step(X, params)
    K, D = params.means.shape
    if empty_components(stats.counts).size:
        raise ValueError("a component has no responsibility (N_k = 0), so Sigma_k / N_k is undefined; "
                         "start from other parameters.")
    cov = params.covariances
    blocks = [np.diag(c) if params.covariance_type == "diag" else c for c in cov]
    P = np.zeros((K * D, K * D))
    for k, (block, n_k) in enumerate(zip(blocks, stats.counts)):
        P[k * D:(k + 1) * D, k * D:(k + 1) * D] = block / n_k
    return P


# ---------------------------------------------------------------------------- unconstrained objective
class MixtureObjective:
    """ell(theta) = log p(X | theta) as a function of an unconstrained vector eta.

    The free parameters (those not in ``model.fixed``) are stacked in this order:

    - weights: K - 1 logits alpha_k = log pi_k - log pi_K (pi = softmax((alpha, 0)));
    - means: ``means.ravel()``, K * D numbers;
    - covariances: for each component, the lower triangle of its Cholesky factor L_k
      (Sigma_k = L_k L_k^T) row by row, with each diagonal entry replaced by its logarithm;
      for diagonal covariances the D numbers log sqrt(Sigma_kdd).

    Every vector maps to valid parameters, so unconstrained optimizers apply; the map is one to
    one, so :meth:`to_vector` inverts :meth:`to_params` (book: equation ``em_vs_gradient-reparam``).
    The gradient follows equations ``em_vs_gradient-grad-alpha``, ``hidden_variables-grad-mu``,
    ``em_vs_gradient-grad-sigma`` and ``em_vs_gradient-grad-chol``.

    Parameters
    ----------
    model : GaussianMixture
        Its ``fixed`` parameters are held at their values and are not part of eta.
    X : array_like, shape (N, D)

    Attributes
    ----------
    n_passes : int
        Passes over the data so far (each evaluation of the value, or of value and gradient
        together, is one E-step pass). The cost measure used to compare methods in the book.
    size : int
        The length of eta.
    """

    def __init__(self, model, X):
        self.model = _check_mixture(model)
        self.X = model.check_data(X)
        self.n_passes = 0
        K, D = model.n_components, self.X.shape[1]
        self._K, self._D = K, D
        self._diag = model.covariance_type == "diag"
        self._tril = np.tril_indices(D)
        self._free = [name for name in ("weights", "means", "covariances") if name not in model.fixed]
        if not self._free:
            raise ValueError("every parameter of the model is fixed, so there is nothing to optimize; "
                             "leave at least one of weights, means, covariances out of `fixed`.")
        sizes = {"weights": K - 1, "means": K * D, "covariances": K * (D if self._diag else D * (D + 1) // 2)}
        self._slices, start = {}, 0
        for name in self._free:
            self._slices[name] = slice(start, start + sizes[name])
            start += sizes[name]
        self.size = start

    def __repr__(self) -> str:
        return f"MixtureObjective({self.model!r}, free={self._free}, size={self.size})"

    # ------------------------------------------------------------------ the map eta <-> theta
    def _check_vector(self, eta) -> np.ndarray:
        eta = np.asarray(eta, dtype=float)
        if eta.shape != (self.size,):
            raise ValueError(f"the parameter vector must have shape ({self.size},) for free parameters "
                             f"{self._free}; got shape {eta.shape}.")
        if not np.all(np.isfinite(eta)):
            raise ValueError("the parameter vector contains NaN or infinite values; if this happened "
                             "during an ascent, the step size is too large.")
        return eta

    def to_vector(self, params: GaussianMixtureParams) -> np.ndarray:
        """The unconstrained vector eta of ``params`` (inverse of :meth:`to_params`); shape (size,)."""
        params = self.model.check_params(params, self.X)
        parts = []
        if "weights" in self._free:
            if np.any(params.weights <= 0):
                raise ValueError("weights must be positive to have logits; got a zero weight.")
            log_w = np.log(params.weights)
            parts.append(log_w[:-1] - log_w[-1])
        if "means" in self._free:
            parts.append(params.means.ravel())
        if "covariances" in self._free:
            if self._diag:
                parts.append(0.5 * np.log(params.covariances).ravel())
            else:
                chol = cholesky(params.covariances)
                idx = np.arange(self._D)
                chol[:, idx, idx] = np.log(chol[:, idx, idx])
                parts.append(chol[:, self._tril[0], self._tril[1]].ravel())
        return np.concatenate(parts)

    def to_params(self, eta) -> GaussianMixtureParams:
        """The parameters theta of an unconstrained vector eta (fixed ones from ``model.fixed``)."""
        eta = self._check_vector(eta)
        K, D = self._K, self._D
        fixed = self.model.fixed
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, clearly
            if "weights" in self._free:
                logits = np.append(eta[self._slices["weights"]], 0.0)
                w = np.exp(logits - logits.max())
                weights = w / w.sum()
            else:
                weights = fixed["weights"]
            means = eta[self._slices["means"]].reshape(K, D) if "means" in self._free else fixed["means"]
            if "covariances" in self._free:
                values = eta[self._slices["covariances"]]
                if self._diag:
                    covariances = np.exp(2.0 * values.reshape(K, D))
                else:
                    chol = np.zeros((K, D, D))
                    chol[:, self._tril[0], self._tril[1]] = values.reshape(K, -1)
                    idx = np.arange(D)
                    chol[:, idx, idx] = np.exp(chol[:, idx, idx])
                    covariances = chol @ chol.transpose(0, 2, 1)
            else:
                covariances = fixed["covariances"]
        if not (np.all(np.isfinite(covariances)) and np.all(np.isfinite(weights))):
            raise ValueError("the parameter vector overflowed (a log-standard-deviation is too large); "
                             "if this happened during an ascent, the step size is too large.")
        return GaussianMixtureParams(weights, means, covariances)

    # ------------------------------------------------------------------ value, gradient, Hessian
    def value(self, eta) -> float:
        """ell at eta: one pass over the data."""
        params = self.to_params(eta)
        self.n_passes += 1
        return self.model.log_likelihood(self.X, params)

    def value_and_gradient(self, eta) -> tuple[float, np.ndarray]:
        """ell and its gradient with respect to eta, both from one E-step pass; the gradient has shape (size,)."""
        params = self.to_params(eta)
        stats, loglik = self.model.e_step(self.X, params)
        self.n_passes += 1
        grad = np.empty(self.size)
        if "weights" in self._free:
            n_total = stats.counts.sum()
            grad[self._slices["weights"]] = (stats.counts - n_total * params.weights)[:-1]
        if "means" in self._free:
            grad[self._slices["means"]] = _means_gradient_from_stats(stats, params).ravel()
        if "covariances" in self._free:
            grad[self._slices["covariances"]] = self._covariance_gradient(stats, params).ravel()
        return float(loglik), grad

    def _covariance_gradient(self, stats, params) -> np.ndarray:
        C = stats.scatter(params.means)                  # sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T
        N_k = stats.counts
        if self._diag:
            # d ell / d log sd_kd = C_kd / s_kd - N_k
            return C / params.covariances - N_k[:, None]
        D, idx = self._D, np.arange(self._D)
        chol = cholesky(params.covariances)                                   # L_k, (K, D, D)
        chol_inv = solve_lower(chol, np.broadcast_to(np.eye(D), chol.shape))  # L_k^{-1}, a triangular solve
        # d ell / d L = tril(2 G L) with G = d ell / d Sigma; 2 G L = L^{-T} (L^{-1} C L^{-T} - N_k I)
        whitened = chol_inv @ C @ chol_inv.transpose(0, 2, 1)
        dL = chol_inv.transpose(0, 2, 1) @ (whitened - N_k[:, None, None] * np.eye(D))
        dL[:, idx, idx] *= chol[:, idx, idx]  # chain rule through L_ii = exp(lambda_i)
        return dL[:, self._tril[0], self._tril[1]]

    def gradient(self, eta) -> np.ndarray:
        """The gradient of ell with respect to eta, shape (size,)."""
        return self.value_and_gradient(eta)[1]

    def negative(self, eta) -> tuple[float, np.ndarray]:
        """(-ell, -gradient): the form ``scipy.optimize.minimize(..., jac=True)`` expects."""
        value, grad = self.value_and_gradient(eta)
        return -value, -grad

    def hessian(self, eta, rel_step: float = 1e-5) -> np.ndarray:
        """The Hessian of ell at eta by central differences of the analytic gradient, shape (size, size).

        Costs 2 * size passes over the data. The step for coordinate i is
        ``rel_step * max(1, |eta_i|)``; the result is symmetrized.
        """
        eta = self._check_vector(eta)
        rel_step = check_number(rel_step, "rel_step", above=0.0)
        H = np.empty((self.size, self.size))
        for i in range(self.size):
            h = rel_step * max(1.0, abs(eta[i]))
            e = np.zeros(self.size)
            e[i] = h
            H[:, i] = (self.gradient(eta + e) - self.gradient(eta - e)) / (2 * h)
        return 0.5 * (H + H.T)


# ---------------------------------------------------------------------------- drivers
def _backtrack(objective: MixtureObjective, eta, value, grad, direction, alpha, c, shrink, max_backtracks):
    """Armijo backtracking: the first alpha * shrink^j with ell(eta + a d) >= ell(eta) + c a g.d.

    Returns (eta, value, grad, alpha) of the accepted point, or None if no step was accepted.
    """
    slope = float(grad @ direction)
    for _ in range(max_backtracks + 1):
        trial = eta + alpha * direction
        try:
            new_value, new_grad = objective.value_and_gradient(trial)
        except ValueError:  # the trial overflowed: treat it like a failed Armijo test
            new_value = -np.inf
        if new_value >= value + c * alpha * slope:
            return trial, new_value, new_grad, alpha
        alpha *= shrink
    return None


def _ascend(objective, x0, direction_of, *, step, line_search, max_iter, tol, c, shrink, max_backtracks,
            callback, grow=None) -> EMResult:
    """The loop shared by the drivers: direction, step (fixed or backtracking), record, callback.

    With a line search, the first trial step is ``step``; later ones are ``grow`` times the last
    accepted step, or ``step`` again if ``grow`` is None.
    """
    _check_objective(objective)
    step = check_number(step, "step", above=0.0)
    c = check_number(c, "the Armijo constant c", above=0.0, below=1.0)
    shrink = check_number(shrink, "shrink", above=0.0, below=1.0)
    if grow is not None:
        grow = check_number(grow, "grow", minimum=1.0, hint=", or None")
    line_search = check_bool(line_search, "line_search")
    max_backtracks = check_integer(max_backtracks, "max_backtracks", minimum=0)
    check_callable(callback, "callback")
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    eta = objective._check_vector(x0).copy()
    trial_step = step
    with monitor:
        value, grad = objective.value_and_gradient(eta)
        monitor.record(value)
        while not monitor.done:
            direction = direction_of(eta, grad)
            if line_search:
                accepted = _backtrack(objective, eta, value, grad, direction, trial_step, c, shrink, max_backtracks)
                if accepted is None:  # no step increases ell measurably: stop where we are
                    break
                eta, value, grad, alpha = accepted
                trial_step = step if grow is None else grow * alpha
            else:
                eta = eta + step * direction
                value, grad = objective.value_and_gradient(eta)
            monitor.record(value)
            if callback is not None:
                callback(monitor.n_iter, objective.to_params(eta), value)
    return monitor.result(objective.to_params(eta))


def _check_objective(objective) -> None:
    if not isinstance(objective, MixtureObjective):
        raise ValueError(f"objective must be an emlib.gradient.MixtureObjective; got {type(objective).__name__}.")


def gradient_ascent(objective: MixtureObjective, x0, *, step: float = 1e-3, line_search: bool = False,
                    max_iter: int = MAX_ITER, tol: float = TOL, c: float = 1e-4, shrink: float = 0.5,
                    grow: float | None = 2.0, max_backtracks: int = 60,
                    callback: Callable[[int, Any, float], None] | None = None) -> EMResult:
    """Maximize ell by gradient ascent, eta_{t+1} = eta_t + alpha_t grad ell(eta_t) (equation
    ``em_vs_gradient-update``; algorithm ``hidden_variables-alg-ga``).

    With ``line_search=False`` alpha_t = ``step`` always (fixed step: may overshoot, oscillate or
    diverge). With ``line_search=True`` each iteration tries a step and halves it (factor
    ``shrink``) until the Armijo condition ell(eta + alpha g) >= ell(eta) + c alpha |g|^2
    (equation ``em_vs_gradient-armijo``) holds
    (backtracking, Nocedal and Wright 2006, Algorithm 3.1), so ell never decreases. The first
    iteration tries ``step``; each later one tries ``grow`` times the step accepted last (so the
    step can grow again after a cut), or ``step`` again if ``grow`` is None.

    Parameters
    ----------
    objective : MixtureObjective
    x0 : array_like, shape (objective.size,)
        The starting vector, e.g. ``objective.to_vector(init)``.
    step : float
        The fixed step, or the first trial step of the line search.
    line_search : bool
        Backtracking (Armijo) or fixed step.
    max_iter, tol : int, float
        As for :func:`emlib.em`: stop when the relative change of ell is at most ``tol``.
    c, shrink, grow, max_backtracks : float, float, float or None, int
        Armijo constant, step reduction factor, growth of the next trial step, and the most
        reductions per iteration. If no trial step is accepted the ascent stops there
        (``converged`` stays False).
    callback : callable ``(t, params_t, loglik_t)``, optional
        As for :func:`emlib.em`.

    Returns
    -------
    EMResult
        ``log_likelihood[t]`` = ell at iterate t; ``params`` the last iterate as parameters.
        The cost in passes over the data is in ``objective.n_passes``.
    """
    return _ascend(objective, x0, lambda eta, grad: grad, step=step, line_search=line_search,
                   max_iter=max_iter, tol=tol, c=c, shrink=shrink, max_backtracks=max_backtracks,
                   callback=callback, grow=grow)


def newton_ascent(objective: MixtureObjective, x0, *, safeguarded: bool = True, max_iter: int = 100,
                  tol: float = 1e-10, min_curvature: float = 1e-8,
                  callback: Callable[[int, Any, float], None] | None = None) -> EMResult:
    """Newton's method for ell: eta_{t+1} = eta_t - alpha_t H^{-1} g, H the Hessian of ell.

    The Hessian comes from :meth:`MixtureObjective.hessian` (2 * size passes per iteration).

    - ``safeguarded=False``: pure Newton, alpha_t = 1 and H as it is. It seeks any stationary
      point, so it can converge to a saddle point or a minimum, and ell can decrease.
    - ``safeguarded=True``: modified Newton (Nocedal and Wright 2006, section 3.4): H is replaced
      by V diag(-max(|lambda_i|, min_curvature * max|lambda|)) V^T, which is negative definite,
      so the direction ascends; alpha_t by Armijo backtracking from 1. ell never decreases.

    Parameters
    ----------
    objective : MixtureObjective
    x0 : array_like, shape (objective.size,)
    safeguarded : bool
    max_iter, tol : int, float
        As for :func:`emlib.em`, with other defaults on purpose: Newton converges quadratically, so
        100 iterations are ample and a tighter ``tol`` costs only an iteration or two, while each
        iteration costs 2 * size passes over the data for the Hessian.
    min_curvature : float
        Relative floor on the modified eigenvalues' magnitudes.
    callback : callable ``(t, params_t, loglik_t)``, optional

    Returns
    -------
    EMResult
    """
    min_curvature = check_number(min_curvature, "min_curvature", above=0.0)
    safeguarded = check_bool(safeguarded, "safeguarded")

    def direction_of(eta, grad):
        H = objective.hessian(eta)
        if not safeguarded:
            try:
                step = -np.linalg.solve(H, grad)
            except np.linalg.LinAlgError:
                step = None
            if step is None or not np.all(np.isfinite(step)):
                raise ValueError("the Hessian is singular here, so pure Newton cannot take a step (this "
                                 "happens on plateaus, where a component is responsible for no data); "
                                 "use safeguarded=True or start elsewhere.")
            return step
        lam, V = np.linalg.eigh(H)
        floor = min_curvature * max(float(np.abs(lam).max()), 1e-300)
        return V @ ((V.T @ grad) / np.maximum(np.abs(lam), floor))

    return _ascend(objective, x0, direction_of, step=1.0, line_search=safeguarded, max_iter=max_iter,
                   tol=tol, c=1e-4, shrink=0.5, max_backtracks=60, callback=callback)


def lbfgs_ascent(objective: MixtureObjective, x0, *, max_iter: int = MAX_ITER, tol: float = TOL, memory: int = 10,
                 callback: Callable[[int, Any, float], None] | None = None) -> EMResult:
    """Maximize ell with L-BFGS: ``scipy.optimize.minimize(method="L-BFGS-B")`` on -ell.

    A quasi-Newton method (Nocedal and Wright 2006, chapter 7): it builds a curvature model from
    the last ``memory`` gradient differences and takes steps that satisfy the Wolfe conditions, so
    ell increases at every accepted iterate. SciPy runs the loop; its relative-reduction rule
    ``ftol`` is set to ``tol``, which is the stopping rule of :func:`emlib.em`, and its gradient
    rule is switched off (``gtol=0``) so that the two methods stop alike. The trace is kept by an
    :class:`emlib.ConvergenceMonitor` (which refuses NaN).

    Parameters
    ----------
    objective : MixtureObjective
    x0 : array_like, shape (objective.size,)
    max_iter : int
        At most this many L-BFGS iterations (each may evaluate ell and its gradient several times).
    tol : float
        Stop when the relative decrease of -ell is at most ``tol``.
    memory : int
        The number of correction pairs kept (SciPy's ``maxcor``).
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every iteration, as for :func:`emlib.em`.

    Returns
    -------
    EMResult
        ``converged`` is SciPy's ``success`` (False when it stopped on ``max_iter`` or a failed
        line search). The cost in passes over the data is in ``objective.n_passes``.
    """
    _check_objective(objective)
    memory = check_integer(memory, "memory", minimum=1)
    check_callable(callback, "callback")
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")  # keeps the trace; SciPy stops
    eta0 = objective._check_vector(x0).copy()
    last = {}

    def negative(eta):
        value, grad = objective.value_and_gradient(eta)
        if not monitor.trace:
            monitor.record(value)  # ell at the start
        last["eta"], last["value"] = eta.copy(), value
        return -value, -grad

    def on_iteration(eta):
        value = last["value"] if np.array_equal(last.get("eta"), eta) else objective.value(eta)
        monitor.record(value)
        if callback is not None:
            callback(monitor.n_iter, objective.to_params(eta), value)

    with monitor:
        result = optimize.minimize(negative, eta0, jac=True, method="L-BFGS-B", callback=on_iteration,
                                   options={"maxiter": monitor.max_iter, "ftol": monitor.tol, "gtol": 0.0,
                                            "maxcor": memory})
        if not monitor.trace:  # max_iter = 0: SciPy may not have evaluated anything
            monitor.record(objective.value(eta0))
    return monitor.result(objective.to_params(result.x), converged=bool(result.success))
