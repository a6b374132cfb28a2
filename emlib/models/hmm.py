"""The Gaussian hidden Markov model: forward-backward, Viterbi and the Baum-Welch M-step.

Book: chapter "Hidden Markov models" derives every formula here. A sequence x_1, ..., x_T
(rows of a (T, D) array) is emitted by a hidden Markov chain z_1, ..., z_T over K states:

    p(z_1 = k) = pi_k,   p(z_t = j | z_{t-1} = i) = A_ij,   x_t | z_t = k ~ N(mu_k, Sigma_k).

The E-step needs the posterior marginals gamma_t(k) = p(z_t = k | x) and the expected
transition counts sum_t xi_t(i, j), xi_t(i, j) = p(z_{t-1} = i, z_t = j | x) (equations
``hidden_markov-gamma`` and ``hidden_markov-xi``). With them the expected sufficient statistics
are

    s_k = sum_sequences gamma_1(k)        (expected initial-state counts)
    n_ij = sum_sequences sum_t xi_t(i, j)  (expected transition counts)
    N_k, S1_k, S2_k                       (the Gaussian-mixture statistics, weighted by gamma)

and the M-step (``hidden_markov-mstep``) is pi_k = s_k / S, A_ij = n_ij / sum_j n_ij, and the
Gaussian-mixture M-step for the means and covariances. The emission densities, the emission
statistics and their M-step are those of :class:`emlib.GaussianMixture`, called, not rewritten.

Forward-backward is computed with normalized messages (the scaled recursions,
``hidden_markov-scaled``): emission densities are divided by their largest value at each time
point, every forward message is normalized to sum to one, and log p(x | theta) is the sum of the
logarithms of the normalizers. Two implementations give the same numbers:

- ``"loop"``: one Python-level step per time point, all sequences advancing together (sorted
  by length, so the sequences still running at time t are the first rows of the batch);
- ``"scan"``: the forward messages are products of K x K matrices M_t = A diag(b_t), and
  matrix products are associative, so all prefix (and suffix) products come out of a
  parallel-prefix scan in O(log T) vectorized passes (temporal parallelization, Sarkka and
  Garcia-Fernandez 2021); products are renormalized as they are formed, with their log scale
  carried along.

``method="auto"`` takes the scan for long batches of few sequences and the loop otherwise
(measured with benchmarks/hmm_vs_hmmlearn.py --sweep). If a normalizer underflows to zero (a state
that the chain allows has negligible density and every state it could be in has none), the
affected computation is repeated in log space, which cannot underflow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from .._validation import as_data_matrix, as_float_array, check_generator, check_probability_vector
from .gaussian_mixture import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats

_METHODS = ("auto", "loop", "scan")
#: The scan replaces a Python step per time point by about 2 log2(T) vectorized passes but does
#: about K times more arithmetic (matrix-matrix instead of vector-matrix products). It wins for
#: long batches of few sequences: measured with ``benchmarks/hmm_vs_hmmlearn.py --sweep`` (K = 4)
#: on a 2-core machine, the scan was faster for up to 16 sequences side by side from T = 64 on,
#: the loop for 64 sequences and more.
_SCAN_MIN_LENGTH = 64
_SCAN_MAX_WORK = 64          # at most _SCAN_MAX_WORK // K sequences go through the scan together


# ---------------------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class Sequences:
    """Observed sequences, checked: the rows of all sequences one after another, and their lengths.

    Attributes
    ----------
    X : ndarray, shape (N, D)
        The observations of all sequences concatenated (N = sum of the lengths).
    lengths : ndarray of int, shape (S,)
        T_1, ..., T_S, each at least 1.
    """

    X: np.ndarray
    lengths: np.ndarray

    @property
    def n_sequences(self) -> int:
        """S, the number of sequences."""
        return int(self.lengths.size)

    @property
    def offsets(self) -> np.ndarray:
        """Row of ``X`` where each sequence starts, shape (S,)."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.intp)

    def split(self, values=None) -> list[np.ndarray]:
        """``values`` (default ``X``), an array with one row per observation, cut into sequences."""
        values = self.X if values is None else np.asarray(values)
        return np.split(values, np.cumsum(self.lengths)[:-1])


