"""The claims of the chapter "EM as coordinate ascent" (book/coordinate_ascent.ipynb), checked
numerically: both steps maximize F, partial and generalized steps keep monotonicity, the toy
model's fixed points, the global maximum of F, and incremental EM. Test names follow the
chapter's propositions, theorems and equations.
"""
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.special import expit, logsumexp

import emlib
from emlib.bounds import elbo, expected_complete_loglik, kl_to_posterior

from theory_cases import dirichlet_rows


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


def test_elbo_equals_loglik_minus_kl(mixture_setup):
    """Equation coordinate_ascent-decomposition: F(q, theta) = l(theta) - KL(q || p(z | x, theta))."""
    model, X, params = mixture_setup
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = dirichlet_rows(rng, (X.shape[0], 3))
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
            assert elbo(model, X, params, dirichlet_rows(rng, posterior.shape, concentration)) < loglik
    # also q close to the posterior, where a wrong maximizer would show first
    for _ in range(15):
        near = 0.98 * posterior + 0.02 * dirichlet_rows(rng, posterior.shape)
        assert elbo(model, X, params, near) < loglik


def test_mstep_maximizes_F_over_theta(mixture_setup):
    """Proposition coordinate_ascent-prop-mstep: for fixed q, m_step(expected_stats(X, q)) maximizes F."""
    model, X, params = mixture_setup
    rng = np.random.default_rng(2)
    for _ in range(2):
        q = dirichlet_rows(rng, (X.shape[0], 3), concentration=0.5)
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
    q = dirichlet_rows(rng, (X.shape[0], 2))
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
    """Exercise coordinate_ascent-ex-partial-estep: F(q_lambda) - F(q) >= lambda KL(q || p)."""
    model, X, params = mixture_setup
    rng = np.random.default_rng(7)
    posterior = model.posterior(X, params)
    for lam in (0.1, 0.5, 0.9):
        q = dirichlet_rows(rng, posterior.shape)
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

