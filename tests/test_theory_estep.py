"""The statements of the chapters "EM as coordinate ascent" (coordinate_ascent) and "Why the
E-step is tractable, and why Monte Carlo on the marginal is hard" (tractable_estep), checked
numerically. Test names follow the book's propositions, theorems and equations.

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


# ====================================================================== fixtures and helpers
@pytest.fixture(scope="module")
def mixture_setup():
    """A 2-D, 3-component mixture (reg_covar=0 so the M-step is the exact maximizer) and data."""
    model = emlib.GaussianMixture(3, "full", reg_covar=0.0)
    truth = emlib.GaussianMixtureParams(
        [0.3, 0.4, 0.3], [[0.0, 0.0], [2.5, 0.5], [1.0, 2.5]],
        [[[0.6, 0.0], [0.0, 0.6]], [[1.0, 0.5], [0.5, 1.0]], [[0.5, -0.2], [-0.2, 0.8]]])
    X, _ = model.sample(truth, 200, np.random.default_rng(3))
    params = model.init_params(X, np.random.default_rng(4))
    return model, X, params


def _random_q(rng, shape, concentration=1.0):
    return rng.dirichlet(np.full(shape[1], concentration), size=shape[0])


def _perturb(params, rng, size):
    """A nearby valid parameter: weights, means and covariances moved at random."""
    w = params.weights * np.exp(size * rng.standard_normal(params.weights.shape))
    means = params.means + size * rng.standard_normal(params.means.shape)
    A = np.eye(params.n_features) + size * rng.standard_normal(params.covariances.shape)
    cov = np.einsum("kij,kjl,kml->kim", A, params.covariances, A)
    return emlib.GaussianMixtureParams(w / w.sum(), means, cov)


# the symmetric two-component model of coordinate_ascent: means (theta, -theta), two equal points
TOY = emlib.GaussianMixture(2, "diag")
X_OBS = 1.2
X_TOY = np.full((2, 1), X_OBS)


def _toy_params(theta):
    return emlib.GaussianMixtureParams([0.5, 0.5], [[theta], [-theta]], [[1.0], [1.0]])


def _toy_F(a, theta):
    return elbo(TOY, X_TOY, _toy_params(theta), np.tile([a, 1 - a], (2, 1)))


# ====================================================================== coordinate_ascent
def test_elbo_equals_loglik_minus_kl(mixture_setup):
    """Equation coordinate_ascent-decomposition: F(q, theta) = l(theta) - KL(q || p(z | x, theta))."""
    model, X, params = mixture_setup
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = _random_q(rng, (X.shape[0], 3))
        lhs = elbo(model, X, params, q)
        rhs = model.log_likelihood(X, params) - kl_to_posterior(model, X, params, q)
        assert lhs == pytest.approx(rhs, rel=1e-12)


def test_estep_maximizes_F_over_q(mixture_setup):
    """Proposition coordinate_ascent-prop-estep: F(q, theta) <= l(theta), equality at the posterior."""
    model, X, params = mixture_setup
    loglik = model.log_likelihood(X, params)
    posterior = model.posterior(X, params)
    assert elbo(model, X, params, posterior) == pytest.approx(loglik, rel=1e-12)
    rng = np.random.default_rng(1)
    for concentration in (0.1, 1.0, 10.0):
        for _ in range(15):
            assert elbo(model, X, params, _random_q(rng, posterior.shape, concentration)) < loglik
    # also q close to the posterior, where a wrong maximizer would show first
    for _ in range(15):
        near = 0.98 * posterior + 0.02 * _random_q(rng, posterior.shape)
        assert elbo(model, X, params, near) < loglik


def test_mstep_maximizes_F_over_theta(mixture_setup):
    """Proposition coordinate_ascent-prop-mstep: for fixed q, m_step(expected_stats(X, q)) maximizes F."""
    model, X, params = mixture_setup
    rng = np.random.default_rng(2)
    for _ in range(2):
        q = _random_q(rng, (X.shape[0], 3), concentration=0.5)
        best = model.m_step(model.expected_stats(X, q))
        F_best = elbo(model, X, best, q)
        assert F_best >= elbo(model, X, params, q)
        for size in (0.3, 0.03, 0.003):
            for _ in range(6):
                assert elbo(model, X, _perturb(best, rng, size), q) < F_best


def test_mstep_on_posterior_maximizes_Q(mixture_setup):
    """With q = p(z | x, theta_t), F(q, theta) = Q(theta | theta_t) + H(q): same maximizer."""
    model, X, params = mixture_setup
    q = model.posterior(X, params)
    new = model.m_step(model.expected_stats(X, q))
    gap_new = elbo(model, X, new, q) - expected_complete_loglik(model, X, new, q)
    gap_old = elbo(model, X, params, q) - expected_complete_loglik(model, X, params, q)
    assert gap_new == pytest.approx(gap_old, rel=1e-10)  # the entropy H(q), independent of theta
    assert expected_complete_loglik(model, X, new, q) > expected_complete_loglik(model, X, params, q)


def test_partial_steps_keep_monotonicity():
    """Theorem coordinate_ascent-thm-partial, parts 1 and 2: random partial E- and M-steps.

    Partial E-step: q moves a random fraction towards the posterior. Partial M-step: with weights
    and covariances known, F is a concave quadratic in the means, so moving the means a random
    fraction towards the M-step's means cannot decrease F.
    """
    truth = emlib.GaussianMixtureParams([0.4, 0.6], [[-1.0, 0.0], [1.5, 1.0]], [np.eye(2), np.eye(2)])
    model = emlib.GaussianMixture(2, fixed={"weights": truth.weights, "covariances": truth.covariances},
                                  reg_covar=0.0)
    X, _ = model.sample(truth, 150, np.random.default_rng(5))
    rng = np.random.default_rng(6)
    params = emlib.GaussianMixtureParams(truth.weights, [[0.5, 0.5], [0.6, 0.4]], truth.covariances)
    q = _random_q(rng, (X.shape[0], 2))
    F_trace = [elbo(model, X, params, q)]
    for _ in range(40):
        lam = rng.uniform(0.05, 1.0)
        q = (1 - lam) * q + lam * model.posterior(X, params)
        F_trace.append(elbo(model, X, params, q))
        target = model.m_step(model.expected_stats(X, q)).means
        frac = rng.uniform(0.05, 1.0)
        params = emlib.GaussianMixtureParams(truth.weights, params.means + frac * (target - params.means),
                                             truth.covariances)
        F_trace.append(elbo(model, X, params, q))
        assert model.log_likelihood(X, params) >= F_trace[-1]          # part 2: F <= l
    steps = np.diff(F_trace)
    assert np.all(steps >= -1e-9 * np.abs(F_trace[1:]))                 # part 1, up to rounding
    assert F_trace[-1] > F_trace[0] + 1.0                              # and it really climbed


def test_partial_estep_gains_at_least_lambda_times_kl(mixture_setup):
    """Exercise coordinate_ascent-ex-partial-estep: F(q_omega) - F(q) >= omega KL(q || p)."""
    model, X, params = mixture_setup
    rng = np.random.default_rng(7)
    posterior = model.posterior(X, params)
    for lam in (0.1, 0.5, 0.9):
        q = _random_q(rng, posterior.shape)
        q_lam = (1 - lam) * q + lam * posterior
        gain = elbo(model, X, params, q_lam) - elbo(model, X, params, q)
        assert gain >= lam * kl_to_posterior(model, X, params, q) - 1e-9


def test_generalized_em_never_decreases_loglik(mixture_setup):
    """Corollary coordinate_ascent-cor-gem and part 3 of the theorem: exact E-step, partial M-step.

    The M-step moves each parameter only part of the way (weights and means linearly; covariances
    linearly, which keeps them positive definite). Q is concave in neither jointly, so each step is
    accepted only if it increases Q, as generalized EM requires; otherwise the fraction is halved.
    The log-likelihood gain must be at least the M-step's gain in F.
    """
    model, X, params = mixture_setup
    loglik = model.log_likelihood(X, params)
    for _ in range(15):
        q = model.posterior(X, params)
        full = model.m_step(model.expected_stats(X, q))
        Q_old = expected_complete_loglik(model, X, params, q)
        frac = 0.5
        while True:
            mix = lambda a, b: (1 - frac) * a + frac * b
            cand = emlib.GaussianMixtureParams(mix(params.weights, full.weights), mix(params.means, full.means),
                                               mix(params.covariances, full.covariances))
            if expected_complete_loglik(model, X, cand, q) >= Q_old:
                break
            frac /= 2
        m_gain = elbo(model, X, cand, q) - elbo(model, X, params, q)
        new_loglik = model.log_likelihood(X, cand)
        assert new_loglik - loglik >= m_gain - 1e-9 * abs(loglik)
        assert m_gain >= 0
        params, loglik = cand, new_loglik


def test_toy_estep_is_the_logistic_posterior():
    """Equation coordinate_ascent-toy-estep: a = 1 / (1 + exp(-2 x theta)), from emlib's posterior."""
    for theta in (-1.3, -0.2, 0.0, 0.4, 1.1):
        a = TOY.posterior(X_TOY, _toy_params(theta))
        np.testing.assert_allclose(a[:, 0], expit(2 * X_OBS * theta), rtol=1e-12)
        # and it maximizes F over a fine grid of a
        grid = np.linspace(0.001, 0.999, 999)
        assert max(_toy_F(g, theta) for g in grid[::20]) <= _toy_F(a[0, 0], theta) + 1e-12


