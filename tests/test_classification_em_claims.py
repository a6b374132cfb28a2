"""The claims of the chapter "Classification EM and k-means" that tests/test_cem.py does not
already check, recomputed as the chapter computes them.

The population CEM iteration on the symmetric mixture in closed form (its fixed point, and the
stability of that fixed point for delta = 1.25 and its instability for small delta), the fixed
point that is not a stationary point of l, the simulation over 20 data sets, Viterbi training as
CEM for hidden Markov models, and the exercise on tempering.
"""
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

import emlib

DELTA = 1.25
MODEL = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
TRUTH = emlib.GaussianMixtureParams([0.5, 0.5], [[-DELTA], [DELTA]], [[1.0], [1.0]])


def fixed_point(delta):
    m = delta * (2 * norm.cdf(delta) - 1) + 2 * norm.pdf(delta)
    return m, 1 + delta ** 2 - m ** 2


# ---------------------------------------------------------------- the population iteration
def _moments(lo, hi, mu):
    """The integrals of 1, x, x^2 against N(x | mu, 1) over (lo, hi)."""
    a, b = lo - mu, hi - mu
    P = norm.cdf(b) - norm.cdf(a)
    pa, pb = (0.0 if np.isinf(u) else norm.pdf(u) for u in (a, b))
    apa, bpb = (0.0 if np.isinf(u) else u * norm.pdf(u) for u in (a, b))
    e1, e2 = pa - pb, P + apa - bpb
    return np.array([P, mu * P + e1, mu ** 2 * P + 2 * mu * e1 + e2])


def population_cem(theta, delta):
    """One CEM iteration with the sums replaced by expectations under 1/2 N(-delta,1) + 1/2 N(delta,1).

    theta = (pi_2, mu_1, mu_2, v_1, v_2). The C-step gives class 2 the set where
    A x^2 + B x + C > 0 (a union of intervals), the M-step the truncated moments of the data there.
    """
    pi2, mu1, mu2, v1, v2 = theta
    A = 0.5 / v1 - 0.5 / v2
    B = mu2 / v2 - mu1 / v1
    C = np.log(pi2 / (1 - pi2)) - 0.5 * np.log(v2 / v1) - mu2 ** 2 / (2 * v2) + mu1 ** 2 / (2 * v1)
    roots = [-C / B] if abs(A) < 1e-14 else sorted(np.roots([A, B, C]).real) if B * B > 4 * A * C else []
    edges = [-np.inf] + list(roots) + [np.inf]
    sums = {1: np.zeros(3), 2: np.zeros(3)}
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = 0.0 if np.isinf(lo) and np.isinf(hi) else hi - 1 if np.isinf(lo) else \
            lo + 1 if np.isinf(hi) else 0.5 * (lo + hi)
        k = 2 if A * inside ** 2 + B * inside + C > 0 else 1
        sums[k] += 0.5 * _moments(lo, hi, -delta) + 0.5 * _moments(lo, hi, delta)
    means = [sums[k][1] / sums[k][0] for k in (1, 2)]
    variances = [sums[k][2] / sums[k][0] - means[k - 1] ** 2 for k in (1, 2)]
    return np.array([sums[2][0], *means, *variances])


def spectral_radius_at_the_fixed_point(delta, h=1e-6):
    m, v = fixed_point(delta)
    theta = np.array([0.5, -m, m, v, v])
    J = np.column_stack([(population_cem(theta + e, delta) - population_cem(theta - e, delta)) / (2 * h)
                         for e in h * np.eye(5)])
    return np.max(np.abs(np.linalg.eigvals(J)))


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.25, 2.0])
def test_the_symmetric_point_is_a_fixed_point_of_the_population_iteration(delta):
    m, v = fixed_point(delta)
    theta = np.array([0.5, -m, m, v, v])
    np.testing.assert_allclose(population_cem(theta, delta), theta, atol=1e-12)
    # the population iteration itself, checked against a large sample: one CEM step from theta
    X, _ = MODEL.sample(emlib.GaussianMixtureParams([0.5, 0.5], [[-delta], [delta]], [[1.0], [1.0]]),
                        400_000, np.random.default_rng(3))
    near = np.array([0.45, -m - 0.1, m + 0.05, 0.8 * v, 1.1 * v])
    start = emlib.GaussianMixtureParams([1 - near[0], near[0]], near[1:3, None], near[3:5, None])
    step = emlib.cem(MODEL, X, start, max_iter=1).params
    sample_step = np.r_[step.weights[1], step.means[:, 0], step.covariances[:, 0]]
    np.testing.assert_allclose(sample_step, population_cem(near, delta), atol=0.01)


def test_the_fixed_point_attracts_at_delta_1_25_and_repels_for_small_delta():
    assert spectral_radius_at_the_fixed_point(1.25) < 0.95
    assert spectral_radius_at_the_fixed_point(0.0) > 1.05
    assert spectral_radius_at_the_fixed_point(0.5) > 1.05


