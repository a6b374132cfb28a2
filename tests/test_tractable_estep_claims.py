"""The claims of the chapter "Why the E-step is tractable, and why Monte Carlo on the marginal is
hard" (book/tractable_estep.ipynb), checked numerically. Test names follow the chapter's
propositions, theorems and equations.

Statistical tests use fixed seeds (deterministic) and tolerances of a few standard errors computed
from exact moments: a correct implementation passes with near certainty, and a systematic error of
a few standard errors fails.
"""

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from scipy.stats import norm

import emlib
from emlib import monte_carlo as mc
from emlib.bounds import expected_complete_loglik, kl_to_posterior
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


# -- Claims added with the chapter's revision ----------------------------------------

def _gaussian_log_normalizer(b, Lam):
    """A_N(b, Lambda) = -b^T Lambda^{-1} b / 4 - log det(-2 Lambda) / 2, per component."""
    solved = np.linalg.solve(Lam, b[..., None])[..., 0]
    return -0.25 * np.sum(b * solved, axis=-1) - 0.5 * np.linalg.slogdet(-2 * Lam)[1]


def _natural(params):
    precision = np.linalg.inv(params.covariances)
    b = np.einsum("kij,kj->ki", precision, params.means)
    Lam = -0.5 * precision
    log_odds = np.log(params.weights) - _gaussian_log_normalizer(b, Lam)
    return log_odds[:-1] - log_odds[-1], b, Lam


def _A(alpha, b, Lam):
    return logsumexp(np.append(alpha, 0.0) + _gaussian_log_normalizer(b, Lam))


def _Q_natural(eta, stats):
    alpha, b, Lam = eta
    return (alpha @ stats.counts[:-1] + np.sum(b * stats.sum_x) + np.sum(Lam * stats.sum_xx)
            - stats.counts.sum() * _A(alpha, b, Lam))


@pytest.fixture(scope="module")
def faithful_fit(faithful):
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    theta = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)),
                     max_iter=200, tol=0).params
    r = model.posterior(faithful, theta)
    return model, faithful, theta, r, model.expected_stats(faithful, r)


def test_minimal_representation_reproduces_the_complete_data_loglik(faithful_fit):
    """Equation tractable_estep-gmm-minimal: with eta = (alpha, b, Lambda) and A(eta), the
    complete-data log-likelihood of every one-hot q, and E_q for a soft q, are reproduced."""
    model, X, _, r, _ = faithful_fit
    N, D = X.shape
    const = -0.5 * N * D * np.log(2 * np.pi)
    for seed in range(3):
        other = model.init_params(X, np.random.default_rng(10 + seed))
        eta = _natural(other)
        for q in (r, np.eye(2)[np.argmax(r, axis=1)], np.full_like(r, 0.5)):
            stats = model.expected_stats(X, q)
            assert _Q_natural(eta, stats) + const == pytest.approx(
                expected_complete_loglik(model, X, other, q), rel=1e-11)


def test_gradient_of_A_is_the_mean_of_the_statistics(faithful_fit):
    """dA/dalpha_k = pi_k, grad_b_k A = pi_k mu_k, grad_Lambda_k A = pi_k (Sigma_k + mu_k mu_k^T),
    by central differences in each coordinate of eta."""
    _, _, theta, _, _ = faithful_fit
    alpha, b, Lam = _natural(theta)
    h = 1e-7
    d_alpha = (_A(alpha + h, b, Lam) - _A(alpha - h, b, Lam)) / (2 * h)
    assert d_alpha == pytest.approx(theta.weights[0], rel=1e-6)
    for k in range(2):
        for i in range(2):
            e = np.zeros_like(b)
            e[k, i] = h
            d_b = (_A(alpha, b + e, Lam) - _A(alpha, b - e, Lam)) / (2 * h)
            assert d_b == pytest.approx(theta.weights[k] * theta.means[k, i], rel=1e-6)
            for j in range(2):
                E = np.zeros_like(Lam)
                E[k, i, j] = h * 1e-2                                  # Lambda entries are small
                d_L = (_A(alpha, b, Lam + E) - _A(alpha, b, Lam - E)) / (2 * h * 1e-2)
                second = theta.covariances[k, i, j] + theta.means[k, i] * theta.means[k, j]
                assert d_L == pytest.approx(theta.weights[k] * second, rel=1e-5)


