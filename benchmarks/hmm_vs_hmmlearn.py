"""emlib's Baum-Welch against hmmlearn's GaussianHMM: same data, same start, same iterations.

Usage:  python benchmarks/hmm_vs_hmmlearn.py [--iters 5] [--repeats 3] [--sweep]

Two cases, K = 4 states, D = 3, full covariances:
  (a) 1,000 sequences of length 100 (many short sequences);
  (b) one sequence of length 100,000 (one long sequence).
Both libraries start from identical parameters, run with tol switched off for the same number
of iterations, and must end at the same parameters and log-likelihood (relative difference
below 1e-8, checked, else the script fails). emlib runs with reg_covar=0 and hmmlearn with
covars_prior=0, so both compute exact EM. hmmlearn's forward-backward is compiled; it offers a
log-space and a scaled implementation, and the faster of the two is the reference. For emlib,
"auto" (what a user gets) is timed, and the time loop and the parallel-prefix scan separately.
Printed: milliseconds per iteration (best of --repeats) and the ratio hmmlearn / emlib (above 1:
emlib is faster).

--sweep also times one forward-backward pass of the loop and of the scan over a grid of
(number of sequences, length): the measurement behind emlib's automatic choice.

Timings on a shared machine are noisy; compare ratios from one run, not across runs.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
from hmmlearn.hmm import GaussianHMM as HmmlearnGaussianHMM

import emlib
from emlib.models.hmm import _Batch, _as_sequences
from _timing import best_time

K, D = 4, 3


def true_params() -> emlib.GaussianHMMParams:
    rng = np.random.default_rng(0)
    transition = 0.85 * np.eye(K) + 0.15 * rng.dirichlet(np.ones(K), size=K)
    means = rng.normal(scale=2.0, size=(K, D))
    factors = rng.normal(scale=0.4, size=(K, D, D))
    covariances = factors @ factors.transpose(0, 2, 1) + np.eye(D)
    return emlib.GaussianHMMParams(np.full(K, 1 / K), transition, means, covariances)


def rel_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def compare(name: str, lengths: list[int], iters: int, repeats: int) -> None:
    model = emlib.GaussianHMM(K, "full", reg_covar=0.0)
    sequences, _ = model.sample(true_params(), lengths, np.random.default_rng(1))
    init = model.init_params(sequences, np.random.default_rng(2))
    X = np.concatenate(sequences)
    data = model.check_data(sequences)

    def run_hmmlearn(implementation):
        h = HmmlearnGaussianHMM(K, "full", init_params="", params="stmc", n_iter=iters, tol=-np.inf,
                                covars_prior=0.0, implementation=implementation)
        h.startprob_, h.transmat_ = init.start, init.transition
        h.means_, h.covars_ = init.means, init.covariances
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return h.fit(X, lengths)

    times = {}
    for implementation in ("log", "scaling"):
        times[f"hmmlearn {implementation}"], theirs = best_time(lambda: run_hmmlearn(implementation), repeats)
    for method in ("auto", "loop", "scan"):
        model.method = method
        times[f"emlib {method}"], ours = best_time(
            lambda: emlib.em(model, data, init, max_iter=iters, tol=0), repeats)
        p = ours.params
        diffs = [rel_diff(p.start, theirs.startprob_), rel_diff(p.transition, theirs.transmat_),
                 rel_diff(p.means, theirs.means_), rel_diff(p.covariances, theirs.covars_),
                 abs(ours.log_likelihood[-1] - theirs.score(X, lengths)) / abs(ours.log_likelihood[-1])]
        assert max(diffs) < 1e-8, f"{name}, emlib {method}: results differ from hmmlearn by {max(diffs):.2g}"
    reference = min(times["hmmlearn log"], times["hmmlearn scaling"])
    print(f"\n{name}: {len(lengths)} sequence(s), N = {sum(lengths)}, K = {K}, D = {D}, full covariances, "
          f"{iters} iterations, best of {repeats}; results agree (max relative difference < 1e-8)")
    for label, t in times.items():
        print(f"  {label:18} {1e3 * t / iters:9.1f} ms/iteration   hmmlearn(best) / this = {reference / t:6.2f}")
    print(f"  ratio for the goal: hmmlearn(best) / emlib auto = {reference / times['emlib auto']:.2f}")


def sweep(repeats: int) -> None:
    """One forward-backward pass, loop against scan, over (number of sequences, length)."""
    from emlib.models import hmm as hmm_module
    params = true_params()
    model = emlib.GaussianHMM(K, "full")
    rng = np.random.default_rng(3)
    print("\nforward-backward pass (ms): loop / scan, by number of sequences S and length T")
    widths, lengths = (1, 2, 4, 8, 16, 64), (64, 256, 1024, 8192, 65536)
    print("      S " + "".join(f"{f'T={T}':>22}" for T in lengths))
    for S in widths:
        row = []
        for T in lengths:
            if S * T > 2_000_000:
                row.append(f"{'-':>22}")
                continue
            seqs = _as_sequences(list(rng.normal(size=(S, T, D))))
            batch = _Batch(seqs.lengths)
            log_b = model._log_b(seqs, params)
            b = batch.gather(np.exp(log_b - log_b.max(axis=1, keepdims=True)), 0.0)
            t_loop, _ = best_time(lambda: hmm_module._loop_messages(b, params, batch, True), repeats)
            t_scan, _ = best_time(lambda: hmm_module._scan_messages(b, params, batch, True), repeats)
            row.append(f"{1e3 * t_loop:10.1f} /{1e3 * t_scan:9.1f}")
        print(f"  {S:5d} " + "".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    compare("(a) many short sequences", [100] * 1000, args.iters, args.repeats)
    compare("(b) one long sequence", [100_000], args.iters, args.repeats)
    if args.sweep:
        sweep(args.repeats)


if __name__ == "__main__":
    main()
