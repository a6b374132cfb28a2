"""The claims of the chapter "Stochastic and Monte Carlo EM" that tests/test_stochastic.py and
test_stochastic_safeguard.py do not already check.

Most are statements about Markov chains and Monte Carlo errors. They are checked on a mixture with
one free parameter, the weight pi of the first of two unit-variance components at -1 and +1, whose
stochastic EM chain can be run for thousands of independent copies at once (vectorized over
chains): the O(1/N) gap between the stationary mean and the maximum-likelihood estimate, the
batch-means prediction of the Monte Carlo error of a short chain's average, the m^(-1/2) floor of
MCEM with a fixed m, and the 1/sqrt(N) spread of the exercise on more data. The expected KL
divergence of the exercise is checked by simulation.
"""
import math

import numpy as np
import pytest

import emlib
from emlib.mcmc import batch_means, batch_means_effective_sample_size as effective_sample_size


class WeightOnly:
    """x_n ~ pi N(-mu, 1) + (1 - pi) N(mu, 1); EM and stochastic EM for pi, vectorized over chains."""

    def __init__(self, N, seed=0, pi=0.3, mu=1.0):
        rng = np.random.default_rng(seed)
        x = np.where(rng.random(N) < pi, -mu, mu) + rng.standard_normal(N)
        self.N = N
        self.l1, self.l2 = np.exp(-0.5 * (x + mu) ** 2), np.exp(-0.5 * (x - mu) ** 2)
        p = 0.5
        for _ in range(5000):                                  # EM to its fixed point
            p = float(self.responsibilities(np.array([p])).mean())
        self.mle = p

    def responsibilities(self, p):
        """r_n(pi) for every chain (rows) and point (columns)."""
        a = p[:, None] * self.l1
        return a / (a + (1 - p[:, None]) * self.l2)

    def run(self, rng, chains, steps, m=1, start=0.5):
        """MCEM with m draws per point (m = 1: stochastic EM); returns the states, (steps, chains)."""
        p = np.full(chains, start)
        states = np.empty((steps, chains))
        for t in range(steps):
            counts = rng.binomial(m, self.responsibilities(p))          # m draws per point
            p = counts.sum(axis=1) / (m * self.N)
            assert np.all((p > 0) & (p < 1)), "a chain reached an absorbing end"
            states[t] = p
        return states


def quasi_stationary(model):
    """The stationary distribution of the stochastic EM chain for pi, computed exactly.

    The chain lives on k / N, k = 0, ..., N: from pi, N pi' is a sum of independent Bernoulli(r_n)
    (a Poisson-binomial count, computed by convolution). The ends 0 and 1 absorb, but from the
    bulk they are reached with negligible probability; conditioning on not reaching them gives the
    quasi-stationary distribution, the leading left eigenvector of the renormalized transitions.
    """
    N = model.N
    states = np.arange(1, N) / N
    R = model.responsibilities(states)                     # (N - 1 states, N points)
    pmf = np.zeros((N - 1, N + 1))
    pmf[:, 0] = 1.0
    for n in range(N):
        q = R[:, n:n + 1]
        new = pmf * (1 - q)
        new[:, 1:] += pmf[:, :-1] * q
        pmf = new
    T = pmf[:, 1:N] / pmf[:, 1:N].sum(axis=1, keepdims=True)
    values, vectors = np.linalg.eig(T.T)
    stationary = np.abs(vectors[:, np.argmax(values.real)].real)
    stationary /= stationary.sum()
    assert stationary @ (pmf[:, 0] + pmf[:, N]) < 1e-4       # absorption is rare
    return states, stationary


def test_stationary_mean_is_within_order_one_over_n_of_the_mle():
    """Remark stochastic_em-rem-bias, exactly: N (E[pi] - pi_hat) stays of one size as N grows
    eightfold, while the spread of the states shrinks like N^(-1/2)."""
    scaled, spreads = [], []
    for N in (25, 50, 100, 200):
        model = WeightOnly(N, seed=1)
        states, p = quasi_stationary(model)
        mean = states @ p
        spread = math.sqrt(p @ (states - mean) ** 2)
        scaled.append(N * (mean - model.mle))
        spreads.append(math.sqrt(N) * spread)
        assert abs(mean - model.mle) < spread / 5              # the gap is far below the spread
    scaled, spreads = np.array(scaled), np.array(spreads)
    assert np.all(np.sign(scaled) == np.sign(scaled[0])) and np.all(np.abs(scaled) > 0.02)
    assert scaled.max() / scaled.min() < 2                     # N * gap: one size for all N
    assert spreads.max() / spreads.min() < 1.2                 # sqrt(N) * spread: constant


