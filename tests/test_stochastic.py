"""Tests of emlib.variants.stochastic: stochastic EM (SEM) and Monte Carlo EM (MCEM).

The defining properties: SEM's chain stays near the EM answer but is not monotone; MCEM's
deviation from EM shrinks as the number of draws m grows; the Monte Carlo statistics are an
unbiased estimate of EM's with variance proportional to 1/m; runs are reproducible from a seed.
"""
import numpy as np
import pytest

import emlib
from emlib.variants import sample_frequencies
from emlib.variants.stochastic import MAX_SAMPLES

MODEL = emlib.GaussianMixture(2)


def _vector(params):
    return emlib.flatten_params(params)  # weights, means, covariances as one flat vector


def _distance(a, b):
    return float(np.linalg.norm(_vector(a) - _vector(b)))


@pytest.fixture(scope="module")
def separated():
    """300 points from a well-separated 1-D mixture (means 6 standard deviations apart) and its EM fit."""
    truth = emlib.GaussianMixtureParams([0.4, 0.6], [[-3.0], [3.0]], [[[1.0]], [[1.0]]])
    X, _ = MODEL.sample(truth, 300, np.random.default_rng(0))
    init = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0], [1.0]], [[[2.0]], [[2.0]]])
    fit = emlib.em(MODEL, X, init, tol=1e-12)
    assert fit.converged
    return X, init, fit.params


@pytest.fixture(scope="module")
def overlapping():
    """400 points from a 1-D mixture whose components overlap (the chapter's data)."""
    truth = emlib.GaussianMixtureParams([0.4, 0.6], [[-1.5], [1.5]], [[[1.0]], [[1.0]]])
    X, _ = MODEL.sample(truth, 400, np.random.default_rng(0))
    init = emlib.GaussianMixtureParams([0.5, 0.5], [[-0.5], [0.5]], [[[2.0]], [[2.0]]])
    return X, init


# ---------------------------------------------------------------------- sample_frequencies
def test_one_draw_per_row_is_one_hot():
    q = np.random.default_rng(1).dirichlet([1.0, 1.0, 1.0], size=50)
    f = sample_frequencies(q, 1, np.random.default_rng(2))
    assert f.shape == (50, 3)
    assert set(np.unique(f)) <= {0.0, 1.0}
    np.testing.assert_array_equal(f.sum(axis=1), 1.0)
    # a draw never picks a value of probability zero
    q0 = np.tile([0.0, 0.3, 0.7], (200, 1))
    assert np.all(sample_frequencies(q0, 1, np.random.default_rng(3))[:, 0] == 0)


@pytest.mark.parametrize("m", [1, 10, 1000])
def test_frequencies_are_unbiased_with_variance_q_one_minus_q_over_m(m):
    # Proposition stochastic_em-prop-unbiased: E[f] = q and Var[f] = q(1 - q)/m per entry.
    q = np.tile([0.2, 0.5, 0.3], (20000, 1))  # 20000 independent rows with the same q
    f = sample_frequencies(q, m, np.random.default_rng(4))
    var = q[0] * (1 - q[0]) / m
    se = np.sqrt(var / f.shape[0])
    # 5 standard errors: a false failure has probability below 1e-6 per entry.
    np.testing.assert_array_less(np.abs(f.mean(axis=0) - q[0]), 5 * se)
    # The sample variance of 20000 draws is within 5% of the truth (its relative sd is about 1%).
    np.testing.assert_allclose(f.var(axis=0), var, rtol=0.05)


def test_average_of_sampled_statistics_equals_statistics_of_frequencies(separated):
    # Identity stochastic_em-freq-identity: (1/m) sum_j t(x, z^(j)) = E_f[t(x, z)] with f the
    # per-row frequencies of the m draws, because expected_stats is linear in q.
    X, _, params = separated
    q = MODEL.posterior(X, params)
    rng = np.random.default_rng(5)
    m = 7
    draws = [sample_frequencies(q, 1, rng) for _ in range(m)]
    averaged = MODEL.expected_stats(X, draws[0])
    for d in draws[1:]:
        averaged = averaged + MODEL.expected_stats(X, d)
    averaged = (1.0 / m) * averaged
    direct = MODEL.expected_stats(X, sum(draws) / m)
    np.testing.assert_allclose(averaged.counts, direct.counts, rtol=1e-12)
    np.testing.assert_allclose(averaged.sum_x, direct.sum_x, rtol=1e-12)
    np.testing.assert_allclose(averaged.sum_xx, direct.sum_xx, rtol=1e-12)


