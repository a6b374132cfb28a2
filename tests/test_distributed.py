"""Tests of emlib.distributed: EM with the E-step mapped over the blocks of a Dask array.

The defining properties: the fit equals emlib.em on the same data (to 1e-10 relative), whatever
the chunking; a worker killed in the middle of an iteration does not change the result; the
client's memory does not grow with N; the lazily generated data are reproducible block by block;
bad input gets a clear error; and emlib itself never needs Dask.

One local cluster of two worker processes serves the module (a second one, of one worker, is
started for the test in which the only worker dies).
"""
import os
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import dask.array as da
import dask.bag as db
import numpy as np
import psutil
import pytest

import emlib
import emlib.distributed as ed

ROOT = Path(__file__).resolve().parents[1]
TRUTH = emlib.GaussianMixtureParams(
    [0.3, 0.5, 0.2], [[0.0, 0.0], [4.0, 4.0], [-4.0, 3.0]],
    [[[1.0, 0.3], [0.3, 0.8]], [[1.5, -0.4], [-0.4, 1.0]], [[0.7, 0.0], [0.0, 1.2]]])


@pytest.fixture(scope="module")
def client():
    with ed.local_client(2) as c:
        yield c


def _data(n=300, seed=0):
    return emlib.GaussianMixture(3).sample(TRUTH, n, np.random.default_rng(seed))[0]


def _model_and_init(covariance_type, X):
    model = emlib.GaussianMixture(3, covariance_type=covariance_type)
    return model, model.init_params(X, np.random.default_rng(1))


def _assert_same_fit(dist, ref, rtol=1e-10):
    assert dist.n_iter == ref.n_iter and dist.converged == ref.converged
    np.testing.assert_allclose(dist.log_likelihood, ref.log_likelihood, rtol=rtol, atol=0)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(dist.params, name), getattr(ref.params, name), rtol=rtol, atol=0)


# Row chunkings of 60 points for K = 3: even blocks; an uneven last block (60 = 3 * 17 + 9);
# blocks of 2 rows, fewer than K (30 blocks, a reduction tree two levels deep); and irregular
# blocks including single rows.
CHUNKINGS = {"even": (20, 2), "uneven-last": (17, 2), "smaller-than-K": (2, 2),
             "irregular": ((1, 2, 30, 17, 1, 9), (2,))}


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS), ids=list(CHUNKINGS))
def test_equals_in_memory_em_for_every_chunking(client, covariance_type, chunking):
    X = _data(60)
    model, init = _model_and_init(covariance_type, X)
    ref = emlib.em(model, X, init, max_iter=5, tol=0)
    dist = ed.em(model, da.from_array(X, chunks=CHUNKINGS[chunking]), init, client=client, max_iter=5, tol=0)
    _assert_same_fit(dist, ref)


def test_the_tolerance_can_fail():
    # The comparison above would catch a block counted twice or dropped: that moves the fit far
    # beyond 1e-10.
    X = _data()
    model, init = _model_and_init("full", X)
    ref = emlib.em(model, X, init, max_iter=8, tol=0)
    twice = emlib.em(model, np.concatenate([X, X[:77]]), init, max_iter=8, tol=0)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(twice.params.means, ref.params.means, rtol=1e-10, atol=0)


def test_stops_where_in_memory_em_stops_and_calls_back_alike(client):
    X = _data(seed=3)
    model, init = _model_and_init("full", X)
    seen_ref, seen_dist = [], []
    ref = emlib.em(model, X, init, tol=1e-6, callback=lambda t, p, ll: seen_ref.append((t, p, ll)))
    dist = ed.em(model, da.from_array(X, chunks=(64, 2)), init, client=client, tol=1e-6,
                 callback=lambda t, p, ll: seen_dist.append((t, p, ll)))
    assert ref.converged and 2 < ref.n_iter < 1000
    _assert_same_fit(dist, ref)
    assert [t for t, _, _ in seen_dist] == [t for t, _, _ in seen_ref] == list(range(1, ref.n_iter + 1))
    np.testing.assert_allclose([ll for _, _, ll in seen_dist], [ll for _, _, ll in seen_ref], rtol=1e-10)
    assert seen_dist[-1][1] is dist.params


