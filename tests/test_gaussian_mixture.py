"""emlib.GaussianMixture: densities, agreement with scikit-learn, monotone EM, input checks."""
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import emlib
from emlib import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats
from monotone import assert_monotone

import sklearn.mixture as sklearn_mixture  # a declared test dependency: missing, it fails loudly


def random_params(rng, K, D, covariance_type):
    weights = rng.dirichlet(np.ones(K))
    means = rng.normal(scale=3.0, size=(K, D))
    if covariance_type == "full":
        A = rng.normal(size=(K, D, D))
        covariances = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    else:
        covariances = rng.uniform(0.3, 3.0, size=(K, D))
    return GaussianMixtureParams(weights, means, covariances)


# ---------------------------------------------------------------- densities
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("D", [1, 3])
def test_log_joint_matches_scipy(covariance_type, D):
    rng = np.random.default_rng(D)
    K = 3
    params = random_params(rng, K, D, covariance_type)
    X = rng.normal(scale=3.0, size=(50, D))
    model = GaussianMixture(K, covariance_type)
    got = model.log_joint(X, params)
    for k in range(K):
        cov = params.covariances[k] if covariance_type == "full" else np.diag(params.covariances[k])
        want = np.log(params.weights[k]) + multivariate_normal(params.means[k], cov).logpdf(X).reshape(-1)
        np.testing.assert_allclose(got[:, k], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_likelihood_and_posterior_are_consistent(covariance_type):
    rng = np.random.default_rng(7)
    params = random_params(rng, 4, 2, covariance_type)
    model = GaussianMixture(4, covariance_type)
    X = rng.normal(scale=3.0, size=(200, 2))
    joint = model.log_joint(X, params)
    direct = np.log(np.exp(joint).sum(axis=1))
    assert model.log_likelihood(X, params) == pytest.approx(direct.sum(), rel=1e-12)
    np.testing.assert_allclose(model.log_likelihood_per_point(X, params), direct, rtol=1e-12)
    q = model.posterior(X, params)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(q, np.exp(joint) / np.exp(joint).sum(axis=1, keepdims=True), rtol=1e-10)


def test_posterior_is_finite_far_from_every_component():
    """Log space: a point 1e3 standard deviations away still gets finite responsibilities."""
    model = GaussianMixture(2, "diag")
    params = GaussianMixtureParams([0.5, 0.5], [[0.0], [1.0]], [[1.0], [1.0]])
    q = model.posterior(np.array([[1000.0]]), params)
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(q, [[0.0, 1.0]], atol=1e-12)


# ---------------------------------------------------------------- sufficient statistics
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_expected_stats_are_additive_and_scale(covariance_type):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 3))
    q = rng.dirichlet(np.ones(2), size=100)
    model = GaussianMixture(2, covariance_type)
    whole = model.expected_stats(X, q)
    parts = model.expected_stats(X[:37], q[:37]) + model.expected_stats(X[37:], q[37:])
    for a, b in zip((whole.counts, whole.sum_x, whole.sum_xx), (parts.counts, parts.sum_x, parts.sum_xx)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    half = 0.5 * whole
    np.testing.assert_allclose(half.sum_x, whole.sum_x / 2)
    # the definitions, written out naively
    np.testing.assert_allclose(whole.counts, q.sum(axis=0))
    np.testing.assert_allclose(whole.sum_x[1], (q[:, 1:2] * X).sum(axis=0))
    outer = np.einsum("n,ni,nj->ij", q[:, 1], X, X)
    want = outer if covariance_type == "full" else np.diag(outer)
    np.testing.assert_allclose(whole.sum_xx[1], want, rtol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, None])
def test_e_step_does_not_depend_on_chunk_size(faithful, chunk_size):
    reference = GaussianMixture(3, chunk_size=10_000)
    params = reference.init_params(faithful, np.random.default_rng(1))
    s0, ll0 = reference.e_step(faithful, params)
    s1, ll1 = GaussianMixture(3, chunk_size=chunk_size).e_step(faithful, params)
    assert ll1 == pytest.approx(ll0, rel=1e-13)
    np.testing.assert_allclose(s1.sum_xx, s0.sum_xx, rtol=1e-12)


