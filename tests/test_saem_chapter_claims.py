"""The claims of the chapter "SAEM: stochastic approximation EM" (book/saem.ipynb), checked
independently of the notebook on the same data: the M-step and Fisher's identity as written,
the Laplace one-node rule, the one-recursion proposition (EM, unbiasedness of the sampled and
mini-batch statistics), the roots of h, the rejection sampler's acceptance probability, the EM
inequality behind the ascent rule, the exercises' formulas, the shapes of the posteriors in the
first figure, the step-size exponent, the autocorrelation times, and the deterministic numbers
the prose shows (recomputed here by other means and compared with the values that `make execute`
stored for its {eval} roles).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import binom, norm

import emlib
from book_sources import prose_values
from emlib import LogisticRandomInterceptParams as Params

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "saem.ipynb"
MODEL = emlib.LogisticRandomIntercept()
INIT = Params(1.0, 0.3)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X, _ = MODEL.sample(Params(-0.5, 1.5), rng.integers(2, 11, size=100), rng)
    return X


@pytest.fixture(scope="module")
def mle(data):
    # Nelder-Mead on the quadrature likelihood: no gradient, unlike the chapter's BFGS
    def negative(v):
        return -MODEL.log_likelihood(data, Params(v[0], math.exp(v[1])))
    opt = optimize.minimize(negative, [0.0, 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 5000})
    return Params(opt.x[0], math.exp(opt.x[1]))


@pytest.fixture(scope="module")
def prose():
    return prose_values(CHAPTER)


def text(prose, name):
    return prose["saem_" + name].strip("'")


def L(s, params):
    """L(s; theta) of eq. saem-stats, written out."""
    s0, s1, s2 = s
    mu, tau2 = params.mean, params.variance
    return -s0 / 2 * math.log(2 * math.pi * tau2) - (s2 - 2 * mu * s1 + mu * mu * s0) / (2 * tau2)


def expected(data, params):
    mean, second = MODEL.posterior_moments(data, params)
    return (data.shape[0], mean.sum(), second.sum())


# ---------------------------------------------------------------------- the model
def test_the_m_step_maximizes_L_and_is_its_only_stationary_point():
    rng = np.random.default_rng(1)
    for _ in range(20):
        z = rng.normal(rng.normal(), rng.uniform(0.3, 2), size=30)
        s = (30.0, z.sum(), (z * z).sum())
        best = MODEL.m_step(emlib.LogisticRandomInterceptStats(*s))
        for _ in range(20):
            other = Params(best.mean + rng.normal(0, 0.5), best.variance * math.exp(rng.normal(0, 0.5)))
            assert L(s, other) < L(s, best)
        h = 1e-6
        grad = [(L(s, Params(best.mean + h, best.variance)) - L(s, Params(best.mean - h, best.variance))) / (2 * h),
                (L(s, Params(best.mean, best.variance + h)) - L(s, Params(best.mean, best.variance - h))) / (2 * h)]
        assert np.abs(grad).max() < 1e-5


def test_log_joint_is_the_binomial_term_plus_L(data):
    z = np.random.default_rng(2).normal(size=data.shape[0])
    params = Params(0.3, 0.8)
    binomial = binom.logpmf(data[:, 0], data[:, 1], 1 / (1 + np.exp(-z))).sum()
    s = (data.shape[0], z.sum(), (z * z).sum())
    assert MODEL.log_joint(data, params, z).sum() == pytest.approx(binomial + L(s, params), rel=1e-12)


def test_fishers_identity_as_written_in_the_chapter(data):
    for params in (INIT, Params(-0.4, 1.2)):
        n, s1, s2 = expected(data, params)
        mu, tau2 = params.mean, params.variance
        formula = [(s1 - mu * n) / tau2, (s2 - 2 * mu * s1 + mu * mu * n - n * tau2) / (2 * tau2 ** 2)]
        h = 1e-5
        fd = [(MODEL.log_likelihood(data, Params(mu + h, tau2)) - MODEL.log_likelihood(data, Params(mu - h, tau2))) / (2 * h),
              (MODEL.log_likelihood(data, Params(mu, tau2 + h)) - MODEL.log_likelihood(data, Params(mu, tau2 - h))) / (2 * h)]
        np.testing.assert_allclose(formula, fd, rtol=1e-6, atol=1e-6)


def test_every_expected_statistic_lies_in_S_and_completions_lie_in_S_unless_all_equal(data):
    for params in (INIT, Params(-3.0, 0.05), Params(2.0, 9.0)):
        n, s1, s2 = expected(data, params)
        assert n * s2 > s1 * s1
    z = np.random.default_rng(3).normal(size=50)
    assert 50 * (z * z).sum() > z.sum() ** 2
    same = np.full(50, 0.7)
    assert 50 * (same * same).sum() == pytest.approx(same.sum() ** 2)


def test_the_proposal_scale_is_a_lower_bound_on_the_laplace_standard_deviation(data):
    for params in (INIT, Params(-0.5, 1.4)):
        mode = MODEL.posterior_mode(data, params)
        p = 1 / (1 + np.exp(-mode))
        laplace_sd = 1 / np.sqrt(1 / params.variance + data[:, 1] * p * (1 - p))
        assert np.all(MODEL.proposal_scales(data, params) / MODEL.proposal_scale <= laplace_sd + 1e-15)


# ---------------------------------------------------------------------- quadrature
def test_one_node_is_the_laplace_approximation(data):
    params = INIT
    mode = MODEL.posterior_mode(data, params)
    p = 1 / (1 + np.exp(-mode))
    s = 1 / np.sqrt(1 / params.variance + data[:, 1] * p * (1 - p))
    laplace = np.log(np.sqrt(2 * np.pi) * s) + MODEL.log_joint(data, params, mode)
    one = emlib.LogisticRandomIntercept(n_nodes=1).log_likelihood_per_group(data, params)
    np.testing.assert_allclose(one, laplace, rtol=0, atol=1e-12)
    u, w = np.polynomial.hermite.hermgauss(1)
    assert u[0] == 0 and w[0] == pytest.approx(math.sqrt(math.pi))


def test_gauss_hermite_is_exact_up_to_degree_2q_minus_1():
    u, w = np.polynomial.hermite.hermgauss(3)
    for degree in range(6):
        exact = 0.0 if degree % 2 else math.gamma((degree + 1) / 2)
        assert (w * u ** degree).sum() == pytest.approx(exact, abs=1e-12)
    assert (w * u ** 6).sum() != pytest.approx(math.gamma(3.5), abs=1e-3)


def test_laplace_underestimates_and_is_worst_away_from_the_boundary(data, mle):
    # exercise saem-ex-laplace: one node is below the quadrature in every group, and on average
    # more so for the groups with both successes and failures than for the skewed ones
    err = (MODEL.log_likelihood_per_group(data, mle)
           - emlib.LogisticRandomIntercept(n_nodes=1).log_likelihood_per_group(data, mle))
    boundary = (data[:, 0] == 0) | (data[:, 0] == data[:, 1])
    assert err.min() > 0
    assert err[~boundary].mean() > 1.2 * err[boundary].mean()
    # and the second-order expansion of the exercise predicts each error to within a third
    mode = MODEL.posterior_mode(data, mle)
    p = 1 / (1 + np.exp(-mode))
    J = data[:, 1]
    s = 1 / np.sqrt(1 / mle.variance + J * p * (1 - p))
    g3 = -J * p * (1 - p) * (1 - 2 * p)
    g4 = -J * p * (1 - p) * (1 - 6 * p * (1 - p))
    predicted = g4 * s ** 4 / 8 + 5 * g3 ** 2 * s ** 6 / 24
    np.testing.assert_allclose(predicted, err, rtol=0.35)


def test_laplace_averages_in_the_prose(data, mle, prose):
    err = (MODEL.log_likelihood_per_group(data, mle)
           - emlib.LogisticRandomIntercept(n_nodes=1).log_likelihood_per_group(data, mle))
    boundary = (data[:, 0] == 0) | (data[:, 0] == data[:, 1])
    assert text(prose, "laplace_boundary") == f"{err[boundary].mean():.3f}"
    assert text(prose, "laplace_interior") == f"{err[~boundary].mean():.3f}"


def test_quadrature_against_a_trapezoidal_rule(data):
    grid = np.linspace(-20, 20, 40_001)
    for params in (INIT, Params(-0.5, 1.5)):
        density = np.exp(MODEL.log_joint(data, params, np.broadcast_to(grid[:, None], (grid.size, 100))))
        brute = np.log(integrate.trapezoid(density, grid, axis=0))
        assert np.abs(MODEL.log_likelihood_per_group(data, params) - brute).max() < 1e-10


# ---------------------------------------------------------------------- the numbers in the prose
def test_deterministic_numbers_in_the_prose(data, mle, prose):
    k, J = data[:, 0], data[:, 1]
    assert text(prose, "n_groups") == "100" and text(prose, "n_none") == str(int(np.sum(k == 0)))
    assert text(prose, "n_all") == str(int(np.sum(k == J)))
    assert text(prose, "mle_mu") == f"{mle.mean:.3f}".replace("-", "\u2212")
    assert text(prose, "mle_tau2") == f"{mle.variance:.3f}"
    assert text(prose, "ll_max") == f"{MODEL.log_likelihood(data, mle):.2f}".replace("-", "\u2212")
    # standard errors from the expected-information-free route: a numerical Hessian of ell itself
    h = 1e-4

    def ell(a, b):
        return MODEL.log_likelihood(data, Params(mle.mean + a, mle.variance + b))
    H = np.array([[(ell(h, 0) - 2 * ell(0, 0) + ell(-h, 0)) / h ** 2,
                   (ell(h, h) - ell(h, -h) - ell(-h, h) + ell(-h, -h)) / (4 * h * h)],
                  [0.0, (ell(0, h) - 2 * ell(0, 0) + ell(0, -h)) / h ** 2]])
    H[1, 0] = H[0, 1]
    se = np.sqrt(np.diag(np.linalg.solve(-H, np.eye(2))))
    assert text(prose, "se_mu") == f"{se[0]:.2f}" and text(prose, "se_tau2") == f"{se[1]:.2f}"
    # EM's rate of convergence: the largest eigenvalue of the Jacobian of the EM map at the MLE
    # (the chapter measures it from the ratio of distances along EM's path instead)
    jac = np.asarray(emlib.em_map_jacobian(MODEL, data, mle), dtype=float)
    rate = float(np.max(np.abs(np.linalg.eigvals(jac))))
    assert text(prose, "em_rate") == f"{rate:.2f}"
    assert text(prose, "growth_needed") == f"{rate ** -2:.1f}"
    fit = emlib.em(MODEL, data, INIT, tol=1e-9, max_iter=1000)
    assert text(prose, "em_iters") == str(fit.n_iter)
    laplace = abs(emlib.LogisticRandomIntercept(n_nodes=1).log_likelihood(data, INIT)
                  - MODEL.log_likelihood(data, INIT))
    assert text(prose, "laplace_error") == f"{laplace:.2f}"
    proposals = np.exp(binom.logpmf(k, J, k / J) - MODEL.log_likelihood_per_group(data, mle))
    assert text(prose, "proposals_mean") == f"{proposals.mean():.1f}"
    assert text(prose, "proposals_max") == f"{proposals.max():.0f}"
    assert (text(prose, "hardest_k"), text(prose, "hardest_J")) == (str(int(k[np.argmax(proposals)])),
                                                                      str(int(J[np.argmax(proposals)])))


def test_bfgs_and_em_agree_on_the_maximum(data, mle):
    fit = emlib.em(MODEL, data, INIT, tol=0, max_iter=150)
    assert math.hypot(fit.params.mean - mle.mean, fit.params.variance - mle.variance) < 1e-6


# ---------------------------------------------------------------------- the one recursion
def test_gamma_one_and_exact_statistics_is_em(data):
    s, params, path = None, INIT, []
    for _ in range(5):
        mean, second = MODEL.posterior_moments(data, params)
        S = emlib.LogisticRandomInterceptStats(100.0, mean.sum(), second.sum())
        s = S if s is None else 0.0 * s + 1.0 * S
        params = MODEL.m_step(s)
        path.append(params)
    em_path = []
    emlib.em(MODEL, data, INIT, tol=0, max_iter=5, callback=lambda t, p, ll: em_path.append(p))
    for a, b in zip(path, em_path):
        assert a.mean == pytest.approx(b.mean, abs=1e-12) and a.variance == pytest.approx(b.variance, abs=1e-12)


def test_sampled_statistics_are_unbiased(data):
    params = Params(-0.5, 1.4)
    draws = MODEL.sample_posterior(data, params, np.random.default_rng(4), 2000)
    s1 = draws.sum(axis=1)
    n, e1, e2 = expected(data, params)
    assert abs(s1.mean() - e1) < 5 * s1.std() / math.sqrt(s1.size)
    s2 = (draws ** 2).sum(axis=1)
    assert abs(s2.mean() - e2) < 5 * s2.std() / math.sqrt(s2.size)


def test_scaled_mini_batch_statistics_are_unbiased_by_enumeration(data):
    import itertools
    X = data[:6]
    mean, _ = MODEL.posterior_moments(X, INIT)
    batches = list(itertools.combinations(range(6), 2))
    scaled = [6 / 2 * mean[list(b)].sum() for b in batches]
    assert np.mean(scaled) == pytest.approx(mean.sum(), rel=1e-12)


def test_the_roots_of_h_are_the_stationary_points(data, mle):
    # h(sbar(theta_hat)) = 0: the M-step of the expected statistics at the MLE returns it
    n, s1, s2 = expected(data, mle)
    back = MODEL.m_step(emlib.LogisticRandomInterceptStats(n, s1, s2))
    assert math.hypot(back.mean - mle.mean, back.variance - mle.variance) < 1e-6
    # and away from a stationary point it does not
    n, s1, s2 = expected(data, INIT)
    away = MODEL.m_step(emlib.LogisticRandomInterceptStats(n, s1, s2))
    assert math.hypot(away.mean - INIT.mean, away.variance - INIT.variance) > 0.1


def test_rejection_acceptance_probability_is_the_likelihood_ratio(data):
    # the mean acceptance probability of a proposal from the prior is p(x_n | theta) / B_n
    params = Params(-0.5, 1.4)
    rng = np.random.default_rng(5)
    z = rng.normal(params.mean, math.sqrt(params.variance), size=200_000)
    for n in range(5):
        k, J = data[n]
        accept = binom.pmf(k, J, 1 / (1 + np.exp(-z))) / binom.pmf(k, J, k / J)
        assert np.all(accept <= 1 + 1e-12)
        predicted = math.exp(MODEL.log_likelihood_per_group(data[n:n + 2], params)[0]) / binom.pmf(k, J, k / J)
        assert abs(accept.mean() - predicted) < 5 * accept.std() / math.sqrt(z.size)


def test_the_em_inequality_that_the_ascent_rule_relies_on(data):
    rng = np.random.default_rng(6)
    for _ in range(10):
        theta = Params(rng.normal(-0.5, 0.5), rng.uniform(0.3, 3.0))
        other = Params(theta.mean + rng.normal(0, 0.3), theta.variance * math.exp(rng.normal(0, 0.3)))
        s = expected(data, theta)
        gain_q = L(s, other) - L(s, theta)
        gain_l = MODEL.log_likelihood(data, other) - MODEL.log_likelihood(data, theta)
        assert gain_l >= gain_q - 1e-9


# ---------------------------------------------------------------------- exercises
def test_saem_on_q_is_saem_on_the_statistics(data):
    # exercise saem-ex-derive, part 1: Q_t(theta) - L(s_t; theta) does not depend on theta
    rng = np.random.default_rng(7)
    draws = MODEL.sample_posterior(data, INIT, rng, 6)
    gammas = [1.0, 0.5, 0.4, 0.3, 0.3, 0.2]
    thetas = [Params(m, v) for m, v in [(-1, 0.5), (0, 1), (0.5, 2), (-0.3, 1.4)]]
    q = np.zeros(len(thetas))
    s = None
    for z, g in zip(draws, gammas):
        q = q + g * (np.array([MODEL.log_joint(data, th, z).sum() for th in thetas]) - q)
        t = np.array([100.0, z.sum(), (z * z).sum()])
        s = t if s is None else s + g * (t - s)
    diff = q - np.array([L(s, th) for th in thetas])
    assert np.ptp(diff) < 1e-8 * np.abs(q).max()
    # part 3: averaging the per-draw parameters gives a smaller tau^2 than SAEM's
    per_draw = [MODEL.m_step(MODEL.expected_stats(data, z)) for z in draws]
    averaged_tau2 = np.mean([p.variance for p in per_draw])
    saem_tau2 = MODEL.m_step(MODEL.expected_stats(data, draws)).variance   # equal weights
    assert averaged_tau2 < saem_tau2


def test_the_step_size_exponent_rates():
    # exercise saem-ex-exponent: prod (1 - c/v) ~ t^-c, and the variance recursion's fixed point
    c = 0.22
    logs = {t: np.sum(np.log1p(-c / np.arange(2, t + 1))) for t in (10_000, 100_000)}
    slope = (logs[100_000] - logs[10_000]) / math.log(10)
    assert slope == pytest.approx(-c, abs=1e-3)
    v, alpha = 1.0, 0.7
    var = 0.0
    for t in range(1, 200_001):
        g = t ** -alpha
        var = (1 - c * g) ** 2 * var + g * g * v
    assert var == pytest.approx(200_000 ** -alpha * v / (2 * c), rel=0.05)


def test_alpha_one_is_slower_than_alpha_point_seven(data, mle):
    # the claim behind the figure and the exercise, on three other seeds
    ll_max = MODEL.log_likelihood(data, mle)
    gaps = {}
    for alpha in (0.7, 1.0):
        gaps[alpha] = np.median([ll_max - emlib.saem(MODEL, data, INIT, rng=np.random.default_rng(seed),
                                                     step_sizes=alpha, burn_in=20,
                                                     max_iter=600).log_likelihood[-1]
                                 for seed in (11, 12, 13)])
    assert gaps[1.0] > gaps[0.7]


def test_the_power_formula_of_the_ascent_rule():
    a, b, sigma, delta = 0.25, 0.25, 2.0, 0.1
    m = sigma ** 2 * (norm.ppf(1 - a) + norm.ppf(1 - b)) ** 2 / delta ** 2
    assert norm.cdf(delta * math.sqrt(m) / sigma - norm.ppf(1 - a)) == pytest.approx(1 - b, abs=1e-12)


# ---------------------------------------------------------------------- figures and dependence
def test_the_posteriors_in_the_first_figure_are_mildly_skewed(data, mle):
    k, J = data[:, 0], data[:, 1]
    picks = [int(np.argmax(np.where(k == 0, J, -1))), int(np.argmax(np.where(k == J, J, -1)))]
    zz = np.linspace(-12, 12, 24_001)
    log_post = (MODEL.log_joint(data, mle, np.broadcast_to(zz[:, None], (zz.size, 100)))
                - MODEL.log_likelihood_per_group(data, mle))
    skews = []
    for n in picks:
        p = np.exp(log_post[:, n])
        m1 = integrate.trapezoid(p * zz, zz)
        m2 = integrate.trapezoid(p * (zz - m1) ** 2, zz)
        skews.append(integrate.trapezoid(p * (zz - m1) ** 3, zz) / m2 ** 1.5)
    assert -0.5 < skews[0] < -0.1 and 0.1 < skews[1] < 0.5   # mild, longer tail away from mu


def test_autocorrelation_times_of_the_three_scales(data, mle):
    X4 = np.tile(data, (4, 1))
    start = MODEL.sample_posterior(X4, mle, np.random.default_rng(8), 1)[0]
    taus = {}
    for c in (0.5, 2.4, 10.0):
        chain, _ = emlib.LogisticRandomIntercept(proposal_scale=c).mcmc(X4, mle, start, np.random.default_rng(9), 10_000)
        s1 = chain.reshape(10_000, 4, 100).sum(axis=2)
        taus[c] = np.mean([emlib.mcmc.integrated_autocorrelation_time(s1[:, r]) for r in range(4)])
    assert 3 < taus[2.4] < 6
    assert taus[0.5] > 2 * taus[2.4] and taus[10.0] > 1.5 * taus[2.4]