def test_hessian_of_A_is_the_covariance_of_the_statistics():
    """Theorem tractable_estep-thm-concave, part 1, for a one-dimensional two-component mixture:
    the finite-difference Hessian of A in (alpha, b_1, b_2, Lambda_1, Lambda_2) equals the exact
    covariance of t = (1[z=1], 1[z=k] x, 1[z=k] x^2), computed from Gaussian moments; and it is
    positive definite (the representation is minimal)."""
    pi, mu, var = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    params = emlib.GaussianMixtureParams(pi, mu[:, None], var[:, None, None])
    alpha, b, Lam = _natural(params)
    flat = np.concatenate([alpha, b.ravel(), Lam.ravel()])

    def A_flat(v):
        return _A(v[:1], v[1:3].reshape(2, 1), v[3:5].reshape(2, 1, 1))

    h = 1e-4
    H = np.empty((5, 5))
    for i in range(5):
        for j in range(5):
            ei, ej = np.eye(5)[i] * h, np.eye(5)[j] * h
            H[i, j] = (A_flat(flat + ei + ej) - A_flat(flat + ei - ej) - A_flat(flat - ei + ej)
                       + A_flat(flat - ei - ej)) / (4 * h * h)
    # raw moments E[x^p | z = k] for p = 0..4
    m = np.array([[1, u, u**2 + s, u**3 + 3 * u * s, u**4 + 6 * u**2 * s + 3 * s**2]
                  for u, s in zip(mu, var)])
    # t = (1[z=1], 1[z=1] x, 1[z=2] x, 1[z=1] x^2, 1[z=2] x^2): (component, power) of each entry
    entries = [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    mean = np.array([pi[k] * m[k, p] for k, p in entries])
    second = np.array([[pi[k] * m[k, p + q] if k == l else 0.0 for l, q in entries]
                       for k, p in entries])
    cov = second - np.outer(mean, mean)
    np.testing.assert_allclose(H, cov, rtol=1e-4, atol=1e-5)
    assert np.linalg.eigvalsh(cov).min() > 1e-3


def test_Q_is_concave_in_eta_and_not_along_straight_lines_in_theta(faithful_fit):
    """Theorem tractable_estep-thm-concave, part 2, on Old Faithful: along segments between pairs of
    parameters, Q has non-positive second differences in natural coordinates; along the straight
    segment in (pi, mu, Sigma) from the M-step to another parameter it has positive ones."""
    model, X, _, r, stats = faithful_fit
    m_step = model.m_step(stats)
    s = np.linspace(0, 1, 101)
    for seed in range(4):
        other = model.init_params(X, np.random.default_rng(20 + seed))
        ends = (_natural(m_step), _natural(other))
        Q = np.array([_Q_natural(tuple((1 - u) * p + u * q for p, q in zip(*ends)), stats)
                      for u in s])
        assert np.max(Q[2:] - 2 * Q[1:-1] + Q[:-2]) <= 1e-9 * np.abs(Q).max()
    other = model.init_params(X, np.random.default_rng(1))
    line = [emlib.GaussianMixtureParams((1 - u) * m_step.weights + u * other.weights,
                                        (1 - u) * m_step.means + u * other.means,
                                        (1 - u) * m_step.covariances + u * other.covariances)
            for u in s]
    Q_theta = np.array([expected_complete_loglik(model, X, p, r) for p in line])
    assert np.max(Q_theta[2:] - 2 * Q_theta[1:-1] + Q_theta[:-2]) > 1e-3


def test_the_m_step_solves_the_moment_equations(faithful_fit):
    """Theorem tractable_estep-thm-concave, part 3: at the M-step's answer the gradient of Q in eta
    vanishes, and any other parameter has a lower Q (the stationary point is the global maximum)."""
    model, X, _, _, stats = faithful_fit
    eta = _natural(model.m_step(stats))
    alpha, b, Lam = eta
    h = 1e-6
    d_alpha = (_Q_natural((alpha + h, b, Lam), stats) - _Q_natural((alpha - h, b, Lam), stats)) / (2 * h)
    assert abs(d_alpha[0] if np.ndim(d_alpha) else d_alpha) < 1e-3
    best = _Q_natural(eta, stats)
    for seed in range(10):
        other = _natural(model.init_params(X, np.random.default_rng(30 + seed)))
        assert _Q_natural(other, stats) < best


def test_variance_example_of_the_concavity_exercise():
    """Exercise tractable_estep-ex-concave, part 2: -N/2 log v - S/(2v) is convex for v > 2S/N,
    concave in eta = -1/(2v), and both have their maximum at v = S/N."""
    N, S = 10, 25.0
    f = lambda v: -N / 2 * np.log(v) - S / (2 * v)
    g = lambda eta: N / 2 * np.log(-2 * eta) + eta * S
    h = 1e-3
    for v in (3 * S / N, 10 * S / N):
        assert (f(v + h) - 2 * f(v) + f(v - h)) / h**2 > 0
    for eta in np.linspace(-5, -0.01, 20):
        assert (g(eta + 1e-4) - 2 * g(eta) + g(eta - 1e-4)) / 1e-8 < 0
    v = np.linspace(0.1, 20, 20000)
    assert v[np.argmax(f(v))] == pytest.approx(S / N, abs=1e-3)
    eta = np.linspace(-5, -0.01, 20000)
    assert -1 / (2 * eta[np.argmax(g(eta))]) == pytest.approx(S / N, rel=1e-3)


# ====================================================================== the normalizer
def test_posterior_times_likelihood_is_the_joint_over_all_configurations():
    """Equation tractable_estep-normalizer: for every configuration z of a small data set,
    p(z | x, theta) p(x | theta) = p(x, z | theta), with the posterior from emlib's responsibilities
    and p(x | theta) from its log-likelihood."""
    model = emlib.GaussianMixture(3, "diag")
    params = emlib.GaussianMixtureParams([0.2, 0.5, 0.3], [[-1.0], [0.5], [2.0]], [[1.0], [0.5], [2.0]])
    X = np.array([[-0.7], [0.4], [1.9], [3.0]])
    lj, r, ll = model.log_joint(X, params), model.posterior(X, params), model.log_likelihood(X, params)
    for z in itertools.product(range(3), repeat=4):
        idx = (np.arange(4), list(z))
        assert np.sum(np.log(r[idx])) + ll == pytest.approx(np.sum(lj[idx]), rel=1e-12)


CHAIN_A = np.array([[0.9, 0.1], [0.2, 0.8]])
CHAIN_INIT = np.array([0.5, 0.5])


def _chain_paths(log_emission):
    n = log_emission.shape[0]
    paths = np.array(list(itertools.product(range(2), repeat=n)))
    log_prior = np.log(CHAIN_INIT)[paths[:, 0]] + np.log(CHAIN_A)[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    return paths, log_prior, log_prior + log_emission[np.arange(n), paths].sum(axis=1)


def _forward_log(log_emission):
    """log sum_z p(z) prod_n exp(log_emission[n, z_n]), by the forward recursion in log space."""
    a = np.log(CHAIN_INIT) + log_emission[0]
    for le in log_emission[1:]:
        a = logsumexp(a[:, None] + np.log(CHAIN_A), axis=0) + le
    return logsumexp(a)


@pytest.fixture(scope="module")
def chain():
    rng = np.random.default_rng(5)
    z = [rng.choice(2, p=CHAIN_INIT)]
    for _ in range(9):
        z.append(rng.choice(2, p=CHAIN_A[z[-1]]))
    x = np.array([-1.0, 1.0])[z] + rng.standard_normal(10)
    return norm.logpdf(x[:, None], [-1.0, 1.0], 1.0)


def test_chain_posterior_needs_only_one_and_two_slice_marginals(chain):
    """The hidden Markov chain of the chapter: the expected complete-data log-likelihood computed
    over all 2^N paths equals the one computed from gamma and xi (marginals from enumeration), and
    the posterior does not factorize over points."""
    paths, log_prior, log_joint = _chain_paths(chain)
    post = np.exp(log_joint - logsumexp(log_joint))
    full = post @ log_joint
    gamma = np.stack([post @ (paths == k) for k in range(2)], axis=-1)
    xi = np.stack([[post @ ((paths[:, :-1] == j) & (paths[:, 1:] == k)) for k in range(2)]
                   for j in range(2)]).transpose(2, 0, 1)
    from_marginals = (gamma[0] @ np.log(CHAIN_INIT) + np.sum(xi * np.log(CHAIN_A))
                      + np.sum(gamma * chain))
    assert from_marginals == pytest.approx(full, rel=1e-12)
    assert np.abs(xi - gamma[:-1, :, None] * gamma[1:, None, :]).max() > 0.01
    assert _forward_log(chain) == pytest.approx(logsumexp(log_joint), rel=1e-12)


def test_relative_variance_of_whole_paths_is_exp_renyi2(chain):
    """Proposition tractable_estep-prop-relvar for a coupled proposal (the prior Markov chain):
    E_g[w^2] / p(x)^2 = exp(D_2(p(z | x) || g)), and D_2 is the forward recursion with squared
    emissions minus 2 log p(x), as the chapter computes it."""
    paths, log_prior, log_joint = _chain_paths(chain)
    log_p = logsumexp(log_joint)
    log_w = log_joint - log_prior                                       # w = p(x, z) / g(z)
    second = np.sum(np.exp(log_prior + 2 * (log_w - log_p)))
    d2 = logsumexp(2 * (log_joint - log_p) - log_prior)
    assert np.log(second) == pytest.approx(d2, rel=1e-12)
    assert d2 == pytest.approx(_forward_log(2 * chain) - 2 * _forward_log(chain), rel=1e-10)
    # D_2 of the first n points need not increase at every step (a new observation also changes
    # the posterior of the earlier states), but over a long chain it grows about linearly
    rng = np.random.default_rng(6)
    z = [0]
    for _ in range(299):
        z.append(rng.choice(2, p=CHAIN_A[z[-1]]))
    long_chain = norm.logpdf((np.array([-1.0, 1.0])[z] + rng.standard_normal(300))[:, None],
                             [-1.0, 1.0], 1.0)
    d2_n = np.array([_forward_log(2 * long_chain[:n]) - 2 * _forward_log(long_chain[:n])
                     for n in (100, 200, 300)])
    assert np.all(np.diff(d2_n) > 10)
    assert np.diff(d2_n)[1] == pytest.approx(np.diff(d2_n)[0], rel=0.5)


# ====================================================================== Monte Carlo on the marginal
@pytest.fixture(scope="module")
def one_d():
    mix = emlib.GaussianMixture(2, "diag")
    theta = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.5], [1.5]], [[1.0], [1.0]])
    X, _ = mix.sample(theta, 100, np.random.default_rng(1))
    return mix, theta, X