# ---------------------------------------------------------------- agreement with scikit-learn
def sklearn_fit(X, init, covariance_type, max_iter, reg_covar=1e-6):
    precisions = np.linalg.inv(init.covariances) if covariance_type == "full" else 1.0 / init.covariances
    sk = sklearn_mixture.GaussianMixture(
        n_components=init.n_components, covariance_type=covariance_type, tol=0, max_iter=max_iter,
        reg_covar=reg_covar, weights_init=init.weights, means_init=init.means, precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges, by design
        sk.fit(X)
    return sk


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_parameters_as_sklearn_from_the_same_start(covariance_type, seed):
    rng = np.random.default_rng(seed)
    truth = random_params(rng, 3, 3, covariance_type)
    X, _ = GaussianMixture(3, covariance_type).sample(truth, 600, rng)
    model = GaussianMixture(3, covariance_type)
    init = model.init_params(X, np.random.default_rng(seed + 10))
    ours = emlib.em(model, X, init, max_iter=40, tol=0)
    sk = sklearn_fit(X, init, covariance_type, max_iter=40)
    # 1e-8 relative: both compute the same closed-form updates in double precision; the only
    # differences are the order of floating-point operations, which over 40 iterations stay
    # many orders of magnitude below this.
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-8, atol=1e-10)
    assert ours.log_likelihood[-1] == pytest.approx(sk.score(X) * len(X), rel=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_same_parameters_as_sklearn_on_old_faithful(faithful, covariance_type):
    model = GaussianMixture(2, covariance_type)
    init = model.init_params(faithful, np.random.default_rng(4))
    ours = emlib.em(model, faithful, init, max_iter=100, tol=0)
    sk = sklearn_fit(faithful, init, covariance_type, max_iter=100)
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- monotonicity (property test)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 4), D=st.integers(1, 3),
       per_component=st.integers(15, 60), covariance_type=st.sampled_from(["full", "diag"]))
def test_log_likelihood_never_decreases(seed, K, D, per_component, covariance_type):
    """Every EM step, on random data and random starts: no decrease beyond 1e-10 relative.

    Pure EM (reg_covar=0) so that the M-step is the exact maximizer of Q. A start that drives
    a component onto a single point ends in a ValueError (tested below), not in a decrease;
    such examples are discarded.
    """
    rng = np.random.default_rng(seed)
    truth = random_params(rng, K, D, covariance_type)
    X, _ = GaussianMixture(K, covariance_type).sample(truth, K * per_component, rng)
    model = GaussianMixture(K, covariance_type, reg_covar=0.0)
    init = model.init_params(X, rng)
    try:
        trace = emlib.em(model, X, init, max_iter=30, tol=0).log_likelihood
    except ValueError as exc:
        assert "collapsed" in str(exc) or "emptied" in str(exc)
        assume(False)
    assert_monotone(trace)


def test_reg_covar_makes_the_m_step_inexact():
    """The documented caveat: with reg_covar > 0 the M-step is not the exact maximizer of Q, so
    the fit stops at a lower likelihood than pure EM from the same start."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2))
    init = GaussianMixture(2).init_params(X, np.random.default_rng(1))
    exact = emlib.em(GaussianMixture(2, reg_covar=0.0), X, init, max_iter=100, tol=0).log_likelihood
    perturbed = emlib.em(GaussianMixture(2, reg_covar=0.3), X, init, max_iter=100, tol=0).log_likelihood
    assert np.all(np.diff(exact) >= -1e-10 * np.abs(exact[1:]))
    assert perturbed[-1] < exact[-1] - 1.0


# ---------------------------------------------------------------- initialization and sampling
def kmeans_plus_plus_by_hand(X, K, seed):
    """k-means++ written out: a uniform first index, then each next index with probability
    proportional to the squared distance to the nearest chosen point, from one generator."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(X)))]
    for _ in range(1, K):
        d2 = np.min([np.sum((X - X[i]) ** 2, axis=1) for i in chosen], axis=0)
        chosen.append(int(rng.choice(len(X), p=d2 / d2.sum())))
    return X[chosen]


