"""emlib.NormalWithMissing: Gaussian conditioning against SciPy, the M-step, monotone EM with random
missingness, Murray's (1977) saddle point and maxima, and input checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import emlib
from emlib import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from murray_coordinates import murray_coords, murray_params

MURRAY = emlib.datasets.murray()
ZERO_MEAN = NormalWithMissing(mean=np.zeros(2))


def random_params(rng, D):
    A = rng.normal(size=(D, D))
    return NormalParams(rng.normal(size=D), A @ A.T + 0.5 * np.eye(D))


def with_missing(rng, X, p_missing):
    """Blank entries at random, keeping at least one observed value in every row."""
    X = X.copy()
    mask = rng.random(X.shape) < p_missing
    full = mask.all(axis=1)
    mask[full, rng.integers(X.shape[1], size=full.sum())] = False
    X[mask] = np.nan
    return X



# ---------------------------------------------------------------- densities and conditioning
def test_log_likelihood_is_the_observed_margin_density():
    rng = np.random.default_rng(11)
    D = 4
    params = random_params(rng, D)
    X = with_missing(rng, rng.normal(size=(60, D)), 0.4)
    got = NormalWithMissing().log_likelihood_per_point(X, params)
    for n, row in enumerate(X):
        o = ~np.isnan(row)
        want = multivariate_normal(params.mean[o], params.covariance[np.ix_(o, o)]).logpdf(row[o])
        assert got[n] == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert NormalWithMissing().log_likelihood(X, params) == pytest.approx(got.sum(), rel=1e-14)


def test_posterior_is_gaussian_conditioning():
    """Against the textbook formulas, written naively with a linear solve."""
    rng = np.random.default_rng(12)
    D = 3
    params = random_params(rng, D)
    X = with_missing(rng, rng.normal(size=(30, D)), 0.5)
    q = NormalWithMissing().posterior(X, params)
    mu, S = params.mean, params.covariance
    for n, row in enumerate(X):
        o, m = ~np.isnan(row), np.isnan(row)
        np.testing.assert_array_equal(q.mean[n, o], row[o])
        assert np.all(q.covariance[n][o, :] == 0) and np.all(q.covariance[n][:, o] == 0)
        if m.any():
            B = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)]).T  # Sigma_mo Sigma_oo^{-1}
            np.testing.assert_allclose(q.mean[n, m], mu[m] + B @ (row[o] - mu[o]), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(q.covariance[n][np.ix_(m, m)], S[np.ix_(m, m)] - B @ S[np.ix_(o, m)],
                                       rtol=1e-10, atol=1e-12)


def test_log_joint_is_the_full_density_and_factorizes():
    """log p(x_o, z) = log N(completed row | mu, Sigma) = log p(x_o) + log N(z | c_n, C_n)."""
    rng = np.random.default_rng(13)
    D = 3
    params = random_params(rng, D)
    X = with_missing(rng, rng.normal(size=(25, D)), 0.4)
    model = NormalWithMissing()
    Z = np.where(np.isnan(X), rng.normal(size=X.shape), X)
    joint = model.log_joint(X, params, Z)
    np.testing.assert_allclose(joint, multivariate_normal(params.mean, params.covariance).logpdf(Z), rtol=1e-12)
    marginal = model.log_likelihood_per_point(X, params)
    q = model.posterior(X, params)
    for n, row in enumerate(X):
        m = np.isnan(row)
        conditional = 0.0
        if m.any():
            conditional = multivariate_normal(q.mean[n, m], q.covariance[n][np.ix_(m, m)]).logpdf(Z[n, m])
        assert joint[n] == pytest.approx(marginal[n] + conditional, rel=1e-10)
    # the default completion is the posterior mean
    np.testing.assert_allclose(model.log_joint(X, params), model.log_joint(X, params, q.mean), rtol=1e-14)


# ---------------------------------------------------------------- statistics and M-step
def test_complete_data_m_step_is_the_sample_moments():
    rng = np.random.default_rng(14)
    X = rng.normal(size=(40, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 2.0]])
    model = NormalWithMissing()
    start = model.init_params(X, np.random.default_rng(0))
    result = emlib.em(model, X, start, max_iter=5, tol=0)
    np.testing.assert_allclose(result.params.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.params.covariance, np.cov(X.T, bias=True), rtol=1e-10)
    # with nothing missing, one M-step reaches the maximum: the likelihood is flat afterwards
    assert np.ptp(result.log_likelihood[1:]) < 1e-10


def test_known_mean_m_step():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(50, 2)) + 1.0
    mu = np.array([0.5, 1.5])
    model = NormalWithMissing(mean=mu)
    stats, _ = model.e_step(X, NormalParams(mu, np.eye(2)))
    params = model.m_step(stats)
    np.testing.assert_array_equal(params.mean, mu)
    np.testing.assert_allclose(params.covariance, (X - mu).T @ (X - mu) / 50, rtol=1e-12)


def test_m_step_is_the_expected_complete_data_maximum():
    """With missing values: Sigma = sum_n E[(x_n - mu)(x_n - mu)^T] / N, written with the posterior."""
    rng = np.random.default_rng(16)
    X = with_missing(rng, rng.normal(size=(80, 3)), 0.3)
    model = NormalWithMissing()
    theta = random_params(rng, 3)
    q = model.posterior(X, theta)
    new = model.m_step(model.expected_stats(X, q))
    mu = q.mean.mean(axis=0)
    centred = q.mean - mu
    want = (centred.T @ centred + q.covariance.sum(axis=0)) / X.shape[0]
    np.testing.assert_allclose(new.mean, mu, rtol=1e-12)
    np.testing.assert_allclose(new.covariance, want, rtol=1e-10, atol=1e-12)


def test_stats_are_additive_and_scale():
    rng = np.random.default_rng(17)
    X = with_missing(rng, rng.normal(size=(50, 3)), 0.3)
    model = NormalWithMissing()
    params = random_params(rng, 3)
    whole, loglik = model.e_step(X, params)
    a, la = model.e_step(X[:21], params)
    b, lb = model.e_step(X[21:], params)
    parts = a + b
    assert parts.count == whole.count == 50
    np.testing.assert_allclose(parts.sum_x, whole.sum_x, rtol=1e-12)
    np.testing.assert_allclose(parts.sum_xx, whole.sum_xx, rtol=1e-12)
    assert la + lb == pytest.approx(loglik, rel=1e-12)
    half = 0.5 * whole
    assert half.count == 25
    np.testing.assert_allclose(model.m_step(half).covariance, model.m_step(whole).covariance, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), D=st.integers(1, 4), n_extra=st.integers(0, 30),
       p_missing=st.floats(0.0, 0.6), known_mean=st.booleans())
def test_em_never_decreases_the_likelihood(seed, D, n_extra, p_missing, known_mean):
    """Random data, random missingness; D + 1 complete rows keep every M-step covariance definite."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, D))
    N = D + 1 + n_extra
    X = rng.normal(size=(N, D)) @ A + rng.normal(size=D)
    X[D + 1:] = with_missing(rng, X[D + 1:], p_missing)
    model = NormalWithMissing(mean=np.zeros(D)) if known_mean else NormalWithMissing()
    start = model.init_params(X, np.random.default_rng(0))
    result = emlib.em(model, X, start, max_iter=25, tol=0)
    steps = np.diff(result.log_likelihood)
    assert np.all(steps >= -1e-9 * (1 + np.abs(result.log_likelihood[1:])))


