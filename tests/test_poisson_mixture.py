"""Tests of emlib.PoissonMixture: densities against SciPy, E- and M-step, EM monotonicity, input checks."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import poisson

import emlib
from emlib.bounds import expected_complete_loglik


@pytest.fixture(scope="module")
def deaths():
    return emlib.datasets.hasselblad_deaths()


@pytest.fixture
def params3():
    return emlib.PoissonMixtureParams([0.2, 0.5, 0.3], [0.7, 2.0, 5.5])


@pytest.fixture
def counts():
    rng = np.random.default_rng(7)
    return rng.poisson(rng.choice([0.7, 2.0, 5.5], size=150))


# ---------------------------------------------------------------- densities against scipy.stats.poisson
def test_log_joint_matches_scipy(params3, counts):
    model = emlib.PoissonMixture(3)
    expected = np.log(params3.weights) + poisson.logpmf(counts[:, None], params3.rates)
    np.testing.assert_allclose(model.log_joint(counts, params3), expected, rtol=1e-12, atol=1e-12)


def test_log_likelihood_includes_factorials_and_matches_scipy(params3, counts):
    model = emlib.PoissonMixture(3)
    expected = np.sum(np.log(poisson.pmf(counts[:, None], params3.rates) @ params3.weights))
    assert model.log_likelihood(counts, params3) == pytest.approx(expected, rel=1e-12)


def test_posterior_is_bayes_rule(params3, counts):
    model = emlib.PoissonMixture(3)
    joint = params3.weights * poisson.pmf(counts[:, None], params3.rates)
    np.testing.assert_allclose(model.posterior(counts, params3), joint / joint.sum(axis=1, keepdims=True),
                               rtol=1e-10, atol=1e-14)


def test_e_step_on_distinct_values_equals_pass_over_all_points(params3, counts):
    """The histogram shortcut in e_step gives the statistics of the plain definition."""
    model = emlib.PoissonMixture(3)
    X = model.check_data(counts)
    stats, loglik = model.e_step(X, params3)
    q = model.posterior(X, params3)
    direct = model.expected_stats(X, q)
    np.testing.assert_allclose(stats.counts, direct.counts, rtol=1e-12)
    np.testing.assert_allclose(stats.sum_x, direct.sum_x, rtol=1e-12)
    np.testing.assert_allclose(stats.counts, q.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.sum_x, counts @ q, rtol=1e-12)
    assert loglik == pytest.approx(model.log_likelihood(X, params3), rel=1e-13)


def test_stats_are_additive(params3, counts):
    model = emlib.PoissonMixture(3)
    X = model.check_data(counts)
    whole, _ = model.e_step(X, params3)
    a, _ = model.e_step(X[:60], params3)
    b, _ = model.e_step(X[60:], params3)
    both = a + b
    np.testing.assert_allclose(both.counts, whole.counts, rtol=1e-12)
    np.testing.assert_allclose(both.sum_x, whole.sum_x, rtol=1e-12)
    half = 0.5 * whole
    np.testing.assert_allclose(half.sum_x, whole.sum_x / 2)


# ---------------------------------------------------------------- M-step
def test_m_step_maximizes_q(params3, counts):
    """m_step(stats) beats every nearby feasible point on Q(theta | theta_t) (equation slow_convergence-mstep)."""
    model = emlib.PoissonMixture(3)
    X = model.check_data(counts)
    q = model.posterior(X, params3)
    new = model.m_step(model.expected_stats(X, q))
    best = expected_complete_loglik(model, X, new, q)
    rng = np.random.default_rng(3)
    for _ in range(50):
        w = np.abs(new.weights + 0.02 * rng.standard_normal(3))
        other = emlib.PoissonMixtureParams(w / w.sum(), new.rates * np.exp(0.05 * rng.standard_normal(3)))
        assert expected_complete_loglik(model, X, other, q) < best


def test_m_step_closed_form(counts, params3):
    model = emlib.PoissonMixture(3)
    X = model.check_data(counts)
    q = model.posterior(X, params3)
    new = model.m_step(model.expected_stats(X, q))
    np.testing.assert_allclose(new.weights, q.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(new.rates, (q * counts[:, None]).sum(axis=0) / q.sum(axis=0), rtol=1e-12)


def test_em_step_matches_sample_mean(params3, counts):
    """Lemma slow_convergence-lem-mean: after any M-step, sum_k pi_k lambda_k equals the sample mean."""
    model = emlib.PoissonMixture(3)
    new = emlib.em_map(model, counts, params3)
    assert float(new.weights @ new.rates) == pytest.approx(counts.mean(), rel=1e-13)
    assert float(params3.weights @ params3.rates) != pytest.approx(counts.mean(), rel=1e-3)  # not true before


def test_one_component_em_map_is_constant(counts):
    """Exercise slow_convergence-ex-one: with K = 1 the EM map is constant, so its Jacobian is 0."""
    model = emlib.PoissonMixture(1)
    for rate in (0.5, 3.0, 10.0):
        new = emlib.em_map(model, counts, emlib.PoissonMixtureParams([1.0], [rate]))
        assert new.rates[0] == pytest.approx(counts.mean(), rel=1e-13)
    J = emlib.em_map_jacobian(model, counts, emlib.PoissonMixtureParams([1.0], [2.0]),
                              to_vector=lambda p: p.rates.copy(),
                              from_vector=lambda u: emlib.PoissonMixtureParams([1.0], u))
    np.testing.assert_allclose(J, 0.0, atol=1e-9)


# ---------------------------------------------------------------- EM
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 3), N=st.integers(5, 120))
def test_em_never_decreases_likelihood(seed, K, N):
    rng = np.random.default_rng(seed)
    truth = emlib.PoissonMixtureParams(rng.dirichlet(np.ones(K)), rng.uniform(0.2, 8.0, size=K))
    model = emlib.PoissonMixture(K)
    X, _ = model.sample(truth, N, rng)
    assume(X.max() > 0)
    start = emlib.PoissonMixtureParams(rng.dirichlet(np.ones(K)), rng.uniform(0.1, 10.0, size=K))
    ll = [model.log_likelihood(X, start)]
    try:
        emlib.em(model, X, start, tol=0, max_iter=25, callback=lambda t, p, value: ll.append(value))
    except ValueError as exc:
        # A component may be driven to the boundary (rate 0 or weight 0), where the M-step is
        # undefined and says so; monotonicity is checked on the iterates before that point.
        assert "explain only zero counts" in str(exc) or "no responsibility" in str(exc)
    ll = np.array(ll)
    # Exact arithmetic gives diff >= 0; the sum of at most 120 log terms carries rounding of
    # a few ulp of |l|, so 1e-12 relative is far above rounding and far below any real drop.
    assert np.all(np.diff(ll) >= -1e-12 * np.abs(ll[1:]))


def test_em_on_hasselblad_agrees_with_an_independent_optimizer(deaths):
    """EM's maximum equals the one BFGS finds by maximizing l directly (no EM involved)."""
    model = emlib.PoissonMixture(2)
    start = emlib.PoissonMixtureParams([0.3, 0.7], [1.0, 2.5])
    fit = emlib.squarem(model, deaths, start, tol=0, max_iter=60)  # a fixed point to ~1e-14 (see test_squarem)
    values, mult = np.unique(deaths, return_counts=True)

    def neg_loglik(u):
        p = 1.0 / (1.0 + np.exp(-u[0]))
        lam = np.exp(u[1:])
        return -mult @ np.log(p * poisson.pmf(values, lam[0]) + (1 - p) * poisson.pmf(values, lam[1]))

    res = minimize(neg_loglik, [0.0, 0.0, 1.0], method="BFGS", options={"gtol": 1e-9})
    p_hat = 1.0 / (1.0 + np.exp(-res.x[0]))
    # l is very flat along one direction (the slow direction of EM), so BFGS stops with parameters
    # good to ~1e-5 and l good to ~1e-10; the tolerances leave a margin of 10 over what it reaches.
    assert -res.fun == pytest.approx(fit.log_likelihood[-1], abs=1e-8)
    np.testing.assert_allclose([p_hat, *np.exp(res.x[1:])], [fit.params.weights[0], *fit.params.rates], atol=1e-4)
    assert fit.log_likelihood[-1] >= -res.fun - 1e-9


