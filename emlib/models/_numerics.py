"""The numerical pieces every model shares: log 2 pi, log-sum-exp, Cholesky factors, thresholds.

Book: chapter "Gaussian mixtures in full", section "Numerics: Cholesky factors and log space"
(equation ``gaussian_mixtures-chol``): a covariance Sigma = L L^T is used only through its lower
Cholesky factor L, with log det Sigma = 2 sum_d log L_dd and
(x - mu)^T Sigma^{-1} (x - mu) = ||L^{-1} (x - mu)||^2; no inverse or determinant is formed.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from .._validation import check_generator, check_integer

LOG_2PI = float(np.log(2.0 * np.pi))
_TINY = np.finfo(float).tiny

#: A component whose expected count N_k is at most this fraction of the total (and at most this
#: many points when the total is below one) received no responsibility: its mean S1_k / N_k
#: would be rounding noise.
EMPTY_COMPONENT_RTOL = 10 * np.finfo(float).eps

#: With no regularization (reg_covar = 0), an M-step covariance is singular to working precision
#: when, for some column d, the variance left after regressing it on the columns before it (the
#: squared pivot L_dd^2) is at most this fraction of its own variance Sigma_dd, or when a
#: component's variance is at most this fraction of the data's. Computed from exactly collinear
#: columns, or from a component on a single point, these are rounding noise: about 1e-16 of the
#: variance, up to about 1e-13 after sums over a million rows. A covariance closer to singular
#: than 1e-11 has lost eleven digits in every density, so the fit would be meaningless anyway.
SINGULAR_RTOL = 1e-11


#: Statistics are taken about the origin in every coordinate whose data lie within this many
#: standard deviations of it, and about a point near the data in the others: moments about the
#: origin then lose at most 100^2 eps (about 2e-12) of a variance to cancellation, and data near
#: the origin need no centring pass.
FAR_FROM_ORIGIN = 100.0


def reference_point(location: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """The point c (D,) about which moments are taken: ``location`` in the coordinates where it lies
    farther than ``FAR_FROM_ORIGIN`` times ``spread`` from 0, else 0."""
    location = np.asarray(location, dtype=float)
    return np.where(np.abs(location) > FAR_FROM_ORIGIN * np.asarray(spread, dtype=float), location, 0.0)


class SingularCovarianceError(ValueError):
    """Covariance matrices that are not positive definite, or singular to working precision.

    Attributes
    ----------
    components : list of int
        The offending matrices (indices along the leading axis).
    not_positive_definite : bool
        True when the factorization itself failed (a negative or zero pivot); False when it
        succeeded but a pivot is below ``SINGULAR_RTOL`` of its variance.
    """

    def __init__(self, message: str, components: list[int], not_positive_definite: bool):
        super().__init__(message)
        self.components = components
        self.not_positive_definite = not_positive_definite


def draw_components(weights: np.ndarray, n, rng) -> np.ndarray:
    """n component labels z ~ Categorical(weights), drawn with ``rng``: the first half of sampling
    from any mixture. Checks ``n`` (a non-negative integer) and ``rng`` (a Generator)."""
    n = check_integer(n, "n", minimum=0)
    return check_generator(rng).choice(weights.shape[0], size=n, p=weights)


def empty_components(counts: np.ndarray) -> np.ndarray:
    """Indices k with N_k <= ``EMPTY_COMPONENT_RTOL`` * max(sum_k N_k, 1): components with no data."""
    counts = np.asarray(counts, dtype=float)
    return np.flatnonzero(counts <= EMPTY_COMPONENT_RTOL * max(float(counts.sum()), 1.0))


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log sum_k exp(a[n, k]) for each row n, computed stably (equation ``gaussian_mixtures-lse``); shape (N,).

    Rows must contain at least one finite entry (a data point has positive density under at
    least one component), which every model here guarantees.
    """
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def normalize_log_columns(a: np.ndarray) -> np.ndarray:
    """Turn a (K, n) block of log-joint columns into probabilities in place; return the normalizers.

    On return ``a[:, n] = exp(a[:, n]) / sum_k exp(a[k, n])`` (the posterior of point n) and the
    result is ``log sum_k exp(a[k, n])`` (its log-likelihood), shape (n,): one exponential per
    entry. Components run along the first axis so that every reduction runs over long
    contiguous rows (a reduction over a short last axis is several times slower in NumPy).
    """
    top = a.max(axis=0)
    a -= top
    np.exp(a, out=a)
    total = a.sum(axis=0)
    a /= total
    return top + np.log(total)


