"""The claims of the chapter "Why the E-step is tractable, and why Monte Carlo on the marginal is
hard" (book/tractable_estep.ipynb), checked numerically. Test names follow the chapter's
propositions, theorems and equations.

Statistical tests use fixed seeds (deterministic) and tolerances of a few standard errors computed
from exact moments: a correct implementation passes with near certainty, and a systematic error of
a few standard errors fails.
"""
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.special import expit, logsumexp

import emlib
from emlib import monte_carlo as mc
from emlib.bounds import elbo, expected_complete_loglik, kl_to_posterior

from theory_cases import dirichlet_rows


def _gmm_Q_from_stats(stats, params):
    """Equation tractable_estep-gmm-Q: sum_k N_k c_k + mu_k^T P_k S1_k - tr(P_k S2_k) / 2."""
    total = 0.0
    for k in range(params.n_components):
        mu, Sigma = params.means[k], params.covariances[k]
        P = np.linalg.inv(Sigma)
        c_k = (np.log(params.weights[k]) - 0.5 * len(mu) * np.log(2 * np.pi)
               - 0.5 * np.linalg.slogdet(Sigma)[1] - 0.5 * mu @ P @ mu)
        total += stats.counts[k] * c_k + mu @ P @ stats.sum_x[k] - 0.5 * np.trace(P @ stats.sum_xx[k])
    return total


def test_expected_stats_two_ways_agree(faithful):
    """Equation tractable_estep-gmm-stats: formula, emlib, a sum over chunks, and the chunked e_step."""
    model = emlib.GaussianMixture(2)
    params = model.init_params(faithful, np.random.default_rng(0))
    r = model.posterior(faithful, params)
    formula = (r.sum(axis=0), r.T @ faithful, np.einsum("nk,nd,ne->kde", r, faithful, faithful))
    chunks = np.array_split(np.arange(faithful.shape[0]), 4)
    chunked = sum((model.expected_stats(faithful[c], r[c]) for c in chunks[1:]),
                  model.expected_stats(faithful[chunks[0]], r[chunks[0]]))
    e_step_stats, _ = emlib.GaussianMixture(2, chunk_size=50).e_step(faithful, params)
    for stats in (model.expected_stats(faithful, r), chunked, e_step_stats):
        for got, want in zip((stats.counts, stats.sum_x, stats.sum_xx), formula):
            np.testing.assert_allclose(got, want, rtol=1e-11)
    assert r.sum() == pytest.approx(faithful.shape[0], rel=1e-12)


@pytest.mark.parametrize("kind", ["posterior", "random", "one-hot"])
def test_Q_depends_on_data_only_through_expected_stats(faithful, kind):
    """Proposition tractable_estep-prop-stats for the mixture: equation tractable_estep-gmm-Q from the
    statistics equals E_q[log p(x, z | theta)] from all the data, at an unrelated theta. With one-hot
    q it is the complete-data log-likelihood itself (equation tractable_estep-gmm-expfam)."""
    model = emlib.GaussianMixture(2)
    theta_t = model.init_params(faithful, np.random.default_rng(0))
    other = model.init_params(faithful, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    q = {"posterior": model.posterior(faithful, theta_t),
         "random": dirichlet_rows(rng, (faithful.shape[0], 2)),
         "one-hot": np.eye(2)[rng.integers(0, 2, faithful.shape[0])]}[kind]
    from_stats = _gmm_Q_from_stats(model.expected_stats(faithful, q), other)
    assert from_stats == pytest.approx(expected_complete_loglik(model, faithful, other, q), rel=1e-11)
    if kind == "one-hot":
        z = q.argmax(axis=1)
        complete = model.log_joint(faithful, other)[np.arange(len(z)), z].sum()
        assert from_stats == pytest.approx(complete, rel=1e-11)


def test_sundberg_likelihood_equations_hold_at_the_em_fixed_point(faithful):
    """Exercise tractable_estep-ex-sundberg: at convergence E_theta[t | x] = E_theta[t], i.e. the
    posterior statistics equal the model's expected statistics N pi_k, N pi_k mu_k,
    N pi_k (Sigma_k + mu_k mu_k^T). reg_covar=0 makes the M-step exact."""
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    fit = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)), tol=1e-13)
    assert fit.converged
    p = fit.params
    N = faithful.shape[0]
    post = model.expected_stats(faithful, model.posterior(faithful, p))
    np.testing.assert_allclose(post.counts, N * p.weights, rtol=1e-5)
    np.testing.assert_allclose(post.sum_x, N * p.weights[:, None] * p.means, rtol=1e-5)
    second = p.covariances + np.einsum("ki,kj->kij", p.means, p.means)
    np.testing.assert_allclose(post.sum_xx, N * p.weights[:, None, None] * second, rtol=1e-5)


