"""The Gaussian mixture model: E-step, expected sufficient statistics and closed-form M-step.

Book: chapter "Gaussian mixtures in full" derives every formula here. In its notation, with
responsibilities r_nk = p(z_n = k | x_n, theta),

    N_k = sum_n r_nk,   S1_k = sum_n r_nk x_n,   S2_k = sum_n r_nk x_n x_n^T

are the expected sufficient statistics, and the M-step is

    pi_k = N_k / N,   mu_k = S1_k / N_k,   Sigma_k = S2_k / N_k - mu_k mu_k^T + reg_covar * I.

Numerics follow the practice of scikit-learn: log-densities through precision Cholesky factors
P_k = L_k^{-T} (Sigma_k = L_k L_k^T), so (x - mu)^T Sigma^{-1} (x - mu) = ||(x - mu) P_k||^2 and
log det Sigma_k^{-1/2} = sum log diag P_k; no inverse or determinant of a covariance is formed.
All components are handled by one matrix product per chunk of data.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_data_matrix, as_float_array, check_generator, check_probability_vector
from ._chunks import DEFAULT_CHUNK_ELEMENTS, normalize_log_columns

_LOG_2PI = np.log(2.0 * np.pi)
_COVARIANCE_TYPES = ("full", "diag")
_PARAM_NAMES = ("weights", "means", "covariances")


class ComponentCollapseWarning(UserWarning):
    """A component's covariance has shrunk to the size of ``reg_covar``: it sits on a few points."""


@dataclass(frozen=True)
class GaussianMixtureParams:
    """Parameters theta = (pi, mu, Sigma) of a K-component Gaussian mixture in D dimensions.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Mixing weights pi_k, non-negative, summing to one.
    means : array_like, shape (K, D)
        Component means mu_k.
    covariances : array_like, shape (K, D, D) or (K, D)
        Full covariance matrices Sigma_k (symmetric positive definite), or the diagonals of
        diagonal covariances (positive).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        weights = as_float_array(self.weights, (None,), "weights")
        K = weights.shape[0]
        means = as_float_array(self.means, (K, None), "means")
        D = means.shape[1]
        covariances = np.asarray(self.covariances, dtype=float)
        if covariances.ndim == 3:
            covariances = as_float_array(covariances, (K, D, D), "covariances")
            if not np.allclose(covariances, covariances.transpose(0, 2, 1), rtol=1e-10, atol=1e-12):
                raise ValueError("covariances must be symmetric matrices; symmetrize them with (S + S.T) / 2.")
            _cholesky(covariances)  # raises a clear error unless positive definite
        else:
            covariances = as_float_array(covariances, (K, D), "covariances (diagonal)")
            if np.any(covariances <= 0):
                raise ValueError("diagonal covariances must be positive; got a value <= 0. "
                                 "Increase reg_covar or start from larger variances.")
        check_probability_vector(weights)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        """D, the dimension of the data."""
        return self.means.shape[1]

    @property
    def covariance_type(self) -> str:
        """``"full"`` for (K, D, D) covariances, ``"diag"`` for (K, D)."""
        return "full" if self.covariances.ndim == 3 else "diag"


@dataclass(frozen=True)
class GaussianMixtureStats:
    """Expected sufficient statistics E_q[t(x, z)] of a Gaussian mixture, summed over data.

    They are additive (``a + b`` gives the statistics of the union of the data) and can be
    scaled (``c * a``), which is all that online, mini-batch and distributed EM need.

    Attributes
    ----------
    counts : ndarray, shape (K,)
        N_k = sum_n r_nk.
    sum_x : ndarray, shape (K, D)
        S1_k = sum_n r_nk x_n.
    sum_xx : ndarray, shape (K, D, D) or (K, D)
        S2_k = sum_n r_nk x_n x_n^T, or its diagonal sum_n r_nk x_n**2.
    """

    counts: np.ndarray
    sum_x: np.ndarray
    sum_xx: np.ndarray

    def __add__(self, other: "GaussianMixtureStats") -> "GaussianMixtureStats":
        if not isinstance(other, GaussianMixtureStats):
            return NotImplemented
        return GaussianMixtureStats(self.counts + other.counts, self.sum_x + other.sum_x,
                                    self.sum_xx + other.sum_xx)

    def __mul__(self, scale: float) -> "GaussianMixtureStats":
        return GaussianMixtureStats(scale * self.counts, scale * self.sum_x, scale * self.sum_xx)

    __rmul__ = __mul__


def _diag_features(X: np.ndarray) -> np.ndarray:
    """[x, x * x] side by side, shape (n, 2D): a diagonal Gaussian's log-density is linear in them."""
    return np.concatenate([X, X * X], axis=1)