def test_init_params_is_the_kmeans_plus_plus_start_of_its_seed(faithful):
    """Reproducible from a seed: the means are the k-means++ seeds computed by hand with the same
    seed (data points, distinct); another seed gives other means; the weights are equal."""
    model = GaussianMixture(4)
    a = model.init_params(faithful, np.random.default_rng(5))
    np.testing.assert_array_equal(a.means, kmeans_plus_plus_by_hand(faithful, 4, 5))
    assert len({tuple(m) for m in a.means}) == 4
    assert not np.array_equal(a.means, model.init_params(faithful, np.random.default_rng(6)).means)
    np.testing.assert_allclose(a.weights, 0.25)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_the_starting_covariance_is_the_biased_sample_covariance_plus_reg_covar(faithful, covariance_type):
    """sum_n (x_n - xbar)(x_n - xbar)^T / N + reg_covar I, with N (not N - 1) in the denominator."""
    model = GaussianMixture(3, covariance_type, reg_covar=0.01)
    start = model.init_params(faithful, np.random.default_rng(0))
    biased = np.cov(faithful.T, bias=True) + 0.01 * np.eye(2)
    want = biased if covariance_type == "full" else np.diag(biased)
    for covariance in start.covariances:
        np.testing.assert_allclose(covariance, want, rtol=1e-12)


def test_kmeans_plus_plus_draws_with_probability_proportional_to_the_squared_distance():
    """Points at 0, 1 and 10 (1-D), two seeds. With the first seed at 0 the second is 10 with
    probability 100/101 (squared distances 1 and 100); distances would give 10/11. Over all first
    seeds: P(the pair {0, 10} or {1, 10}) = (100/101 + 81/82 + 1) / 3 = 0.9925 with squared distances,
    (10/11 + 9/10 + 1) / 3 = 0.9364 with distances. 1500 runs: standard error 0.0022."""
    X = np.array([[0.0], [1.0], [10.0]])
    model = GaussianMixture(2, "diag")
    far = [10.0 in model.init_params(X, np.random.default_rng(seed)).means for seed in range(1500)]
    assert np.mean(far) == pytest.approx((100 / 101 + 81 / 82 + 1) / 3, abs=5 * 0.0022)