def _as_sequences(X) -> Sequences:
    """One (T, D) array, a (S, T, D) array, or a sequence of (T_i, D) arrays, as checked Sequences."""
    if isinstance(X, Sequences):
        return X
    if isinstance(X, np.ndarray) and X.ndim == 3:
        X = list(X)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list of sequences; give at least one (T, D) array.")
        parts = []
        for i, part in enumerate(X):
            arr = np.asarray(part, dtype=float) if not isinstance(part, np.ndarray) else part
            if arr.ndim == 2 and arr.shape[0] == 0:
                raise ValueError(f"sequence {i} is empty (shape {arr.shape}); every sequence needs at "
                                 "least one observation. Drop the empty sequences.")
            parts.append(as_data_matrix(arr, name=f"sequence {i}"))
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            raise ValueError(f"the sequences have different numbers of columns {sorted(widths)}; every "
                             "sequence must have the same D.")
        return Sequences(np.concatenate(parts), np.array([p.shape[0] for p in parts], dtype=np.intp))
    arr = np.asarray(X, dtype=float) if not isinstance(X, np.ndarray) else X
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError(f"the sequence is empty (shape {arr.shape}); it needs at least one observation.")
    if arr.ndim == 1:
        raise ValueError(f"X must be a (T, D) array, a list of them, or a (S, T, D) array; got shape "
                         f"{arr.shape}. Use x.reshape(-1, 1) for one variable observed over time.")
    arr = as_data_matrix(arr)
    return Sequences(arr, np.array([arr.shape[0]], dtype=np.intp))


# ---------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class GaussianHMMParams:
    """Parameters theta = (pi, A, mu, Sigma) of a K-state Gaussian hidden Markov model.

    Parameters
    ----------
    start : array_like, shape (K,)
        Initial-state probabilities pi_k = p(z_1 = k): non-negative, summing to one.
    transition : array_like, shape (K, K)
        Transition probabilities A_ij = p(z_t = j | z_{t-1} = i): non-negative, each row
        summing to one.
    means : array_like, shape (K, D)
        Emission means mu_k.
    covariances : array_like, shape (K, D, D) or (K, D)
        Emission covariances Sigma_k (symmetric positive definite), or the diagonals of diagonal
        ones (positive).

    Sums within 1e-8 of one are accepted and then divided by their sum, so that an extrapolated
    point (SQUAREM) is an exact probability vector.
    """

    start: np.ndarray
    transition: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        start = as_float_array(self.start, (None,), "start")
        K = start.shape[0]
        transition = as_float_array(self.transition, (K, K), "transition")
        check_probability_vector(start, "start")
        if np.any(transition < 0):
            i, j = np.argwhere(transition < 0)[0]
            raise ValueError(f"transition probabilities must be non-negative; transition[{i}, {j}] = "
                             f"{transition[i, j]:.6g}.")
        sums = transition.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-8)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"row {i} of transition sums to {sums[i]:.10g}, not one: row i holds the "
                             f"probabilities of moving from state i to each state, so every row must sum "
                             f"to one. Divide each row by its sum (transition / transition.sum(axis=1, "
                             f"keepdims=True)).")
        start = _exact_rows(start)
        transition = _exact_rows(transition)
        # The emission part is a Gaussian mixture's means and covariances: validated by its class.
        emissions = GaussianMixtureParams(np.full(K, 1.0 / K), self.means, self.covariances)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "transition", transition)
        object.__setattr__(self, "means", emissions.means)
        object.__setattr__(self, "covariances", emissions.covariances)
        object.__setattr__(self, "_emissions", emissions)

    @property
    def emissions(self) -> GaussianMixtureParams:
        """The emission densities as Gaussian-mixture parameters (with equal weights 1/K)."""
        return self._emissions

    @property
    def n_states(self) -> int:
        """K, the number of hidden states."""
        return self.start.shape[0]

    @property
    def n_features(self) -> int:
        """D, the dimension of an observation."""
        return self.means.shape[1]

    @property
    def covariance_type(self) -> str:
        """``"full"`` for (K, D, D) covariances, ``"diag"`` for (K, D)."""
        return self._emissions.covariance_type


def _exact_rows(p: np.ndarray) -> np.ndarray:
    """Probabilities whose (last-axis) sums are within 1e-8 of one, divided by their sums."""
    sums = p.sum(axis=-1, keepdims=True)
    if np.all(sums == 1.0):
        return p
    out = p / sums
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------------- E-step quantities
@dataclass(frozen=True)
class GaussianHMMStats:
    """Expected sufficient statistics of a Gaussian HMM, summed over time and sequences.

    Additive (``a + b`` gives the statistics of the union of two sets of sequences) and
    scalable (``c * a``).

    Attributes
    ----------
    start : ndarray, shape (K,)
        s_k = sum over sequences of gamma_1(k), the expected number of sequences starting in k.
    transitions : ndarray, shape (K, K)
        n_ij = sum over sequences and t >= 2 of xi_t(i, j), the expected number of i -> j moves.
    emissions : GaussianMixtureStats
        N_k, S1_k, S2_k of the Gaussian mixture, with the weights gamma_t(k).
    """

    start: np.ndarray
    transitions: np.ndarray
    emissions: GaussianMixtureStats

    def __add__(self, other: "GaussianHMMStats") -> "GaussianHMMStats":
        if not isinstance(other, GaussianHMMStats):
            return NotImplemented
        return GaussianHMMStats(self.start + other.start, self.transitions + other.transitions,
                                self.emissions + other.emissions)

    def __mul__(self, scale: float) -> "GaussianHMMStats":
        return GaussianHMMStats(scale * self.start, scale * self.transitions, scale * self.emissions)

    __rmul__ = __mul__


