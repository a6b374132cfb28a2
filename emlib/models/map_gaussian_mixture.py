"""A Gaussian mixture fitted by MAP-EM: a conjugate inverse-Wishart prior on every covariance.

Book: chapter "Gaussian mixtures in full", section "A prior on the covariances: MAP-EM". The
maximum-likelihood M-step of :class:`emlib.GaussianMixture` lets a component collapse onto a few
points, where the likelihood grows without bound (``gaussian_mixtures-prop-unbounded``).
Here each covariance gets the conjugate prior

    Sigma_k ~ IW(Psi, nu),  p(Sigma) = |Psi|^{nu/2} / (2^{nu D/2} Gamma_D(nu/2))
                                        |Sigma|^{-(nu + D + 1)/2} exp(-tr(Psi Sigma^{-1}) / 2),

independently over k, with flat priors on the weights and the means. EM for the posterior mode
maximizes Q(theta | theta_t) + log p(theta) in the M-step; the weights and means are those of
maximum likelihood, and the covariance becomes (``gaussian_mixtures-map-cov``)

    Sigma_k = (S2_k - N_k mu_k mu_k^T + Psi) / (N_k + nu + D + 1),

which is never smaller than Psi / (N + nu + D + 1). With ``covariance_type="diag"`` each variance
sigma^2_kd has the one-dimensional prior IW(psi_d, nu) (an inverse gamma with shape nu/2 and
scale psi_d/2), and sigma^2_kd = (S2_kd - N_k mu_kd^2 + psi_d) / (N_k + nu + 2).

EM on this objective never decreases the log posterior log p(X | theta) + log p(theta), which is
what :meth:`MAPGaussianMixture.e_step` returns as its second output: :func:`emlib.em` records and
monitors the log posterior (up to the constant log p(X)) instead of the log-likelihood.
"""
from __future__ import annotations

import numpy as np
from scipy.special import multigammaln

from .._validation import as_data_matrix, as_float_array
from .gaussian_mixture import GaussianMixture, GaussianMixtureParams

_LOG_2 = np.log(2.0)