def test_kmeans_plus_plus_prefers_far_points():
    """With two tight far-apart clusters, the second seed lands in the other cluster."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.01, (500, 1)), rng.normal(100, 0.01, (5, 1))])
    model = GaussianMixture(2, "diag")
    hits = 0
    for seed in range(20):
        means = model.init_params(X, np.random.default_rng(seed)).means.ravel()
        hits += (means.min() < 50) and (means.max() > 50)
    assert hits == 20


def test_sample_recovers_the_parameters():
    rng = np.random.default_rng(8)
    params = GaussianMixtureParams([0.3, 0.7], [[0.0, 0.0], [4.0, 1.0]],
                                   [[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.5]]])
    X, z = GaussianMixture(2).sample(params, 40_000, rng)
    assert np.mean(z == 1) == pytest.approx(0.7, abs=0.01)
    np.testing.assert_allclose(np.cov(X[z == 0].T), params.covariances[0], atol=0.05)


# ---------------------------------------------------------------- fixed parameters
def test_fixed_parameters_stay_fixed(faithful):
    x = faithful[:, [1]]
    model = GaussianMixture(2, "diag", fixed={"weights": [0.3, 0.7], "covariances": [[30.0], [40.0]]})
    init = model.init_params(x, np.random.default_rng(0))
    result = emlib.em(model, x, init, max_iter=50)
    np.testing.assert_array_equal(result.params.weights, [0.3, 0.7])
    np.testing.assert_array_equal(result.params.covariances, [[30.0], [40.0]])
    assert_monotone(result.log_likelihood)


# ---------------------------------------------------------------- bad input
@pytest.fixture
def small():
    model = GaussianMixture(2)
    X = np.random.default_rng(0).normal(size=(20, 2))
    return model, X, model.init_params(X, np.random.default_rng(0))


@pytest.mark.parametrize("mutate, message", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), "NaN"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), "infinite"),
    (lambda X: X[:, 0], "2-D array.*reshape"),
    (lambda X: X[None], "2-D array"),
    (lambda X: X[:1], "at least 2"),
    (lambda X: np.array([["a", "b"]]), "numeric"),
])
def test_bad_data_is_refused(small, mutate, message):
    model, X, init = small
    with pytest.raises(ValueError, match=message):
        emlib.em(model, mutate(X), init)


def test_more_components_than_points_is_refused():
    X = np.zeros((3, 1)) + np.arange(3)[:, None]
    with pytest.raises(ValueError, match="fewer components"):
        GaussianMixture(5, "diag").init_params(X, np.random.default_rng(0))


@pytest.mark.parametrize("kwargs, message", [
    (dict(weights=[0.5, 0.6], means=[[0.0], [1.0]], covariances=[[1.0], [1.0]]), "sum to one"),
    (dict(weights=[1.2, -0.2], means=[[0.0], [1.0]], covariances=[[1.0], [1.0]]), "non-negative"),
    (dict(weights=[0.5, 0.5], means=[[0.0], [1.0], [2.0]], covariances=[[1.0], [1.0]]), r"means must have shape \(2, any\)"),
    (dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], covariances=[[1.0], [-1.0]]), "must be positive"),
    (dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]],
          covariances=[np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]), "not positive definite"),
    (dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]],
          covariances=[np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]), "symmetric"),
    (dict(weights=[0.5, 0.5], means=[[np.nan], [1.0]], covariances=[[1.0], [1.0]]), "NaN or infinite"),
])
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureParams(**kwargs)


def test_parameters_that_do_not_fit_the_model_are_refused(small):
    model, X, init = small
    with pytest.raises(ValueError, match="components but the model has"):
        emlib.em(GaussianMixture(3), X, init)
    with pytest.raises(ValueError, match="expects 'diag'"):
        emlib.em(GaussianMixture(2, "diag"), X, init)
    with pytest.raises(ValueError, match="columns"):
        emlib.em(model, np.hstack([X, X]), init)
    with pytest.raises(ValueError, match="GaussianMixtureParams"):
        emlib.em(model, X, {"weights": [0.5, 0.5]})


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_components=0), "positive integer"),
    (dict(n_components=2, covariance_type="tied"), "covariance_type"),
    (dict(n_components=2, reg_covar=-1.0), "reg_covar"),
    (dict(n_components=2, fixed={"precisions": 1}), "fixed accepts only"),
])
def test_bad_model_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_rng_must_be_a_generator(small):
    model, X, _ = small
    with pytest.raises(ValueError, match="default_rng"):
        model.init_params(X, 42)


# ---------------------------------------------------------------- degenerate components
def collapse_start():
    """Waiting times of Old Faithful plus a component sitting on a single point."""
    x = np.array([[1.0], [1.0 + 1e-9], [5.0], [6.0], [7.0], [8.0]])
    params = GaussianMixtureParams([0.3, 0.7], [[1.0], [6.5]], [[1e-4], [1.0]])
    return x, params


def test_collapsing_component_warns_and_names_reg_covar():
    """The collapsed component's variance is held at reg_covar (its own spread, 2.5e-19, is nothing
    beside it), and the other component's is the spread of its points."""
    x, params = collapse_start()
    with pytest.warns(emlib.ComponentCollapseWarning, match="reg_covar"):
        result = emlib.em(GaussianMixture(2, "diag", reg_covar=1e-6), x, params, max_iter=50)
    assert result.params.covariances[0, 0] == pytest.approx(1e-6, rel=1e-6)
    assert result.params.covariances[1, 0] == pytest.approx(np.var([5.0, 6.0, 7.0, 8.0]) + 1e-6, rel=1e-6)


def test_collapse_without_regularization_is_an_error_not_nan():
    x = np.array([[1.0], [1.0], [5.0], [6.0], [7.0], [8.0]])
    params = GaussianMixtureParams([0.3, 0.7], [[1.0], [6.5]], [[1e-4], [1.0]])
    with pytest.raises(ValueError, match="reg_covar"):
        emlib.em(GaussianMixture(2, "diag", reg_covar=0.0), x, params, max_iter=50)


def test_empty_component_is_an_error_not_nan():
    model = GaussianMixture(2, "diag")
    stats = GaussianMixtureStats(np.array([10.0, 0.0]), np.array([[5.0], [0.0]]), np.array([[30.0], [0.0]]))
    with pytest.raises(ValueError, match="no responsibility"):
        model.m_step(stats)


