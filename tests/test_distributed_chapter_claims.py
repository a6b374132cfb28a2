"""The claims of the chapter "Distributed EM" (book/distributed_em.ipynb), checked on their own.

The proposition that EM on blocks computes EM's iterates (additivity of the statistics and of the
log-likelihood over any partition, in any order and grouping; identical iterates); the fixed-shape
reduction that makes a distributed run reproducible bit for bit; the size of the communicated
statistics; and the claims of the exercises (averaging parameters is not EM, the speed-up
condition, the gradient from the same statistics).
"""
import itertools

import numpy as np
import pytest

import emlib
import emlib.distributed as ed
from emlib.gradient import means_gradient

TRUTH = emlib.GaussianMixtureParams(
    [0.3, 0.5, 0.2], [[0.0, 0.0], [4.0, 4.0], [-4.0, 3.0]],
    [[[1.0, 0.3], [0.3, 0.8]], [[1.5, -0.4], [-0.4, 1.0]], [[0.7, 0.0], [0.0, 1.2]]])


def _partition(n, n_blocks, rng):
    """A random partition of range(n) into n_blocks non-empty index sets (not contiguous)."""
    order = rng.permutation(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_blocks - 1, replace=False))
    return np.split(order, cuts)


def _add(parts):
    stats, loglik = parts[0]
    for s, l in parts[1:]:
        stats, loglik = stats + s, loglik + l
    return stats, loglik


def _stats_fields(stats):
    return [np.asarray(v) for v in vars(stats).values()]


def _assert_stats_close(a, b, rtol):
    for x, y in zip(_stats_fields(a), _stats_fields(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)))


def _models_and_data():
    X = emlib.GaussianMixture(3).sample(TRUTH, 400, np.random.default_rng(0))[0]
    counts = emlib.PoissonMixture(2).sample(emlib.PoissonMixtureParams([0.4, 0.6], [2.0, 9.0]), 400,
                                            np.random.default_rng(1))[0].reshape(-1, 1).astype(float)
    return [(emlib.GaussianMixture(3), X, TRUTH),
            (emlib.GaussianMixture(3, "diag"), X,
             emlib.GaussianMixtureParams(TRUTH.weights, TRUTH.means, [[1.0, 1.0], [1.5, 1.0], [0.7, 1.2]])),
            (emlib.PoissonMixture(2), counts, emlib.PoissonMixtureParams([0.5, 0.5], [1.0, 5.0]))]


@pytest.mark.parametrize("case", range(3), ids=["gmm-full", "gmm-diag", "poisson"])
@pytest.mark.parametrize("seed", range(5))
def test_statistics_and_loglik_add_over_any_partition_in_any_order(case, seed):
    model, X, theta = _models_and_data()[case]
    rng = np.random.default_rng(seed)
    whole = model.e_step(X, theta)
    parts = [model.e_step(X[idx], theta) for idx in _partition(len(X), 2 + seed * 3, rng)]
    for ordering in (parts, parts[::-1], [parts[i] for i in rng.permutation(len(parts))]):
        stats, loglik = _add(ordering)
        _assert_stats_close(stats, whole[0], rtol=1e-12)
        assert loglik == pytest.approx(whole[1], rel=1e-12)
    # another grouping: pairs first, then the pair sums
    paired = [_add(parts[i:i + 2]) for i in range(0, len(parts), 2)]
    stats, loglik = _add(paired)
    _assert_stats_close(stats, whole[0], rtol=1e-12)
    assert loglik == pytest.approx(whole[1], rel=1e-12)


def test_the_chapters_old_faithful_blocks():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2)
    theta = model.init_params(X, np.random.default_rng(0))
    edges = [0, 5, 6, 90, 200, X.shape[0]]
    assert np.diff(edges).tolist() == [5, 1, 84, 110, 72]
    stats, loglik = _add([model.e_step(X[a:b], theta) for a, b in zip(edges[:-1], edges[1:])])
    whole = model.e_step(X, theta)
    _assert_stats_close(stats, whole[0], rtol=1e-13)   # the chapter prints "below 10^-12"
    assert loglik == pytest.approx(whole[1], rel=1e-13)


@pytest.mark.parametrize("seed", range(3))
def test_em_on_blocks_has_the_iterates_of_em(seed):
    """The induction of the proposition, run: Theta(sum of block statistics) step after step."""
    model, X, _ = _models_and_data()[0]
    init = model.init_params(X, np.random.default_rng(10 + seed))
    blocks = [X[idx] for idx in _partition(len(X), 7, np.random.default_rng(seed))]
    seen = []
    reference = emlib.em(model, X, init, max_iter=15, tol=0, callback=lambda t, p, ll: seen.append((p, ll)))
    theta = init
    for params, loglik in seen:
        stats, block_loglik = _add([model.e_step(b, theta) for b in blocks])
        theta = model.m_step(stats)
        for a, b in zip(emlib.flatten_params(theta), emlib.flatten_params(params)):
            assert a == pytest.approx(b, rel=1e-10, abs=1e-12)
    _, final_loglik = _add([model.e_step(b, theta) for b in blocks])
    assert final_loglik == pytest.approx(reference.log_likelihood[-1], rel=1e-12)