def test_per_point_draws_needed_grow_linearly_and_whole_configurations_exponentially(one_d):
    """Proposition tractable_estep-prop-per-point: the m solving prod (1 + (c_n - 1) / m) - 1 = eps^2
    is close to sum (c_n - 1) / eps^2 (within a few per cent), grows about linearly in N, while
    (prod c_n - 1) / eps^2 grows exponentially."""
    mix, theta, X = one_d
    log_c = mc.renyi2_divergences(mix.log_joint(X, theta), theta.weights)
    eps = 0.1
    m_needed = []
    for n in (25, 50, 100):
        excess = np.expm1(log_c[:n])
        m = excess.sum() / eps**2
        # the first-order m gives a relative variance within a few per cent of eps^2
        assert np.expm1(np.sum(np.log1p(excess / m))) == pytest.approx(eps**2, rel=0.01)
        m_needed.append(m)
    assert m_needed[2] / m_needed[0] == pytest.approx(4, rel=0.35)
    assert np.sum(log_c[:100]) - np.sum(log_c[:50]) > 20                # e^20 more whole samples


def test_fisher_identity_and_self_normalized_importance_sampling(one_d):
    """Equations tractable_estep-fisher and tractable_estep-snis: the gradient of emlib's
    log-likelihood in mu_1 (finite differences) equals sum_n r_n1 (x_n - mu_1); the self-normalized
    estimate with prior draws is close to it when e^{D_2} << m, with an effective sample size near
    m e^{-D_2}, and degenerate (effective sample size below 10) when e^{D_2} >> m."""
    mix, theta, X = one_d
    r = mix.posterior(X, theta)
    mu_1 = theta.means[0, 0]

    def loglik(m1, n):
        p = emlib.GaussianMixtureParams(theta.weights, [[m1], [theta.means[1, 0]]], theta.covariances)
        return mix.log_likelihood(X[:n], p)

    h = 1e-6
    for n in (4, 100):
        exact = np.sum(r[:n, 0] * (X[:n, 0] - mu_1))
        assert (loglik(mu_1 + h, n) - loglik(mu_1 - h, n)) / (2 * h) == pytest.approx(exact, abs=1e-5)
    m = 40000
    for n, good in ((4, True), (60, False)):
        lj = mix.log_joint(X[:n], theta)
        z = mc.sample_configurations(theta.weights, m, np.random.default_rng(n), n_points=n)
        log_w = mc.log_prob_of_configurations(lj - np.log(theta.weights), z)
        w = mc.self_normalized_weights(log_w)
        estimate = w @ np.sum((z == 0) * (X[:n, 0] - mu_1), axis=1)
        exact = np.sum(r[:n, 0] * (X[:n, 0] - mu_1))
        ess = mc.effective_sample_size(log_w)
        d2 = mc.log_relative_second_moment(lj, theta.weights)
        if good:
            assert ess == pytest.approx(m * np.exp(-d2), rel=0.1)
            assert estimate == pytest.approx(exact, abs=0.05)
        else:
            assert np.exp(d2) > 1e6 * m and ess < 10


