"""The claims of the chapter "Generalized EM and ECM" that tests/test_gem.py, test_ecme.py and
test_student_t.py do not already check, recomputed as the chapter computes them.

GEM fixed points (the identity map), the stalled damped GEM, the ECME section on the t
distribution (ECM = EM, the rates, the Rayleigh-quotient bound, ECME lowering Q), and the numbers
behind the exercises.
"""
import numpy as np
import pytest
from scipy.special import polygamma

import emlib
from emlib import reporting
from emlib.variants.gem import gaussian_mixture_gradient_step, gaussian_mixture_q

MODEL = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
TRUTH = emlib.GaussianMixtureParams([0.35, 0.65], [[-1.0], [2.0]], [[0.5], [1.2]])
INIT = emlib.GaussianMixtureParams([0.5, 0.5], [[0.0], [0.5]], [[2.0], [2.0]])
T_MODEL = emlib.MultivariateT()


@pytest.fixture(scope="module")
def mixture_data():
    X, _ = MODEL.sample(TRUTH, 400, np.random.default_rng(2024))
    return X


@pytest.fixture(scope="module")
def t_data():
    truth = emlib.MultivariateTParams([0.0, 0.0], [[1.0, 0.5], [0.5, 1.0]], 10.0)
    Z, _ = T_MODEL.sample(truth, 300, np.random.default_rng(2))
    return Z, T_MODEL.init_params(Z, np.random.default_rng(0), dof=30.0)


def iterations_to(trace, best, eps=1e-6):
    return reporting.first_above(eps - (best - trace), 0.0, error=1e-12 * abs(best))


def gradient_of_loglik(model, X, params, h=1e-6):
    """Central differences of l in the means, the log-variances and the free logit of the weights."""
    def loglik(u):
        w = np.array([1.0, np.exp(u[0])])
        return model.log_likelihood(X, emlib.GaussianMixtureParams(w / w.sum(), u[1:3, None],
                                                                   np.exp(u[3:5, None])))
    u = np.r_[np.log(params.weights[1] / params.weights[0]), params.means[:, 0],
              np.log(params.covariances[:, 0])]
    return np.array([(loglik(u + e) - loglik(u - e)) / (2 * h) for e in h * np.eye(5)])


# ---------------------------------------------------------------- GEM and its fixed points
def test_the_identity_map_is_a_gem_whose_fixed_points_need_not_be_stationary(mixture_data):
    X = mixture_data
    fit = emlib.gem(MODEL, X, INIT, m_step=lambda stats, params: params, max_iter=5, tol=0)
    np.testing.assert_array_equal(emlib.flatten_params(fit.params), emlib.flatten_params(INIT))
    assert np.all(np.diff(fit.log_likelihood) == 0)          # Q (and l) never fell: a GEM
    assert np.max(np.abs(gradient_of_loglik(MODEL, X, INIT))) > 10   # but INIT is not stationary


def test_fixed_point_of_the_armijo_gradient_step_is_stationary(mixture_data):
    X = mixture_data
    step = gaussian_mixture_gradient_step(MODEL, n_steps=1)
    fit = emlib.gem(MODEL, X, INIT, m_step=step, max_iter=1200, tol=0, check_q=False)
    again = emlib.gem(MODEL, X, fit.params, m_step=step, max_iter=1, tol=0).params
    np.testing.assert_allclose(emlib.flatten_params(again), emlib.flatten_params(fit.params), atol=1e-10)
    np.testing.assert_allclose(gradient_of_loglik(MODEL, X, fit.params), 0.0, atol=1e-5)


def test_one_gradient_step_needs_about_three_times_the_iterations_of_em(mixture_data):
    X = mixture_data
    runs = [emlib.gem(MODEL, X, INIT, m_step=m, tol=0, max_iter=n, check_q=False) for m, n in
            [(None, 600), (gaussian_mixture_gradient_step(MODEL, n_steps=1), 1000),
             (gaussian_mixture_gradient_step(MODEL, n_steps=10), 600)]]
    best = max(r.log_likelihood[-1] for r in runs)
    n_em, n_grad1, n_grad10 = (iterations_to(r.log_likelihood, best) for r in runs)
    assert 2.5 <= n_grad1 / n_em < 3.5                       # the prose says "about 3"
    assert n_em <= n_grad10 <= 1.2 * n_em                     # "close to EM"
    for r in runs:                                            # "never decreased"
        assert reporting.count_above(-np.diff(r.log_likelihood), 1e-9 * abs(best),
                                     error=1e-12 * abs(best)) == 0