class MAPGaussianMixture(GaussianMixture):
    """A K-component Gaussian mixture with an inverse-Wishart prior on each covariance.

    The model, its E-step and its log-likelihood are those of :class:`emlib.GaussianMixture`
    (with ``reg_covar=0``: the prior takes its place). The M-step maximizes Q plus the log prior,
    and ``e_step`` reports the log posterior, so that ``emlib.em(model, X, init)`` is MAP-EM.

    Parameters
    ----------
    n_components : int
        K, the number of components.
    prior_scale : array_like, shape (D, D) or (D,)
        Psi, the scale matrix of the inverse-Wishart prior: symmetric positive definite for
        ``covariance_type="full"``; the positive scales psi_d of the per-variance priors for
        ``"diag"``. The prior's mode is Psi / (nu + D + 1) (``"full"``).
    prior_dof : float, optional
        nu, the degrees of freedom; must exceed D - 1 for a proper prior. Default D + 2, the choice
        of Fraley and Raftery (2007).
    covariance_type : {"full", "diag"}
    chunk_size : int, optional
        As for :class:`emlib.GaussianMixture`.

    Notes
    -----
    The weights and means have flat priors, so their updates are N_k / N and S1_k / N_k, and a
    component that receives no responsibility still cannot be updated (``ValueError``).
    """

    def __init__(self, n_components: int, prior_scale, prior_dof: float | None = None,
                 covariance_type: str = "full", *, chunk_size: int | None = None):
        super().__init__(n_components, covariance_type, reg_covar=0.0, chunk_size=chunk_size)
        self.prior_scale = self._check_scale(prior_scale)
        D = self.prior_scale.shape[0]
        dof = D + 2.0 if prior_dof is None else prior_dof
        try:
            dof = float(dof)
        except (TypeError, ValueError):
            raise ValueError(f"prior_dof must be a number greater than D - 1 = {D - 1}; got {prior_dof!r}.") from None
        if not np.isfinite(dof) or dof <= D - 1:
            raise ValueError(f"prior_dof must be greater than D - 1 = {D - 1} for a proper inverse-Wishart "
                             f"prior; got {prior_dof!r}. The default is D + 2 = {D + 2}.")
        self.prior_dof = dof

    @classmethod
    def from_data(cls, X, n_components: int, covariance_type: str = "full", **kwargs) -> "MAPGaussianMixture":
        """The model with a weak prior scaled to the data (after Fraley and Raftery 2007).

        Psi = Cov(X) / K^{2/D} (the covariance of the data shared out among K components, each
        shrunk by K^{1/D} per axis), or its diagonal for ``"diag"``; nu = D + 2.

        Parameters
        ----------
        X : array_like, shape (N, D)
        n_components : int
        """
        X = as_data_matrix(X, min_rows=2)
        D = X.shape[1]
        centred = X - X.mean(axis=0)
        cov = centred.T @ centred / X.shape[0] / float(n_components) ** (2.0 / D)
        scale = cov if covariance_type == "full" else np.diagonal(cov).copy()
        return cls(n_components, scale, covariance_type=covariance_type, **kwargs)

    def __repr__(self) -> str:
        return (f"MAPGaussianMixture(n_components={self.n_components}, covariance_type="
                f"{self.covariance_type!r}, prior_dof={self.prior_dof!r}, "
                f"prior_scale=<{self.prior_scale.shape} array>)")

    # ------------------------------------------------------------------ validation
    def _check_scale(self, scale) -> np.ndarray:
        if self.covariance_type == "full":
            scale = as_float_array(scale, (None, None), "prior_scale (full: a (D, D) matrix)")
            D = scale.shape[0]
            if scale.shape != (D, D) or D == 0:
                raise ValueError(f"prior_scale must be a square (D, D) matrix; got shape {scale.shape}.")
            if not np.allclose(scale, scale.T, rtol=1e-12, atol=0):
                raise ValueError("prior_scale must be symmetric; symmetrize it with (S + S.T) / 2.")
            if np.linalg.eigvalsh(scale)[0] <= 0:
                raise ValueError("prior_scale must be positive definite: a prior with a singular scale "
                                 "does not keep covariances away from zero. Add a multiple of the identity.")
        else:
            scale = as_float_array(scale, (None,), "prior_scale (diag: a (D,) vector)")
            if scale.size == 0 or np.any(scale <= 0):
                raise ValueError("prior_scale for diagonal covariances must be a non-empty vector of "
                                 "positive numbers psi_d.")
        return scale

    def _check_dimension(self, D: int) -> None:
        if D != self.prior_scale.shape[0]:
            raise ValueError(f"the prior is for D = {self.prior_scale.shape[0]} dimensions but the data "
                             f"or parameters have D = {D}; give a prior_scale of matching size.")

    def check_data(self, X) -> np.ndarray:
        X = super().check_data(X)
        self._check_dimension(X.shape[1])
        return X

    def check_params(self, params, X=None) -> GaussianMixtureParams:
        params = super().check_params(params, X)
        self._check_dimension(params.n_features)
        return params

    # ------------------------------------------------------------------ the prior
    def log_prior(self, params: GaussianMixtureParams) -> float:
        """sum_k log IW(Sigma_k | Psi, nu), with its normalizing constant (flat weights and means).

        Computed from Cholesky factors Sigma_k = L_k L_k^T and Psi = L_Psi L_Psi^T:
        log det Sigma_k = 2 sum log diag L_k and tr(Psi Sigma_k^{-1}) = ||L_k^{-1} L_Psi||_F^2, the
        latter by solving with L_k; no inverse or determinant of a covariance is formed.
        """
        params = self.check_params(params)
        nu, D = self.prior_dof, params.n_features
        if self.covariance_type == "diag":
            # each variance: IW_1(psi_d, nu) = inverse gamma with shape nu/2 and scale psi_d/2
            psi, var = self.prior_scale, params.covariances
            const = 0.5 * nu * np.log(0.5 * psi) - multigammaln(0.5 * nu, 1)
            return float(np.sum(const - (0.5 * nu + 1.0) * np.log(var) - 0.5 * psi / var))
        chol_psi = np.linalg.cholesky(self.prior_scale)
        log_det_psi = 2.0 * np.sum(np.log(np.diag(chol_psi)))
        const = 0.5 * nu * log_det_psi - 0.5 * nu * D * _LOG_2 - multigammaln(0.5 * nu, D)
        chol = np.linalg.cholesky(params.covariances)                       # (K, D, D)
        log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        # L_k^{-1} L_Psi for all k in one batched solve with the triangular factors
        solved = np.linalg.solve(chol, np.broadcast_to(chol_psi, chol.shape))
        trace = np.sum(solved ** 2, axis=(1, 2))                           # tr(Psi Sigma_k^{-1})
        return float(np.sum(const - 0.5 * (nu + D + 1.0) * log_det - 0.5 * trace))

    def log_posterior(self, X, params: GaussianMixtureParams) -> float:
        """log p(X | theta) + log p(theta): the log posterior up to the constant log p(X)."""
        return self.log_likelihood(X, params) + self.log_prior(params)

    # ------------------------------------------------------------------ E-step and M-step
    def e_step(self, X, params: GaussianMixtureParams):
        """The E-step of :class:`emlib.GaussianMixture`, reporting the log posterior.

        Returns
        -------
        stats : GaussianMixtureStats
            N_k, S1_k, S2_k under the responsibilities at ``params``.
        log_posterior : float
            log p(X | theta) + log p(theta) at ``params`` (what MAP-EM never decreases).
        """
        stats, loglik = super().e_step(X, params)
        return stats, loglik + self.log_prior(params)

    def m_step(self, stats) -> GaussianMixtureParams:
        """argmax_theta Q(theta | theta_t) + log p(theta), in closed form.

        Weights N_k / N and means S1_k / N_k as in maximum likelihood; covariances
        (S2_k - N_k mu_k mu_k^T + Psi) / (N_k + nu + D + 1) (book eq. gaussian_mixtures-map-cov),
        or per variance (S2_kd - N_k mu_kd^2 + psi_d) / (N_k + nu + 2) for ``"diag"``.

        Parameters
        ----------
        stats : GaussianMixtureStats
            Only ``counts`` (K,), ``sum_x`` (K, D) and ``sum_xx`` ((K, D, D) or (K, D)) are read.

        Raises
        ------
        ValueError
            If a component received (numerically) no responsibility, so its mean is undefined.
        """
        counts = np.asarray(stats.counts, dtype=float)
        sum_x = np.asarray(stats.sum_x, dtype=float)
        sum_xx = np.asarray(stats.sum_xx, dtype=float)
        K, D = sum_x.shape
        self._check_dimension(D)
        tiny = 10 * np.finfo(float).eps * max(float(counts.sum()), 1.0)
        empty = np.flatnonzero(counts <= tiny)
        if empty.size:
            raise ValueError(
                f"component(s) {empty.tolist()} received no responsibility (N_k = 0): the prior keeps "
                "covariances away from zero but the means of empty components are undefined. Start "
                "from other parameters or use fewer components."
            )
        weights = counts / counts.sum()
        means = sum_x / counts[:, None]
        nu = self.prior_dof
        if self.covariance_type == "diag":
            scatter = sum_xx - counts[:, None] * means ** 2
            covariances = (scatter + self.prior_scale) / (counts + nu + 2.0)[:, None]
        else:
            scatter = sum_xx - counts[:, None, None] * (means[:, :, None] * means[:, None, :])
            covariances = (scatter + self.prior_scale) / (counts + nu + D + 1.0)[:, None, None]
            covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
        return GaussianMixtureParams(weights, means, covariances)
