"""Tests of emlib.variants.saem: SAEM with an MCMC (or exact) simulation step.

The defining properties: the recursion s_t = s_{t-1} + gamma_t (t(x, z^(t)) - s_{t-1}) with the
stated step sizes (checked by replaying the draws), stochastic EM as the case gamma_t = 1, the
plain average of the sampled statistics as the case gamma_t = 1/t, convergence to the
maximum-likelihood estimate on a seeded run, reproducibility, and clear errors for bad input.
"""
import numpy as np
import pytest

import emlib
from emlib import LogisticRandomIntercept, LogisticRandomInterceptParams

MODEL = LogisticRandomIntercept()
START = LogisticRandomInterceptParams(1.0, 0.3)


@pytest.fixture(scope="module")
def problem(random_intercept_problem):
    return random_intercept_problem


class Recorder:
    """The model, with every draw the driver obtains from the sampler kept."""

    def __init__(self, model):
        self.model, self.draws = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def mcmc(self, X, params, start, rng, n_steps=1):
        draws, rate = self.model.mcmc(X, params, start, rng, n_steps)
        self.draws.append(draws[-1].copy())
        return draws, rate


def replay(X, draws, gammas):
    s = None
    for z, g in zip(draws, gammas):
        sampled = MODEL.expected_stats(X, z)
        s = sampled if s is None else (1 - g) * s + g * sampled
    return s


def test_the_recursion_and_its_step_sizes(problem):
    X, _ = problem
    spy = Recorder(MODEL)
    result = emlib.saem(spy, X, START, rng=np.random.default_rng(1), step_sizes=0.6, burn_in=5, max_iter=40)
    expected_gamma = [1.0] * 5 + [(t - 5) ** -0.6 for t in range(6, 41)]
    np.testing.assert_allclose(result.step_sizes, expected_gamma, rtol=1e-15)
    s = replay(X, spy.draws, expected_gamma)
    assert result.stats.sum_z == pytest.approx(s.sum_z, rel=1e-12)
    assert result.stats.sum_z2 == pytest.approx(s.sum_z2, rel=1e-12)
    assert result.params == MODEL.m_step(result.stats)
    np.testing.assert_array_equal(result.latent, spy.draws[-1])
    assert result.log_likelihood.shape == (41,) and result.n_iter == 40 and not result.converged


def test_gamma_one_is_stochastic_em(problem):
    # with gamma_t = 1 the statistics are those of the newest draw alone
    X, _ = problem
    spy = Recorder(MODEL)
    result = emlib.saem(spy, X, START, rng=np.random.default_rng(2), step_sizes=lambda t: 1.0, max_iter=25)
    last = MODEL.expected_stats(X, spy.draws[-1])
    assert result.stats == last
    np.testing.assert_array_equal(result.step_sizes, 1.0)


def test_gamma_one_over_t_is_the_plain_average_after_the_burn_in(problem):
    X, _ = problem
    spy = Recorder(MODEL)
    result = emlib.saem(spy, X, START, rng=np.random.default_rng(3), step_sizes=1.0, burn_in=10, max_iter=60)
    kept = spy.draws[10:]
    assert result.stats.sum_z == pytest.approx(np.mean([z.sum() for z in kept]), rel=1e-12)
    assert result.stats.sum_z2 == pytest.approx(np.mean([(z * z).sum() for z in kept]), rel=1e-12)


def test_saem_with_one_metropolis_step_converges_to_the_mle(problem):
    # stated tolerance: after 2000 iterations (alpha = 0.7, 20 iterations of stochastic EM
    # first) the estimate is within 0.05 of the MLE in mu and within 0.1 in tau^2, on a seeded
    # run; the MLE's own standard errors are about 0.15 and 0.45, so this is far inside them
    X, mle = problem
    for seed in (4,):
        result = emlib.saem(MODEL, X, START, rng=np.random.default_rng(seed), step_sizes=0.7, burn_in=20,
                            max_iter=2000)
        assert abs(result.params.mean - mle.mean) < 0.05
        assert abs(result.params.variance - mle.variance) < 0.1
        assert 0.3 < result.acceptance_rate < 0.7
        # the log-likelihood of the last iterate is within 0.01 of the maximum
        assert result.log_likelihood[-1] > MODEL.log_likelihood(X, mle) - 0.01