def test_batch_means_predict_the_monte_carlo_error_of_a_short_chain_average():
    """The chapter's check: independent short chains scatter as the long chain's ESS predicts, far
    more than the naive sd / sqrt(T)."""
    model = WeightOnly(400, seed=3, mu=0.5)      # heavy overlap: a slowly mixing chain
    rng = np.random.default_rng(4)
    long_chain = model.run(rng, chains=1, steps=10_050, start=model.mle)[50:, 0]
    ess_fraction = effective_sample_size(long_chain) / long_chain.size
    short = model.run(rng, chains=400, steps=300, start=0.5)[50:]        # 250 states each
    spread = short.mean(axis=0).std(ddof=1)
    predicted = long_chain.std() / math.sqrt(250 * ess_fraction)
    naive = long_chain.std() / math.sqrt(250)
    assert spread == pytest.approx(predicted, rel=0.3)
    assert spread > 2 * naive
    mean, se = batch_means(long_chain)
    assert abs(mean - model.mle) < 5 * se + 0.01


def test_mcem_floor_with_a_hundred_times_the_draws_is_about_ten_times_lower():
    model = WeightOnly(400, seed=5)
    rng = np.random.default_rng(6)
    rms = {m: np.sqrt(np.mean((model.run(rng, chains=100, steps=150, m=m, start=model.mle)[50:]
                               - model.mle) ** 2)) for m in (10, 1000)}
    assert rms[10] / rms[1000] == pytest.approx(10, rel=0.3)


def test_ten_times_the_data_gives_about_a_third_of_the_spread():
    """The exercise on more data: the states' spread scales like N^(-1/2)."""
    sd = {}
    for N in (400, 4000):
        model = WeightOnly(N, seed=7)
        sd[N] = model.run(np.random.default_rng(8), chains=50, steps=100, start=model.mle)[20:].std()
    assert sd[4000] / sd[400] == pytest.approx(1 / math.sqrt(10), rel=0.2)


def test_expected_kl_of_m_draws_is_about_k_minus_one_over_two_m():
    """The exercise on the KL price: E[KL(f || r)] ~ (K - 1) / (2 m) for large m."""
    r = np.array([0.2, 0.5, 0.3])
    rng = np.random.default_rng(9)
    for m in (200, 2000):
        f = rng.multinomial(m, r, size=20_000) / m
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(f > 0, f * np.log(f / r), 0.0).sum(axis=1)
        assert kl.mean() == pytest.approx((len(r) - 1) / (2 * m), rel=0.05)


def test_the_schedule_factor_and_the_cost_of_a_geometric_schedule():
    """1.1^(-1/2) per iteration, and sum_t m_1 g^(t-1) <= g / (g - 1) m_T."""
    assert 1.1 ** -0.5 == pytest.approx(0.9535, abs=1e-4)
    m1, g = 10, 1.1
    for T in (5, 50, 200):
        total = sum(m1 * g ** (t - 1) for t in range(1, T + 1))
        assert total <= g / (g - 1) * m1 * g ** (T - 1) * (1 + 1e-12)


def test_stem_on_the_chapter_data_decreases_the_log_likelihood_often():
    """'its log-likelihood went down' many times: StEM is not monotone (the chapter's run)."""
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    truth = emlib.GaussianMixtureParams([0.4, 0.6], [[-1.5], [1.5]], [[[1.0]], [[1.0]]])
    X, _ = model.sample(truth, 400, np.random.default_rng(0))
    init = emlib.GaussianMixtureParams([0.5, 0.5], [[-0.5], [0.5]], [[[2.0]], [[2.0]]])
    run = emlib.stochastic_em(model, X, init, rng=np.random.default_rng(1), max_iter=300, burn_in=50)
    drops = -np.diff(run.log_likelihood)
    assert np.sum(drops > 1e-6) > 100