@dataclass(frozen=True)
class GaussianHMMPosterior:
    """What the E-step needs of the posterior p(z | x, theta) of the hidden paths.

    Attributes
    ----------
    state : ndarray, shape (N, K)
        gamma_t(k) = p(z_t = k | x, theta) for every observation (rows in the order of the
        concatenated data); rows sum to one.
    transitions : ndarray, shape (K, K)
        sum over sequences and t >= 2 of xi_t(i, j) = p(z_{t-1} = i, z_t = j | x, theta).
    log_likelihood : ndarray, shape (S,)
        log p(x_s | theta) of each sequence, a by-product of the forward pass.
    """

    state: np.ndarray
    transitions: np.ndarray
    log_likelihood: np.ndarray


class ViterbiPath(NamedTuple):
    """The most probable hidden path and its log joint probability."""

    path: np.ndarray       #: int, shape (N,): argmax_z p(z | x, theta), sequences concatenated
    log_prob: float        #: log p(x, z* | theta) = max_z log p(x, z | theta), summed over sequences


class _Batch:
    """A group of sequences laid out for the message passes: padded, time-major, longest first.

    ``index[t, s]`` is the row of the concatenated data at time t of the s-th longest sequence
    of the group, or -1 after its end; ``active[t]`` is the number of sequences still running at
    time t (the first ``active[t]`` columns, since the columns are sorted by length).

    Parameters
    ----------
    lengths, offsets : ndarray of int, shape (S,)
        Length of each sequence of the group and the row where it starts in the data.
    """

    def __init__(self, lengths: np.ndarray, offsets: np.ndarray | None = None):
        if offsets is None:
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        T = int(sorted_lengths[0])
        t = np.arange(T)[:, None]
        self.valid = t < sorted_lengths[None, :]                             # (T, S)
        self.index = np.where(self.valid, offsets[order][None, :] + t, -1)  # (T, S)
        self.active = self.valid.sum(axis=1)                                 # (T,), non-increasing
        self.order = order
        self.lengths = sorted_lengths
        self.T, self.S = T, lengths.size
        # equal lengths stored one after another: gather and scatter are reshapes
        self.first = int(offsets[0])
        self.equal = bool(np.all(lengths == T) and np.all(offsets == self.first + T * np.arange(self.S)))

    def gather(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Rows of ``values`` (N, K) placed at (t, s), shape (T, S, K); ``fill`` after the ends."""
        if self.equal:
            block = values[self.first:self.first + self.S * self.T]
            return np.ascontiguousarray(np.reshape(block, (self.S, self.T, -1)).transpose(1, 0, 2))
        out = values[np.maximum(self.index, 0)]
        out[~self.valid] = fill
        return out

    def scatter(self, padded: np.ndarray, out: np.ndarray) -> None:
        """The inverse of :meth:`gather`: (T, S, K) back into the rows (N, K) of ``out``."""
        if self.equal:
            out[self.first:self.first + self.S * self.T] = padded.transpose(1, 0, 2).reshape(-1, out.shape[1])
        else:
            out[self.index[self.valid]] = padded[self.valid]


def _groups(lengths: np.ndarray, method: str, K: int) -> list[tuple[str, np.ndarray]]:
    """Which sequences go through which message pass: [(method, indices)].

    ``"auto"``: the longest sequences, at most ``_SCAN_MAX_WORK // K`` of them and each of at
    least ``_SCAN_MIN_LENGTH`` points, go through the scan; the others through the time loop,
    which is faster for many sequences side by side.
    """
    everything = np.arange(lengths.size)
    if method != "auto":
        return [(method, everything)]
    longest = np.argsort(-lengths, kind="stable")[:max(1, _SCAN_MAX_WORK // K)]
    long_ = np.sort(longest[lengths[longest] >= _SCAN_MIN_LENGTH])
    rest = np.setdiff1d(everything, long_)
    return [(m, idx) for m, idx in (("scan", long_), ("loop", rest)) if idx.size]


# ------------------------------------------------------------------------------------ the model
class GaussianHMM:
    """A hidden Markov model with K states and Gaussian emissions, fitted by Baum-Welch (EM).

    Parameters
    ----------
    n_states : int
        K, the number of hidden states.
    covariance_type : {"full", "diag"}
        Full emission covariance matrices, or diagonal ones.
    reg_covar : float
        Non-negative number added to the diagonal of every emission covariance in the M-step,
        exactly as in :class:`emlib.GaussianMixture` (whose M-step is used).
    method : {"auto", "loop", "scan"}
        How forward-backward runs: one vectorized step per time point for all sequences
        together (``"loop"``), a parallel-prefix scan over time (``"scan"``), or the faster of
        the two for the data at hand (``"auto"``). All give the same results up to rounding.

    Notes
    -----
    Data are one sequence, a (T, D) array, or several independent sequences: a list of
    (T_i, D) arrays of any lengths T_i >= 1, or a (S, T, D) array. :meth:`check_data` turns
    them into :class:`Sequences`, which every other method also accepts.
    """

    def __init__(self, n_states: int, covariance_type: str = "full", reg_covar: float = 1e-6,
                 *, method: str = "auto"):
        if not isinstance(n_states, (int, np.integer)) or isinstance(n_states, bool) or n_states < 1:
            raise ValueError(f"n_states must be a positive integer; got {n_states!r}.")
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
        # The emission model: its densities, statistics and M-step are the HMM's.
        self._emission = GaussianMixture(int(n_states), covariance_type, reg_covar)
        self.n_states = int(n_states)
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)
        self.method = method

    def __repr__(self) -> str:
        return (f"GaussianHMM(n_states={self.n_states}, covariance_type={self.covariance_type!r}, "
                f"reg_covar={self.reg_covar!r})")

    # ------------------------------------------------------------------ validation
    def check_data(self, X) -> Sequences:
        """Sequences to fit: at least K observations in all, no NaN; or a ``ValueError``.

        Parameters
        ----------
        X : array_like (T, D), list of array_like (T_i, D), array_like (S, T, D), or Sequences
        """
        seqs = _as_sequences(X)
        if seqs.X.shape[0] < self.n_states:
            raise ValueError(f"the sequences hold {seqs.X.shape[0]} observations in all, fewer than the "
                             f"{self.n_states} states; use fewer states or more data.")
        return seqs

    def check_params(self, params, X=None) -> GaussianHMMParams:
        """Raise ``ValueError`` unless ``params`` fit this model (and the data ``X``, if given)."""
        if not isinstance(params, GaussianHMMParams):
            raise ValueError(f"params must be GaussianHMMParams; got {type(params).__name__}.")
        if params.n_states != self.n_states:
            raise ValueError(f"params have {params.n_states} states but the model has {self.n_states}; "
                             "make them agree.")
        if params.covariance_type != self.covariance_type:
            raise ValueError(f"params have {params.covariance_type} covariances but the model expects "
                             f"{self.covariance_type!r} (shape (K, D, D) for full, (K, D) for diag).")
        if X is not None:
            D = _as_sequences(X).X.shape[1]
            if params.n_features != D:
                raise ValueError(f"params are for D = {params.n_features} dimensions but the data have "
                                 f"{D} columns.")
        return params

    def _prepare(self, X, params) -> tuple[Sequences, GaussianHMMParams]:
        seqs = _as_sequences(X)
        return seqs, self.check_params(params, seqs)

    # ------------------------------------------------------------------ emissions
    def emission_log_density(self, X, params: GaussianHMMParams) -> np.ndarray:
        """log N(x_t | mu_k, Sigma_k) for every observation and state, shape (N, K).

        Computed by :meth:`emlib.GaussianMixture.log_joint` with equal weights 1/K, whose
        logarithm is added back.
        """
        seqs, params = self._prepare(X, params)
        return self._log_b(seqs, params)

    def _log_b(self, seqs: Sequences, params: GaussianHMMParams) -> np.ndarray:
        log_b = self._emission.log_joint(seqs.X, params.emissions)   # log(1/K) + log N
        return log_b + np.log(self.n_states)

    def complete_log_likelihood(self, X, params: GaussianHMMParams, path) -> float:
        """log p(x, z | theta) for a given hidden path z (equation ``hidden_markov-complete``).

        Parameters
        ----------
        path : array_like of int, shape (N,)
            A state for every observation, sequences concatenated.
        """
        seqs, params = self._prepare(X, params)
        path = self._check_path(path, seqs)
        log_b = self._log_b(seqs, params)
        first = np.zeros(seqs.X.shape[0], dtype=bool)
        first[seqs.offsets] = True
        with np.errstate(divide="ignore"):
            total = np.log(params.start[path[first]]).sum()
            total += np.log(params.transition[path[:-1][~first[1:]], path[1:][~first[1:]]]).sum()
        return float(total + log_b[np.arange(path.size), path].sum())

    def _check_path(self, path, seqs: Sequences) -> np.ndarray:
        path = np.asarray(path)
        if path.shape != (seqs.X.shape[0],) or not np.issubdtype(path.dtype, np.integer):
            raise ValueError(f"a path must be an integer array of shape (N,) = ({seqs.X.shape[0]},); "
                             f"got {path.dtype} of shape {path.shape}.")
        if path.size and (path.min() < 0 or path.max() >= self.n_states):
            raise ValueError(f"path states must lie in 0..{self.n_states - 1}.")
        return path

    # ------------------------------------------------------------------ forward-backward
    def _forward_backward(self, seqs: Sequences, params: GaussianHMMParams, *, backward: bool = True):
        """gamma (N, K), the summed xi (K, K) and log p(x_s | theta) (S,), or only the last.

        Runs in scaled form (loop or scan, by groups of sequences); a group in which a
        normalizer underflowed is repeated in log space.
        """
        log_b = self._log_b(seqs, params)
        shift = log_b.max(axis=1, keepdims=True)
        b_all = np.exp(log_b - shift)                                 # largest entry 1 per row
        N, K = log_b.shape
        gamma = np.empty((N, K)) if backward else None
        xi = np.zeros((K, K))
        loglik = np.empty(seqs.n_sequences)
        offsets = seqs.offsets
        for method, idx in _groups(seqs.lengths, self.method, K):
            batch = _Batch(seqs.lengths[idx], offsets[idx])
            b = batch.gather(b_all, 0.0)                                # (T, S, K)
            offset = batch.gather(shift, 0.0)[..., 0].sum(axis=0)       # (S,) sum_t max_k log b_t(k)
            messages = _scan_messages if method == "scan" else _loop_messages
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                alpha, beta, log_norm = messages(b, params, batch, backward)
                group_loglik = log_norm + offset                        # NaN if a message vanished
                ok = bool(np.all(np.isfinite(group_loglik)))
                if ok and backward:
                    group_gamma, group_xi = _smooth(alpha, beta, b, params.transition, batch)
                    ok = group_gamma is not None and bool(np.all(np.isfinite(group_xi)))
            if not ok:
                group_gamma, group_xi, group_loglik = _log_space_messages(
                    batch.gather(log_b, -np.inf), params, batch, backward)
                bad = ~np.isfinite(group_loglik)
                if np.any(bad):
                    s = int(idx[batch.order[np.flatnonzero(bad)[0]]])
                    raise ValueError(
                        f"sequence {s} has probability zero under these parameters (in floating "
                        "point): no hidden path that the start and transition probabilities allow "
                        "gives its observations a positive density. A zero in start or transition "
                        "forbids a state for good (and Baum-Welch never makes it positive again): "
                        "make those probabilities positive, or widen the covariances.")
            loglik[idx[batch.order]] = group_loglik
            if backward:
                batch.scatter(group_gamma, gamma)
                xi += group_xi
        if not backward:
            return loglik
        return gamma, xi, loglik

    def posterior(self, X, params: GaussianHMMParams) -> GaussianHMMPosterior:
        """The E-step's q: state marginals gamma (N, K) and expected transition counts (K, K).

        Forward-backward (equations ``hidden_markov-alpha`` to ``hidden_markov-xi``).
        """
        seqs, params = self._prepare(X, params)
        gamma, xi, loglik = self._forward_backward(seqs, params)
        return GaussianHMMPosterior(gamma, xi, loglik)

    def log_likelihood(self, X, params: GaussianHMMParams) -> float:
        """log p(X | theta), summed over sequences, by the forward pass alone."""
        return float(self.log_likelihood_per_sequence(X, params).sum())

    def log_likelihood_per_sequence(self, X, params: GaussianHMMParams) -> np.ndarray:
        """log p(x_s | theta) for each sequence, shape (S,)."""
        seqs, params = self._prepare(X, params)
        return self._forward_backward(seqs, params, backward=False)

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, q) -> GaussianHMMStats:
        """Expected sufficient statistics for the sequences ``X`` under q.

        Parameters
        ----------
        q : GaussianHMMPosterior or array_like of int, shape (N,)
            The posterior from :meth:`posterior` (EM), or one hidden path, e.g. the Viterbi path
            (hard EM / classification EM): its one-hot states and counted transitions.
        """
        seqs = _as_sequences(X)
        K = self.n_states
        if isinstance(q, GaussianHMMPosterior):
            gamma, transitions = np.asarray(q.state, dtype=float), np.asarray(q.transitions, dtype=float)
            if gamma.shape != (seqs.X.shape[0], K) or transitions.shape != (K, K):
                raise ValueError(f"q.state must have shape (N, K) = {(seqs.X.shape[0], K)} and "
                                 f"q.transitions ({K}, {K}); got {gamma.shape} and {transitions.shape}.")
        else:
            path = self._check_path(q, seqs)
            gamma = np.eye(K)[path]
            inside = np.ones(path.size, dtype=bool)
            inside[seqs.offsets] = False                   # t >= 2 within its sequence
            transitions = np.zeros((K, K))
            np.add.at(transitions, (path[:-1][inside[1:]], path[1:][inside[1:]]), 1.0)
        start = gamma[seqs.offsets].sum(axis=0)
        return GaussianHMMStats(start, transitions, self._emission.expected_stats(seqs.X, gamma))

    def e_step(self, X, params: GaussianHMMParams) -> tuple[GaussianHMMStats, float]:
        """Forward-backward and the expected statistics in one pass.

        Returns
        -------
        stats : GaussianHMMStats
        log_likelihood : float
            log p(X | theta), summed over sequences.
        """
        seqs, params = self._prepare(X, params)
        gamma, xi, loglik = self._forward_backward(seqs, params)
        start = gamma[seqs.offsets].sum(axis=0)
        stats = GaussianHMMStats(start, xi, self._emission.expected_stats(seqs.X, gamma))
        return stats, float(loglik.sum())

    def m_step(self, stats: GaussianHMMStats) -> GaussianHMMParams:
        """argmax_theta Q(theta | theta_t) in closed form (equation ``hidden_markov-mstep``).

        Raises
        ------
        ValueError
            If a state is never left in expectation (its transition row is 0/0), or receives no
            responsibility at all (its mean is undefined).
        """
        out = stats.transitions.sum(axis=1)
        tiny = 10 * np.finfo(float).eps * max(float(stats.emissions.counts.sum()), 1.0)
        never_left = np.flatnonzero(out <= tiny)
        if never_left.size:
            raise ValueError(
                f"state(s) {never_left.tolist()} are never left in expectation (their expected "
                "transition counts are zero), so their transition rows are undefined. Start from "
                "other parameters or use fewer states.")
        start = stats.start / stats.start.sum()
        transition = stats.transitions / out[:, None]
        try:
            emissions = self._emission.m_step(stats.emissions)
        except ValueError as exc:
            raise ValueError(f"emission M-step (a component is a hidden state): {exc}") from None
        return GaussianHMMParams(start, transition, emissions.means, emissions.covariances)

    # ------------------------------------------------------------------ decoding
    def viterbi(self, X, params: GaussianHMMParams) -> ViterbiPath:
        """The most probable hidden path, argmax_z p(z | x, theta), by max-product in log space.

        All sequences advance together through one time loop; ties go to the lowest state.

        Returns
        -------
        ViterbiPath
            ``path`` (N,) of int and ``log_prob`` = log p(x, z* | theta), summed over sequences.
        """
        seqs, params = self._prepare(X, params)
        batch = _Batch(seqs.lengths)
        log_b = batch.gather(self._log_b(seqs, params), 0.0)
        with np.errstate(divide="ignore"):
            log_a = np.log(params.transition)
            delta = np.log(params.start) + log_b[0]                    # (S, K)
        back = np.zeros((batch.T, batch.S, self.n_states), dtype=np.intp)
        for t in range(1, batch.T):
            n = batch.active[t]
            scores = delta[:n, :, None] + log_a                        # (n, K_from, K_to)
            back[t, :n] = scores.argmax(axis=1)
            delta[:n] = np.take_along_axis(scores, back[t, :n, None, :], axis=1)[:, 0] + log_b[t, :n]
        best = delta.argmax(axis=1)
        log_prob = float(delta[np.arange(batch.S), best].sum())
        if not np.isfinite(log_prob):
            raise ValueError("some sequence has probability zero under these parameters: no path that "
                             "start and transition allow fits it; make those probabilities positive.")
        states = np.zeros((batch.T, batch.S), dtype=np.intp)
        last = batch.lengths - 1
        states[last, np.arange(batch.S)] = best
        for t in range(batch.T - 2, -1, -1):
            n = batch.active[t + 1]
            states[t, :n] = back[t + 1, np.arange(n), states[t + 1, :n]]
        path = np.empty(seqs.X.shape[0], dtype=np.intp)
        path[batch.index[batch.valid]] = states[batch.valid]
        return ViterbiPath(path, log_prob)

    # ------------------------------------------------------------------ starting and sampling
    def init_params(self, X, rng: np.random.Generator) -> GaussianHMMParams:
        """A starting point theta_0: the Gaussian-mixture start for the emissions, uniform chains.

        Means by k-means++ seeding and covariances equal to the data's (plus ``reg_covar``), as in
        :meth:`emlib.GaussianMixture.init_params` on all observations; start and every row of the
        transition matrix uniform, 1/K (no zeros: Baum-Welch never moves a zero).
        """
        seqs = self.check_data(X)
        emissions = self._emission.init_params(seqs.X, check_generator(rng))
        K = self.n_states
        return GaussianHMMParams(np.full(K, 1.0 / K), np.full((K, K), 1.0 / K),
                                 emissions.means, emissions.covariances)

    def sample(self, params: GaussianHMMParams, lengths, rng: np.random.Generator):
        """Draw sequences of the given lengths from the model.

        Returns
        -------
        X : list of ndarray, shapes (T_i, D)
        z : list of ndarray of int, shapes (T_i,)
            The hidden states that emitted them.
        """
        self.check_params(params)
        rng = check_generator(rng)
        lengths = np.atleast_1d(np.asarray(lengths))
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or np.any(lengths < 1):
            raise ValueError(f"lengths must be positive integers; got {lengths.tolist()}.")
        K, T = self.n_states, int(lengths.max())
        cumulative = np.cumsum(params.transition, axis=1)
        z = np.empty((lengths.size, T), dtype=np.intp)
        z[:, 0] = rng.choice(K, size=lengths.size, p=params.start)
        for t in range(1, T):
            u = rng.random(lengths.size)
            z[:, t] = np.minimum((u[:, None] > cumulative[z[:, t - 1]]).sum(axis=1), K - 1)
        paths = [z[i, :n] for i, n in enumerate(lengths)]
        flat = np.concatenate(paths)
        noise = rng.standard_normal((flat.size, params.n_features))
        if params.covariance_type == "full":
            x = params.means[flat] + np.einsum("nij,nj->ni", np.linalg.cholesky(params.covariances)[flat], noise)
        else:
            x = params.means[flat] + noise * np.sqrt(params.covariances[flat])
        return np.split(x, np.cumsum(lengths)[:-1]), paths


# ---------------------------------------------------------------------- the message passes
def _loop_messages(b, params, batch, backward):
    """Normalized forward (and backward) messages, one vectorized step per time point.

    alpha[t, s] = p(z_t | x_1..t) (equation ``hidden_markov-scaled``); beta[t, s] proportional to
    p(x_t+1..T | z_t), normalized to sum to one; log_norm[s] = sum_t log c_t, with b scaled.
    """
    A = params.transition
    T, S, K = b.shape
    alpha = np.zeros((T, S, K))
    a = params.start * b[0]
    c = a.sum(axis=1)
    alpha[0] = a / c[:, None]
    log_norm = np.log(c)
    for t in range(1, T):
        n = batch.active[t]
        a = (alpha[t - 1, :n] @ A) * b[t, :n]
        c = a.sum(axis=1)
        alpha[t, :n] = a / c[:, None]
        log_norm[:n] += np.log(c)
    if not backward:
        return alpha, None, log_norm
    beta = np.full((T, S, K), 1.0 / K)
    for t in range(T - 2, -1, -1):
        n = batch.active[t + 1]
        v = (b[t + 1, :n] * beta[t + 1, :n]) @ A.T
        beta[t, :n] = v / v.sum(axis=1, keepdims=True)
    return alpha, beta, log_norm


def _unit_sums(v: np.ndarray) -> np.ndarray:
    """Sums over the last axis by one matrix product (faster than a reduction over a short axis)."""
    return v @ np.ones(v.shape[-1])


def _up_sweep(M: np.ndarray) -> list[np.ndarray]:
    """The reduction tree of a sequence of K x K matrices: level l + 1 holds the products of pairs.

    ``levels[0] = M``; ``levels[l + 1][i] = levels[l][2i] levels[l][2i + 1]`` (an odd last element
    stays unpaired at its level), each product divided by the sum of its entries so that long
    products neither underflow nor overflow. A normalized product represents the same linear map
    up to a positive factor, which the messages (normalized themselves) do not need.
    """
    levels = [M]
    while levels[-1].shape[0] > 1:
        E = levels[-1]
        m = E.shape[0] // 2
        P = E[0:2 * m:2] @ E[1:2 * m:2]
        P /= _unit_sums(P.reshape(P.shape[:-2] + (-1,)))[..., None, None]
        levels.append(P)
    return levels


def _prefix_vectors(v: np.ndarray, levels: list[np.ndarray], level: int = 0) -> np.ndarray:
    """u_t = v^T E_0 E_1 ... E_t for every t, normalized to sum one, from the tree (down-sweep).

    ``v`` has shape (S, K); ``levels[level]`` (m, S, K, K); returns (m, S, K). The prefixes at odd
    positions are the prefixes of the pairs one level up; each even position extends the prefix
    before it by one vector-matrix product.
    """
    E = levels[level]
    m = E.shape[0]
    out = np.empty(E.shape[:-1])
    out[0] = (v[:, None, :] @ E[0])[:, 0, :]
    if m > 1:
        out[1::2][: m // 2] = _prefix_vectors(v, levels, level + 1)
        if m > 2:
            out[2::2] = (out[1:m - 1:2][..., None, :] @ E[2::2])[..., 0, :]
    out /= _unit_sums(out)[..., None]
    return out


def _suffix_vectors(w: np.ndarray, levels: list[np.ndarray], level: int = 0) -> np.ndarray:
    """w_t = E_t E_t+1 ... E_m-1 w for every t, normalized to sum one (the mirror of the prefix)."""
    E = levels[level]
    m = E.shape[0]
    out = np.empty(E.shape[:-1])
    if m % 2:                                                   # the unpaired last element
        out[m - 1] = (E[m - 1] @ w[..., None])[..., 0]
        out[m - 1] /= _unit_sums(out[m - 1])[..., None]
        tail = out[m - 1]
    else:
        tail = w
    if m > 1:
        out[0:m - 1:2][: m // 2] = _suffix_vectors(tail, levels, level + 1)
        following = np.concatenate([out[2:m - 1:2], tail[None]])   # w_2i+2, or the tail
        out[1::2][: m // 2] = (E[1::2][: m // 2] @ following[..., None])[..., 0]
    out /= _unit_sums(out)[..., None]
    return out


def _scan_messages(b, params, batch, backward):
    """The same messages as :func:`_loop_messages`, from products of K x K matrices.

    With M_t = A diag(b_t) (the identity after a sequence's end) the forward message is
    proportional to alpha_1^T M_2 ... M_t and the backward one to M_t+1 ... M_T 1 (equation
    ``hidden_markov-products``). Matrix products are associative, so one reduction tree of
    pairwise products (about T matrix products in log2 T vectorized passes) serves both
    directions; the messages are then filled in down the tree by vector-matrix products
    (a parallel-prefix scan: Ladner and Fischer 1980; Blelloch 1990; for HMMs, Sarkka and
    Garcia-Fernandez 2021). The normalizers c_t come from the normalized messages afterwards.
    """
    A = params.transition
    T, S, K = b.shape
    alpha = np.empty((T, S, K))
    a0 = params.start * b[0]
    c0 = _unit_sums(a0)
    alpha[0] = a0 / c0[:, None]
    if T == 1:
        return alpha, np.full((T, S, K), 1.0 / K), np.log(c0)
    M = A * b[1:, :, None, :]                                   # (T-1, S, K, K)
    M[~batch.valid[1:]] = np.eye(K)
    levels = _up_sweep(M)
    alpha[1:] = _prefix_vectors(alpha[0], levels)
    c = _unit_sums((alpha[:-1] @ A) * b[1:])                    # c_t, t >= 2 (equation hidden_markov-scaled)
    log_norm = np.log(c0) + np.where(batch.valid[1:], np.log(np.where(batch.valid[1:], c, 1.0)), 0.0).sum(axis=0)
    if not backward:
        return alpha, None, log_norm
    beta = np.empty((T, S, K))
    beta[-1] = 1.0 / K
    beta[:-1] = _suffix_vectors(beta[-1], levels)
    return alpha, beta, log_norm


def _smooth(alpha, beta, b, A, batch):
    """gamma_t = alpha_t beta_t normalized; the summed xi_t(i, j) over valid t >= 2.

    xi_t(i, j) is proportional to alpha_t-1(i) A_ij b_t(j) beta_t(j) (equation
    ``hidden_markov-xi``); each is normalized by its own sum, so any scaling of the messages
    cancels. Returns None for both if a normalizer vanished (underflow).
    """
    K = A.shape[0]
    gamma = alpha * beta
    sums = _unit_sums(gamma)
    sums[~batch.valid] = 1.0
    if not np.all(sums > 0):
        return None, None
    gamma /= sums[..., None]
    if not batch.equal:
        gamma[~batch.valid] = 0.0
    if alpha.shape[0] == 1:
        return gamma, np.zeros((K, K))
    U = alpha[:-1].reshape(-1, K)                               # alpha_t-1
    W = (b[1:] * beta[1:]).reshape(-1, K)                       # b_t beta_t
    Z = _unit_sums((U @ A) * W)                                 # normalizer of each xi_t
    valid = batch.valid[1:].ravel()
    if not np.all(Z[valid] > 0):
        return None, None
    W *= np.where(valid, 1.0 / np.where(valid, Z, 1.0), 0.0)[:, None]
    return gamma, A * (U.T @ W)


def _log_space_messages(log_b, params, batch, backward):
    """Forward-backward in log space (padded, time loop): gamma, summed xi and log-likelihoods.

    Slower than the scaled passes but immune to underflow; used when a normalizer vanished.
    """
    T, S, K = log_b.shape
    with np.errstate(divide="ignore"):
        log_a = np.log(params.transition)
        log_alpha = np.full((T, S, K), -np.inf)
        log_alpha[0] = np.log(params.start) + log_b[0]
    for t in range(1, T):
        n = batch.active[t]
        log_alpha[t, :n] = logsumexp(log_alpha[t - 1, :n, :, None] + log_a, axis=1) + log_b[t, :n]
    last = log_alpha[batch.lengths - 1, np.arange(S)]
    loglik = logsumexp(last, axis=1)
    if not backward or not np.all(np.isfinite(loglik)):
        return None, None, loglik
    log_beta = np.zeros((T, S, K))
    for t in range(T - 2, -1, -1):
        n = batch.active[t + 1]
        log_beta[t, :n] = logsumexp(log_a + (log_b[t + 1, :n] + log_beta[t + 1, :n])[:, None, :], axis=2)
    with np.errstate(invalid="ignore"):
        gamma = np.exp(log_alpha + log_beta - loglik[None, :, None])
    gamma[~batch.valid] = 0.0
    xi = np.zeros((K, K))
    for t in range(1, T):
        n = batch.active[t]
        log_xi = (log_alpha[t - 1, :n, :, None] + log_a + (log_b[t, :n] + log_beta[t, :n])[:, None, :]
                  - loglik[:n, None, None])
        xi += np.exp(log_xi).sum(axis=0)
    return gamma, xi, loglik