# ---------------------------------------------------------------- Murray's example
def murray_loglik_closed_form(s1, s2, rho):
    """The chapter's reduction of ell for Murray's data (equation saddle_point-loglik)."""
    u = 1 - rho ** 2
    return (-8 * np.log(2 * np.pi) - 4 * np.log(s1) - 4 * np.log(s2) - 2 * np.log(u)
            - (2 / u + 8) * (1 / s1 + 1 / s2))


@pytest.mark.parametrize("point", [(2.5, 2.5, 0.0), (8 / 3, 8 / 3, 0.5), (3.0, 1.7, -0.3), (1.2, 4.0, 0.8)])
def test_murray_closed_form_log_likelihood(point):
    assert ZERO_MEAN.log_likelihood(MURRAY, murray_params(*point)) == pytest.approx(
        murray_loglik_closed_form(*point), rel=1e-13)


def murray_hessian(point, h=1e-4):
    """Central second differences of ell in (sigma1^2, sigma2^2, rho)."""
    def f(v):
        return ZERO_MEAN.log_likelihood(MURRAY, murray_params(*v))
    point = np.asarray(point, dtype=float)
    H = np.empty((3, 3))
    E = np.eye(3) * h
    for i in range(3):
        for j in range(3):
            H[i, j] = (f(point + E[i] + E[j]) - f(point + E[i] - E[j])
                       - f(point - E[i] + E[j]) + f(point - E[i] - E[j])) / (4 * h * h)
    return H


