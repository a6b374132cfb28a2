"""Tests of emlib.models.student_t: the multivariate t distribution as a scale mixture of normals.

Each formula is checked against an independent computation: the density against SciPy's
multivariate_t, the posterior of the weights against Bayes' rule, Q against numerical
integration over the weights, the maximizers against perturbations and derivatives, and
the derivative of l in nu against finite differences.
"""
import numpy as np
import pytest
from scipy import integrate, stats as sps

import emlib
from emlib import MultivariateT, MultivariateTParams
from emlib.models.student_t import DOF_MAX, DOF_MIN, MultivariateTPosterior, MultivariateTStats

MODEL = MultivariateT()


@pytest.fixture(scope="module")
def data():
    truth = MultivariateTParams([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], 4.0)
    X, w = MODEL.sample(truth, 250, np.random.default_rng(3))
    theta = MultivariateTParams([0.8, -1.7], [[1.5, 0.2], [0.2, 1.3]], 7.0)
    return X, truth, theta


def test_log_likelihood_is_scipys_multivariate_t(data):
    X, _, theta = data
    expected = sps.multivariate_t(theta.mean, theta.scale, df=theta.dof).logpdf(X)
    np.testing.assert_allclose(MODEL.log_likelihood_per_point(X, theta), expected, rtol=1e-12)
    assert MODEL.log_likelihood(X, theta) == pytest.approx(expected.sum(), rel=1e-12)


def test_one_dimensional_t_is_scipys_t():
    x = np.linspace(-6, 6, 13)[:, None]
    theta = MultivariateTParams([0.5], [[2.25]], 2.5)
    expected = sps.t(df=2.5, loc=0.5, scale=1.5).logpdf(x[:, 0])
    np.testing.assert_allclose(MODEL.log_likelihood_per_point(x, theta), expected, rtol=1e-12)


def test_posterior_of_the_weights_is_bayes_rule(data):
    """log p(x, w) - log p(w | x) = log p(x) for every w: the Gamma posterior is exact."""
    X, _, theta = data
    q = MODEL.posterior(X[:20], theta)
    for w in (0.2, 1.0, 3.7):
        ws = np.full(20, w)
        log_post = sps.gamma(a=q.shape, scale=1 / q.rate).logpdf(ws)
        np.testing.assert_allclose(MODEL.log_joint(X[:20], theta, ws) - log_post,
                                   MODEL.log_likelihood_per_point(X[:20], theta), rtol=1e-11)


def test_posterior_moments_match_numerical_integration(data):
    X, _, theta = data
    q = MODEL.posterior(X[:3], theta)
    for n in range(3):
        density = sps.gamma(a=q.shape, scale=1 / q.rate[n]).pdf
        mean = integrate.quad(lambda w: w * density(w), 0, np.inf)[0]
        mean_log = integrate.quad(lambda w: np.log(w) * density(w), 0, np.inf, limit=200)[0]
        assert q.mean_w[n] == pytest.approx(mean, rel=1e-8)
        assert q.mean_log_w[n] == pytest.approx(mean_log, rel=1e-7)


def test_expected_stats_are_the_weighted_sums(data):
    X, _, theta = data
    q = MODEL.posterior(X, theta)
    s = MODEL.expected_stats(X, q)
    w = q.mean_w
    assert s.count == X.shape[0]
    assert s.sum_w == pytest.approx(w.sum(), rel=1e-13)
    np.testing.assert_allclose(s.sum_wx, (w[:, None] * X).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.sum_wxx, sum(wn * np.outer(x, x) for wn, x in zip(w, X)), rtol=1e-12)
    assert s.sum_log_w == pytest.approx(q.mean_log_w.sum(), rel=1e-12)


def test_statistics_are_additive_and_scalable(data):
    X, _, theta = data
    whole, _ = MODEL.e_step(X, theta)
    halves = MODEL.e_step(X[:100], theta)[0] + MODEL.e_step(X[100:], theta)[0]
    twice = 2 * whole
    for a, b in [(whole, halves)]:
        assert a.count == b.count and a.sum_w == pytest.approx(b.sum_w, rel=1e-13)
        np.testing.assert_allclose(a.sum_wxx, b.sum_wxx, rtol=1e-12)
        assert a.sum_log_w == pytest.approx(b.sum_log_w, rel=1e-12)
    assert twice.sum_w == 2 * whole.sum_w and twice.count == 2 * whole.count


