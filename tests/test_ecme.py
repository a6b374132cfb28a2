"""Tests of emlib.variants.ecme: CM-steps on Q, then CM-steps on the log-likelihood itself.

The defining properties: ECME is monotone in l; it obeys the driver contract of emlib.em; its
fixed points are stationary points of l; on the t distribution with unknown degrees of freedom
it reaches the same maximum as ECM (= EM for this model) at a faster linear rate; and a step
that lowers l is caught where it happens.
"""
import numpy as np
import pytest

import emlib
from emlib import MultivariateT, MultivariateTParams

MODEL = MultivariateT()
TRUTH = MultivariateTParams([0.0, 0.0], [[1.0, 0.5], [0.5, 1.0]], 10.0)


@pytest.fixture(scope="module")
def sample():
    X, _ = MODEL.sample(TRUTH, 300, np.random.default_rng(2))
    init = MODEL.init_params(X, np.random.default_rng(0), dof=30.0)
    return X, init


def run_ecme(X, init, **kwargs):
    return emlib.ecme(MODEL, X, init, q_steps=[MODEL.location_scale_step],
                      loglik_steps=[MODEL.dof_loglik_step], **kwargs)


def test_ecme_is_monotone_and_obeys_the_driver_contract(sample):
    X, init = sample
    seen = []
    fit = run_ecme(X, init, tol=0, max_iter=15, callback=lambda t, p, ll: seen.append((t, ll)))
    assert fit.n_iter == 15 and not fit.converged
    assert fit.log_likelihood.shape == (16,)
    assert fit.log_likelihood[0] == pytest.approx(MODEL.log_likelihood(X, init), rel=1e-14)
    assert [t for t, _ in seen] == list(range(1, 16))
    np.testing.assert_allclose([ll for _, ll in seen], fit.log_likelihood[1:], rtol=1e-14)
    assert np.all(np.diff(fit.log_likelihood) >= -1e-10 * abs(fit.log_likelihood[-1]))
    assert fit.log_likelihood[-1] == pytest.approx(MODEL.log_likelihood(X, fit.params), rel=1e-14)


def test_ecme_and_ecm_reach_the_same_maximum_and_ecme_is_faster(sample):
    X, init = sample
    ecm = emlib.em(MODEL, X, init, tol=0, max_iter=1500)
    ecme = run_ecme(X, init, tol=1e-14, max_iter=500)
    assert ecme.converged
    assert ecme.log_likelihood[-1] == pytest.approx(ecm.log_likelihood[-1], abs=1e-9)
    np.testing.assert_allclose(emlib.flatten_params(ecme.params), emlib.flatten_params(ecm.params),
                               rtol=1e-5)
    # iterations to come within 1e-8 of the maximum of l
    top = ecm.log_likelihood[-1]
    first = [int(np.argmax(top - r.log_likelihood < 1e-8)) for r in (ecm, ecme)]
    assert first[1] < first[0] / 4


def test_ecme_converges_linearly_at_a_smaller_rate_than_ecm(sample):
    """The measured contraction of the distance to the maximizer, iteration by iteration."""
    X, init = sample
    best = run_ecme(X, init, tol=0, max_iter=400).params
    rates = []
    drivers = [(lambda **k: emlib.em(MODEL, X, init, **k), 120), (lambda **k: run_ecme(X, init, **k), 40)]
    for driver, n in drivers:
        path = []
        driver(tol=0, max_iter=n, callback=lambda t, p, ll: path.append(emlib.flatten_params(p)))
        dist = np.linalg.norm(np.array(path) - emlib.flatten_params(best), axis=1)
        ratios = dist[1:] / dist[:-1]
        rates.append(np.median(ratios[n // 3: 2 * n // 3]))
    assert 0.8 < rates[0] < 1 and 0 < rates[1] < 0.8 and rates[1] < rates[0] - 0.2


def test_fixed_point_of_ecme_is_a_stationary_point_of_l(sample):
    X, init = sample
    fit = run_ecme(X, init, tol=0, max_iter=200)
    p = fit.params
    L = np.linalg.cholesky(p.scale)
    u = np.r_[p.mean, L[0, 0], L[1, 0], L[1, 1], np.log(p.dof)]

    def loglik(u):
        Lu = np.array([[u[2], 0.0], [u[3], u[4]]])
        return MODEL.log_likelihood(X, MultivariateTParams(u[:2], Lu @ Lu.T, np.exp(u[5])))

    grad = [(loglik(u + h) - loglik(u - h)) / 2e-6 for h in 1e-6 * np.eye(6)]
    np.testing.assert_allclose(grad, 0.0, atol=1e-4)


def test_ecme_with_the_exact_m_step_before_the_loglik_step(sample):
    X, init = sample
    a = emlib.ecme(MODEL, X, init, loglik_steps=MODEL.dof_loglik_step, tol=1e-12, max_iter=300)
    b = run_ecme(X, init, tol=1e-12, max_iter=300)
    assert a.log_likelihood[-1] == pytest.approx(b.log_likelihood[-1], abs=1e-8)


def test_a_loglik_step_that_lowers_l_is_refused(sample):
    X, init = sample

    def bad(X, params):
        return MultivariateTParams(params.mean, params.scale, 1.0)   # far from the maximizer

    with pytest.raises(ValueError, match="CM-step 0 on l of iteration 1 lowered"):
        emlib.ecme(MODEL, X, init, q_steps=[MODEL.location_scale_step], loglik_steps=[bad])
    # without the check the drop goes through
    fit = emlib.ecme(MODEL, X, init, q_steps=[MODEL.location_scale_step], loglik_steps=[bad],
                     max_iter=1, check=False)
    assert fit.log_likelihood[1] < fit.log_likelihood[0]


def test_a_q_step_that_lowers_l_is_refused(sample):
    X, init = sample

    def shove(stats, params):
        return MultivariateTParams(params.mean + 3.0, params.scale, params.dof)

    with pytest.raises(ValueError, match="the CM-steps on Q of iteration 1 lowered"):
        emlib.ecme(MODEL, X, init, q_steps=[shove], loglik_steps=[MODEL.dof_loglik_step])


@pytest.mark.parametrize("steps", [None, [], [1, 2], "dof"])
def test_bad_loglik_steps_are_refused(sample, steps):
    X, init = sample
    with pytest.raises(ValueError, match="loglik_steps must be"):
        emlib.ecme(MODEL, X, init, loglik_steps=steps)


def test_bad_limits_are_refused(sample):
    X, init = sample
    with pytest.raises(ValueError, match="max_iter"):
        run_ecme(X, init, max_iter=-1)
    with pytest.raises(ValueError, match="tol"):
        run_ecme(X, init, tol=np.nan)
