"""A Bayesian Gaussian mixture with conjugate priors, for mean-field variational inference.

Book: chapter "Mean-field variational inference" (Bishop 2006, §10.2). The model is

    pi ~ Dirichlet(alpha_0),   Lambda_k ~ Wishart(W_0, nu_0),   mu_k | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^{-1}),
    z_n | pi ~ Categorical(pi),   x_n | z_n = k ~ N(mu_k, Lambda_k^{-1}),

and the mean-field family q(z) q(pi) prod_k q(mu_k, Lambda_k). Coordinate ascent on the ELBO
alternates two closed-form updates, the variational analogues of EM's two steps:

* ``posterior``: q(z_n = k) = r_nk with log r_nk = E[log pi_k] + 1/2 E[log |Lambda_k|]
  - D/2 log 2 pi - 1/2 E[(x_n - mu_k)^T Lambda_k (x_n - mu_k)] + const  (Bishop 10.46-10.49, 10.64-10.66);
* ``update_posterior``: from the statistics N_k, S1_k, S2_k of r (the same additive statistics as
  EM's, :class:`emlib.GaussianMixtureStats`), alpha_k = alpha_0 + N_k, beta_k = beta_0 + N_k,
  nu_k = nu_0 + N_k, m_k = (beta_0 m_0 + S1_k) / beta_k, and with xbar_k = S1_k / N_k and the
  scatter C_k = sum_n r_nk (x_n - xbar_k)(x_n - xbar_k)^T,
  W_k^{-1} = W_0^{-1} + C_k + beta_0 N_k / beta_k (xbar_k - m_0)(xbar_k - m_0)^T  (Bishop 10.58-10.63).
  The chapter writes the last one as W_0^{-1} + S2_k + beta_0 m_0 m_0^T - beta_k m_k m_k^T
  (equation ``variational_inference-qtheta-update``); the form here has no cancellation far from the
  origin.

The driver is :func:`emlib.cavi`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln, multigammaln

from .._validation import (as_data_matrix, as_float_array, check_gaussian_scale, check_generator, check_integer,
                           check_number, check_symmetric)
from ._chunks import row_slices
from ._numerics import (LOG_2PI, SingularCovarianceError, cholesky, log_det_from_cholesky, normalize_log_columns,
                        solve_lower)
from .gaussian_mixture import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats, kmeans_plus_plus


@dataclass(frozen=True)
class VariationalPosterior:
    """The global factors q(pi) q(mu, Lambda) = Dir(alpha) prod_k N(m_k, (beta_k Lambda_k)^{-1}) W(W_k, nu_k).

    Attributes
    ----------
    alpha : ndarray, shape (K,)
    beta : ndarray, shape (K,)
    means : ndarray, shape (K, D)
        m_k.
    scale_inv : ndarray, shape (K, D, D)
        W_k^{-1}, the inverse Wishart scale matrices.
    dof : ndarray, shape (K,)
        nu_k (> D - 1).
    """

    alpha: np.ndarray
    beta: np.ndarray
    means: np.ndarray
    scale_inv: np.ndarray
    dof: np.ndarray

    def expected_params(self) -> GaussianMixtureParams:
        """Point summaries: E[pi], the means m_k, and E[Lambda_k]^{-1} = W_k^{-1} / nu_k."""
        return GaussianMixtureParams(self.alpha / self.alpha.sum(), self.means,
                                     self.scale_inv / self.dof[:, None, None])


@dataclass(frozen=True)
class _Expectations:
    log_weights: np.ndarray  # (K,) E[log pi_k]
    log_det: np.ndarray      # (K,) E[log |Lambda_k|]
    chol_scale: np.ndarray   # (K, D, D) lower Cholesky factors of W_k^{-1}


class BayesianGaussianMixture:
    """A K-component Gaussian mixture with conjugate Dirichlet and Normal-Wishart priors.

    The defaults follow scikit-learn's ``BayesianGaussianMixture`` (Dirichlet distribution prior),
    so the two can be compared side by side.

    Parameters
    ----------
    n_components : int
        K, an upper bound on the number of components: extra components are emptied.
    weight_concentration_prior : float, optional
        alpha_0 > 0 (default 1/K); small values favour few components.
    mean_precision_prior : float
        beta_0 > 0.
    mean_prior : array_like, shape (D,), optional
        m_0 (default: the mean of the data).
    degrees_of_freedom_prior : float, optional
        nu_0 > D - 1 (default D).
    covariance_prior : array_like, shape (D, D), optional
        W_0^{-1}, symmetric positive definite (default: the sample covariance of the data).
    """

    def __init__(self, n_components: int, *, weight_concentration_prior: float | None = None,
                 mean_precision_prior: float = 1.0, mean_prior=None, degrees_of_freedom_prior: float | None = None,
                 covariance_prior=None):
        self.n_components = check_integer(n_components, "n_components", minimum=1)
        self._mixture = GaussianMixture(self.n_components, "full", reg_covar=0.0)  # statistics and seeds
        self.weight_concentration_prior = (None if weight_concentration_prior is None else
                                           check_number(weight_concentration_prior, "weight_concentration_prior",
                                                        above=0.0))
        self.mean_precision_prior = check_number(mean_precision_prior, "mean_precision_prior", above=0.0)
        self.mean_prior = None if mean_prior is None else as_float_array(mean_prior, (None,), "mean_prior")
        self.degrees_of_freedom_prior = (None if degrees_of_freedom_prior is None else
                                         check_number(degrees_of_freedom_prior, "degrees_of_freedom_prior"))
        if covariance_prior is not None:
            covariance_prior = as_float_array(covariance_prior, (None, None), "covariance_prior")
            if covariance_prior.shape[0] != covariance_prior.shape[1]:
                raise ValueError(f"covariance_prior must be a square (D, D) matrix; got shape {covariance_prior.shape}.")
            self._check_scale_inv(covariance_prior, "covariance_prior")
        self.covariance_prior = covariance_prior

    @staticmethod
    def _check_scale_inv(matrix: np.ndarray, name: str) -> None:
        check_symmetric(matrix, name)
        try:
            cholesky(matrix[None])
        except SingularCovarianceError:
            raise ValueError(f"{name} is not positive definite; W_0^{{-1}} must be a symmetric positive "
                             "definite matrix (e.g. the sample covariance of the data).") from None

    def __repr__(self) -> str:
        return f"BayesianGaussianMixture(n_components={self.n_components})"

    # ------------------------------------------------------------------ the prior
    def prior(self, X) -> VariationalPosterior:
        """The prior's parameters (alpha_0, beta_0, m_0, W_0^{-1}, nu_0) for data ``X`` (N, D),
        in the same form as a posterior (one copy per component)."""
        X = self.check_data(X)
        K, D = self.n_components, X.shape[1]
        alpha0 = 1.0 / K if self.weight_concentration_prior is None else float(self.weight_concentration_prior)
        m0 = X.mean(axis=0) if self.mean_prior is None else as_float_array(self.mean_prior, (D,), "mean_prior")
        nu0 = float(D) if self.degrees_of_freedom_prior is None else float(self.degrees_of_freedom_prior)
        if not nu0 > D - 1:
            raise ValueError(f"degrees_of_freedom_prior must exceed D - 1 = {D - 1}; got {nu0!r}.")
        if self.covariance_prior is None:
            if X.shape[0] < 2:
                raise ValueError("the default covariance_prior needs at least two points; give covariance_prior.")
            W0_inv = np.atleast_2d(np.cov(X.T))
            self._check_scale_inv(W0_inv, "the default covariance_prior (the sample covariance of X; are "
                                          "columns of X constant or collinear?)")
        else:
            W0_inv = as_float_array(self.covariance_prior, (D, D), "covariance_prior")
        return VariationalPosterior(np.full(K, alpha0), np.full(K, self.mean_precision_prior),
                                    np.repeat(m0[None], K, axis=0), np.repeat(W0_inv[None], K, axis=0),
                                    np.full(K, nu0))

    def check_data(self, X) -> np.ndarray:
        """Data to fit: a float array of shape (N, D) with N >= K, or a ``ValueError``."""
        return self._mixture.check_data(X)

    @staticmethod
    def _check_posterior(post, name: str = "post") -> "VariationalPosterior":
        if not isinstance(post, VariationalPosterior):
            raise ValueError(f"{name} must be a VariationalPosterior (e.g. from model.prior(X) or "
                             f"model.update_posterior); got {type(post).__name__}.")
        return post

    # ------------------------------------------------------------------ the two coordinate updates
    def _expectations(self, post: VariationalPosterior) -> _Expectations:
        K, D = post.means.shape
        chol = cholesky(post.scale_inv)
        log_det_scale_inv = log_det_from_cholesky(chol)
        i = np.arange(1, D + 1)
        log_det = digamma(0.5 * (post.dof[:, None] + 1 - i)).sum(axis=1) + D * np.log(2.0) - log_det_scale_inv
        log_weights = digamma(post.alpha) - digamma(post.alpha.sum())
        return _Expectations(log_weights, log_det, chol)

    def _log_rho(self, X: np.ndarray, post: VariationalPosterior, e: _Expectations) -> np.ndarray:
        """log rho_nk, the unnormalized log q(z_n = k) (Bishop 10.46 with 10.64-10.66; equations
        ``variational_inference-log-rho`` and ``variational_inference-expectations``), shape (N, K).

        Chunk by chunk: no temporary larger than a chunk of the data.
        """
        N, D = X.shape
        maha = np.empty((N, self.n_components))
        for c in row_slices(N, 16 * D):
            for k in range(self.n_components):
                # nu_k (x - m_k)^T W_k (x - m_k) with W_k = (L L^T)^{-1}: a triangular solve with L
                y = solve_lower(e.chol_scale[k], (X[c] - post.means[k]).T)
                maha[c, k] = post.dof[k] * np.einsum("dn,dn->n", y, y)
        return (e.log_weights + 0.5 * e.log_det - 0.5 * D * LOG_2PI
                - 0.5 * (D / post.beta + maha))

    def posterior(self, X, post: VariationalPosterior) -> np.ndarray:
        """The optimal q(z) given the global factors: responsibilities r_nk, shape (N, K)."""
        X = as_data_matrix(X)
        check_gaussian_scale(X)
        post = self._check_posterior(post)
        log_r = self._log_rho(X, post, self._expectations(post))
        normalize_log_columns(log_r.T)  # in place, through the transposed view
        return log_r

    def expected_stats(self, X, q) -> GaussianMixtureStats:
        """N_k, S1_k = sum r_nk x_n, S2_k = sum r_nk x_n x_n^T: the same statistics as EM's
        (equation ``variational_inference-stats``)."""
        return self._mixture.expected_stats(X, q)

    def update_posterior(self, stats: GaussianMixtureStats, prior: VariationalPosterior) -> VariationalPosterior:
        """The optimal q(pi) q(mu, Lambda) given q(z), in closed form from its statistics.

        Bishop (10.58-10.63), written about the reference point c of the statistics (0 for data
        near the origin): with m'_0 = m_0 - c and the moments s_k, C_k about c,
        beta_k = beta_0 + N_k, m_k = c + (beta_0 m'_0 + s_k) / beta_k and
        W_k^{-1} = W_0^{-1} + C_k + beta_0 m'_0 m'_0^T - beta_k (m_k - c)(m_k - c)^T (equation
        ``variational_inference-qtheta-update`` about c, so no cancellation far from the origin).
        """
        if not isinstance(stats, GaussianMixtureStats):
            raise ValueError(f"stats must be GaussianMixtureStats; got {type(stats).__name__}.")
        prior = self._check_posterior(prior, "prior")
        counts = stats.counts
        beta = prior.beta + counts
        prior_offsets = prior.means - stats.centre
        offsets = (prior.beta[:, None] * prior_offsets + stats.centred_sum_x) / beta[:, None]   # m_k - c
        outer = lambda b, m: b[:, None, None] * m[:, :, None] * m[:, None, :]  # noqa: E731
        scale_inv = prior.scale_inv + stats.centred_sum_xx + outer(prior.beta, prior_offsets) - outer(beta, offsets)
        scale_inv = 0.5 * (scale_inv + scale_inv.transpose(0, 2, 1))
        return VariationalPosterior(prior.alpha + counts, beta, stats.centre + offsets, scale_inv, prior.dof + counts)

    # ------------------------------------------------------------------ the objective
    def elbo(self, X, q, post: VariationalPosterior, prior: VariationalPosterior) -> float:
        """The evidence lower bound F(q) = E_q[log p(x, z, pi, mu, Lambda)] - E_q[log q] (Bishop 10.70-10.77,
        equation ``variational_inference-elbo-terms``).

        Parameters
        ----------
        X : array_like, shape (N, D)
        q : ndarray, shape (N, K)
            q(z), rows summing to one.
        post, prior : VariationalPosterior
            The global factors and the prior (from :meth:`prior`).
        """
        X = as_data_matrix(X)
        post, prior = self._check_posterior(post), self._check_posterior(prior, "prior")
        K, D = post.means.shape
        e = self._expectations(post)
        # E_q[log p(x, z | pi, mu, Lambda)] + E_q[log p(pi)] + E_q[log p(mu, Lambda)] - E_q[log q(z, pi, mu, Lambda)]
        with np.errstate(divide="ignore", invalid="ignore"):
            q_log_q = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum()
        expected_log_lik = float(np.sum(q * self._log_rho(X, post, e)))  # includes E[log pi] terms
        log_dirichlet_norm = lambda a: gammaln(a.sum()) - gammaln(a).sum()  # noqa: E731
        dirichlet = (log_dirichlet_norm(prior.alpha) - log_dirichlet_norm(post.alpha)
                     + np.sum((prior.alpha - post.alpha) * e.log_weights))
        # E[log N(mu_k | m0, (beta0 Lambda_k)^{-1})] - E[log N(mu_k | m_k, (beta_k Lambda_k)^{-1})]
        # (m_k - m_0)^T W_k (m_k - m_0) with W_k = (L_k L_k^T)^{-1}: through the Cholesky factor
        solved = solve_lower(e.chol_scale, (post.means - prior.means)[:, :, None])[:, :, 0]
        quad = np.sum(solved * solved, axis=1)
        gauss = 0.5 * np.sum(D * np.log(prior.beta / post.beta) - D * prior.beta / post.beta
                             - prior.beta * post.dof * quad + D)
        # E[log W(Lambda_k | W0, nu0)] - E[log W(Lambda_k | W_k, nu_k)]
        # tr(W_k (W_0^{-1} - W_k^{-1})) with W_k = (L L^T)^{-1}: two triangular solves with L
        half = solve_lower(e.chol_scale, prior.scale_inv - post.scale_inv)
        trace = np.einsum("kii->k", solve_lower(e.chol_scale, half.transpose(0, 2, 1)))
        wishart = np.sum(self._log_wishart_norm(prior.scale_inv, prior.dof)
                         - self._log_wishart_norm(post.scale_inv, post.dof)
                         + 0.5 * (prior.dof - post.dof) * e.log_det
                         - 0.5 * post.dof * trace)
        return float(expected_log_lik - q_log_q + dirichlet + gauss + wishart)

    @staticmethod
    def _log_wishart_norm(scale_inv: np.ndarray, dof: np.ndarray) -> np.ndarray:
        """log B(W, nu) of the Wishart density (Bishop B.79), written with W^{-1}; shape (K,)."""
        D = scale_inv.shape[-1]
        log_det_scale_inv = log_det_from_cholesky(cholesky(scale_inv))
        return (0.5 * dof * log_det_scale_inv - 0.5 * dof * D * np.log(2.0)
                - np.array([multigammaln(0.5 * v, D) for v in dof]))

    # ------------------------------------------------------------------ starting point
    def init_responsibilities(self, X, rng: np.random.Generator) -> np.ndarray:
        """A starting q(z): one-hot assignment of each point to its nearest k-means++ seed, (N, K)."""
        X = self.check_data(X)
        seeds = kmeans_plus_plus(X, self.n_components, check_generator(rng))
        q = np.zeros((X.shape[0], self.n_components))
        for c in row_slices(X.shape[0], 16 * X.shape[1]):
            distances = np.stack([np.einsum("nd,nd->n", X[c] - s, X[c] - s) for s in seeds], axis=1)
            q[np.arange(c.start, c.start + distances.shape[0]), distances.argmin(axis=1)] = 1.0
        return q

    def log_marginal_likelihood_one_component(self, X) -> float:
        """log p(X) in closed form for K = 1 (the Normal-Wishart evidence), for checking the ELBO.

        With one component, q(mu, Lambda) can equal the exact posterior, so the maximal ELBO is
        exactly this number.
        """
        X = self.check_data(X)
        if self.n_components != 1:
            raise ValueError("the closed-form evidence is for n_components=1 only.")
        prior = self.prior(X)
        post = self.update_posterior(self.expected_stats(X, np.ones((X.shape[0], 1))), prior)
        N, D = X.shape

        def logdet(S):
            return float(log_det_from_cholesky(cholesky(S[None]))[0])

        return float(-0.5 * N * D * np.log(np.pi)
                     + multigammaln(0.5 * post.dof[0], D) - multigammaln(0.5 * prior.dof[0], D)
                     + 0.5 * prior.dof[0] * logdet(prior.scale_inv[0]) - 0.5 * post.dof[0] * logdet(post.scale_inv[0])
                     + 0.5 * D * np.log(prior.beta[0] / post.beta[0]))