@pytest.fixture(scope="module")
def one_d_mixture():
    mix = emlib.GaussianMixture(2, "diag")
    theta = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.5], [1.5]], [[1.0], [1.0]])
    X, _ = mix.sample(theta, 100, np.random.default_rng(1))
    return mix, theta, X


def test_monte_carlo_marginal_is_unbiased(one_d_mixture):
    """Equation tractable_estep-naive: E[p_hat] = p(x | theta).

    R independent runs of the S-sample naive estimator for N = 6 points. Their mean ratio
    p_hat / p has standard error sqrt(relvar_S / R) with relvar_S the exact relative variance of
    equation tractable_estep-relvar; we allow 4 standard errors (a correct estimator fails with
    probability about 6e-5 under the normal approximation; the seed is fixed, so the test is
    deterministic). A bias of 4 standard errors is under 4 per cent here.
    """
    mix, theta, X = one_d_mixture
    X6 = X[:6]
    log_joint = mix.log_joint(X6, theta)
    log_p = mix.log_likelihood(X6, theta)
    S, R = 1000, 400
    rng = np.random.default_rng(10)
    ratios = np.exp([mc.log_marginal_estimate(log_joint, theta.weights, S, rng) - log_p for _ in range(R)])
    se = np.sqrt(mc.relative_variance(log_joint, theta.weights, S) / R)
    assert abs(ratios.mean() - 1.0) < 4 * se
    assert se < 0.01


def test_relative_variance_formula_matches_simulation(one_d_mixture):
    """Proposition tractable_estep-prop-relvar: the sample second moment of the weights w / p matches
    prod_n c_n. Its standard error comes from the exact fourth moment prod_n sum_k p^4 / r^3 / p^4;
    tolerance 4 standard errors."""
    mix, theta, X = one_d_mixture
    X4 = X[:4]
    log_joint = mix.log_joint(X4, theta)
    log_p_n = logsumexp(log_joint, axis=1)
    log_r = np.log(theta.weights)
    second = np.exp(mc.log_relative_second_moment(log_joint, theta.weights))
    fourth = np.exp(np.sum(logsumexp(4 * log_joint - 3 * log_r, axis=1) - 4 * log_p_n))
    M = 50000
    w = np.exp(mc.log_importance_weights(log_joint, theta.weights, M, np.random.default_rng(11)) - log_p_n.sum())
    se = np.sqrt((fourth - second**2) / M)
    assert abs(np.mean(w**2) - second) < 4 * se
    assert second > 1.5  # the latent variable matters: the variance is far from zero


def test_relative_variance_grows_with_N(one_d_mixture):
    """Equation tractable_estep-relvar: log(1 + relvar) = sum_n log c_n with every c_n >= 1, so it
    grows with N, at least linearly when the c_n are bounded below; c_n = 1 for the posterior."""
    mix, theta, X = one_d_mixture
    log_joint = mix.log_joint(X, theta)
    log_c = np.array([mc.log_relative_second_moment(log_joint[n:n + 1], theta.weights) for n in range(len(X))])
    assert np.all(log_c >= 0)
    L = [mc.log_relative_second_moment(log_joint[:n], theta.weights) for n in range(1, len(X) + 1)]
    np.testing.assert_allclose(L, np.cumsum(log_c), rtol=1e-10)
    assert np.all(np.diff(L) >= 0)
    assert L[-1] >= len(X) * np.quantile(log_c, 0.0) and L[-1] > 50  # e^50: hopeless for sampling
    relvar_10, relvar_100 = np.expm1(L[9]), np.expm1(L[99])
    assert relvar_100 > 1e15 * relvar_10                           # exponential, not polynomial
    posterior = mix.posterior(X, theta)
    assert abs(mc.log_relative_second_moment(log_joint, posterior)) < 1e-10


def test_mcem_average_of_the_log_has_variance_linear_in_N(one_d_mixture):
    """The contrast of tractable_estep-fig-variance: for z ~ posterior, Var[log p(x, z | theta)] =
    sum_n Var_n (additive in N). Checked against simulation with 4 standard errors, using the exact
    fourth central moment of the sum of independent terms."""
    mix, theta, X = one_d_mixture
    X30 = X[:30]
    lj, r = mix.log_joint(X30, theta), mix.posterior(X30, theta)
    mean_n = (r * lj).sum(axis=1)
    var_n = (r * (lj - mean_n[:, None]) ** 2).sum(axis=1)
    mu4_n = (r * (lj - mean_n[:, None]) ** 4).sum(axis=1)
    V = var_n.sum()
    mu4 = mu4_n.sum() + 3 * (V**2 - (var_n**2).sum())               # fourth central moment of a sum
    M = 20000
    z = mc.sample_configurations(r, M, np.random.default_rng(12))
    values = mc.log_prob_of_configurations(lj, z)
    se = np.sqrt((mu4 - V**2) / M)
    assert abs(values.var() - V) < 4 * se
    assert abs(values.mean() - mean_n.sum()) < 4 * np.sqrt(V / M)


