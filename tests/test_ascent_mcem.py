"""Tests of emlib.variants.ascent_mcem: Monte Carlo EM with the ascent-based sample-size rule.

The defining properties: every estimated increase dQ_hat is non-negative (the M-step maximizes
the Monte Carlo Q); an accepted step passed the ascent test unless the sample hit its cap; the
sample sizes never decrease and follow the power formula; a fixed schedule is obeyed exactly;
the stopping rule is the upper confidence bound below tol; the run converges to the
maximum-likelihood estimate on a seeded run; bad input is refused.
"""
import math

import numpy as np
import pytest
from scipy.stats import norm

import emlib
from emlib import LogisticRandomIntercept, LogisticRandomInterceptParams

MODEL = LogisticRandomIntercept()
START = LogisticRandomInterceptParams(1.0, 0.3)


@pytest.fixture(scope="module")
def problem(random_intercept_problem):
    return random_intercept_problem


@pytest.fixture(scope="module")
def run(problem):
    X, _ = problem
    return emlib.ascent_mcem(MODEL, X, START, rng=np.random.default_rng(1), n_samples=20, tol=1e-3,
                             max_samples=5_000, max_iter=100)


def test_converges_to_the_mle_by_its_stopping_rule(problem, run):
    # stated tolerance: the seeded run stops by its rule within 0.05 of the MLE in mu and 0.1 in tau^2
    X, mle = problem
    assert run.converged and run.n_iter < 100
    assert abs(run.params.mean - mle.mean) < 0.05
    assert abs(run.params.variance - mle.variance) < 0.1
    upper = run.delta_q[-1] + norm.ppf(0.95) * run.delta_q_se[-1]
    assert upper < 1e-3
    assert all(d + norm.ppf(0.95) * s >= 1e-3 for d, s in zip(run.delta_q[:-1], run.delta_q_se[:-1]))


def test_estimated_increases_are_non_negative_and_accepted_steps_passed_the_test(run):
    assert np.all(run.delta_q >= -1e-9)
    z = norm.ppf(0.75)
    capped = run.n_samples >= 5_000
    assert np.all((run.delta_q - z * run.delta_q_se > 0) | capped)


def test_sample_sizes_grow_by_the_power_formula(run):
    m = run.n_samples
    assert m[0] >= 20 and np.all(np.diff(m) >= 0)
    z = norm.ppf(0.75) + norm.ppf(0.75)
    for t in range(len(m) - 1):
        wanted = math.ceil(run.delta_q_se[t] ** 2 * m[t] * z ** 2 / run.delta_q[t] ** 2)
        # the next iteration starts at max(m_t, wanted) (capped); augmentation may add more
        assert m[t + 1] >= min(5_000, max(m[t], wanted))
    assert run.n_draws == int(m.sum())  # no burn-in: every draw entered an M-step
    assert 0.3 < run.acceptance_rate < 0.7


def test_log_likelihood_is_the_exact_trace(problem, run):
    X, _ = problem
    assert run.log_likelihood.shape == (run.n_iter + 1,)
    assert run.log_likelihood[-1] == pytest.approx(MODEL.log_likelihood(X, run.params), abs=1e-12)
    assert run.log_likelihood[0] == pytest.approx(MODEL.log_likelihood(X, START), abs=1e-12)


def test_a_fixed_schedule_is_obeyed(problem):
    X, _ = problem
    sizes = []
    result = emlib.ascent_mcem(MODEL, X, START, rng=np.random.default_rng(2), tol=0.0, max_iter=8,
                               schedule=lambda t: 20 * t, mcmc_burn_in=5,
                               callback=lambda t, p, ll: sizes.append(t))
    np.testing.assert_array_equal(result.n_samples, 20 * np.arange(1, 9))
    assert result.n_augmented == 0 and result.n_iter == 8 and not result.converged
    assert result.n_draws == int(result.n_samples.sum()) + 8 * 5
    assert sizes == list(range(1, 9))


def test_naive_standard_errors_of_mcmc_draws_are_smaller_than_batch_means(problem):
    # the same draws, two standard errors: the iid formula ignores the positive autocorrelation
    X, _ = problem
    kwargs = dict(rng=None, tol=0.0, max_iter=6, schedule=lambda t: 2000)
    bm = emlib.ascent_mcem(MODEL, X, START, **{**kwargs, "rng": np.random.default_rng(3)})
    iid = emlib.ascent_mcem(MODEL, X, START, standard_error="iid", **{**kwargs, "rng": np.random.default_rng(3)})
    np.testing.assert_array_equal(bm.delta_q, iid.delta_q)  # same draws, same steps
    assert np.all(iid.delta_q_se < bm.delta_q_se)


def test_independent_draws(problem):
    X, mle = problem
    result = emlib.ascent_mcem(MODEL, X, START, rng=np.random.default_rng(4), independent=True,
                               standard_error="iid", n_samples=20, tol=0.1, max_samples=300, max_iter=30)
    assert result.acceptance_rate == 1.0 and result.n_draws == int(result.n_samples.sum())
    assert abs(result.params.mean - mle.mean) < 0.15


def test_reproducible(problem):
    X, _ = problem
    a = emlib.ascent_mcem(MODEL, X, START, rng=np.random.default_rng(5), max_iter=4)
    b = emlib.ascent_mcem(MODEL, X, START, rng=np.random.default_rng(5), max_iter=4)
    assert a.params == b.params
    np.testing.assert_array_equal(a.n_samples, b.n_samples)


@pytest.mark.parametrize("kwargs, match", [
    ({"standard_error": "naive"}, "standard_error"),
    ({"ascent_error": 0.0}, "ascent_error"),
    ({"power_error": 0.6}, "power_error"),
    ({"stop_error": 1.0}, "stop_error"),
    ({"tol": -1.0}, "tol"),
    ({"n_samples": 10}, "n_samples"),
    ({"augment": 0}, "augment"),
    ({"mcmc_burn_in": -1}, "mcmc_burn_in"),
    ({"max_samples": 5}, "max_samples"),
    ({"schedule": 100}, "schedule"),
    ({"schedule": lambda t: 3}, "schedule"),
    ({"rng": 0}, "Generator"),
    ({"max_iter": -2}, "max_iter"),
])
def test_bad_arguments_are_refused(problem, kwargs, match):
    X, _ = problem
    arguments = {"rng": np.random.default_rng(0), "max_iter": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        emlib.ascent_mcem(MODEL, X, START, **arguments)
