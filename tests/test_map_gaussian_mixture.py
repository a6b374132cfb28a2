"""emlib.MAPGaussianMixture: MAP-EM with an inverse-Wishart prior on the covariances.

Checked against the book's formulas (eq. gaussian_mixtures-map-cov), against a hand computation,
against the closed-form posterior mode of a single Gaussian, against scipy's inverse-Wishart
density, and against scikit-learn's BayesianGaussianMixture where the two compute the same
quantity. EM on the MAP objective never decreases the log posterior, which is bounded above
(proposition gaussian_mixtures-prop-map-bounded).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import multigammaln
from scipy.stats import invgamma, invwishart

import emlib
from emlib import GaussianMixtureParams, GaussianMixtureStats, MAPGaussianMixture
from emlib.bounds import expected_complete_loglik


# ----------------------------------------------------------------------------- helpers
def random_spd(rng, D, scale=1.0):
    A = rng.standard_normal((D, D))
    return scale * (A @ A.T / D + 0.5 * np.eye(D))


def random_problem(seed, K, D, N=60, covariance_type="full"):
    """Data, a model with a random prior, and random responsibilities."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) * rng.uniform(0.5, 3.0, D) + rng.uniform(-5, 5, D)
    scale = random_spd(rng, D) if covariance_type == "full" else rng.uniform(0.2, 2.0, D)
    model = MAPGaussianMixture(K, scale, prior_dof=D + 1.0 + 3.0 * rng.uniform(), covariance_type=covariance_type)
    q = rng.dirichlet(np.ones(K), size=N)
    return X, model, q


def objective(model, X, theta, q):
    """Q(theta | theta_t) + log p(theta), the function the MAP M-step maximizes (q fixed)."""
    return expected_complete_loglik(model, X, theta, q) + model.log_prior(theta)


def log_iw(cov, scale, dof):
    """log IW(cov | scale, dof) written out, with numpy's slogdet and solve (reference only)."""
    D = cov.shape[0]
    return (0.5 * dof * np.linalg.slogdet(scale)[1] - 0.5 * dof * D * np.log(2) - multigammaln(dof / 2, D)
            - 0.5 * (dof + D + 1) * np.linalg.slogdet(cov)[1] - 0.5 * np.trace(np.linalg.solve(cov, scale)))


# ----------------------------------------------------------------------------- the M-step
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_m_step_is_the_formula_computed_by_hand(covariance_type):
    """Eq. gaussian_mixtures-map-cov, with the scatter centred at the new means and summed point by point."""
    X, model, q = random_problem(0, K=2, D=3, covariance_type=covariance_type)
    theta = model.m_step(model.expected_stats(X, q))
    nu, psi = model.prior_dof, model.prior_scale
    for k in range(2):
        Nk = sum(q[n, k] for n in range(len(X)))
        mu = sum(q[n, k] * X[n] for n in range(len(X))) / Nk
        C = sum(q[n, k] * np.outer(X[n] - mu, X[n] - mu) for n in range(len(X)))
        assert theta.weights[k] == pytest.approx(Nk / len(X), rel=1e-12)
        np.testing.assert_allclose(theta.means[k], mu, rtol=1e-12)
        if covariance_type == "full":
            np.testing.assert_allclose(theta.covariances[k], (C + psi) / (Nk + nu + 3 + 1), rtol=1e-10)
        else:
            np.testing.assert_allclose(theta.covariances[k], (np.diag(C) + psi) / (Nk + nu + 2), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_m_step_maximizes_Q_plus_the_log_prior(covariance_type, seed):
    """Every feasible perturbation of the M-step's output lowers Q + log p(theta)."""
    X, model, q = random_problem(seed, K=3, D=2, covariance_type=covariance_type)
    theta = model.m_step(model.expected_stats(X, q))
    best = objective(model, X, theta, q)
    rng = np.random.default_rng(seed)
    for scale in (1e-3, 1e-2, 1e-1):
        for _ in range(10):
            d = rng.standard_normal(3)
            d -= d.mean()
            w = theta.weights + scale * theta.weights.min() * d / np.abs(d).max()
            means = theta.means + scale * rng.standard_normal(theta.means.shape)
            if covariance_type == "full":
                S = rng.standard_normal((3, 2, 2))
                cov = theta.covariances + scale * 0.5 * np.linalg.eigvalsh(theta.covariances)[:, :1, None] * (
                    S + S.transpose(0, 2, 1)) / 2
            else:
                cov = theta.covariances * np.exp(scale * rng.standard_normal(theta.covariances.shape))
            for other in (GaussianMixtureParams(w, theta.means, theta.covariances),
                          GaussianMixtureParams(theta.weights, means, theta.covariances),
                          GaussianMixtureParams(theta.weights, theta.means, cov)):
                assert objective(model, X, other, q) < best


def test_the_prior_does_not_change_weights_or_means():
    """Flat priors on weights and means: the MAP M-step gives the maximum-likelihood weights and means."""
    X, model, q = random_problem(4, K=3, D=2)
    stats = model.expected_stats(X, q)
    ml = emlib.GaussianMixture(3, reg_covar=0.0).m_step(stats)
    theta = model.m_step(stats)
    np.testing.assert_allclose(theta.weights, ml.weights, rtol=1e-14)
    np.testing.assert_allclose(theta.means, ml.means, rtol=1e-14)


def test_covariances_stay_above_the_prior_floor_even_for_a_single_point():
    """A component whose responsibility sits on one point gets Sigma = Psi / (N_k + nu + D + 1), not 0."""
    X = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [5.0, 5.0]])
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    psi = np.array([[2.0, 0.3], [0.3, 1.0]])
    model = MAPGaussianMixture(2, psi, prior_dof=4.0)
    theta = model.m_step(model.expected_stats(X, q))
    np.testing.assert_allclose(theta.covariances[0], psi / (1 + 4 + 2 + 1), rtol=1e-12)
    N = len(X)
    for cov in theta.covariances:  # Sigma_k - Psi / (N + nu + D + 1) is positive semi-definite
        assert np.linalg.eigvalsh(cov - psi / (N + 4 + 2 + 1))[0] >= -1e-12