@pytest.fixture(scope="module")
def mixing_weight_example():
    known = {"means": [[-0.5], [0.5]], "covariances": [[1.0], [1.0]]}
    model = emlib.GaussianMixture(2, "diag", fixed=known)
    params = lambda p: emlib.GaussianMixtureParams([p, 1 - p], known["means"], known["covariances"])
    X, _ = model.sample(params(0.3), 40, np.random.default_rng(7))
    return model, params, X


def test_unweighted_posterior_samples_estimate_a_different_function(mixing_weight_example):
    """Equation tractable_estep-unweighted: samples from p(z | x, pi_t) without weights average to
    prod_n sum_k r_nk p(x_n, k | pi), not p(x | pi); with weights 1 / r(z) they average to p(x | pi).
    Both means are checked within 4 standard errors computed from the exact second moments."""
    model, params, X = mixing_weight_example
    X8 = X[:8]                                                      # small N: finite, moderate variance
    r = model.posterior(X8, params(0.5))
    lj = model.log_joint(X8, params(0.35))
    M = 40000
    z = mc.sample_configurations(r, M, np.random.default_rng(13))
    log_joint_z = mc.log_prob_of_configurations(lj, z)
    log_r_z = mc.log_prob_of_configurations(np.log(r), z)
    limit_unweighted = logsumexp(np.log(r) + lj, axis=1).sum()
    log_p = logsumexp(lj, axis=1).sum()
    # unweighted: ratio to its limit has mean 1; variance from sum_k r p^2 per point
    ratio_u = np.exp(log_joint_z - limit_unweighted)
    second_u = np.exp(np.sum(logsumexp(np.log(r) + 2 * lj, axis=1) - 2 * logsumexp(np.log(r) + lj, axis=1)))
    assert abs(ratio_u.mean() - 1) < 4 * np.sqrt((second_u - 1) / M)
    # weighted: ratio to p(x | pi) has mean 1, variance from equation (relvar)
    ratio_w = np.exp(log_joint_z - log_r_z - log_p)
    assert abs(ratio_w.mean() - 1) < 4 * np.sqrt(mc.relative_variance(lj, r, M))
    # and the two targets differ by far more than the Monte Carlo error
    assert abs(limit_unweighted - log_p) > 1.0


def test_unweighted_maximizer_is_wrong_and_iterating_runs_away(mixing_weight_example):
    """The figure tractable_estep-fig-unweighted: the maximizer of the unweighted limit differs from
    the maximum-likelihood estimate, and iterating it drives pi to the boundary while EM converges."""
    model, params, X = mixing_weight_example
    grid = np.linspace(0.005, 0.995, 199)
    lj = np.array([model.log_joint(X, params(p)) for p in grid])
    mle = grid[np.argmax(logsumexp(lj, axis=-1).sum(axis=-1))]

    def argmax_unweighted(p_t):
        r = model.posterior(X, params(p_t))
        f = lambda p: -logsumexp(np.log(r) + model.log_joint(X, params(p)), axis=1).sum()
        return minimize_scalar(f, bounds=(1e-6, 1 - 1e-6), method="bounded", options={"xatol": 1e-9}).x

    first = argmax_unweighted(0.5)
    assert abs(first - mle) > 0.02
    p = 0.5
    for _ in range(10):
        p = argmax_unweighted(p)
    assert p < 1e-3
    em_fit = emlib.em(model, X, params(0.5), tol=1e-12)
    assert abs(em_fit.params.weights[0] - mle) < 0.005 + 1e-9          # the grid step is 0.005


def test_prior_samples_without_weights_ignore_the_mixing_weight(mixing_weight_example):
    """First shortcut of tractable_estep: averaging p(x | z, pi) over z ~ p(z | pi_t) gives the same
    number for every pi, because p(x | z, pi) does not involve pi."""
    model, params, X = mixing_weight_example
    z = mc.sample_configurations([0.5, 0.5], 500, np.random.default_rng(14), n_points=X.shape[0])
    estimates = []
    for p in (0.1, 0.5, 0.9):
        log_cond = model.log_joint(X, params(p)) - np.log([p, 1 - p])   # log p(x_n | z_n = k)
        estimates.append(mc.log_mean_exp(mc.log_prob_of_configurations(log_cond, z)))
    np.testing.assert_allclose(estimates, estimates[0], rtol=1e-12)


