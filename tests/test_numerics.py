"""emlib.models._numerics: Cholesky factors, triangular solves, the singularity and emptiness thresholds."""
import numpy as np
import pytest
from scipy.linalg import solve_triangular

from emlib.models._numerics import (EMPTY_COMPONENT_RTOL, LAPACK_MIN_DIMENSION, SINGULAR_RTOL,
                                    SingularCovarianceError, cholesky, constant_columns, empty_components,
                                    log_det_from_cholesky, logsumexp_rows, normalize_log_columns,
                                    precision_cholesky, reference_point, solve_cholesky, solve_lower)


def spd(rng, K, D):
    A = rng.normal(size=(K, D, D))
    return A @ A.transpose(0, 2, 1) + np.eye(D)


@pytest.mark.parametrize("D", [1, 3, LAPACK_MIN_DIMENSION + 3])
def test_triangular_solves_agree_with_scipy(D):
    """Forward substitution in numpy below LAPACK_MIN_DIMENSION, LAPACK dtrtrs above: both are
    scipy.linalg.solve_triangular's answer."""
    rng = np.random.default_rng(D)
    S = spd(rng, 3, D)
    L = np.linalg.cholesky(S)
    B = rng.normal(size=(3, D, 5))
    want = np.stack([solve_triangular(l, b, lower=True) for l, b in zip(L, B)])
    np.testing.assert_allclose(solve_lower(L, B), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solve_lower(L[0], B[0]), want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solve_cholesky(L, B), np.linalg.solve(S, B), rtol=1e-9, atol=1e-12)


def test_precision_factor_and_log_determinant():
    rng = np.random.default_rng(1)
    S = spd(rng, 4, 3)
    L = cholesky(S)
    P = precision_cholesky(L)
    np.testing.assert_allclose(P @ P.transpose(0, 2, 1), np.linalg.inv(S), rtol=1e-10, atol=1e-12)
    assert np.all(np.triu(P.transpose(0, 2, 1), 1) == 0) or np.allclose(np.tril(P, -1), 0)   # P = L^{-T} is upper
    np.testing.assert_allclose(log_det_from_cholesky(L), np.linalg.slogdet(S)[1], rtol=1e-12)


def test_cholesky_names_every_matrix_that_is_not_positive_definite():
    """Never an empty list (a message once read "component(s) [] is not positive definite")."""
    S = np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]], np.eye(2), [[1.0, 0.0], [0.0, -1.0]]])
    with pytest.raises(SingularCovarianceError) as caught:
        cholesky(S)
    assert caught.value.components == [1, 3] and caught.value.not_positive_definite
    with pytest.raises(SingularCovarianceError) as caught:
        cholesky(np.stack([np.eye(2), 1e-310 * np.eye(2)]))      # subnormal pivots
    assert caught.value.components == [1]


def test_singularity_is_judged_relative_to_each_column():
    """Collinear columns [a, b, a + b] are singular at SINGULAR_RTOL whatever their scale or order;
    columns of very different scales are not."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 500))
    for scale in (1e-6, 1.0, 1e6):
        for order in ([0, 1, 2], [2, 1, 0]):
            X = scale * np.column_stack([a, b, a + b])[:, order]
            S = np.cov(X.T, bias=True)[None]      # rounding makes it barely definite, or barely not
            with pytest.raises(SingularCovarianceError):
                cholesky(S, singular_rtol=SINGULAR_RTOL)
    wide = np.diag([1e-12, 1.0, 1e12])[None]
    assert np.allclose(cholesky(wide, singular_rtol=SINGULAR_RTOL)[0] ** 2, wide[0])


def test_empty_components_are_those_below_ten_eps_of_the_total():
    np.testing.assert_array_equal(empty_components(np.array([272.0, 1e-14, 0.0, 1e-9])), [1, 2])
    assert EMPTY_COMPONENT_RTOL == 10 * np.finfo(float).eps
    np.testing.assert_array_equal(empty_components(np.array([0.5, 1e-16])), [1])   # total below one


def test_constant_columns_and_the_reference_point():
    np.testing.assert_array_equal(constant_columns(np.array([1.0, 1e-30, 0.0]), np.array([1.0, 1e8, 0.0])), [1, 2])
    np.testing.assert_array_equal(constant_columns(np.array([1.0]), np.array([1e8])), [])
    np.testing.assert_array_equal(reference_point([70.0, 1e6, -3e3], [13.0, 1.0, 1.0]), [0.0, 1e6, -3e3])


def test_log_sum_exp_helpers():
    a = np.array([[0.0, -1000.0], [-5.0, -5.0]])
    np.testing.assert_allclose(logsumexp_rows(a), [0.0, -5.0 + np.log(2.0)], rtol=1e-14)
    block = a.T.copy()
    np.testing.assert_allclose(normalize_log_columns(block), [0.0, -5.0 + np.log(2.0)], rtol=1e-14)
    np.testing.assert_allclose(block, [[1.0, 0.5], [0.0, 0.5]], atol=1e-15)
