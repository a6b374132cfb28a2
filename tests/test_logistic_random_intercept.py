"""Tests of emlib.models.logistic_random_intercept: the logistic random-intercept model.

The quadrature (log-likelihood and posterior moments) is checked against brute-force numerical
integration, the densities against scipy.stats, the score against finite differences, the
statistics for additivity, the M-step for optimality, and both samplers against the posterior
(Kolmogorov-Smirnov tests with a CDF from scipy.integrate.quad, and moment tests).
"""
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

import emlib
from emlib import LogisticRandomIntercept, LogisticRandomInterceptParams, LogisticRandomInterceptStats

MODEL = LogisticRandomIntercept()
TRUTH = LogisticRandomInterceptParams(-0.5, 1.5)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X, _ = MODEL.sample(TRUTH, rng.integers(2, 11, size=60), rng)
    return X


def posterior_density(k, n, params):
    """The unnormalized posterior of one group, binomial pmf times normal pdf, written out here
    (independent of the model code)."""
    coefficient = special.comb(n, k)
    sd = np.sqrt(params.variance)

    def density(z):
        p = 1 / (1 + np.exp(-z))
        return (coefficient * p ** k * (1 - p) ** (n - k)
                * np.exp(-0.5 * ((z - params.mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)))
    return density


def brute_force(k, n, params, power=0):
    f = posterior_density(k, n, params)
    centre, width = params.mean, 10 * np.sqrt(params.variance) + 10
    value, _ = integrate.quad(lambda z: z ** power * f(z), centre - width, centre + width, epsabs=0,
                              epsrel=1e-12, limit=400, points=[centre])
    return value


EXTREMES = [  # (k, n, mean, variance): boundary counts, one trial, many trials, small and large variances
    (0, 10, -0.5, 1.5), (10, 10, -0.5, 1.5), (1, 1, 2.0, 0.05), (0, 1, 0.0, 3.0),
    (25, 50, 3.0, 4.0), (3, 7, -4.0, 0.2), (40, 40, 0.0, 1.5),
]


@pytest.mark.parametrize("k, n, mean, variance", EXTREMES)
def test_quadrature_log_likelihood_matches_brute_force_integration(k, n, mean, variance):
    params = LogisticRandomInterceptParams(mean, variance)
    X = np.array([[k, n], [k, n]], dtype=float)
    ours = MODEL.log_likelihood_per_group(X, params)
    np.testing.assert_allclose(ours, np.log(brute_force(k, n, params)), rtol=0, atol=1e-9)


def test_a_far_from_gaussian_posterior_needs_more_nodes():
    # one failure under a wide prior: the posterior is a half-normal with a soft edge, and
    # 30 nodes leave an error of order 1e-7; 100 nodes bring it below 1e-9
    X = np.array([[0.0, 1.0], [0.0, 1.0]])
    params = LogisticRandomInterceptParams(0.0, 10.0)
    exact = np.log(0.5)  # by the symmetry sigma(-z) = 1 - sigma(z) of a centred prior
    assert abs(brute_force(0, 1, params) - 0.5) < 1e-12
    assert 1e-9 < np.abs(MODEL.log_likelihood_per_group(X, params) - exact).max() < 1e-5
    assert np.abs(LogisticRandomIntercept(n_nodes=100).log_likelihood_per_group(X, params) - exact).max() < 1e-9


def test_quadrature_on_simulated_groups_and_moments(data):
    for params in (TRUTH, LogisticRandomInterceptParams(1.0, 0.3)):
        ll = MODEL.log_likelihood_per_group(data, params)
        mean, second = MODEL.posterior_moments(data, params)
        for i, (k, n) in enumerate(data[:8]):
            z0 = brute_force(k, n, params)
            assert abs(ll[i] - np.log(z0)) < 1e-9
            assert abs(mean[i] - brute_force(k, n, params, 1) / z0) < 1e-8
            assert abs(second[i] - brute_force(k, n, params, 2) / z0) < 1e-8
        assert MODEL.log_likelihood(data, params) == pytest.approx(ll.sum(), abs=1e-9)


def test_laplace_is_one_node_and_more_nodes_converge(data):
    exact = MODEL.log_likelihood_per_group(data, TRUTH)
    errors = [np.abs(LogisticRandomIntercept(n_nodes=q).log_likelihood_per_group(data, TRUTH) - exact).max()
              for q in (1, 5, 10, 20)]
    assert errors[0] > 1e-3  # the Laplace approximation is visibly off
    assert all(a > b for a, b in zip(errors, errors[1:]))  # and every refinement helps
    assert errors[-1] < 1e-7


def test_log_joint_is_binomial_times_normal(data):
    z = np.random.default_rng(1).normal(size=(3, data.shape[0]))
    k, n = data[:, 0], data[:, 1]
    expected = (stats.binom.logpmf(k, n, 1 / (1 + np.exp(-z)))
                + stats.norm.logpdf(z, TRUTH.mean, np.sqrt(TRUTH.variance)))
    np.testing.assert_allclose(MODEL.log_joint(data, TRUTH, z), expected, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(MODEL.log_joint(data, TRUTH, z[0]), expected[0], rtol=1e-12, atol=1e-10)


def test_posterior_mode_is_the_stationary_point(data):
    for params in (TRUTH, LogisticRandomInterceptParams(3.0, 20.0), LogisticRandomInterceptParams(-2.0, 0.01)):
        mode = MODEL.posterior_mode(data, params)
        k, n = data[:, 0], data[:, 1]
        grad = -(mode - params.mean) / params.variance + k - n / (1 + np.exp(-mode))
        assert np.abs(grad).max() < 1e-8 * (1 + np.abs(k).max() + 1 / params.variance)


def test_score_matches_central_differences(data):
    for params in (TRUTH, LogisticRandomInterceptParams(0.7, 0.4)):
        h = 1e-5
        g = MODEL.score(data, params)
        fd_mu = (MODEL.log_likelihood(data, LogisticRandomInterceptParams(params.mean + h, params.variance))
                 - MODEL.log_likelihood(data, LogisticRandomInterceptParams(params.mean - h, params.variance))) / (2 * h)
        fd_var = (MODEL.log_likelihood(data, LogisticRandomInterceptParams(params.mean, params.variance + h))
                  - MODEL.log_likelihood(data, LogisticRandomInterceptParams(params.mean, params.variance - h))) / (2 * h)
        np.testing.assert_allclose(g, [fd_mu, fd_var], rtol=1e-6, atol=1e-6)


def test_statistics_are_additive_over_groups(data):
    z = np.random.default_rng(2).normal(size=(4, data.shape[0]))
    whole = MODEL.expected_stats(data, z)
    parts = MODEL.expected_stats(data[:25], z[:, :25]) + MODEL.expected_stats(data[25:], z[:, 25:])
    for name in ("count", "sum_z", "sum_z2"):
        assert getattr(whole, name) == pytest.approx(getattr(parts, name), rel=1e-12)
    # the exact E-step too, and its log-likelihood adds
    s, ll = MODEL.e_step(data, TRUTH)
    s1, ll1 = MODEL.e_step(data[:25], TRUTH)
    s2, ll2 = MODEL.e_step(data[25:], TRUTH)
    assert ll == pytest.approx(ll1 + ll2, abs=1e-9)
    for name in ("count", "sum_z", "sum_z2"):
        assert getattr(s, name) == pytest.approx(getattr(s1 + s2, name), rel=1e-12)
    # scaling
    half = 0.5 * s
    assert half.sum_z == pytest.approx(0.5 * s.sum_z) and (s * 2.0).count == 2 * s.count


def test_statistics_of_m_draws_are_the_average_of_single_draw_statistics(data):
    z = np.random.default_rng(3).normal(size=(5, data.shape[0]))
    averaged = MODEL.expected_stats(data, z)
    singles = [MODEL.expected_stats(data, row) for row in z]
    assert averaged.sum_z == pytest.approx(np.mean([s.sum_z for s in singles]), rel=1e-12)
    assert averaged.sum_z2 == pytest.approx(np.mean([s.sum_z2 for s in singles]), rel=1e-12)
    assert averaged.count == data.shape[0]


def test_m_step_maximizes_the_complete_data_likelihood(data):
    z = np.random.default_rng(4).normal(0.3, 1.2, size=data.shape[0])
    best = MODEL.m_step(MODEL.expected_stats(data, z))
    assert best.mean == pytest.approx(z.mean()) and best.variance == pytest.approx(z.var())
    top = MODEL.log_joint(data, best, z).sum()
    for dmu, dvar in [(0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01), (0.1, 0.2)]:
        other = LogisticRandomInterceptParams(best.mean + dmu, best.variance + dvar)
        assert MODEL.log_joint(data, other, z).sum() < top


def test_exact_em_climbs_to_the_optimizer_maximum(data):
    fit = emlib.em(MODEL, data, LogisticRandomInterceptParams(1.0, 0.3), tol=1e-12, max_iter=2000)
    assert fit.converged
    assert np.all(np.diff(fit.log_likelihood) >= -1e-9 * np.abs(fit.log_likelihood[1:]))

    def negative(v):
        return -MODEL.log_likelihood(data, LogisticRandomInterceptParams(v[0], np.exp(v[1])))

    opt = optimize.minimize(negative, [0.0, 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    assert fit.params.mean == pytest.approx(opt.x[0], abs=1e-4)
    assert fit.params.variance == pytest.approx(np.exp(opt.x[1]), abs=1e-4)
    np.testing.assert_allclose(MODEL.score(data, fit.params), 0.0, atol=1e-4)


# ---------------------------------------------------------------------- samplers
def posterior_cdf(k, n, params):
    """The posterior CDF by the trapezoidal rule on a fine grid (brute force, independent of the model)."""
    f = posterior_density(k, n, params)
    width = 10 * np.sqrt(params.variance) + 10
    grid = np.linspace(params.mean - width, params.mean + width, 200_001)
    cumulative = integrate.cumulative_trapezoid(f(grid), grid, initial=0.0)
    cumulative /= cumulative[-1]
    return lambda values: np.interp(values, grid, cumulative)


GROUP_CASES = [(0, 8), (3, 7), (9, 9)]


@pytest.mark.parametrize("k, n", GROUP_CASES)
def test_rejection_sampler_draws_the_posterior(k, n):
    X = np.tile([k, n], (2, 1)).astype(float)
    draws = MODEL.sample_posterior(X, TRUTH, np.random.default_rng(5), 4000)[:, 0]
    result = stats.kstest(draws, posterior_cdf(k, n, TRUTH))
    assert result.pvalue > 1e-3


@pytest.mark.parametrize("k, n", GROUP_CASES)
def test_one_metropolis_sweep_leaves_the_posterior_invariant(k, n):
    # 4000 independent chains for the same group, started from exact posterior draws: after a
    # sweep they must still be distributed as the posterior (KS against the brute-force CDF).
    X = np.tile([k, n], (4000, 1)).astype(float)
    rng = np.random.default_rng(6)
    start = MODEL.sample_posterior(X, TRUTH, rng, 1)[0]
    for sweeps in (1, 5):
        draws, rate = MODEL.mcmc(X, TRUTH, start, rng, sweeps)
        assert 0.2 < rate < 0.9
        moved = np.mean(draws[-1] != start)
        assert moved > 0.2  # the kernel really moves the chains
        assert stats.kstest(draws[-1], posterior_cdf(k, n, TRUTH)).pvalue > 1e-3


def test_long_chains_match_the_quadrature_moments(data):
    # one chain per group, 20000 sweeps from the posterior modes; the means agree with the
    # quadrature moments within 5 batch-means standard errors
    X = data[:10]
    draws, _ = MODEL.mcmc(X, TRUTH, MODEL.posterior_mode(X, TRUTH), np.random.default_rng(7), 20000)
    draws = draws[500:]
    mean, second = MODEL.posterior_moments(X, TRUTH)
    for i in range(X.shape[0]):
        se = np.sqrt(emlib.mcmc.batch_means_variance(draws[:, i]) / draws.shape[0])
        assert abs(draws[:, i].mean() - mean[i]) < 5 * se
        se2 = np.sqrt(emlib.mcmc.batch_means_variance(draws[:, i] ** 2) / draws.shape[0])
        assert abs((draws[:, i] ** 2).mean() - second[i]) < 5 * se2


def test_a_chain_from_a_bad_start_forgets_it():
    X = np.tile([2, 6], (3000, 1)).astype(float)
    draws, _ = MODEL.mcmc(X, TRUTH, np.full(3000, 8.0), np.random.default_rng(8), 200)
    assert stats.kstest(draws[-1], posterior_cdf(2, 6, TRUTH)).pvalue > 1e-3


def test_samplers_are_reproducible_from_the_seed(data):
    a = MODEL.mcmc(data, TRUTH, MODEL.posterior_mode(data, TRUTH), np.random.default_rng(9), 30)[0]
    b = MODEL.mcmc(data, TRUTH, MODEL.posterior_mode(data, TRUTH), np.random.default_rng(9), 30)[0]
    np.testing.assert_array_equal(a, b)
    c = MODEL.sample_posterior(data, TRUTH, np.random.default_rng(9), 7)
    d = MODEL.sample_posterior(data, TRUTH, np.random.default_rng(9), 7)
    np.testing.assert_array_equal(c, d)
    assert c.shape == (7, data.shape[0]) and np.all(np.isfinite(c))


def test_mcmc_blocks_do_not_change_the_chain(data, monkeypatch):
    # drawing the random numbers in blocks is an implementation detail: the chain must be the
    # same Markov chain whatever the block size (statistically); here: valid shapes across blocks
    from emlib.models import logistic_random_intercept as module
    monkeypatch.setattr(module, "_SWEEPS_PER_BLOCK", 7)
    draws, rate = MODEL.mcmc(data, TRUTH, MODEL.posterior_mode(data, TRUTH), np.random.default_rng(10), 30)
    assert draws.shape == (30, data.shape[0]) and 0 < rate < 1
    assert np.all(np.isfinite(draws))


def test_simulation_shapes_and_ranges():
    X, z = MODEL.sample(TRUTH, [1, 5, 30], np.random.default_rng(11))
    assert X.shape == (3, 2) and z.shape == (3,)
    np.testing.assert_array_equal(X[:, 1], [1, 5, 30])
    assert np.all((X[:, 0] >= 0) & (X[:, 0] <= X[:, 1]))


def test_init_params_is_valid_and_seeded(data):
    a = MODEL.init_params(data, np.random.default_rng(12))
    b = MODEL.init_params(data, np.random.default_rng(12))
    assert a == b and a.variance > 0


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("X, match", [
    (np.array([[1.0, 2.0, 3.0]]), "shape"),
    (np.array([1.0, 2.0]), "shape"),
    (np.array([[1.0, 2.0], [np.nan, 3.0]]), "NaN"),
    (np.array([[1.0, 2.0], [np.inf, 3.0]]), "NaN or infinite"),
    (np.array([[3.0, 2.0], [1.0, 3.0]]), "between 0 and the number of trials"),
    (np.array([[-1.0, 2.0], [1.0, 3.0]]), "between 0"),
    (np.array([[0.0, 0.0], [1.0, 3.0]]), "at least one trial"),
    (np.array([[0.5, 2.0], [1.0, 3.0]]), "whole-number"),
    (np.array([[1.0, 2.0]]), "two groups"),
    ("abc", "shape|array"),
])
def test_bad_data_is_refused(X, match):
    with pytest.raises(ValueError, match=match):
        MODEL.check_data(X)


@pytest.mark.parametrize("mean, variance", [(np.nan, 1.0), (0.0, 0.0), (0.0, -1.0), (0.0, np.inf),
                                            (np.inf, 1.0), ("a", 1.0)])
def test_bad_parameters_are_refused(mean, variance):
    with pytest.raises(ValueError):
        LogisticRandomInterceptParams(mean, variance)


def test_bad_arguments_of_the_methods_are_refused(data):
    with pytest.raises(ValueError, match="LogisticRandomInterceptParams"):
        MODEL.log_likelihood(data, (0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        MODEL.expected_stats(data, np.zeros(data.shape[0] + 1))
    with pytest.raises(ValueError, match="finite"):
        MODEL.expected_stats(data, np.full(data.shape[0], np.nan))
    with pytest.raises(ValueError, match="tau\\^2"):
        MODEL.m_step(MODEL.expected_stats(data, np.ones(data.shape[0])))
    with pytest.raises(ValueError, match="LogisticRandomInterceptStats"):
        MODEL.m_step((1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="positive count"):
        MODEL.m_step(LogisticRandomInterceptStats(0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="n_steps"):
        MODEL.mcmc(data, TRUTH, np.zeros(data.shape[0]), np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="start"):
        MODEL.mcmc(data, TRUTH, np.zeros((2, data.shape[0])), np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="Generator"):
        MODEL.mcmc(data, TRUTH, np.zeros(data.shape[0]), 0, 1)
    with pytest.raises(ValueError, match="n_samples"):
        MODEL.sample_posterior(data, TRUTH, np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="trials"):
        MODEL.sample(TRUTH, [1, 0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_nodes"):
        LogisticRandomIntercept(n_nodes=0)
    with pytest.raises(ValueError, match="proposal_scale"):
        LogisticRandomIntercept(proposal_scale=-1.0)
