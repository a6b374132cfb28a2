"""The multivariate t distribution with unknown degrees of freedom, as a latent-variable model.

Book: chapter "Generalized EM and ECM", section on ECME. The t distribution t_nu(mu, Sigma) in D
dimensions is a scale mixture of normals: with a latent precision weight w_n per point,

    w_n ~ Gamma(nu/2, rate nu/2),   x_n | w_n ~ N(mu, Sigma / w_n),      (generalized_em-t-latent)

and integrating w_n out gives the density

    log t_nu(x | mu, Sigma) = log Gamma((nu + D)/2) - log Gamma(nu/2) - (D/2) log(nu pi)
                              - (1/2) log det Sigma - ((nu + D)/2) log(1 + delta / nu),

with delta = (x - mu)^T Sigma^{-1} (x - mu). The posterior of a weight is again a Gamma,

    w_n | x_n ~ Gamma((nu + D)/2, rate (nu + delta_n)/2),              (generalized_em-t-posterior)

so E[w_n] = (nu + D)/(nu + delta_n) and E[log w_n] = psi((nu + D)/2) - log((nu + delta_n)/2),
psi the digamma function. The expected sufficient statistics are

    N,  S_w = sum_n E[w_n],  S_wx = sum_n E[w_n] x_n,  S_wxx = sum_n E[w_n] x_n x_n^T,
    S_lw = sum_n E[log w_n],

and Q(theta | theta_t) separates into a part in (mu, Sigma) and a part in nu:

    mu = S_wx / S_w,   Sigma = (S_wxx - S_wx mu^T - mu S_wx^T + S_w mu mu^T) / N,
    nu: log(nu/2) + 1 - psi(nu/2) + (S_lw - S_w)/N = 0                  (generalized_em-t-dof-q)

(the M-step). ECME (Liu and Rubin 1994) replaces the last equation by the maximization of the
log-likelihood itself over nu, whose derivative is (equation ``generalized_em-t-dof-loglik``)

    d l / d nu = (1/2) sum_n [psi((nu + D)/2) - psi(nu/2) - log(1 + delta_n/nu)
                              + (delta_n - D)/(nu + delta_n)].

Both one-dimensional problems are solved in log nu on [DOF_MIN, DOF_MAX]. Mahalanobis distances
come from a Cholesky factor of Sigma; no inverse or determinant is formed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, gammaln

from .._validation import as_data_matrix, as_float_array, check_generator

#: The degrees of freedom are searched in [DOF_MIN, DOF_MAX]. At DOF_MAX the t distribution is a
#: normal distribution for every practical purpose; data that prefer a larger nu are normal.
DOF_MIN = 1e-2
DOF_MAX = 1e6
_LOG_PI = np.log(np.pi)
_LOG_2PI = np.log(2.0 * np.pi)
_XTOL = 1e-13          # absolute tolerance on log nu of the root finders (relative on nu)
_GRID = 61             # points of the log-nu grid that brackets the maximum of l over nu


def _cholesky(scale: np.ndarray, what: str) -> np.ndarray:
    try:
        chol = np.linalg.cholesky(scale)
    except np.linalg.LinAlgError:
        chol = None
    if chol is None or np.min(np.diag(chol)) ** 2 <= 10 * np.finfo(float).eps * np.max(np.diag(scale)):
        raise ValueError(f"{what} is not positive definite: the data do not determine it (fewer "
                         "points than dimensions, or collinear columns). Use more data or fewer columns.")
    return chol


@dataclass(frozen=True)
class MultivariateTParams:
    """Parameters theta = (mu, Sigma, nu) of a D-dimensional t distribution.

    Parameters
    ----------
    mean : array_like, shape (D,)
        The location mu.
    scale : array_like, shape (D, D)
        The scale matrix Sigma, symmetric positive definite (the covariance is
        nu / (nu - 2) Sigma when nu > 2).
    dof : float
        The degrees of freedom nu, in [DOF_MIN, DOF_MAX].
    """

    mean: np.ndarray
    scale: np.ndarray
    dof: float

    def __post_init__(self):
        mean = as_float_array(self.mean, (None,), "mean")
        D = mean.shape[0]
        if D == 0:
            raise ValueError("mean must have at least one entry.")
        scale = as_float_array(self.scale, (D, D), "scale")
        if not np.allclose(scale, scale.T, rtol=1e-10, atol=1e-12):
            raise ValueError("scale must be a symmetric matrix; symmetrize it with (S + S.T) / 2.")
        _cholesky(scale, "scale")
        dof = float(as_float_array(self.dof, (), "dof"))
        if not DOF_MIN <= dof <= DOF_MAX:
            raise ValueError(f"dof must lie in [{DOF_MIN:g}, {DOF_MAX:g}]; got {dof!r}.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "dof", dof)

    @property
    def n_features(self) -> int:
        """D, the dimension."""
        return self.mean.shape[0]


@dataclass(frozen=True)
class MultivariateTStats:
    """Expected complete-data sufficient statistics of a t sample (additive, scalable).

    Attributes
    ----------
    count : float
        N.
    sum_w : float
        S_w = sum_n E[w_n].
    sum_wx : ndarray, shape (D,)
        S_wx = sum_n E[w_n] x_n.
    sum_wxx : ndarray, shape (D, D)
        S_wxx = sum_n E[w_n] x_n x_n^T.
    sum_log_w : float
        S_lw = sum_n E[log w_n].
    """

    count: float
    sum_w: float
    sum_wx: np.ndarray
    sum_wxx: np.ndarray
    sum_log_w: float

    def __add__(self, other: "MultivariateTStats") -> "MultivariateTStats":
        if not isinstance(other, MultivariateTStats):
            return NotImplemented
        return MultivariateTStats(self.count + other.count, self.sum_w + other.sum_w,
                                  self.sum_wx + other.sum_wx, self.sum_wxx + other.sum_wxx,
                                  self.sum_log_w + other.sum_log_w)

    def __mul__(self, c: float) -> "MultivariateTStats":
        return MultivariateTStats(c * self.count, c * self.sum_w, c * self.sum_wx, c * self.sum_wxx,
                                  c * self.sum_log_w)

    __rmul__ = __mul__


@dataclass(frozen=True)
class MultivariateTPosterior:
    """The Gamma posterior of every weight: w_n | x_n ~ Gamma(shape, rate_n).

    Attributes
    ----------
    shape : float
        (nu + D) / 2, the same for every point.
    rate : ndarray, shape (N,)
        (nu + delta_n) / 2.
    """

    shape: float
    rate: np.ndarray

    @property
    def mean_w(self) -> np.ndarray:
        """E[w_n], shape (N,)."""
        return self.shape / self.rate

    @property
    def mean_log_w(self) -> np.ndarray:
        """E[log w_n], shape (N,)."""
        return digamma(self.shape) - np.log(self.rate)


def _dof_q_derivative(c: float, dof: float) -> float:
    """(2/N) dQ/dnu = log(nu/2) + 1 - psi(nu/2) + c, with c = (S_lw - S_w) / N."""
    return float(np.log(dof / 2.0) + 1.0 - digamma(dof / 2.0) + c)


def _loglik_given_delta(delta: np.ndarray, half_log_det: float, D: int, dof) -> np.ndarray:
    """sum_n log t_nu(x_n) for one or several nu (array), from the distances delta_n."""
    dof = np.asarray(dof, dtype=float)
    per_nu = (gammaln((dof + D) / 2) - gammaln(dof / 2) - 0.5 * D * (np.log(dof) + _LOG_PI)
              - half_log_det)
    body = np.log1p(delta[:, None] / dof.ravel()[None, :]).sum(axis=0) * (dof.ravel() + D) / 2
    return (delta.size * per_nu.ravel() - body).reshape(dof.shape)


def _dof_loglik_derivative(delta: np.ndarray, D: int, dof: float) -> float:
    """d l / d nu at fixed (mu, Sigma), equation generalized_em-t-dof-loglik."""
    return 0.5 * float(np.sum(digamma((dof + D) / 2) - digamma(dof / 2) - np.log1p(delta / dof)
                              + (delta - D) / (dof + delta)))


class MultivariateT:
    """The D-dimensional t distribution t_nu(mu, Sigma) with unknown mu, Sigma and nu.

    The latent variable of point n is its precision weight w_n (equation
    ``generalized_em-t-latent``). The model supplies the pieces of :func:`emlib.em` and, for the
    conditional maximizations of ECM and ECME, the steps :meth:`location_scale_step` (CM-step on
    Q for (mu, Sigma)), :meth:`dof_q_step` (CM-step on Q for nu) and :meth:`dof_loglik_step`
    (the ECME step: nu maximizing the log-likelihood itself).

    Notes
    -----
    Q separates into a part in (mu, Sigma) and a part in nu, so the two CM-steps on Q together are
    the exact M-step: ECM with these blocks *is* EM for this model.
    """

    def __repr__(self) -> str:
        return "MultivariateT()"

    # ------------------------------------------------------------------ validation
    def check_data(self, X) -> np.ndarray:
        """Return ``X`` as a float array (N, D) with N > D, or raise ``ValueError``."""
        X = as_data_matrix(X, min_rows=2)
        if X.shape[0] <= X.shape[1]:
            raise ValueError(f"X has {X.shape[0]} rows in {X.shape[1]} dimensions; more rows than "
                             "dimensions are needed to estimate the scale matrix.")
        return X

    def check_params(self, params, X=None) -> MultivariateTParams:
        """Raise ``ValueError`` unless ``params`` fit this model (and the data ``X``, if given)."""
        if not isinstance(params, MultivariateTParams):
            raise ValueError(f"params must be MultivariateTParams; got {type(params).__name__}.")
        if X is not None and params.n_features != np.shape(X)[1]:
            raise ValueError(f"params are for D = {params.n_features} dimensions but X has "
                             f"{np.shape(X)[1]} columns.")
        return params

    # ------------------------------------------------------------------ densities
    def _distances(self, X: np.ndarray, params: MultivariateTParams) -> tuple[np.ndarray, float]:
        """delta_n = (x_n - mu)^T Sigma^{-1} (x_n - mu), shape (N,), and (1/2) log det Sigma."""
        chol = _cholesky(params.scale, "the scale matrix")
        z = np.linalg.solve(chol, (X - params.mean).T)          # L^{-1} (x_n - mu), (D, N)
        return np.einsum("dn,dn->n", z, z), float(np.log(np.diag(chol)).sum())

    def log_likelihood_per_point(self, X, params: MultivariateTParams) -> np.ndarray:
        """log t_nu(x_n | mu, Sigma) for each row, shape (N,)."""
        X = self.check_data(X)
        params = self.check_params(params, X)
        delta, half_log_det = self._distances(X, params)
        D, dof = params.n_features, params.dof
        return (gammaln((dof + D) / 2) - gammaln(dof / 2) - 0.5 * D * (np.log(dof) + _LOG_PI)
                - half_log_det - 0.5 * (dof + D) * np.log1p(delta / dof))

    def log_likelihood(self, X, params: MultivariateTParams) -> float:
        """log p(X | theta) = sum_n log t_nu(x_n | mu, Sigma)."""
        return float(self.log_likelihood_per_point(X, params).sum())

    def posterior(self, X, params: MultivariateTParams) -> MultivariateTPosterior:
        """q(w) = p(w | x, theta): Gamma((nu + D)/2, rate (nu + delta_n)/2) for every point."""
        X = self.check_data(X)
        params = self.check_params(params, X)
        delta, _ = self._distances(X, params)
        return MultivariateTPosterior(0.5 * (params.dof + params.n_features), 0.5 * (params.dof + delta))

    def log_joint(self, X, params: MultivariateTParams, w) -> np.ndarray:
        """log p(x_n, w_n | theta) = log N(x_n | mu, Sigma / w_n) + log Gamma(w_n | nu/2, nu/2), shape (N,).

        Parameters
        ----------
        w : array_like, shape (N,)
            Positive weights, one per row (a completion of the data).
        """
        X = self.check_data(X)
        params = self.check_params(params, X)
        w = as_float_array(w, (X.shape[0],), "w")
        if np.any(w <= 0):
            raise ValueError("the weights w must be positive.")
        delta, half_log_det = self._distances(X, params)
        D, a = params.n_features, params.dof / 2
        log_normal = 0.5 * D * (np.log(w) - _LOG_2PI) - half_log_det - 0.5 * w * delta
        log_gamma = a * np.log(a) - gammaln(a) + (a - 1) * np.log(w) - a * w
        return log_normal + log_gamma

    # ------------------------------------------------------------------ E-step
    def expected_stats(self, X, q: MultivariateTPosterior) -> MultivariateTStats:
        """N, sum E[w_n], sum E[w_n] x_n, sum E[w_n] x_n x_n^T and sum E[log w_n] under q."""
        X = np.asarray(X, dtype=float)
        if not isinstance(q, MultivariateTPosterior) or np.shape(q.rate) != (X.shape[0],):
            raise ValueError("q must be a MultivariateTPosterior with one rate per row of X.")
        w = q.mean_w
        weighted = w[:, None] * X
        sum_wxx = X.T @ weighted
        return MultivariateTStats(float(X.shape[0]), float(w.sum()), weighted.sum(axis=0),
                                  0.5 * (sum_wxx + sum_wxx.T), float(q.mean_log_w.sum()))

    def e_step(self, X, params: MultivariateTParams) -> tuple[MultivariateTStats, float]:
        """Both parts of the E-step: the expected statistics and log p(X | theta) at the same theta."""
        X = self.check_data(X)
        params = self.check_params(params, X)
        delta, half_log_det = self._distances(X, params)
        D = params.n_features
        q = MultivariateTPosterior(0.5 * (params.dof + D), 0.5 * (params.dof + delta))
        loglik = float(_loglik_given_delta(delta, half_log_det, D, params.dof))
        return self.expected_stats(X, q), loglik

    # ------------------------------------------------------------------ Q and its maximizers
    def q_from_stats(self, stats: MultivariateTStats, params: MultivariateTParams) -> float:
        """Q(theta | theta_t) from the statistics of the E-step at theta_t alone.

        Q = (D/2 + nu/2 - 1) S_lw - (nu/2) S_w - (N D/2) log 2 pi - (N/2) log det Sigma
            - (1/2) tr(Sigma^{-1} W) + N [(nu/2) log(nu/2) - log Gamma(nu/2)],
        W = S_wxx - S_wx mu^T - mu S_wx^T + S_w mu mu^T.
        """
        self._check_stats(stats, params)
        N, D, a = stats.count, params.n_features, params.dof / 2
        mu = params.mean
        scatter = stats.sum_wxx - np.outer(stats.sum_wx, mu) - np.outer(mu, stats.sum_wx) \
            + stats.sum_w * np.outer(mu, mu)
        chol = _cholesky(params.scale, "the scale matrix")
        half_log_det = float(np.log(np.diag(chol)).sum())
        z = np.linalg.solve(chol, np.linalg.solve(chol, scatter).T)   # L^{-1} W L^{-T}
        return float((0.5 * D + a - 1) * stats.sum_log_w - a * stats.sum_w - 0.5 * N * D * _LOG_2PI
                     - N * half_log_det - 0.5 * np.trace(z) + N * (a * np.log(a) - gammaln(a)))

    def location_scale_step(self, stats: MultivariateTStats, params: MultivariateTParams) -> MultivariateTParams:
        """CM-step on Q for (mu, Sigma): mu = S_wx / S_w, Sigma = W / N (nu unchanged)."""
        self._check_stats(stats, params)
        return MultivariateTParams(*self._location_scale(stats), params.dof)

    @staticmethod
    def _location_scale(stats: MultivariateTStats) -> tuple[np.ndarray, np.ndarray]:
        mu = stats.sum_wx / stats.sum_w
        scatter = stats.sum_wxx - np.outer(stats.sum_wx, mu) - np.outer(mu, stats.sum_wx) \
            + stats.sum_w * np.outer(mu, mu)
        scale = scatter / stats.count
        return mu, 0.5 * (scale + scale.T)

    def dof_q_step(self, stats: MultivariateTStats, params: MultivariateTParams) -> MultivariateTParams:
        """CM-step on Q for nu: the root of equation ``generalized_em-t-dof-q`` ((mu, Sigma) unchanged).

        The left side decreases strictly in nu (log x - psi(x) decreases), so the root is unique;
        when it lies outside [DOF_MIN, DOF_MAX] the nearer end is returned.
        """
        self._check_stats(stats, params)
        c = (stats.sum_log_w - stats.sum_w) / stats.count
        return MultivariateTParams(params.mean, params.scale, self._dof_root(lambda v: _dof_q_derivative(c, v)))

    def m_step(self, stats: MultivariateTStats) -> MultivariateTParams:
        """argmax_theta Q(theta | theta_t): (mu, Sigma) of :meth:`location_scale_step` and nu of
        :meth:`dof_q_step` (Q separates, so the two blocks are maximized independently)."""
        if not isinstance(stats, MultivariateTStats):
            raise ValueError(f"stats must be MultivariateTStats; got {type(stats).__name__}.")
        c = (stats.sum_log_w - stats.sum_w) / stats.count
        return MultivariateTParams(*self._location_scale(stats),
                                   self._dof_root(lambda v: _dof_q_derivative(c, v)))

    def dof_loglik_step(self, X, params: MultivariateTParams) -> MultivariateTParams:
        """The ECME step: nu maximizing log p(X | mu, Sigma, nu) with (mu, Sigma) held fixed.

        The maximum is bracketed on a grid of log nu over [DOF_MIN, DOF_MAX] and refined by a root
        finder on d l / d nu (equation ``generalized_em-t-dof-loglik``); the result is never worse
        than the current nu, so the step never lowers the log-likelihood.
        """
        X = self.check_data(X)
        params = self.check_params(params, X)
        delta, half_log_det = self._distances(X, params)
        D = params.n_features
        grid = np.exp(np.linspace(np.log(DOF_MIN), np.log(DOF_MAX), _GRID))
        grid[0], grid[-1] = DOF_MIN, DOF_MAX
        values = _loglik_given_delta(delta, half_log_det, D, grid)
        best = int(np.argmax(values))
        slope = lambda v: _dof_loglik_derivative(delta, D, v)   # noqa: E731
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, _GRID - 1)]
        roots = [float(np.exp(brentq(lambda u: slope(np.exp(u)), np.log(a), np.log(b), xtol=_XTOL)))
                 for a, b in ((lo, grid[best]), (grid[best], hi)) if a < b and slope(a) > 0 > slope(b)]
        candidates = roots + [grid[best], params.dof]
        values = _loglik_given_delta(delta, half_log_det, D, np.array(candidates))
        # Near the maximum the values differ by rounding only; then the root of d l / d nu, the
        # exact maximizer, is preferred to the current nu (else the iteration would stall there).
        rounding = 1e-12 * max(abs(float(values.max())), 1.0)
        pick = 0 if roots and values[0] >= values.max() - rounding else int(np.argmax(values))
        return MultivariateTParams(params.mean, params.scale, float(candidates[pick]))

    def loglik_dof_derivative(self, X, params: MultivariateTParams) -> float:
        """d log p(X | theta) / d nu at theta (equation ``generalized_em-t-dof-loglik``)."""
        X = self.check_data(X)
        params = self.check_params(params, X)
        return _dof_loglik_derivative(self._distances(X, params)[0], params.n_features, params.dof)

    def q_dof_derivative(self, stats: MultivariateTStats, dof: float) -> float:
        """d Q(theta | theta_t) / d nu at degrees of freedom ``dof``, from the statistics at theta_t."""
        c = (stats.sum_log_w - stats.sum_w) / stats.count
        return 0.5 * stats.count * _dof_q_derivative(c, float(dof))

    @staticmethod
    def _dof_root(derivative) -> float:
        """The root in [DOF_MIN, DOF_MAX] of a decreasing function of nu, or the nearer end."""
        lo, hi = np.log(DOF_MIN), np.log(DOF_MAX)
        if derivative(DOF_MIN) <= 0:
            return DOF_MIN
        if derivative(DOF_MAX) >= 0:
            return DOF_MAX
        return float(np.clip(np.exp(brentq(lambda u: derivative(np.exp(u)), lo, hi, xtol=_XTOL)),
                             DOF_MIN, DOF_MAX))

    @staticmethod
    def _check_stats(stats, params) -> None:
        if not isinstance(stats, MultivariateTStats):
            raise ValueError(f"stats must be MultivariateTStats; got {type(stats).__name__}.")
        if stats.sum_wx.shape != params.mean.shape:
            raise ValueError(f"stats are for D = {stats.sum_wx.shape[0]} dimensions, params for "
                             f"D = {params.n_features}; compute them with the same data.")

    # ------------------------------------------------------------------ start and simulation
    def init_params(self, X, rng: np.random.Generator, dof: float = 10.0) -> MultivariateTParams:
        """A deterministic start: the sample mean, the sample covariance and ``dof`` (default 10).

        ``rng`` is checked but not used.
        """
        X = self.check_data(X)
        check_generator(rng)
        centred = X - X.mean(axis=0)
        return MultivariateTParams(X.mean(axis=0), centred.T @ centred / X.shape[0], dof)

    def sample(self, params: MultivariateTParams, n: int, rng: np.random.Generator):
        """Draw n points: w_n ~ Gamma(nu/2, rate nu/2), x_n ~ N(mu, Sigma / w_n).

        Returns
        -------
        X : ndarray, shape (n, D)
        w : ndarray, shape (n,)
            The latent weights.
        """
        self.check_params(params)
        rng = check_generator(rng)
        w = rng.gamma(params.dof / 2, 2.0 / params.dof, size=n)
        chol = _cholesky(params.scale, "scale")
        noise = rng.standard_normal((n, params.n_features)) @ chol.T
        return params.mean + noise / np.sqrt(w)[:, None], w