def test_the_mixture_of_the_chapter_has_two_shallow_modes():
    x = np.linspace(-3, 3, 6001)
    density = 0.5 * norm.pdf(x, -DELTA) + 0.5 * norm.pdf(x, DELTA)
    peaks = np.flatnonzero((density[1:-1] > density[:-2]) & (density[1:-1] > density[2:])) + 1
    assert len(peaks) == 2
    assert density[3000] / density[peaks].max() > 0.85            # the dip at 0 is shallow


# ---------------------------------------------------------------- the example and the simulation
@pytest.fixture(scope="module")
def example():
    X, _ = MODEL.sample(TRUTH, 1000, np.random.default_rng(4))
    init = emlib.GaussianMixtureParams([0.5, 0.5], [[0.0], [0.5]], np.full((2, 1), X.var()))
    return X, emlib.em(MODEL, X, init, tol=0, max_iter=1500), emlib.cem(MODEL, X, init)


def loglik_gradient(X, params, h=1e-6):
    def loglik(u):
        w = np.array([1.0, np.exp(u[0])])
        return MODEL.log_likelihood(X, emlib.GaussianMixtureParams(w / w.sum(), u[1:3, None],
                                                                   np.exp(u[3:5, None])))
    u = np.r_[np.log(params.weights[1] / params.weights[0]), params.means[:, 0],
              np.log(params.covariances[:, 0])]
    return np.array([(loglik(u + e) - loglik(u - e)) / (2 * h) for e in h * np.eye(5)])


def test_cems_fixed_point_is_not_a_stationary_point_of_l_but_ems_limit_is(example):
    X, em_fit, cem_fit = example
    assert np.linalg.norm(loglik_gradient(X, cem_fit.params)) > 50
    assert np.linalg.norm(loglik_gradient(X, em_fit.params)) < 1e-4
    assert cem_fit.n_iter == 12
    assert MODEL.log_likelihood(X, cem_fit.params) < em_fit.log_likelihood[-1] - 10


def test_cem_fits_gather_around_the_fixed_point_and_their_variances_are_below_ems():
    m, v = fixed_point(DELTA)
    half_cem, var_cem, var_em = [], [], []
    for seed in range(20):
        X, _ = MODEL.sample(TRUTH, 1000, np.random.default_rng(100 + seed))
        start = emlib.GaussianMixtureParams([0.5, 0.5], np.quantile(X, [0.25, 0.75])[:, None],
                                            np.full((2, 1), X.var()))
        cem = emlib.cem(MODEL, X, start).params
        em = emlib.em(MODEL, X, start, tol=1e-10, max_iter=3000).params
        half_cem.append(np.ptp(cem.means) / 2)
        var_cem.append(cem.covariances.mean())
        var_em.append(em.covariances.mean())
    half_cem, var_cem, var_em = map(np.array, (half_cem, var_cem, var_em))
    assert np.max(np.abs(half_cem - m)) < 0.075                     # "within 0.07"
    se = half_cem.std(ddof=1) / np.sqrt(20)
    assert abs(half_cem.mean() - m) < 3 * se
    assert abs(var_cem.mean() - v) < 3 * var_cem.std(ddof=1) / np.sqrt(20)
    assert np.all(var_cem < var_em)


# ---------------------------------------------------------------- relatives
def test_viterbi_training_is_monotone_and_stops():
    """CEM for an HMM: Viterbi path, then the M-step on counts along it."""
    truth = emlib.GaussianHMMParams([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.0], [2.0]],
                                    [[[1.0]], [[0.5]]])
    model = emlib.GaussianHMM(2)
    (x,), _ = model.sample(truth, [300], np.random.default_rng(1))
    params = emlib.GaussianHMMParams([0.5, 0.5], [[0.7, 0.3], [0.3, 0.7]], [[-0.5], [2.5]],
                                     [[[1.0]], [[1.0]]])
    values, paths = [], []
    for _ in range(50):
        path = model.viterbi(x, params).path
        values.append(model.complete_log_likelihood(x, params, path))
        if paths and np.array_equal(path, paths[-1]):
            break
        paths.append(path)
        params = model.m_step(model.expected_stats(x, path))
    assert np.all(np.diff(values) >= -1e-9 * abs(values[-1]))
    assert len(values) < 50                                         # the path stopped changing


def test_tempered_responsibilities_maximize_the_tempered_objective():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=3.0, size=5)
    for tau in (0.05, 0.3, 1.0, 2.0):
        q = np.exp(a / tau - logsumexp(a / tau))
        value = q @ a - tau * np.sum(q * np.log(q))
        assert value == pytest.approx(tau * logsumexp(a / tau), rel=1e-12)
        for _ in range(200):                                       # any other q is worse
            other = rng.dirichlet(np.ones(5))
            assert other @ a - tau * np.sum(other * np.log(other)) <= value + 1e-12
    taus = np.linspace(1e-3, 1.0, 400)
    g = np.array([t * logsumexp(a / t) for t in taus])
    assert np.all(np.diff(g) >= -1e-12) and g[-1] > g[0] + 0.1      # increases with tau
    assert g[0] == pytest.approx(a.max(), abs=1e-3 * np.log(5) + 1e-12)
    assert g[-1] == pytest.approx(logsumexp(a))                     # tau = 1: log p(x_n)
