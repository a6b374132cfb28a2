"""Stochastic EM (SEM) and Monte Carlo EM (MCEM): the E-step's expectation replaced by sampling.

Book: chapter "Stochastic and Monte Carlo EM" (``book/stochastic_em.ipynb``). EM's E-step
computes the expected sufficient statistics E_q[t(x, z)] under q = p(z | x, theta_t). These
drivers draw the latent variables instead:

    q      = model.posterior(X, params)                 # (N, K), rows r_n
    z^(j)  ~ q,  j = 1, ..., m                           # one categorical draw per row and sample
    s_hat  = (1/m) sum_j t(x, z^(j))                     # eq. stochastic_em-mc-stats
    params = model.m_step(s_hat)

SEM (Celeux and Diebolt 1985) uses m = 1; MCEM (Wei and Tanner 1990) lets m grow with the
iteration, so that it approaches EM.

Because E_q[t(x, z)] is linear in q, the average of the statistics of m one-hot draws equals the
statistics of the per-row sample frequencies (eq. stochastic_em-freq-identity)::

    (1/m) sum_j expected_stats(X, onehot(z^(j))) == expected_stats(X, counts / m),

and the counts of m categorical draws in a row are one multinomial draw. So one call to
:func:`sample_frequencies` replaces m passes over the data, and its cost does not grow with m.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np

from .._validation import check_generator, check_number, check_probability_rows
from ..em import TOL, ConvergenceMonitor, EMResult, check_driver_arguments
from ..interface import check_discrete_latent
from ..params import flatten_params, unflatten_params

#: Largest number of draws per row: keeps the multinomial counts far inside int64. At this m the
#: Monte Carlo standard error of each frequency is below 2e-5.
MAX_SAMPLES = 10**9


@dataclass(frozen=True)
class StochasticEMResult(EMResult):
    """What :func:`stochastic_em` returns: an :class:`emlib.EMResult` plus the chain average.

    Attributes
    ----------
    params : parameters dataclass
        The last state theta_T of the chain (one random draw around the MLE, not an estimate
        to report on its own).
    log_likelihood : ndarray, shape (n_iter + 1,)
        log p(X | theta_t) for t = 0, ..., n_iter; not monotone.
    n_iter : int
    converged : bool
        False unless a positive ``tol`` was given and its rule fired (see :func:`stochastic_em`).
    params_mean : parameters dataclass or None
        The average of theta_t over t = burn_in + 1, ..., n_iter, field by field: the SEM
        estimate. None when the chain stopped before passing ``burn_in``.
    burn_in : int
        The number of initial states left out of ``params_mean``.
    n_redraws : int
        How many S-steps the small-class safeguard rejected and drew again (0 without it).
    """

    params_mean: Any
    burn_in: int
    n_redraws: int = 0


@dataclass(frozen=True)
class MonteCarloEMResult(EMResult):
    """What :func:`mcem` returns: an :class:`emlib.EMResult` plus the sample sizes used.

    Attributes
    ----------
    n_samples : ndarray of int, shape (n_iter,)
        ``n_samples[t - 1]`` is m_t, the number of draws of z per row in iteration t.
    """

    n_samples: np.ndarray


def sample_frequencies(q, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Per-row frequencies of ``n_samples`` independent draws z_n ~ q_n.

    Row n of the result is c_n / m, where the counts c_n ~ Multinomial(m, q_n) are the numbers
    of times each of the K values was drawn (eq. ``stochastic_em-freq``). With m = 1 each row
    is one-hot: a single sampled assignment. The result is an unbiased estimate of q with
    variance q_nk (1 - q_nk) / m per entry (proposition ``stochastic_em-prop-unbiased``).

    Parameters
    ----------
    q : array_like, shape (N, K)
        Probabilities; each row sums to one (e.g. responsibilities).
    n_samples : int
        m >= 1, the number of draws per row.
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    ndarray, shape (N, K)
        Non-negative multiples of 1/m; each row sums to one.
    """
    rng = check_generator(rng)
    m = _check_n_samples(n_samples)
    q = np.asarray(q, dtype=float)
    if q.ndim != 2 or q.shape[1] == 0:
        raise ValueError(f"q must be a 2-D array of shape (N, K), one row of probabilities per point; "
                         f"got shape {q.shape}.")
    q = check_probability_rows(q, "q")
    counts = rng.multinomial(m, q / q.sum(axis=1, keepdims=True))
    return counts / float(m)