def _score_variance(a, b, beta, kappa, D):
    """Equation tractable_estep-score-variance."""
    return (a - b) ** 2 + beta @ beta + beta[0] ** 2 - 2 * (a - b) * kappa * (D + 2) + kappa**2 * (D + 2) * (D + 4)


@pytest.mark.parametrize("D", [1, 4, 12])
def test_score_function_variance_exceeds_reparameterization(D):
    """Equations tractable_estep-score and tractable_estep-reparam for f(z) = log N(x | z, s^2 I),
    z ~ N(mu, I): both unbiased for (x - mu) / s^2; the score-function variance follows the formula
    and exceeds the reparameterization variance 1 / s^4.

    Tolerances: the means within 4 standard errors (from the exact variances); the score-function
    sample variance within 15 per cent of the formula. With 100000 draws the relative standard error
    of that sample variance is at most about 3 per cent in these cases (measured over independent
    seeds; the estimator is heavy-tailed), so 15 per cent is about five standard errors.
    """
    s, S = 0.8, 100000
    kappa = 1 / (2 * s**2)
    x, mu = np.linspace(-0.5, 1.0, D), np.full(D, 0.2)
    f = lambda z: -0.5 * D * np.log(2 * np.pi * s**2) - kappa * ((x - z) ** 2).sum(axis=1)
    grad_f = lambda z: (x - z) / s**2
    a, beta = f(mu[None])[0], (x - mu) / s**2
    exact_grad = beta
    for b in (0.0, a - kappa * D):
        g = mc.score_function_gradient(f, mu, 1.0, S, np.random.default_rng(D), baseline=b)
        V = _score_variance(a, b, beta, kappa, D)
        V_all = V - beta[0] ** 2 + beta**2          # the formula for coordinate d has beta_d for beta_1
        assert np.all(np.abs(g.mean(axis=0) - exact_grad) < 4 * np.sqrt(V_all / S))
        assert g[:, 0].var() == pytest.approx(V, rel=0.15)
        assert V > 1 / s**4
    g = mc.reparameterization_gradient(grad_f, mu, 1.0, S, np.random.default_rng(D))
    assert np.all(np.abs(g.mean(axis=0) - exact_grad) < 4 * np.sqrt(1 / s**4 / S))
    np.testing.assert_allclose(g.var(axis=0), 1 / s**4, rtol=0.03)   # relative s.e. sqrt(2/S) = 0.45 %


def test_score_function_variance_grows_with_dimension():
    """The text after equation tractable_estep-score-variance: like D^2 without a baseline, like D
    with b = E[f], while the reparameterization variance stays 1 / s^4."""
    s = 1.0
    kappa = 1 / (2 * s**2)
    V, Vb = [], []
    dims = np.array([10, 100, 1000])
    for D in dims:
        x, mu = np.full(D, 0.5), np.zeros(D)
        a, beta = -0.5 * D * np.log(2 * np.pi * s**2) - kappa * (x - mu) @ (x - mu), (x - mu) / s**2
        V.append(_score_variance(a, 0.0, beta, kappa, D))
        Vb.append(_score_variance(a, a - kappa * D, beta, kappa, D))
        assert Vb[-1] == pytest.approx(beta @ beta + beta[0] ** 2 + kappa**2 * (2 * D + 8), rel=1e-12)
    slopes = np.diff(np.log(V)) / np.diff(np.log(dims))
    slopes_b = np.diff(np.log(Vb)) / np.diff(np.log(dims))
    assert np.all(np.abs(slopes[-1:] - 2) < 0.05)
    assert np.all(np.abs(slopes_b[-1:] - 1) < 0.05)


def test_mcem_statistics_are_unbiased_for_the_expected_statistics(faithful):
    """Equation tractable_estep-mcem: averaging one-hot configurations drawn from the posterior gives
    expected counts with mean N_k and variance sum_n r_nk (1 - r_nk) / S; within 4 standard errors.
    The M-step from them approaches the exact M-step."""
    model = emlib.GaussianMixture(2)
    params = model.init_params(faithful, np.random.default_rng(0))
    r = model.posterior(faithful, params)
    S = 400
    z = mc.sample_configurations(r, S, np.random.default_rng(15))
    q_hat = np.eye(2)[z].mean(axis=0)
    counts = model.expected_stats(faithful, q_hat).counts
    se = np.sqrt((r * (1 - r)).sum(axis=0) / S)
    assert np.all(np.abs(counts - r.sum(axis=0)) < 4 * se)
    mc_means = model.m_step(model.expected_stats(faithful, q_hat)).means
    exact_means = model.m_step(model.expected_stats(faithful, r)).means
    assert np.max(np.abs(mc_means - exact_means)) < 0.5              # minutes; the spread of the data is ~14

