"""emlib.monte_carlo: configuration sampling, the importance-sampling marginal, its exact
relative variance, and the score-function and reparameterization gradient estimators.

Statistical tests use fixed seeds, so they are deterministic; their tolerances are a few standard
errors computed from exact moments, so that a correct implementation passes with near certainty
and a wrong one (a bias of a few standard errors) fails.
"""
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from emlib import monte_carlo as mc


@pytest.fixture
def small_problem():
    """log p(x_n, z_n = k) for N = 4 points, K = 3 values, and a proposal of full support."""
    rng = np.random.default_rng(2024)
    log_joint = rng.normal(-2.0, 1.0, size=(4, 3))
    proposal = rng.dirichlet(np.ones(3), size=4)
    return log_joint, proposal


# ---------------------------------------------------------------------- sample_configurations
def test_sample_configurations_shape_dtype_and_range():
    proposal = np.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    z = mc.sample_configurations(proposal, 50, np.random.default_rng(0))
    assert z.shape == (50, 2)
    assert np.issubdtype(z.dtype, np.integer)
    assert z.min() >= 0 and z.max() <= 2
    assert np.all(z[:, 1] == 0)  # a point with a one-hot proposal always gets that value


def test_sample_configurations_frequencies_match_the_proposal():
    proposal = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    S = 40000
    z = mc.sample_configurations(proposal, S, np.random.default_rng(1))
    for n in range(2):
        freq = np.bincount(z[:, n], minlength=3) / S
        se = np.sqrt(proposal[n] * (1 - proposal[n]) / S)
        # 5 standard errors per cell: a correct sampler fails with probability < 1e-5 per cell
        assert np.all(np.abs(freq - proposal[n]) < 5 * se)


def test_sample_configurations_with_a_shared_vector():
    z = mc.sample_configurations([0.3, 0.7], 2000, np.random.default_rng(2), n_points=5)
    assert z.shape == (2000, 5)
    assert set(np.unique(z)) == {0, 1}


def test_sample_configurations_is_the_inverse_cdf_of_its_seeds_uniforms():
    """Reproducible: z[s, n] = 0 exactly when the (s, n)-th uniform of the seed's generator is below
    r_n(0) = 0.3 (inversion of the categorical distribution)."""
    z = mc.sample_configurations([0.3, 0.7], 10, np.random.default_rng(3), n_points=4)
    u = np.random.default_rng(3).random((10, 4))
    np.testing.assert_array_equal(z, (u >= 0.3).astype(int))