def test_sample_frequencies_rejects_bad_input():
    rng = np.random.default_rng(0)
    q = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        sample_frequencies(q, 1, np.random.RandomState(0))
    with pytest.raises(ValueError, match="n_samples must be an integer number of draws"):
        sample_frequencies(q, 0, rng)
    with pytest.raises(ValueError, match="n_samples must be an integer number of draws"):
        sample_frequencies(q, 2.5, rng)
    with pytest.raises(ValueError, match="shape \\(N, K\\)"):
        sample_frequencies(np.full(4, 0.25), 1, rng)
    with pytest.raises(ValueError, match="each row of q must sum to one"):
        sample_frequencies(np.full((3, 2), 0.4), 1, rng)
    with pytest.raises(ValueError, match="non-negative probabilities"):
        sample_frequencies(np.array([[1.5, -0.5]]), 1, rng)


# ---------------------------------------------------------------------- stochastic EM
def test_sem_stays_near_em_on_separated_data(separated):
    X, init, mle = separated
    chain = []
    res = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(6), max_iter=200, burn_in=50,
                              callback=lambda t, p, ll: chain.append(p))
    assert isinstance(res, emlib.StochasticEMResult)
    assert res.n_iter == 200 and not res.converged and res.burn_in == 50
    # With means 6 sd apart only 2 of the 300 responsibilities lie in (0.01, 0.99), so a sampled
    # assignment rarely differs from EM's. One point near x = 0 moved to the other component
    # changes that component's variance by about 3**2 / 120 = 0.08, so every state after the
    # burn-in must be within 0.3 of the MLE (parameter vector distance), and the chain average,
    # where such flips are rare and averaged out, within 0.02.
    assert max(_distance(p, mle) for p in chain[50:]) < 0.3
    assert _distance(res.params_mean, mle) < 0.02


def test_sem_average_is_the_mean_of_the_chain_after_burn_in(overlapping):
    X, init = overlapping
    chain = []
    res = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(7), max_iter=30, burn_in=10,
                              callback=lambda t, p, ll: chain.append(p))
    np.testing.assert_allclose(res.params_mean.means, np.mean([p.means for p in chain[10:]], axis=0), rtol=1e-12)
    np.testing.assert_allclose(res.params_mean.covariances,
                               np.mean([p.covariances for p in chain[10:]], axis=0), rtol=1e-12)
    np.testing.assert_allclose(res.params_mean.weights, np.mean([p.weights for p in chain[10:]], axis=0),
                               rtol=1e-12)


def test_sem_is_not_monotone_but_its_trace_is_the_log_likelihood(overlapping):
    # Remark stochastic_em-rem-chain and the table of the chapter: SEM's log-likelihood goes down as well as up.
    X, init = overlapping
    lls = []
    res = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(8), max_iter=100,
                              callback=lambda t, p, ll: lls.append((p, ll)))
    assert res.log_likelihood.shape == (101,)
    assert res.log_likelihood[0] == pytest.approx(MODEL.log_likelihood(X, init))
    for t in (1, 50, 100):
        p, ll = lls[t - 1]
        assert ll == res.log_likelihood[t] == pytest.approx(MODEL.log_likelihood(X, p))
    assert np.sum(np.diff(res.log_likelihood) < 0) >= 10


def test_sem_positive_tol_applies_the_monitor_rule(separated):
    # On separated data the chain sits still for long stretches, so a loose rule fires early.
    X, init, _ = separated
    res = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(9), max_iter=200, tol=1e-3)
    assert res.converged and res.n_iter < 200
    ll = res.log_likelihood
    assert abs(ll[-1] - ll[-2]) <= 1e-3 * abs(ll[-1])


def test_sem_params_mean_is_none_when_chain_stops_before_burn_in(separated):
    X, init, _ = separated
    res = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(9), max_iter=200, tol=1e-3,
                              burn_in=199)
    assert res.n_iter < 199 and res.params_mean is None


def independent_chain(X, init, seed, schedule, n_iter):
    """The chain written out from its definition: at t, m_t multinomial draws per row from the
    posterior at theta_{t-1} (one generator for the whole chain), their frequencies' statistics,
    the M-step."""
    rng = np.random.default_rng(seed)
    params, chain = init, []
    for t in range(1, n_iter + 1):
        q = MODEL.posterior(X, params)
        m = schedule(t)
        frequencies = np.array([rng.multinomial(m, row / row.sum()) for row in q]) / m
        params = MODEL.m_step(MODEL.expected_stats(X, frequencies))
        chain.append(params)
    return chain


