"""The claims of the chapter "The EM algorithm" (book/em_algorithm.ipynb), checked numerically:
F = Q + H, each step raises F, the monotonicity chain, Fisher's identity, fixed points are
stationary points, what EM does not promise (symmetric starts, several local maxima), and the
exercises. Each test is named after the statement it checks; the models and tolerances are those
of tests/theory_cases.py.
"""
import numpy as np
import pytest

import emlib
from emlib import bounds

from theory_cases import IDENTITY_RTOL, case, perturbed, random_q  # noqa: F401 (fixtures)


def em_step(model, X, theta):
    """One E-step and one M-step, written with the book's pieces: q_t, then argmax_theta F(q_t, theta)."""
    q = model.posterior(X, theta)
    return q, model.m_step(model.expected_stats(X, q))


def coordinates(params, skip=()):
    """Coordinates of a mixture: the first K-1 weights, every mean, every variance; minus ``skip`` names."""
    K, D = params.means.shape
    coords = [("weights", k) for k in range(K - 1)]
    coords += [("means", (k, d)) for k in range(K) for d in range(D)]
    if params.covariance_type == "full":
        coords += [("covariances", (k, d, d)) for k in range(K) for d in range(D)]
    else:
        coords += [("covariances", (k, d)) for k in range(K) for d in range(D)]
    return [(name, index) for name, index in coords if name not in skip]


def fd_gradient(f, params, rel_step=1e-5, skip=()):
    """Central finite differences of f along each coordinate not in ``skip``; steps scale with the value."""
    grad = []
    for name, index in coordinates(params, skip):
        h = rel_step * max(1.0, abs(getattr(params, name)[index]))
        grad.append((f(perturbed(params, name, index, h)) - f(perturbed(params, name, index, -h))) / (2 * h))
    return np.array(grad)


def random_nearby_params(params, rng, scale, fixed_weights):
    """A valid parameter near params: weights mixed with a Dirichlet draw, means shifted, variances scaled."""
    K, D = params.means.shape
    weights = params.weights if fixed_weights else 0.8 * params.weights + 0.2 * rng.dirichlet(np.ones(K))
    means = params.means + scale * rng.normal(size=(K, D)) * np.sqrt(_variances(params))
    factors = np.exp(scale * rng.normal(size=K))
    if params.covariance_type == "full":
        covariances = params.covariances * factors[:, None, None]
    else:
        covariances = params.covariances * factors[:, None]
    return emlib.GaussianMixtureParams(weights, means, covariances)


def _variances(params):
    if params.covariance_type == "full":
        return np.diagonal(params.covariances, axis1=1, axis2=2)
    return params.covariances


def test_F_equals_Q_plus_entropy(case):
    model, X, theta_t = case
    q_t = model.posterior(X, theta_t)
    rng = np.random.default_rng(7)
    for theta in [theta_t] + [random_nearby_params(theta_t, rng, 0.3, bool(model.fixed)) for _ in range(3)]:
        F = bounds.elbo(model, X, theta, q_t)
        Q = bounds.q_function(model, X, theta, theta_t)
        assert F == pytest.approx(Q + bounds.entropy(q_t), rel=IDENTITY_RTOL)
    # and at theta = theta_t both equal the log-likelihood
    assert bounds.q_function(model, X, theta_t, theta_t) + bounds.entropy(q_t) == pytest.approx(
        model.log_likelihood(X, theta_t), rel=IDENTITY_RTOL)


def test_estep_and_mstep_each_increase_F(case):
    model, X, theta = case
    q = random_q(model, X, 4)
    for _ in range(5):
        F_before = bounds.elbo(model, X, theta, q)
        q = model.posterior(X, theta)                       # E-step: maximize F over q
        F_after_e = bounds.elbo(model, X, theta, q)
        theta = model.m_step(model.expected_stats(X, q))    # M-step: maximize F over theta
        F_after_m = bounds.elbo(model, X, theta, q)
        assert F_after_e > F_before
        assert F_after_m > F_after_e


