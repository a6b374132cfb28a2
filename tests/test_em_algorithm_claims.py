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


# -- Claims added with the chapter's revision ----------------------------------------

def hand_model():
    return emlib.GaussianMixture(2, "diag", fixed={"covariances": [[1.0], [1.0]]})


def by_hand(x, mu0):
    """The chapter's hand computation for equal weights and unit variances."""
    a = ((x - mu0[1]) ** 2 - (x - mu0[0]) ** 2) / 2
    r1 = 1 / (1 + np.exp(-a))
    counts = np.array([r1.sum(), (1 - r1).sum()])
    means = np.array([(r1 * x).sum(), ((1 - r1) * x).sum()]) / counts
    return a, r1, counts, counts / len(x), means


@pytest.mark.parametrize("x, mu0", [([0.0, 1.0, 2.0, 4.0], [0.0, 3.0]),      # the text
                                    ([-2.0, 0.0, 1.0, 3.0], [-1.0, 2.0])])   # the exercise
def test_one_iteration_by_hand_agrees_with_emlib(x, mu0):
    x, mu0 = np.array(x), np.array(mu0)
    a, r1, counts, weights, means = by_hand(x, mu0)
    model = hand_model()
    start = emlib.GaussianMixtureParams([0.5, 0.5], mu0[:, None], [[1.0], [1.0]])
    # the log-odds formula is the difference of the two log-joint columns
    log_joint = model.log_joint(x[:, None], start)
    np.testing.assert_allclose(log_joint[:, 0] - log_joint[:, 1], a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.posterior(x[:, None], start)[:, 0], r1, rtol=1e-12)
    fit = emlib.em(model, x[:, None], start, max_iter=1, tol=0)
    np.testing.assert_allclose(fit.params.weights, weights, rtol=1e-12)
    np.testing.assert_allclose(fit.params.means.ravel(), means, rtol=1e-12)
    assert fit.log_likelihood[1] > fit.log_likelihood[0] + 0.01


def test_the_text_example_has_the_stated_log_odds_and_moves():
    a, r1, counts, weights, means = by_hand(np.array([0.0, 1.0, 2.0, 4.0]), [0.0, 3.0])
    np.testing.assert_array_equal(a, [4.5, 1.5, -1.5, -7.5])      # (9 - 6 x_n) / 2
    assert counts.sum() == pytest.approx(4.0, rel=1e-15)
    # 0 and 1 go mostly to component 1, 2 and 4 to component 2; the middle two alike
    np.testing.assert_array_equal(r1 > 0.5, [True, True, False, False])
    assert r1[1] == pytest.approx(1 - r1[2], rel=1e-15)
    # "both means move towards the middle"
    assert 0.0 < means[0] < 1.0 and 2.0 < means[1] < 3.0


def test_in_the_exercise_the_log_odds_come_in_opposite_pairs_and_the_weights_stay():
    a, r1, counts, weights, means = by_hand(np.array([-2.0, 0.0, 1.0, 3.0]), [-1.0, 2.0])
    np.testing.assert_array_equal(np.sort(a), -np.sort(a)[::-1])
    assert counts[0] == pytest.approx(2.0, abs=1e-14)
    np.testing.assert_allclose(weights, 0.5, atol=1e-15)
    # symmetric around the midpoint 1/2 of the start
    assert means[0] + means[1] == pytest.approx(1.0, abs=1e-12)


def test_exercise_entropy_gap_on_the_four_points():
    # ell(theta^(0)) - Q(theta^(0) | theta^(0)) = H(q^(0)) <= N log K
    x = np.array([[0.0], [1.0], [2.0], [4.0]])
    model = hand_model()
    start = emlib.GaussianMixtureParams([0.5, 0.5], [[0.0], [3.0]], [[1.0], [1.0]])
    q = model.posterior(x, start)
    gap = model.log_likelihood(x, start) - bounds.q_function(model, x, start, start)
    assert gap == pytest.approx(bounds.entropy(q), rel=1e-12)
    assert 0 < gap < 4 * np.log(2)


def test_entropy_of_responsibilities_is_between_zero_and_n_log_k():
    rng = np.random.default_rng(3)
    for K in (2, 3, 5):
        q = rng.dirichlet(np.ones(K), size=50)
        assert 0 < bounds.entropy(q) < 50 * np.log(K)
    assert bounds.entropy(np.full((50, 4), 0.25)) == pytest.approx(50 * np.log(4), rel=1e-14)
    assert bounds.entropy(np.eye(3)[rng.integers(0, 3, 50)]) == 0.0


