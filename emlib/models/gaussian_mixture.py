"""The Gaussian mixture model: E-step, expected sufficient statistics and closed-form M-step.

Book: chapter "Gaussian mixtures in full" derives every formula here. In its notation, with
responsibilities r_nk = p(z_n = k | x_n, theta) (equation ``gaussian_mixtures-logresp``),

    N_k = sum_n r_nk,   S1_k = sum_n r_nk x_n,   S2_k = sum_n r_nk x_n x_n^T

are the expected sufficient statistics (``gaussian_mixtures-stats``), and the M-step is

    pi_k = N_k / N,   mu_k = S1_k / N_k,   Sigma_k = S2_k / N_k - mu_k mu_k^T + reg_covar * I

(``gaussian_mixtures-weights``, ``gaussian_mixtures-means``, ``gaussian_mixtures-cov-reg``).

Far from the origin the last formula cancels catastrophically (the chapter's caveat about
``gaussian_mixtures-cov``), so the statistics are carried as moments about a reference point c,
sum_n r_nk (x_n - c) and sum_n r_nk (x_n - c)(x_n - c)^T, with c near the data; the E-step
also centres every chunk of data at c before any product. Sums of statistics about different
reference points are combined by the exact translation formula. ``stats.sum_x`` and
``stats.sum_xx`` still give S1_k and S2_k about the origin.

Numerics follow the practice of scikit-learn: log-densities through precision Cholesky factors
P_k = L_k^{-T} (Sigma_k = L_k L_k^T, equation ``gaussian_mixtures-chol``), obtained by a
triangular solve, so (x - mu)^T Sigma^{-1} (x - mu) = ||(x - mu) P_k||^2 and
log det Sigma_k^{-1/2} = sum log diag P_k; no inverse or determinant of a covariance is formed.
All components are handled by one matrix product per chunk of data.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .._validation import (as_data_matrix, as_float_array, check_gaussian_scale, check_generator, check_integer,
                           check_number, check_probability_vector, check_symmetric)
from ._chunks import row_slices
from ._fit_warnings import ComponentCollapseWarning, warn_components
from ._numerics import (LOG_2PI, SINGULAR_RTOL, SingularCovarianceError, cholesky, constant_columns,
                        draw_components, empty_components, log_det_from_cholesky, normalize_log_columns, precision_cholesky,
                        reference_point)

__all__ = ["ComponentCollapseWarning", "GaussianMixture", "GaussianMixtureParams", "GaussianMixtureStats",
           "kmeans_plus_plus"]

_COVARIANCE_TYPES = ("full", "diag")
_PARAM_NAMES = ("weights", "means", "covariances")
_TINY = np.finfo(float).tiny

#: The message of a full covariance that is not positive definite during a fit (also shown in the
#: chapter "Gaussian mixtures in full").
_NOT_POSITIVE_DEFINITE = (
    "covariance of component(s) {components} is not positive definite. If this happened during a fit, the "
    "component collapsed onto too few points: increase reg_covar (e.g. 1e-3), use fewer components, or "
    "start elsewhere."
)
_COLLINEAR = (
    "{what} is singular to working precision because the columns of X are collinear (one is, to "
    "rounding, a linear combination of the others, e.g. X = [a, b, a + b]). Drop the redundant columns, "
    "or set reg_covar > 0 (reg_covar = {reg_covar:g} is too small for the variance of X)."
)
_DEGENERATE_DATA = (
    "the columns of X are collinear or constant: in some direction the data do not vary, so the "
    "covariance of component(s) {components} is held up only by reg_covar={reg_covar:g} there. Drop the "
    "redundant columns."
)
_SMALL_DATA = (
    "X varies by less than reg_covar={reg_covar:g} in every direction, so the covariance of component(s) "
    "{components} is set by reg_covar, not by the data. Rescale X (e.g. divide it by its standard "
    "deviation) or use a smaller reg_covar."
)
_COLLAPSE = (
    "component(s) {components} collapsed: their covariance is held up only by reg_covar={reg_covar:g}, so "
    "the likelihood is growing without bound. Increase reg_covar, use fewer components, or start elsewhere."
)


def _check_covariances(covariances: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless (K, D, D) matrices are symmetric positive definite with normal
    (not subnormal) pivots, or (K, D) variances are positive and not subnormal."""
    if covariances.ndim == 2:
        if np.any(covariances <= 0):
            raise ValueError(f"{name} (diagonal) must be positive; got a value <= 0. "
                             "Increase reg_covar or start from larger variances.")
        if np.any(covariances < _TINY):
            raise ValueError(f"{name} (diagonal) hold subnormal values (below {_TINY:.3g}), whose "
                             "reciprocals overflow; rescale the data or start from larger variances.")
        return
    check_symmetric(covariances, name)
    try:
        cholesky(covariances)
    except SingularCovarianceError as exc:
        raise ValueError(f"{name} of component(s) {exc.components} are not positive definite (or their "
                         "Cholesky factors have subnormal pivots, whose reciprocals overflow).") from None


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
        Full covariance matrices Sigma_k (symmetric positive definite, not singular to working
        precision), or the diagonals of diagonal covariances (positive, not subnormal).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        weights = as_float_array(self.weights, (None,), "weights")
        K = weights.shape[0]
        means = as_float_array(self.means, (K, None), "means")
        D = means.shape[1]
        if np.ndim(self.covariances) == 3:
            covariances = as_float_array(self.covariances, (K, D, D), "covariances")
        else:
            covariances = as_float_array(self.covariances, (K, D), "covariances (diagonal)")
        _check_covariances(covariances, "covariances")
        check_probability_vector(weights, given=self.weights)
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

    Carried as moments about a reference point c (equation ``gaussian_mixtures-stats``, shifted):
    for data far from the origin, moments about a c near the data keep every digit that
    moments about the origin would cancel. They are additive (``a + b`` gives the statistics of
    the union of the data, translated exactly to a common c) and can be scaled (``c * a``),
    which is all that online, mini-batch and distributed EM need.

    ``GaussianMixtureStats(counts, sum_x, sum_xx)`` (no ``centre``) takes moments about the
    origin, as the chapters write them.

    Attributes
    ----------
    counts : ndarray, shape (K,)
        N_k = sum_n r_nk.
    centred_sum_x : ndarray, shape (K, D)
        sum_n r_nk (x_n - c).
    centred_sum_xx : ndarray, shape (K, D, D) or (K, D)
        sum_n r_nk (x_n - c)(x_n - c)^T, or its diagonal.
    centre : ndarray, shape (D,)
        The reference point c (zeros when not given).
    """

    counts: np.ndarray
    centred_sum_x: np.ndarray
    centred_sum_xx: np.ndarray
    centre: np.ndarray | None = None

    def __post_init__(self):
        for name in ("counts", "centred_sum_x", "centred_sum_xx"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        centre = (np.zeros(self.centred_sum_x.shape[-1]) if self.centre is None
                  else np.asarray(self.centre, dtype=float))
        object.__setattr__(self, "centre", centre)

    @property
    def covariance_type(self) -> str:
        """``"full"`` when the second moments are (K, D, D) matrices, ``"diag"`` when (K, D)."""
        return "full" if self.centred_sum_xx.ndim == 3 else "diag"

    @property
    def sum_x(self) -> np.ndarray:
        """S1_k = sum_n r_nk x_n, about the origin; shape (K, D)."""
        return self.centred_sum_x + self.counts[:, None] * self.centre

    @property
    def sum_xx(self) -> np.ndarray:
        """S2_k = sum_n r_nk x_n x_n^T about the origin (or its diagonal); shape (K, D, D) or (K, D).

        Far from the origin these moments cancel in S2_k / N_k - mu_k mu_k^T; the M-step uses
        :meth:`scatter` instead.
        """
        return self.scatter(np.zeros_like(self.centred_sum_x))

    def scatter(self, means: np.ndarray) -> np.ndarray:
        """sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T for given means mu_k (K, D), or its diagonal
        (equation ``gaussian_mixtures-scatter``).

        From the moments about c with e_k = c - mu_k: C_k + s_k e_k^T + e_k s_k^T + N_k e_k e_k^T
        (s_k, C_k the centred first and second moments). Free of cancellation when the mu_k are
        near the data. The M-step's covariance is ``scatter(means) / counts`` (equation
        ``gaussian_mixtures-cov``); Q from statistics (``generalized_em-q-stats``) uses it too.

        Returns
        -------
        ndarray, shape (K, D, D) or (K, D)
        """
        offset = self.centre - np.asarray(means, dtype=float)          # e_k, (K, D)
        s, n = self.centred_sum_x, self.counts
        if self.covariance_type == "diag":
            return self.centred_sum_xx + 2.0 * s * offset + n[:, None] * offset ** 2
        cross = s[:, :, None] * offset[:, None, :]
        return (self.centred_sum_xx + cross + cross.transpose(0, 2, 1)
                + n[:, None, None] * offset[:, :, None] * offset[:, None, :])

    def recentred(self, centre) -> "GaussianMixtureStats":
        """The same statistics as moments about another reference point ``centre`` (D,)."""
        centre = np.asarray(centre, dtype=float)
        moved = self.centre - centre
        centred_sum_x = self.centred_sum_x + self.counts[:, None] * moved
        return GaussianMixtureStats(self.counts, centred_sum_x,
                                    self.scatter(np.broadcast_to(centre, self.centred_sum_x.shape)), centre)

    def __add__(self, other: "GaussianMixtureStats") -> "GaussianMixtureStats":
        if not isinstance(other, GaussianMixtureStats):
            return NotImplemented
        if not np.array_equal(other.centre, self.centre):
            other = other.recentred(self.centre)
        return GaussianMixtureStats(self.counts + other.counts, self.centred_sum_x + other.centred_sum_x,
                                    self.centred_sum_xx + other.centred_sum_xx, self.centre)

    def __mul__(self, scale: float) -> "GaussianMixtureStats":
        return GaussianMixtureStats(scale * self.counts, scale * self.centred_sum_x, scale * self.centred_sum_xx,
                                    self.centre)

    __rmul__ = __mul__


def _centred(chunk: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """chunk - centre, or the chunk itself (no copy) when the reference point is the origin."""
    return chunk - centre if centre.any() else chunk


@functools.lru_cache(maxsize=32)
def _upper_triangle(D: int) -> tuple[np.ndarray, np.ndarray]:
    """The row and column indices of the upper triangle of a D x D matrix (``np.triu_indices``), cached."""
    return np.triu_indices(D)


def _diag_features(centred: np.ndarray) -> np.ndarray:
    """[y, y * y] side by side, shape (n, 2D): a diagonal Gaussian's log-density is linear in them."""
    return np.concatenate([centred, centred * centred], axis=1)