def test_a_fixed_shape_tree_gives_the_same_bits_whatever_the_scheduling():
    # Two threads in one process pick up the block tasks in an order that varies from run to run;
    # the tree of additions does not.
    import dask.array as da
    import distributed

    X = emlib.GaussianMixture(3).sample(TRUTH, 3000, np.random.default_rng(2))[0]
    model = emlib.GaussianMixture(3)
    init = model.init_params(X, np.random.default_rng(3))
    dX = da.from_array(X, chunks=(97, 2))                      # 31 blocks: a tree two levels deep
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=4,
                            dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}) as client:
        runs = [ed.em(model, dX, init, client=client, max_iter=6, tol=0) for _ in range(3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.log_likelihood, runs[0].log_likelihood)
        np.testing.assert_array_equal(emlib.flatten_params(run.params), emlib.flatten_params(runs[0].params))


@pytest.mark.parametrize("K, D", [(8, 10), (3, 2)])
def test_the_statistics_sent_per_block_do_not_depend_on_n(K, D):
    rng = np.random.default_rng(4)
    model = emlib.GaussianMixture(K)
    theta = emlib.GaussianMixtureParams(np.full(K, 1 / K), rng.normal(size=(K, D)),
                                        np.repeat(np.eye(D)[None], K, axis=0))
    sizes = {sum(f.nbytes for f in _stats_fields(model.e_step(rng.normal(size=(n, D)), theta)[0]))
             for n in (10, 1000, 100_000)}
    # K(1 + D + D^2) numbers, and the D of the reference point the moments are taken about
    assert sizes == {8 * (K * (1 + D + D * D) + D)}
    assert emlib.flatten_params(theta).size == K * (1 + D + D * D)   # and theta as many


def test_averaging_block_parameters_is_not_em_but_weighting_by_responsibilities_is():
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2)
    theta = model.init_params(X, np.random.default_rng(0))
    order = np.argsort(X[:, 0])
    halves = [X[order[:136]], X[order[136:]]]
    # fits per block, averaged: the first mean waiting time is several minutes longer than EM's
    fits = [emlib.em(model, h, theta).params for h in halves]
    full = emlib.em(model, X, theta).params
    averaged = np.mean([f.means for f in fits], axis=0)
    assert full.means[0, 0] < full.means[1, 0]                 # component 0: the short eruptions
    assert 3.0 < averaged[0, 1] - full.means[0, 1] < 15.0
    # one step: averaged covariances have every variance smaller than EM's step
    block_stats = [model.e_step(h, theta)[0] for h in halves]
    steps = [model.m_step(s) for s in block_stats]
    em_step = model.m_step(model.e_step(X, theta)[0])
    averaged_var = np.mean([p.covariances for p in steps], axis=0).diagonal(axis1=1, axis2=2)
    assert np.all(averaged_var < em_step.covariances.diagonal(axis1=1, axis2=2))
    # the block means weighted by the block responsibilities N_kb are EM's means
    weighted = sum(s.counts[:, None] * p.means for s, p in zip(block_stats, steps)) \
        / sum(s.counts for s in block_stats)[:, None]
    np.testing.assert_allclose(weighted, em_step.means, rtol=1e-12)


def test_the_speedup_condition():
    # S = cN / (a + cN/W) >= sigma  <=>  cN >= sigma a W / (W - sigma), for sigma < W
    for a, W, sigma in itertools.product([0.01, 0.03, 1.0], [2, 4, 16], [1.2, 1.6, 1.9]):
        if sigma >= W:
            continue
        threshold = sigma * a * W / (W - sigma)
        for cN in np.geomspace(threshold / 10, threshold * 10, 41):
            S = cN / (a + cN / W)
            assert S < W
            if not np.isclose(cN, threshold, rtol=1e-9):
                assert (S >= sigma) == (cN >= threshold)
    assert 1.6 * 2 / (2 - 1.6) == pytest.approx(8.0)       # W = 2, sigma = 1.6: cN >= 8a
    assert 8 * 30 == 240                                    # a = 30 ms: at least 240 ms


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_the_gradient_of_the_means_comes_from_the_summed_statistics(covariance_type):
    X = emlib.datasets.old_faithful()
    model = emlib.GaussianMixture(2, covariance_type)
    theta = model.init_params(X, np.random.default_rng(0))
    edges = [0, 5, 6, 90, 200, X.shape[0]]
    stats, _ = _add([model.e_step(X[a:b], theta) for a, b in zip(edges[:-1], edges[1:])])
    cov = theta.covariances if covariance_type == "full" else np.stack([np.diag(c) for c in theta.covariances])
    grad = np.stack([np.linalg.solve(cov[k], stats.sum_x[k] - stats.counts[k] * theta.means[k]) for k in range(2)])
    reference = means_gradient(model, X, theta)
    assert np.max(np.abs(grad - reference)) / np.max(np.abs(reference)) < 1e-10