def test_damped_gem_stalls_away_from_a_stationary_point(mixture_data):
    X = mixture_data
    fixed_model = emlib.GaussianMixture(2, "diag", fixed={"weights": TRUTH.weights,
                                                          "covariances": TRUTH.covariances})
    start = emlib.GaussianMixtureParams(TRUTH.weights, INIT.means, TRUTH.covariances)
    calls = [0]

    def damped(stats, params):
        calls[0] += 1
        target = fixed_model.m_step(stats).means
        return emlib.GaussianMixtureParams(params.weights,
                                           params.means + 0.5 ** calls[0] * (target - params.means),
                                           params.covariances)

    stalled = emlib.gem(fixed_model, X, start, m_step=damped, max_iter=200, tol=0)
    exact = emlib.em(fixed_model, X, start, tol=0, max_iter=500)
    assert np.all(np.diff(stalled.log_likelihood) >= -1e-9 * abs(stalled.log_likelihood[-1]))
    assert exact.log_likelihood[-1] - stalled.log_likelihood[-1] > 100
    moved = emlib.em(fixed_model, X, stalled.params, tol=0, max_iter=1).params
    assert np.max(np.abs(moved.means - stalled.params.means)) > 0.5


# ---------------------------------------------------------------- ECME on the t distribution
def test_ecm_with_the_two_q_blocks_is_em_for_the_t_model(t_data):
    Z, init = t_data
    ecm = emlib.gem(T_MODEL, Z, init, m_step=[T_MODEL.location_scale_step, T_MODEL.dof_q_step],
                    check_q=False, tol=0, max_iter=50)
    em = emlib.em(T_MODEL, Z, init, tol=0, max_iter=50)
    np.testing.assert_allclose(ecm.log_likelihood, em.log_likelihood, rtol=1e-13)


@pytest.fixture(scope="module")
def t_runs(t_data):
    Z, init = t_data
    ecm = emlib.em(T_MODEL, Z, init, tol=0, max_iter=800)
    ecme = emlib.ecme(T_MODEL, Z, init, q_steps=[T_MODEL.location_scale_step],
                      loglik_steps=[T_MODEL.dof_loglik_step], tol=0, max_iter=200)
    return ecm, ecme


def chart(p):
    return np.r_[p.mean, p.scale[np.triu_indices(2)], p.dof]


def unchart(u):
    return emlib.MultivariateTParams(u[:2], [[u[2], u[3]], [u[3], u[4]]], u[5])


def jacobian(update, params, h=1e-6):
    u = chart(params)
    cols = []
    for j in range(u.size):
        e = np.zeros_like(u)
        e[j] = h * max(1.0, abs(u[j]))
        cols.append((chart(update(unchart(u + e))) - chart(update(unchart(u - e)))) / (2 * e[j]))
    return np.column_stack(cols)


def test_both_reach_the_same_maximum_and_ecme_needs_far_fewer_iterations(t_runs):
    ecm, ecme = t_runs
    best = max(ecm.log_likelihood[-1], ecme.log_likelihood[-1])
    assert ecm.log_likelihood[-1] == pytest.approx(ecme.log_likelihood[-1], abs=1e-9)
    assert ecm.params.dof == pytest.approx(ecme.params.dof, rel=1e-6)
    assert iterations_to(ecm.log_likelihood, best) > 10 * iterations_to(ecme.log_likelihood, best)


def test_rates_are_the_spectral_radii_and_match_the_observed_contraction(t_data, t_runs):
    Z, init = t_data
    ecm, ecme = t_runs
    hat = ecme.params
    rate_ecm = np.max(np.abs(np.linalg.eigvals(jacobian(lambda p: emlib.em_map(T_MODEL, Z, p), hat))))
    ecme_map = lambda p: emlib.ecme(T_MODEL, Z, p, q_steps=[T_MODEL.location_scale_step],   # noqa: E731
                                    loglik_steps=[T_MODEL.dof_loglik_step], max_iter=1, tol=0).params
    rate_ecme = np.max(np.abs(np.linalg.eigvals(jacobian(ecme_map, hat))))
    assert 0.9 < rate_ecm < 1 and 0.5 < rate_ecme < 0.75
    # the distances to the maximizer shrink by these factors per iteration
    for fit, rate, window in [(ecm, rate_ecm, slice(250, 300)), (ecme, rate_ecme, slice(8, 14))]:
        path = []
        driver = (lambda **k: emlib.em(T_MODEL, Z, init, **k)) if fit is ecm else \
            (lambda **k: emlib.ecme(T_MODEL, Z, init, q_steps=[T_MODEL.location_scale_step],
                                    loglik_steps=[T_MODEL.dof_loglik_step], **k))
        driver(tol=0, max_iter=window.stop + 1, callback=lambda t, p, ll: path.append(chart(p)))
        dist = np.linalg.norm(np.array(path) - chart(hat), axis=1)
        ratios = dist[1:] / dist[:-1]
        np.testing.assert_allclose(ratios[window], rate, atol=0.01)