@dataclass(frozen=True)
class _DensityFactors:
    """Everything the log-density of a chunk needs, computed once per parameter value.

    The data are centred at ``centre`` before the product with ``linear_map``.
    """

    centre: np.ndarray      # (D,), c = sum_k pi_k mu_k where far from the origin, else 0 (see reference_point)
    linear_map: np.ndarray  # full: (D+1, K*D) [P_1 ... P_K; -(mu_k - c) P_k]; diag: (2D, K) [(mu - c)/s; -1/(2s)]
    const: np.ndarray       # (K,): log pi_k - D/2 log 2 pi + log det P_k (- 1/2 (mu-c)^T Lambda (mu-c) for diag)


def _squared_distances(X: np.ndarray, point: np.ndarray) -> np.ndarray:
    """||x_n - point||^2 for every row, chunk by chunk (no N x D temporary); shape (N,)."""
    out = np.empty(X.shape[0])
    for c in row_slices(X.shape[0], 16 * X.shape[1]):
        diff = X[c] - point
        np.einsum("nd,nd->n", diff, diff, out=out[c])
    return out


def kmeans_plus_plus(X: np.ndarray, n_seeds: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii 2007): ``n_seeds`` rows of ``X`` (N, D).

    The first seed is a row drawn uniformly; each further seed is a row drawn with probability
    proportional to its squared distance to the nearest seed chosen so far (if every row
    coincides with a seed, uniformly). Works in chunks of rows.

    Returns
    -------
    ndarray, shape (n_seeds, D)
    """
    X = as_data_matrix(X, min_rows=n_seeds)
    rng = check_generator(rng)
    N = X.shape[0]
    chosen = [int(rng.integers(N))]
    closest = _squared_distances(X, X[chosen[0]])
    for _ in range(1, n_seeds):
        total = closest.sum()
        idx = int(rng.choice(N, p=closest / total)) if total > 0 else int(rng.integers(N))
        chosen.append(idx)
        np.minimum(closest, _squared_distances(X, X[idx]), out=closest)
    return X[chosen]


class _MomentSums:
    """Running sums of N_k and the moments over chunks, added in place (no new array per chunk)."""

    def __init__(self):
        self.counts = self.first = self.second = None

    def add(self, qT: np.ndarray | None, first: np.ndarray, second: np.ndarray) -> None:
        """Add one chunk's moments, and its counts from ``qT`` (K, n) unless None."""
        if self.first is None:
            self.first, self.second = first, second
        else:
            self.first += first
            self.second += second
        if qT is not None:
            self.counts = qT.sum(axis=1) if self.counts is None else self.counts + qT.sum(axis=1)