def test_works_with_em_unchanged(deaths):
    model = emlib.PoissonMixture(2)
    init = model.init_params(deaths, np.random.default_rng(0))
    result = emlib.em(model, deaths, init, tol=1e-10, max_iter=5000)
    assert isinstance(result, emlib.EMResult) and result.converged
    assert result.log_likelihood.shape == (result.n_iter + 1,)
    assert result.log_likelihood[-1] == pytest.approx(model.log_likelihood(deaths, result.params), rel=1e-12)


# ---------------------------------------------------------------- data, starting points, sampling
def test_check_data_accepts_vectors_columns_and_whole_floats():
    model = emlib.PoissonMixture(2)
    expected = np.array([[0.0], [3.0], [1.0]])
    for X in ([0, 3, 1], np.array([[0], [3], [1]]), np.array([0.0, 3.0, 1.0])):
        out = model.check_data(X)
        assert out.shape == (3, 1)
        np.testing.assert_array_equal(out, expected)


def test_init_params_is_seeded_and_valid(deaths):
    model = emlib.PoissonMixture(3)
    a = model.init_params(deaths, np.random.default_rng(5))
    b = model.init_params(deaths, np.random.default_rng(5))
    np.testing.assert_array_equal(a.rates, b.rates)
    np.testing.assert_allclose(a.weights, 1 / 3)
    assert np.all(np.diff(a.rates) > 0)
    assert np.all((a.rates >= 0.5 * deaths.mean()) & (a.rates <= 1.5 * deaths.mean()))