def test_log_of_one_weight_averages_to_the_elbo_of_the_proposal(one_d):
    """E_g[log w] = l - KL(g || p(z | x, theta)) = F(g, theta), exactly, over all configurations of
    six points; averaging two weights inside the log brings the mean closer to l (Burda et al.),
    still below it."""
    mix, theta, X = one_d
    X6 = X[:6]
    lj = mix.log_joint(X6, theta)
    g = np.tile(theta.weights, (6, 1))
    configs = np.array(list(itertools.product(range(2), repeat=6)))
    log_g = np.log(g)[np.arange(6), configs].sum(axis=1)
    log_w = lj[np.arange(6), configs].sum(axis=1) - log_g
    prob = np.exp(log_g)
    ll = mix.log_likelihood(X6, theta)
    one = prob @ log_w
    assert one == pytest.approx(ll - kl_to_posterior(mix, X6, theta, g), rel=1e-12)
    two = np.sum(np.outer(prob, prob) * (np.logaddexp.outer(log_w, log_w) - np.log(2)))
    assert one < two < ll


def test_standard_errors_of_a_monte_carlo_m_step(faithful):
    """The Monte Carlo EM section: over many repetitions of an M-step from m sampled configurations,
    the standard deviation of the weights matches sqrt(sum r (1 - r)) / (N sqrt m) and that of the
    means the first-order sqrt(sum r (1 - r) (x - mu)^2) / (N_k sqrt m), within 10 per cent."""
    model = emlib.GaussianMixture(2, "full")
    theta = emlib.em(model, faithful, model.init_params(faithful, np.random.default_rng(0)),
                     max_iter=200, tol=0).params
    r = model.posterior(faithful, theta)
    N, m, R = faithful.shape[0], 20, 1500
    exact = model.m_step(model.expected_stats(faithful, r))
    rng = np.random.default_rng(40)
    weights, means = [], []
    for _ in range(R):
        z = mc.sample_configurations(r, m, rng)
        p = model.m_step(model.expected_stats(faithful, np.eye(2)[z].mean(axis=0)))
        weights.append(p.weights)
        means.append(p.means)
    var_q = r * (1 - r) / m
    se_w = np.sqrt(var_q.sum(axis=0)) / N
    se_mu = np.sqrt(np.einsum("nk,nkd->kd", var_q, (faithful[:, None, :] - exact.means) ** 2))
    se_mu /= r.sum(axis=0)[:, None]
    np.testing.assert_allclose(np.std(weights, axis=0), se_w, rtol=0.1)
    np.testing.assert_allclose(np.std(means, axis=0), se_mu, rtol=0.1)