@pytest.mark.parametrize("proposal, kwargs, match", [
    ([0.3, 0.7], {}, "needs the number of points"),
    ([[0.3, 0.6]], {}, "sum to one"),
    ([[-0.1, 1.1]], {}, "non-negative"),
    ([0.5, 0.6], {"n_points": 2}, "sum to one"),
    ([[0.5, 0.5]], {"n_points": 3}, "1 rows but there are 3"),
    ([[np.nan, 1.0]], {}, "NaN or infinite"),
])
def test_sample_configurations_rejects_bad_proposals(proposal, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mc.sample_configurations(proposal, 5, np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("n_samples", [0, -1, 2.5, True])
def test_sample_configurations_rejects_bad_sample_sizes(n_samples):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        mc.sample_configurations([[0.5, 0.5]], n_samples, np.random.default_rng(0))


def test_sample_configurations_needs_a_generator():
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        mc.sample_configurations([[0.5, 0.5]], 3, 42)


# ---------------------------------------------------------------------- log_prob_of_configurations
def test_log_prob_of_configurations_matches_a_loop(small_problem):
    log_joint, _ = small_problem
    z = np.array([[0, 1, 2, 0], [2, 2, 2, 2]])
    expected = [sum(log_joint[n, z[s, n]] for n in range(4)) for s in range(2)]
    np.testing.assert_allclose(mc.log_prob_of_configurations(log_joint, z), expected, rtol=1e-14)


@pytest.mark.parametrize("z, match", [
    (np.array([[0, 1, 3, 0]]), "integers in 0..2"),
    (np.array([[0, 1, -1, 0]]), "integers in 0..2"),
    (np.array([[0.0, 1.0, 2.0, 0.0]]), "integers in 0..2"),
    (np.array([0, 1, 2, 0]), r"shape \(S, N\)"),
    (np.array([[0, 1, 2]]), r"shape \(S, N\)"),
])
def test_log_prob_of_configurations_rejects_bad_z(small_problem, z, match):
    with pytest.raises(ValueError, match=match):
        mc.log_prob_of_configurations(small_problem[0], z)


# ---------------------------------------------------------------------- log_mean_exp
def test_log_mean_exp_is_the_log_of_the_mean():
    a = np.array([-1.0, 0.5, 2.0])
    assert mc.log_mean_exp(a) == pytest.approx(np.log(np.mean(np.exp(a))), rel=1e-14)


def test_log_mean_exp_does_not_overflow():
    assert mc.log_mean_exp([1000.0, 1000.0]) == pytest.approx(1000.0, rel=1e-15)
    assert mc.log_mean_exp([-1000.0, -np.inf]) == pytest.approx(-1000.0 - np.log(2), rel=1e-15)


def test_log_mean_exp_along_an_axis():
    a = np.log(np.array([[1.0, 3.0], [2.0, 6.0]]))
    np.testing.assert_allclose(mc.log_mean_exp(a, axis=1), np.log([2.0, 4.0]), rtol=1e-14)
    np.testing.assert_allclose(mc.log_mean_exp(a, axis=0), np.log([1.5, 4.5]), rtol=1e-14)


def test_log_mean_exp_rejects_empty_input():
    with pytest.raises(ValueError, match="at least one value"):
        mc.log_mean_exp([])


# ---------------------------------------------------------------------- the marginal likelihood
def _enumerate(log_joint, proposal):
    """All K^N configurations with their exact weights w = p(x, z) / r(z) and probabilities r(z)."""
    N, K = log_joint.shape
    configs = np.array(list(itertools.product(range(K), repeat=N)))
    log_w = mc.log_prob_of_configurations(log_joint, configs) - mc.log_prob_of_configurations(np.log(proposal), configs)
    log_r = mc.log_prob_of_configurations(np.log(proposal), configs)
    return log_w, log_r


def test_relative_second_moment_matches_brute_force_enumeration(small_problem):
    log_joint, proposal = small_problem
    log_w, log_r = _enumerate(log_joint, proposal)
    log_p = logsumexp(log_joint, axis=1).sum()
    assert logsumexp(log_r + log_w) == pytest.approx(log_p, rel=1e-12)  # E_r[w] = p(x): unbiased
    expected = logsumexp(log_r + 2 * log_w) - 2 * log_p                  # log E_r[w^2] / p^2
    assert mc.log_relative_second_moment(log_joint, proposal) == pytest.approx(expected, rel=1e-12)
    assert mc.relative_variance(log_joint, proposal, 7) == pytest.approx(np.expm1(expected) / 7, rel=1e-11)


def test_posterior_proposal_gives_the_exact_marginal(small_problem):
    log_joint, _ = small_problem
    posterior = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    log_p = logsumexp(log_joint, axis=1).sum()
    log_w = mc.log_importance_weights(log_joint, posterior, 25, np.random.default_rng(0))
    np.testing.assert_allclose(log_w, log_p, rtol=1e-12)
    assert mc.log_marginal_estimate(log_joint, posterior, 25, np.random.default_rng(0)) == pytest.approx(log_p, rel=1e-12)
    assert abs(mc.log_relative_second_moment(log_joint, posterior)) < 1e-12


def test_log_marginal_estimate_mean_matches_exact_value(small_problem):
    """The estimate p_hat / p averages to one; tolerance 4 standard errors from the exact variance."""
    log_joint, proposal = small_problem
    S, R = 50, 400
    log_p = logsumexp(log_joint, axis=1).sum()
    rng = np.random.default_rng(5)
    ratios = np.exp([mc.log_marginal_estimate(log_joint, proposal, S, rng) - log_p for _ in range(R)])
    se = np.sqrt(mc.relative_variance(log_joint, proposal, S) / R)
    assert abs(ratios.mean() - 1.0) < 4 * se


def test_a_proposal_vector_is_shared_by_all_points(small_problem):
    log_joint, _ = small_problem
    vector = np.array([0.2, 0.3, 0.5])
    assert mc.log_relative_second_moment(log_joint, vector) == pytest.approx(
        mc.log_relative_second_moment(log_joint, np.tile(vector, (4, 1))), rel=1e-14)


def test_impossible_latent_values_are_allowed_with_zero_proposal():
    log_joint = np.array([[0.0, -np.inf], [-1.0, -2.0]])
    proposal = np.array([[1.0, 0.0], [0.5, 0.5]])
    log_w = mc.log_importance_weights(log_joint, proposal, 10, np.random.default_rng(0))
    # z_0 = 0 always (weight e^0 / 1); z_1 = k with weight e^{-1-k} / 0.5
    possible = np.array([-1.0, -2.0]) - np.log(0.5)
    assert np.all(np.min(np.abs(log_w[:, None] - possible[None, :]), axis=1) < 1e-14)
    c1 = (np.exp(-2.0) / 0.5 + np.exp(-4.0) / 0.5) / (np.exp(-1.0) + np.exp(-2.0)) ** 2   # c_0 = 1
    assert mc.log_relative_second_moment(log_joint, proposal) == pytest.approx(np.log(c1), rel=1e-13)


def test_zero_proposal_where_the_model_has_mass_is_refused(small_problem):
    log_joint, proposal = small_problem
    bad = proposal.copy()
    bad[1] = [0.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="probability 0 to z_1 = 0"):
        mc.log_importance_weights(log_joint, bad, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="biased"):
        mc.log_relative_second_moment(log_joint, bad)


@pytest.mark.parametrize("log_joint, match", [
    (np.zeros(3), r"shape \(N, K\)"),
    (np.array([[0.0, np.nan]]), "NaN or \\+inf"),
    (np.array([[0.0, np.inf]]), "NaN or \\+inf"),
    (np.array([[-np.inf, -np.inf], [0.0, 0.0]]), "all -inf"),
])
def test_bad_log_joint_is_refused(log_joint, match):
    with pytest.raises(ValueError, match=match):
        mc.log_relative_second_moment(log_joint, [0.5, 0.5])


def test_mismatched_shapes_are_refused(small_problem):
    log_joint, _ = small_problem
    with pytest.raises(ValueError, match="must agree"):
        mc.log_relative_second_moment(log_joint, np.full((4, 2), 0.5))


def test_relative_variance_overflows_to_inf_not_an_error():
    log_joint = np.tile([0.0, -30.0], (1500, 1))   # c_n is about 2: 2^1500 overflows a float
    assert mc.relative_variance(log_joint, [0.5, 0.5]) == np.inf
    c = (1 + np.exp(-60.0)) / 0.5 / (1 + np.exp(-30.0)) ** 2       # c_n = sum_k p_k^2 / r_k / p^2
    assert mc.log_relative_second_moment(log_joint, [0.5, 0.5]) == pytest.approx(1500 * np.log(c), rel=1e-12)


# ---------------------------------------------------------------------- gradients
def test_reparameterization_of_a_linear_function_is_exact():
    c = np.array([1.0, -2.0, 0.5])
    g = mc.reparameterization_gradient(lambda z: np.tile(c, (z.shape[0], 1)), np.zeros(3), 2.0, 7,
                                       np.random.default_rng(0))
    assert g.shape == (7, 3)
    np.testing.assert_array_equal(g, np.tile(c, (7, 1)))


def test_reparameterization_uses_the_scale():
    """For f(z) = sum z^2, grad f = 2z: mean 2 mu and variance 4 sigma^2 per coordinate."""
    mu, sigma, S = np.array([1.0, -1.0]), np.array([0.5, 2.0]), 40000
    g = mc.reparameterization_gradient(lambda z: 2 * z, mu, sigma, S, np.random.default_rng(1))
    se = np.sqrt(4 * sigma**2 / S)
    assert np.all(np.abs(g.mean(axis=0) - 2 * mu) < 4 * se)  # 4 standard errors
    # the sample variance of a Gaussian has relative standard error sqrt(2 / S) < 0.01
    np.testing.assert_allclose(g.var(axis=0), 4 * sigma**2, rtol=0.04)


def test_score_function_is_unbiased_for_a_quadratic():
    """f(z) = sum z^2 under N(mu, sigma^2): gradient 2 mu; tolerance from the sample's own spread."""
    mu, sigma, S = np.array([1.0, -0.5]), np.array([0.7, 1.3]), 100000
    g = mc.score_function_gradient(lambda z: (z**2).sum(axis=1), mu, sigma, S, np.random.default_rng(2))
    se = g.std(axis=0) / np.sqrt(S)
    assert np.all(np.abs(g.mean(axis=0) - 2 * mu) < 4 * se)


def test_score_function_baseline_shifts_each_sample_by_a_mean_zero_term():
    mu, S, b = np.zeros(3), 5000, 3.0
    f = lambda z: z.sum(axis=1) + 10.0
    g0 = mc.score_function_gradient(f, mu, 1.5, S, np.random.default_rng(3))
    gb = mc.score_function_gradient(f, mu, 1.5, S, np.random.default_rng(3), baseline=b)
    # same seed, same draws: g0 - gb = b (z - mu) / sigma^2 = b eps / sigma, never zero
    diff = g0 - gb
    assert np.all(diff != 0)
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * (b / 1.5) / np.sqrt(S))
    assert np.all(gb.var(axis=0) < g0.var(axis=0))  # b moves f towards 0 here: lower variance


@pytest.mark.parametrize("kwargs, match", [
    ({"mean": np.zeros((2, 2))}, "mean must have shape"),
    ({"scale": 0.0}, "scale .* must be positive"),
    ({"scale": [1.0, -1.0]}, "scale .* must be positive"),
    ({"scale": [1.0, 1.0, 1.0]}, "scale must have shape"),
    ({"n_samples": 0}, "n_samples must be a positive integer"),
    ({"rng": 0}, "numpy.random.Generator"),
])
def test_gradient_estimators_reject_bad_input(kwargs, match):
    args = {"mean": np.zeros(2), "scale": 1.0, "n_samples": 5, "rng": np.random.default_rng(0)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mc.score_function_gradient(lambda z: z.sum(axis=1), args["mean"], args["scale"], args["n_samples"], args["rng"])
    with pytest.raises(ValueError, match=match):
        mc.reparameterization_gradient(lambda z: z, args["mean"], args["scale"], args["n_samples"], args["rng"])


def test_gradient_estimators_check_the_function_output_shapes():
    with pytest.raises(ValueError, match=r"f must map an \(S, D\) array"):
        mc.score_function_gradient(lambda z: z, np.zeros(2), 1.0, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"grad_f must map"):
        mc.reparameterization_gradient(lambda z: z.sum(axis=1), np.zeros(2), 1.0, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="baseline must be a finite number"):
        mc.score_function_gradient(lambda z: z.sum(axis=1), np.zeros(2), 1.0, 5, np.random.default_rng(0),
                                   baseline=np.nan)


# ---------------------------------------------------------------------- renyi2_divergences
def _all_configurations(log_joint, proposal):
    """Every configuration of N points with K values: (configurations, log p(x, z), log g(z))."""
    N, K = log_joint.shape
    configs = np.array(list(itertools.product(range(K), repeat=N)))
    points = np.arange(N)
    return configs, log_joint[points, configs].sum(axis=1), np.log(proposal)[points, configs].sum(axis=1)


def test_renyi2_divergences_are_the_per_point_divergences(small_problem):
    log_joint, proposal = small_problem
    posterior = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    expected = np.log(np.sum(posterior**2 / proposal, axis=1))           # D_2 from its definition
    got = mc.renyi2_divergences(log_joint, proposal)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.shape == (4,) and np.all(got > 0)
    assert got.sum() == pytest.approx(mc.log_relative_second_moment(log_joint, proposal), rel=1e-12)
    np.testing.assert_allclose(mc.renyi2_divergences(log_joint, posterior), 0.0, atol=1e-12)


def test_relative_variance_is_exp_renyi2_of_the_joint_posterior_minus_one(small_problem):
    """exp(D_2(p(z | x) || g)) - 1 over all K^N configurations equals the relative variance of
    one weight, and D_2 of the joint is the sum of the per-point divergences (independence)."""
    log_joint, proposal = small_problem
    _, log_pxz, log_g = _all_configurations(log_joint, proposal)
    log_p = logsumexp(log_pxz)
    log_post = log_pxz - log_p
    d2_joint = logsumexp(2 * log_post - log_g)
    w_over_p = np.exp(log_pxz - log_g - log_p)
    relvar = np.sum(np.exp(log_g) * w_over_p**2) - np.sum(np.exp(log_g) * w_over_p) ** 2
    assert d2_joint == pytest.approx(mc.renyi2_divergences(log_joint, proposal).sum(), rel=1e-12)
    assert np.expm1(d2_joint) == pytest.approx(relvar, rel=1e-10)
    assert mc.relative_variance(log_joint, proposal) == pytest.approx(relvar, rel=1e-10)


def test_renyi2_divergences_reject_a_proposal_missing_support():
    with pytest.raises(ValueError, match="probability 0"):
        mc.renyi2_divergences(np.log([[0.2, 0.3]]), [[1.0, 0.0]])


# ---------------------------------------------------------------------- the per-point estimator
def test_per_point_relative_variance_formula(small_problem):
    log_joint, proposal = small_problem
    c = np.exp(mc.renyi2_divergences(log_joint, proposal))
    for m in (1, 7, 1000):
        assert mc.per_point_relative_variance(log_joint, proposal, m) == pytest.approx(
            np.prod(1 + (c - 1) / m) - 1, rel=1e-12)
    # one draw per point is one whole configuration: the two estimators coincide
    assert mc.per_point_relative_variance(log_joint, proposal, 1) == pytest.approx(
        mc.relative_variance(log_joint, proposal, 1), rel=1e-12)
    # with m > 1 the per-point product beats averaging m whole configurations
    assert mc.per_point_relative_variance(log_joint, proposal, 10) < mc.relative_variance(
        log_joint, proposal, 10)


def test_per_point_estimator_is_unbiased_with_the_stated_variance(small_problem):
    """R runs of the per-point estimator: the mean of p_hat / p is 1 within 4 standard errors
    sqrt(relvar / R), and the sample second moment matches 1 + relvar within 4 standard errors
    computed from the exact fourth moment prod_n E[(p_hat_n / p_n)^4]."""
    log_joint, proposal = small_problem
    m, R = 5, 4000
    log_p = logsumexp(log_joint, axis=1).sum()
    rng = np.random.default_rng(21)
    ratios = np.exp([mc.per_point_log_marginal_estimate(log_joint, proposal, m, rng) - log_p
                     for _ in range(R)])
    relvar = mc.per_point_relative_variance(log_joint, proposal, m)
    assert relvar > 0.1                                          # far from the trivial case
    assert abs(ratios.mean() - 1) < 4 * np.sqrt(relvar / R)
    # exact fourth moment of the mean of m i.i.d. ratios y_s = w_n / p_n, per point
    post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    mu = [np.sum(post**j / proposal ** (j - 1), axis=1) for j in (1, 2, 3, 4)]   # E[y^j]
    fourth_of_mean = (mu[3] + 4 * (m - 1) * mu[2] * mu[0] + 3 * (m - 1) * mu[1] ** 2
                      + 6 * (m - 1) * (m - 2) * mu[1] * mu[0] ** 2
                      + (m - 1) * (m - 2) * (m - 3) * mu[0] ** 4) / m**3
    second, fourth = 1 + relvar, np.prod(fourth_of_mean)
    assert abs(np.mean(ratios**2) - second) < 4 * np.sqrt((fourth - second**2) / R)


def test_per_point_estimate_needs_a_valid_sample_size(small_problem):
    log_joint, proposal = small_problem
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        mc.per_point_log_marginal_estimate(log_joint, proposal, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        mc.per_point_relative_variance(log_joint, proposal, 2.5)


# ---------------------------------------------------------------------- self-normalized weights
def test_self_normalized_weights_and_effective_sample_size():
    lw = np.log([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(mc.self_normalized_weights(lw), [0.1, 0.2, 0.3, 0.4], rtol=1e-12)
    np.testing.assert_allclose(mc.self_normalized_weights(lw + 800.0), [0.1, 0.2, 0.3, 0.4], rtol=1e-12)
    assert mc.effective_sample_size(lw) == pytest.approx(100 / 30, rel=1e-12)       # 10^2 / 30
    assert mc.effective_sample_size(np.zeros(50)) == pytest.approx(50, rel=1e-12)
    assert mc.effective_sample_size([0.0, -800.0, -np.inf]) == pytest.approx(1.0, rel=1e-12)


def test_effective_sample_size_approaches_S_exp_minus_renyi2(small_problem):
    """For S draws from g, ESS / S -> 1 / E_g[(w / p)^2] = exp(-D_2(p(z | x) || g))."""
    log_joint, proposal = small_problem
    posterior = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    g = 0.5 * posterior + 0.5 * proposal          # moderate D_2, so the weights' moments exist
    S = 200000
    log_w = mc.log_importance_weights(log_joint, g, S, np.random.default_rng(22))
    expected = np.exp(-mc.log_relative_second_moment(log_joint, g))
    assert 0.2 < expected < 0.8
    assert mc.effective_sample_size(log_w) / S == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("log_weights, match", [
    ([], "non-empty 1-D"),
    ([[0.0, 1.0]], "non-empty 1-D"),
    ([0.0, np.nan], "NaN or \\+inf"),
    ([0.0, np.inf], "NaN or \\+inf"),
    ([-np.inf, -np.inf], "every weight is zero"),
])
def test_weights_reject_bad_input(log_weights, match):
    with pytest.raises(ValueError, match=match):
        mc.self_normalized_weights(log_weights)
    with pytest.raises(ValueError, match=match):
        mc.effective_sample_size(log_weights)
