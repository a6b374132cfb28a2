"""Unit tests of emlib/bounds.py: each helper against a naive reference, edge cases, bad input.

The reference model here is a "table": its log_joint is an explicit (N, K) array, so every
quantity can be recomputed with plain loops and SciPy, independently of emlib's Gaussian code.
"""
import numpy as np
import pytest
from scipy import stats
from scipy.special import rel_entr

import emlib
from emlib import bounds

# Identities are sums of about N*K = 60 terms of size <= 50: rounding errors are far below
# 1e-12 relative; a wrong formula (a missing term, a wrong sign) is off by order one.
RTOL = 1e-12


class TableModel:
    """A stand-in model whose parameters ARE the table log p(x_n, z_n = k), shape (N, K)."""

    def log_joint(self, X, params):
        return np.array(params, dtype=float)

    def posterior(self, X, params):
        p = np.exp(np.array(params, dtype=float))
        return p / p.sum(axis=1, keepdims=True)


N, K = 20, 3
X_DUMMY = np.zeros((N, 1))


def random_table(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(-5.0, 3.0, size=(N, K))


def random_q(seed, alpha=1.0):
    return np.random.default_rng(seed).dirichlet(np.full(K, alpha), size=N)


def naive_posterior(table):
    p = np.exp(table)  # entries are moderate (about -20 to 10), so no overflow or underflow
    return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- against naive references
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_matches_scipy_row_by_row(seed):
    q = random_q(seed)
    expected = sum(stats.entropy(row) for row in q)
    assert bounds.entropy(q) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_complete_loglik_matches_double_loop(seed):
    table, q = random_table(seed), random_q(seed + 10)
    expected = sum(q[n, k] * table[n, k] for n in range(N) for k in range(K))
    got = bounds.expected_complete_loglik(TableModel(), X_DUMMY, table, q)
    assert got == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elbo_matches_double_loop(seed):
    table, q = random_table(seed), random_q(seed + 10)
    expected = sum(q[n, k] * (table[n, k] - np.log(q[n, k])) for n in range(N) for k in range(K))
    assert bounds.elbo(TableModel(), X_DUMMY, table, q) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_to_posterior_matches_scipy_rel_entr(seed):
    table, q = random_table(seed), random_q(seed + 10)
    expected = rel_entr(q, naive_posterior(table)).sum()
    assert bounds.kl_to_posterior(TableModel(), X_DUMMY, table, q) == pytest.approx(expected, rel=1e-10)


def test_log_posterior_matches_naive_and_is_shift_invariant():
    table = random_table(3)
    got = bounds.log_posterior(TableModel(), X_DUMMY, table)
    np.testing.assert_allclose(got, np.log(naive_posterior(table)), rtol=1e-12, atol=1e-12)
    # Adding log p(x_n) - like constants to a row does not change the posterior; with offsets
    # of -1000 the naive exp underflows to 0/0, the log-space computation does not.
    offsets = np.linspace(-1000.0, 1000.0, N)[:, None]
    shifted = bounds.log_posterior(TableModel(), X_DUMMY, table + offsets)
    np.testing.assert_allclose(shifted, got, rtol=0, atol=1e-9)


def test_q_function_weights_log_joint_of_theta_by_posterior_of_theta_t():
    theta, theta_t = random_table(4), random_table(5)
    expected = float((naive_posterior(theta_t) * theta).sum())
    got = bounds.q_function(TableModel(), X_DUMMY, theta, theta_t)
    assert got == pytest.approx(expected, rel=RTOL)
    # The argument order matters: Q(theta | theta_t) is not Q(theta_t | theta).
    assert got != pytest.approx(bounds.q_function(TableModel(), X_DUMMY, theta_t, theta), rel=1e-3)


def test_q_function_on_a_gaussian_mixture_uses_the_posterior_of_theta_t():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2)
    theta_t = model.init_params(X, np.random.default_rng(0))
    theta = model.init_params(X, np.random.default_rng(1))
    expected = float((model.posterior(X, theta_t) * model.log_joint(X, theta)).sum())
    assert bounds.q_function(model, X, theta, theta_t) == pytest.approx(expected, rel=RTOL)


# ---------------------------------------------------------------- properties
def test_kl_is_zero_at_the_posterior_and_positive_elsewhere():
    table = random_table(6)
    post = naive_posterior(table)
    assert abs(bounds.kl_to_posterior(TableModel(), X_DUMMY, table, post)) < 1e-12 * N
    for seed in range(5):
        assert bounds.kl_to_posterior(TableModel(), X_DUMMY, table, random_q(seed)) > 1e-3