def test_unknown_chunk_sizes_persisted_blocks_and_bags(client):
    X = _data(seed=4)
    model, init = _model_and_init("diag", X)
    ref = emlib.em(model, X, init, max_iter=6, tol=0)
    dX = da.from_array(X, chunks=(50, 2))
    unknown = dX[dX[:, 0] > -np.inf]  # boolean selection: chunk sizes unknown, as for df.values
    assert np.isnan(unknown.shape[0])
    _assert_same_fit(ed.em(model, unknown, init, client=client, max_iter=6, tol=0), ref)
    _assert_same_fit(ed.em(model, dX, init, client=client, max_iter=6, tol=0, persist=True), ref)
    # a bag whose partitions are lists of rows, each passed to the model as it is
    bag = db.from_sequence(list(X), npartitions=4)
    _assert_same_fit(ed.em(model, bag, init, client=client, max_iter=6, tol=0), ref)


def _e_steps_per_worker(client) -> list[int]:
    """How many E-step tasks each worker has run since its log was last cleared; clears it."""
    def count(dask_worker):
        log = dask_worker.state.stimulus_log
        n = sum(1 for event in log
                if type(event).__name__ == "ComputeTaskEvent" and "-e-step-" in str(event.key))
        log.clear()
        return n
    return sorted(client.run(count).values())


def test_persisted_blocks_are_shared_evenly_and_each_iteration_runs_where_they_live(client):
    # 10 blocks of 30 rows on 2 workers: 5 each, and every iteration's map runs on the worker
    # holding its block, so the two workers do equal work at every iteration.
    X = _data(seed=6)
    model, init = _model_and_init("full", X)
    dX = da.from_array(X, chunks=(30, 2))
    _e_steps_per_worker(client)
    iterations = 4
    fit = ed.em(model, dX, init, client=client, max_iter=iterations, tol=0, persist=True)
    _assert_same_fit(fit, emlib.em(model, X, init, max_iter=iterations, tol=0))
    passes = iterations + 1  # the log-likelihood at the last parameters takes one more pass
    assert _e_steps_per_worker(client) == [5 * passes, 5 * passes]


def test_columns_split_across_chunks_are_joined(client):
    X = _data(seed=5)
    model, init = _model_and_init("full", X)
    ref = emlib.em(model, X, init, max_iter=3, tol=0)
    _assert_same_fit(ed.em(model, da.from_array(X, chunks=(100, 1)), init, client=client, max_iter=3, tol=0), ref)


def test_poisson_mixture_counts_in_one_dimension(client):
    model = emlib.PoissonMixture(3)
    truth = emlib.PoissonMixtureParams([0.5, 0.3, 0.2], [1.0, 6.0, 15.0])
    x, _ = model.sample(truth, 60, np.random.default_rng(6))
    init = model.init_params(x, np.random.default_rng(7))
    ref = emlib.em(model, x, init, max_iter=5, tol=0)
    for chunks in (23, 2):  # uneven; fewer counts per block than components
        dist = ed.em(model, da.from_array(x, chunks=chunks), init, client=client, max_iter=5, tol=0)
        assert dist.n_iter == ref.n_iter
        np.testing.assert_allclose(dist.log_likelihood, ref.log_likelihood, rtol=1e-10, atol=0)
        np.testing.assert_allclose(dist.params.rates, ref.params.rates, rtol=1e-10, atol=0)
        np.testing.assert_allclose(dist.params.weights, ref.params.weights, rtol=1e-10, atol=0)


