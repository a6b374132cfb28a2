"""Generalized EM and ECM (emlib.gem, emlib.variants.gem): the properties that define them.

GEM with the exact M-step is EM; every GEM step (gradient or CM-step) leaves Q no lower, so the
log-likelihood never falls; ECM's fixed points are stationary points of the log-likelihood, found
also by direct numerical maximization; Q depends on the data only through the statistics.
"""
import numpy as np
import pytest
from scipy import optimize
from scipy.optimize import minimize

import emlib
from emlib.bounds import expected_complete_loglik
from emlib.variants.gem import (
    ARMIJO,
    gaussian_mixture_gradient_step,
    gaussian_mixture_q,
    gaussian_mixture_q_gradient,
    linear_means_cm_steps,
)
from monotone import assert_monotone


def random_mixture_data(seed, K=3, D=1, N=300):
    """A random diagonal mixture (means spread out, variances varied) and a sample from it."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(0.0, 3.0, (K, D))
    variances = rng.uniform(0.3, 2.0, (K, D))
    true = emlib.GaussianMixtureParams(weights, means, variances)
    X, _ = emlib.GaussianMixture(K, "diag").sample(true, N, rng)
    return X, rng


def linear_means_data(seed, N=400):
    """Four components with means 1 + 3.5 k on a line and unequal variances (the chapter's model)."""
    rng = np.random.default_rng(seed)
    K = 4
    c = np.arange(K, dtype=float)
    design = np.column_stack([np.ones(K), c])
    true = emlib.GaussianMixtureParams(np.full(K, 0.25), (1.0 + 3.5 * c)[:, None],
                                       np.array([0.4, 1.0, 1.8, 0.7])[:, None])
    model = emlib.GaussianMixture(K, "diag", reg_covar=0.0)
    X, _ = model.sample(true, N, rng)
    init = emlib.GaussianMixtureParams(np.full(K, 0.25), (0.5 + 3.0 * c)[:, None], np.full((K, 1), X.var()))
    return model, X, init, design


# ------------------------------------------------------------------------------ exact M-step
def test_gem_with_the_exact_m_step_is_em(faithful):
    model = emlib.GaussianMixture(2)
    init = model.init_params(faithful, np.random.default_rng(3))
    plain = emlib.em(model, faithful, init, max_iter=40, tol=0)
    general = emlib.gem(model, faithful, init, max_iter=40, tol=0)
    explicit = emlib.gem(model, faithful, init, m_step=lambda stats, params: model.m_step(stats),
                         max_iter=40, tol=0)
    for result in (general, explicit):
        np.testing.assert_array_equal(result.log_likelihood, plain.log_likelihood)
        np.testing.assert_array_equal(result.params.means, plain.params.means)
        np.testing.assert_array_equal(result.params.covariances, plain.params.covariances)
        assert result.n_iter == plain.n_iter and result.converged == plain.converged


def test_gem_obeys_the_driver_contract(faithful):
    model = emlib.GaussianMixture(2, "diag")
    init = model.init_params(faithful, np.random.default_rng(0))
    seen = []
    result = emlib.gem(model, faithful, init, m_step=gaussian_mixture_gradient_step(model), max_iter=6,
                       tol=0, callback=lambda t, p, ll: seen.append((t, p, ll)))
    assert result.n_iter == 6 and not result.converged and len(result.log_likelihood) == 7
    assert [t for t, _, _ in seen] == list(range(1, 7))
    assert seen[-1][1] is result.params
    for t, params, ll in seen:
        assert result.log_likelihood[t] == pytest.approx(model.log_likelihood(faithful, params), rel=1e-12)
    assert result.log_likelihood[0] == pytest.approx(model.log_likelihood(faithful, init), rel=1e-12)
    converged = emlib.gem(model, faithful, init, max_iter=1000, tol=1e-9)
    assert converged.converged and converged.n_iter < 1000


# ---------------------------------------------------------------------------------- monotone
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_steps", [1, 3])
def test_gradient_gem_is_monotone(seed, n_steps):
    X, rng = random_mixture_data(seed, K=3, D=2)
    model = emlib.GaussianMixture(3, "diag")
    init = model.init_params(X, rng)
    result = emlib.gem(model, X, init, m_step=gaussian_mixture_gradient_step(model, n_steps=n_steps),
                       max_iter=40, tol=0)
    assert_monotone(result.log_likelihood, rtol=1e-9)
    assert result.log_likelihood[-1] > result.log_likelihood[0]


@pytest.mark.parametrize("seed", range(5))
def test_ecm_is_monotone(seed):
    model, X, init, design = linear_means_data(seed)
    result = emlib.gem(model, X, init, m_step=list(linear_means_cm_steps(model, design)), max_iter=40, tol=0)
    assert_monotone(result.log_likelihood, rtol=1e-9)
    assert result.log_likelihood[-1] > result.log_likelihood[0]


def test_each_gem_step_raises_q(faithful):
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    params = model.init_params(faithful, np.random.default_rng(1))
    stats, _ = model.e_step(faithful, params)
    step = gaussian_mixture_gradient_step(model)
    new = step(stats, params)
    assert gaussian_mixture_q(stats, new) > gaussian_mixture_q(stats, params)


def test_a_step_that_decreases_q_is_refused(faithful):
    model = emlib.GaussianMixture(2, "diag")
    init = model.init_params(faithful, np.random.default_rng(0))

    def bad_step(stats, params):  # moves every mean far away: Q must fall
        return emlib.GaussianMixtureParams(params.weights, params.means + 50.0, params.covariances)

    with pytest.raises(ValueError, match=r"step 0 of iteration 1 decreased Q"):
        emlib.gem(model, faithful, init, m_step=bad_step, max_iter=3)
    # The check can be switched off; then the log-likelihood falls, which is what it guards against.
    result = emlib.gem(model, faithful, init, m_step=bad_step, max_iter=1, tol=0, check_q=False)
    assert result.log_likelihood[1] < result.log_likelihood[0]


# ------------------------------------------------------------------- gradient step specifics
def test_many_gradient_steps_approach_the_exact_m_step(faithful):
    X = (faithful - faithful.mean(axis=0)) / faithful.std(axis=0)  # standardized: well conditioned
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    params = model.init_params(X, np.random.default_rng(2))
    stats, _ = model.e_step(X, params)
    exact = model.m_step(stats)
    one = gaussian_mixture_gradient_step(model, n_steps=1)(stats, params)
    approx = gaussian_mixture_gradient_step(model, n_steps=200)(stats, params)
    assert gaussian_mixture_q(stats, params) < gaussian_mixture_q(stats, one) < gaussian_mixture_q(stats, exact)
    assert gaussian_mixture_q(stats, approx) == pytest.approx(gaussian_mixture_q(stats, exact), rel=1e-12)
    np.testing.assert_allclose(approx.weights, exact.weights, atol=1e-8)
    np.testing.assert_allclose(approx.means, exact.means, atol=1e-6)
    np.testing.assert_allclose(approx.covariances, exact.covariances, rtol=1e-6)


def test_gradient_step_leaves_fixed_parameters_alone(faithful):
    fixed_w = np.array([0.3, 0.7])
    model = emlib.GaussianMixture(2, "diag", fixed={"weights": fixed_w})
    params = model.init_params(faithful, np.random.default_rng(0))
    stats, _ = model.e_step(faithful, params)
    new = gaussian_mixture_gradient_step(model, n_steps=5)(stats, params)
    np.testing.assert_array_equal(new.weights, fixed_w)
    assert not np.allclose(new.means, params.means)


def test_gradient_step_at_a_stationary_point_does_not_move(faithful):
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    params = model.init_params(faithful, np.random.default_rng(0))
    stats, _ = model.e_step(faithful, params)
    exact = model.m_step(stats)  # the maximizer of Q: its gradient is zero up to rounding
    new = gaussian_mixture_gradient_step(model)(stats, exact)
    np.testing.assert_allclose(new.means, exact.means, rtol=1e-8)
    np.testing.assert_allclose(new.covariances, exact.covariances, rtol=1e-8)


# ---------------------------------------------------------------------------- Q from stats
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_q_from_statistics_equals_the_expectation_over_q(covariance_type):
    X, rng = random_mixture_data(7, K=3, D=3, N=200)
    model = emlib.GaussianMixture(3, covariance_type)
    theta_t = model.init_params(X, rng)
    q = model.posterior(X, theta_t)
    stats = model.expected_stats(X, q)
    other = model.m_step(stats)
    for params in (theta_t, other):
        assert gaussian_mixture_q(stats, params) == pytest.approx(
            expected_complete_loglik(model, X, params, q), rel=1e-10)


def test_gradient_of_q_at_theta_t_is_the_gradient_of_the_loglik(faithful):
    """The identity grad l(theta) = grad_theta Q(theta | theta_t) at theta = theta_t, by differences."""
    model = emlib.GaussianMixture(2, "diag")
    theta = model.init_params(faithful, np.random.default_rng(4))
    stats, _ = model.e_step(faithful, theta)
    h = 1e-5
    for k in range(2):
        for d in range(2):
            shift = np.zeros_like(theta.means)
            shift[k, d] = h
            plus = emlib.GaussianMixtureParams(theta.weights, theta.means + shift, theta.covariances)
            minus = emlib.GaussianMixtureParams(theta.weights, theta.means - shift, theta.covariances)
            d_loglik = (model.log_likelihood(faithful, plus) - model.log_likelihood(faithful, minus)) / (2 * h)
            d_q = (gaussian_mixture_q(stats, plus) - gaussian_mixture_q(stats, minus)) / (2 * h)
            assert d_q == pytest.approx(d_loglik, rel=1e-5, abs=1e-6)


# --------------------------------------------------------------------------------------- ECM
def test_cm_steps_are_conditional_maximizers():
    model, X, init, design = linear_means_data(0)
    cm_means, cm_variances = linear_means_cm_steps(model, design)
    stats, _ = model.e_step(X, init)
    after_means = cm_means(stats, init)
    after_both = cm_variances(stats, after_means)
    # means stay on the line mu_k = a + b c_k
    np.testing.assert_allclose(np.diff(after_means.means[:, 0], 2), 0.0, atol=1e-10)
    q1, q2 = gaussian_mixture_q(stats, after_means), gaussian_mixture_q(stats, after_both)
    rng = np.random.default_rng(0)
    for _ in range(20):  # any other (a, b) with these variances, or any other variances, do worse
        a, b = rng.normal(0.0, 0.05, 2)
        moved = emlib.GaussianMixtureParams(after_means.weights, after_means.means + a + b * design[:, 1:],
                                            after_means.covariances)
        assert gaussian_mixture_q(stats, moved) <= q1
        scaled = emlib.GaussianMixtureParams(after_both.weights, after_both.means,
                                             after_both.covariances * np.exp(rng.normal(0, 0.05, (4, 1))))
        assert gaussian_mixture_q(stats, scaled) <= q2


def _constrained_params(u, design):
    K = design.shape[0]
    weights = np.exp(u[:K] - u[:K].max())
    beta = u[K:K + 2]
    return emlib.GaussianMixtureParams(weights / weights.sum(), (design @ beta)[:, None], np.exp(u[K + 2:])[:, None])


def test_ecm_reaches_the_maximizer_found_by_direct_numerical_optimization():
    model, X, init, design = linear_means_data(11, N=300)
    result = emlib.gem(model, X, init, m_step=list(linear_means_cm_steps(model, design)), max_iter=5000,
                       tol=1e-14)
    assert result.converged
    # Direct maximization of l over (log-weights, a, b, log-variances) by BFGS from the same start.
    u0 = np.concatenate([np.log(init.weights), [init.means[0, 0], init.means[1, 0] - init.means[0, 0]],
                         np.log(init.covariances[:, 0])])
    fit = minimize(lambda u: -model.log_likelihood(X, _constrained_params(u, design)), u0, method="BFGS",
                   options={"gtol": 1e-8, "maxiter": 2000})
    direct = _constrained_params(fit.x, design)
    # Both are optima of the same function: values agree to the optimizer's accuracy, and
    # parameters to the square root of it (a flat maximum).
    assert result.log_likelihood[-1] == pytest.approx(-fit.fun, abs=1e-6)
    assert result.log_likelihood[-1] >= -fit.fun - 1e-7
    np.testing.assert_allclose(result.params.means, direct.means, atol=1e-3)
    np.testing.assert_allclose(result.params.covariances, direct.covariances, rtol=1e-3)
    np.testing.assert_allclose(result.params.weights, direct.weights, atol=1e-4)


def test_ecm_fixed_point_is_a_stationary_point_of_the_loglik():
    model, X, init, design = linear_means_data(5)
    result = emlib.gem(model, X, init, m_step=list(linear_means_cm_steps(model, design)), max_iter=5000,
                       tol=1e-14)
    p = result.params
    u = np.concatenate([np.log(p.weights), [p.means[0, 0], p.means[1, 0] - p.means[0, 0]],
                        np.log(p.covariances[:, 0])])
    h = 1e-6
    grad = [(model.log_likelihood(X, _constrained_params(u + h * e, design))
             - model.log_likelihood(X, _constrained_params(u - h * e, design))) / (2 * h) for e in np.eye(len(u))]
    # Differences of a function near 1e3 carry rounding errors of order 1e-13 / 1e-6 = 1e-7;
    # away from a stationary point this gradient is of order N = 400.
    assert np.max(np.abs(grad)) < 1e-3


def test_ecm_with_repeated_cycles_approaches_the_exact_m_step():
    """Repeating the CM-steps within one iteration converges to the joint maximizer of Q."""
    model, X, init, design = linear_means_data(2)
    steps = list(linear_means_cm_steps(model, design))
    stats, _ = model.e_step(X, init)
    params = init
    values = []
    for _ in range(200):
        for step in steps:
            params = step(stats, params)
        values.append(gaussian_mixture_q(stats, params))
    assert np.all(np.diff(values) >= -1e-9 * abs(values[-1]))
    # At the joint maximizer, a further cycle changes nothing.
    again = steps[1](stats, steps[0](stats, params))
    np.testing.assert_allclose(again.means, params.means, rtol=1e-9)
    np.testing.assert_allclose(again.covariances, params.covariances, rtol=1e-9)


# ----------------------------------------------------------------------- determinism, errors
def test_ecm_is_its_definition_written_out():
    """Deterministic and exactly its definition: an E-step, then the two CM-steps in turn, repeated."""
    model, X, init, design = linear_means_data(3)
    cm_means, cm_variances = linear_means_cm_steps(model, design)
    result = emlib.gem(model, X, init, m_step=[cm_means, cm_variances], max_iter=30, tol=0)
    params, trace = init, []
    for _ in range(30):
        stats, loglik = model.e_step(X, params)
        trace.append(loglik)
        params = cm_variances(stats, cm_means(stats, params))
    trace.append(model.log_likelihood(X, params))
    np.testing.assert_allclose(result.log_likelihood, trace, rtol=1e-13)
    np.testing.assert_allclose(emlib.flatten_params(result.params), emlib.flatten_params(params), rtol=1e-12)


@pytest.mark.parametrize("m_step", ["exact", [], [1, 2], 3.0])
def test_bad_m_step_is_refused(faithful, m_step):
    model = emlib.GaussianMixture(2)
    init = model.init_params(faithful, np.random.default_rng(0))
    with pytest.raises(ValueError, match="m_step must be None"):
        emlib.gem(model, faithful, init, m_step=m_step)


def test_gem_rejects_bad_data_and_limits(faithful):
    model = emlib.GaussianMixture(2)
    init = model.init_params(faithful, np.random.default_rng(0))
    bad = faithful.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        emlib.gem(model, bad, init)
    with pytest.raises(ValueError, match="max_iter must be a non-negative integer"):
        emlib.gem(model, faithful, init, max_iter=-1)
    with pytest.raises(ValueError, match="params must be GaussianMixtureParams"):
        emlib.gem(model, faithful, init, m_step=lambda stats, params: "not parameters", max_iter=1)


def test_step_factories_reject_bad_arguments():
    full = emlib.GaussianMixture(2, "full")
    diag = emlib.GaussianMixture(2, "diag")
    with pytest.raises(ValueError, match="covariance_type='diag'"):
        gaussian_mixture_gradient_step(full)
    with pytest.raises(ValueError, match="step_size must be a positive number"):
        gaussian_mixture_gradient_step(diag, step_size=0.0)
    with pytest.raises(ValueError, match="shrink must be a number strictly between 0 and 1"):
        gaussian_mixture_gradient_step(diag, shrink=1.0)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        gaussian_mixture_gradient_step(diag, n_steps=0)
    with pytest.raises(ValueError, match="covariance_type='diag'"):
        linear_means_cm_steps(full, np.ones((2, 1)))
    with pytest.raises(ValueError, match="design must have shape"):
        linear_means_cm_steps(diag, np.ones((3, 2)))
    with pytest.raises(ValueError, match="full column rank"):
        linear_means_cm_steps(diag, np.ones((2, 2)))
    with pytest.raises(ValueError, match="must not fix them"):
        linear_means_cm_steps(emlib.GaussianMixture(2, "diag", fixed={"means": np.zeros((2, 1))}), np.eye(2))


def test_q_from_statistics_rejects_mismatched_inputs(faithful):
    model = emlib.GaussianMixture(2, "diag")
    params = model.init_params(faithful, np.random.default_rng(0))
    stats, _ = model.e_step(faithful, params)
    other = emlib.GaussianMixture(2, "full").init_params(faithful, np.random.default_rng(0))
    with pytest.raises(ValueError, match="do not match params"):
        gaussian_mixture_q(stats, other)
    with pytest.raises(ValueError, match="stats must be GaussianMixtureStats"):
        gaussian_mixture_q("stats", params)


def test_a_monotone_gem_can_stall_away_from_a_stationary_point(faithful):
    """Steps that shrink geometrically (2^-t of the way to the M-step) raise Q, yet the iterates
    stop short of any stationary point: monotonicity alone does not give convergence to one."""
    X = faithful[:, 1:]  # waiting times
    model = emlib.GaussianMixture(2, "diag", fixed={"weights": [0.35, 0.65], "covariances": [[36.0], [36.0]]})
    init = emlib.GaussianMixtureParams([0.35, 0.65], [[60.0], [65.0]], [[36.0], [36.0]])
    calls = [0]

    def damped(stats, params):
        calls[0] += 1
        target = model.m_step(stats).means
        return emlib.GaussianMixtureParams(params.weights, params.means + 0.5 ** calls[0] * (target - params.means),
                                           params.covariances)

    stalled = emlib.gem(model, X, init, m_step=damped, max_iter=200, tol=0)
    exact = emlib.em(model, X, init, max_iter=200, tol=0)
    assert_monotone(stalled.log_likelihood, rtol=1e-9)
    assert stalled.log_likelihood[-1] - stalled.log_likelihood[-50] == 0.0  # it has stopped moving
    assert stalled.log_likelihood[-1] < exact.log_likelihood[-1] - 10.0
    # ... and where it stopped, the EM map still moves the means a long way: not a fixed point.
    stats, _ = model.e_step(X, stalled.params)
    assert np.max(np.abs(model.m_step(stats).means - stalled.params.means)) > 1.0


# ------------------------------------------------------------------ issue 13 item 4: the default path is EM
def small_scale_data(seed=3):
    """Two diagonal clusters with spread 2e-4: reg_covar = 1e-6 is no longer negligible, so the
    regularized M-step is far from Q's exact maximizer."""
    rng = np.random.default_rng(seed)
    scale = 2.2e-4
    return np.concatenate([rng.normal(0, scale, (60, 2)), rng.normal(3 * scale, scale, (60, 2))])


def test_the_default_m_step_gives_exactly_em_even_with_reg_covar():
    """gem with its default M-step stopped with "decreased Q ... use a smaller step size" on data where
    em converges, because the regularized M-step is not Q's maximizer. The default path is now EM."""
    X = small_scale_data()
    model = emlib.GaussianMixture(2, "diag")
    init = model.init_params(X, np.random.default_rng(3))
    with pytest.warns(emlib.ComponentCollapseWarning, match="X varies by less than reg_covar=1e-06"):
        plain = emlib.em(model, X, init)
    with pytest.warns(emlib.ComponentCollapseWarning, match="X varies by less than reg_covar"):
        general = emlib.gem(model, X, init)
    assert plain.converged and general.converged
    np.testing.assert_array_equal(general.log_likelihood, plain.log_likelihood)
    np.testing.assert_array_equal(general.params.covariances, plain.params.covariances)


def test_a_decrease_of_q_caused_by_reg_covar_names_reg_covar():
    X = small_scale_data()
    model = emlib.GaussianMixture(2, "diag")
    init = model.init_params(X, np.random.default_rng(3))
    with pytest.raises(ValueError, match="decreased Q.*reg_covar = 1e-06 makes its M-step inexact"):
        emlib.gem(model, X, init, m_step=lambda stats, params: model.m_step(stats))
    exact = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    assert emlib.gem(exact, X, init, m_step=lambda stats, params: exact.m_step(stats), max_iter=20).n_iter == 20


# ------------------------------------------------------------------ issue 17: the gradient step itself
def test_the_gradient_of_q_matches_central_differences_of_q():
    """dQ/d eta, dQ/d mu and dQ/d s (s = log sigma^2) against differences of Q itself: a missing 1/2 in
    dQ/ds, or any other slip, is off by far more than the differences' error (about 1e-6 relative)."""
    X, rng = random_mixture_data(11, K=3, D=2, N=300)
    model = emlib.GaussianMixture(3, "diag")
    theta_t = model.init_params(X, rng)
    stats, _ = model.e_step(X, theta_t)
    params = emlib.GaussianMixtureParams([0.2, 0.5, 0.3], theta_t.means + 0.3, 1.4 * theta_t.covariances)
    eta0, mu0, s0 = np.log(params.weights), params.means, np.log(params.covariances)

    def q_at(eta, mu, s):
        w = np.exp(eta - eta.max())
        return model.expected_complete_loglik(stats, emlib.GaussianMixtureParams(w / w.sum(), mu, np.exp(s)))

    g_eta, g_mu, g_s = gaussian_mixture_q_gradient(stats, params)
    h = 1e-6
    for analytic, index in ((g_eta, 0), (g_mu, 1), (g_s, 2)):
        numeric = np.empty_like(analytic)
        for position in np.ndindex(analytic.shape):
            args_plus = [eta0.copy(), mu0.copy(), s0.copy()]
            args_minus = [eta0.copy(), mu0.copy(), s0.copy()]
            args_plus[index][position] += h
            args_minus[index][position] -= h
            numeric[position] = (q_at(*args_plus) - q_at(*args_minus)) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6 * np.abs(analytic).max())