def test_mstep_maximizes_F_for_any_q(case):
    # With reg_covar = 0 the M-step is the exact maximizer of theta -> F(q, theta), for ANY q
    # (posterior or not): no nearby valid parameter does better.
    model, X, theta0 = case
    rng = np.random.default_rng(8)
    for q in [random_q(model, X, 5), model.posterior(X, theta0)]:
        best = model.m_step(model.expected_stats(X, q))
        F_best = bounds.elbo(model, X, best, q)
        for scale in [0.3, 0.03, 0.003]:
            for _ in range(4):
                other = random_nearby_params(best, rng, scale, bool(model.fixed))
                assert bounds.elbo(model, X, other, q) < F_best


def test_monotonicity_chain_of_inequalities(case):
    # loglik(theta_{t+1}) >= F(q_t, theta_{t+1}) >= F(q_t, theta_t) = loglik(theta_t)
    model, X, theta = case
    for _ in range(10):
        q_t, new = em_step(model, X, theta)
        l_t, l_next = model.log_likelihood(X, theta), model.log_likelihood(X, new)
        F_tt, F_tnext = bounds.elbo(model, X, theta, q_t), bounds.elbo(model, X, new, q_t)
        assert F_tt == pytest.approx(l_t, rel=IDENTITY_RTOL)
        assert F_tnext >= F_tt
        assert l_next >= F_tnext
        theta = new


def test_em_driver_loglik_trace_is_monotone(case):
    model, X, theta = case
    result = emlib.em(model, X, theta, max_iter=200, tol=1e-10)
    assert np.all(np.diff(result.log_likelihood) >= 0)
    assert result.log_likelihood[-1] > result.log_likelihood[0] + 1.0


def test_Q_increase_implies_loglik_increase(case):
    # The stronger statement proved in the chapter: for EVERY theta,
    #   loglik(theta) - loglik(theta_t) >= Q(theta | theta_t) - Q(theta_t | theta_t),
    # because the difference is KL(q_t || p(z | x, theta)) >= 0.
    model, X, theta_t = case
    rng = np.random.default_rng(9)
    _, theta_next = em_step(model, X, theta_t)
    candidates = [theta_next] + [random_nearby_params(theta_t, rng, s, bool(model.fixed))
                                 for s in [0.01, 0.1, 0.5] for _ in range(5)]
    Q_t = bounds.q_function(model, X, theta_t, theta_t)
    l_t = model.log_likelihood(X, theta_t)
    increases = 0
    for theta in candidates:
        dQ = bounds.q_function(model, X, theta, theta_t) - Q_t
        dl = model.log_likelihood(X, theta) - l_t
        assert dl >= dQ - IDENTITY_RTOL * abs(l_t)
        increases += dQ > 0
    assert increases >= 1  # not vacuous: some candidates (at least the M-step) increase Q


def test_loglik_equals_Q_plus_cross_entropy_and_gibbs(case):
    # loglik(theta) = Q(theta | theta_t) + C(theta | theta_t), C = -E_{q_t}[log p(z | x, theta)],
    # and C(theta | theta_t) >= C(theta_t | theta_t) = H(q_t) (Gibbs' inequality).
    model, X, theta_t = case
    q_t = model.posterior(X, theta_t)
    rng = np.random.default_rng(10)
    H_t = bounds.entropy(q_t)
    for theta in [random_nearby_params(theta_t, rng, 0.2, bool(model.fixed)) for _ in range(4)]:
        C = -float((q_t * bounds.log_posterior(model, X, theta)).sum())
        Q = bounds.q_function(model, X, theta, theta_t)
        assert Q + C == pytest.approx(model.log_likelihood(X, theta), rel=IDENTITY_RTOL)
        assert C > H_t
    C_t = -float((q_t * bounds.log_posterior(model, X, theta_t)).sum())
    assert C_t == pytest.approx(H_t, rel=IDENTITY_RTOL)


# Central differences with a relative step of 1e-5 have truncation error about h^2 |f'''| and
# rounding error about eps |f| / h; on these data both stay below 1e-7 of the largest gradient
# component, so 1e-6 relative is a safe tolerance. The control below differs by 1e-2 or more.
FISHER_RTOL = 1e-6