def test_entropy_is_largest_for_uniform_rows_and_zero_for_one_hot_rows():
    uniform = np.full((N, K), 1.0 / K)
    assert bounds.entropy(uniform) == pytest.approx(N * np.log(K), rel=RTOL)
    for seed in range(5):
        assert 0.0 < bounds.entropy(random_q(seed)) < N * np.log(K)
    one_hot = np.eye(K)[np.arange(N) % K]
    assert bounds.entropy(one_hot) == 0.0


def test_one_hot_q_uses_zero_log_zero_equals_zero_even_where_log_joint_is_minus_infinity():
    # A component with zero weight has log p(x, z = k) = -inf; q puts no mass there.
    table = random_table(7)
    table[:, 2] = -np.inf
    labels = np.arange(N) % 2
    q = np.eye(K)[labels]
    rows = np.arange(N)
    log_post = table[rows, labels] - np.logaddexp(table[:, 0], table[:, 1])
    model = TableModel()
    # pyproject turns RuntimeWarnings from emlib into errors, so no 0 * inf = nan warning either.
    assert bounds.entropy(q) == 0.0
    assert bounds.elbo(model, X_DUMMY, table, q) == pytest.approx(table[rows, labels].sum(), rel=RTOL)
    assert bounds.kl_to_posterior(model, X_DUMMY, table, q) == pytest.approx(-log_post.sum(), rel=RTOL)


def test_q_with_mass_where_the_joint_is_impossible_gives_minus_infinite_elbo_and_infinite_kl():
    table = random_table(8)
    table[0, 2] = -np.inf
    q = np.full((N, K), 1.0 / K)
    assert bounds.elbo(TableModel(), X_DUMMY, table, q) == -np.inf
    assert bounds.kl_to_posterior(TableModel(), X_DUMMY, table, q) == np.inf


def test_lists_are_accepted_and_q_is_not_modified():
    table, q = random_table(9), random_q(9)
    q_copy = q.copy()
    a = bounds.elbo(TableModel(), X_DUMMY, table, q.tolist())
    b = bounds.elbo(TableModel(), X_DUMMY, table, q)
    assert a == b
    np.testing.assert_array_equal(q, q_copy)


# ---------------------------------------------------------------- bad input
def _call(name, q):
    table = random_table(0)
    if name == "entropy":
        return bounds.entropy(q)
    return getattr(bounds, name)(TableModel(), X_DUMMY, table, q)


WITH_SHAPE = ["expected_complete_loglik", "elbo", "kl_to_posterior"]
ALL = ["entropy"] + WITH_SHAPE


@pytest.mark.parametrize("name", WITH_SHAPE)
@pytest.mark.parametrize("shape", [(N, K + 1), (N - 1, K), (N * K,), (K, N)])
def test_wrong_q_shape_is_refused(name, shape):
    q = np.full(shape, 1.0 / shape[-1])
    with pytest.raises(ValueError, match="shape of the model's posterior"):
        _call(name, q)


@pytest.mark.parametrize("name", ALL)
def test_rows_not_summing_to_one_are_refused(name):
    q = random_q(1)
    q[3] *= 1.01
    with pytest.raises(ValueError, match=r"must sum to one \(worst row is off by 0.01\)"):
        _call(name, q)


@pytest.mark.parametrize("name", ALL)
def test_negative_entries_are_refused_even_when_rows_sum_to_one(name):
    q = random_q(2)
    q[0] = [1.2, -0.1, -0.1]
    with pytest.raises(ValueError, match="non-negative"):
        _call(name, q)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_entries_are_refused(name, bad):
    q = random_q(3)
    q[5, 1] = bad
    with pytest.raises(ValueError, match="finite, non-negative"):
        _call(name, q)


def test_scalar_and_non_numeric_q_are_refused():
    with pytest.raises(ValueError, match="got a scalar"):
        bounds.entropy(1.0)
    with pytest.raises(ValueError, match="numeric array"):
        bounds.entropy([["a", "b"]])


def test_rows_off_by_rounding_only_are_accepted():
    q = random_q(4)
    exact = bounds.entropy(q)
    q[:, 0] += 1e-12  # well inside the 1e-8 tolerance on row sums
    assert bounds.entropy(q) == pytest.approx(exact, rel=1e-9)