# ---------------------------------------------------------------------------- a worker dies
class DyingGaussianMixture(emlib.GaussianMixture):
    """A Gaussian mixture whose E-step kills the worker running it, once, when a file says so.

    The test creates the file (the "arm") after iteration 1, so a worker dies in the middle of the
    E-step of iteration 2; the first worker to remove the file writes its process id and dies.
    """

    def __init__(self, arm: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arm = arm

    def e_step(self, X, params):
        try:
            os.remove(self.arm)
        except FileNotFoundError:
            return super().e_step(X, params)
        Path(self.arm + ".pid").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def _fit_while_a_worker_dies(client, tmp_path, X, init, persist):
    arm = str(tmp_path / "arm")
    model = DyingGaussianMixture(arm, 3)

    def arm_after_first_iteration(t, params, loglik):
        if t == 1:
            Path(arm).touch()

    result = ed.em(model, da.from_array(X, chunks=(25, 2)), init, client=client, max_iter=5, tol=0,
                   persist=persist, callback=arm_after_first_iteration)
    assert not Path(arm).exists(), "no worker ran the E-step after the arm was set"
    pid = int(Path(arm + ".pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, \
        "the worker that should have died is alive"
    return result


@pytest.mark.parametrize("persist", [False, True], ids=["recomputed-blocks", "persisted-blocks"])
def test_a_worker_killed_mid_iteration_does_not_change_the_fit(client, tmp_path, persist):
    X = _data(seed=8)
    model, init = _model_and_init("full", X)
    undisturbed = ed.em(model, da.from_array(X, chunks=(25, 2)), init, client=client, max_iter=5, tol=0)
    disturbed = _fit_while_a_worker_dies(client, tmp_path, X, init, persist)
    # The reduction tree has a fixed shape, so every sum is done in the same order: the fits agree
    # to the last bit (the tolerance only allows for BLAS kernels that differ between processes).
    _assert_same_fit(disturbed, undisturbed, rtol=1e-14)
    _assert_same_fit(disturbed, emlib.em(model, X, init, max_iter=5, tol=0))
    client.wait_for_workers(2, timeout=60)


def test_when_the_only_worker_dies_the_iteration_is_recomputed(tmp_path):
    # With one worker, its death loses the broadcast parameters, which have no lineage: the
    # driver sends them again and recomputes the whole iteration.
    X = _data(seed=9)
    model, init = _model_and_init("full", X)
    reference = emlib.em(model, X, init, max_iter=5, tol=0)
    with ed.local_client(1) as single:
        result = _fit_while_a_worker_dies(single, tmp_path, X, init, persist=False)
    _assert_same_fit(result, reference)


# ---------------------------------------------------------------------------- memory and data
def test_client_memory_does_not_grow_with_n(client):
    # Two data sets of 10**6 and 10**7 points (15 MiB and 153 MiB as arrays), generated on the
    # workers, in the same number of blocks. tracemalloc traces the client's process (which also
    # runs the scheduler) during a fit of one iteration.
    model = emlib.GaussianMixture(2)
    truth = emlib.GaussianMixtureParams([0.35, 0.65], [[-2.0, 1.0], [1.5, -0.5]],
                                        [[[1.0, 0.3], [0.3, 0.6]], [[0.8, -0.2], [-0.2, 1.2]]])
    init = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], np.stack([2.0 * np.eye(2)] * 2))
    peaks, sizes = [], []
    for n in (10**6, 10**7):
        X = ed.lazy_sample(model, truth, n, seed=10, chunk_size=n // 8)
        tracemalloc.start()
        try:
            result = ed.em(model, X, init, client=client, max_iter=1, tol=0)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        sizes.append(X.nbytes)
        assert result.n_iter == 1 and np.isfinite(result.log_likelihood).all()
    assert sizes[1] == 10 * sizes[0] == 10 * 10**6 * 2 * 8
    assert peaks[1] < 0.02 * sizes[1], f"client peak {peaks[1] / 2**20:.1f} MiB"
    # ten times the data, the same client memory (up to 256 KiB of noise in the bookkeeping)
    assert abs(peaks[1] - peaks[0]) < 2**18, [p / 2**20 for p in peaks]


def test_lazy_sample_blocks_come_from_spawned_seeds(client):
    model = emlib.GaussianMixture(3)
    X = ed.lazy_sample(model, TRUTH, 1050, seed=11, chunk_size=400)
    assert X.shape == (1050, 2) and X.chunks == ((400, 400, 250), (2,)) and X.dtype == float
    children = np.random.SeedSequence(11).spawn(3)
    expected = np.concatenate([model.sample(TRUTH, size, np.random.default_rng(child))[0]
                               for size, child in zip((400, 400, 250), children)])
    computed = client.compute(X).result()
    np.testing.assert_array_equal(computed, expected)
    np.testing.assert_array_equal(X[800:].compute(scheduler="synchronous"), expected[800:])
    # one-dimensional samples (counts) come as one column
    counts = ed.lazy_sample(emlib.PoissonMixture(2), emlib.PoissonMixtureParams([0.5, 0.5], [1.0, 5.0]),
                            10, seed=0, chunk_size=4)
    assert counts.shape == (10, 1) and counts.compute(scheduler="synchronous").shape == (10, 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be"), ({"chunk_size": 0}, "chunk_size must be"), ({"seed": -1}, "seed must be"),
    ({"n": 2.5}, "n must be"),
])
def test_lazy_sample_refuses_bad_settings(kwargs, message):
    settings = {"n": 10, "seed": 0, "chunk_size": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        ed.lazy_sample(emlib.GaussianMixture(3), TRUTH, settings.pop("n"), **settings)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_a_clear_error(client):
    X = _data(seed=12)
    model, init = _model_and_init("full", X)
    with pytest.raises(ValueError, match="dask.array.from_array"):
        ed.em(model, X, init, client=client)
    with pytest.raises(ValueError, match="shape"):
        ed.em(model, da.zeros((4, 2, 2)), init, client=client)
    with pytest.raises(ValueError, match="client must be"):
        ed.em(model, da.from_array(X), init, client="tcp://localhost:8786")
    bad = X.copy()
    bad[150, 1] = np.nan
    for persist in (False, True):  # checked at every pass, or once when the blocks are persisted
        with pytest.raises(ValueError, match="NaN"):  # the model's own message, raised on a worker
            ed.em(model, da.from_array(bad, chunks=(50, 2)), init, client=client, persist=persist)
    with pytest.raises(ValueError, match="at least 3"):
        ed.em(model, da.from_array(X[:2], chunks=(1, 2)), init, client=client)
    with pytest.raises(ValueError, match="X has 3 columns"):
        ed.em(model, da.from_array(np.c_[X, X[:, :1]], chunks=(50, 3)), init, client=client)
    with pytest.raises(ValueError, match="no data"):
        ed.em(model, da.from_array(X)[X[:, 0] > np.inf], init, client=client)


def test_without_a_client_a_local_cluster_is_started_and_closed():
    X = _data(seed=13)
    model, init = _model_and_init("diag", X)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = ed.em(model, da.from_array(X, chunks=(100, 2)), init, max_iter=3, tol=0)
    _assert_same_fit(result, emlib.em(model, X, init, max_iter=3, tol=0))
    left = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE} - before
    assert not left, f"worker processes left running: {left}"


# ---------------------------------------------------------------------------- an optional extra
def test_emlib_does_not_import_dask():
    code = "import sys, emlib; assert not {'dask', 'distributed'} & set(sys.modules), 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_without_dask_the_import_error_says_what_to_install():
    code = ("import sys; sys.modules['dask'] = None\n"
            "try:\n    import emlib.distributed\n"
            "except ImportError as e:\n    print(e)\nelse:\n    raise SystemExit('imported')")
    run = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    assert 'pip install "emlib-book[distributed]"' in run.stdout