# ----------------------------------------------------------------------------- one component: closed form
def test_one_component_reaches_the_posterior_mode_in_one_step():
    """K = 1: the mode of p(mu, Sigma | X) with a flat prior on mu is mu = mean, Sigma = (C + Psi) / (N + nu + D + 1).

    One MAP-EM step reaches it from any start; a second step does not move; and a numerical maximizer of
    the log posterior (over mu and a Cholesky factor of Sigma) finds the same point.
    """
    rng = np.random.default_rng(7)
    N, D = 40, 2
    X = rng.standard_normal((N, D)) @ np.array([[1.0, 0.0], [0.8, 0.5]]) + [2.0, -1.0]
    psi, nu = np.array([[0.5, 0.1], [0.1, 0.3]]), 3.5
    model = MAPGaussianMixture(1, psi, prior_dof=nu)
    mean = X.mean(axis=0)
    C = (X - mean).T @ (X - mean)
    mode = (C + psi) / (N + nu + D + 1)
    start = GaussianMixtureParams([1.0], [[10.0, 10.0]], [np.diag([5.0, 0.1])])
    run = emlib.em(model, X, start, max_iter=2, tol=0)
    np.testing.assert_allclose(run.params.means[0], mean, rtol=1e-12)
    np.testing.assert_allclose(run.params.covariances[0], mode, rtol=1e-12)
    assert run.log_likelihood[2] == pytest.approx(run.log_likelihood[1], rel=1e-14)

    def negative_log_posterior(v):
        L = np.array([[np.exp(v[2]), 0.0], [v[3], np.exp(v[4])]])
        theta = GaussianMixtureParams([1.0], [v[:2]], [L @ L.T])
        return -model.log_posterior(X, theta)

    L0 = np.linalg.cholesky(np.cov(X.T))
    v0 = np.r_[X[0], np.log(L0[0, 0]), L0[1, 0], np.log(L0[1, 1])]
    found = minimize(negative_log_posterior, v0, method="BFGS", options={"gtol": 1e-9})
    L = np.array([[np.exp(found.x[2]), 0.0], [found.x[3], np.exp(found.x[4])]])
    np.testing.assert_allclose(found.x[:2], mean, atol=1e-5)
    np.testing.assert_allclose(L @ L.T, mode, atol=1e-5)


