"""Tests of emlib.mcmc: asymptotic variance, autocorrelation time, effective sample size, draw_latent.

The estimators are checked on series whose answers are known in closed form: independent draws
(tau_int = 1) and stationary AR(1) series y_t = rho y_{t-1} + e_t, whose integrated
autocorrelation time is (1 + rho) / (1 - rho) and whose asymptotic variance is
Var(e) / (1 - rho)^2.
"""
import numpy as np
import pytest

import emlib
from emlib.mcmc import batch_means_variance, draw_latent, effective_sample_size, integrated_autocorrelation_time


def ar1(rho, m, seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(m)
    y = np.empty(m)
    y[0] = e[0] / np.sqrt(1 - rho ** 2)  # stationary start
    for t in range(1, m):
        y[t] = rho * y[t - 1] + e[t]
    return y


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_integrated_autocorrelation_time_of_ar1(rho):
    y = ar1(rho, 200_000, seed=1)
    expected = (1 + rho) / (1 - rho)
    # the estimator's relative error is a few per cent at this length
    assert integrated_autocorrelation_time(y) == pytest.approx(expected, rel=0.1)
    assert effective_sample_size(y) == pytest.approx(y.size / integrated_autocorrelation_time(y))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_batch_means_estimate_the_asymptotic_variance(rho):
    y = ar1(rho, 200_000, seed=2)
    expected = 1.0 / (1 - rho) ** 2  # Var(e) = 1
    # 447 batches: relative standard error about sqrt(2 / 446) = 7%, plus the small bias of
    # batches of 447 values for rho = 0.9 (correlation length about 19)
    assert batch_means_variance(y) == pytest.approx(expected, rel=0.25)


def test_the_variance_of_a_mean_of_correlated_draws_is_the_asymptotic_variance_over_m():
    # 400 independent AR(1) chains of length 2000: the spread of their means matches sigma^2 / m
    rho, m = 0.8, 2000
    means = np.array([ar1(rho, m, seed=s).mean() for s in range(400)])
    predicted = 1.0 / (1 - rho) ** 2 / m
    assert means.var(ddof=1) == pytest.approx(predicted, rel=0.25)
    # and the naive formula Var(y) / m is far too small
    naive = 1.0 / (1 - rho ** 2) / m
    assert means.var(ddof=1) > 3 * naive


@pytest.mark.parametrize("y, match", [
    (np.zeros((3, 5)), "1-D"),
    (np.array([1.0, 2.0]), "at least"),
    (np.array([1.0, np.nan, 2.0, 3.0, 4.0]), "NaN"),
    ("abc", "numeric|1-D"),
])
def test_bad_series_are_refused(y, match):
    with pytest.raises(ValueError, match=match):
        integrated_autocorrelation_time(y)


def test_constant_series_and_short_batches_are_refused():
    with pytest.raises(ValueError, match="constant"):
        integrated_autocorrelation_time(np.ones(100))
    with pytest.raises(ValueError, match="at least 16"):
        batch_means_variance(np.arange(10.0))


@pytest.fixture(scope="module")
def problem():
    model = emlib.LogisticRandomIntercept()
    truth = emlib.LogisticRandomInterceptParams(-0.5, 1.5)
    rng = np.random.default_rng(3)
    X, _ = model.sample(truth, rng.integers(2, 11, size=30), rng)
    return model, X, truth


def test_draw_latent_continues_the_chains(problem):
    model, X, params = problem
    rng = np.random.default_rng(4)
    draws, state, rate = draw_latent(model, X, params, rng, 5)
    assert draws.shape == (5, 30) and 0 < rate < 1
    np.testing.assert_array_equal(state, draws[-1])
    # the next call continues from that state: its first proposals are moves from it
    more, state2, _ = draw_latent(model, X, params, rng, 3, state)
    assert more.shape == (3, 30)
    step = model.proposal_scales(X, params)
    moved = more[0] != state
    assert np.all(np.abs(more[0] - state)[moved] < 8 * step[moved])  # a random-walk move from state
    np.testing.assert_array_equal(state2, more[-1])


def test_draw_latent_independent_draws(problem):
    model, X, params = problem
    draws, state, rate = draw_latent(model, X, params, np.random.default_rng(5), 4, independent=True)
    assert draws.shape == (4, 30) and rate == 1.0
    np.testing.assert_array_equal(state, draws[-1])
    with pytest.raises(ValueError, match="Generator"):
        draw_latent(model, X, params, 5, 4)


def test_mcmc_draws_are_autocorrelated_and_independent_draws_are_not(problem):
    model, X, params = problem
    chain, _, _ = draw_latent(model, X, params, np.random.default_rng(6), 5000,
                              model.sample_posterior(X, params, np.random.default_rng(7), 1)[0])
    exact, _, _ = draw_latent(model, X, params, np.random.default_rng(8), 5000, independent=True)
    assert integrated_autocorrelation_time(chain.sum(axis=1)) > 2
    assert integrated_autocorrelation_time(exact.sum(axis=1)) == pytest.approx(1.0, abs=0.3)
