"""The claims added to the chapter "The EM algorithm" (book/em_algorithm.ipynb), checked
independently of the notebook: the iteration worked by hand, the assumptions of the
monotonicity theorem, the shape of the Old Faithful trace, the bar picture, the gap between the
log-likelihood and Q, Fisher's identity with every free parameter, the symmetric point with a
known variance, and the numbers of the exercises. The general identities (F = Q + H, the
monotonicity chain, Fisher's identity on several models) are in tests/test_theory.py."""
import numpy as np
import pytest
from scipy.special import expit

import emlib
from emlib import bounds


# ------------------------------------------------------------------ one iteration by hand
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
    with pytest.raises(ValueError, match="not positive definite"):
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
