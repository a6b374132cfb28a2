"""The claims of the chapter "EM as coordinate ascent" (book/coordinate_ascent.ipynb), checked
numerically: both steps maximize F, partial and generalized steps keep monotonicity, the toy
model's fixed points, the global maximum of F, and incremental EM. Test names follow the
chapter's propositions, theorems and equations.
"""

import numpy as np
import pytest
from scipy.optimize import brentq
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


# -- Claims added with the chapter's revision ----------------------------------------



def _toy(x):
    """The symmetric model of the chapter with two equal observations x: (F, l, E-step, M-step)."""
    X = np.full((2, 1), x)

    def params(theta):
        return emlib.GaussianMixtureParams([0.5, 0.5], [[theta], [-theta]], [[1.0], [1.0]])

    def F(a, theta):
        return elbo(TOY, X, params(theta), np.tile([a, 1 - a], (2, 1)))

    def loglik(theta):
        return TOY.log_likelihood(X, params(theta))

    def e_step(theta):
        return float(TOY.posterior(X, params(theta))[0, 0])

    def m_step(a):
        return (2 * a - 1) * x

    return F, loglik, e_step, m_step


def _theta_star(x):
    return brentq(lambda t: x * np.tanh(x * t) - t, 1e-3, 2 * x, xtol=1e-14)


def _hessian(f, point, h=1e-4):
    """Central second differences of f at a point (2-D)."""
    point = np.asarray(point, dtype=float)
    H = np.empty((2, 2))
    E = np.eye(2) * h
    for i in range(2):
        for j in range(2):
            H[i, j] = (f(*(point + E[i] + E[j])) - f(*(point + E[i] - E[j]))
                       - f(*(point - E[i] + E[j])) + f(*(point - E[i] - E[j]))) / (4 * h * h)
    return H


@pytest.mark.parametrize("x", [1.2, 1.6])
def test_saddle_of_F_sits_over_a_local_minimum_of_the_loglik(x):
    """The picture section: at (1/2, 0) the gradient of F vanishes and its Hessian is
    [[-8, 4x], [4x, -2]] with determinant 16 (1 - x^2) < 0 (a saddle), while l''(0) = 2 (x^2 - 1) > 0
    (a local minimum of l); at (a*, theta*) F has a local maximum and so does l (theorem local)."""
    F, loglik, e_step, _ = _toy(x)
    h = 1e-5
    grad = [(F(0.5 + h, 0) - F(0.5 - h, 0)) / (2 * h), (F(0.5, h) - F(0.5, -h)) / (2 * h)]
    np.testing.assert_allclose(grad, 0.0, atol=1e-8)
    H = _hessian(F, (0.5, 0.0))
    np.testing.assert_allclose(H, [[-8, 4 * x], [4 * x, -2]], atol=1e-4)
    eig = np.linalg.eigvalsh(H)
    assert eig[0] < -0.1 and eig[1] > 0.1                              # indefinite: a saddle
    l2_at_0 = (loglik(1e-3) - 2 * loglik(0.0) + loglik(-1e-3)) / 1e-6
    assert l2_at_0 == pytest.approx(2 * (x**2 - 1), rel=1e-4)
    theta_star = _theta_star(x)
    a_star = e_step(theta_star)
    assert np.all(np.linalg.eigvalsh(_hessian(F, (a_star, theta_star))) < -0.1)
    l2_star = (loglik(theta_star + 1e-3) - 2 * loglik(theta_star) + loglik(theta_star - 1e-3)) / 1e-6
    assert l2_star < -0.1


def test_below_one_the_stationary_point_is_a_maximum_of_both():
    """For x^2 < 1 the same point (1/2, 0) is a local maximum of F and theta = 0 one of l, as the
    theorem on local maxima requires in both directions."""
    F, loglik, _, _ = _toy(0.8)
    assert np.all(np.linalg.eigvalsh(_hessian(F, (0.5, 0.0))) < -0.1)
    assert (loglik(1e-3) - 2 * loglik(0.0) + loglik(-1e-3)) / 1e-6 == pytest.approx(2 * (0.64 - 1),
                                                                                   rel=1e-4)
    thetas = np.linspace(0.01, 2.0, 200)                                # (b) of the exercise
    assert np.all(0.8 * np.tanh(0.8 * thetas) < thetas)


