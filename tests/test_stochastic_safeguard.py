"""Tests of the small-class safeguard of emlib.stochastic_em (``min_count``).

What it promises: an S-step in which some component draws fewer than ``min_count`` points is
rejected and drawn again, so every accepted assignment has classes of at least ``min_count``
points; the accepted draw is distributed as p(z | x, theta) conditioned on that event; the
rejections are counted; ``min_count=0`` changes nothing; an impossible or hopeless request is
refused with a clear error.
"""
import itertools

import numpy as np
import pytest

import emlib
from emlib.variants import sample_frequencies
from emlib.variants.stochastic import MAX_REDRAWS, _SmallClassSafeguard

N = 60
MODEL = emlib.GaussianMixture(3, "diag", reg_covar=0.0)
INIT = emlib.GaussianMixtureParams([1 / 3, 1 / 3, 1 / 3], [[-2.0], [0.0], [2.0]], [[1.0], [1.0], [1.0]])


@pytest.fixture(scope="module")
def two_clusters():
    """60 points from two components, to be fitted with three: one component is superfluous."""
    truth = emlib.GaussianMixtureParams([0.5, 0.5], [[-2.0], [2.0]], [[1.0], [1.0]])
    X, _ = emlib.GaussianMixture(2, "diag").sample(truth, N, np.random.default_rng(0))
    return X


def test_without_the_safeguard_the_chain_breaks_down(two_clusters):
    with pytest.raises(ValueError, match="received no responsibility"):
        emlib.stochastic_em(MODEL, two_clusters, INIT, rng=np.random.default_rng(0), max_iter=300)


def test_with_the_safeguard_every_class_keeps_min_count_points(two_clusters):
    counts = []
    fit = emlib.stochastic_em(MODEL, two_clusters, INIT, rng=np.random.default_rng(0), max_iter=300,
                              min_count=2, callback=lambda t, p, ll: counts.append(p.weights * N))
    assert fit.n_iter == 300 and fit.n_redraws > 0
    # the M-step of a one-hot draw sets pi_k = N_k / N, so the weights show the class sizes
    counts = np.array(counts)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert counts.min() == pytest.approx(2.0)          # the floor is reached, and never crossed
    assert np.all(np.round(counts) >= 2)


def test_the_safeguard_redraws_exactly_as_documented(two_clusters):
    """An independent re-implementation of the rule gives the same chain and the same count."""
    X = two_clusters
    fit = emlib.stochastic_em(MODEL, X, INIT, rng=np.random.default_rng(4), max_iter=50, min_count=3)
    rng, params, rejected = np.random.default_rng(4), INIT, 0
    for _ in range(50):
        q = MODEL.posterior(X, params)
        while True:
            f = sample_frequencies(q, 1, rng)
            if f.sum(axis=0).min() >= 3:
                break
            rejected += 1
        params = MODEL.m_step(MODEL.expected_stats(X, f))
    assert fit.n_redraws == rejected > 0
    np.testing.assert_array_equal(emlib.flatten_params(fit.params), emlib.flatten_params(params))


def test_min_count_zero_is_plain_stochastic_em_and_a_slack_safeguard_changes_nothing():
    truth = emlib.GaussianMixtureParams([0.4, 0.6], [[-3.0], [3.0]], [[1.0], [1.0]])
    model = emlib.GaussianMixture(2, "diag", reg_covar=0.0)
    X, _ = model.sample(truth, 300, np.random.default_rng(1))
    init = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0], [1.0]], [[2.0], [2.0]])
    plain = emlib.stochastic_em(model, X, init, rng=np.random.default_rng(2), max_iter=100)
    for min_count in (0, 5):   # the classes hold about 120 and 180 points: 5 never binds
        guarded = emlib.stochastic_em(model, X, init, rng=np.random.default_rng(2), max_iter=100,
                                      min_count=min_count)
        assert guarded.n_redraws == 0
        np.testing.assert_array_equal(guarded.log_likelihood, plain.log_likelihood)
    assert plain.n_redraws == 0


def test_the_accepted_draw_is_the_posterior_conditioned_on_the_class_sizes():
    """Three points, two classes, min_count 1: P(z | accepted) = p(z) / P(both classes used)."""
    q = np.array([[0.7, 0.3], [0.6, 0.4], [0.9, 0.1]])
    configs = list(itertools.product([0, 1], repeat=3))
    prob = np.array([np.prod([q[n, k] for n, k in enumerate(z)]) for z in configs])
    allowed = np.array([len(set(z)) == 2 for z in configs])
    expected = np.where(allowed, prob, 0.0) / prob[allowed].sum()
    guard = _SmallClassSafeguard(1)
    rng = np.random.default_rng(9)
    n = 10_000
    seen = np.zeros(len(configs))
    for _ in range(n):
        z = tuple(guard(q, 1, rng).argmax(axis=1))
        seen[configs.index(z)] += 1
    # binomial standard errors; 5 of them is a generous band for 8 cells
    se = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(seen / n - expected) <= 5 * se + 1e-12)
    # the rejected draws are the all-one-class configurations, with probability prob[~allowed]
    rejection = prob[~allowed].sum()
    assert guard.n_redraws / (n + guard.n_redraws) == pytest.approx(rejection, abs=0.02)


def test_impossible_or_hopeless_requests_are_refused(two_clusters):
    with pytest.raises(ValueError, match="min_count must be a non-negative integer"):
        emlib.stochastic_em(MODEL, two_clusters, INIT, rng=np.random.default_rng(0), min_count=-1)
    with pytest.raises(ValueError, match="min_count must be a non-negative integer"):
        emlib.stochastic_em(MODEL, two_clusters, INIT, rng=np.random.default_rng(0), min_count=2.0)
    with pytest.raises(ValueError, match="min_count must be a non-negative integer"):
        emlib.stochastic_em(MODEL, two_clusters, INIT, rng=np.random.default_rng(0), min_count=True)
    with pytest.raises(ValueError, match="is impossible"):
        emlib.stochastic_em(MODEL, two_clusters, INIT, rng=np.random.default_rng(0), min_count=21)
    # a component that no point can draw: every attempt fails
    q = np.tile([0.5, 0.5, 0.0], (N, 1))
    guard = _SmallClassSafeguard(1)
    with pytest.raises(ValueError, match=f"no S-step in {MAX_REDRAWS} draws"):
        guard(q, 1, np.random.default_rng(0))
    assert guard.n_redraws == MAX_REDRAWS
