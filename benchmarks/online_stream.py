"""Online EM on a stream: throughput, and peak memory that does not grow with the stream length.

Usage:  python benchmarks/online_stream.py [--n 10000000] [--batch-size 10000] [--seed 0]

Streams points from a two-component Gaussian mixture in two dimensions, generated batch by
batch from ``numpy.random.default_rng(seed)`` (the data never exist as a whole), through
``emlib.online_em``. It runs the stream at two lengths, n/10 and n, and prints for each the
peak memory traced by ``tracemalloc`` during the run and the process's maximum resident set
size afterwards, then the throughput of a run of length n without tracing (time includes
generating the data), and the distance of the final parameters to the truth.
"""
from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

import emlib

MODEL = emlib.GaussianMixture(2)
TRUTH = emlib.GaussianMixtureParams([0.35, 0.65], [[-2.0, 1.0], [1.5, -0.5]],
                                    [[[1.0, 0.3], [0.3, 0.6]], [[0.8, -0.2], [-0.2, 1.2]]])
INIT = emlib.GaussianMixtureParams([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], np.stack([2.0 * np.eye(2)] * 2))


def stream(n: int, batch_size: int, seed: int):
    """Yield ceil(n / batch_size) fresh batches holding n points in all."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch_size):
        yield MODEL.sample(TRUTH, min(batch_size, n - start), rng)[0]


def distance(a, b) -> float:
    vec = [np.concatenate([p.weights.ravel(), p.means.ravel(), p.covariances.ravel()]) for p in (a, b)]
    return float(np.linalg.norm(vec[0] - vec[1]))


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kilobytes


def traced_run(n: int, batch_size: int, seed: int):
    tracemalloc.start()
    result = emlib.online_em(MODEL, stream(n, batch_size, seed), INIT)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="points in the long stream")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_long, bs = args.n, args.batch_size
    n_short = max(n_long // 10, bs)

    print(f"online EM, 2-D mixture of 2 Gaussians, batches of {bs:,} points, alpha = 0.6")
    print(f"(holding the long stream in memory would take {n_long * 2 * 8 / 2**20:,.0f} MiB)")
    print(f"{'points':>12} {'batches':>8} {'tracemalloc peak':>17} {'max RSS after':>14}")
    peaks = []
    for n in (n_short, n_long):
        result, peak = traced_run(n, bs, args.seed)
        peaks.append(peak)
        print(f"{n:>12,} {result.n_batches:>8,} {peak:>13.2f} MiB {max_rss_mib():>10.1f} MiB")
    print(f"peak memory ratio (long / short stream, {n_long // n_short}x the points): {peaks[1] / peaks[0]:.3f}")

    start = time.perf_counter()
    result = emlib.online_em(MODEL, stream(n_long, bs, args.seed), INIT)
    seconds = time.perf_counter() - start
    print(f"untraced run of {n_long:,} points: {seconds:.2f} s, {n_long / seconds / 1e6:.2f} million points per second "
          "(including generating the data)")
    print(f"distance of the final parameters to the truth: {distance(result.params, TRUTH):.5f}; "
          f"last prequential score: {result.log_likelihood[-1]:.4f} per point")


if __name__ == "__main__":
    main()