def test_sample_is_the_draw_of_its_seed_and_has_the_right_mean():
    """Reproducible: the labels and counts are those drawn from the seed's generator, written out
    (labels from the weights, then one Poisson count per label)."""
    model = emlib.PoissonMixture(2)
    params = emlib.PoissonMixtureParams([0.25, 0.75], [1.0, 4.0])
    X, z = model.sample(params, 20000, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    labels = rng.choice(2, size=20000, p=[0.25, 0.75])
    np.testing.assert_array_equal(z, labels)
    np.testing.assert_array_equal(X, rng.poisson(np.array([1.0, 4.0])[labels]))
    assert X.shape == z.shape == (20000,)
    # mean 3.25, variance of X about 5.1, so the standard error of the mean is about 0.016.
    assert X.mean() == pytest.approx(3.25, abs=0.08)
    assert np.mean(z == 0) == pytest.approx(0.25, abs=0.02)


def test_weights_are_renormalized_exactly():
    w = np.array([0.3, 0.7]) * (1 + 3e-9)
    params = emlib.PoissonMixtureParams(w, [1.0, 2.0])
    assert params.weights.sum() == pytest.approx(1.0, abs=1e-15)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("X, message", [
    ([0, 2, -1, 3], "non-negative counts"),
    ([0, 2, 1.5, 3], "whole-number counts"),
    ([0, 2, np.nan, 3], "NaN"),
    (np.ones((4, 2)), "one column of counts"),
    ([1], "at least 2"),
    ([0, np.inf, 1], "infinite"),
])
def test_bad_data(X, message):
    with pytest.raises(ValueError, match=message):
        emlib.PoissonMixture(2).check_data(X)


@pytest.mark.parametrize("weights, rates, message", [
    ([0.3, 0.7], [1.0, 2.0, 3.0], r"rates must have shape \(2\)"),
    ([[0.3, 0.7]], [1.0, 2.0], "weights must have shape"),
    ([0.3, 0.6], [1.0, 2.0], "must sum to one"),
    ([1.2, -0.2], [1.0, 2.0], "non-negative"),
    ([0.3, 0.7], [0.0, 2.0], "rates must be positive"),
    ([0.3, 0.7], [1.0, -2.0], "rates must be positive"),
    ([0.3, 0.7], [1.0, np.nan], "NaN or infinite"),
])
def test_bad_params(weights, rates, message):
    with pytest.raises(ValueError, match=message):
        emlib.PoissonMixtureParams(weights, rates)


def test_params_must_fit_the_model():
    model = emlib.PoissonMixture(3)
    with pytest.raises(ValueError, match="2 components but the model has 3"):
        model.check_params(emlib.PoissonMixtureParams([0.5, 0.5], [1.0, 2.0]))
    with pytest.raises(ValueError, match="must be PoissonMixtureParams"):
        model.check_params({"weights": [1.0], "rates": [1.0]})


@pytest.mark.parametrize("K", [0, -1, 2.5, True])
def test_bad_n_components(K):
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        emlib.PoissonMixture(K)


def test_all_zero_counts_cannot_start():
    with pytest.raises(ValueError, match="every count in X is 0"):
        emlib.PoissonMixture(2).init_params(np.zeros(10, dtype=int), np.random.default_rng(0))


def test_init_params_needs_a_generator(deaths):
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        emlib.PoissonMixture(2).init_params(deaths, 0)


def test_m_step_refuses_empty_and_zero_rate_components():
    model = emlib.PoissonMixture(2)
    with pytest.raises(ValueError, match="received no responsibility"):
        model.m_step(emlib.PoissonMixtureStats(np.array([10.0, 0.0]), np.array([12.0, 0.0])))
    with pytest.raises(ValueError, match="explain only zero counts"):
        model.m_step(emlib.PoissonMixtureStats(np.array([4.0, 6.0]), np.array([0.0, 9.0])))


def test_expected_stats_checks_q_shape(counts):
    with pytest.raises(ValueError, match=r"q must have shape \(N, K\)"):
        emlib.PoissonMixture(3).expected_stats(counts, np.ones((counts.size, 2)) / 2)