def test_sem_chain_is_the_chain_its_seed_defines(overlapping):
    """Reproducible from a seed: the chain equals the one computed from the definition with the same
    seed (one categorical draw per row), and another seed gives another chain."""
    X, init = overlapping
    seen = []
    a = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(10), max_iter=5,
                            callback=lambda t, p, ll: seen.append(p))
    for got, want in zip(seen, independent_chain(X, init, 10, lambda t: 1, 5)):
        np.testing.assert_allclose(_vector(got), _vector(want), rtol=1e-12)
    c = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(11), max_iter=5)
    assert not np.array_equal(a.log_likelihood, c.log_likelihood)


def test_sem_rejects_bad_arguments(separated):
    X, init, _ = separated
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        emlib.stochastic_em(MODEL, X, init, rng=0)
    with pytest.raises(ValueError, match="burn_in must be an integer with 0 <= burn_in < max_iter = 10"):
        emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(0), max_iter=10, burn_in=10)
    with pytest.raises(ValueError, match="burn_in must be an integer"):
        emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(0), burn_in=-1)
    with pytest.raises(ValueError, match="max_iter must be a non-negative integer"):
        emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(0), max_iter=-1)
    with pytest.raises(ValueError, match="params have 2 components|params must be GaussianMixtureParams"):
        emlib.stochastic_em(emlib.GaussianMixture(3), X, init, rng=np.random.default_rng(0))


# ---------------------------------------------------------------------- Monte Carlo EM
def test_mcem_deviation_from_em_shrinks_as_m_grows(separated):
    # Proposition stochastic_em-prop-mcem-limit: the MCEM map tends to the EM map as m grows.
    # Started at the EM answer (a fixed point of EM), MCEM with fixed m drifts away by a
    # Monte Carlo error of order 1/sqrt(m); averaged over 10 seeds, each tenfold increase of m
    # must cut the mean deviation by at least 2 (sqrt(10) = 3.2 is expected).
    X, _, mle = separated
    mean_dev = []
    for m in (1, 10, 100, 1000):
        devs = [_distance(emlib.mcem(MODEL, X, mle, rng=np.random.default_rng(s), n_samples=m, growth=1.0,
                                     max_iter=5, tol=0).params, mle) for s in range(10)]
        mean_dev.append(np.mean(devs))
    assert all(a > 2 * b for a, b in zip(mean_dev, mean_dev[1:])), mean_dev


def test_mcem_with_growing_schedule_lands_on_em(overlapping):
    X, init = overlapping
    em = emlib.em(MODEL, X, init, tol=1e-12, max_iter=5000)
    res = emlib.mcem(MODEL, X, init, rng=np.random.default_rng(12), n_samples=10, growth=1.1, max_iter=300,
                     tol=0)
    assert isinstance(res, emlib.MonteCarloEMResult) and res.n_samples[-1] == MAX_SAMPLES
    # In the last 50 iterations m_t >= 10**8, so the Monte Carlo error of the statistics is
    # about 1/sqrt(400 * 10**8) = 5e-6 relative; EM's slow contraction here (rate about 0.95)
    # amplifies it some twentyfold, so 5e-3 leaves a wide margin.
    assert _distance(res.params, em.params) < 5e-3
    # Near the maximum the log-likelihood is flat: a parameter error of 5e-3 costs at most about
    # N * (5e-3)**2 = 1e-2, and in practice far less.
    assert abs(res.log_likelihood[-1] - em.log_likelihood[-1]) < 1e-3


def test_mcem_schedule(separated):
    X, init, _ = separated
    res = emlib.mcem(MODEL, X, init, rng=np.random.default_rng(0), n_samples=3, growth=2.0, max_iter=6, tol=0)
    np.testing.assert_array_equal(res.n_samples, [3, 6, 12, 24, 48, 96])
    res = emlib.mcem(MODEL, X, init, rng=np.random.default_rng(0), n_samples=lambda t: 5 * t, max_iter=4, tol=0)
    np.testing.assert_array_equal(res.n_samples, [5, 10, 15, 20])
    res = emlib.mcem(MODEL, X, init, rng=np.random.default_rng(0), n_samples=10**8, growth=100.0, max_iter=3,
                     tol=0)
    np.testing.assert_array_equal(res.n_samples, [10**8, MAX_SAMPLES, MAX_SAMPLES])
    assert res.n_iter == 3 and res.log_likelihood.shape == (4,)