def test_q_from_statistics_is_the_expected_complete_log_likelihood():
    """Q(theta | theta_t) = sum_n E_q[log p(x_n, w_n | theta)], the expectation by quadrature."""
    X, _ = MODEL.sample(MultivariateTParams([0.0, 0.0], np.eye(2), 5.0), 6, np.random.default_rng(1))
    theta_t = MultivariateTParams([0.1, -0.1], [[1.2, 0.3], [0.3, 0.9]], 6.0)
    theta = MultivariateTParams([0.3, 0.2], [[0.8, -0.1], [-0.1, 1.4]], 2.5)
    q = MODEL.posterior(X, theta_t)
    expected = 0.0
    for n in range(len(X)):
        density = sps.gamma(a=q.shape, scale=1 / q.rate[n]).pdf

        def integrand(w, n=n):
            ws = np.full(len(X), w)
            return density(w) * MODEL.log_joint(X, theta, ws)[n]

        expected += integrate.quad(integrand, 0, np.inf, limit=200)[0]
    stats = MODEL.expected_stats(X, q)
    assert MODEL.q_from_stats(stats, theta) == pytest.approx(expected, rel=1e-8)


def test_m_step_maximizes_q(data):
    X, _, theta = data
    stats, _ = MODEL.e_step(X, theta)
    best = MODEL.m_step(stats)
    top = MODEL.q_from_stats(stats, best)
    rng = np.random.default_rng(0)
    for _ in range(20):
        A = 0.05 * rng.normal(size=(2, 2))
        other = MultivariateTParams(best.mean + 0.05 * rng.normal(size=2), best.scale + A @ A.T,
                                    best.dof * np.exp(0.1 * rng.normal()))
        assert MODEL.q_from_stats(stats, other) < top
    assert MODEL.q_dof_derivative(stats, best.dof) == pytest.approx(0.0, abs=1e-8 * stats.count)


def test_cm_steps_on_q_together_are_the_m_step(data):
    """Q separates in (mu, Sigma) and nu, so the two CM-steps give the exact M-step (ECM = EM)."""
    X, _, theta = data
    stats, _ = MODEL.e_step(X, theta)
    ecm = MODEL.dof_q_step(stats, MODEL.location_scale_step(stats, theta))
    exact = MODEL.m_step(stats)
    np.testing.assert_allclose(emlib.flatten_params(ecm), emlib.flatten_params(exact), rtol=1e-12)


def test_derivative_of_q_in_nu_equals_that_of_l_at_theta_t(data):
    """The lemma of the chapter for the t model: dQ/dnu (. | theta_t) = dl/dnu at theta_t."""
    X, _, theta = data
    stats, _ = MODEL.e_step(X, theta)
    assert MODEL.q_dof_derivative(stats, theta.dof) == pytest.approx(MODEL.loglik_dof_derivative(X, theta),
                                                                     rel=1e-9)
    # ... but not elsewhere: Q's curve in nu is flatter than l's
    assert MODEL.q_dof_derivative(stats, 2 * theta.dof) != pytest.approx(
        MODEL.loglik_dof_derivative(X, MultivariateTParams(theta.mean, theta.scale, 2 * theta.dof)), rel=1e-3)


@pytest.mark.parametrize("dof", [0.7, 3.0, 40.0])
def test_derivative_of_l_in_nu_matches_finite_differences(data, dof):
    X, _, theta = data
    at = MultivariateTParams(theta.mean, theta.scale, dof)
    h = 1e-5 * dof
    fd = (MODEL.log_likelihood(X, MultivariateTParams(theta.mean, theta.scale, dof + h))
          - MODEL.log_likelihood(X, MultivariateTParams(theta.mean, theta.scale, dof - h))) / (2 * h)
    assert MODEL.loglik_dof_derivative(X, at) == pytest.approx(fd, rel=1e-6, abs=1e-7)


def test_dof_loglik_step_maximizes_l_over_nu(data):
    X, _, theta = data
    new = MODEL.dof_loglik_step(X, theta)
    np.testing.assert_array_equal(new.mean, theta.mean)
    np.testing.assert_array_equal(new.scale, theta.scale)
    assert MODEL.loglik_dof_derivative(X, new) == pytest.approx(0.0, abs=1e-7)
    top = MODEL.log_likelihood(X, new)
    for dof in np.exp(np.linspace(np.log(0.05), np.log(1e4), 200)):
        assert MODEL.log_likelihood(X, MultivariateTParams(theta.mean, theta.scale, dof)) <= top + 1e-9


