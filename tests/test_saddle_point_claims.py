"""Claims of the chapter "A saddle point: Murray's example" (book/saddle_point.ipynb) that
tests/test_normal_missing.py does not already check: the two maxima make the maximum-likelihood
estimate non-unique; every start with rho = 0 converges to the saddle and none with rho != 0
does; the default stopping rule declares convergence at the saddle from (4, 1.5, 10^-6) but not
from (4, 1.5, 10^-2); and the escape curves are shifted copies of one another.
"""
from __future__ import annotations

import numpy as np
import pytest

import emlib
from emlib import NormalWithMissing
from murray_coordinates import murray_coords, murray_params

X = emlib.datasets.murray()
MODEL = NormalWithMissing(mean=np.zeros(2))
SADDLE = (2.5, 2.5, 0.0)


def loglik(theta):
    return MODEL.log_likelihood(X, murray_params(*theta))


def path(theta0, n_iter):
    trace = [np.array(theta0, dtype=float)]
    emlib.em(MODEL, X, murray_params(*theta0), max_iter=n_iter, tol=0,
             callback=lambda t, p, l: trace.append(murray_coords(p)))
    return np.array(trace)


def test_the_maximum_likelihood_estimate_is_not_unique():
    """Two distinct points share the largest log-likelihood, above the saddle's; a search from
    random starts finds both with l equal to rounding."""
    high, low = loglik((8 / 3, 8 / 3, 0.5)), loglik((8 / 3, 8 / 3, -0.5))
    assert high == pytest.approx(low, rel=1e-15)
    assert high > loglik(SADDLE) + 0.05
    rng = np.random.default_rng(0)
    ends = []
    for _ in range(12):
        start = (rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(-0.9, 0.9))
        ends.append(murray_coords(emlib.em(MODEL, X, murray_params(*start), max_iter=3000, tol=1e-13).params))
    signs = {np.sign(e[2]) for e in ends}
    assert signs == {-1.0, 1.0}
    for e in ends:
        np.testing.assert_allclose(np.abs(e), [8 / 3, 8 / 3, 0.5], atol=1e-4)


@pytest.mark.parametrize("start", [(4.2, 4.2, 0.0), (1.5, 1.5, 0.0), (4.0, 1.5, 0.0), (0.3, 7.0, 0.0)])
def test_every_start_with_rho_zero_converges_to_the_saddle(start):
    tr = path(start, 80)
    assert np.all(tr[:, 2] == 0.0)
    np.testing.assert_allclose(tr[-1], SADDLE, atol=1e-12)


@pytest.mark.parametrize("rho0", [1e-8, -1e-5, 1e-3, -0.3])
@pytest.mark.parametrize("variances", [(2.5, 2.5), (4.0, 1.5)])
def test_no_start_with_rho_nonzero_converges_to_the_saddle(rho0, variances):
    tr = path((*variances, rho0), 500)
    assert np.all(tr[:, 2] != 0.0) and np.all(np.sign(tr[:, 2]) == np.sign(rho0))
    np.testing.assert_allclose(tr[-1], [8 / 3, 8 / 3, 0.5 * np.sign(rho0)], atol=1e-6)


def test_the_stopping_rule_is_fooled_from_a_tiny_correlation_but_not_from_a_small_one():
    """The chapter's demonstration: from (4, 1.5, 1e-6) the default rule stops within a few
    iterations at the saddle, reporting convergence; from (4, 1.5, 1e-2) it stops near a maximum."""
    stuck = emlib.em(MODEL, X, murray_params(4.0, 1.5, 1e-6))
    assert stuck.converged and stuck.n_iter < 20
    theta = murray_coords(stuck.params)
    assert np.max(np.abs(theta[:2] - 2.5)) < 1e-3 and 0 < theta[2] < 1e-5
    assert abs(stuck.log_likelihood[-1] - loglik(SADDLE)) < 1e-7
    assert loglik((8 / 3, 8 / 3, 0.5)) - stuck.log_likelihood[-1] > 0.05   # far below the maximum
    free = emlib.em(MODEL, X, murray_params(4.0, 1.5, 1e-2))
    assert free.converged and abs(murray_coords(free.params)[2] - 0.5) < 2e-3


def test_escape_curves_are_shifted_copies():
    """Figure saddle_point-fig-escape: dividing rho^(0) by 100 delays the arrival near the
    maximum by log(100) / log(16/15) iterations, about 71."""
    arrival = [int(np.argmax(path((2.5, 2.5, rho0), 330)[:, 2] > 0.45)) for rho0 in (1e-2, 1e-4, 1e-6)]
    assert np.all(np.abs(np.diff(arrival) - np.log(100) / np.log(16 / 15)) < 3)
