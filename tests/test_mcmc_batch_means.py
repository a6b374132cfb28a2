"""Tests of emlib.mcmc.batch_means and batch_means_effective_sample_size: batch-means standard errors and effective sample sizes.

Checked against what is known exactly: independent draws (ESS close to T), an AR(1) chain
(standard error sigma / sqrt(T (1 - rho)^2 / (1 - rho^2)) of its mean), and the arithmetic of
the batches on a small hand-made chain.
"""
import math

import numpy as np
import pytest

from emlib.mcmc import batch_means, batch_means_effective_sample_size as effective_sample_size


def ar1(rho, T, rng, P=1):
    eps = rng.standard_normal((T, P))
    x = np.empty((T, P))
    x[0] = eps[0] / math.sqrt(1 - rho ** 2)
    for t in range(1, T):
        x[t] = rho * x[t - 1] + eps[t]
    return x


def test_batches_by_hand():
    chain = np.arange(10.0)            # B = 3 batches of 3 after dropping the first state
    mean, se = batch_means(chain)
    assert mean == pytest.approx(np.mean(np.arange(1.0, 10.0)))
    batch = np.array([2.0, 5.0, 8.0])
    assert se == pytest.approx(batch.std(ddof=1) / math.sqrt(3))
    mean2, se2 = batch_means(chain, n_batches=5)
    assert mean2 == pytest.approx(4.5)
    assert se2 == pytest.approx(np.array([0.5, 2.5, 4.5, 6.5, 8.5]).std(ddof=1) / math.sqrt(5))


def test_independent_draws_have_an_ess_close_to_their_number():
    x = np.random.default_rng(0).standard_normal((40_000, 3))
    ess = effective_sample_size(x)
    assert ess.shape == (3,)
    np.testing.assert_allclose(ess / 40_000, 1.0, atol=0.3)


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ar1_standard_error_matches_theory(rho):
    T = 200_000
    x = ar1(rho, T, np.random.default_rng(1), P=4)
    _, se = batch_means(x)
    # the long-run variance of an AR(1) with unit innovations is 1 / (1 - rho)^2
    exact = math.sqrt(1 / (1 - rho) ** 2 / T)
    np.testing.assert_allclose(se / exact, 1.0, atol=0.3)
    ess = effective_sample_size(x)
    np.testing.assert_allclose(ess / (T * (1 - rho) / (1 + rho)), 1.0, atol=0.35)


def test_one_dimensional_chains_give_floats():
    mean, se = batch_means([1.0, 2.0, 4.0, 3.0, 5.0, 7.0])
    assert isinstance(mean, float) and isinstance(se, float) and se > 0
    assert isinstance(effective_sample_size([1.0, 2.0, 4.0, 3.0, 5.0, 7.0]), float)


@pytest.mark.parametrize("chain, n_batches, match", [
    ([1.0, 2.0, 3.0], None, "T >= 4"),
    (np.ones((5, 2, 2)), None, "shape"),
    ([1.0, np.nan, 2.0, 3.0], None, "NaN"),
    (np.arange(10.0), 1, "n_batches"),
    (np.arange(10.0), 6, "n_batches"),
    (np.arange(10.0), 2.0, "n_batches"),
])
def test_bad_input_is_refused(chain, n_batches, match):
    with pytest.raises(ValueError, match=match):
        batch_means(chain, n_batches)
