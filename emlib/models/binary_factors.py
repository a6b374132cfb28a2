"""Binary latent factors: each point is a mean plus the loadings of the factors that are on.

Book: chapter "Mean-field variational inference", section "Variational EM". The model
(Ghahramani 1995, "factorial learning") has M binary latent variables per point,

    z_nm ~ Bernoulli(pi_m) independently, m = 1, ..., M,
    x_n | z_n ~ N(mu + sum_m z_nm w_m, sigma^2 I_D),                 (variational_inference-bf-model)

with parameters theta = (pi (M,), mu (D,), W (M, D) with rows w_m, sigma^2). Given x_n the
factors are coupled: log p(z_n | x_n, theta) contains -z_nm z_nl w_m^T w_l / sigma^2 for every
pair m != l ("explaining away"), so the exact posterior is a table over 2^M configurations and
the exact E-step costs O(N 2^M D). The mean-field family q(z_n) = prod_m Bernoulli(lambda_nm)
costs O(N M D) per sweep of the coordinate updates

    logit lambda_nm = logit pi_m
                      + (w_m^T (x_n - mu - sum_{l != m} lambda_nl w_l) - ||w_m||^2 / 2) / sigma^2
                                                                      (variational_inference-vem-estep)

Either way the expected sufficient statistics have one form, additive over points, with
ztilde = (1, z) of length M + 1 and Wtilde = [mu; W] of shape (M + 1, D):

    N,   A = sum_n E[ztilde_n ztilde_n^T],   B = sum_n E[ztilde_n] x_n^T,   c = sum_n ||x_n||^2,

where under the mean-field q, E[z_nm z_nl] = lambda_nm lambda_nl for m != l and lambda_nm for
m = l. The M-step (variational_inference-vem-mstep) is pi_m = A[0, m] / N, Wtilde = A^{-1} B
(by a Cholesky factor of A) and sigma^2 = (c - tr(Wtilde^T B)) / (N D).

Two E-steps are supplied: the exact one (``posterior``, ``expected_stats``, ``e_step``, for
:func:`emlib.em`, feasible for small M) and the mean-field one (``mean_field_init``,
``mean_field_sweep``, ``mean_field_stats``, ``mean_field_elbo``, for
:func:`emlib.variational_em`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import entr, expit, logsumexp

from .._validation import as_data_matrix, as_float_array, check_generator, check_probability_rows

_LOG_2PI = np.log(2.0 * np.pi)
MAX_EXACT_FACTORS = 16  # the exact E-step holds an (N, 2^M) table


@dataclass(frozen=True)
class BinaryFactorsParams:
    """Parameters theta = (pi, mu, W, sigma^2) of the binary factor model.

    Parameters
    ----------
    probs : array_like, shape (M,)
        pi_m = p(z_nm = 1), strictly between 0 and 1.
    mean : array_like, shape (D,)
        mu, the point with every factor off.
    loadings : array_like, shape (M, D)
        Row m is w_m, what factor m adds when it is on.
    noise_var : float
        sigma^2 > 0, the variance of the isotropic noise.
    """

    probs: np.ndarray
    mean: np.ndarray
    loadings: np.ndarray
    noise_var: float

    def __post_init__(self):
        probs = as_float_array(self.probs, (None,), "probs")
        mean = as_float_array(self.mean, (None,), "mean")
        loadings = as_float_array(self.loadings, (probs.shape[0], mean.shape[0]), "loadings")
        noise_var = float(as_float_array(self.noise_var, (), "noise_var"))
        if probs.shape[0] == 0:
            raise ValueError("probs must hold at least one factor probability.")
        if np.any(probs <= 0) or np.any(probs >= 1):
            raise ValueError("probs must lie strictly between 0 and 1 (a factor that is never or always on "
                             f"is no latent variable); got {np.round(probs, 6).tolist()}. Use fewer factors.")
        if not noise_var > 0:
            raise ValueError(f"noise_var must be positive; got {noise_var!r}.")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "loadings", loadings)
        object.__setattr__(self, "noise_var", noise_var)

    @property
    def n_factors(self) -> int:
        """M, the number of binary factors."""
        return self.probs.shape[0]

    @property
    def n_features(self) -> int:
        """D, the dimension of the data."""
        return self.mean.shape[0]


@dataclass(frozen=True)
class BinaryFactorsStats:
    """Expected sufficient statistics of the binary factor model, summed over points.

    Additive (``a + b``) and scalable (``c * a``), like every model's statistics.

    Attributes
    ----------
    count : float
        N.
    second : ndarray, shape (M + 1, M + 1)
        A = sum_n E[ztilde_n ztilde_n^T] with ztilde = (1, z); A[0, 0] = N, A[0, 1:] = sum_n E[z_n].
    cross : ndarray, shape (M + 1, D)
        B = sum_n E[ztilde_n] x_n^T.
    sum_sq : float
        c = sum_n ||x_n||^2.
    """

    count: float
    second: np.ndarray
    cross: np.ndarray
    sum_sq: float

    def __add__(self, other: "BinaryFactorsStats") -> "BinaryFactorsStats":
        if not isinstance(other, BinaryFactorsStats):
            return NotImplemented
        return BinaryFactorsStats(self.count + other.count, self.second + other.second,
                                  self.cross + other.cross, self.sum_sq + other.sum_sq)

    def __mul__(self, scale: float) -> "BinaryFactorsStats":
        return BinaryFactorsStats(scale * self.count, scale * self.second, scale * self.cross,
                                  scale * self.sum_sq)

    __rmul__ = __mul__


class BinaryFactors:
    """The binary latent factor model with M factors, fitted by EM or by variational EM.

    Parameters
    ----------
    n_factors : int
        M >= 1. The exact E-step (for :func:`emlib.em`) enumerates 2^M configurations per
        point and is refused above M = 16; the mean-field E-step (for
        :func:`emlib.variational_em`) has no such limit.
    """

    def __init__(self, n_factors: int):
        if isinstance(n_factors, bool) or not isinstance(n_factors, (int, np.integer)) or n_factors < 1:
            raise ValueError(f"n_factors must be a positive integer; got {n_factors!r}.")
        self.n_factors = int(n_factors)

    def __repr__(self) -> str:
        return f"BinaryFactors(n_factors={self.n_factors})"

    # ------------------------------------------------------------------ checks
    def check_data(self, X) -> np.ndarray:
        """Data as a float array of shape (N, D) with N > M (the M-step solves for M + 1 rows)."""
        return as_data_matrix(X, min_rows=self.n_factors + 1)

    def check_params(self, params, X=None) -> BinaryFactorsParams:
        """``params`` if they are :class:`BinaryFactorsParams` with M factors (and D columns of X)."""
        if not isinstance(params, BinaryFactorsParams):
            raise ValueError(f"params must be BinaryFactorsParams; got {type(params).__name__}.")
        if params.n_factors != self.n_factors:
            raise ValueError(f"params have {params.n_factors} factors but the model has {self.n_factors}.")
        if X is not None and np.shape(X)[1] != params.n_features:
            raise ValueError(f"X has {np.shape(X)[1]} columns but the parameters have dimension "
                             f"{params.n_features}.")
        return params

    # ------------------------------------------------------------------ the exact E-step
    def configurations(self) -> np.ndarray:
        """All 2^M values of z_n as rows of 0s and 1s, shape (2^M, M), in binary counting order."""
        M = self.n_factors
        if M > MAX_EXACT_FACTORS:
            raise ValueError(f"the exact posterior has 2^{M} configurations per point, too many to "
                             f"enumerate (at most M = {MAX_EXACT_FACTORS}); use emlib.variational_em, "
                             "whose mean-field E-step costs O(M) per point.")
        codes = np.arange(2 ** M)[:, None]
        return ((codes >> np.arange(M)) & 1).astype(float)

    def log_joint(self, X, params: BinaryFactorsParams) -> np.ndarray:
        """log p(x_n, z_n = c | theta) for every point n and configuration c, shape (N, 2^M)."""
        X = as_data_matrix(X)
        params = self.check_params(params, X)
        Z = self.configurations()
        log_prior = Z @ np.log(params.probs) + (1.0 - Z) @ np.log1p(-params.probs)   # (C,)
        centres = params.mean + Z @ params.loadings                                   # (C, D)
        sq = (np.sum(X * X, axis=1)[:, None] - 2.0 * X @ centres.T
              + np.sum(centres * centres, axis=1)[None, :])
        sq = np.maximum(sq, 0.0)
        D = X.shape[1]
        return log_prior - 0.5 * D * (_LOG_2PI + np.log(params.noise_var)) - 0.5 * sq / params.noise_var

    def posterior(self, X, params: BinaryFactorsParams) -> np.ndarray:
        """p(z_n = c | x_n, theta) over the configurations of :meth:`configurations`, shape (N, 2^M)."""
        log_joint = self.log_joint(X, params)
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))

    def log_likelihood(self, X, params: BinaryFactorsParams) -> float:
        """log p(X | theta) = sum_n log sum_c p(x_n, z_n = c | theta), by enumeration."""
        return float(logsumexp(self.log_joint(X, params), axis=1).sum())

    def expected_stats(self, X, q) -> BinaryFactorsStats:
        """Statistics under a distribution q over configurations, shape (N, 2^M) (e.g. the posterior)."""
        X = as_data_matrix(X)
        Zt = np.hstack([np.ones((2 ** self.n_factors, 1)), self.configurations()])   # (C, M + 1)
        q = check_probability_rows(q, "q")
        if q.shape != (X.shape[0], Zt.shape[0]):
            raise ValueError(f"q must have shape (N, 2^M) = {(X.shape[0], Zt.shape[0])}; got {q.shape}.")
        mass = q.sum(axis=0)                                                         # (C,)
        second = (Zt * mass[:, None]).T @ Zt
        cross = Zt.T @ (q.T @ X)
        return BinaryFactorsStats(float(X.shape[0]), second, cross, float(np.sum(X * X)))

    def e_step(self, X, params: BinaryFactorsParams) -> tuple[BinaryFactorsStats, float]:
        """The exact E-step: the statistics of the posterior and the log-likelihood."""
        log_joint = self.log_joint(X, params)
        log_norm = logsumexp(log_joint, axis=1, keepdims=True)
        q = np.exp(log_joint - log_norm)
        return self.expected_stats(X, q), float(log_norm.sum())

    # ------------------------------------------------------------------ the M-step
    def m_step(self, stats: BinaryFactorsStats) -> BinaryFactorsParams:
        """argmax over theta of E_q[log p(x, z | theta)], from the statistics (either E-step).

        Raises
        ------
        ValueError
            If A is singular (a factor that q never switches on, or two factors always on
            together), or the fitted noise variance is not positive.
        """
        N, D = stats.count, stats.cross.shape[1]
        try:
            factor = cho_factor(stats.second, lower=True)
            if np.min(np.abs(np.diag(factor[0]))) ** 2 <= 1e-12 * np.max(np.diag(stats.second)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            raise ValueError("the second-moment matrix A of the factors is singular: some factor is never "
                             "switched on, always on, or always on together with another. Use fewer "
                             "factors or start from other parameters.") from None
        coef = cho_solve(factor, stats.cross)                       # Wtilde = A^{-1} B, (M + 1, D)
        noise_var = (stats.sum_sq - np.sum(coef * stats.cross)) / (N * D)
        probs = stats.second[0, 1:] / N
        if not noise_var > 0:
            raise ValueError(f"the fitted noise variance is {noise_var!r}: the factors reproduce the data "
                             "exactly. Use fewer factors.")
        return BinaryFactorsParams(probs, coef[0], coef[1:], noise_var)

    # ------------------------------------------------------------------ the mean-field E-step
    def _check_lam(self, lam, N: int) -> np.ndarray:
        lam = np.asarray(lam, dtype=float)
        if lam.shape != (N, self.n_factors):
            raise ValueError(f"the mean-field parameters must have shape (N, M) = {(N, self.n_factors)}; "
                             f"got {lam.shape}.")
        if not np.all(np.isfinite(lam)) or np.any(lam < 0) or np.any(lam > 1):
            raise ValueError("the mean-field parameters lambda_nm are probabilities: each must lie in [0, 1].")
        return lam

    def mean_field_init(self, X, params: BinaryFactorsParams) -> np.ndarray:
        """A starting q: lambda_nm = pi_m, the prior (shape (N, M))."""
        X = self.check_data(X)
        params = self.check_params(params, X)
        return np.tile(params.probs, (X.shape[0], 1))

    def mean_field_sweep(self, X, params: BinaryFactorsParams, lam) -> np.ndarray:
        """One sweep of coordinate updates lambda_n1, ..., lambda_nM (equation ``vem-estep``).

        Each update is the exact maximizer of F over its factor given the others (theorem
        ``variational_inference-thm-cavi``), so F never decreases. Returns a new array (N, M).
        """
        X = as_data_matrix(X)
        params = self.check_params(params, X)
        lam = self._check_lam(lam, X.shape[0]).copy()
        W, s2 = params.loadings, params.noise_var
        logit_prior = np.log(params.probs) - np.log1p(-params.probs)
        residual = X - params.mean - lam @ W                         # x_n - mu - sum_l lambda_nl w_l
        half_sq = 0.5 * np.sum(W * W, axis=1)
        for m in range(self.n_factors):
            residual += np.outer(lam[:, m], W[m])                    # leave factor m out
            lam[:, m] = expit(logit_prior[m] + (residual @ W[m] - half_sq[m]) / s2)
            residual -= np.outer(lam[:, m], W[m])
        return lam

    def mean_field_stats(self, X, lam) -> BinaryFactorsStats:
        """Statistics under q = prod_m Bernoulli(lambda_nm): E[z_m z_l] = lambda_m lambda_l, E[z_m^2] = lambda_m."""
        X = as_data_matrix(X)
        lam = self._check_lam(lam, X.shape[0])
        Lt = np.hstack([np.ones((X.shape[0], 1)), lam])               # E[ztilde_n], (N, M + 1)
        second = Lt.T @ Lt
        idx = np.arange(1, self.n_factors + 1)
        second[idx, idx] = lam.sum(axis=0)                           # E[z_m^2] = E[z_m]
        return BinaryFactorsStats(float(X.shape[0]), second, Lt.T @ X, float(np.sum(X * X)))

    def mean_field_elbo(self, X, params: BinaryFactorsParams, lam) -> float:
        """F(q, theta) = E_q[log p(x, z | theta)] + H(q) for q = prod_n prod_m Bernoulli(lambda_nm).

        Uses E_q||x_n - mu - W^T z_n||^2 = ||x_n - mu - W^T lambda_n||^2
        + sum_m lambda_nm (1 - lambda_nm) ||w_m||^2.
        """
        X = as_data_matrix(X)
        params = self.check_params(params, X)
        lam = self._check_lam(lam, X.shape[0])
        N, D = X.shape
        W, s2 = params.loadings, params.noise_var
        residual = X - params.mean - lam @ W
        expected_sq = np.sum(residual * residual) + np.sum(lam * (1.0 - lam) @ np.sum(W * W, axis=1))
        log_prior = np.sum(lam @ np.log(params.probs) + (1.0 - lam) @ np.log1p(-params.probs))
        entropy = float(np.sum(entr(lam) + entr(1.0 - lam)))
        return float(log_prior - 0.5 * N * D * (_LOG_2PI + np.log(s2)) - 0.5 * expected_sq / s2 + entropy)

    # ------------------------------------------------------------------ start and simulation
    def init_params(self, X, rng: np.random.Generator) -> BinaryFactorsParams:
        """A start: pi_m = 1/2, mu the data mean minus half the loadings, w_m the difference of two
        random data points, sigma^2 the average variance of the coordinates."""
        X = self.check_data(X)
        rng = check_generator(rng)
        pairs = rng.choice(X.shape[0], size=(self.n_factors, 2), replace=X.shape[0] < 2 * self.n_factors)
        loadings = X[pairs[:, 0]] - X[pairs[:, 1]]
        mean = X.mean(axis=0) - 0.5 * loadings.sum(axis=0)
        return BinaryFactorsParams(np.full(self.n_factors, 0.5), mean, loadings, float(X.var(axis=0).mean()))

    def sample(self, params: BinaryFactorsParams, n: int, rng: np.random.Generator):
        """Draw n points.

        Returns
        -------
        X : ndarray, shape (n, D)
        z : ndarray of int, shape (n, M)
            The factors that generated each point.
        """
        params = self.check_params(params)
        rng = check_generator(rng)
        z = (rng.random((n, self.n_factors)) < params.probs).astype(int)
        noise = rng.standard_normal((n, params.n_features)) * np.sqrt(params.noise_var)
        return params.mean + z @ params.loadings + noise, z