def stochastic_em(model, X, init, *, rng: np.random.Generator, max_iter: int = 500, tol: float = 0.0,
                  burn_in: int | None = None, min_count: int = 0,
                  callback: Callable[[int, Any, float], None] | None = None) -> StochasticEMResult:
    """Stochastic EM (SEM): an M-step on the statistics of one sampled assignment per point.

    Each iteration draws z_n ~ p(z_n | x_n, theta_t) for every row (a one-hot q), computes the
    complete-data statistics t(x, z) with ``model.expected_stats`` and takes the M-step
    (algorithm ``stochastic_em-alg-sem``). The parameters form a Markov chain that keeps
    fluctuating around the maximum-likelihood estimate: the log-likelihood is not monotone and
    the chain never settles on a point.

    What "converged" means here: with the default ``tol=0`` the chain runs exactly ``max_iter``
    iterations and ``converged`` is False. A positive ``tol`` applies the rule of
    :class:`emlib.ConvergenceMonitor` (relative change of log p(X | theta) at most ``tol``); for
    SEM that change is random, so the rule firing says only that two consecutive states had
    nearly equal likelihood, not that the chain settled. Use ``burn_in`` and ``params_mean``.

    The estimate to report is ``params_mean``, the average of the states after the burn-in,
    field by field (weights, means and covariances averaged separately; every such average is
    again a valid parameter, since the parameter sets are convex). Averaging assumes the chain
    does not swap component labels after the burn-in, which holds when the components are well
    separated; otherwise inspect the chain (record it with ``callback``).

    Parameters
    ----------
    model : object of the model interface
        Needs ``check_data``, ``check_params``, ``posterior`` (rows of probabilities, shape
        (N, K)), ``expected_stats``, ``m_step`` and ``log_likelihood``; e.g.
        :class:`emlib.GaussianMixture`.
    X : array_like, shape (N, D)
        The observed data.
    init : parameters dataclass
        theta_0.
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same chain.
    max_iter : int
        The number of iterations (length of the chain after theta_0). The default 500, not
        :func:`emlib.em`'s 1000, because the chain does not converge: it runs exactly
        ``max_iter`` iterations, and 500 states are plenty for ``params_mean``.
    tol : float
        0 (default, unlike :func:`emlib.em`) never stops early, because the change of the
        log-likelihood of a chain is random; see above for a positive value.
    burn_in : int, optional
        States theta_1, ..., theta_burn_in are left out of ``params_mean``. Default
        ``max_iter // 2``. Must be smaller than ``max_iter`` (when ``max_iter > 0``).
    min_count : int
        The small-class safeguard (0, the default, switches it off). Celeux and Diebolt (1985)
        keep every class of the S-step above a minimum size; here an S-step in which some
        component draws fewer than ``min_count`` points is rejected and drawn again, at most
        ``MAX_REDRAWS`` times. The accepted assignment is thus a draw from p(z | x, theta_t)
        conditioned on every class holding at least ``min_count`` points (a different Markov
        chain, whose stationary distribution is not exactly that of plain SEM). For a
        D-dimensional Gaussian mixture with ``reg_covar=0``, ``min_count = D + 1`` keeps every
        covariance estimable. ``result.n_redraws`` counts the rejected draws.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every M-step, as in :func:`emlib.em`.

    Returns
    -------
    StochasticEMResult
        ``log_likelihood[t]`` = log p(X | theta_t), length ``n_iter + 1``.

    Raises
    ------
    ValueError
        For bad arguments, or from the model when a component drew no point (its M-step is
        undefined; use ``min_count``, start closer to a solution or use fewer components), or
        when the safeguard found no acceptable draw in ``MAX_REDRAWS`` tries.
    """
    rng = check_generator(rng)
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    if burn_in is None:
        burn_in = monitor.max_iter // 2
    ok = isinstance(burn_in, (int, np.integer)) and not isinstance(burn_in, (bool, np.bool_))
    if not ok or burn_in < 0 or (monitor.max_iter > 0 and burn_in >= monitor.max_iter):
        raise ValueError(f"burn_in must be an integer with 0 <= burn_in < max_iter = {monitor.max_iter}; "
                         f"got {burn_in!r}.")
    average = _RunningMean()

    def observe(t, params):
        if t > burn_in:
            average.add(params)

    safeguard = _SmallClassSafeguard(min_count)
    draw = safeguard if safeguard.min_count else sample_frequencies
    params, _ = _sampling_em_loop(model, X, init, rng, monitor, lambda t: 1, callback, observe,
                                  driver="stochastic_em", draw=draw)
    base = monitor.result(params)
    return StochasticEMResult(**_fields_of(base), params_mean=average.value(), burn_in=int(burn_in),
                              n_redraws=safeguard.n_redraws)