def test_fisher_identity_gradient_of_loglik_equals_gradient_of_Q(case):
    model, X, theta0 = case
    _, theta_t = em_step(model, X, theta0)  # a generic point: not a stationary point
    g_loglik = fd_gradient(lambda p: model.log_likelihood(X, p), theta_t)
    g_Q = fd_gradient(lambda p: bounds.q_function(model, X, p, theta_t), theta_t)
    scale = np.abs(g_loglik).max()
    assert scale > 1.0  # not at a stationary point, so the identity is not 0 = 0
    np.testing.assert_allclose(g_Q, g_loglik, rtol=0, atol=FISHER_RTOL * scale)
    # Controls: Q built on the posterior of ANOTHER point has a different gradient at theta_t.
    # Q(. | theta_0) is maximized by the M-step at theta_t, so its gradient there vanishes (the
    # chapter's "why iterate"); Q(. | theta_{t+1}) has yet another gradient.
    g_previous = fd_gradient(lambda p: bounds.q_function(model, X, p, theta0), theta_t, skip=tuple(model.fixed))
    assert np.abs(g_previous).max() < FISHER_RTOL * scale
    _, theta_next = em_step(model, X, theta_t)
    g_next = fd_gradient(lambda p: bounds.q_function(model, X, p, theta_next), theta_t)
    assert np.abs(g_next - g_loglik).max() > 1e-2 * scale


def test_em_fixed_point_is_a_stationary_point_of_loglik(case):
    # Stationary in the parameters EM estimates; fixed (known) weights keep a non-zero gradient.
    model, X, theta0 = case
    result = emlib.em(model, X, theta0, max_iter=5000, tol=1e-14)
    g = fd_gradient(lambda p: model.log_likelihood(X, p), result.params, skip=tuple(model.fixed))
    g0 = fd_gradient(lambda p: model.log_likelihood(X, p), theta0, skip=tuple(model.fixed))
    assert np.abs(g).max() < 1e-4 * np.abs(g0).max()


def symmetric_start(X, K):
    """Every component equal to the one-Gaussian fit: the symmetric point of the chapter."""
    mean = X.mean(axis=0)
    cov = np.cov(X.T, bias=True).reshape(X.shape[1], X.shape[1])
    return emlib.GaussianMixtureParams(np.full(K, 1.0 / K), np.repeat(mean[None], K, axis=0),
                                       np.repeat(cov[None], K, axis=0))


def test_symmetric_start_is_a_fixed_point_that_em_never_leaves():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    sym = symmetric_start(X, 2)
    result = emlib.em(model, X, sym, max_iter=100, tol=0)
    assert np.ptp(result.log_likelihood) <= 1e-12 * abs(result.log_likelihood[0])
    np.testing.assert_allclose(result.params.means[0], result.params.means[1], rtol=1e-12)
    # ... yet it is not a local maximum: from a start 1e-3 away EM climbs far higher, and one
    # step from starts eps away reaches points within about eps of sym with a higher likelihood.
    for eps in (1e-3, 1e-4):
        nudge = np.array([eps, 0.0])
        start = emlib.GaussianMixtureParams(sym.weights, sym.means + [nudge, -nudge], sym.covariances)
        step = emlib.em(model, X, start, max_iter=1, tol=0)
        assert step.log_likelihood[-1] > result.log_likelihood[0]
        assert np.abs(step.params.means - sym.means).max() <= 1.01 * eps
        assert np.abs(step.params.covariances - sym.covariances).max() <= 1.01 * eps * np.abs(sym.covariances).max()
        assert np.abs(step.params.weights - 0.5).max() <= eps
    nudge = np.array([1e-3, 0.0])
    start = emlib.GaussianMixtureParams(sym.weights, sym.means + [nudge, -nudge], sym.covariances)
    escaped = emlib.em(model, X, start, max_iter=150, tol=0)
    assert escaped.log_likelihood[-1] > result.log_likelihood[-1] + 100
    # ... and not a local minimum: moving both means together lowers the likelihood.
    shifted = emlib.GaussianMixtureParams(sym.weights, sym.means + 0.01, sym.covariances)
    assert model.log_likelihood(X, shifted) < model.log_likelihood(X, sym)