def test_one_component_agrees_with_scikit_learn_bayesian_mixture():
    """scikit-learn's variational BayesianGaussianMixture with one component reports
    covariances_ = (Psi + C) / (nu_0 + N) (the inverse of E[Sigma^{-1}] under its Wishart posterior,
    with reg_covar = 0 and the mean prior at the data mean, so that the mean term vanishes). That is
    our MAP covariance when nu_0 = nu + D + 1: the same arithmetic, computed independently."""
    mixture = pytest.importorskip("sklearn.mixture")
    rng = np.random.default_rng(11)
    N, D = 50, 3
    X = rng.standard_normal((N, D)) @ rng.standard_normal((D, D)) + rng.uniform(-3, 3, D)
    psi = random_spd(rng, D, scale=0.7)
    nu = D + 0.5
    ours = emlib.em(MAPGaussianMixture(1, psi, prior_dof=nu), X,
                    GaussianMixtureParams([1.0], [X[0]], [np.eye(D)]), max_iter=3, tol=0).params
    theirs = mixture.BayesianGaussianMixture(
        n_components=1, covariance_type="full", reg_covar=0.0, covariance_prior=psi,
        degrees_of_freedom_prior=nu + D + 1, mean_prior=X.mean(axis=0), mean_precision_prior=1.0,
        max_iter=5, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol = 0: scikit-learn warns that it did not converge
        theirs.fit(X)
    np.testing.assert_allclose(ours.means[0], theirs.means_[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.covariances[0], theirs.covariances_[0], rtol=1e-10)


# ----------------------------------------------------------------------------- the prior
@pytest.mark.parametrize("D", [1, 2, 4])
def test_log_prior_is_the_inverse_wishart_density(D):
    rng = np.random.default_rng(D)
    psi, nu = random_spd(rng, D), D + 1.7
    model = MAPGaussianMixture(3, psi, prior_dof=nu)
    covs = np.stack([random_spd(rng, D, scale=s) for s in (0.1, 1.0, 10.0)])
    theta = GaussianMixtureParams(np.full(3, 1 / 3), np.zeros((3, D)), covs)
    expected = sum(invwishart(df=nu, scale=psi).logpdf(c if D > 1 else c[0, 0]) for c in covs)
    assert model.log_prior(theta) == pytest.approx(expected, rel=1e-10)
    assert model.log_prior(theta) == pytest.approx(sum(log_iw(c, psi, nu) for c in covs), rel=1e-10)


def test_log_prior_for_diagonal_covariances_is_a_product_of_inverse_gammas():
    rng = np.random.default_rng(5)
    psi, nu = np.array([0.5, 2.0, 1.0]), 2.5
    model = MAPGaussianMixture(2, psi, prior_dof=nu, covariance_type="diag")
    var = rng.uniform(0.1, 5.0, (2, 3))
    theta = GaussianMixtureParams([0.4, 0.6], np.zeros((2, 3)), var)
    expected = sum(invgamma(a=nu / 2, scale=psi[d] / 2).logpdf(var[k, d]) for k in range(2) for d in range(3))
    assert model.log_prior(theta) == pytest.approx(expected, rel=1e-12)
    one_dim = [invwishart(df=nu, scale=psi[d]).logpdf(var[k, d]) for k in range(2) for d in range(3)]
    assert model.log_prior(theta) == pytest.approx(sum(one_dim), rel=1e-10)  # IW_1(psi_d, nu) per variance


def test_e_step_reports_the_log_posterior():
    X, model, _ = random_problem(8, K=2, D=2)
    theta = model.init_params(X, np.random.default_rng(0))
    stats, value = model.e_step(X, theta)
    assert value == pytest.approx(model.log_likelihood(X, theta) + model.log_prior(theta), rel=1e-13)
    reference, _ = emlib.GaussianMixture(2, reg_covar=0.0).e_step(X, theta)
    for name in ("counts", "sum_x", "sum_xx"):
        np.testing.assert_allclose(getattr(stats, name), getattr(reference, name), rtol=1e-13)


# ----------------------------------------------------------------------------- MAP-EM
def posterior_bound(model, N):
    """Proposition gaussian_mixtures-prop-map-bounded: log p(X | theta) + log p(theta) <= B."""
    psi, nu, K = model.prior_scale, model.prior_dof, model.n_components
    D = psi.shape[0]

    def peak(n):  # max over Sigma of -n/2 log det Sigma - tr(Psi Sigma^{-1}) / 2, at Sigma = Psi / n
        return -0.5 * n * np.linalg.slogdet(psi / n)[1] - 0.5 * n * D

    const = 0.5 * nu * np.linalg.slogdet(psi)[1] - 0.5 * nu * D * np.log(2) - multigammaln(nu / 2, D)
    return (-0.5 * N * D * np.log(2 * np.pi) + const + peak(N + nu + D + 1)
            + (K - 1) * (const + peak(nu + D + 1)))


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 4), D=st.integers(1, 3),
       covariance_type=st.sampled_from(["full", "diag"]))