def test_a_component_with_rounding_size_responsibility_counts_as_empty(faithful):
    """N_k = 1e-14 beside 272 points is rounding noise (below 10 eps N), not data: its mean
    S1_k / N_k would be noise too. Refused, not only N_k <= 0."""
    x = faithful[:, [1]]
    counts = np.array([272.0, 1e-14])
    stats = GaussianMixtureStats(counts, np.array([[x.sum()], [1e-14 * 70.0]]),
                                 np.array([[(x ** 2).sum()], [1e-14 * 4900.0]]))
    with pytest.raises(ValueError, match=r"component\(s\) \[1\] received no responsibility"):
        GaussianMixture(2, "diag").m_step(stats)
    barely = GaussianMixtureStats(np.array([272.0, 1e-9]), stats.sum_x, stats.sum_xx)
    assert GaussianMixture(2, "diag").m_step(barely).weights[1] == pytest.approx(1e-9 / 272, rel=1e-6)


def test_weights_that_sum_to_one_only_within_1e_6_are_refused():
    with pytest.raises(ValueError, match="must sum to one"):
        GaussianMixtureParams([0.5, 0.500001], [[0.0], [1.0]], [[1.0], [1.0]])
    GaussianMixtureParams([0.5, 0.5 + 1e-12], [[0.0], [1.0]], [[1.0], [1.0]])   # rounding is accepted


# ---------------------------------------------------------------- far from the origin (issue 13, item 1)
def shifted_fits(model, Z, offset, max_iter=60):
    """EM on Z and on Y = Z + offset from the same start, shifted: (fit of Z, fit of Y).

    Z is first replaced by (Z + offset) - offset, which is exact (Sterbenz), so both fits see the
    same numbers up to a translation; any difference is the fit's own rounding.
    """
    Y = Z + offset
    Z = Y - offset
    init = model.init_params(Z, np.random.default_rng(1))
    shifted = GaussianMixtureParams(init.weights, init.means + offset, init.covariances)
    return (emlib.em(model, Z, init, max_iter=max_iter, tol=0),
            emlib.em(model, Y, shifted, max_iter=max_iter, tol=0))


def two_clusters(separation, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal([0.0, 0.0], 1.0, (150, 2)),
                           rng.normal([separation, 0.75 * separation], [1.0, 0.7], (150, 2))])