def cholesky(matrices: np.ndarray, singular_rtol: float = 0.0) -> np.ndarray:
    """Lower Cholesky factors L_k of symmetric matrices (K, D, D), checked for singularity.

    Parameters
    ----------
    matrices : ndarray, shape (K, D, D)
    singular_rtol : float
        Also refuse a factor with a pivot L_dd^2 <= ``singular_rtol`` * Sigma_dd: the variance
        of column d left after regressing it on the columns before it is a negligible fraction
        of its own, so the matrix is singular to working precision. 0 (the default) refuses
        only matrices that are not positive definite or have subnormal pivots; the M-steps pass
        ``SINGULAR_RTOL``.

    Raises
    ------
    SingularCovarianceError
        Naming every matrix that is not positive definite (the factorization fails), or whose
        factor has a subnormal pivot (its inverse overflows) or a pivot below ``singular_rtol``.
    """
    matrices = np.asarray(matrices, dtype=float)
    try:
        chol = np.linalg.cholesky(matrices)
    except np.linalg.LinAlgError:
        chol = None
    if chol is not None:                       # the common case, checked in a few operations
        pivots = np.diagonal(chol, axis1=-2, axis2=-1) ** 2
        smallest = float(pivots.min())
        if smallest >= _TINY and (singular_rtol == 0 or
                                  np.all(pivots > singular_rtol * np.diagonal(matrices, axis1=-2, axis2=-1))):
            return chol
    failed = np.zeros(matrices.shape[0], dtype=bool)
    chol = np.zeros_like(matrices)
    for k, matrix in enumerate(matrices):
        try:
            chol[k] = np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            failed[k] = True
    pivots = np.diagonal(chol, axis1=-2, axis2=-1) ** 2
    failed |= np.any(~(pivots >= _TINY), axis=-1)   # also NaN pivots
    if failed.any():
        bad = np.flatnonzero(failed).tolist()
        raise SingularCovarianceError(f"matrix(es) {bad} are not positive definite.", bad, True)
    variances = np.diagonal(matrices, axis1=-2, axis2=-1)
    bad = np.flatnonzero(np.any(pivots <= singular_rtol * variances, axis=-1)).tolist()
    raise SingularCovarianceError(f"matrix(es) {bad} are singular to working precision.", bad, False)


def constant_columns(variances: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
    """Indices d of columns whose spread is at rounding level: sqrt(var_d) <= 100 eps |x_d|.

    ``magnitudes`` are the sizes of the values in each column (e.g. the largest |x_nd|); numbers
    near m are spaced about eps m apart, so a smaller spread is rounding, not data.
    """
    resolution = 100 * np.finfo(float).eps * np.asarray(magnitudes, dtype=float)
    return np.flatnonzero(np.asarray(variances) <= np.maximum(resolution ** 2, np.finfo(float).tiny))


#: Below this dimension the triangular solves substitute in numpy; above it the O(D^3) work
#: dominates and LAPACK's ``dtrtrs`` (behind ``scipy.linalg.solve_triangular``) is used.
LAPACK_MIN_DIMENSION = 32


def log_det_from_cholesky(chol: np.ndarray) -> np.ndarray:
    """log det(L L^T) = 2 sum_d log L_dd for lower factors (..., D, D); shape (...)."""
    return 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)


def _trtrs(chol: np.ndarray, rhs: np.ndarray, transposed: bool) -> np.ndarray:
    solution, info = lapack.dtrtrs(chol, rhs, lower=1, trans=int(transposed))
    if info != 0:
        raise ValueError(f"a Cholesky factor has a zero pivot (LAPACK dtrtrs info = {info}); the covariance is "
                         "singular.")
    return solution


def _substitution(chol: np.ndarray, rhs: np.ndarray, transposed: bool) -> np.ndarray:
    """Y with L_k Y_k = B_k (forward) or L_k^T Y_k = B_k (backward), for L (K, D, D), B (K, D, M)."""
    D = chol.shape[-1]
    tri = chol.transpose(0, 2, 1) if transposed else chol
    out = np.empty(np.broadcast_shapes(chol.shape[:-1] + (1,), rhs.shape), dtype=float)
    order = range(D - 1, -1, -1) if transposed else range(D)
    for step, d in enumerate(order):
        done = slice(d + 1, D) if transposed else slice(0, d)       # the unknowns already solved
        if step:
            out[:, d] = (rhs[:, d] - (tri[:, d:d + 1, done] @ out[:, done])[:, 0]) / tri[:, d, d][:, None]
        else:
            out[:, d] = rhs[:, d] / tri[:, d, d][:, None]
    return out


def _triangular_solve(chol: np.ndarray, rhs, transposed: bool) -> np.ndarray:
    single = chol.ndim == 2
    rhs = np.asarray(rhs, dtype=float)
    chol3, rhs3 = (chol[None], rhs[None]) if single else (chol, rhs)
    if chol3.shape[-1] < LAPACK_MIN_DIMENSION:
        out = _substitution(chol3, rhs3, transposed)
    else:
        out = np.stack([_trtrs(c, b, transposed) for c, b in zip(chol3, rhs3)])
    return out[0] if single else out


def solve_lower(chol: np.ndarray, rhs) -> np.ndarray:
    """L^{-1} B by a triangular solve, for one factor (D, D) with B (D, M), or stacks (K, D, D), (K, D, M).

    Forward substitution: in numpy, vectorized over the stack and the columns of B, for D below
    ``LAPACK_MIN_DIMENSION``; LAPACK's ``dtrtrs`` (the routine behind
    ``scipy.linalg.solve_triangular``) for larger D. Small systems avoid SciPy because each call
    into its threaded OpenBLAS costs up to milliseconds on a busy machine (the wrapper alone ten
    times the solve), which would dominate an E-step.
    """
    return _triangular_solve(chol, rhs, transposed=False)


def solve_cholesky(chol: np.ndarray, rhs) -> np.ndarray:
    """Sigma^{-1} B = L^{-T} (L^{-1} B) for Sigma = L L^T: two triangular solves (shapes as :func:`solve_lower`)."""
    return _triangular_solve(chol, _triangular_solve(chol, rhs, transposed=False), transposed=True)


def precision_cholesky(chol: np.ndarray) -> np.ndarray:
    """P_k = L_k^{-T} for lower factors L_k (K, D, D), so that Sigma_k^{-1} = P_k P_k^T.

    One triangular solve per component (:func:`solve_lower`), not a general solve.
    """
    eye = np.tile(np.eye(chol.shape[-1]), (chol.shape[0], 1, 1))
    return np.swapaxes(solve_lower(chol, eye), -1, -2)