def test_map_em_never_decreases_the_log_posterior(seed, K, D, covariance_type):
    X, model, _ = random_problem(seed, K, D, N=40, covariance_type=covariance_type)
    run = emlib.em(model, X, model.init_params(X, np.random.default_rng(seed)), max_iter=60, tol=0)
    trace = run.log_likelihood
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))
    assert trace[-1] > trace[0]
    assert run.log_likelihood[-1] == pytest.approx(model.log_posterior(X, run.params), rel=1e-12)
    if covariance_type == "full":
        assert np.all(trace <= posterior_bound(model, len(X)))


def test_map_em_does_not_collapse_where_maximum_likelihood_does():
    """The chapter's spike start on the waiting times: maximum likelihood collapses the third
    component onto the shortest wait; MAP-EM converges, every covariance stays above the prior's floor,
    the log posterior rises at every step and stays below its bound."""
    waiting = emlib.datasets.old_faithful()[:, [1]]
    N = len(waiting)
    ml = emlib.GaussianMixture(2)
    fit = emlib.em(ml, waiting, ml.init_params(waiting, np.random.default_rng(0)), tol=1e-10).params
    start = GaussianMixtureParams(np.r_[0.9 * fit.weights, 0.1], np.r_[fit.means, [[waiting.min()]]],
                                  np.r_[fit.covariances, [[[0.1]]]])
    with pytest.raises(ValueError):
        emlib.em(emlib.GaussianMixture(3, reg_covar=0.0), waiting, start, max_iter=30, tol=0)
    model = MAPGaussianMixture.from_data(waiting, 3)
    run = emlib.em(model, waiting, start, max_iter=2000, tol=1e-10)
    assert run.converged
    assert np.all(np.diff(run.log_likelihood) > -1e-12 * np.abs(run.log_likelihood[1:]))
    assert run.log_likelihood.max() <= posterior_bound(model, N)
    floor = model.prior_scale[0, 0] / (N + model.prior_dof + 2)
    assert run.params.covariances.min() >= floor
    assert run.params.weights.min() * N > 10  # a genuine small cluster, not a spike on one point


def test_from_data_scales_the_data_covariance_by_the_number_of_components():
    X = emlib.datasets.old_faithful()
    for K in (1, 2, 3):
        model = MAPGaussianMixture.from_data(X, K)
        np.testing.assert_allclose(model.prior_scale, np.cov(X.T, bias=True) / K, rtol=1e-12)  # K^{2/D}, D = 2
        assert model.prior_dof == 4.0
    diag = MAPGaussianMixture.from_data(X[:, [1]], 2, covariance_type="diag")
    np.testing.assert_allclose(diag.prior_scale, [np.var(X[:, 1]) / 4], rtol=1e-12)  # K^{2/D}, D = 1


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("scale, dof, covariance_type, match", [
    (np.array([[1.0, 2.0], [2.0, 1.0]]), None, "full", "positive definite"),
    (np.array([[1.0, 0.5], [0.0, 1.0]]), None, "full", "symmetric"),
    (np.ones((2, 3)), None, "full", "square"),
    (np.array([[np.nan, 0.0], [0.0, 1.0]]), None, "full", "NaN"),
    (np.eye(2), 1.0, "full", "greater than D - 1"),
    (np.eye(2), np.inf, "full", "greater than D - 1"),
    (np.eye(2), "many", "full", "prior_dof"),
    (np.array([1.0, 0.0]), None, "diag", "positive"),
    (np.eye(2), None, "diag", "shape"),
])
def test_bad_priors_are_refused(scale, dof, covariance_type, match):
    with pytest.raises(ValueError, match=match):
        MAPGaussianMixture(2, scale, prior_dof=dof, covariance_type=covariance_type)


def test_dimension_mismatches_and_empty_components_are_refused():
    model = MAPGaussianMixture(2, np.eye(2))
    X3 = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match="D = 2"):
        model.check_data(X3)
    with pytest.raises(ValueError, match="D = 2"):
        model.log_prior(GaussianMixtureParams([0.5, 0.5], np.zeros((2, 3)), np.stack([np.eye(3)] * 2)))
    with pytest.raises(ValueError, match="D = 2"):
        model.m_step(GaussianMixtureStats(np.array([10.0, 10.0]), np.zeros((2, 3)), np.stack([np.eye(3)] * 2)))
    with pytest.raises(ValueError, match="no responsibility"):
        model.m_step(GaussianMixtureStats(np.array([272.0, 1e-14]), np.ones((2, 2)), np.stack([np.eye(2)] * 2)))
    with pytest.raises(ValueError, match="NaN"):
        emlib.em(model, np.array([[0.0, np.nan], [1.0, 2.0], [2.0, 1.0]]),
                 GaussianMixtureParams([0.5, 0.5], np.zeros((2, 2)), np.stack([np.eye(2)] * 2)))