def test_stochastic_em_does_not_converge_but_saem_does(problem):
    # the distance of the last iterates to the MLE: SEM's stays at its starting spread while
    # SAEM's shrinks with gamma_t: by iteration 800 it is less than half (two seeds, medians
    # over the last 300 iterations)
    X, mle = problem
    sem, sa = [], []
    for seed in (7, 8):
        path_sem, path_sa = [], []
        emlib.saem(MODEL, X, START, rng=np.random.default_rng(seed), step_sizes=lambda t: 1.0, max_iter=800,
                   callback=lambda t, p, ll: path_sem.append(abs(p.variance - mle.variance)))
        emlib.saem(MODEL, X, START, rng=np.random.default_rng(seed), step_sizes=0.7, burn_in=20, max_iter=800,
                   callback=lambda t, p, ll: path_sa.append(abs(p.variance - mle.variance)))
        sem.append(np.median(path_sem[-300:]))
        sa.append(np.median(path_sa[-300:]))
    assert np.median(sa) < np.median(sem) / 2


def test_independent_draws_and_several_sweeps(problem):
    X, mle = problem
    exact = emlib.saem(MODEL, X, START, rng=np.random.default_rng(10), step_sizes=0.7, burn_in=20,
                       max_iter=400, independent=True)
    assert exact.acceptance_rate == 1.0
    assert abs(exact.params.mean - mle.mean) < 0.1 and abs(exact.params.variance - mle.variance) < 0.2
    swept = emlib.saem(MODEL, X, START, rng=np.random.default_rng(11), n_mcmc_steps=3, max_iter=10)
    assert swept.n_iter == 10


def test_runs_are_reproducible_and_the_callback_sees_every_iteration(problem):
    X, _ = problem
    seen = []
    a = emlib.saem(MODEL, X, START, rng=np.random.default_rng(12), max_iter=30,
                   callback=lambda t, p, ll: seen.append((t, ll)))
    b = emlib.saem(MODEL, X, START, rng=np.random.default_rng(12), max_iter=30)
    assert a.params == b.params
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)
    assert [t for t, _ in seen] == list(range(1, 31))
    np.testing.assert_array_equal([ll for _, ll in seen], a.log_likelihood[1:])
    c = emlib.saem(MODEL, X, START, rng=np.random.default_rng(13), max_iter=30)
    assert c.params != a.params


def test_a_positive_tolerance_stops_early(problem):
    X, _ = problem
    result = emlib.saem(MODEL, X, START, rng=np.random.default_rng(14), step_sizes=1.0, burn_in=20,
                        max_iter=5000, tol=1e-6)
    assert result.converged and result.n_iter < 5000
    change = abs(result.log_likelihood[-1] - result.log_likelihood[-2])
    assert change <= 1e-6 * abs(result.log_likelihood[-1])
    zero = emlib.saem(MODEL, X, START, rng=np.random.default_rng(14), max_iter=3)
    assert zero.n_iter == 3 and not zero.converged


@pytest.mark.parametrize("kwargs, match", [
    ({"step_sizes": 0.5}, "alpha"),
    ({"step_sizes": 1.2}, "alpha"),
    ({"step_sizes": lambda t: 0.0}, "step_size"),
    ({"step_sizes": lambda t: 1.5}, "step_size"),
    ({"burn_in": -1}, "burn_in"),
    ({"n_mcmc_steps": 0}, "n_mcmc_steps"),
    ({"max_iter": -1}, "max_iter"),
    ({"tol": -1.0}, "tol"),
    ({"rng": 0}, "Generator"),
])
def test_bad_arguments_are_refused(problem, kwargs, match):
    X, _ = problem
    arguments = {"rng": np.random.default_rng(0), "max_iter": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        emlib.saem(MODEL, X, START, **arguments)


def test_bad_data_and_parameters_are_refused(problem):
    X, _ = problem
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        emlib.saem(MODEL, bad, START, rng=np.random.default_rng(0), max_iter=5)
    with pytest.raises(ValueError, match="LogisticRandomInterceptParams"):
        emlib.saem(MODEL, X, (0.0, 1.0), rng=np.random.default_rng(0), max_iter=5)