def test_murray_stationary_points_are_classified_by_the_hessian():
    """Murray (1977): a saddle at rho = 0, sigma^2 = 5/2 and maxima at rho = +-1/2, sigma^2 = 8/3.

    Eigenvalues are O(0.1-1) and finite differences are accurate to ~1e-6 here, so the signs are
    unambiguous. At the saddle the analytic eigenvalues are -0.64 (twice) and +0.8.
    """
    saddle = np.linalg.eigvalsh(murray_hessian((2.5, 2.5, 0.0)))
    np.testing.assert_allclose(saddle, [-0.64, -0.64, 0.8], atol=1e-5)
    for rho in (0.5, -0.5):
        assert np.all(np.linalg.eigvalsh(murray_hessian((8 / 3, 8 / 3, rho))) < -0.1)


def test_murray_stationary_points_are_em_fixed_points():
    for point in [(2.5, 2.5, 0.0), (8 / 3, 8 / 3, 0.5), (8 / 3, 8 / 3, -0.5)]:
        stats, _ = ZERO_MEAN.e_step(MURRAY, murray_params(*point))
        np.testing.assert_allclose(murray_coords(ZERO_MEAN.m_step(stats)), point, atol=1e-14)
    # and a point that is not stationary moves
    stats, _ = ZERO_MEAN.e_step(MURRAY, murray_params(2.0, 3.0, 0.2))
    assert np.abs(murray_coords(ZERO_MEAN.m_step(stats)) - [2.0, 3.0, 0.2]).max() > 0.05


def test_available_case_start_is_the_saddle_and_em_stays_there():
    start = ZERO_MEAN.init_params(MURRAY, np.random.default_rng(0))
    np.testing.assert_allclose(murray_coords(start), [2.5, 2.5, 0.0], atol=1e-15)
    trace = []
    emlib.em(ZERO_MEAN, MURRAY, murray_params(4.0, 1.5, 0.0), max_iter=60, tol=0,
             callback=lambda t, p, l: trace.append(murray_coords(p)))
    trace = np.array(trace)
    assert np.all(trace[:, 2] == 0.0)  # exactly zero: the E-step imputes 0 and the cross-products cancel
    np.testing.assert_allclose(trace[-1], [2.5, 2.5, 0.0], atol=1e-12)


@pytest.mark.parametrize("rho0", [0.01, -0.01])
def test_em_leaves_the_saddle_from_a_perturbed_start(rho0):
    result = emlib.em(ZERO_MEAN, MURRAY, murray_params(2.5, 2.5, rho0), max_iter=400, tol=0)
    np.testing.assert_allclose(murray_coords(result.params), [8 / 3, 8 / 3, np.sign(rho0) * 0.5], atol=1e-8)
    assert result.log_likelihood[-1] > ZERO_MEAN.log_likelihood(MURRAY, murray_params(2.5, 2.5, 0.0))


def test_em_repels_from_the_saddle_at_rate_16_over_15():
    """Near the saddle rho grows by 1 - I_obs/I_com = 1 + 0.8/12 = 16/15 per iteration."""
    stats, _ = ZERO_MEAN.e_step(MURRAY, murray_params(2.5, 2.5, 1e-7))
    rho1 = murray_coords(ZERO_MEAN.m_step(stats))[2]
    assert rho1 / 1e-7 == pytest.approx(16 / 15, rel=1e-6)