class GaussianMixture:
    """A mixture of K Gaussians, p(x | theta) = sum_k pi_k N(x | mu_k, Sigma_k) (``gaussian_mixtures-loglik``).

    Diagonal covariances follow equation ``gaussian_mixtures-diag``.

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
        of EM holds only up to terms of the order of ``reg_covar``; ``reg_covar=0`` gives exact EM,
        and then a covariance that is singular to working precision (collinear or constant
        columns, or a component on too few points) is an error.
    fixed : dict, optional
        Parameters that are known and not estimated: any of ``"weights"`` (K,), ``"means"``
        (K, D) and ``"covariances"`` ((K, D, D) or (K, D), matching ``covariance_type``). The
        M-step maximizes Q over the others only; the fixed values are used as they are.
    chunk_size : int, optional
        Rows of data processed at once. By default each chunk's work arrays take about
        ``emlib.models._chunks.CHUNK_BYTES`` (512 KB), counting everything a row needs (the
        K x D whitened residuals and the moment features), with at least
        ``emlib.models._chunks.MIN_ROWS`` (256) rows. For full covariances the second moments
        are taken by D(D+1)/2 features only while D + 1 <= 2K, and otherwise by one weighted Gram
        matrix per component, so a row never needs of the order of D^2 numbers: memory stays
        bounded for any N and any D.
    """

    #: Each data point has its own latent label z_n with K values (the drivers may sample or
    #: classify it), and rows of X are independent given theta (the drivers may use row chunks).
    discrete_latent = True
    independent_rows = True

    def __init__(self, n_components: int, covariance_type: str = "full", reg_covar: float = 1e-6,
                 *, fixed: dict | None = None, chunk_size: int | None = None):
        self.n_components = check_integer(n_components, "n_components", minimum=1)
        if not isinstance(covariance_type, str) or covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}; got {covariance_type!r}.")
        self.covariance_type = covariance_type
        self.reg_covar = check_number(reg_covar, "reg_covar", minimum=0.0)
        if 0 < self.reg_covar < _TINY:
            raise ValueError(f"reg_covar must be 0 or a normal number (at least {_TINY:.3g}); got {reg_covar!r}, "
                             "which is subnormal and cannot hold a covariance up.")
        self.chunk_size = None if chunk_size is None else check_integer(chunk_size, "chunk_size", minimum=1)
        if fixed is not None and not isinstance(fixed, dict):
            raise ValueError(f"fixed must be a dict of known parameters or None; got {type(fixed).__name__}.")
        unknown = set(fixed or {}) - set(_PARAM_NAMES)
        if unknown:
            raise ValueError(f"fixed accepts only {_PARAM_NAMES}; got {sorted(unknown)}.")
        self.fixed = self._check_fixed(dict(fixed or {}))

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
            check_probability_vector(w, "fixed weights", given=fixed["weights"])
            out["weights"] = w
        if "means" in fixed:
            out["means"] = as_float_array(fixed["means"], (K, None), "fixed means")
        if "covariances" in fixed:
            shape = (K, None, None) if self.covariance_type == "full" else (K, None)
            cov = as_float_array(fixed["covariances"], shape, f"fixed covariances ({self.covariance_type})")
            if self.covariance_type == "full" and cov.shape[1] != cov.shape[2]:
                raise ValueError(f"fixed covariances must be square matrices (K, D, D); got shape {cov.shape}.")
            _check_covariances(cov, "fixed covariances")
            out["covariances"] = cov
        dims = {name: value.shape[1] for name, value in out.items() if name != "weights"}
        if len(set(dims.values())) > 1:
            raise ValueError(f"the fixed parameters disagree about the dimension D: {dims}; give means (K, D) "
                             "and covariances of the same D.")
        return out

    def _fixed_dimension(self) -> int | None:
        for name in ("means", "covariances"):
            if name in self.fixed:
                return self.fixed[name].shape[1]
        return None

    def check_data(self, X) -> np.ndarray:
        """Data to fit: a float array of shape (N, D) with N >= K, or a ``ValueError``.

        Also refused: masked or complex arrays, values whose squares leave double precision
        (rescale X), and data of another dimension than the ``fixed`` parameters.
        """
        X = as_data_matrix(X, min_rows=self.n_components)
        check_gaussian_scale(X)
        D = self._fixed_dimension()
        if D is not None and D != X.shape[1]:
            raise ValueError(f"the fixed parameters are for D = {D} dimensions but X has {X.shape[1]} columns; "
                             "give fixed values of the data's dimension.")
        return X

    def _points(self, X, params) -> tuple[np.ndarray, _DensityFactors]:
        """Data to evaluate (any N >= 1) and the density factors of checked ``params``."""
        X = as_data_matrix(X)
        check_gaussian_scale(X)
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
    def _factors(self, params: GaussianMixtureParams) -> _DensityFactors:
        K, D = params.means.shape
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        location = params.weights @ params.means                         # the mixture's mean
        spread = np.sqrt(params.weights @ (params.covariances if params.covariance_type == "diag"
                                           else np.diagonal(params.covariances, axis1=1, axis2=2))
                         + params.weights @ (params.means - location) ** 2)
        centre = reference_point(location, spread)
        offsets = params.means - centre                                  # mu_k - c, (K, D)
        if params.covariance_type == "full":
            prec_chol = precision_cholesky(cholesky(params.covariances))  # P_k = L_k^{-T}
            log_det = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
            shift = np.einsum("kd,kde->ke", offsets, prec_chol)
            # [y, 1] @ [[P_1 ... P_K], [-m_1 P_1 ... -m_K P_K]] = ((y - m_k) P_k)_k in one product
            linear_map = np.concatenate([prec_chol.transpose(1, 0, 2).reshape(D, K * D), -shift.reshape(1, K * D)])
            const = log_weights - 0.5 * D * LOG_2PI + log_det
        else:
            precisions = 1.0 / params.covariances
            shift = offsets * precisions
            # the quadratic form is linear in the features [y, y*y]: one matrix product
            linear_map = np.ascontiguousarray(np.concatenate([shift.T, -0.5 * precisions.T]))
            const = (log_weights - 0.5 * D * LOG_2PI + 0.5 * np.log(precisions).sum(axis=1)
                     - 0.5 * np.sum(offsets * shift, axis=1))
        return _DensityFactors(centre, linear_map, const)

    def _log_joint_chunk(self, centred: np.ndarray, f: _DensityFactors,
                         features: np.ndarray | None = None) -> np.ndarray:
        """log pi_k + log N(x_n | mu_k, Sigma_k) for one chunk of centred data y = x - c, shape (K, n).

        Components first. ``features`` (diag only) is ``[y, y * y]`` (n, 2D) when the caller has it.
        """
        n = centred.shape[0]
        K = f.const.shape[0]
        if self.covariance_type == "full":
            D = centred.shape[1]
            ones = np.empty((n, D + 1))
            ones[:, :D] = centred
            ones[:, D] = 1.0
            Y = (ones @ f.linear_map).reshape(n, K, D)
            log_joint = np.empty((K, n))  # C order: einsum alone would return a strided view
            np.einsum("nkd,nkd->kn", Y, Y, out=log_joint)
            log_joint *= -0.5
            log_joint += f.const[:, None]
            return log_joint
        # diag: -1/2 sum_d (y_d - m_kd)^2 / s_kd, expanded: linear in the features [y, y*y].
        if features is None:
            features = _diag_features(centred)
        return f.linear_map.T @ features.T + f.const[:, None]

    def _second_moments_by_features(self, D: int) -> bool:
        """Full covariances: one product with the D(D+1)/2 features x_i x_j (fast for small D), or
        one weighted Gram matrix per component (its memory grows like D, not D^2, per row)."""
        return D + 1 <= 2 * self.n_components

    def _bytes_per_row(self, D: int) -> int:
        """Bytes of work arrays one row of data needs in the E-step (for the chunk size)."""
        K = self.n_components
        if self.covariance_type == "diag":
            numbers = 4 * D + 2 * K                        # y, [y, y*y], log-joint, product
        else:
            moments = D * (D + 1) if self._second_moments_by_features(D) else D  # features + product / weighted copy
            numbers = (D + 1) + K * D + K + moments        # [y, 1], residuals, log-joint, moments
        return 8 * numbers

    def _chunk_slices(self, X: np.ndarray) -> list[slice]:
        """Row blocks of ``X`` whose work arrays stay near ``CHUNK_BYTES`` (see :mod:`._chunks`)."""
        return row_slices(X.shape[0], self._bytes_per_row(X.shape[1]), self.chunk_size)

    def log_joint(self, X, params: GaussianMixtureParams) -> np.ndarray:
        """log p(x_n, z_n = k | theta) for every point and component (the terms of ``gaussian_mixtures-complete``, with the density ``gaussian_mixtures-gaussian``).

        Returns
        -------
        ndarray, shape (N, K)
        """
        X, f = self._points(X, params)
        out = np.empty((X.shape[0], self.n_components))
        for c in self._chunk_slices(X):
            out[c] = self._log_joint_chunk(_centred(X[c], f.centre), f).T
        return out

    def posterior(self, X, params: GaussianMixtureParams) -> np.ndarray:
        """Responsibilities r_nk = p(z_n = k | x_n, theta): the E-step's q, shape (N, K).

        Rows sum to one. Computed in log space (Bayes' rule with log-sum-exp, equation
        ``gaussian_mixtures-logresp``), chunk by chunk into the output.
        """
        X, f = self._points(X, params)
        out = np.empty((X.shape[0], self.n_components))
        for c in self._chunk_slices(X):
            block = self._log_joint_chunk(_centred(X[c], f.centre), f)
            normalize_log_columns(block)
            out[c] = block.T
        return out

    def log_likelihood(self, X, params: GaussianMixtureParams) -> float:
        """log p(X | theta) = sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k), the total over the data
        (equation ``gaussian_mixtures-loglik``, by the log-sum-exp of ``gaussian_mixtures-lse``)."""
        return float(self.log_likelihood_per_point(X, params).sum())

    def log_likelihood_per_point(self, X, params: GaussianMixtureParams) -> np.ndarray:
        """log p(x_n | theta) for each point, shape (N,)."""
        X, f = self._points(X, params)
        out = np.empty(X.shape[0])
        for c in self._chunk_slices(X):
            out[c] = normalize_log_columns(self._log_joint_chunk(_centred(X[c], f.centre), f))
        return out

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, q) -> GaussianMixtureStats:
        """Expected sufficient statistics for data ``X`` (N, D) under q (N, K) (rows of probabilities).

        q may be the responsibilities (EM), one-hot assignments (classification EM) or sampled
        labels (stochastic EM). The moments are taken about the mean of ``X`` in the coordinates
        where it is far from the origin (``emlib.models._numerics.reference_point``), else about 0.
        """
        X = np.asarray(X, dtype=float)
        q = np.asarray(q, dtype=float)
        if X.ndim != 2 or q.shape != (X.shape[0], self.n_components):
            raise ValueError(f"q must have shape (N, K) = {(np.shape(X)[0], self.n_components)}; got {q.shape}.")
        if X.shape[0] == 0:
            raise ValueError("X has no rows; expected statistics need at least one point.")
        centre = reference_point(X.mean(axis=0), X.std(axis=0))
        total = _MomentSums()
        for c in self._chunk_slices(X):
            total.add(None, *self._moments(_centred(X[c], centre), q[c].T))
        total.counts = q.sum(axis=0)
        return self._stats(total, centre, X.shape[1])

    def _moments(self, centred: np.ndarray, qT: np.ndarray, features: np.ndarray | None = None):
        """q^T t(y) for one chunk of centred data y (n, D): the first moments sum_n q_nk y_n (K, D) and
        the second sum_n q_nk y_n y_n^T: (K, D) for diag; for full, (K, D(D+1)/2) upper triangles
        by one product with the features y_i y_j (small D) or (K, D, D) by one weighted Gram matrix
        per component (large D: memory per row grows like D, not D^2).

        ``features`` (diag only) is ``[y, y * y]`` when the caller has it.
        """
        D = centred.shape[1]
        if self.covariance_type == "diag":
            both = qT @ (_diag_features(centred) if features is None else features)  # one product
            return both[:, :D], both[:, D:]
        first = qT @ centred
        if self._second_moments_by_features(D):
            rows, cols = _upper_triangle(D)
            pairs = centred[:, rows]
            pairs *= centred[:, cols]
            return first, qT @ pairs                              # each product y_i y_j once
        second = np.empty((self.n_components, D, D))
        for k, weights in enumerate(qT):
            np.matmul((centred * weights[:, None]).T, centred, out=second[k])
        return first, second

    def _stats(self, total: "_MomentSums", centre: np.ndarray, D: int) -> GaussianMixtureStats:
        """Package the sums of :meth:`_moments` as statistics about ``centre``."""
        second = total.second
        if self.covariance_type == "full" and second.ndim == 2:   # upper triangles (K, D(D+1)/2)
            rows, cols = _upper_triangle(D)
            full = np.empty((self.n_components, D, D))
            full[:, rows, cols] = second
            full[:, cols, rows] = second
            second = full
        return GaussianMixtureStats(total.counts, total.first, second, centre)

    def e_step(self, X, params: GaussianMixtureParams) -> tuple[GaussianMixtureStats, float]:
        """Both parts of the E-step in one pass over the data, chunk by chunk (the E-step of
        algorithm ``gaussian_mixtures-alg-em``: equations ``gaussian_mixtures-logresp`` and
        ``gaussian_mixtures-stats``).

        ``X`` and ``params`` must come from :meth:`check_data` and :meth:`check_params` (the
        drivers check them once). Per chunk: the data centred at c = sum_k pi_k mu_k (in the
        coordinates where that is far from the origin, see ``_numerics.reference_point``), their
        log-joint (K, n), normalized in place into the responsibilities, then the moments about c
        as matrix products of those with the centred chunk.

        Returns
        -------
        stats : GaussianMixtureStats
            The expected sufficient statistics under q = p(z | x, theta), about c.
        log_likelihood : float
            log p(X | theta) at the same parameters, a by-product of normalizing q.
        """
        f = self._factors(params)
        total, loglik = _MomentSums(), 0.0
        for c in self._chunk_slices(X):
            centred = _centred(X[c], f.centre)
            features = _diag_features(centred) if self.covariance_type == "diag" else None
            qT = self._log_joint_chunk(centred, f, features)
            loglik += float(normalize_log_columns(qT).sum())  # qT now holds the responsibilities
            total.add(qT, *self._moments(centred, qT, features))
        return self._stats(total, f.centre, X.shape[1]), loglik

    def m_step(self, stats: GaussianMixtureStats) -> GaussianMixtureParams:
        """argmax_theta Q(theta | theta_t), in closed form from the expected statistics.

        Equations ``gaussian_mixtures-weights``, ``gaussian_mixtures-means`` and
        ``gaussian_mixtures-cov-reg``, with the covariance from :meth:`GaussianMixtureStats.scatter`
        about the new means (or the fixed ones).

        Raises
        ------
        ValueError
            If a component received (numerically) no responsibility, so its mean is undefined; if
            a covariance is singular to working precision (collinear or constant columns, or a
            component collapsed onto too few points) with ``reg_covar`` too small to hold it up.
        """
        counts = stats.counts
        empty = empty_components(counts)
        if empty.size and not {"means", "covariances"} <= set(self.fixed):
            raise ValueError(
                f"component(s) {empty.tolist()} received no responsibility (N_k = 0) and cannot be "
                "updated: they emptied. Start from other parameters or use fewer components."
            )
        weights = self.fixed.get("weights")
        if weights is None:
            weights = counts / counts.sum()
        offsets = stats.centred_sum_x / counts[:, None]                # xbar_k - c
        means = self.fixed.get("means")
        if means is None:
            means = stats.centre + offsets
        covariances = self.fixed.get("covariances")
        if covariances is None:
            covariances = self._covariances(stats, means, None if "means" in self.fixed else offsets)
        return GaussianMixtureParams(weights, means, covariances)

    def _data_moments(self, stats: GaussianMixtureStats) -> tuple[np.ndarray, np.ndarray]:
        """The mean (D,) and covariance (D, D) (or variances (D,)) of all the data behind ``stats``."""
        n = float(stats.counts.sum())
        offset = stats.centred_sum_x.sum(axis=0) / n
        second = stats.centred_sum_xx.sum(axis=0) / n
        if second.ndim == 1:
            return stats.centre + offset, second - offset ** 2
        return stats.centre + offset, second - np.outer(offset, offset)

    def _covariances(self, stats: GaussianMixtureStats, means: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
        """Sigma_k = W_k / N_k + reg_covar I (``gaussian_mixtures-cov-reg``), W_k the scatter about the
        means, checked: with ``reg_covar = 0`` a covariance singular to working precision is an error.

        For the M-step's own means, ``offsets`` = xbar_k - c and W_k / N_k = C_k / N_k - d_k d_k^T
        (``gaussian_mixtures-cov`` about c); for fixed means (``offsets`` None), the scatter about them.
        """
        counts, reg = stats.counts, self.reg_covar
        if offsets is None:
            scatter = stats.scatter(means)
            cov = scatter / (counts[:, None] if scatter.ndim == 2 else counts[:, None, None])
        elif self.covariance_type == "diag":
            cov = stats.centred_sum_xx / counts[:, None] - offsets ** 2
        else:
            cov = stats.centred_sum_xx / counts[:, None, None] - offsets[:, :, None] * offsets[:, None, :]
        if self.covariance_type == "diag":
            cov = cov + reg
            variances = cov
        else:
            cov = 0.5 * (cov + cov.transpose(0, 2, 1))
            cov[:, np.arange(cov.shape[1]), np.arange(cov.shape[1])] += reg
            variances = np.diagonal(cov, axis1=1, axis2=2)
        if reg == 0:
            data_mean, data_cov = self._data_moments(stats)
            data_var = data_cov if data_cov.ndim == 1 else np.diagonal(data_cov)
            constant = constant_columns(data_var, np.abs(data_mean) + np.sqrt(np.maximum(data_var, 0.0)))
            if constant.size:
                raise ValueError(f"column(s) {constant.tolist()} of X are constant (their spread is at rounding "
                                 "level), so every covariance is singular there. Drop those columns or set "
                                 "reg_covar > 0.")
            # a variance at rounding level against the data's own: the component sits on a single point
            collapsed = np.flatnonzero(np.any(variances <= SINGULAR_RTOL * data_var, axis=1))
            if collapsed.size and self.covariance_type == "diag":
                raise ValueError(
                    f"component(s) {collapsed.tolist()} collapsed: a variance became zero, negative or "
                    "rounding-size (the component sits on a single point). Increase reg_covar (e.g. 1e-3), "
                    "use fewer components, or start elsewhere."
                )
            if collapsed.size:
                raise ValueError(_NOT_POSITIVE_DEFINITE.format(components=collapsed.tolist()))
        elif self.covariance_type == "diag" and np.any(cov <= 0):  # rounding beyond reg_covar
            raise ValueError(
                f"component(s) {np.flatnonzero(np.any(cov <= 0, axis=1)).tolist()} collapsed: a variance became "
                "zero or negative. Increase reg_covar (e.g. 1e-3), use fewer components, or start elsewhere."
            )
        if self.covariance_type == "full":
            try:
                cholesky(cov, singular_rtol=SINGULAR_RTOL if reg == 0 else 0.0)
            except SingularCovarianceError as exc:
                raise self._singular_covariance_error(self._data_moments(stats)[1], exc) from None
            smallest = np.linalg.eigvalsh(cov)[:, 0]
        else:
            smallest = cov.min(axis=1)
        # Collapse: in some direction the component's own variance is below reg_covar, so the
        # regularization, not the data, sets its width.
        collapsing = smallest <= 2 * reg
        if reg > 0 and np.any(collapsing):
            data_cov = self._data_moments(stats)[1]
            spectrum = np.sort(data_cov) if data_cov.ndim == 1 else np.linalg.eigvalsh(data_cov)
            if spectrum[-1] <= 2 * reg:      # the data's fault, or the component's
                template = _SMALL_DATA
            elif spectrum[0] <= 2 * reg:
                template = _DEGENERATE_DATA
            else:
                template = _COLLAPSE
            warn_components(ComponentCollapseWarning, np.flatnonzero(collapsing),
                            template.format(components="{components}", reg_covar=reg))
        return cov

    def _singular_covariance_error(self, data_cov: np.ndarray, exc: SingularCovarianceError) -> ValueError:
        """The error for covariances that are singular to working precision: the data's fault
        (collinear columns) when the covariance of all the data is singular too, else the component's."""
        total = data_cov.copy()
        total[np.diag_indices_from(total)] += self.reg_covar
        try:
            cholesky(total[None], singular_rtol=SINGULAR_RTOL if self.reg_covar == 0 else 0.0)
        except SingularCovarianceError:
            return ValueError(_COLLINEAR.format(what=f"the covariance of component(s) {exc.components}",
                                                reg_covar=self.reg_covar))
        if exc.not_positive_definite:
            return ValueError(_NOT_POSITIVE_DEFINITE.format(components=exc.components))
        return ValueError(
            f"the covariance of component(s) {exc.components} is singular to working precision: the component "
            "collapsed onto D or fewer points (or onto a line or plane). Set reg_covar > 0 (e.g. 1e-6 times "
            "the variance of X), use fewer components, or start elsewhere."
        )

    def expected_complete_loglik(self, stats: GaussianMixtureStats, params: GaussianMixtureParams) -> float:
        """Q(theta | theta_t) from the statistics of the E-step at theta_t alone.

        Chapter "Generalized EM and ECM", equation ``generalized_em-q-stats`` (``gaussian_mixtures-Qstats``
        in "Gaussian mixtures in full", ``tractable_estep-gmm-Q`` in "Why the E-step is tractable"): with N_k and the
        scatter W_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T (:meth:`GaussianMixtureStats.scatter`),

            Q = sum_k N_k log pi_k - 1/2 sum_k [ N_k log det(2 pi Sigma_k) + tr(Sigma_k^{-1} W_k) ].

        It equals ``emlib.bounds.expected_complete_loglik(model, X, params, q)`` with
        q = p(z | x, theta_t), without another pass over the data.

        Parameters
        ----------
        stats : GaussianMixtureStats
            counts (K,) and moments (K, D), (K, D, D) or (K, D), e.g. from ``model.e_step``.
        params : GaussianMixtureParams
            theta, the parameters at which Q is evaluated.

        Returns
        -------
        float
        """
        if not isinstance(stats, GaussianMixtureStats):
            raise ValueError(f"stats must be GaussianMixtureStats; got {type(stats).__name__}.")
        params = self.check_params(params)
        if stats.centred_sum_x.shape != params.means.shape or stats.centred_sum_xx.shape != params.covariances.shape:
            raise ValueError(
                f"stats (moments {stats.centred_sum_x.shape} and {stats.centred_sum_xx.shape}) do not match "
                f"params (means {params.means.shape}, covariances {params.covariances.shape}); "
                "compute them with the same model."
            )
        counts = stats.counts
        with np.errstate(divide="ignore", invalid="ignore"):
            weights_term = float(np.where(counts > 0, counts * np.log(params.weights), 0.0).sum())
        scatter = stats.scatter(params.means)
        D = params.n_features
        if params.covariance_type == "diag":
            log_det = np.log(params.covariances).sum(axis=1)
            trace = np.sum(scatter / params.covariances, axis=1)
        else:
            chol = cholesky(params.covariances)
            prec_chol = precision_cholesky(chol)                          # Sigma^{-1} = P P^T
            log_det = log_det_from_cholesky(chol)
            trace = np.einsum("kij,kij->k", prec_chol, scatter @ prec_chol)
        return weights_term - 0.5 * float(np.sum(counts * (D * LOG_2PI + log_det) + trace))

    # ------------------------------------------------------------------ starting and sampling
    def _data_covariance(self, X: np.ndarray) -> np.ndarray:
        """The biased sample covariance sum_n (x_n - xbar)(x_n - xbar)^T / N (or its diagonal), by chunks."""
        mean = X.mean(axis=0)
        D = X.shape[1]
        total = np.zeros((D, D)) if self.covariance_type == "full" else np.zeros(D)
        for c in row_slices(X.shape[0], 16 * D):
            centred = X[c] - mean
            total += centred.T @ centred if self.covariance_type == "full" else np.einsum("nd,nd->d", centred, centred)
        return total / X.shape[0]

    def init_params(self, X, rng: np.random.Generator) -> GaussianMixtureParams:
        """A starting point theta_0: k-means++ seeding for the means.

        The means are :func:`kmeans_plus_plus` seeds: the first is a data point drawn uniformly;
        each further mean is a data point drawn with probability proportional to its squared
        distance to the nearest mean chosen so far (Arthur and Vassilvitskii 2007). Weights start equal; every covariance starts at the
        biased sample covariance (or variances) of the whole data, sum_n (x_n - xbar)(x_n -
        xbar)^T / N, plus ``reg_covar``. Fixed parameters are used as given. Works in chunks of
        rows: no temporary the size of the data.

        Parameters
        ----------
        X : array_like, shape (N, D)
        rng : numpy.random.Generator
            The only source of randomness.
        """
        X = self.check_data(X)
        rng = check_generator(rng)
        K, D = self.n_components, X.shape[1]
        means = self.fixed.get("means")
        if means is None:
            means = kmeans_plus_plus(X, K, rng)
        weights = self.fixed.get("weights", np.full(K, 1.0 / K))
        covariances = self.fixed.get("covariances")
        if covariances is None:
            cov = self._data_covariance(X)
            variances = cov if cov.ndim == 1 else np.diagonal(cov)
            constant = constant_columns(variances, np.maximum(X.max(axis=0), -X.min(axis=0)))
            if self.reg_covar == 0 and constant.size:
                raise ValueError(f"column(s) {constant.tolist()} of X are constant; set reg_covar > 0 or "
                                 "drop those columns.")
            if cov.ndim == 2:
                cov[np.diag_indices(D)] += self.reg_covar
                try:
                    cholesky(cov[None], singular_rtol=SINGULAR_RTOL if self.reg_covar == 0 else 0.0)
                except SingularCovarianceError:
                    raise ValueError(_COLLINEAR.format(what="the covariance of X", reg_covar=self.reg_covar)) from None
            else:
                cov = cov + self.reg_covar
            covariances = np.repeat(cov[None], K, axis=0)
        return GaussianMixtureParams(weights, means, covariances)

    def sample(self, params: GaussianMixtureParams, n: int, rng: np.random.Generator):
        """Draw n points from the mixture: labels z_n ~ Categorical(pi), then x_n ~ N(mu_z, Sigma_z).

        Returns ``(X, z)``, the points (n, D) and the component of each (n,), ints.
        """
        self.check_params(params)
        z = draw_components(params.weights, n, rng)
        noise = rng.standard_normal((z.shape[0], params.n_features))
        if params.covariance_type == "full":
            chol = cholesky(params.covariances)
            X = params.means[z] + np.einsum("nij,nj->ni", chol[z], noise)
        else:
            X = params.means[z] + noise * np.sqrt(params.covariances[z])
        return X, z