@pytest.mark.parametrize("x", [1.1, 1.2, 2.0])
def test_em_rate_is_the_fraction_of_missing_information(x):
    """Equation coordinate_ascent-missing-information: the slope of the EM map at theta* equals
    1 - I_obs / I_c, with I_obs = -l''(theta*) from emlib's log-likelihood and I_c = -d2F/dtheta2
    (= 2, for every a); the observed contraction of EM iterates approaches the same number."""
    F, loglik, e_step, m_step = _toy(x)
    theta_star = _theta_star(x)
    h = 1e-4
    I_obs = -(loglik(theta_star + h) - 2 * loglik(theta_star) + loglik(theta_star - h)) / h**2
    for a in (0.1, e_step(theta_star), 0.7):
        I_c = -(F(a, theta_star + h) - 2 * F(a, theta_star) + F(a, theta_star - h)) / h**2
        assert I_c == pytest.approx(2.0, abs=1e-5)
    slope = x**2 * (1 - np.tanh(x * theta_star) ** 2)
    assert slope == pytest.approx(1 - I_obs / 2.0, abs=1e-5)
    theta = theta_star + 1e-3
    for _ in range(3):
        new = m_step(e_step(theta))
        ratio = (new - theta_star) / (theta - theta_star)
        theta = new
    assert ratio == pytest.approx(slope, abs=1e-3)


@pytest.fixture(scope="module")
def mixture():
    model = emlib.GaussianMixture(3, "full", reg_covar=0.0)
    truth = emlib.GaussianMixtureParams(
        [0.3, 0.4, 0.3], [[0.0, 0.0], [2.5, 0.5], [1.0, 2.5]],
        [[[0.6, 0.0], [0.0, 0.6]], [[1.0, 0.5], [0.5, 1.0]], [[0.5, -0.2], [-0.2, 0.8]]])
    X, _ = model.sample(truth, 200, np.random.default_rng(3))
    return model, X, model.init_params(X, np.random.default_rng(4))


def test_F_of_the_posterior_minorizes_the_loglik(mixture):
    """Equation coordinate_ascent-minorizer and proposition coordinate_ascent-prop-mm for a
    Gaussian mixture: F(q_t, .) <= l everywhere (random parameters near and far), equality at
    theta_t, and the M-step's gain in l is at least its gain in the minorizer."""
    model, X, theta_t = mixture
    q_t = model.posterior(X, theta_t)
    assert elbo(model, X, theta_t, q_t) == pytest.approx(model.log_likelihood(X, theta_t), rel=1e-12)
    for seed in range(12):
        other = model.init_params(X, np.random.default_rng(100 + seed))
        assert elbo(model, X, other, q_t) < model.log_likelihood(X, other)
    new = model.m_step(model.expected_stats(X, q_t))
    gain_l = model.log_likelihood(X, new) - model.log_likelihood(X, theta_t)
    gain_m = elbo(model, X, new, q_t) - elbo(model, X, theta_t, q_t)
    assert gain_m > 1.0 and gain_l >= gain_m - 1e-9


def test_jensen_minorizer_with_the_posterior_weights_is_F(mixture):
    """'Why the logarithm?': sum_n sum_k r_nk log(pi_k N(x_n | mu_k, Sigma_k) / r_nk) is F(q_t, theta)
    for any theta, and it lies below sum_n log sum_k pi_k N(x_n | mu_k, Sigma_k)."""
    model, X, theta_t = mixture
    r = model.posterior(X, theta_t)
    other = model.init_params(X, np.random.default_rng(6))
    log_joint = model.log_joint(X, other)
    jensen = np.sum(r * (log_joint - np.log(r)))
    assert jensen == pytest.approx(elbo(model, X, other, r), rel=1e-12)
    per_point = np.sum(r * (log_joint - np.log(r)), axis=1)
    assert np.all(per_point <= logsumexp(log_joint, axis=1) + 1e-12)


def test_variational_em_with_point_masses_on_the_toy_model():
    """The variational EM section: from theta* the point-mass E-step picks a = 1, the M-step gives
    theta = x; F(q_t, theta^(t)) rises while l falls, and the gap at the fixed point is
    -2 log sigma(2 x^2)."""
    x = 1.2
    F, loglik, _, m_step = _toy(x)
    theta_star = _theta_star(x)
    e_step = lambda theta: max((0.0, 1.0), key=lambda a: F(a, theta))
    assert F(1.0, 0.7) - F(0.0, 0.7) == pytest.approx(4 * x * 0.7, rel=1e-12)
    thetas, F_trace = [theta_star], []
    for _ in range(4):
        a = e_step(thetas[-1])
        F_trace.append(F(a, thetas[-1]))
        thetas.append(m_step(a))
    assert np.all(np.diff(F_trace) >= -1e-12) and F_trace[1] > F_trace[0] + 0.01
    assert thetas[-1] == pytest.approx(x, abs=1e-12)
    assert loglik(x) < loglik(theta_star) - 0.01
    assert loglik(x) - F(1.0, x) == pytest.approx(-2 * np.log(expit(2 * x**2)), rel=1e-10)