def test_the_accepted_step_satisfies_the_armijo_inequality_where_merely_raising_q_would_not():
    """Choose the first trial step alpha_0 so that Q(u + alpha_0 g) > Q(u) but below the Armijo bound
    Q(u) + c alpha_0 ||g||^2 (a step just short of the far side of the maximum along g): the step must
    backtrack, and the step it takes must satisfy the inequality."""
    X, rng = random_mixture_data(12, K=2, D=1, N=200)
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    params = model.init_params(X, rng)
    stats, _ = model.e_step(X, params)
    n = stats.counts.sum()
    u0 = [np.log(params.weights), params.means, np.log(params.covariances)]
    g = [part / n for part in gaussian_mixture_q_gradient(stats, params)]
    sq_norm = sum(float(np.sum(part ** 2)) for part in g)

    def phi(alpha):  # Q / N along the gradient direction
        eta, mu, s = (u + alpha * d for u, d in zip(u0, g))
        w = np.exp(eta - eta.max())
        try:
            return model.expected_complete_loglik(stats, emlib.GaussianMixtureParams(w / w.sum(), mu, np.exp(s))) / n
        except ValueError:
            return -np.inf

    base = phi(0.0)
    alphas = np.geomspace(1e-3, 1e3, 600)
    rises = np.array([phi(a) > base for a in alphas])
    last = np.flatnonzero(rises)[-1]                        # beyond it Q falls below Q(u): the far side
    far_side = optimize.brentq(lambda a: phi(a) - base, alphas[last], alphas[last + 1], xtol=1e-14, rtol=1e-15)
    alpha0 = far_side * (1 - 1e-7)
    assert base < phi(alpha0) < base + ARMIJO * alpha0 * sq_norm   # raises Q, fails Armijo
    new = gaussian_mixture_gradient_step(model, step_size=alpha0, n_steps=1)(stats, params)
    moved = [np.log(new.weights) - np.log(new.weights).mean() - (u0[0] - u0[0].mean()),
             new.means - u0[1], np.log(new.covariances) - u0[2]]
    g_centred = [g[0] - g[0].mean(), g[1], g[2]]   # softmax ignores a common shift of eta
    alpha = sum(float(np.sum(m * d)) for m, d in zip(moved, g_centred)) / sum(float(np.sum(d * d)) for d in g_centred)
    assert 0 < alpha < alpha0                              # it backtracked
    for m, d in zip(moved, g_centred):                      # along the gradient
        np.testing.assert_allclose(m, alpha * d, rtol=1e-8, atol=1e-12)
    assert phi(alpha) >= base + ARMIJO * alpha * sq_norm    # Armijo