def mcem(model, X, init, *, rng: np.random.Generator, n_samples: int | Callable[[int], int] = 10,
         growth: float = 1.1, max_iter: int = 200, tol: float = TOL,
         callback: Callable[[int, Any, float], None] | None = None) -> MonteCarloEMResult:
    """Monte Carlo EM (MCEM): the expected statistics estimated from m_t samples of z.

    Iteration t draws m_t assignments z^(1..m_t) from q = p(z | x, theta_{t-1}), averages
    their statistics (eq. ``stochastic_em-mc-stats``, computed as the statistics of the sample
    frequencies) and takes the M-step (algorithm ``stochastic_em-alg-mcem``). The estimate is
    unbiased for EM's statistics with variance proportional to 1/m_t, so as m_t grows the
    iteration approaches EM's (proposition ``stochastic_em-prop-mcem-limit``). A growing schedule
    spends few samples while far from the answer and many near it, as Wei and Tanner advise.

    The schedule is m_t = min(ceil(n_samples * growth ** (t - 1)), MAX_SAMPLES) for
    t = 1, 2, ..., or ``n_samples(t)`` if ``n_samples`` is a callable. ``growth=1`` keeps m fixed.
    The cost of an iteration does not depend on m_t (one multinomial draw per row).

    Parameters
    ----------
    model : object of the model interface
        As for :func:`stochastic_em`.
    X : array_like, shape (N, D)
    init : parameters dataclass
        theta_0.
    rng : numpy.random.Generator
        The only source of randomness.
    n_samples : int or callable ``t -> int``
        m_1 (int >= 1), or the whole schedule as a function of t = 1, 2, ...
    growth : float
        >= 1; the factor by which m_t grows per iteration (ignored for a callable schedule).
    max_iter : int
        At most this many iterations. The default 200, not :func:`emlib.em`'s 1000, because with
        the default schedule m_t reaches ``MAX_SAMPLES`` near t = 190: beyond that, iterations
        are EM steps at full sampling cost.
    tol : float
        Stop when the relative change of log p(X | theta) is at most ``tol`` (the rule of
        :class:`emlib.ConvergenceMonitor`); 0 never stops early. With small m_t the change is
        dominated by Monte Carlo noise, so the rule becomes meaningful only once m_t is large.
    callback : callable ``(t, params_t, loglik_t)``, optional
        Called after every M-step, as in :func:`emlib.em`.

    Returns
    -------
    MonteCarloEMResult
        ``log_likelihood[t]`` = log p(X | theta_t) (exact, not estimated), length ``n_iter + 1``;
        ``n_samples`` the schedule used.
    """
    rng = check_generator(rng)
    monitor = ConvergenceMonitor(max_iter, tol, objective="log-likelihood")
    if callable(n_samples):
        schedule = n_samples
    else:
        schedule = geometric_schedule(n_samples, growth)
    params, used = _sampling_em_loop(model, X, init, rng, monitor, schedule, callback, None, driver="mcem")
    base = monitor.result(params)
    return MonteCarloEMResult(**_fields_of(base), n_samples=np.array(used, dtype=np.int64))