def relative_difference(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def test_one_component_far_from_the_origin_has_the_sample_variance():
    """The issue's example: 1e6 + 1e-3 N(0, 1), offset/spread 1e9. Moments about the origin gave
    variances hundreds of times too large; moments about a reference point give them exactly."""
    X = 1e6 + 1e-3 * np.random.default_rng(0).normal(size=(1000, 2))
    model = GaussianMixture(1, "diag", reg_covar=0.0)
    fit = emlib.em(model, X, model.init_params(X, np.random.default_rng(0)))
    assert fit.converged
    np.testing.assert_allclose(fit.params.covariances[0], np.var(X - X[0], axis=0), rtol=1e-12)
    assert fit.log_likelihood[-1] == pytest.approx(model.log_likelihood(X, fit.params), rel=1e-13)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("offset", [1e4, 1e6, 1e8])
def test_shifted_copies_of_separated_clusters_give_the_same_fit(covariance_type, offset):
    """Two clusters 8 standard deviations apart, moved up to 1e8 standard deviations from the origin:
    the same weights and covariances to 1e-10 relative, the means moved by the offset, and a
    log-likelihood that never decreases (it decreased, and the covariances were 5-12% wrong,
    with moments about the origin)."""
    plain, shifted = shifted_fits(GaussianMixture(2, covariance_type, reg_covar=0.0), two_clusters(8.0), offset)
    assert relative_difference(plain.params.covariances, shifted.params.covariances) < 1e-10
    np.testing.assert_allclose(shifted.params.weights, plain.params.weights, rtol=1e-10)
    np.testing.assert_allclose(shifted.params.means - offset, plain.params.means, rtol=0, atol=1e-10 * offset)
    assert_monotone(shifted.log_likelihood)
    assert shifted.log_likelihood[-1] == pytest.approx(plain.log_likelihood[-1], rel=1e-10)
    # on the way, while the components still overlap, the precision of the means shows (see below)
    np.testing.assert_allclose(shifted.log_likelihood, plain.log_likelihood, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_shifted_copies_of_overlapping_clusters_agree_to_the_precision_of_the_means(covariance_type):
    """Clusters 4 standard deviations apart overlap, so the responsibilities depend on the means to
    first order. At offset c the means themselves are stored to eps c, so the fits can agree only to
    about eps c / spread times a modest factor: 1e-10 relative up to c = 1e6, 1e-8 at c = 1e8."""
    model = GaussianMixture(2, covariance_type, reg_covar=0.0)
    for offset, rtol in ((1e4, 1e-10), (1e6, 1e-10), (1e8, 1e-8)):
        plain, shifted = shifted_fits(model, two_clusters(4.0), offset)
        assert relative_difference(plain.params.covariances, shifted.params.covariances) < rtol
        np.testing.assert_allclose(shifted.params.weights, plain.params.weights, rtol=rtol)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_statistics_about_different_centres_add_exactly(covariance_type):
    """Statistics of two chunks taken about different reference points sum, by the translation
    formula, to those of the whole data; recentring to a far point and back changes nothing."""
    rng = np.random.default_rng(3)
    X = 1e6 + rng.normal(size=(100, 3))
    q = rng.dirichlet(np.ones(2), size=100)
    model = GaussianMixture(2, covariance_type)
    whole = model.expected_stats(X, q)
    parts = model.expected_stats(X[:37], q[:37]) + model.expected_stats(X[37:], q[37:])
    assert not np.array_equal(model.expected_stats(X[:37], q[:37]).centre, model.expected_stats(X[37:], q[37:]).centre)
    np.testing.assert_allclose(parts.counts, whole.counts, rtol=1e-13)
    for means in (whole.centre + np.zeros((2, 3)), model.m_step(whole).means):
        np.testing.assert_allclose(parts.scatter(means), whole.scatter(means), rtol=1e-10)
    near = whole.centre + np.array([0.5, -1.0, 2.0])  # moving within the data keeps every digit
    back = whole.recentred(near).recentred(whole.centre)
    np.testing.assert_allclose(back.centred_sum_x, whole.centred_sum_x, rtol=0, atol=1e-11)
    np.testing.assert_allclose(back.centred_sum_xx, whole.centred_sum_xx, rtol=1e-12)


def test_statistics_written_about_the_origin_keep_their_meaning():
    """GaussianMixtureStats(counts, sum_x, sum_xx), as the chapters write it, takes moments about the
    origin, and .sum_x / .sum_xx return them whatever the reference point."""
    rng = np.random.default_rng(4)
    X = 50.0 + rng.normal(size=(40, 2))
    q = rng.dirichlet(np.ones(2), size=40)
    stats = GaussianMixture(2).expected_stats(X, q)
    np.testing.assert_allclose(stats.sum_x, q.T @ X, rtol=1e-12)
    np.testing.assert_allclose(stats.sum_xx, np.einsum("nk,nd,ne->kde", q, X, X), rtol=1e-12)
    origin = GaussianMixtureStats(stats.counts, stats.sum_x, stats.sum_xx)
    np.testing.assert_array_equal(origin.centre, [0.0, 0.0])
    model = GaussianMixture(2)
    np.testing.assert_allclose(model.m_step(origin).means, model.m_step(stats).means, rtol=1e-12)


def test_scatter_is_the_weighted_sum_of_outer_products():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 3))
    q = rng.dirichlet(np.ones(2), size=30)
    means = rng.normal(size=(2, 3))
    for covariance_type in ("full", "diag"):
        stats = GaussianMixture(2, covariance_type).expected_stats(X, q)
        diff = X[:, None, :] - means[None]
        want = np.einsum("nk,nkd,nke->kde", q, diff, diff)
        want = want if covariance_type == "full" else np.diagonal(want, axis1=1, axis2=2)
        np.testing.assert_allclose(stats.scatter(means), want, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_q_from_statistics_is_the_expectation_over_q(covariance_type):
    """GaussianMixture.expected_complete_loglik(stats, params) is Q (generalized_em-q-stats)."""
    rng = np.random.default_rng(6)
    X = 100.0 + rng.normal(size=(80, 2))
    model = GaussianMixture(2, covariance_type)
    theta_t = model.init_params(X, rng)
    q = model.posterior(X, theta_t)
    stats = model.expected_stats(X, q)
    for params in (theta_t, model.m_step(stats)):
        assert model.expected_complete_loglik(stats, params) == pytest.approx(
            emlib.bounds.expected_complete_loglik(model, X, params, q), rel=1e-11)


# ---------------------------------------------------------------- singular covariances (issue 13, items 2 and 7)
def collinear_data(order):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 120))
    columns = np.column_stack([a, b, a + b])
    return columns[:, order]


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
@pytest.mark.parametrize("seed", range(4))
def test_collinear_columns_without_regularization_are_an_error_naming_cause_and_fix(order, seed):
    """X = [a, b, a + b] with reg_covar = 0 converged silently to a meaningless log-likelihood in about
    one case in six, depending on the column order; now every order and start is refused."""
    X = collinear_data(order)
    model = GaussianMixture(2, reg_covar=0.0)
    with pytest.raises(ValueError, match="collinear.*Drop the redundant columns, or set reg_covar > 0"):
        init = model.init_params(X, np.random.default_rng(seed))
        emlib.em(model, X, init, max_iter=50)
    start = GaussianMixtureParams([0.5, 0.5], X[[0, 1]], np.repeat(np.eye(3)[None], 2, axis=0))
    with pytest.raises(ValueError, match="collinear"):
        emlib.em(model, X, start, max_iter=50)
    with pytest.warns(emlib.ComponentCollapseWarning, match="columns of X are collinear or constant"):
        assert emlib.em(GaussianMixture(2, reg_covar=1e-6), X, start, max_iter=5).n_iter == 5  # the fix works