def test_dof_estimates_go_to_the_upper_end_for_normal_data():
    X = np.random.default_rng(8).normal(size=(400, 1))
    theta = MultivariateTParams([0.0], [[1.0]], 5.0)
    fit = emlib.ecme(MODEL, X, theta, q_steps=[MODEL.location_scale_step],
                     loglik_steps=[MODEL.dof_loglik_step], tol=1e-10, max_iter=500)
    # these normal data have a negative sample excess kurtosis, and their likelihood rises all the
    # way in nu: the search stops at DOF_MAX
    assert sps.kurtosis(X[:, 0]) < 0
    assert fit.params.dof == DOF_MAX


def test_em_is_monotone_and_reaches_the_maximum_found_by_a_general_optimizer(data):
    X, _, _ = data
    init = MODEL.init_params(X, np.random.default_rng(0))
    fit = emlib.em(MODEL, X, init, tol=0, max_iter=3000)
    assert np.all(np.diff(fit.log_likelihood) >= -1e-10 * abs(fit.log_likelihood[-1]))
    from scipy.optimize import minimize

    def negative(u):
        L = np.array([[np.exp(u[2]), 0.0], [u[3], np.exp(u[4])]])
        return -MODEL.log_likelihood(X, MultivariateTParams(u[:2], L @ L.T, np.exp(u[5])))

    L0 = np.linalg.cholesky(init.scale)
    u0 = np.r_[init.mean, np.log(L0[0, 0]), L0[1, 0], np.log(L0[1, 1]), np.log(init.dof)]
    direct = minimize(negative, u0, method="BFGS", options={"gtol": 1e-8})
    assert fit.log_likelihood[-1] == pytest.approx(-direct.fun, abs=1e-6)
    assert fit.params.dof == pytest.approx(np.exp(direct.x[5]), rel=1e-3)


def test_sampling_draws_the_weights_and_the_points():
    theta = MultivariateTParams([1.0, 2.0], [[1.0, 0.3], [0.3, 2.0]], 6.0)
    X, w = MODEL.sample(theta, 200_000, np.random.default_rng(5))
    assert w.mean() == pytest.approx(1.0, abs=0.01)                  # E[w] = 1
    np.testing.assert_allclose(X.mean(axis=0), theta.mean, atol=0.01)
    np.testing.assert_allclose(np.cov(X.T), theta.dof / (theta.dof - 2) * theta.scale, rtol=0.03)


def test_params_round_trip_through_a_vector(data):
    _, _, theta = data
    back = emlib.unflatten_params(theta, emlib.flatten_params(theta))
    assert back.dof == theta.dof and isinstance(back.dof, float)
    np.testing.assert_array_equal(back.scale, theta.scale)


def test_bad_input_is_refused_with_clear_errors(data):
    X, _, theta = data
    with pytest.raises(ValueError, match="dof must lie"):
        MultivariateTParams([0.0], [[1.0]], 0.0)
    with pytest.raises(ValueError, match="dof must lie"):
        MultivariateTParams([0.0], [[1.0]], DOF_MIN / 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        MultivariateTParams([0.0], [[1.0]], np.inf)
    with pytest.raises(ValueError, match="positive definite"):
        MultivariateTParams([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]], 3.0)
    with pytest.raises(ValueError, match="symmetric"):
        MultivariateTParams([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], 3.0)
    with pytest.raises(ValueError, match="shape"):
        MultivariateTParams([0.0, 0.0], [[1.0]], 3.0)
    with pytest.raises(ValueError, match="more rows than"):
        MODEL.check_data(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        MODEL.log_likelihood(np.array([[np.nan, 1.0], [0.0, 1.0], [1.0, 2.0]]), theta)
    with pytest.raises(ValueError, match="columns"):
        MODEL.log_likelihood(X[:, :1], theta)
    with pytest.raises(ValueError, match="MultivariateTParams"):
        MODEL.log_likelihood(X, emlib.NormalParams([0.0, 0.0], np.eye(2)))
    with pytest.raises(ValueError, match="positive"):
        MODEL.log_joint(X, theta, np.zeros(len(X)))
    with pytest.raises(ValueError, match="MultivariateTStats"):
        MODEL.m_step(emlib.NormalStats(3.0, np.zeros(2), np.eye(2)))
    with pytest.raises(ValueError, match="MultivariateTPosterior"):
        MODEL.expected_stats(X, MultivariateTPosterior(2.0, np.ones(3)))
    one_d = MultivariateTStats(10.0, 10.0, np.zeros(1), np.eye(1), -2.0)
    with pytest.raises(ValueError, match="dimensions"):
        MODEL.location_scale_step(one_d, theta)
