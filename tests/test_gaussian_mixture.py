"""emlib.GaussianMixture: densities, agreement with scikit-learn, monotone EM, input checks."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import emlib
from emlib import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats

sklearn_mixture = pytest.importorskip("sklearn.mixture")


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
    drops = np.diff(trace)
    assert np.all(drops >= -1e-10 * np.abs(trace[1:])), f"decrease {drops.min()} at step {drops.argmin()}"


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
def test_init_params_is_reproducible_and_uses_data_points(faithful):
    model = GaussianMixture(4)
    a = model.init_params(faithful, np.random.default_rng(5))
    b = model.init_params(faithful, np.random.default_rng(5))
    c = model.init_params(faithful, np.random.default_rng(6))
    np.testing.assert_array_equal(a.means, b.means)
    assert not np.array_equal(a.means, c.means)
    for mean in a.means:  # k-means++ picks data points as means
        assert np.any(np.all(faithful == mean, axis=1))
    assert len({tuple(m) for m in a.means}) == 4
    np.testing.assert_allclose(a.weights, 0.25)


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
    assert np.all(np.diff(result.log_likelihood) >= -1e-10 * abs(result.log_likelihood[-1]))


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
    x, params = collapse_start()
    with pytest.warns(emlib.ComponentCollapseWarning, match="reg_covar"):
        result = emlib.em(GaussianMixture(2, "diag", reg_covar=1e-6), x, params, max_iter=50)
    assert np.all(np.isfinite(result.params.covariances))


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