def test_a_constant_column_is_named_as_such_not_as_a_collapsed_component():
    X = np.column_stack([np.random.default_rng(0).normal(size=50), np.full(50, 3.0)])
    start = GaussianMixtureParams([0.5, 0.5], [[-1.0, 3.0], [1.0, 3.0]], np.repeat(np.eye(2)[None], 2, axis=0))
    for covariance_type, cov in (("full", start.covariances), ("diag", np.ones((2, 2)))):
        params = GaussianMixtureParams(start.weights, start.means, cov)
        with pytest.raises(ValueError, match=r"column\(s\) \[1\] of X are constant") as caught:
            emlib.em(GaussianMixture(2, covariance_type, reg_covar=0.0), X, params)
        assert "collapsed" not in str(caught.value)
        with pytest.raises(ValueError, match=r"column\(s\) \[1\] of X are constant"):
            GaussianMixture(2, covariance_type, reg_covar=0.0).init_params(X, np.random.default_rng(0))


def test_a_component_on_one_point_names_the_component():
    """The chapter's spike: the message names the component that collapsed, never an empty list."""
    x = np.array([[1.0], [1.0], [5.0], [6.0], [7.0], [8.0]])
    params = GaussianMixtureParams([0.3, 0.7], [[1.0], [6.5]], [[[1e-4]], [[1.0]]])
    with pytest.raises(ValueError, match=r"component\(s\) \[0\] is not positive definite.*reg_covar"):
        emlib.em(GaussianMixture(2, reg_covar=0.0), x, params, max_iter=50)


# ---------------------------------------------------------------- input the model refuses (issue 13, items 3, 6, 7)
def test_masked_and_complex_data_are_refused():
    model = GaussianMixture(2)
    X = np.random.default_rng(0).normal(size=(20, 2))
    init = model.init_params(X, np.random.default_rng(0))
    masked = np.ma.masked_array(np.vstack([X, [[-999.0, -999.0]]]), mask=np.zeros((21, 2), bool))
    masked.mask[-1] = True
    with pytest.raises(ValueError, match="masked array"):
        emlib.em(model, masked, init)
    with pytest.raises(ValueError, match="complex"):
        emlib.em(model, X + 0j, init)
    with pytest.raises(ValueError, match="complex"):
        GaussianMixtureParams(init.weights, init.means + 0j, init.covariances)


@pytest.mark.parametrize("covariances", [np.full((2, 1), 1e-310), np.full((2, 1, 1), 1e-310)])
def test_subnormal_covariances_are_refused(covariances):
    with pytest.raises(ValueError, match="subnormal"):
        GaussianMixtureParams([0.5, 0.5], [[0.0], [1.0]], covariances)


