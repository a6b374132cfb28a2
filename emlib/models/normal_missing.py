"""A multivariate normal sample with values missing at random, fitted by EM.

Book: chapter "A saddle point: Murray's example". Each row x_n of ``X`` (N, D) is a draw from
N(mu, Sigma) with some entries missing (NaN). For row n write o for its observed coordinates and
m for its missing ones; the latent variables are the missing values z_n = x_{n,m}. Gaussian
conditioning gives the posterior

    z_n | x_{n,o}, theta ~ N(c_n, C_n),
    c_n = mu_m + Sigma_mo Sigma_oo^{-1} (x_{n,o} - mu_o),              (saddle_point-condmean)
    C_n = Sigma_mm - Sigma_mo Sigma_oo^{-1} Sigma_om,                  (saddle_point-condcov)

and the E-step fills in the expected sufficient statistics of the complete data,

    N,   S1 = sum_n E[x_n],   S2 = sum_n E[x_n x_n^T] = sum_n (xhat_n xhat_n^T + Ctilde_n),

where xhat_n is x_n with its missing entries replaced by c_n, and Ctilde_n is C_n padded with
zeros in the observed rows and columns. The M-step is the complete-data maximum,

    mu = S1 / N,   Sigma = S2 / N - mu mu^T                             (saddle_point-mstep)

or, when the mean is known (fixed), Sigma = sum_n E[(x_n - mu)(x_n - mu)^T] / N. As for the
Gaussian mixture, the statistics are carried as moments about a reference point c near the data
(the current mean), so that Sigma = sum_n E[(x_n - c)(x_n - c)^T] / N - (xbar - c)(xbar - c)^T
does not cancel far from the origin; ``stats.sum_x`` and ``stats.sum_xx`` give S1 and S2.
The log-likelihood is the sum over rows of the Gaussian density of the observed entries,
log N(x_{n,o} | mu_o, Sigma_oo). Rows that share a missingness pattern share one Cholesky
factor of Sigma_oo; no inverse or determinant is formed.

The latent variables are continuous, so ``posterior`` returns the Gaussian posterior as a
:class:`NormalPosterior` (means and covariances), not an array of probabilities, and
``log_joint`` evaluates the complete-data density at a given completion. The helpers
:func:`emlib.bounds.elbo` and :func:`emlib.bounds.kl_to_posterior`, written for discrete
latent variables, do not apply to this model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_data_matrix, as_float_array, check_gaussian_scale, check_generator, check_symmetric
from ._numerics import (LOG_2PI, SINGULAR_RTOL, SingularCovarianceError, cholesky, constant_columns,
                        log_det_from_cholesky, reference_point, solve_cholesky)


def _log_gaussian(centred: np.ndarray, solved: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """log N(x | mu, S) for the columns of ``centred`` = x - mu, given ``solved`` = S^{-1}(x - mu) and S = L L^T.

    log N = -(d log 2 pi + (x - mu)^T S^{-1} (x - mu)) / 2 - sum log diag L; shape (n,).
    """
    maha = np.einsum("dn,dn->n", centred, solved)
    return -0.5 * (centred.shape[0] * LOG_2PI + maha + log_det_from_cholesky(chol))


def _cholesky(covariance: np.ndarray, what: str, singular_rtol: float = 0.0) -> np.ndarray:
    """Lower Cholesky factor of one (D, D) covariance, or a ``ValueError`` saying what is wrong.

    With ``singular_rtol`` (the M-step), a covariance singular to working precision is refused
    too (see :func:`emlib.models._numerics.cholesky`).
    """
    try:
        return cholesky(covariance[None], singular_rtol)[0]
    except SingularCovarianceError as exc:
        if exc.not_positive_definite:
            raise ValueError(
                f"{what} is not positive definite (smallest eigenvalue "
                f"{float(np.linalg.eigvalsh(covariance)[0]):.3g}). If this happened during a fit, the data "
                "determine the covariance too weakly (too few observed values, or collinear columns): "
                "use more data or fewer variables."
            ) from None
        raise ValueError(
            f"{what} is singular to working precision: the columns of X are collinear (one is, to rounding, "
            "a linear combination of the others, e.g. X = [a, b, a + b]), or the observed values determine "
            "it too weakly. Drop the redundant column(s), or use more data."
        ) from None


@dataclass(frozen=True)
class NormalParams:
    """Parameters theta = (mu, Sigma) of a D-dimensional normal distribution.

    Parameters
    ----------
    mean : array_like, shape (D,)
        The mean vector mu.
    covariance : array_like, shape (D, D)
        The covariance matrix Sigma, symmetric positive definite.
    """

    mean: np.ndarray
    covariance: np.ndarray

    def __post_init__(self):
        mean = as_float_array(self.mean, (None,), "mean")
        D = mean.shape[0]
        if D == 0:
            raise ValueError("mean must have at least one entry.")
        covariance = as_float_array(self.covariance, (D, D), "covariance")
        check_symmetric(covariance, "covariance")
        _cholesky(covariance, "covariance")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", covariance)

    @property
    def n_features(self) -> int:
        """D, the dimension."""
        return self.mean.shape[0]


@dataclass(frozen=True)
class NormalStats:
    """Expected complete-data sufficient statistics of a normal sample (additive, scalable).

    Carried as moments about a reference point c, like :class:`emlib.GaussianMixtureStats`;
    ``NormalStats(count, sum_x, sum_xx)`` (no ``centre``) takes moments about the origin.

    Attributes
    ----------
    count : float
        N, the number of rows.
    centred_sum_x : ndarray, shape (D,)
        sum_n E[x_n - c].
    centred_sum_xx : ndarray, shape (D, D)
        sum_n E[(x_n - c)(x_n - c)^T].
    centre : ndarray, shape (D,)
        The reference point c (zeros when not given).
    """

    count: float
    centred_sum_x: np.ndarray
    centred_sum_xx: np.ndarray
    centre: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "count", float(self.count))
        for name in ("centred_sum_x", "centred_sum_xx"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        centre = np.zeros(self.centred_sum_x.shape) if self.centre is None else np.asarray(self.centre, dtype=float)
        object.__setattr__(self, "centre", centre)

    @property
    def sum_x(self) -> np.ndarray:
        """S1 = sum_n E[x_n], about the origin; shape (D,)."""
        return self.centred_sum_x + self.count * self.centre

    @property
    def sum_xx(self) -> np.ndarray:
        """S2 = sum_n E[x_n x_n^T], about the origin; shape (D, D)."""
        return self.scatter(np.zeros_like(self.centre))

    def scatter(self, mean) -> np.ndarray:
        """sum_n E[(x_n - mu)(x_n - mu)^T] for a given mu (D,), from the moments about c; shape (D, D)."""
        offset = self.centre - np.asarray(mean, dtype=float)
        cross = np.outer(self.centred_sum_x, offset)
        return self.centred_sum_xx + cross + cross.T + self.count * np.outer(offset, offset)

    def recentred(self, centre) -> "NormalStats":
        """The same statistics as moments about another reference point ``centre`` (D,)."""
        centre = np.asarray(centre, dtype=float)
        return NormalStats(self.count, self.centred_sum_x + self.count * (self.centre - centre),
                           self.scatter(centre), centre)

    def __add__(self, other: "NormalStats") -> "NormalStats":
        if not isinstance(other, NormalStats):
            return NotImplemented
        if not np.array_equal(other.centre, self.centre):
            other = other.recentred(self.centre)
        return NormalStats(self.count + other.count, self.centred_sum_x + other.centred_sum_x,
                           self.centred_sum_xx + other.centred_sum_xx, self.centre)

    def __mul__(self, scale: float) -> "NormalStats":
        return NormalStats(scale * self.count, scale * self.centred_sum_x, scale * self.centred_sum_xx, self.centre)

    __rmul__ = __mul__


@dataclass(frozen=True)
class NormalPosterior:
    """The Gaussian posterior of the missing entries, row by row, padded to full vectors.

    Attributes
    ----------
    mean : ndarray, shape (N, D)
        xhat_n: the observed entries of x_n, and the conditional means c_n in the missing ones.
    covariance : ndarray, shape (N, D, D)
        Ctilde_n: the conditional covariance C_n of the missing entries, zero in every row and
        column of an observed entry. A distribution with zero covariance is a point mass: a
        completed data set (e.g. a sample, for stochastic EM) is ``NormalPosterior(Z, zeros)``.
    """

    mean: np.ndarray
    covariance: np.ndarray


class NormalWithMissing:
    """A normal sample N(mu, Sigma) with missing values (NaN), fitted by EM.

    Parameters
    ----------
    mean : array_like, shape (D,), optional
        A known mean vector, held fixed; when omitted the mean is estimated.

    Notes
    -----
    Missing values are NaN, or the masked entries of a ``numpy.ma.MaskedArray`` (which are read
    as missing). Rows with every entry missing carry no information about theta (their marginal
    density is 1) and are refused with a ``ValueError``: drop them. A column with no observed
    value is refused too, since its mean and variance cannot be estimated.

    ``e_step`` and ``m_step`` take inputs from :meth:`check_data` and :meth:`check_params` (the
    drivers check them once); the other methods check their inputs themselves.
    """

    #: The posterior is Gaussian, not an array of probabilities: drivers that sample or
    #: classify a discrete latent variable (stochastic EM, classification EM) do not apply.
    discrete_latent = False

    def __init__(self, mean=None):
        self.mean = None if mean is None else as_float_array(mean, (None,), "mean (fixed)")

    def __repr__(self) -> str:
        return "NormalWithMissing()" if self.mean is None else f"NormalWithMissing(mean={self.mean.tolist()})"

    # ------------------------------------------------------------------ validation
    def check_data(self, X) -> np.ndarray:
        """Return ``X`` as a float array (N, D), NaN marking missing values, or raise ``ValueError``.

        The masked entries of a masked array become NaN (missing).
        """
        X = as_data_matrix(X, allow_nan=True)
        observed = ~np.isnan(X)
        empty_rows = np.flatnonzero(~observed.any(axis=1))
        if empty_rows.size:
            shown = empty_rows[:10].tolist()
            raise ValueError(f"row(s) {shown}{' ...' if empty_rows.size > 10 else ''} of X have every value "
                             "missing; they carry no information. Drop them, e.g. "
                             "X[~np.isnan(X).all(axis=1)].")
        empty_cols = np.flatnonzero(~observed.any(axis=0))
        if empty_cols.size:
            raise ValueError(f"column(s) {empty_cols.tolist()} of X have no observed value, so their mean "
                             "and variance cannot be estimated; drop them.")
        if self.mean is not None and self.mean.shape[0] != X.shape[1]:
            raise ValueError(f"the fixed mean has {self.mean.shape[0]} entries but X has {X.shape[1]} columns.")
        check_gaussian_scale(X)
        return X

    def check_params(self, params, X=None) -> NormalParams:
        """Raise ``ValueError`` unless ``params`` fit this model (and the data ``X``, if given)."""
        if not isinstance(params, NormalParams):
            raise ValueError(f"params must be NormalParams; got {type(params).__name__}.")
        if X is not None and params.n_features != np.shape(X)[1]:
            raise ValueError(f"params are for D = {params.n_features} dimensions but X has "
                             f"{np.shape(X)[1]} columns.")
        if self.mean is not None and not np.array_equal(params.mean, self.mean):
            raise ValueError(f"params.mean {params.mean.tolist()} differs from the model's fixed mean "
                             f"{self.mean.tolist()}; start from the fixed mean.")
        return params

    # ------------------------------------------------------------------ conditioning (the E-step's core)
    def _condition(self, X: np.ndarray, params: NormalParams, covariances: bool = True):
        """The posterior of the missing entries and log N(x_{n,o} | mu_o, Sigma_oo) for every row.

        One Cholesky factor per missingness pattern. Returns ``(xhat, cond_cov, loglik)``: the
        completed rows (N, D), the padded conditional covariances Ctilde_n (N, D, D) if
        ``covariances`` else their sum over the rows (D, D), and the log-likelihoods (N,).
        """
        N, D = X.shape
        mu, sigma = params.mean, params.covariance
        observed = ~np.isnan(X)
        cond_mean = np.where(observed, X, 0.0)
        cond_cov = np.zeros((N, D, D) if covariances else (D, D))
        loglik = np.empty(N)
        patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        for index, obs in enumerate(patterns):
            rows = np.flatnonzero(inverse == index)
            o, m = np.flatnonzero(obs), np.flatnonzero(~obs)
            chol = _cholesky(sigma[np.ix_(o, o)], "the covariance of the observed entries")
            centred = (X[np.ix_(rows, o)] - mu[o]).T                     # (|o|, n)
            solved = solve_cholesky(chol, centred)                     # Sigma_oo^{-1} (x_o - mu_o)
            loglik[rows] = _log_gaussian(centred, solved, chol)
            if m.size:
                sigma_mo = sigma[np.ix_(m, o)]
                cond_mean[np.ix_(rows, m)] = mu[m] + (sigma_mo @ solved).T  # (saddle_point-condmean)
                C = sigma[np.ix_(m, m)] - sigma_mo @ solve_cholesky(chol, sigma_mo.T)  # (saddle_point-condcov)
                C = 0.5 * (C + C.T)
                if covariances:
                    cond_cov[np.ix_(rows, m, m)] = C
                else:
                    cond_cov[np.ix_(m, m)] += rows.size * C
        return cond_mean, cond_cov, loglik

    # ------------------------------------------------------------------ densities
    def log_likelihood_per_point(self, X, params: NormalParams) -> np.ndarray:
        """log N(x_{n,o} | mu_o, Sigma_oo) for each row: the density of its observed entries
        (equation ``saddle_point-obsloglik``), shape (N,)."""
        X = self.check_data(X)
        return self._condition(X, self.check_params(params, X), covariances=False)[2]

    def log_likelihood(self, X, params: NormalParams) -> float:
        """log p(X | theta) = sum_n log N(x_{n,o} | mu_o, Sigma_oo), the total over the rows."""
        return float(self.log_likelihood_per_point(X, params).sum())

    def posterior(self, X, params: NormalParams) -> NormalPosterior:
        """q(z) = p(z | x, theta): the Gaussian posterior of the missing entries (padded), see :class:`NormalPosterior`."""
        X = self.check_data(X)
        cond_mean, cond_cov, _ = self._condition(X, self.check_params(params, X))
        return NormalPosterior(cond_mean, cond_cov)

    def log_joint(self, X, params: NormalParams, Z=None) -> np.ndarray:
        """log p(x_n, z_n | theta) = log N(xz_n | mu, Sigma) for a completion of each row.

        Parameters
        ----------
        X : array_like, shape (N, D)
            The data with NaN marking missing values.
        params : NormalParams
        Z : array_like, shape (N, D), optional
            A completed data set: equal to ``X`` where ``X`` is observed, any finite values in the
            missing entries. By default the posterior means are filled in.

        Returns
        -------
        ndarray, shape (N,)
            The complete-data log-density of each completed row. The latent variables are
            continuous, so this is a density, not an array shaped like a discrete q.
        """
        X = self.check_data(X)
        params = self.check_params(params, X)
        if Z is None:
            Z = self._condition(X, params, covariances=False)[0]
        else:
            Z = as_data_matrix(Z, name="Z")
            observed = ~np.isnan(X)
            if Z.shape != X.shape or not np.array_equal(Z[observed], X[observed]):
                raise ValueError("Z must have the shape of X and agree with X wherever X is observed; "
                                 "only the missing entries may be filled in.")
        chol = _cholesky(params.covariance, "covariance")
        centred = (Z - params.mean).T
        return _log_gaussian(centred, solve_cholesky(chol, centred), chol)

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, q: NormalPosterior) -> NormalStats:
        """N, sum_n E_q[x_n] and sum_n E_q[x_n x_n^T] under a Gaussian (or point-mass) q
        (equation ``saddle_point-estats``).

        Moments about the mean of the completed rows.

        Parameters
        ----------
        X : array_like, shape (N, D)
        q : NormalPosterior
            With ``mean`` (N, D) and ``covariance`` (N, D, D).
        """
        X = np.asarray(X, dtype=float)
        if not isinstance(q, NormalPosterior):
            raise ValueError(f"q must be a NormalPosterior (means and covariances of the missing entries); "
                             f"got {type(q).__name__}.")
        N, D = X.shape
        if q.mean.shape != (N, D) or q.covariance.shape != (N, D, D):
            raise ValueError(f"q must have mean (N, D) = {(N, D)} and covariance (N, D, D) = {(N, D, D)}; "
                             f"got {q.mean.shape} and {q.covariance.shape}.")
        return self._stats(q.mean, q.covariance.sum(axis=0), reference_point(q.mean.mean(axis=0), q.mean.std(axis=0)))

    @staticmethod
    def _stats(completed: np.ndarray, summed_cov: np.ndarray, centre: np.ndarray) -> NormalStats:
        """Statistics about ``centre`` from the completed rows (N, D) and sum_n Ctilde_n (D, D)."""
        centred = completed - centre
        sum_xx = centred.T @ centred + summed_cov
        return NormalStats(float(completed.shape[0]), centred.sum(axis=0), 0.5 * (sum_xx + sum_xx.T), centre)

    def e_step(self, X, params: NormalParams) -> tuple[NormalStats, float]:
        """Both parts of the E-step: the expected statistics (about the current mean where it is far
        from the origin, see ``_numerics.reference_point``) and
        log p(X | theta) at the same theta. Memory: the completed rows (N, D), not the (N, D, D)
        conditional covariances, whose sum is accumulated per missingness pattern."""
        completed, summed_cov, loglik = self._condition(X, params, covariances=False)
        centre = reference_point(params.mean, np.sqrt(np.diag(params.covariance)))
        return self._stats(completed, summed_cov, centre), float(loglik.sum())

    def m_step(self, stats: NormalStats) -> NormalParams:
        """argmax_theta Q(theta | theta_t) in closed form (equation saddle_point-mstep).

        mu = S1 / N (or the fixed mean) and Sigma = sum_n E[(x_n - mu)(x_n - mu)^T] / N, from
        :meth:`NormalStats.scatter` (no cancellation far from the origin).

        Raises
        ------
        ValueError
            If the covariance is singular to working precision: a constant column, collinear
            columns, or too few observed values.
        """
        N = stats.count
        offset = stats.centred_sum_x / N                                  # xbar - c
        mu = stats.centre + offset if self.mean is None else self.mean
        m = mu - stats.centre
        # sum_n E[(x_n - mu)(x_n - mu)^T] / N in coordinates about c: no cancellation far from 0
        sigma = stats.centred_sum_xx / N - np.outer(m, offset) - np.outer(offset, m) + np.outer(m, m)
        sigma = 0.5 * (sigma + sigma.T)
        variances = np.diag(sigma)
        constant = constant_columns(variances, np.abs(mu) + np.sqrt(np.maximum(variances, 0.0)))
        if constant.size:
            raise ValueError(f"column(s) {constant.tolist()} of X are constant (their spread is at rounding "
                             "level), so the covariance is singular; drop them.")
        _cholesky(sigma, "the M-step covariance", SINGULAR_RTOL)
        return NormalParams(mu, sigma)

    def init_params(self, X, rng: np.random.Generator) -> NormalParams:
        """The available-case start: each moment from the rows where its entries are observed.

        mu_j = mean of the observed x_{nj} (or the fixed mean); Sigma_jk = mean of
        (x_{nj} - mu_j)(x_{nk} - mu_k) over the rows observing both (0 if none). If that matrix
        is not positive definite, or is singular to working precision (possible with missing
        data), its off-diagonal part is dropped: the start is then the diagonal of available-case
        variances. The start is deterministic; ``rng`` is checked but not used.

        Warning: on data with a symmetry the available-case start can be a stationary point that is
        not a maximum (Murray's example: it is exactly the saddle point); try other starts too.
        """
        X = self.check_data(X)
        check_generator(rng)
        observed = ~np.isnan(X)
        mu = np.nanmean(X, axis=0) if self.mean is None else self.mean
        centred = np.where(observed, X - mu, 0.0)
        pairs = observed.T.astype(float) @ observed
        sigma = np.divide(centred.T @ centred, pairs, out=np.zeros_like(pairs), where=pairs > 0)
        flat = constant_columns(np.diag(sigma), np.maximum(np.nanmax(X, axis=0), -np.nanmin(X, axis=0)))
        if flat.size:
            raise ValueError(f"column(s) {flat.tolist()} of X show no spread around the mean "
                             "(every observed value equals it), so the variance is zero; drop them.")
        try:
            cholesky(sigma[None], SINGULAR_RTOL)
        except SingularCovarianceError:
            sigma = np.diag(np.diag(sigma))
        return NormalParams(mu, sigma)