def test_toy_mstep_is_linear_in_a():
    """Equation coordinate_ascent-toy-mstep: theta = (2a - 1) x maximizes F(a, .)."""
    for a in (0.1, 0.5, 0.83):
        best = (2 * a - 1) * X_OBS
        for theta in best + np.array([-0.5, -0.01, 0.01, 0.5]):
            assert _toy_F(a, theta) < _toy_F(a, best)


def test_toy_fixed_points_are_stationary_points_of_the_loglik():
    """Equation coordinate_ascent-toy-map: fixed points of theta -> x tanh(x theta) make l' vanish."""
    theta_star = brentq(lambda t: X_OBS * np.tanh(X_OBS * t) - t, 0.1, 2 * X_OBS)
    h = 1e-5
    ell = lambda t: TOY.log_likelihood(X_TOY, _toy_params(t))
    assert abs(ell(theta_star + h) - ell(theta_star - h)) / (2 * h) < 1e-8
    assert ell(theta_star) > ell(0.0)                                 # 0 is not the maximum when x^2 > 1
    # the composed E- and M-step is the tanh map
    for theta in (0.25, 0.9):
        a = TOY.posterior(X_TOY, _toy_params(theta))[0, 0]
        assert (2 * a - 1) * X_OBS == pytest.approx(X_OBS * np.tanh(X_OBS * theta), rel=1e-12)