def test_mcem_with_one_draw_is_sem(overlapping):
    # m = 1 at every iteration is stochastic EM: same generator, same chain.
    X, init = overlapping
    a = emlib.mcem(MODEL, X, init, rng=np.random.default_rng(13), n_samples=1, growth=1.0, max_iter=20, tol=0)
    b = emlib.stochastic_em(MODEL, X, init, rng=np.random.default_rng(13), max_iter=20)
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)


def test_mcem_is_the_chain_its_seed_and_schedule_define(overlapping):
    X, init = overlapping
    seen = []
    a = emlib.mcem(MODEL, X, init, rng=np.random.default_rng(14), max_iter=6, n_samples=3, growth=2.0, tol=0,
                   callback=lambda t, p, ll: seen.append((t, p, ll)))
    want = independent_chain(X, init, 14, lambda t: 3 * 2 ** (t - 1), 6)
    assert [t for t, _, _ in seen] == list(range(1, 7))
    for (_, got, ll), expected in zip(seen, want):
        np.testing.assert_allclose(_vector(got), _vector(expected), rtol=1e-12)
        assert ll == pytest.approx(MODEL.log_likelihood(X, expected), rel=1e-12)
    np.testing.assert_array_equal([ll for _, _, ll in seen], a.log_likelihood[1:])


def test_the_growing_schedule_does_not_overflow_in_a_long_run():
    """growth ** (t - 1) was computed before the cap: OverflowError at t = 1025 with growth 2 and at
    t = 7450 with the default growth 1.1. The schedule now stays at MAX_SAMPLES."""
    from emlib.variants.stochastic import geometric_schedule

    assert geometric_schedule(10, 2.0)(1025) == MAX_SAMPLES
    assert geometric_schedule(10, 1.1)(7450) == MAX_SAMPLES
    assert geometric_schedule(10, 1.1)(10**9) == MAX_SAMPLES
    assert [geometric_schedule(3, 2.0)(t) for t in (1, 2, 3)] == [3, 6, 12]
    linkage = emlib.GeneticLinkage()   # the cheapest model: 1030 iterations in a fraction of a second
    result = emlib.mcem(linkage, emlib.datasets.genetic_linkage(), emlib.GeneticLinkageParams(0.5),
                        rng=np.random.default_rng(0), growth=2.0, max_iter=1030, tol=0)
    assert result.n_iter == 1030 and result.n_samples[-1] == MAX_SAMPLES


def test_mcem_rejects_bad_arguments(separated):
    X, init, _ = separated
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        emlib.mcem(MODEL, X, init, rng=np.random.default_rng)
    with pytest.raises(ValueError, match="n_samples must be an integer number of draws"):
        emlib.mcem(MODEL, X, init, rng=rng, n_samples=0)
    with pytest.raises(ValueError, match="growth must be a number >= 1"):
        emlib.mcem(MODEL, X, init, rng=rng, growth=0.9)
    with pytest.raises(ValueError, match="the schedule at t = 2 must be an integer number of draws"):
        emlib.mcem(MODEL, X, init, rng=rng, n_samples=lambda t: 1 if t == 1 else 0, max_iter=3)
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        emlib.mcem(MODEL, X, init, rng=rng, tol=-1.0)


def test_sampled_m_step_loses_at_most_the_kl_of_the_sampled_q(overlapping):
    # Proposition stochastic_em-prop-kl-bound: for any q, theta' = argmax E_q[log p(x, z | theta)]
    # satisfies l(theta') >= l(theta) - KL(q || p(z | x, theta)). The M-step must be exact, so
    # reg_covar = 0. Checked for sampled frequencies from theta_0 and from the MLE, where every
    # sampled step loses likelihood (the bound is then not vacuous).
    X, init = overlapping
    model = emlib.GaussianMixture(2, reg_covar=0.0)
    mle = emlib.em(model, X, init, tol=1e-12, max_iter=5000).params
    rng = np.random.default_rng(15)
    for theta in (init, mle):
        q = model.posterior(X, theta)
        ll = model.log_likelihood(X, theta)
        for m in (1, 10, 100):
            for _ in range(20):
                f = sample_frequencies(q, m, rng)
                new = model.m_step(model.expected_stats(X, f))
                kl = emlib.bounds.kl_to_posterior(model, X, theta, f)
                assert model.log_likelihood(X, new) >= ll - kl - 1e-9
                if theta is mle:
                    assert model.log_likelihood(X, new) <= ll + 1e-9
