"""emlib.BayesianGaussianMixture, the model (CAVI, its driver, is tested in test_cavi.py): input
checks, accuracy far from the origin, and memory bounded by the data."""
import tracemalloc

import numpy as np
import pytest

import emlib
from emlib import BayesianGaussianMixture, cavi


def two_clusters(seed=0, n=200):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal([0, 0], 1.0, (n // 2, 2)), rng.normal([6, 4], [1.0, 0.7], (n - n // 2, 2))])


@pytest.mark.parametrize("offset, rtol", [(1e4, 1e-10), (1e6, 1e-10), (1e8, 1e-8)])
def test_shifted_copies_give_the_same_fit(offset, rtol):
    """W_k^{-1} = W_0^{-1} + S2_k + beta_0 m_0 m_0^T - beta_k m_k m_k^T cancelled far from the origin:
    at offset 1e6 cavi stopped with "the ELBO decreased ... a bug", at 1e8 with a covariance that is not
    positive definite. About the reference point the fits agree (at 1e8 to the precision with which
    the means near 1e8 are stored)."""
    Z = two_clusters()
    Y = Z + offset
    Z = Y - offset                                   # exact: the same numbers, translated
    q0 = BayesianGaussianMixture(3).init_responsibilities(Z, np.random.default_rng(0))
    plain = cavi(BayesianGaussianMixture(3), Z, init=q0, max_iter=100, tol=0)
    shifted = cavi(BayesianGaussianMixture(3), Y, init=q0, max_iter=100, tol=0)
    np.testing.assert_allclose(shifted.params.covariances, plain.params.covariances, rtol=rtol,
                               atol=rtol * np.abs(plain.params.covariances).max())
    np.testing.assert_allclose(shifted.params.weights, plain.params.weights, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(shifted.elbo, plain.elbo, rtol=100 * rtol)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight_concentration_prior="1"), "weight_concentration_prior must be a positive number"),
    (dict(mean_precision_prior=None), "mean_precision_prior must be a positive number"),
    (dict(degrees_of_freedom_prior="3"), "degrees_of_freedom_prior must be a finite number"),
    (dict(mean_prior=[[0.0, 1.0]]), "mean_prior must have shape"),
    (dict(covariance_prior=[[1.0, 0.5], [0.0, 1.0]]), "covariance_prior must be a symmetric matrix"),
    (dict(covariance_prior=[[1.0, 0.0j], [0.0, 1.0]]), "complex"),
    (dict(covariance_prior=[[1.0, 2.0], [2.0, 1.0]]), "covariance_prior is not positive definite"),
    (dict(covariance_prior=np.eye(3)[:2]), "square"),
])
def test_bad_priors_are_refused_when_the_model_is_made(kwargs, message):
    """Non-numeric priors gave a TypeError, a non-symmetric covariance_prior was read by its lower
    triangle: each is now a ValueError naming the argument, before any data are seen."""
    with pytest.raises(ValueError, match=message):
        BayesianGaussianMixture(2, **kwargs)


def test_a_bad_posterior_argument_is_named():
    X = two_clusters()
    model = BayesianGaussianMixture(2)
    with pytest.raises(ValueError, match="post must be a VariationalPosterior"):
        model.posterior(X, "posterior")
    with pytest.raises(ValueError, match="stats must be GaussianMixtureStats"):
        model.update_posterior(None, model.prior(X))


def test_update_posterior_is_bishops_form_written_about_any_reference_point():
    """m_k and W_k^{-1} from statistics about the origin (as the chapter writes them) and from the
    same statistics about a far reference point agree."""
    X = 1e3 + two_clusters(1)
    model = BayesianGaussianMixture(2)
    prior = model.prior(X)
    q = model.init_responsibilities(X, np.random.default_rng(0))
    stats = model.expected_stats(X, q)
    about_origin = emlib.GaussianMixtureStats(stats.counts, stats.sum_x, stats.sum_xx)
    a, b = model.update_posterior(stats, prior), model.update_posterior(about_origin, prior)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-12)
    # the origin form cancels (1e3)^2 against 1: about 1e6 eps of the largest entry
    np.testing.assert_allclose(a.scale_inv, b.scale_inv, rtol=0, atol=1e-9 * np.abs(a.scale_inv).max())
    # Bishop (10.62): W_k^{-1} = W_0^{-1} + C_k + beta_0 N_k / beta_k (xbar_k - m_0)(xbar_k - m_0)^T
    xbar = stats.sum_x / stats.counts[:, None]
    C = stats.scatter(xbar)
    d = xbar - prior.means
    want = prior.scale_inv + C + (prior.beta * stats.counts / a.beta)[:, None, None] * d[:, :, None] * d[:, None, :]
    np.testing.assert_allclose(a.scale_inv, want, rtol=1e-10)


def test_the_start_needs_memory_bounded_by_the_data():
    """init_responsibilities built an N x K x D array of differences; now it works in chunks."""
    X = np.random.default_rng(0).normal(size=(50_000, 8))
    model = BayesianGaussianMixture(6)
    tracemalloc.start()
    try:
        q = model.init_responsibilities(X, np.random.default_rng(1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < q.nbytes + 4 * 8 * X.shape[0] + 0.5 * X.nbytes + 1e6
    np.testing.assert_array_equal(q.sum(axis=1), 1.0)
