"""EM on a Dask cluster: the E-step mapped over blocks of the data, the statistics summed by a tree.

Book: chapter "Distributed EM" (``book/distributed_em.ipynb``). The expected sufficient
statistics of a data set are the sum of those of its blocks (eq. ``distributed_em-additivity``),
so one EM iteration is a map and a reduce::

    for every block X_b, on the worker that holds it:  s_b, l_b = model.e_step(X_b, theta_t)
    on the cluster, by a tree of fixed shape:           s = sum_b s_b,  l = sum_b l_b
    on the client:                                      theta_{t+1} = model.m_step(s)

Per iteration the parameters travel to the workers once (a broadcast) and one statistics object
per block travels up the tree: the communication does not depend on N. The loop itself is
:func:`emlib.em`'s, unchanged: this module only supplies an E-step that runs on the cluster, so
the stopping rule, the trace and the result are those of the in-memory driver.

Dask and distributed are an optional extra: ``pip install "emlib-book[distributed]"``.
"""
from __future__ import annotations

import logging
import uuid
from concurrent.futures import CancelledError
from typing import Any, Callable

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
    import distributed
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"emlib.distributed needs Dask and distributed, which are not installed ({exc}). Install the "
        'extra with  pip install "emlib-book[distributed]"  (or: pip install "dask[array]" distributed).'
    ) from exc

from .em import EMResult
from .em import em as _em

__all__ = ["em", "lazy_sample", "local_client"]

#: How many partial statistics one task of the reduction tree adds up.
SPLIT_EVERY = 8
#: How often one iteration is recomputed from the start when the cluster lost its inputs.
RETRIES = 2


#: Dask's configuration for :func:`local_client`'s cluster (see there).
LOCAL_CONFIG = {
    # glibc's own memory handling in the workers (see local_client)
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # Statistical profiles of the workers only feed the dashboard, which is not started.
    "distributed.worker.profile.enabled": False,
    # Every process checks 50 times a second whether its event loop is responsive, only to log a
    # warning; each check takes the interpreter lock from the thread running the E-step.
    "distributed.admin.tick.interval": "1s",
}


def local_client(n_workers: int | None = None) -> "distributed.Client":
    """A Dask client on a new cluster on this machine: one process per core, one thread each.

    The client owns its cluster: ``client.close()`` (or leaving a ``with`` block) shuts both
    down. No dashboard is started (nor the workers' profiling, which only feeds it), the
    processes check their event loops once a second rather than 50 times (a check interrupts
    the E-step), and the cluster logs only errors. The workers keep the C
    library's default memory allocation: Dask's default for its workers (``MALLOC_TRIM_THRESHOLD_``
    set, to hand freed memory back to the system sooner) makes every large temporary array of
    the E-step a fresh memory mapping, which made the E-step of a Gaussian mixture about four
    times slower on a worker than in this process (measured with
    ``benchmarks/distributed_em.py``). On a cluster of your own, unset
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` in Dask's configuration for
    the same effect.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; by default one per core available to this process.
    """
    if n_workers is None:
        from dask.system import CPU_COUNT
        n_workers = CPU_COUNT
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer; got {n_workers!r}.")
    # No dashboard; the scheduler's small HTTP server (health checks) on any free port, so that
    # several clusters on one machine never compete for port 8787.
    with dask.config.set(LOCAL_CONFIG):
        return distributed.Client(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                  dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                  silence_logs=logging.ERROR)


def em(model, X, init, *, client: "distributed.Client | None" = None, max_iter: int = 1000,
       tol: float = 1e-8, callback: Callable[[int, Any, float], None] | None = None,
       persist: bool = False) -> EMResult:
    """Fit ``model`` to data held in blocks on a Dask cluster by the EM algorithm.

    The same algorithm, stopping rule and result as :func:`emlib.em` (algorithm
    ``distributed_em-alg`` of the chapter "Distributed EM"); only the E-step runs on the cluster. Each iteration broadcasts theta_t to the workers once, runs ``model.e_step`` on
    every block where the block lives, and adds the blocks' statistics and log-likelihoods by a
    tree whose shape depends only on the number of blocks (so the sums, and the fit, do not
    depend on which worker computed what, or when). The M-step runs on the client.

    If a worker dies, Dask recomputes the lost pieces from their lineage (a block of X from its
    graph, a block's statistics from that block and theta_t). If the cluster lost the broadcast
    parameters themselves (every worker that held them died), the iteration is recomputed from
    the start with theta_t, which the client still holds, at most twice.

    Parameters
    ----------
    model : object of the model interface
        Needs ``check_data``, ``check_params``, ``e_step`` and ``m_step``, and statistics that
        add (``a + b``), such as :class:`emlib.GaussianMixture` and :class:`emlib.PoissonMixture`.
        It is sent to the workers, so it must be picklable.
    X : dask.array.Array of shape (N, D) or (N,), or dask.bag.Bag
        The data, chunked along the rows: each row block is passed to ``model.check_data`` and
        ``model.e_step`` as a NumPy array (a block may have fewer rows than the model needs in
        all, e.g. fewer than K; the whole data must not). Chunk sizes may be unknown, as in
        ``df.to_dask_array()`` or ``df.values`` of a Dask DataFrame. For data made of
        independent sequences, a Bag whose partitions are lists of whole sequences: each
        partition is passed to ``model.check_data`` and ``model.e_step`` as it is.
    init : parameters dataclass
        theta_0.
    client : distributed.Client, optional
        The cluster to use. By default a local cluster (:func:`local_client`) is started for
        this fit and closed afterwards.
    max_iter, tol, callback
        As in :func:`emlib.em`.
    persist : bool
        Keep the blocks of X in the workers' memory for the whole fit, so that the data are read
        (or generated) once instead of once per iteration. Only for data that fit in the
        cluster's memory.

    Returns
    -------
    EMResult
        As :func:`emlib.em` returns it.

    Raises
    ------
    ValueError
        For data that are not a Dask array or bag, a block that ``model.check_data`` refuses
        (raised from the worker with the model's message), or no data at all.
    """
    blocks = _blocks(X)
    if client is None:
        with local_client() as own:
            return _fit(model, X, blocks, init, own, max_iter, tol, callback, persist)
    if not isinstance(client, distributed.Client):
        raise ValueError(f"client must be a distributed.Client or None; got {type(client).__name__}.")
    return _fit(model, X, blocks, init, client, max_iter, tol, callback, persist)