def three_clusters():
    """The chapter's data: 300 points from three well-separated 1-D Gaussians."""
    truth = emlib.GaussianMixtureParams([0.3, 0.4, 0.3], [[-4.0], [0.0], [4.0]], [[0.5], [0.5], [0.5]])
    X, _ = emlib.GaussianMixture(3, "diag").sample(truth, 300, np.random.default_rng(1))
    return X


def test_two_starts_reach_different_local_maxima():
    X = three_clusters()
    model = emlib.GaussianMixture(3, "diag", reg_covar=0.0)
    good = emlib.GaussianMixtureParams([1 / 3] * 3, [[-3.0], [1.0], [3.0]], [[1.0]] * 3)
    bad = emlib.GaussianMixtureParams([1 / 3] * 3, [[-4.2], [-3.8], [2.0]], [[1.0]] * 3)
    r_good = emlib.em(model, X, good, max_iter=5000, tol=1e-13)
    r_bad = emlib.em(model, X, bad, max_iter=5000, tol=1e-13)
    assert r_good.converged and r_bad.converged
    assert r_good.log_likelihood[-1] > r_bad.log_likelihood[-1] + 10
    rng = np.random.default_rng(13)
    for r in (r_good, r_bad):
        g = fd_gradient(lambda p: model.log_likelihood(X, p), r.params)
        assert np.abs(g).max() < 1e-3  # stationary
        # and a local maximum: small random moves never increase the likelihood
        l_star = r.log_likelihood[-1]
        for _ in range(20):
            other = random_nearby_params(r.params, rng, 1e-3, False)
            assert model.log_likelihood(X, other) < l_star


def test_one_em_step_is_not_the_answer_because_the_posterior_moves():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    theta0 = model.init_params(X, np.random.default_rng(0))
    q0, theta1 = em_step(model, X, theta0)
    q1 = model.posterior(X, theta1)
    assert np.abs(q1 - q0).max() > 0.05
    final = emlib.em(model, X, theta0)
    assert final.log_likelihood[-1] > model.log_likelihood(X, theta1) + 1.0


def test_em_mean_update_is_a_gradient_step_scaled_by_covariance_over_count(case):
    # em_algorithm exercise: mu_k^{t+1} = mu_k^t + (Sigma_k^t / N_k) grad_{mu_k} loglik(theta_t).
    model, X, theta = case
    q, new = em_step(model, X, theta)
    counts = q.sum(axis=0)
    K, D = theta.means.shape
    coords = [("means", (k, d)) for k in range(K) for d in range(D)]
    grad = np.array([(model.log_likelihood(X, perturbed(theta, n, i, 1e-5))
                      - model.log_likelihood(X, perturbed(theta, n, i, -1e-5))) / 2e-5
                     for n, i in coords]).reshape(K, D)
    cov = theta.covariances if theta.covariance_type == "full" else np.stack([np.diag(c) for c in theta.covariances])
    predicted = theta.means + np.einsum("kde,ke->kd", cov, grad) / counts[:, None]
    np.testing.assert_allclose(predicted, new.means, rtol=0, atol=1e-6 * np.abs(theta.means).max())


def test_symmetric_start_becomes_the_single_gaussian_fit_after_one_step():
    # em_algorithm exercise "The symmetric start": equal components -> every component becomes the
    # one-Gaussian maximum likelihood fit (sample mean, biased sample covariance), for any common start.
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(3, reg_covar=0.0)
    start = emlib.GaussianMixtureParams([1 / 3] * 3, [[1.0, 50.0]] * 3, [np.diag([2.0, 300.0])] * 3)
    _, new = em_step(model, X, start)
    for k in range(3):
        np.testing.assert_allclose(new.means[k], X.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(new.covariances[k], np.cov(X.T, bias=True), rtol=1e-10)
    np.testing.assert_allclose(new.weights, 1 / 3, rtol=1e-12)

