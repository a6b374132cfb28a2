"""EM on a local Dask cluster against EM in one process: time per iteration, and the fixed cost.

Usage:  python benchmarks/distributed_em.py [--n 10000000] [--d 10] [--k 8] [--iters 5]
                                            [--out benchmarks/results/distributed_em.json]

A Gaussian mixture with K full-covariance components in D dimensions is fitted to N points drawn
block by block on the workers (``emlib.distributed.lazy_sample``). For N = 10^4 ... n it times
one EM iteration (E-step and M-step, the median over ``--iters`` iterations, from the times
between callbacks) of

- ``emlib.em`` in this process, on the same points held in memory (only for the N whose data fit
  in a quarter of the memory available), with no cluster running: the figure's line;
- ``emlib.distributed.em`` on 1 and on 2 worker processes, with the blocks held in the workers'
  memory (``persist=True``), so that both read the data from memory;
- at the largest N, ``emlib.distributed.em`` on 2 workers with the blocks generated again at
  every pass (``persist=False``), the cost of data that are never held;

and the fixed cost per iteration: a fit of 1000 points in one block per worker, where the E-step
work is negligible and what remains is broadcasting theta, scheduling, the reduction and the
round trip. The baseline is fair: every process, the single one and each worker, uses one BLAS
thread (the script checks it), so 2 workers use 2 cores and the single process 1.

The speed-ups are paired. A shared machine's speed drifts by 10 % or more over minutes, more
than the effect measured, so two set-ups timed a minute apart compare the machine as much as
the set-ups. Every timed iteration of a cluster therefore follows one iteration of a plain
single process (``OneProcess``: emlib.em's iteration on the same points from the same
parameters, in a process of its own), and the speed-up is the median over the iterations of
the ratio of the two times.

Besides the wall clock, every timing records the CPU seconds per iteration of this process (the
client and, for a local cluster, the scheduler) and of each worker: the speed-up "from CPU
times" divides the single process's time per iteration by the busiest worker's CPU time plus
the client's, what an iteration would take if nothing else ran.

It prints the figures and writes them to a JSON file that the chapter "Distributed EM"
(book/distributed_em.ipynb) draws its scaling figure from. Timings depend on the machine and on
what else it runs: the script records the load average before and after.
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy is imported: one BLAS thread in this process too

import argparse
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import psutil
from threadpoolctl import threadpool_info, threadpool_limits

import emlib
import emlib.distributed as ed

RESULTS = Path(__file__).resolve().parent / "results" / "distributed_em.json"
SEED = 2026


def problem(d: int, k: int):
    """True parameters of a well-separated mixture and a model with full covariances."""
    rng = np.random.default_rng(SEED)
    means = rng.normal(scale=4.0, size=(k, d))
    factors = rng.normal(size=(k, d, d)) / np.sqrt(d)
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(d)
    truth = emlib.GaussianMixtureParams(np.full(k, 1.0 / k), means, covariances)
    return emlib.GaussianMixture(k), truth


def start_from(model, truth):
    """theta_0: k-means++ seeding on a sample of 20 000 points (the same for every run)."""
    X0, _ = model.sample(truth, 20_000, np.random.default_rng(SEED + 1))
    return model.init_params(X0, np.random.default_rng(SEED + 2))


def per_iteration(fit, iters: int, client=None, alongside=None) -> dict:
    """Wall-clock and CPU seconds per iteration: medians over the iterations 2 ... iters + 1.

    Read at every callback of a fit of iters + 1 iterations: the wall clock, the CPU time of
    this process (all its threads: the client and, for a local cluster, the scheduler) and the
    CPU time of every worker process, which show where the time went.

    ``alongside(params) -> (wall seconds, CPU seconds)``, if given, runs one iteration of a
    second set-up inside every callback, after the fit's own readings and before the fit's next
    iteration: the two take turns, one iteration each, so that both see the same state of a
    machine whose speed drifts. Its time is left out of the fit's, and returned as
    ``"alongside"`` with the per-iteration ratios ``"ratios"`` (its time / the time of the fit's
    iteration that follows) and their median ``"ratio"``.
    """
    workers = [psutil.Process(pid) for pid in client.run(os.getpid).values()] if client else []
    entries, exits, side = [], [], []

    def reading():
        return [time.perf_counter(), time.process_time()] + [sum(p.cpu_times()[:2]) for p in workers]

    def read(t, params, loglik):
        entries.append(reading())
        if alongside is not None:
            side.append(alongside(params))
        exits.append(reading())

    fit(max_iter=iters + 1, callback=read)
    times = np.array(entries[1:]) - np.array(exits[:-1])  # iteration t + 1 without the callback
    steps = np.median(times, axis=0)
    run = {"seconds_per_iteration": float(steps[0]), "cpu_seconds_this_process": float(steps[1]),
           "cpu_seconds_per_worker": [float(c) for c in steps[2:]]}
    if alongside is not None:
        side = np.array(side[:-1])  # the ones between two timed iterations of the fit
        ratios = side[:, 0] / times[:, 0]
        run["alongside"] = {"seconds_per_iteration": float(np.median(side[:, 0])),
                            "cpu_seconds_this_process": float(np.median(side[:, 1])),
                            "cpu_seconds_per_worker": []}
        run["ratios"] = [float(r) for r in ratios]
        run["ratio"] = float(np.median(ratios))
    return run


def sample(model, truth, n: int) -> np.ndarray:
    """The N points the clusters see (the same blocks), made here and held in memory."""
    return model.check_data(ed.lazy_sample(model, truth, n, seed=SEED, chunk_size=chunk_rows(n))
                            .compute(scheduler="synchronous"))


class OneProcess:
    """emlib.em's iteration (E-step, M-step) in a plain process of its own, on N points in memory.

    Called with the parameters, it runs one iteration from them and returns its wall-clock and
    CPU seconds, measured in that process. It lets ``per_iteration`` time one process's iteration
    next to each of a cluster's, on the same points from the same parameters. A process of its
    own, not this one, because this one runs the client's and the scheduler's event loop, whose
    threads would compete with the iteration for Python's interpreter lock.
    """

    def __init__(self, d: int, k: int, n: int):
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.pool = ProcessPoolExecutor(1, mp_context=context, initializer=_hold_sample,
                                        initargs=(d, k, n))

    def __call__(self, params) -> tuple[float, float]:
        return self.pool.submit(_one_iteration, params).result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown()


_HELD = {}


def _hold_sample(d: int, k: int, n: int) -> None:
    model, truth = problem(d, k)
    _HELD.update(model=model, X=sample(model, truth, n))
    threadpool_limits(1, user_api="blas")


def _one_iteration(params) -> tuple[float, float]:
    model, X = _HELD["model"], _HELD["X"]
    wall, cpu = time.perf_counter(), time.process_time()
    model.m_step(model.e_step(X, params)[0])
    return time.perf_counter() - wall, time.process_time() - cpu


#: The most rows a block holds: 80 MB at D = 10, near the 128 MiB Dask aims at by default
#: (``array.chunk-size``). Blocks of 200 000 rows gave five times the tasks, and two workers
#: reached 1.62 times one process's throughput instead of 1.78 (this script, one run each).
MAX_BLOCK_ROWS = 1_000_000


def chunk_rows(n: int) -> int:
    """Rows per block: an even number of blocks (at least 4) of at most ``MAX_BLOCK_ROWS`` rows.

    The same for every run, so every run sees the same points, and both workers of two get
    the same number of blocks.
    """
    blocks = 2 * max(2, -(-n // (2 * MAX_BLOCK_ROWS)))
    return -(-n // blocks)


def blas_threads() -> list[int]:
    return sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="the largest number of points")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5, help="iterations timed per fit")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    model, truth = problem(args.d, args.k)
    init = start_from(model, truth)
    sizes = [n for n in (10_000, 100_000, 1_000_000, 10_000_000) if n < args.n] + [args.n]
    bytes_per_row = 8 * args.d
    budget = psutil.virtual_memory().available / 4
    load_before = os.getloadavg()
    print(f"EM for a mixture of K = {args.k} full-covariance Gaussians in D = {args.d} dimensions; "
          f"{os.cpu_count()} cores; load average {load_before[0]:.2f} at the start")
    print("CAVEAT: timings on a shared machine are noisy; other jobs may be running. Every iteration "
          "of a cluster is timed next to one of a single process on the same points.")

    def fits_in_memory(n):
        if n * bytes_per_row <= budget:
            return True
        print(f"  N = {n:>11,}: one process skipped, {n * bytes_per_row / 2**30:.1f} GiB exceeds a "
              "quarter of the available memory")
        return False

    in_memory = []
    with threadpool_limits(1, user_api="blas"):
        print(f"one process (emlib.em), BLAS threads {blas_threads()}:")
        for n in filter(fits_in_memory, sizes):
            X = sample(model, truth, n)
            run = per_iteration(lambda **kw: emlib.em(model, X, init, tol=0, **kw), args.iters)
            del X
            in_memory.append({"n": n, **run})
            print(f"  N = {n:>11,}: {run['seconds_per_iteration']:8.3f} s per iteration "
                  f"(CPU {run['cpu_seconds_this_process']:.3f} s)")

    distributed_runs = []
    for workers in (1, 2):
        with ed.local_client(workers) as client:
            threads = {t for ts in client.run(blas_threads).values() for t in ts}
            with threadpool_limits(1, user_api="blas"):
                threads |= set(blas_threads())
            assert threads == {1}, f"one BLAS thread per process, not {threads}"
            print(f"{workers} worker process(es) (emlib.distributed.em, data held by the workers), "
                  "each iteration next to one of one process (emlib.em's, data in memory); every "
                  "process uses one BLAS thread:")
            for n in sizes:
                X = ed.lazy_sample(model, truth, n, seed=SEED, chunk_size=chunk_rows(n))
                with OneProcess(args.d, args.k, n) if fits_in_memory(n) else nullcontext() as single:
                    run = per_iteration(lambda **kw: ed.em(model, X, init, client=client, tol=0,
                                                           persist=True, **kw),
                                        args.iters, client, alongside=single)
                single = run.pop("alongside", None)
                if single is not None:
                    run["speedup"], run["speedups"] = run.pop("ratio"), run.pop("ratios")
                    run["one_process_seconds_per_iteration"] = single["seconds_per_iteration"]
                distributed_runs.append({"workers": workers, "n": n, "blocks": len(X.chunks[0]),
                                         "persist": True, **run})
                line = (f"  N = {n:>11,} in {len(X.chunks[0]):>3} blocks: {run['seconds_per_iteration']:8.3f} "
                        f"s per iteration (CPU: workers "
                        f"{', '.join(f'{c:.3f}' for c in run['cpu_seconds_per_worker'])} s, client and "
                        f"scheduler {run['cpu_seconds_this_process']:.3f} s)")
                if single is not None:
                    line += (f"; one process {single['seconds_per_iteration']:.3f} s: "
                             f"{run['speedup']:.2f}x")
                print(line)
            if workers == 2:
                X = ed.lazy_sample(model, truth, args.n, seed=SEED, chunk_size=chunk_rows(args.n))
                run = per_iteration(lambda **kw: ed.em(model, X, init, client=client, tol=0, **kw),
                                    args.iters, client)
                distributed_runs.append({"workers": 2, "n": args.n, "blocks": len(X.chunks[0]),
                                         "persist": False, **run})
                print(f"  N = {args.n:>11,}, blocks generated again at every pass: "
                      f"{run['seconds_per_iteration']:8.3f} s per iteration")
                X = ed.lazy_sample(model, truth, 1000, seed=SEED, chunk_size=500)
                fixed = per_iteration(lambda **kw: ed.em(model, X, init, client=client, tol=0,
                                                         persist=True, **kw), 20, client)
                print(f"  fixed cost: N = 1,000 in 2 blocks: {1e3 * fixed['seconds_per_iteration']:.1f} ms "
                      f"per iteration (median of 20; CPU of client and scheduler "
                      f"{1e3 * fixed['cpu_seconds_this_process']:.1f} ms)")
    load_after = os.getloadavg()

    def run_of(workers, n):
        return next(r for r in distributed_runs if r["workers"] == workers and r["n"] == n and r["persist"])

    print(f"load average {load_after[0]:.2f} at the end")
    summary = {}
    if in_memory:
        n_max = in_memory[-1]["n"]
        two, one = run_of(2, n_max), run_of(1, n_max)
        # What an otherwise idle machine would show: the workers run in parallel, so an iteration
        # takes about the busiest worker's CPU time plus the client's and scheduler's.
        projected = two["one_process_seconds_per_iteration"] / (max(two["cpu_seconds_per_worker"])
                                                                + two["cpu_seconds_this_process"])
        summary = {"n": n_max, "statistic": "median over the iterations of (one process's time for "
                                            "the iteration next to it) / (the cluster's)",
                   "speedup_2_workers": two["speedup"], "speedup_1_worker": one["speedup"],
                   "speedup_2_workers_from_cpu_times": projected}
        print(f"at N = {n_max:,}: 2 workers deliver {two['speedup']:.2f}x the throughput of one process "
              f"(goal >= 1.6; iteration by iteration {', '.join(f'{x:.2f}' for x in two['speedups'])}); "
              f"1 worker {one['speedup']:.2f}x (the cost of going through the cluster)")
        print(f"  from CPU times (one process's time / (busiest worker's CPU + client's)): "
              f"{projected:.2f}x, what an otherwise idle machine would show")
    print(f"fixed cost per iteration: {1e3 * fixed['seconds_per_iteration']:.1f} ms (goal < 50 ms)")

    results = {
        "description": "Seconds per EM iteration (E-step and M-step), Gaussian mixture with full "
                       "covariances; written by benchmarks/distributed_em.py",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "load_average_start": load_before[0], "load_average_end": load_after[0],
                    "blas_threads_per_process": 1},
        "setup": {"D": args.d, "K": args.k, "covariance_type": "full", "iterations_timed": args.iters,
                  "statistic": "median over the timed iterations",
                  "pairing": "the speed-ups compare every timed iteration on the cluster with one "
                             "of one process on the same points at the same parameters, run just "
                             "before it (one_process_seconds_per_iteration); in_memory holds fits "
                             "of one process on its own, for the figure",
                  "caveat": "measured on a shared machine while other jobs may have run; see the load "
                            "averages"},
        "in_memory": in_memory,
        "distributed": distributed_runs,
        "fixed_cost": {"workers": 2, "n": 1000, "blocks": 2, **fixed},
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