def test_global_max_of_F_is_global_max_of_loglik():
    """Theorem coordinate_ascent-thm-maxima on the toy model: max_a F(a, theta) = l(theta) on a grid,
    and the maximizer of F over a fine (a, theta) grid sits at (a*, theta*)."""
    thetas = np.linspace(-1.6, 1.6, 41)                               # step 0.08
    a_grid = np.linspace(0.005, 0.995, 100)                           # step 0.01
    F = np.array([[_toy_F(a, t) for a in a_grid] for t in thetas])
    ell = np.array([TOY.log_likelihood(X_TOY, _toy_params(t)) for t in thetas])
    assert np.all(F.max(axis=1) <= ell + 1e-12)
    np.testing.assert_allclose(F.max(axis=1), ell, atol=2e-3)       # the a-grid step limits the match
    theta_star = brentq(lambda t: X_OBS * np.tanh(X_OBS * t) - t, 0.1, 2 * X_OBS)
    i, j = np.unravel_index(np.argmax(F), F.shape)
    # a unimodal function's grid maximum is one of the two grid points around the true maximum
    assert abs(abs(thetas[i]) - theta_star) <= 0.08 + 1e-12
    assert abs(a_grid[j] - expit(2 * X_OBS * thetas[i])) <= 0.01 + 1e-12


def test_incremental_em_never_decreases_F(mixture_setup):
    """Algorithm coordinate_ascent-alg-incremental: F never decreases, and the running statistics
    S - s_b_old + s_b_new equal the statistics recomputed from the current q (exercise bookkeeping)."""
    model, X, _ = mixture_setup
    start = emlib.GaussianMixtureParams([1 / 3] * 3, [[0.5, 0.5], [1.0, 0.8], [1.5, 1.0]],
                                        np.repeat(np.cov(X.T)[None], 3, axis=0))
    blocks = np.array_split(np.arange(X.shape[0]), 5)
    q = model.posterior(X, start)
    block_stats = [model.expected_stats(X[b], q[b]) for b in blocks]
    S = sum(block_stats[1:], block_stats[0])
    theta = model.m_step(S)
    F = [elbo(model, X, theta, q)]
    for _ in range(3):
        for i, b in enumerate(blocks):
            q[b] = model.posterior(X[b], theta)
            F.append(elbo(model, X, theta, q))
            new = model.expected_stats(X[b], q[b])
            S = S + (-1.0) * block_stats[i] + new
            block_stats[i] = new
            theta = model.m_step(S)
            F.append(elbo(model, X, theta, q))
            recomputed = model.expected_stats(X, q)
            np.testing.assert_allclose(S.counts, recomputed.counts, rtol=1e-10)
            np.testing.assert_allclose(S.sum_x, recomputed.sum_x, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(S.sum_xx, recomputed.sum_xx, rtol=1e-10, atol=1e-10)
    steps = np.diff(F)
    assert np.all(steps >= -1e-9 * np.abs(F[1:]))
    assert F[-1] > F[0] + 1.0


# ====================================================================== tractable_estep
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
         "random": _random_q(rng, (faithful.shape[0], 2)),
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