def _fit(model, X, blocks, init, client, max_iter, tol, callback, persist) -> EMResult:
    engine = _ClusterEStep(model, client, blocks, persist=persist)
    try:
        return _em(engine, X, init, max_iter=max_iter, tol=tol, callback=callback)
    finally:
        engine.release()


def _blocks(X) -> list:
    """The row blocks of ``X`` as ``dask.delayed`` objects, or a ``ValueError``."""
    if isinstance(X, db.Bag):
        return list(X.to_delayed())
    if not isinstance(X, da.Array):
        hint = (" For a Dask DataFrame pass df.to_dask_array()." if hasattr(X, "to_dask_array") else
                " For data in memory use emlib.em, or wrap them: dask.array.from_array(X, chunks=(rows, -1)).")
        raise ValueError(f"X must be a dask.array.Array chunked along its rows, or a dask.bag.Bag; "
                         f"got {type(X).__name__}.{hint}")
    if X.ndim not in (1, 2):
        raise ValueError(f"X must have shape (N, D) or (N,); got {X.ndim} dimensions, shape {X.shape}.")
    if X.ndim == 2 and len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # a block must hold whole rows
    return X.to_delayed().ravel().tolist()


def _check_block(model, block):
    """``model.check_data`` on one block, without its demand that the data hold enough points.

    That demand (e.g. N >= K for a mixture) is about the whole data set, which the driver checks
    once the rows are counted; a block may be smaller. A NumPy block of n < K rows is checked as
    its rows repeated to at least K, which passes every check of the values exactly when the
    block does; its own n rows are returned. Returns None for an empty block.
    """
    if len(block) == 0:
        return None
    needed = getattr(model, "n_components", 1)
    if isinstance(block, np.ndarray) and block.shape[0] < needed:
        n = block.shape[0]
        return model.check_data(np.concatenate([block] * -(-needed // n)))[:n]
    return model.check_data(block)


def _block_e_step(model, block, params):
    """The map: one block's (statistics, log-likelihood, number of rows), or None if it is empty."""
    return _checked_block_e_step(model, _check_block(model, block), params)


def _checked_block_e_step(model, block, params):
    """The map for a block already checked by :func:`_check_block` (None if it is empty)."""
    if block is None:
        return None
    stats, loglik = model.e_step(block, params)
    return stats, float(loglik), len(block)


def _add(*parts):
    """The reduce: the sum of partial results, in the order given (None for empty blocks)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    stats, loglik, rows = parts[0]
    for s, l, n in parts[1:]:
        stats, loglik, rows = stats + s, loglik + l, rows + n
    return stats, loglik, rows


def _tree_sum(parts: list, name: str, split_every: int = SPLIT_EVERY):
    """Add ``parts`` (delayed) by a tree of ``_add`` tasks with fan-in ``split_every``.

    The tree's shape depends only on ``len(parts)``, so the order of every floating-point
    addition is fixed, whatever the scheduling. ``name`` makes the task keys unique.
    """
    level, depth = parts, 0
    while True:
        depth += 1
        level = [dask.delayed(_add)(*level[i:i + split_every], dask_key_name=f"{name}-{depth}-{i}")
                 for i in range(0, len(level), split_every)]
        if len(level) == 1:
            return level[0]


def _persist_evenly(client, blocks: list) -> tuple[list, list]:
    """Persist ``blocks`` (delayed) on the workers in shares of consecutive blocks, as equal as can be.

    Returns the persisted blocks and, for each, the address of the worker meant to hold it (its
    home; None for a cluster of fewer than two workers). Every iteration's map runs where the
    blocks live, so the busiest worker sets the pace of every iteration: left to itself, the
    scheduler may give one worker more blocks than another, and may move a block's task to an
    idle worker (copying the block there), after which either copy can serve it and the shares
    drift. Homes are a preference, not a constraint: a block whose worker died is recomputed
    on another.
    """
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if len(workers) < 2:
        return client.persist(blocks), [None] * len(blocks)
    held, homes = [], []
    for worker, share in zip(workers, np.array_split(np.arange(len(blocks)), len(workers))):
        held += client.persist([blocks[b] for b in share], workers=worker, allow_other_workers=True)
        homes += [worker] * len(share)
    return held, homes


class _ClusterEStep:
    """The model as :func:`emlib.em` sees it, with an E-step that runs on the cluster.

    ``check_params`` and ``m_step`` are the model's own; ``check_data`` accepts the Dask
    collection as it is (each block is checked on its worker).
    """

    def __init__(self, model, client, blocks: list, *, persist: bool):
        self.model = model
        self.client = client
        if persist:  # held by the workers in even shares: checked once, not at every pass
            self.blocks, self.homes = _persist_evenly(
                client, [dask.delayed(_check_block)(model, b) for b in blocks])
            self.map = _checked_block_e_step
        else:        # made again at every pass: checked at every pass
            self.blocks, self.homes, self.map = blocks, [None] * len(blocks), _block_e_step
        self.needed = getattr(model, "n_components", 1)
        # Task keys named here rather than hashed from the arguments: cheaper on the client for
        # many blocks, and unique per fit and iteration.
        self.name = f"emlib-{uuid.uuid4().hex[:12]}"
        self.model_node = dask.delayed(model, name=f"{self.name}-model")
        self.n_passes = 0

    def check_data(self, X):
        return X

    def check_params(self, params, X):
        return self.model.check_params(params, X if isinstance(X, da.Array) and X.ndim == 2 else None)

    def m_step(self, stats):
        return self.model.m_step(stats)

    def e_step(self, X, params):
        for attempt in range(RETRIES + 1):
            try:
                total = self._e_step_once(params)
                break
            except CancelledError:  # the cluster lost the broadcast parameters: start again
                if attempt == RETRIES:
                    raise
        if total is None:
            raise ValueError("X holds no data: every block is empty.")
        stats, loglik, rows = total
        if rows < self.needed:
            raise ValueError(f"X has {rows} rows but at least {self.needed} are needed (a model with "
                             f"{self.needed} components needs at least {self.needed} points); use fewer "
                             "components or more data.")
        return stats, loglik

    def _e_step_once(self, params):
        self.n_passes += 1
        name = f"{self.name}-{self.n_passes}"
        theta = self.client.scatter(params, broadcast=True, hash=False)
        parts = []
        for b, (block, home) in enumerate(zip(self.blocks, self.homes)):
            preference = {} if home is None else {"workers": [home], "allow_other_workers": True}
            with dask.annotate(**preference):
                parts.append(dask.delayed(self.map)(self.model_node, block, theta,
                                                    dask_key_name=f"{name}-e-step-{b}"))
        return self.client.compute(_tree_sum(parts, f"{name}-sum")).result()

    def release(self):
        """Let the cluster forget the persisted blocks."""
        self.blocks, self.homes = [], []


def lazy_sample(model, params, n: int, *, seed: int, chunk_size: int = 100_000) -> "da.Array":
    """n points drawn from ``model`` at ``params``, as a Dask array made block by block where used.

    Block b (rows ``b * chunk_size`` up to the next block) is ``model.sample(params, n_b, rng)``
    with ``rng = numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(n_blocks)[b])``:
    independent streams, one per block, so a block is the same on any worker and whenever it is
    recomputed, and the data set is never held anywhere as a whole.

    Parameters
    ----------
    model : object with ``sample(params, n, rng) -> (X, z)``
        For example :class:`emlib.GaussianMixture`.
    params : parameters dataclass
        The parameters to sample from.
    n : int
        N, the number of points.
    seed : int
        Non-negative; the root of the seed sequence.
    chunk_size : int
        Rows per block (the last block may be smaller).

    Returns
    -------
    dask.array.Array, shape (N, D)
        Lazy: nothing is drawn until a block is computed. One-dimensional samples (counts of
        :class:`emlib.PoissonMixture`) come as one column, shape (N, 1).
    """
    for name, value, low in (("n", n, 1), ("chunk_size", chunk_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    probe = np.asarray(model.sample(params, 1, np.random.default_rng(0))[0])
    D = probe.reshape(1, -1).shape[1]
    sizes = tuple(min(chunk_size, n - start) for start in range(0, n, chunk_size))
    return da.map_blocks(_sample_block, chunks=(sizes, (D,)), dtype=probe.dtype,
                         meta=np.empty((0, D), dtype=probe.dtype), model=model, params=params,
                         seed=int(seed), chunk_size=int(chunk_size), n=int(n), D=D)


def _sample_block(model, params, seed: int, chunk_size: int, n: int, D: int, block_id=None):
    b = block_id[0]
    size = min(chunk_size, n - b * chunk_size)
    # the b-th child of SeedSequence(seed).spawn(...), made directly
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
    return np.asarray(model.sample(params, size, rng)[0]).reshape(size, D)