# ------------------------------------------------------------------ the theorem's assumptions
def test_assumption_3_fails_for_points_on_a_line():
    # every point on y = 2x + 1: the best covariances are singular, Q grows by (N/2) log 100
    # for each factor 100 in the added eps I, and the M-step refuses
    t = np.linspace(-2.0, 2.0, 20)
    X = np.column_stack([t, 2 * t + 1])
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    theta = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0, -1.0], [1.0, 3.0]],
                                        [np.eye(2), np.eye(2)])
    q = model.posterior(X, theta)
    assert q.min() > 0
    counts = q.sum(axis=0)
    means = q.T @ X / counts[:, None]
    scatter = [(q[:, k, None] * (X - means[k])).T @ (X - means[k]) / counts[k] for k in range(2)]
    for S in scatter:
        assert abs(np.linalg.eigvalsh(S)[0]) < 1e-12 * np.linalg.eigvalsh(S)[1]
    values = []
    for eps in [1e-2, 1e-4, 1e-6, 1e-8]:
        theta_eps = emlib.GaussianMixtureParams(counts / counts.sum(), means,
                                                [S + eps * np.eye(2) for S in scatter])
        values.append(bounds.q_function(model, X, theta_eps, theta))
    np.testing.assert_allclose(np.diff(values), 10 * np.log(100), rtol=1e-3)
    with pytest.raises(ValueError, match="singular|not positive definite"):
        model.m_step(model.expected_stats(X, q))


# ------------------------------------------------------------------ the Old Faithful fit
@pytest.fixture(scope="module")
def faithful_fit():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2, "full", reg_covar=0.0)
    theta0 = model.init_params(X, np.random.default_rng(0))
    iterates = [theta0]
    result = emlib.em(model, X, theta0, tol=1e-8, callback=lambda t, p, ll: iterates.append(p))
    return X, model, iterates, result


def between(a, b, s):
    return emlib.GaussianMixtureParams(*[(1 - s) * getattr(a, n) + s * getattr(b, n)
                                         for n in ("weights", "means", "covariances")])


def test_trace_gains_grow_where_the_loglik_curves_upward(faithful_fit):
    X, model, iterates, result = faithful_fit
    assert result.converged and result.n_iter == 19
    gains = np.diff(result.log_likelihood)
    assert np.all(gains > 1e-6) and np.argmin(gains) == len(gains) - 1
    mid = np.array([model.log_likelihood(X, between(a, b, 0.5))
                    for a, b in zip(iterates[:-1], iterates[1:])])
    curvature = result.log_likelihood[1:] - 2 * mid + result.log_likelihood[:-1]
    grows = gains[1:] > gains[:-1]
    assert np.all(curvature[2:6] > 0) and np.all(grows[1:5])
    assert np.all(curvature[9:12] > 0) and np.all(grows[8:11])
    assert np.all(curvature[13:] < 0) and not np.any(grows[12:])
    ratios = gains[1:] / gains[:-1]
    assert 2.45 < ratios[:12].max() < 2.55          # "a factor of up to 2.5"
    assert 0.055 <= ratios[-4:].max() < 0.065       # "at most 0.06 of the one before"
    # the caption: more than four orders of magnitude over the last five iterations
    assert gains[-6] / gains[-1] > 1e4


def test_bar_picture_of_one_iteration(faithful_fit):
    X, model, iterates, _ = faithful_fit
    q1, q2 = model.posterior(X, iterates[1]), model.posterior(X, iterates[2])
    theta2, theta3 = iterates[2], iterates[3]
    ell2, ell3 = model.log_likelihood(X, theta2), model.log_likelihood(X, theta3)
    kl_old = bounds.kl_to_posterior(model, X, theta2, q1)
    kl_new = bounds.kl_to_posterior(model, X, theta3, q2)
    F_e = bounds.elbo(model, X, theta2, q2)
    F_m = bounds.elbo(model, X, theta3, q2)
    assert bounds.elbo(model, X, theta2, q1) + kl_old == pytest.approx(ell2, rel=1e-12)
    assert F_e == pytest.approx(ell2, rel=1e-12)                # the E-step closes the gap
    assert F_m > ell2                                           # the M-step raises F
    assert (F_m - F_e) + kl_new == pytest.approx(ell3 - ell2, rel=1e-9)
    assert kl_new > kl_old > 0.1                                # the caption's "larger"


def test_q_is_not_an_approximation_of_the_loglik(faithful_fit):
    X, model, iterates, result = faithful_fit
    N = len(X)
    theta1 = iterates[1]
    H1 = bounds.entropy(model.posterior(X, theta1))
    gap1 = model.log_likelihood(X, theta1) - bounds.q_function(model, X, theta1, theta1)
    assert gap1 == pytest.approx(H1, rel=1e-12)
    assert N * np.log(2) / 2 < H1 < N * np.log(2)              # "more than half"
    HT = bounds.entropy(model.posterior(X, result.params))
    assert 0.1 < HT < H1 / 50                                   # small, but not zero
    # one step away the divergence adds: the same KL as the first bar
    theta2 = iterates[2]
    q1 = model.posterior(X, theta1)
    gap2 = model.log_likelihood(X, theta2) - bounds.q_function(model, X, theta2, theta1)
    assert gap2 == pytest.approx(H1 + bounds.kl_to_posterior(model, X, theta2, q1), rel=1e-12)


