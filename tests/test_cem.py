"""Classification EM (emlib.cem, emlib.variants.cem): the properties that define it.

CEM climbs the classification log-likelihood L_C, stops at a hard-assignment fixed point after
finitely many steps, is Lloyd's k-means when weights and spherical covariances are fixed and
equal, and is biased for overlapping components (where EM is not).
"""
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.cluster import KMeans

import emlib
from emlib.bounds import kl_to_posterior
from emlib.variants.cem import CEMResult, classification_log_likelihood, classify


def overlapping_data(seed, n=600, K=4, D=2):
    """K overlapping 2-D Gaussian clusters; the start is K distinct data points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 2.0, (K, D))
    X = centres[rng.integers(K, size=n)] + rng.standard_normal((n, D))
    start = X[rng.choice(n, K, replace=False)]
    return X, start


def kmeans_model(K, D, variance=1.0):
    return emlib.GaussianMixture(K, "diag", fixed={"weights": np.full(K, 1.0 / K),
                                                   "covariances": np.full((K, D), variance)})


def lloyd(X, centres, max_iter=1000):
    """An independent Lloyd iteration: nearest centre by squared distance, then cluster means.

    Returns the centres and the labels of every pass, and the number of centre updates until
    the labels stopped changing.
    """
    centres = np.array(centres, dtype=float)
    history, labels_old = [], None
    for updates in range(max_iter + 1):
        d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = d2.argmin(axis=1)
        history.append((centres, labels))
        if labels_old is not None and np.array_equal(labels, labels_old):
            return history, updates
        centres = np.array([X[labels == k].mean(axis=0) for k in range(centres.shape[0])])
        labels_old = labels
    raise AssertionError("Lloyd did not converge")


# ------------------------------------------------------------------------------ k-means
@pytest.mark.parametrize("seed", range(4))
def test_cem_is_lloyds_kmeans_at_every_iteration(seed):
    X, start = overlapping_data(seed)
    K, D = start.shape
    model = kmeans_model(K, D, variance=0.7)
    init = emlib.GaussianMixtureParams(np.full(K, 1 / K), start, np.full((K, D), 0.7))
    path = [init]
    result = emlib.cem(model, X, init, callback=lambda t, p, value: path.append(p))
    history, updates = lloyd(X, start)
    assert updates >= 3, "the data should need several Lloyd passes for this test to mean anything"
    assert result.converged and result.n_iter == updates and len(path) == len(history)
    for params, (centres, labels) in zip(path, history):
        np.testing.assert_allclose(params.means, centres, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(classify(model, X, params), labels)
    np.testing.assert_array_equal(result.labels, history[-1][1])


@pytest.mark.parametrize("seed", range(3))
def test_cem_agrees_with_scikit_learn_kmeans(seed):
    X, start = overlapping_data(seed + 10)
    K, D = start.shape
    model = kmeans_model(K, D)
    init = emlib.GaussianMixtureParams(np.full(K, 1 / K), start, np.ones((K, D)))
    result = emlib.cem(model, X, init)
    km = KMeans(n_clusters=K, init=start, n_init=1, algorithm="lloyd", tol=0.0, max_iter=1000).fit(X)
    np.testing.assert_array_equal(result.labels, km.labels_)
    np.testing.assert_allclose(result.params.means, km.cluster_centers_, rtol=0, atol=1e-10)
    # L_C = -N D/2 log(2 pi sigma^2) - N log K - (sum of squared distances) / (2 sigma^2), sigma^2 = 1
    N = X.shape[0]
    expected = -0.5 * N * D * np.log(2 * np.pi) - N * np.log(K) - 0.5 * km.inertia_
    assert result.log_likelihood[-1] == pytest.approx(expected, rel=1e-10)


def test_kmeans_assignments_do_not_depend_on_the_fixed_variance():
    X, start = overlapping_data(21)
    K, D = start.shape
    runs = []
    for variance in (0.05, 1.0, 20.0):
        init = emlib.GaussianMixtureParams(np.full(K, 1 / K), start, np.full((K, D), variance))
        runs.append(emlib.cem(kmeans_model(K, D, variance), X, init))
    for run in runs[1:]:
        np.testing.assert_array_equal(run.labels, runs[0].labels)
        np.testing.assert_allclose(run.params.means, runs[0].params.means, atol=1e-12)


def test_em_with_a_vanishing_fixed_variance_becomes_kmeans():
    """Bishop (2006, sec. 9.3.2): with weights 1/K and covariances sigma^2 I fixed, EM tends to
    k-means as sigma^2 -> 0, because the responsibilities become hard assignments."""
    X, start = overlapping_data(3)
    K, D = start.shape
    kmeans = emlib.cem(kmeans_model(K, D), X, emlib.GaussianMixtureParams(np.full(K, 1 / K), start, np.ones((K, D))))
    gaps = []
    for variance in (1.0, 0.1, 1e-3):
        init = emlib.GaussianMixtureParams(np.full(K, 1 / K), start, np.full((K, D), variance))
        fit = emlib.em(kmeans_model(K, D, variance), X, init, tol=1e-12, max_iter=5000)
        gaps.append(np.max(np.abs(fit.params.means - kmeans.params.means)))
    assert gaps[0] > 1e-2 and gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4  # points near a boundary keep slightly soft responsibilities at 1e-3


# ------------------------------------------------------------------- objective and fixed point
@pytest.mark.parametrize("seed", range(5))
def test_cem_stops_at_a_hard_assignment_fixed_point(seed):
    X, _ = overlapping_data(seed + 30, n=400, K=3)
    model = emlib.GaussianMixture(3, "full")
    init = model.init_params(X, np.random.default_rng(seed))
    result = emlib.cem(model, X, init, max_iter=500)
    assert result.converged and result.n_iter < 500
    again = emlib.cem(model, X, result.params, max_iter=1)
    assert again.converged and again.n_iter == 1
    np.testing.assert_array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.params.means, result.params.means)
    np.testing.assert_array_equal(again.params.covariances, result.params.covariances)
    np.testing.assert_array_equal(classify(model, X, result.params), result.labels)


@pytest.mark.parametrize("seed", range(5))
def test_classification_loglik_never_decreases_and_bounds_the_loglik(seed):
    X, _ = overlapping_data(seed + 40, n=400, K=3)
    model = emlib.GaussianMixture(3, "full", reg_covar=0.0)  # exact M-step: the theorem's setting
    init = model.init_params(X, np.random.default_rng(seed))
    path = [init]
    result = emlib.cem(model, X, init, callback=lambda t, p, value: path.append(p))
    trace = result.log_likelihood
    assert np.diff(trace).min() >= -1e-9 * np.abs(trace).max()
    for params, value in zip(path, trace):
        assert value == pytest.approx(classification_log_likelihood(model, X, params), rel=1e-12)
        loglik = model.log_likelihood(X, params)
        onehot = np.eye(3)[classify(model, X, params)]
        # log p(x | theta) - L_C(theta) = KL(one-hot q || p(z | x, theta)) >= 0
        assert loglik - value == pytest.approx(kl_to_posterior(model, X, params, onehot), rel=1e-8, abs=1e-8)
        assert loglik >= value >= loglik - X.shape[0] * np.log(3)  # the sandwich of the exercise


def test_cem_result_names_its_objective_and_holds_the_labels():
    """Its trace is L_C, not the log-likelihood: the type (not an EMResult) and the field say so."""
    X, start = overlapping_data(2)
    model = kmeans_model(4, 2)
    init = emlib.GaussianMixtureParams(np.full(4, 0.25), start, np.ones((4, 2)))
    result = emlib.cem(model, X, init, max_iter=1, tol=0)
    assert isinstance(result, CEMResult) and not isinstance(result, emlib.EMResult)
    assert isinstance(result, emlib.interface.FitResult)
    assert result.objective is result.classification_log_likelihood
    np.testing.assert_array_equal(result.log_likelihood, result.classification_log_likelihood)  # old name
    assert result.n_iter == 1 and len(result.objective) == 2 and result.labels.shape == (X.shape[0],)
    assert result.objective[1] == pytest.approx(classification_log_likelihood(model, X, result.params), rel=1e-12)
    assert not result.converged  # one pass is not enough for these data (see the k-means test)
    stopped = emlib.cem(model, X, init, tol=1.0)  # the relative change is always below 1 here
    assert stopped.converged and stopped.n_iter == 1


def test_ties_keep_the_previous_label():
    model = kmeans_model(2, 1)
    params = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0], [1.0]], [[1.0], [1.0]])
    X = np.array([[0.0], [-2.0], [2.0]])  # the first point is equally far from both means
    np.testing.assert_array_equal(classify(model, X, params), [0, 0, 1])
    np.testing.assert_array_equal(classify(model, X, params, previous=np.array([1, 0, 1])), [1, 0, 1])


# ---------------------------------------------------------------------------------- bias
def _fits(seed, delta, n):
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    truth = emlib.GaussianMixtureParams([0.5, 0.5], [[-delta], [delta]], [[1.0], [1.0]])
    X, _ = model.sample(truth, n, np.random.default_rng(seed))
    init = emlib.GaussianMixtureParams([0.5, 0.5], np.quantile(X, [0.25, 0.75])[:, None], np.full((2, 1), X.var()))
    return emlib.em(model, X, init, tol=1e-8, max_iter=2000).params, emlib.cem(model, X, init).params


def test_cem_is_biased_for_overlapping_components_and_em_is_not():
    delta = 1.25
    em_means, cem_means, em_vars, cem_vars = [], [], [], []
    for seed in range(10):
        em_p, cem_p = _fits(seed, delta, 1000)
        em_means.append(np.ptp(em_p.means) / 2)
        cem_means.append(np.ptp(cem_p.means) / 2)
        em_vars.append(em_p.covariances.mean())
        cem_vars.append(cem_p.covariances.mean())
    # Averages over 10 data sets of 1000 points: their standard errors are about 0.01 (half the
    # distance between the means) and 0.02 (the variance). The CEM biases, about +0.10 and -0.26
    # (the population limit below), are many standard errors away; EM stays within 0.08 of the truth.
    assert abs(np.mean(em_means) - delta) < 0.08 and abs(np.mean(em_vars) - 1.0) < 0.08
    assert np.mean(cem_means) - delta > 0.05
    assert np.mean(cem_vars) < 0.85
    assert np.mean(np.abs(np.array(cem_vars) - 1.0)) > np.mean(np.abs(np.array(em_vars) - 1.0))


def test_cem_converges_to_the_truncated_moments_of_the_chapter():
    """For pi = (1/2, 1/2), mu = -/+delta, sigma = 1 the symmetric CEM fixed point splits at 0:
    mu_CEM = delta (2 Phi(delta) - 1) + 2 phi(delta), sigma^2_CEM = 1 + delta^2 - mu_CEM^2."""
    delta = 1.25
    em_p, cem_p = _fits(99, delta, 50_000)
    mu = delta * (2 * norm.cdf(delta) - 1) + 2 * norm.pdf(delta)
    var = 1 + delta ** 2 - mu ** 2
    # Over seeds 95-100 at N = 50 000 these averages varied by about 0.002 (half-distance) and 0.006
    # (variance); the tolerances are several times that. The limit differs from the truth by 0.10
    # and 0.26, so the test separates the two.
    assert np.ptp(cem_p.means) / 2 == pytest.approx(mu, abs=0.01)
    assert cem_p.covariances.mean() == pytest.approx(var, abs=0.025)
    assert np.ptp(em_p.means) / 2 == pytest.approx(delta, abs=0.02)
    assert em_p.covariances.mean() == pytest.approx(1.0, abs=0.05)


def test_cem_splits_a_single_normal_into_two_half_normals():
    """delta = 0 in the chapter's formula: data from one N(0, 1), yet CEM with equal weights and
    variances (k-means) reports two classes with means -/+sqrt(2/pi), the half-normal means. With
    weights and variances free, the symmetric split is unstable: one class shrinks into a tail."""
    X = np.random.default_rng(5).standard_normal((50_000, 1))
    start = emlib.GaussianMixtureParams([0.5, 0.5], [[-0.5], [0.5]], [[1.0], [1.0]])
    fit = emlib.cem(kmeans_model(2, 1), X, start)
    assert fit.converged
    # The standard error of a half-normal mean at N = 25 000 is about 0.004.
    np.testing.assert_allclose(np.sort(fit.params.means[:, 0]), [-np.sqrt(2 / np.pi), np.sqrt(2 / np.pi)], atol=0.02)
    within = np.mean([X[fit.labels == k, 0].var() for k in range(2)])
    assert within == pytest.approx(1 - 2 / np.pi, abs=0.02)  # the variance v of the chapter's limit
    free = emlib.cem(emlib.GaussianMixture(2, "diag", reg_covar=0.0), X, start)
    assert abs(free.params.means.sum()) > 0.5 and abs(free.params.weights[0] - 0.5) > 0.1


# ----------------------------------------------------------------------- determinism, errors
def test_cem_is_its_definition_written_out():
    """Deterministic and exactly the iteration of its definition: a hand-written C-step (arg-max,
    ties kept) and M-step on the one-hot assignments give the same labels and parameters."""
    X, _ = overlapping_data(5, n=300, K=3)
    model = emlib.GaussianMixture(3, "diag")
    init = model.init_params(X, np.random.default_rng(8))
    result = emlib.cem(model, X, init, max_iter=6)
    params = init
    labels = model.log_joint(X, params).argmax(axis=1)
    for _ in range(result.n_iter):
        params = model.m_step(model.expected_stats(X, np.eye(3)[labels]))
        log_joint = model.log_joint(X, params)
        best = log_joint.argmax(axis=1)
        keep = log_joint[np.arange(len(X)), labels] >= log_joint[np.arange(len(X)), best]
        labels = np.where(keep, labels, best)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_allclose(emlib.flatten_params(result.params), emlib.flatten_params(params), rtol=1e-12)


def test_cem_works_in_chunks_with_memory_bounded_by_the_data(monkeypatch):
    """CEM held the (N, K) log-joint and one-hot arrays of the whole data (2.6 times the data); for a
    mixture it now works in row chunks, with the same result as one chunk."""
    import importlib
    import tracemalloc

    cem_module = importlib.import_module("emlib.variants.cem")  # the module (emlib.variants.cem is the driver)

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0.0, 1.0, (25_000, 4)), rng.normal(5.0, 1.0, (25_000, 4))])
    model = emlib.GaussianMixture(8, "diag")
    init = model.init_params(X, np.random.default_rng(1))
    tracemalloc.start()
    try:
        chunked = emlib.cem(model, X, init, max_iter=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    labels = 2 * 8 * X.shape[0]            # the current and the new labels (int64)
    assert peak < labels + 0.3 * X.nbytes + 1e6
    monkeypatch.setattr(cem_module, "CHUNK_ROWS", X.shape[0])   # one chunk
    whole = emlib.cem(model, X, init, max_iter=2)
    np.testing.assert_array_equal(chunked.labels, whole.labels)
    np.testing.assert_allclose(chunked.objective, whole.objective, rtol=1e-12)
    np.testing.assert_allclose(emlib.flatten_params(chunked.params), emlib.flatten_params(whole.params), rtol=1e-10)


def test_cem_rejects_bad_input():
    X, start = overlapping_data(0, n=100)
    model = kmeans_model(4, 2)
    init = emlib.GaussianMixtureParams(np.full(4, 0.25), start, np.ones((4, 2)))
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="contains infinite values"):
        emlib.cem(model, bad, init)
    with pytest.raises(ValueError, match="params have 4 components but the model has 3"):
        emlib.cem(kmeans_model(3, 2), X, init)
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        emlib.cem(model, X, init, tol=-1.0)
    far = emlib.GaussianMixtureParams(np.full(4, 0.25), np.vstack([start[:3], [[1e3, 1e3]]]), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"component\(s\) \[3\] received no responsibility"):
        emlib.cem(model, X, far)
    with pytest.raises(ValueError, match="previous must hold N = 100 integer labels"):
        classify(model, X, init, previous=np.zeros(99, dtype=int))
    with pytest.raises(ValueError, match="previous must hold N = 100 integer labels"):
        classify(model, X, init, previous=np.full(100, 4))