def _cholesky(covariances: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of (K, D, D) covariances, or a ``ValueError`` naming the component."""
    try:
        return np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        bad = [k for k, c in enumerate(covariances) if np.any(np.linalg.eigvalsh(c) <= 0)]
        raise ValueError(
            f"covariance of component(s) {bad} is not positive definite. If this happened during "
            "a fit, the component collapsed onto too few points: increase reg_covar (e.g. 1e-3), "
            "use fewer components, or start elsewhere."
        ) from None


@dataclass(frozen=True)
class _Factors:
    """Per-parameter quantities computed once per E-step: everything log_joint needs."""

    log_weights: np.ndarray  # (K,)
    weights: np.ndarray      # full: (D+1, K*D), [P_k side by side; -mu_k P_k]; diag: (2D, K), [mu/s^2; -1/(2 s^2)]
    shift: np.ndarray        # (K, D): mu_k P_k for full; mu_k / sigma_k^2 for diag
    const: np.ndarray        # (K,): log pi_k - D/2 log 2 pi + log det P_k (- 1/2 mu^T Lambda mu for diag)


class GaussianMixture:
    """A mixture of K Gaussians, p(x | theta) = sum_k pi_k N(x | mu_k, Sigma_k).

    Parameters
    ----------
    n_components : int
        K, the number of components.
    covariance_type : {"full", "diag"}
        Full covariance matrices, or diagonal ones.
    reg_covar : float
        Non-negative number added to the diagonal of every covariance in the M-step (as in
        scikit-learn); it keeps a component that sits on a few points from collapsing. With
        ``reg_covar > 0`` the M-step is no longer the exact maximizer of Q, so the monotonicity
        of EM holds only up to terms of the order of ``reg_covar``; ``reg_covar=0`` gives exact EM.
    fixed : dict, optional
        Parameters that are known and not estimated: any of ``"weights"`` (K,), ``"means"``
        (K, D) and ``"covariances"`` ((K, D, D) or (K, D), matching ``covariance_type``). The
        M-step maximizes Q over the others only; the fixed values are used as they are.
    chunk_size : int, optional
        Rows of data processed at once in the E-step. The default keeps each chunk's work arrays
        near a million numbers, so memory stays bounded for any N.
    """

    def __init__(self, n_components: int, covariance_type: str = "full", reg_covar: float = 1e-6,
                 *, fixed: dict | None = None, chunk_size: int | None = None):
        if not isinstance(n_components, (int, np.integer)) or isinstance(n_components, bool) or n_components < 1:
            raise ValueError(f"n_components must be a positive integer; got {n_components!r}.")
        if covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}; got {covariance_type!r}.")
        if not np.isfinite(reg_covar) or reg_covar < 0:
            raise ValueError(f"reg_covar must be a non-negative number; got {reg_covar!r}.")
        if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}.")
        fixed = dict(fixed or {})
        unknown = set(fixed) - set(_PARAM_NAMES)
        if unknown:
            raise ValueError(f"fixed accepts only {_PARAM_NAMES}; got {sorted(unknown)}.")
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)
        self.chunk_size = chunk_size
        self.fixed = self._check_fixed(fixed)

    def __repr__(self) -> str:
        extra = f", fixed={sorted(self.fixed)}" if self.fixed else ""
        return (f"GaussianMixture(n_components={self.n_components}, covariance_type="
                f"{self.covariance_type!r}, reg_covar={self.reg_covar!r}{extra})")

    # ------------------------------------------------------------------ validation
    def _check_fixed(self, fixed: dict) -> dict:
        K = self.n_components
        out = {}
        if "weights" in fixed:
            w = as_float_array(fixed["weights"], (K,), "fixed weights")
            check_probability_vector(w, "fixed weights")
            out["weights"] = w
        if "means" in fixed:
            out["means"] = as_float_array(fixed["means"], (K, None), "fixed means")
        if "covariances" in fixed:
            shape = (K, None, None) if self.covariance_type == "full" else (K, None)
            cov = as_float_array(fixed["covariances"], shape, f"fixed covariances ({self.covariance_type})")
            if self.covariance_type == "full":
                _cholesky(cov)
            elif np.any(cov <= 0):
                raise ValueError("fixed diagonal covariances must be positive.")
            out["covariances"] = cov
        return out

    def check_data(self, X) -> np.ndarray:
        """Data to fit: a float array of shape (N, D) with N >= K, or a ``ValueError``."""
        return as_data_matrix(X, min_rows=self.n_components)

    def _points(self, X, params) -> tuple[np.ndarray, _Factors]:
        """Data to evaluate (any N >= 1) and the factors of checked ``params``."""
        X = as_data_matrix(X)
        return X, self._factors(self.check_params(params, X))

    def check_params(self, params, X=None) -> GaussianMixtureParams:
        """Raise ``ValueError`` unless ``params`` fit this model (and the data ``X``, if given)."""
        if not isinstance(params, GaussianMixtureParams):
            raise ValueError(f"params must be GaussianMixtureParams; got {type(params).__name__}.")
        if params.n_components != self.n_components:
            raise ValueError(f"params have {params.n_components} components but the model has "
                             f"{self.n_components}; make them agree.")
        if params.covariance_type != self.covariance_type:
            raise ValueError(f"params have {params.covariance_type} covariances but the model expects "
                             f"{self.covariance_type!r} (shape (K, D, D) for full, (K, D) for diag).")
        if X is not None and params.n_features != np.shape(X)[1]:
            raise ValueError(f"params are for D = {params.n_features} dimensions but X has "
                             f"{np.shape(X)[1]} columns.")
        return params

    # ------------------------------------------------------------------ densities
    def _factors(self, params: GaussianMixtureParams) -> _Factors:
        K, D = params.means.shape
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        if params.covariance_type == "full":
            chol = _cholesky(params.covariances)
            # P_k = L_k^{-T}: one batched triangular solve for all components (a Python loop of
            # small solves is slow, and slower still with threaded BLAS on a busy machine)
            prec_chol = np.linalg.solve(chol, np.broadcast_to(np.eye(D), chol.shape)).transpose(0, 2, 1)
            log_det = -np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            shift = np.einsum("kd,kde->ke", params.means, prec_chol)
            # [x, 1] @ [[P_1 ... P_K], [-mu_1 P_1 ... -mu_K P_K]] = ((x - mu_k) P_k)_k in one product
            stacked = np.concatenate([prec_chol.transpose(1, 0, 2).reshape(D, K * D), -shift.reshape(1, K * D)])
            const = log_weights - 0.5 * D * _LOG_2PI + log_det
        else:
            precisions = 1.0 / params.covariances
            log_det = 0.5 * np.log(precisions).sum(axis=1)
            shift = params.means * precisions
            # the quadratic form is linear in the features [x, x*x]: one matrix product
            stacked = np.ascontiguousarray(np.concatenate([shift.T, -0.5 * precisions.T]))
            const = (log_weights - 0.5 * D * _LOG_2PI + log_det
                     - 0.5 * np.sum(params.means ** 2 * precisions, axis=1))
        return _Factors(log_weights, stacked, shift, const)

    def _log_joint_chunk(self, X: np.ndarray, f: _Factors, features: np.ndarray | None = None) -> np.ndarray:
        """log pi_k + log N(x_n | mu_k, Sigma_k) for one chunk, shape (K, n): components first.

        ``features`` (diag only) is ``[X, X * X]`` (n, 2D) when the caller has it already.
        """
        if self.covariance_type == "full":
            K, D = f.shift.shape
            ones = np.empty((X.shape[0], D + 1))
            ones[:, :D] = X
            ones[:, D] = 1.0
            Y = (ones @ f.weights).reshape(X.shape[0], K, D)
            log_joint = np.empty((K, X.shape[0]))  # C order: einsum alone would return a strided view
            np.einsum("nkd,nkd->kn", Y, Y, out=log_joint)
            log_joint *= -0.5
            log_joint += f.const[:, None]
            return log_joint
        # diag: -1/2 sum_d (x_d - mu_kd)^2 / s_kd, expanded: linear in the features [x, x*x].
        if features is None:
            features = _diag_features(X)
        return f.weights.T @ features.T + f.const[:, None]

    def _chunk_slices(self, X: np.ndarray) -> list[slice]:
        """Row blocks of ``X`` small enough that each block's work arrays stay in cache."""
        K, D = self.n_components, X.shape[1]
        width = K * D if self.covariance_type == "full" else K + 2 * D  # work numbers per row
        size = self.chunk_size or max(256, DEFAULT_CHUNK_ELEMENTS // width)
        return [slice(start, start + size) for start in range(0, X.shape[0], size)]

    def _chunks(self, X: np.ndarray):
        return (X[c] for c in self._chunk_slices(X))

    def log_joint(self, X, params: GaussianMixtureParams) -> np.ndarray:
        """log p(x_n, z_n = k | theta) for every point and component.

        Returns
        -------
        ndarray, shape (N, K)
        """
        X, f = self._points(X, params)
        return np.concatenate([self._log_joint_chunk(c, f) for c in self._chunks(X)], axis=1).T

    def posterior(self, X, params: GaussianMixtureParams) -> np.ndarray:
        """Responsibilities r_nk = p(z_n = k | x_n, theta): the E-step's q, shape (N, K).

        Rows sum to one. Computed in log space (Bayes' rule with log-sum-exp).
        """
        X, f = self._points(X, params)
        blocks = [self._log_joint_chunk(c, f) for c in self._chunks(X)]
        for block in blocks:
            normalize_log_columns(block)
        return np.concatenate(blocks, axis=1).T

    def log_likelihood(self, X, params: GaussianMixtureParams) -> float:
        """log p(X | theta) = sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k), the total over the data."""
        return float(self.log_likelihood_per_point(X, params).sum())

    def log_likelihood_per_point(self, X, params: GaussianMixtureParams) -> np.ndarray:
        """log p(x_n | theta) for each point, shape (N,)."""
        X, f = self._points(X, params)
        return np.concatenate([normalize_log_columns(self._log_joint_chunk(c, f)) for c in self._chunks(X)])

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, q) -> GaussianMixtureStats:
        """Expected sufficient statistics for data ``X`` (N, D) under q (N, K) (rows of probabilities).

        q may be the responsibilities (EM), one-hot assignments (classification EM) or sampled
        labels (stochastic EM).
        """
        X = np.asarray(X, dtype=float)
        q = np.asarray(q, dtype=float)
        if q.shape != (X.shape[0], self.n_components):
            raise ValueError(f"q must have shape (N, K) = {(X.shape[0], self.n_components)}; got {q.shape}.")
        counts = q.sum(axis=0)
        moments = sum(self._moments(X[c], q[c].T) for c in self._chunk_slices(X))
        return self._stats(counts, moments, X.shape[1])

    def _moments(self, X: np.ndarray, qT: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """q^T @ t(x) for one chunk: [sum_n q_nk x_n, sum_n q_nk x_n x_n^T (upper triangle or diagonal)].

        Returns
        -------
        ndarray, shape (K, D + D(D+1)/2) for full, (K, 2D) for diag
        """
        if self.covariance_type == "diag":
            return qT @ (_diag_features(X) if features is None else features)
        rows, cols = np.triu_indices(X.shape[1])
        return np.concatenate([qT @ X, qT @ (X[:, rows] * X[:, cols])], axis=1)  # each product once

    def _stats(self, counts: np.ndarray, moments: np.ndarray, D: int) -> GaussianMixtureStats:
        """Unpack the moments, shape (K, width), into N_k, S1_k and S2_k."""
        sum_x, second = moments[:, :D], moments[:, D:]
        if self.covariance_type == "diag":
            return GaussianMixtureStats(counts, sum_x, second)
        rows, cols = np.triu_indices(D)
        sum_xx = np.empty((self.n_components, D, D))
        sum_xx[:, rows, cols] = second
        sum_xx[:, cols, rows] = second
        return GaussianMixtureStats(counts, sum_x, sum_xx)

    def e_step(self, X, params: GaussianMixtureParams) -> tuple[GaussianMixtureStats, float]:
        """Both parts of the E-step in one pass over the data, chunk by chunk.

        Per chunk: the log-joint (K, n), normalized in place into the responsibilities, then one
        matrix product of those with the chunk's features accumulates all the moments.

        Returns
        -------
        stats : GaussianMixtureStats
            The expected sufficient statistics under q = p(z | x, theta).
        log_likelihood : float
            log p(X | theta) at the same parameters, a by-product of normalizing q.
        """
        f = self._factors(params)
        counts, moments, total = 0.0, 0.0, 0.0
        for c in self._chunk_slices(X):
            chunk = X[c]
            features = _diag_features(chunk) if self.covariance_type == "diag" else None
            qT = self._log_joint_chunk(chunk, f, features)
            total += float(normalize_log_columns(qT).sum())  # qT now holds the responsibilities
            counts = counts + qT.sum(axis=1)
            moments = moments + self._moments(chunk, qT, features)
        return self._stats(counts, moments, X.shape[1]), total

    def m_step(self, stats: GaussianMixtureStats) -> GaussianMixtureParams:
        """argmax_theta Q(theta | theta_t), in closed form from the expected statistics.

        Raises
        ------
        ValueError
            If a component received (numerically) no responsibility, so its mean is undefined.
        """
        counts = stats.counts
        tiny = 10 * np.finfo(float).eps * max(float(counts.sum()), 1.0)
        empty = np.flatnonzero(counts <= tiny)
        if empty.size and not {"means", "covariances"} <= set(self.fixed):
            raise ValueError(
                f"component(s) {empty.tolist()} received no responsibility (N_k = 0) and cannot be "
                "updated: they emptied. Start from other parameters or use fewer components."
            )
        weights = self.fixed.get("weights")
        if weights is None:
            weights = counts / counts.sum()
        means = self.fixed.get("means")
        if means is None:
            means = stats.sum_x / counts[:, None]
        covariances = self.fixed.get("covariances")
        if covariances is None:
            covariances = self._covariances(stats, means)
        return GaussianMixtureParams(weights, means, covariances)

    def _covariances(self, stats: GaussianMixtureStats, means: np.ndarray) -> np.ndarray:
        counts = stats.counts
        if self.covariance_type == "diag":
            cov = stats.sum_xx / counts[:, None] - means ** 2 + self.reg_covar
            smallest = cov.min(axis=1)
        else:
            cov = stats.sum_xx / counts[:, None, None] - means[:, :, None] * means[:, None, :]
            cov = 0.5 * (cov + cov.transpose(0, 2, 1))
            cov[:, np.arange(cov.shape[1]), np.arange(cov.shape[1])] += self.reg_covar
            _cholesky(cov)
            smallest = np.linalg.eigvalsh(cov)[:, 0]
        if np.any(smallest <= 0):
            raise ValueError(
                "a variance became zero or negative: a component collapsed onto a single point. "
                "Increase reg_covar (e.g. 1e-3), use fewer components, or start elsewhere."
            )
        # Collapse: in some direction the component's own variance is below reg_covar, so the
        # regularization, not the data, sets its width.
        collapsing = smallest <= 2 * self.reg_covar
        if self.reg_covar > 0 and np.any(collapsing):
            collapsed = np.flatnonzero(collapsing).tolist()
            warnings.warn(
                f"component(s) {collapsed} collapsed: their covariance is held up only by "
                f"reg_covar={self.reg_covar:g}, so the likelihood is growing without bound. "
                "Increase reg_covar, use fewer components, or start elsewhere.",
                ComponentCollapseWarning, stacklevel=3,
            )
        return cov

    # ------------------------------------------------------------------ starting and sampling
    def init_params(self, X, rng: np.random.Generator) -> GaussianMixtureParams:
        """A starting point theta_0: k-means++ seeding for the means.

        The first mean is a data point drawn uniformly; each further mean is a data point drawn
        with probability proportional to its squared distance to the nearest mean chosen so far
        (Arthur and Vassilvitskii 2007). Weights start equal; every covariance starts at the
        covariance (or variances) of the whole data plus ``reg_covar``. Fixed parameters are used
        as given.

        Parameters
        ----------
        X : array_like, shape (N, D)
        rng : numpy.random.Generator
            The only source of randomness.
        """
        X = self.check_data(X)
        rng = check_generator(rng)
        K, (N, D) = self.n_components, X.shape
        means = self.fixed.get("means")
        if means is None:
            chosen = [int(rng.integers(N))]
            closest = np.sum((X - X[chosen[0]]) ** 2, axis=1)
            for _ in range(1, K):
                total = closest.sum()
                if total > 0:
                    idx = int(rng.choice(N, p=closest / total))
                else:  # every point coincides with a chosen mean: any point will do
                    idx = int(rng.integers(N))
                chosen.append(idx)
                closest = np.minimum(closest, np.sum((X - X[idx]) ** 2, axis=1))
            means = X[chosen]
        weights = self.fixed.get("weights", np.full(K, 1.0 / K))
        covariances = self.fixed.get("covariances")
        if covariances is None:
            centred = X - X.mean(axis=0)
            if self.covariance_type == "full":
                cov = centred.T @ centred / N + self.reg_covar * np.eye(D)
                covariances = np.repeat(cov[None], K, axis=0)
            else:
                covariances = np.repeat((np.mean(centred ** 2, axis=0) + self.reg_covar)[None], K, axis=0)
            if self.reg_covar == 0 and self.covariance_type == "diag" and np.any(covariances <= 0):
                raise ValueError("a column of X is constant; set reg_covar > 0 or drop that column.")
        return GaussianMixtureParams(weights, means, covariances)

    def sample(self, params: GaussianMixtureParams, n: int, rng: np.random.Generator):
        """Draw n points from the mixture.

        Returns
        -------
        X : ndarray, shape (n, D)
        z : ndarray of int, shape (n,)
            The component each point came from.
        """
        self.check_params(params)
        rng = check_generator(rng)
        z = rng.choice(self.n_components, size=n, p=params.weights)
        noise = rng.standard_normal((n, params.n_features))
        if params.covariance_type == "full":
            chol = _cholesky(params.covariances)
            X = params.means[z] + np.einsum("nij,nj->ni", chol[z], noise)
        else:
            X = params.means[z] + noise * np.sqrt(params.covariances[z])
        return X, z
