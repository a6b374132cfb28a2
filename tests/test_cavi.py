"""CAVI for the Bayesian Gaussian mixture: the ELBO is exact where it must be, never decreases,
empties extra components, and agrees with scikit-learn from the same start."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emlib
from emlib import BayesianGaussianMixture, cavi


def two_clusters(seed, n=200):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal([0, 0], 0.5, (n // 2, 2)), rng.normal([4, 3], 0.7, (n - n // 2, 2))])


def test_one_component_elbo_equals_the_exact_evidence(faithful):
    """With K = 1 the mean-field family contains the exact posterior, so the ELBO after one
    update is log p(X), the closed-form Normal-Wishart evidence (to rounding: 1e-10 relative)."""
    model = BayesianGaussianMixture(1)
    result = cavi(model, faithful, init=np.ones((len(faithful), 1)), max_iter=1)
    assert result.elbo[-1] == pytest.approx(model.log_marginal_likelihood_one_component(faithful), rel=1e-10)


def test_one_component_evidence_matches_a_direct_numerical_integral():
    """Independent check of the closed form in 1-D: integrate p(x | mu, lam) p(mu, lam) on a grid
    (Simpson's rule, 801 x 1601 points; the integrand is smooth and negligible outside the box,
    so 1e-6 on the log is ample)."""
    from scipy import integrate, stats
    x = np.array([0.3, 1.1, -0.4, 2.0])
    model = BayesianGaussianMixture(1, mean_prior=[0.0], covariance_prior=[[1.0]], degrees_of_freedom_prior=2.0,
                                    mean_precision_prior=0.5)
    mu = np.linspace(-10.0, 10.0, 801)[:, None]
    lam = np.linspace(1e-9, 30.0, 1601)[None, :]
    # Wishart(W0 = 1, nu0 = 2) in 1-D is Gamma(shape 1, scale 2); mu | lam ~ N(0, 1 / (0.5 lam))
    density = stats.gamma.pdf(lam, a=1.0, scale=2.0) * stats.norm.pdf(mu, 0.0, 1 / np.sqrt(0.5 * lam))
    for xi in x:
        density = density * stats.norm.pdf(xi, mu, 1 / np.sqrt(lam))
    value = integrate.simpson(integrate.simpson(density, x=lam.ravel(), axis=1), x=mu.ravel())
    assert model.log_marginal_likelihood_one_component(x[:, None]) == pytest.approx(np.log(value), abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 5))
def test_elbo_never_decreases(seed, K):
    X = two_clusters(seed % 1000, n=60)
    result = cavi(BayesianGaussianMixture(K), X, rng=np.random.default_rng(seed), max_iter=60, tol=0)
    assert np.all(np.diff(result.elbo) >= -1e-10 * np.abs(result.elbo[1:]))


def test_each_update_maximizes_the_elbo_over_its_factor():
    X = two_clusters(1)
    model = BayesianGaussianMixture(3)
    prior = model.prior(X)
    q = model.init_responsibilities(X, np.random.default_rng(0))
    post = model.update_posterior(model.expected_stats(X, q), prior)
    best_q = model.posterior(X, post)
    rng = np.random.default_rng(1)
    for _ in range(5):  # any other q(z) is worse
        other = rng.dirichlet(np.ones(3), size=len(X))
        assert model.elbo(X, other, post, prior) < model.elbo(X, best_q, post, prior)
    best_post = model.update_posterior(model.expected_stats(X, best_q), prior)
    perturbed = emlib.models.bayesian_gaussian_mixture.VariationalPosterior(
        best_post.alpha * 1.1, best_post.beta, best_post.means + 0.05, best_post.scale_inv, best_post.dof + 0.5)
    assert model.elbo(X, best_q, perturbed, prior) < model.elbo(X, best_q, best_post, prior)


def test_extra_components_are_emptied():
    X = two_clusters(2)
    result = cavi(BayesianGaussianMixture(6), X, rng=np.random.default_rng(0))
    weights = np.sort(result.params.weights)[::-1]
    assert result.converged
    assert weights[:2].sum() > 0.98
    assert np.all(weights[2:] < 0.01)


def test_same_fit_as_sklearn_from_the_same_start(faithful):
    """Same priors (sklearn's defaults), reg_covar=0, and the same k-means start: the updates
    are the same closed forms, so the fits agree to rounding (1e-8)."""
    import sklearn.cluster as cluster   # a declared test dependency: missing, it fails loudly
    import sklearn.mixture as mixture
    sk = mixture.BayesianGaussianMixture(n_components=4, weight_concentration_prior_type="dirichlet_distribution",
                                         reg_covar=0.0, max_iter=200, tol=0, random_state=7, init_params="kmeans")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(faithful)
    labels = cluster.KMeans(n_clusters=4, n_init=1, random_state=7).fit(faithful).labels_
    ours = cavi(BayesianGaussianMixture(4), faithful, init=np.eye(4)[labels], max_iter=200, tol=0)
    np.testing.assert_allclose(ours.params.weights, sk.weights_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.params.means, sk.means_, rtol=1e-8)
    np.testing.assert_allclose(ours.params.covariances, sk.covariances_, rtol=1e-8, atol=1e-12)


def test_the_start_is_the_kmeans_plus_plus_assignment_of_its_seed():
    """Reproducible from a seed: the default start assigns each point to the nearest of K seeds drawn
    by k-means++ from that seed (written out here), and the fit equals the fit from that start."""
    X = two_clusters(3)
    rng = np.random.default_rng(5)
    chosen = [int(rng.integers(len(X)))]
    for _ in range(2):
        d2 = np.min([np.sum((X - X[i]) ** 2, axis=1) for i in chosen], axis=0)
        chosen.append(int(rng.choice(len(X), p=d2 / d2.sum())))
    nearest = np.argmin(((X[:, None, :] - X[chosen][None]) ** 2).sum(axis=2), axis=1)
    start = np.eye(3)[nearest]
    np.testing.assert_array_equal(BayesianGaussianMixture(3).init_responsibilities(X, np.random.default_rng(5)), start)
    a = cavi(BayesianGaussianMixture(3), X, rng=np.random.default_rng(5), max_iter=20)
    b = cavi(BayesianGaussianMixture(3), X, init=start, max_iter=20)
    np.testing.assert_array_equal(a.elbo, b.elbo)


def test_a_decrease_of_the_elbo_is_reported_as_a_bug(monkeypatch):
    """The guard: coordinate ascent cannot lower the ELBO, so a decrease means a broken update. An
    update of q(theta) that ignores half the data lowers it, and cavi must stop with RuntimeError."""
    X = two_clusters(4)
    model = BayesianGaussianMixture(2)
    real = BayesianGaussianMixture.update_posterior
    calls = []

    def broken(self, stats, prior):
        calls.append(1)
        return real(self, 0.5 * stats if len(calls) == 3 else stats, prior)

    monkeypatch.setattr(BayesianGaussianMixture, "update_posterior", broken)
    with pytest.raises(RuntimeError, match="the ELBO decreased .* a bug"):
        cavi(model, X, rng=np.random.default_rng(0), max_iter=10, tol=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight_concentration_prior=0.0), "weight_concentration_prior must be a positive"),
    (dict(mean_precision_prior=-1.0), "mean_precision_prior must be a positive"),
    (dict(degrees_of_freedom_prior=0.5), "degrees_of_freedom_prior must exceed"),
    (dict(covariance_prior=[[1.0, 2.0], [2.0, 1.0]]), "not positive definite"),
    (dict(mean_prior=[0.0]), r"mean_prior must have shape \(2\)"),
])
def test_bad_priors_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cavi(BayesianGaussianMixture(2, **kwargs), two_clusters(0), rng=np.random.default_rng(0))


def test_bad_start_is_refused():
    X = two_clusters(0)
    with pytest.raises(ValueError, match="give either init"):
        cavi(BayesianGaussianMixture(2), X)
    with pytest.raises(ValueError, match="each row of init must sum to one"):
        cavi(BayesianGaussianMixture(2), X, init=np.full((len(X), 2), 0.7))
    with pytest.raises(ValueError, match="NaN"):
        cavi(BayesianGaussianMixture(2), np.full((5, 2), np.nan), rng=np.random.default_rng(0))