def geometric_schedule(n_samples: int, growth: float) -> Callable[[int], int]:
    """t -> m_t = min(ceil(n_samples * growth ** (t - 1)), MAX_SAMPLES), without overflow for any t.

    The power is compared with the cap in logarithms before it is formed, so a long run (t in the
    thousands) gives ``MAX_SAMPLES`` instead of an ``OverflowError``.
    """
    m0 = _check_n_samples(n_samples)
    growth = check_number(growth, "growth", minimum=1.0, hint=" (1 keeps m fixed)")
    log_cap = math.log(MAX_SAMPLES / m0)

    def schedule(t: int) -> int:
        exponent = (t - 1) * math.log(growth)
        if exponent >= log_cap:
            return MAX_SAMPLES
        return min(math.ceil(m0 * math.exp(exponent)), MAX_SAMPLES)

    return schedule


# ---------------------------------------------------------------------- shared pieces
def _sampling_em_loop(model, X, init, rng, monitor, schedule, callback, observe, *, driver: str,
                      draw=sample_frequencies):
    """The loop both drivers share: posterior, sample frequencies, statistics, M-step."""
    check_driver_arguments(model, callback, driver=driver,
                           methods=("check_data", "check_params", "posterior", "expected_stats", "m_step",
                                    "log_likelihood"))
    check_discrete_latent(model, driver=driver)
    X = model.check_data(X)
    params = model.check_params(init, X)
    used = []
    with monitor:
        monitor.record(model.log_likelihood(X, params))
        while not monitor.done:
            t = monitor.n_iter + 1
            m = _check_n_samples(schedule(t), where=f"the schedule at t = {t}")
            q = model.posterior(X, params)
            stats = model.expected_stats(X, draw(q, m, rng))
            params = model.m_step(stats)
            loglik = model.log_likelihood(X, params)
            monitor.record(loglik)
            used.append(m)
            if observe is not None:
                observe(t, params)
            if callback is not None:
                callback(t, params, loglik)
    return params, used


def _check_n_samples(m, where: str = "n_samples") -> int:
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or not 1 <= m <= MAX_SAMPLES:
        raise ValueError(f"{where} must be an integer number of draws between 1 and {MAX_SAMPLES}; got {m!r}.")
    return int(m)


def _fields_of(result: EMResult) -> dict:
    """The fields of a result as a shallow dict (``dataclasses.asdict`` would copy the params)."""
    return {f.name: getattr(result, f.name) for f in fields(result)}


class _RunningMean:
    """Running average of parameter dataclasses as flat vectors, in constant memory."""

    def __init__(self):
        self.count = 0
        self.template = None
        self.mean = None

    def add(self, params) -> None:
        vector = flatten_params(params)
        self.count += 1
        if self.count == 1:
            self.template, self.mean = params, vector
        else:
            self.mean += (vector - self.mean) / self.count

    def value(self):
        return None if self.count == 0 else unflatten_params(self.template, self.mean)


#: At most this many S-steps are drawn in one iteration by the small-class safeguard.
MAX_REDRAWS = 1000


class _SmallClassSafeguard:
    """The S-step of :func:`stochastic_em` with ``min_count``: redraw until every class is big enough."""

    def __init__(self, min_count):
        if isinstance(min_count, (bool, np.bool_)) or not isinstance(min_count, (int, np.integer)) \
                or min_count < 0:
            raise ValueError(f"min_count must be a non-negative integer (0 switches the safeguard off); "
                             f"got {min_count!r}.")
        self.min_count = int(min_count)
        self.n_redraws = 0

    def __call__(self, q, m, rng):
        N, K = np.shape(q)
        if self.min_count * K > N:
            raise ValueError(f"min_count = {self.min_count} is impossible: {K} classes of at least "
                             f"{self.min_count} points need more than the {N} points there are.")
        for _ in range(MAX_REDRAWS):
            f = sample_frequencies(q, m, rng)
            if np.all(f.sum(axis=0) >= self.min_count):
                return f
            self.n_redraws += 1
        raise ValueError(f"no S-step in {MAX_REDRAWS} draws gave every class at least {self.min_count} "
                         "points: some component has almost no responsibility left. Use fewer "
                         "components or start closer to a solution.")