# ---------------------------------------------------------------- bad input
def test_bad_data_is_refused():
    model = NormalWithMissing()
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] of X have every value missing"):
        model.check_data([[1.0, 2.0], [np.nan, np.nan], [3.0, 1.0]])
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] of X have no observed value"):
        model.check_data([[1.0, np.nan], [2.0, np.nan]])
    with pytest.raises(ValueError, match="infinite values"):
        model.check_data([[1.0, np.inf], [2.0, 1.0]])
    with pytest.raises(ValueError, match="2-D array"):
        model.check_data([1.0, 2.0])
    with pytest.raises(ValueError, match="the fixed mean has 2 entries but X has 3 columns"):
        ZERO_MEAN.check_data(np.ones((4, 3)))


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="not positive definite"):
        NormalParams([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        NormalParams([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"covariance must have shape \(2, 2\)"):
        NormalParams([0.0, 0.0], np.eye(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        NormalParams([np.nan, 0.0], np.eye(2))
    with pytest.raises(ValueError, match="params must be NormalParams"):
        NormalWithMissing().log_likelihood(MURRAY, (np.zeros(2), np.eye(2)))
    with pytest.raises(ValueError, match="params are for D = 3 dimensions but X has 2 columns"):
        NormalWithMissing().log_likelihood(MURRAY, NormalParams(np.zeros(3), np.eye(3)))
    with pytest.raises(ValueError, match="differs from the model's fixed mean"):
        ZERO_MEAN.check_params(NormalParams([1.0, 0.0], np.eye(2)))


def test_other_bad_inputs():
    model = NormalWithMissing()
    params = NormalParams(np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="q must be a NormalPosterior"):
        model.expected_stats(MURRAY, np.ones((12, 2)))
    with pytest.raises(ValueError, match=r"q must have mean \(N, D\) = \(12, 2\)"):
        model.expected_stats(MURRAY, NormalPosterior(np.zeros((11, 2)), np.zeros((11, 2, 2))))
    with pytest.raises(ValueError, match="agree with X wherever X is observed"):
        model.log_joint(MURRAY, params, np.zeros((12, 2)))
    with pytest.raises(ValueError, match="M-step covariance is (not positive definite|singular to working precision)"):
        model.m_step(NormalStats(2.0, np.array([0.0, 0.0]), np.array([[1.0, 1.0], [1.0, 1.0]])))  # singular: x1 = x2
    with pytest.raises(ValueError, match="show no spread around the mean"):
        model.init_params([[1.0, 2.0], [1.0, np.nan], [1.0, 0.0]], np.random.default_rng(0))
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        model.init_params(MURRAY, 42)


# ---------------------------------------------------------------- claims of the saddle_point chapter
def test_murray_update_formulas():
    """Equation saddle_point-murray-update against one EM step of emlib."""
    s1, s2, r = 1.7, 3.2, -0.35
    stats, _ = ZERO_MEAN.e_step(MURRAY, murray_params(s1, s2, r))
    got = ZERO_MEAN.m_step(stats).covariance
    v1 = (20 + 16 * r ** 2 * s1 / s2 + 4 * s1 * (1 - r ** 2)) / 12
    v2 = (20 + 16 * r ** 2 * s2 / s1 + 4 * s2 * (1 - r ** 2)) / 12
    c12 = 4 / 3 * r * (np.sqrt(s2 / s1) + np.sqrt(s1 / s2))
    np.testing.assert_allclose(got, [[v1, c12], [c12, v2]], rtol=1e-12)


@pytest.mark.parametrize("a, rho_limit, var_limit", [
    (1.5, 0.0, (1 + 1.5 ** 2) / 2),                       # a^2 < 3: rho = 0 is the maximum
    (2.5, np.sqrt(1 - 3 / 2.5 ** 2), 2 * 2.5 ** 2 / 3),    # a^2 > 3: maxima at rho^2 = 1 - 3/a^2
])
def test_threshold_for_the_saddle(a, rho_limit, var_limit):
    X = MURRAY.copy()
    X[4:8, 0] *= a / 2
    X[8:, 1] *= a / 2
    result = emlib.em(ZERO_MEAN, X, murray_params(2.0, 2.0, 0.3), max_iter=600, tol=0)
    np.testing.assert_allclose(murray_coords(result.params), [var_limit, var_limit, rho_limit], atol=1e-7)


# ---------------------------------------------------------------- issue 13: far from the origin, singular, masked
def correlated_with_missing(seed=0, N=120):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 3)) @ np.array([[1.0, 0.5, 0.2], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    return with_missing(rng, X, 0.3)


@pytest.mark.parametrize("offset, rtol", [(1e4, 1e-10), (1e6, 1e-10), (1e8, 1e-8)])
def test_shifted_copies_give_the_same_fit(offset, rtol):
    """Moments about the current mean: at offset 1e4 the covariance was 2% wrong and the
    log-likelihood decreased. At 1e8 the mean itself is stored only to eps * 1e8 of the spread."""
    Z = correlated_with_missing()
    Y = Z + offset
    Z = Y - offset                                   # exact: the same numbers, translated
    model = NormalWithMissing()
    start = model.init_params(Z, np.random.default_rng(0))
    plain = emlib.em(model, Z, start, max_iter=40, tol=0)
    shifted = emlib.em(model, Y, NormalParams(start.mean + offset, start.covariance), max_iter=40, tol=0)
    np.testing.assert_allclose(shifted.params.covariance, plain.params.covariance, rtol=rtol,
                               atol=rtol * np.abs(plain.params.covariance).max())
    np.testing.assert_allclose(shifted.params.mean - offset, plain.params.mean, rtol=0, atol=1e-10 * offset)
    assert np.all(np.diff(shifted.log_likelihood) >= -1e-10 * np.abs(shifted.log_likelihood[1:]))


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_collinear_columns_are_an_error_naming_cause_and_fix(order):
    """X = [a, b, a + b] (with values missing) converged silently to a meaningless log-likelihood."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 150))
    X = np.column_stack([a, b, a + b])[:, order]
    X[rng.random(150) < 0.2, 0] = np.nan
    model = NormalWithMissing()
    start = NormalParams(np.nanmean(X, axis=0), np.eye(3))
    with pytest.raises(ValueError, match="collinear.*Drop the redundant column"):
        emlib.em(model, X, start, max_iter=100)


def test_masked_entries_are_read_as_missing():
    """The docstring's promise: a masked array's masked entries are missing values, like NaN."""
    X = correlated_with_missing(2, N=60)
    masked = np.ma.masked_invalid(np.where(np.isnan(X), -999.0, X))
    masked.mask = np.isnan(X)
    model = NormalWithMissing()
    params = NormalParams(np.zeros(3), np.eye(3))
    assert model.log_likelihood(masked, params) == model.log_likelihood(X, params)
    np.testing.assert_array_equal(model.check_data(masked), model.check_data(X))


def test_complex_data_and_subnormal_covariances_are_refused():
    with pytest.raises(ValueError, match="complex"):
        NormalWithMissing().check_data(MURRAY + 0j)
    with pytest.raises(ValueError, match="not positive definite"):
        NormalParams([0.0, 0.0], 1e-310 * np.eye(2))


def test_continuous_latent_variables_are_refused_by_the_discrete_drivers():
    """stochastic_em, mcem, cem and gem's Q check need a posterior of shape (N, K); they failed with a
    TypeError or IndexError on NormalWithMissing, now with a ValueError before any iteration."""
    model = NormalWithMissing()
    start = model.init_params(MURRAY, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for run in (lambda: emlib.stochastic_em(model, MURRAY, start, rng=rng),
                lambda: emlib.mcem(model, MURRAY, start, rng=rng),
                lambda: emlib.cem(model, MURRAY, start),
                lambda: emlib.gem(model, MURRAY, start, m_step=lambda s, p: model.m_step(s))):
        with pytest.raises(ValueError, match="continuous"):
            run()
    assert emlib.gem(model, MURRAY, start, max_iter=3, tol=0).n_iter == 3   # plain EM through gem is fine


# ---------------------------------------------------------------- issue 17: the diagonal fallback of the start
def test_available_case_start_falls_back_to_the_diagonal_when_not_positive_definite():
    """Pairwise-complete covariances can be inconsistent: here x1 ~ x2 and x2 ~ x3 on the rows that
    observe each pair, but x1 ~ -x3 on the rows observing those, so the available-case matrix is
    indefinite. The start must keep the available-case variances (not the identity)."""
    t = np.linspace(-2.0, 2.0, 8)
    nan = np.full(8, np.nan)
    X = np.vstack([np.column_stack([t, 2 * t, nan]), np.column_stack([nan, 2 * t, 3 * t]),
                   np.column_stack([t, nan, -3 * t])])
    mu = np.nanmean(X, axis=0)
    observed = ~np.isnan(X)
    centred = np.where(observed, X - mu, 0.0)
    pairs = observed.T.astype(float) @ observed
    available = centred.T @ centred / pairs
    assert np.linalg.eigvalsh(available)[0] < 0        # the case the fallback is for
    start = NormalWithMissing().init_params(X, np.random.default_rng(0))
    np.testing.assert_allclose(start.covariance, np.diag(np.diag(available)), rtol=1e-12)
    assert not np.allclose(np.diag(start.covariance), 1.0)