def moved(params, name, index, h):
    arrays = {"weights": params.weights.copy(), "means": params.means.copy(),
              "covariances": params.covariances.copy()}
    arrays[name][index] += h
    if name == "weights":
        arrays["weights"][-1] -= h
    if name == "covariances" and index[1] != index[2]:
        arrays[name][index[0], index[2], index[1]] += h
    return emlib.GaussianMixtureParams(**arrays)


def test_fisher_identity_including_the_off_diagonal_covariances(faithful_fit):
    X, model, iterates, _ = faithful_fit
    theta1 = iterates[1]
    coords = ([("weights", 0)] + [("means", (k, d)) for k in range(2) for d in range(2)]
              + [("covariances", (k, i, j)) for k in range(2) for i, j in [(0, 0), (1, 1), (0, 1)]])

    def grad(f):
        out = []
        for name, index in coords:
            h = 1e-5 * max(1.0, abs(getattr(theta1, name)[index]))
            out.append((f(moved(theta1, name, index, h)) - f(moved(theta1, name, index, -h)))
                       / (2 * h))
        return np.array(out)

    g_ell = grad(lambda p: model.log_likelihood(X, p))
    g_Q = grad(lambda p: bounds.q_function(model, X, p, theta1))
    g_stale = grad(lambda p: bounds.q_function(model, X, p, iterates[0]))
    assert np.abs(g_ell).max() > 20
    off_diagonal = [i for i, (name, index) in enumerate(coords)
                    if name == "covariances" and index[1] != index[2]]
    assert np.abs(g_ell[off_diagonal]).min() > 1.0   # the off-diagonal entries are not trivial
    assert np.abs(g_ell - g_Q).max() < 1e-5
    assert np.abs(g_stale).max() < 1e-5


# ------------------------------------------------------------------ two starts, symmetric point
def test_start_b_is_slow_and_start_a_fast():
    truth = emlib.GaussianMixtureParams([0.3, 0.4, 0.3], [[-4.0], [0.0], [4.0]],
                                        [[0.5], [0.5], [0.5]])
    X, _ = emlib.GaussianMixture(3, "diag").sample(truth, 300, np.random.default_rng(1))
    model = emlib.GaussianMixture(3, "diag", reg_covar=0.0)
    a = emlib.em(model, X, emlib.GaussianMixtureParams([1 / 3] * 3, [[-3.0], [1.0], [3.0]],
                                                       [[1.0]] * 3), max_iter=5000, tol=1e-13)
    b = emlib.em(model, X, emlib.GaussianMixtureParams([1 / 3] * 3, [[-4.2], [-3.8], [2.0]],
                                                       [[1.0]] * 3), max_iter=5000, tol=1e-13)
    assert a.converged and b.converged and a.n_iter < 20 and b.n_iter > 500


def symmetric_split(X, sigma2):
    """ell(delta) - ell(0) for means xbar +- delta, weights 1/2, known variance sigma2."""
    model = emlib.GaussianMixture(2, "diag", fixed={"weights": [0.5, 0.5],
                                                    "covariances": [[sigma2], [sigma2]]})
    xbar = X.mean()

    def ell(mu1, mu2):
        return model.log_likelihood(X, emlib.GaussianMixtureParams(
            [0.5, 0.5], [[mu1], [mu2]], [[sigma2], [sigma2]]))
    return model, xbar, ell


@pytest.mark.parametrize("sigma2", [0.5, 4.0])
def test_log_cosh_identity_for_splitting_the_means(sigma2):
    X = np.random.default_rng(4).normal(1.0, 1.3, size=(80, 1))
    _, xbar, ell = symmetric_split(X, sigma2)
    s2 = X.var()
    N = len(X)
    for delta in [0.01, 0.3, 1.0]:
        exact = (np.sum(np.log(np.cosh(delta * (X[:, 0] - xbar) / sigma2)))
                 - N * delta**2 / (2 * sigma2))
        assert ell(xbar + delta, xbar - delta) - ell(xbar, xbar) == pytest.approx(exact, rel=1e-9)
        assert exact <= N * delta**2 / (2 * sigma2) * (s2 / sigma2 - 1) + 1e-12


def test_symmetric_point_is_a_maximum_or_a_saddle_depending_on_the_data():
    X = np.random.default_rng(5).normal(0.0, 1.0, size=(200, 1))
    s2 = X.var()
    rng = np.random.default_rng(6)
    # known variance larger than the data's: a strict local maximum in every direction
    _, xbar, ell = symmetric_split(X, 1.5 * s2)
    top = ell(xbar, xbar)
    for _ in range(50):
        d = 1e-2 * rng.normal(size=2)
        assert ell(xbar + d[0], xbar + d[1]) < top
    # smaller than the data's: splitting the means raises ell, a saddle
    _, xbar, ell = symmetric_split(X, 0.5 * s2)
    assert ell(xbar + 1e-2, xbar - 1e-2) > ell(xbar, xbar)
    assert ell(xbar + 1e-2, xbar + 1e-2) < ell(xbar, xbar)