def test_float32_weights_are_told_to_convert_before_normalizing():
    weights = np.full(3, 1 / 3, dtype=np.float32)   # sums to 1 + 3e-8 in double precision
    with pytest.raises(ValueError, match="float32.*convert them to float64"):
        GaussianMixtureParams(weights, np.zeros((3, 1)), np.ones((3, 1)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_components=2, chunk_size=True), "chunk_size must be a positive integer"),
    (dict(n_components=2, chunk_size=2.0), "chunk_size must be a positive integer"),
    (dict(n_components=True), "n_components must be a positive integer"),
    (dict(n_components=2, reg_covar=None), "reg_covar must be a non-negative number"),
    (dict(n_components=2, reg_covar="1e-6"), "reg_covar must be a non-negative number"),
    (dict(n_components=2, reg_covar=1e-310), "subnormal"),
    (dict(n_components=2, covariance_type=None), "covariance_type"),
    (dict(n_components=2, fixed=[1.0]), "fixed must be a dict"),
    (dict(n_components=2, fixed={"means": np.zeros((2, 3)), "covariances": np.repeat(np.eye(2)[None], 2, axis=0)}),
     "disagree about the dimension"),
])
def test_bad_settings_give_a_value_error_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_fixed_parameters_of_another_dimension_are_named_as_such():
    """Fixed means for D = 3 on data with D = 2 were reported as a covariance shape error."""
    X = np.random.default_rng(0).normal(size=(30, 2))
    model = GaussianMixture(2, "diag", fixed={"means": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="the fixed parameters are for D = 3 dimensions but X has 2 columns"):
        model.init_params(X, np.random.default_rng(0))


@pytest.mark.parametrize("scale, message", [(1e160, "values as large as"), (1e-160, "vary by less than")])
def test_data_beyond_the_range_of_squares_are_told_to_rescale(scale, message):
    X = scale * np.random.default_rng(0).normal(size=(30, 2))
    model = GaussianMixture(2, "diag")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way to the error
        with pytest.raises(ValueError, match=f"{message}.*Rescale X"):
            model.init_params(X, np.random.default_rng(0))


# ---------------------------------------------------------------- one warning per fit (issue 13, item 8)
def test_a_collapse_warns_once_per_fit_at_the_callers_line():
    x, params = collapse_start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = emlib.em(GaussianMixture(2, "diag", reg_covar=1e-6), x, params, max_iter=50, tol=0)  # THIS LINE
    collapse = [w for w in caught if issubclass(w.category, emlib.ComponentCollapseWarning)]
    assert result.n_iter == 50 and len(collapse) == 1
    assert collapse[0].filename == __file__
    with open(__file__) as fh:
        assert "# THIS LINE" in fh.read().splitlines()[collapse[0].lineno - 1]
    assert "component(s) [0] collapsed" in str(collapse[0].message)


def test_a_direct_m_step_warns_at_its_callers_line():
    x, params = collapse_start()
    model = GaussianMixture(2, "diag", reg_covar=1e-6)
    stats, _ = model.e_step(x, params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            stats, _ = model.e_step(x, model.m_step(stats))
    collapse = [w for w in caught if issubclass(w.category, emlib.ComponentCollapseWarning)]
    assert collapse and all(w.filename == __file__ for w in collapse)


# ---------------------------------------------------------------- memory bounded in N and in D (issue 13, item 9)
def peak_bytes(function, *args):
    """The largest memory allocated at once while ``function(*args)`` runs (tracemalloc, which numpy reports to)."""
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("N, D, K", [(100_000, 8, 3), (1_000, 64, 2)])
def test_the_e_step_and_init_params_need_memory_bounded_in_n_and_in_d(covariance_type, N, D, K):
    """The E-step's work arrays are sized by the bytes a chunk needs (the D(D+1)/2 moment features
    included), and init_params works in chunks: beyond its results (a few vectors of length N for
    k-means++, the (N, K) responsibilities of ``posterior``) and a few copies of the K covariances,
    the peak stays below half the data. Before, N = 2,000, D = 300 peaked at 280 MB for 4.8 MB of
    data in the E-step, and init_params and posterior took twice the data or their output."""
    X = np.random.default_rng(0).normal(size=(N, D))
    model = GaussianMixture(K, covariance_type)
    params = model.init_params(X, np.random.default_rng(1))
    allowance = 0.5 * X.nbytes + 5 * params.covariances.nbytes + 1e6
    assert peak_bytes(model.e_step, X, params) < allowance
    assert peak_bytes(model.init_params, X, np.random.default_rng(1)) < 4 * 8 * N + allowance
    out = N * K * 8  # the (N, K) result itself
    assert peak_bytes(model.posterior, X, params) < out + allowance
    assert peak_bytes(model.log_joint, X, params) < out + allowance