def test_point_mass_variational_em_on_a_mixture_never_lowers_F(mixture):
    """Variational EM with the family of point masses (classification EM) on a Gaussian mixture:
    F(q_t, theta^(t)) = log p(x, z_hat | theta) never decreases and stays below l, and the fixed
    point is not a stationary point of l (the gap keeps it away)."""
    model, X, theta = mixture
    F_trace, gaps = [], []
    for _ in range(30):
        z_hat = np.argmax(model.log_joint(X, theta), axis=1)
        q = np.eye(3)[z_hat]
        F_trace.append(elbo(model, X, theta, q))
        gaps.append(model.log_likelihood(X, theta) - F_trace[-1])
        theta = model.m_step(model.expected_stats(X, q))
    assert np.all(np.diff(F_trace) >= -1e-9 * np.abs(F_trace[1:]))
    assert min(gaps) > 1.0                                               # the bound never closes
    em_step = model.m_step(model.expected_stats(X, model.posterior(X, theta)))
    assert model.log_likelihood(X, em_step) > model.log_likelihood(X, theta) + 0.1


def test_fixed_point_exercise_steps_grow_then_shrink():
    """Exercise coordinate_ascent-ex-fixed-points (c): from a small start the steps grow (by about
    x^2 per iteration at first) and then shrink; from 0.5, as in the staircase, they only shrink."""
    x = 1.2
    path = [0.01]
    for _ in range(30):
        path.append(x * np.tanh(x * path[-1]))
    steps = np.diff(path)
    k = int(np.argmax(steps))
    assert 5 < k < 25
    assert np.all(np.diff(steps[:k + 1]) > 0) and np.all(np.diff(steps[k:]) < 0)
    assert steps[1] / steps[0] == pytest.approx(x**2, rel=0.02)
    path = [0.5]
    for _ in range(20):
        path.append(x * np.tanh(x * path[-1]))
    assert np.all(np.diff(np.diff(path)) < 0)


@pytest.fixture(scope="module")
def logistic_data():
    rng = np.random.default_rng(7)
    U = np.column_stack([np.ones(300), rng.standard_normal((300, 2))])
    y = (rng.random(300) < expit(U @ np.array([-0.5, 1.5, -1.0]))).astype(float)
    return U, y


def _logistic(U, y):
    loglik = lambda b: float(y @ (U @ b) - np.sum(np.logaddexp(0, U @ b)))
    grad = lambda b: U.T @ (y - expit(U @ b))
    hess = lambda b: -(U.T * (expit(U @ b) * (1 - expit(U @ b)))) @ U
    return loglik, grad, hess


def test_logistic_minorizer_exercise(logistic_data):
    """Exercise coordinate_ascent-ex-mm-logistic: the Hessian is >= -U^T U / 4; the quadratic
    m(beta | beta_t) lies below l and touches it at beta_t; the MM iteration
    beta + 4 (U^T U)^{-1} grad l never decreases l and reaches the maximum found by Newton's method."""
    U, y = logistic_data
    loglik, grad, hess = _logistic(U, y)
    G = U.T @ U
    rng = np.random.default_rng(8)
    for _ in range(5):
        b = rng.normal(0, 2, 3)
        assert np.linalg.eigvalsh(hess(b) + G / 4).min() >= -1e-9
    b_t = np.array([0.3, -0.2, 0.5])

    def minorizer(b):
        d = b - b_t
        return loglik(b_t) + grad(b_t) @ d - d @ G @ d / 8

    assert minorizer(b_t) == pytest.approx(loglik(b_t), rel=1e-14)
    for _ in range(50):
        b = b_t + rng.normal(0, 1.5, 3)
        assert minorizer(b) <= loglik(b) + 1e-9
    b, trace = np.zeros(3), []
    for _ in range(300):
        trace.append(loglik(b))
        b = b + 4 * np.linalg.solve(G, grad(b))
    assert np.all(np.diff(trace) >= -1e-10)
    newton = np.zeros(3)
    for _ in range(30):
        newton = newton - np.linalg.solve(hess(newton), grad(newton))
    np.testing.assert_allclose(b, newton, atol=1e-6)


def test_q_indexing_matches_the_em_driver(mixture):
    """Algorithm coordinate_ascent-alg-em with q_t = p(z | x, theta^(t)): the M-step applied to
    q_t gives theta^(t+1) of emlib.em, and F(q_t, theta^(t)) = l(theta^(t)) = log_likelihood[t]."""
    model, X, theta0 = mixture
    iterates = [theta0]
    fit = emlib.em(model, X, theta0, max_iter=3, tol=0,
                   callback=lambda t, p, ll: iterates.append(p))
    for t in range(3):
        q_t = model.posterior(X, iterates[t])
        assert elbo(model, X, iterates[t], q_t) == pytest.approx(fit.log_likelihood[t], rel=1e-10)
        nxt = model.m_step(model.expected_stats(X, q_t))
        np.testing.assert_allclose(nxt.means, iterates[t + 1].means, rtol=1e-10)