def test_ecm_rate_is_at_least_the_fraction_of_missing_information_about_nu(t_data, t_runs):
    """The Rayleigh-quotient bound lambda >= 1 - l''(nu) / Q''(nu) of the chapter, and its value."""
    Z, _ = t_data
    hat = t_runs[1].params
    stats, _ = T_MODEL.e_step(Z, hat)
    h = 1e-4 * hat.dof
    at = lambda v: emlib.MultivariateTParams(hat.mean, hat.scale, v)   # noqa: E731
    l2 = (T_MODEL.loglik_dof_derivative(Z, at(hat.dof + h))
          - T_MODEL.loglik_dof_derivative(Z, at(hat.dof - h))) / (2 * h)
    q2 = (T_MODEL.q_dof_derivative(stats, hat.dof + h) - T_MODEL.q_dof_derivative(stats, hat.dof - h)) / (2 * h)
    missing_nu = 1 - l2 / q2
    rate_ecm = np.max(np.abs(np.linalg.eigvals(jacobian(lambda p: emlib.em_map(T_MODEL, Z, p), hat))))
    assert 0.85 < missing_nu <= rate_ecm
    # the bound in general: the largest generalized eigenvalue of (I_m, I_c) dominates every
    # Rayleigh quotient, in particular the one along a coordinate
    rng = np.random.default_rng(0)
    for _ in range(20):
        A = rng.normal(size=(4, 4))
        I_c = A @ A.T + 4 * np.eye(4)
        B = rng.normal(size=(4, 4))
        I_o = 0.5 * (B @ B.T) / np.linalg.norm(B @ B.T, 2) * np.linalg.eigvalsh(I_c)[0]
        lam = np.max(np.real(np.linalg.eigvals(np.linalg.solve(I_c, I_c - I_o))))
        assert all(lam >= 1 - I_o[i, i] / I_c[i, i] - 1e-12 for i in range(4))


def test_ecme_lowers_q_in_each_of_its_first_five_iterations_while_l_rises(t_data):
    Z, theta = t_data
    first = None
    for t in range(5):
        stats, _ = T_MODEL.e_step(Z, theta)
        after_q = T_MODEL.location_scale_step(stats, theta)
        after_l = T_MODEL.dof_loglik_step(Z, after_q)
        drop = T_MODEL.q_from_stats(stats, after_q) - T_MODEL.q_from_stats(stats, after_l)
        rise = T_MODEL.log_likelihood(Z, after_l) - T_MODEL.log_likelihood(Z, after_q)
        assert drop > 1e-6 and rise > 1e-6
        # and the Q-steps alone are a GEM step
        assert T_MODEL.q_from_stats(stats, after_q) >= T_MODEL.q_from_stats(stats, theta)
        first = first or (drop, rise)
        theta = after_l
    assert first[0] > 20 > 1 > first[1] > 0.5                 # "lowered Q by 24.8, raised l by 0.8"


def test_first_step_in_nu_ecm_barely_moves_ecme_moves_far(t_data):
    Z, init = t_data
    stats, _ = T_MODEL.e_step(Z, init)
    moved = T_MODEL.location_scale_step(stats, init)
    assert 29 < T_MODEL.dof_q_step(stats, moved).dof < 30
    assert 15 < T_MODEL.dof_loglik_step(Z, moved).dof < 17


# ---------------------------------------------------------------- exercises
def test_trigamma_exceeds_one_over_x_so_ecms_nu_equation_is_monotone():
    x = np.geomspace(1e-3, 1e6, 400)
    assert np.all(polygamma(1, x) > 1 / x)
    c = -1.3
    nus = np.geomspace(0.01, 1e6, 400)
    left = np.log(nus / 2) + 1 - polygamma(0, nus / 2) + c
    assert np.all(np.diff(left) < 0)


def test_agreement_numbers_of_the_q_statistics_exercise(mixture_data):
    X = mixture_data
    q = MODEL.posterior(X, INIT)
    stats = MODEL.expected_stats(X, q)
    other = emlib.GaussianMixtureParams([0.3, 0.7], [[-1.0], [1.0]], [[1.0], [2.0]])
    q_a = gaussian_mixture_q(stats, other)
    q_b = emlib.bounds.expected_complete_loglik(MODEL, X, other, q)
    assert abs(q_a - q_b) / abs(q_b) <= 1e-14                 # the prose says "below 10^-13"
    h = 1e-5

    def shifted(params, dh):
        return emlib.GaussianMixtureParams(params.weights, params.means + [[dh], [0.0]],
                                           params.covariances)

    d_l = (MODEL.log_likelihood(X, shifted(INIT, h)) - MODEL.log_likelihood(X, shifted(INIT, -h))) / (2 * h)
    d_q = (gaussian_mixture_q(stats, shifted(INIT, h)) - gaussian_mixture_q(stats, shifted(INIT, -h))) / (2 * h)
    assert abs(d_l - d_q) / abs(d_q) <= 1e-9                  # the prose says "below 10^-8"
