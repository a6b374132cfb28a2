"""The Poisson mixture model: E-step, expected sufficient statistics and closed-form M-step.

Book: chapter "Slow convergence and acceleration" derives every formula here. For counts
x_n in {0, 1, 2, ...} and K components with weights pi_k and rates lambda_k,

    log p(x_n, z_n = k | theta) = log pi_k + x_n log lambda_k - lambda_k - log x_n!

(equation ``slow_convergence-logjoint``). With responsibilities r_nk = p(z_n = k | x_n, theta)
the expected sufficient statistics are

    N_k = sum_n r_nk,   S_k = sum_n r_nk x_n,

and the M-step (``slow_convergence-mstep``) is pi_k = N_k / N, lambda_k = S_k / N_k.

The data are one column of counts, so every array here is at most (N, K); no chunking is needed.
The E-step works on the distinct counts with their multiplicities (the histogram of the data),
which gives the same statistics as a pass over all N points at a fraction of the cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .._validation import as_data_matrix, as_float_array, check_generator, check_integer, check_probability_vector
from ._numerics import draw_components, empty_components, logsumexp_rows

#: Counts up to 2^53 are whole numbers exactly in double precision; larger ones are not counts
#: any more but rounded floats.
LARGEST_COUNT = 2.0 ** 53


@dataclass(frozen=True)
class PoissonMixtureParams:
    """Parameters theta = (pi, lambda) of a K-component Poisson mixture.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Mixing weights pi_k, non-negative, summing to one (to within 1e-8; they are then
        divided by their sum, so that an extrapolated point is an exact probability vector).
    rates : array_like, shape (K,)
        Poisson rates (means) lambda_k, positive.
    """

    weights: np.ndarray
    rates: np.ndarray

    def __post_init__(self):
        weights = as_float_array(self.weights, (None,), "weights")
        rates = as_float_array(self.rates, (weights.shape[0],), "rates")
        check_probability_vector(weights, given=self.weights)
        if np.any(rates <= 0):
            raise ValueError(f"rates must be positive; got {np.round(rates, 6).tolist()}. "
                             "A Poisson rate is the mean count of its component.")
        if float(weights.sum()) != 1.0:  # within the check's 1e-8: remove the rounding exactly
            weights = weights / weights.sum()
            weights.setflags(write=False)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "rates", rates)

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return self.weights.shape[0]


@dataclass(frozen=True)
class PoissonMixtureStats:
    """Expected sufficient statistics of a Poisson mixture, summed over data.

    Additive (``a + b``) and scalable (``c * a``), like every model's statistics.

    Attributes
    ----------
    counts : ndarray, shape (K,)
        N_k = sum_n r_nk.
    sum_x : ndarray, shape (K,)
        S_k = sum_n r_nk x_n.
    """

    counts: np.ndarray
    sum_x: np.ndarray

    def __add__(self, other: "PoissonMixtureStats") -> "PoissonMixtureStats":
        if not isinstance(other, PoissonMixtureStats):
            return NotImplemented
        return PoissonMixtureStats(self.counts + other.counts, self.sum_x + other.sum_x)

    def __mul__(self, scale: float) -> "PoissonMixtureStats":
        return PoissonMixtureStats(scale * self.counts, scale * self.sum_x)

    __rmul__ = __mul__


class PoissonMixture:
    """A mixture of K Poisson distributions, p(x | theta) = sum_k pi_k Poisson(x | lambda_k)
    (equation ``slow_convergence-model``).

    Parameters
    ----------
    n_components : int
        K, the number of components.

    Notes
    -----
    ``e_step`` and ``m_step`` take inputs from :meth:`check_data` and :meth:`check_params`; the
    other methods check their inputs (``log_joint`` and ``posterior`` accept any N >= 1).

    Data are counts: an array of shape (N,) or (N, 1) of non-negative whole numbers (integers,
    or floats with integer values). :meth:`check_data` returns them as a float array of shape
    (N, 1), the (N, D) layout of every model, with D = 1.
    """

    #: Each data point has its own latent label z_n with K values (the drivers may sample or
    #: classify it), and rows of X are independent given theta (the drivers may use row chunks).
    discrete_latent = True
    independent_rows = True

    def __init__(self, n_components: int):
        self.n_components = check_integer(n_components, "n_components", minimum=1)

    def __repr__(self) -> str:
        return f"PoissonMixture(n_components={self.n_components})"

    # ------------------------------------------------------------------ validation
    def check_data(self, X) -> np.ndarray:
        """Return the counts ``X`` as a float array of shape (N, 1), or raise ``ValueError``.

        Parameters
        ----------
        X : array_like, shape (N,) or (N, 1)
            Non-negative whole numbers, N >= K.
        """
        return self._counts(X, min_rows=self.n_components)

    @staticmethod
    def _counts(X, min_rows: int = 1) -> np.ndarray:
        """Counts as a float array (N, 1) with N >= ``min_rows``, or a ``ValueError``."""
        if np.ndim(X) == 1:
            X = np.reshape(X, (-1, 1))
        X = as_data_matrix(X, min_rows=min_rows)
        if X.shape[1] != 1:
            raise ValueError(f"X must be one column of counts, shape (N,) or (N, 1); got shape {X.shape}.")
        if np.any(X < 0):
            bad = X[X < 0]
            raise ValueError(f"X must hold non-negative counts; found {bad.size} negative value(s), "
                             f"e.g. {bad[0]:g}.")
        not_whole = X != np.round(X)
        if np.any(not_whole):
            raise ValueError(f"X must hold whole-number counts; found {int(not_whole.sum())} value(s) that "
                             f"are not integers, e.g. {X[not_whole][0]:g}.")
        if np.any(X > LARGEST_COUNT):
            raise ValueError(f"X holds counts as large as {X.max():.3g}, beyond 2^53, where floating-point "
                             "numbers are no longer exact whole numbers; rescale the problem.")
        return X

    def check_params(self, params, X=None) -> PoissonMixtureParams:
        """Raise ``ValueError`` unless ``params`` are PoissonMixtureParams with K components.

        ``X`` is accepted for the common interface; any column of counts fits.
        """
        if not isinstance(params, PoissonMixtureParams):
            raise ValueError(f"params must be PoissonMixtureParams; got {type(params).__name__}.")
        if params.n_components != self.n_components:
            raise ValueError(f"params have {params.n_components} components but the model has "
                             f"{self.n_components}; make them agree.")
        return params

    # ------------------------------------------------------------------ densities
    @staticmethod
    def _log_joint_values(x: np.ndarray, params: PoissonMixtureParams) -> np.ndarray:
        """Equation slow_convergence-logjoint for counts x (M,): shape (M, K)."""
        with np.errstate(divide="ignore"):  # a weight of exactly 0 gives log 0 = -inf, allowed
            log_weights = np.log(params.weights)
        return log_weights - params.rates + np.outer(x, np.log(params.rates)) - gammaln(x + 1.0)[:, None]

    def log_joint(self, X, params: PoissonMixtureParams) -> np.ndarray:
        """log p(x_n, z_n = k | theta) = log pi_k + x_n log lambda_k - lambda_k - log x_n!.

        Returns
        -------
        ndarray, shape (N, K)
        """
        X = self._counts(X)
        return self._log_joint_values(X[:, 0], self.check_params(params, X))

    def posterior(self, X, params: PoissonMixtureParams) -> np.ndarray:
        """Responsibilities r_nk = p(z_n = k | x_n, theta) (equation ``slow_convergence-resp``), shape (N, K)."""
        log_joint = self.log_joint(X, params)
        return np.exp(log_joint - logsumexp_rows(log_joint)[:, None])

    def log_likelihood(self, X, params: PoissonMixtureParams) -> float:
        """log p(X | theta) = sum_n log sum_k pi_k Poisson(x_n | lambda_k), including -log x_n!."""
        return float(logsumexp_rows(self.log_joint(X, params)).sum())

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, q) -> PoissonMixtureStats:
        """N_k = sum_n q_nk and S_k = sum_n q_nk x_n for counts ``X`` (N, 1) or (N,) and q (N, K)."""
        x = np.asarray(X, dtype=float).reshape(-1)
        q = np.asarray(q, dtype=float)
        if q.shape != (x.shape[0], self.n_components):
            raise ValueError(f"q must have shape (N, K) = {(x.shape[0], self.n_components)}; got {q.shape}.")
        return PoissonMixtureStats(q.sum(axis=0), x @ q)

    def e_step(self, X, params: PoissonMixtureParams) -> tuple[PoissonMixtureStats, float]:
        """Both parts of the E-step at once.

        ``X`` and ``params`` must already have passed :meth:`check_data` and :meth:`check_params`
        (the drivers check them once). Counts
        take few distinct values, and points with the same count have the same
        responsibilities, so the work is done once per distinct value v with multiplicity m_v:
        N_k = sum_v m_v r_vk, S_k = sum_v m_v v r_vk, log p(X | theta) = sum_v m_v log p(v | theta).

        Returns
        -------
        stats : PoissonMixtureStats
            Expected sufficient statistics under q = p(z | x, theta).
        log_likelihood : float
            log p(X | theta), a by-product of normalizing q.
        """
        values, multiplicity = np.unique(X[:, 0], return_counts=True)
        multiplicity = multiplicity.astype(float)
        log_joint = self._log_joint_values(values, params)
        log_norm = logsumexp_rows(log_joint)
        q = np.exp(log_joint - log_norm[:, None])
        stats = PoissonMixtureStats(multiplicity @ q, (multiplicity * values) @ q)
        return stats, float(multiplicity @ log_norm)

    def m_step(self, stats: PoissonMixtureStats) -> PoissonMixtureParams:
        """argmax_theta Q(theta | theta_t): pi_k = N_k / N, lambda_k = S_k / N_k.

        Raises
        ------
        ValueError
            If a component received no responsibility (N_k = 0), or only zero counts (S_k = 0,
            so its rate would be 0, outside the parameter space).
        """
        counts, sum_x = stats.counts, stats.sum_x
        empty = empty_components(counts)
        if empty.size:
            raise ValueError(f"component(s) {empty.tolist()} received no responsibility (N_k = 0) and "
                             "cannot be updated. Start from other parameters or use fewer components.")
        zero_rate = np.flatnonzero(sum_x <= 0)
        if zero_rate.size:
            raise ValueError(f"component(s) {zero_rate.tolist()} explain only zero counts, so their rate "
                             "would be 0 (outside the parameter space). Start from other parameters or "
                             "use fewer components.")
        return PoissonMixtureParams(counts / counts.sum(), sum_x / counts)

    # ------------------------------------------------------------------ unconstrained coordinates
    def to_unconstrained(self, params: PoissonMixtureParams) -> np.ndarray:
        """The unconstrained vector eta of ``params``: K - 1 logits, then K log-rates.

        eta = (log pi_1 - log pi_K, ..., log pi_{K-1} - log pi_K, log lambda_1, ..., log lambda_K)
        (book: chapter "EM versus gradient methods", equation ``em_vs_gradient-poisson-eta``).
        Every real vector of length 2K - 1 is the image of exactly one parameter with positive
        weights, so optimizers without constraints apply.

        Returns
        -------
        ndarray, shape (2K - 1,)

        Raises
        ------
        ValueError
            If a weight is 0 (it has no logit).
        """
        params = self.check_params(params)
        if np.any(params.weights <= 0):
            raise ValueError("weights must be positive to have logits; got a zero weight. "
                             "Start from positive weights.")
        log_w = np.log(params.weights)
        return np.concatenate([log_w[:-1] - log_w[-1], np.log(params.rates)])

    def from_unconstrained(self, eta) -> PoissonMixtureParams:
        """The parameters of an unconstrained vector eta (inverse of :meth:`to_unconstrained`).

        pi = softmax(eta_1, ..., eta_{K-1}, 0) and lambda_k = exp(eta_{K-1+k}).

        Parameters
        ----------
        eta : array_like, shape (2K - 1,)

        Raises
        ------
        ValueError
            If eta has the wrong shape, is not finite, or gives a rate that overflows or
            underflows (an optimizer's step that is far too long).
        """
        K = self.n_components
        eta = np.asarray(eta, dtype=float)
        if eta.shape != (2 * K - 1,):
            raise ValueError(f"eta must have shape ({2 * K - 1},) for {K} components (K - 1 logits, "
                             f"then K log-rates); got shape {eta.shape}.")
        if not np.all(np.isfinite(eta)):
            raise ValueError("eta contains NaN or infinite values; if this happened in an optimizer, "
                             "its step was too long.")
        logits = np.append(eta[:K - 1], 0.0)
        w = np.exp(logits - logits.max())
        with np.errstate(over="ignore", under="ignore"):
            rates = np.exp(eta[K - 1:])
        if not np.all(np.isfinite(rates)) or np.any(rates <= 0):
            raise ValueError(f"the log-rates {np.round(eta[K - 1:], 3).tolist()} give a rate that "
                             "overflows or is 0; if this happened in an optimizer, its step was too long.")
        return PoissonMixtureParams(w / w.sum(), rates)

    def log_likelihood_derivatives(self, X, eta) -> tuple[float, np.ndarray, np.ndarray]:
        """l(eta), its gradient and its Hessian in the unconstrained coordinates, from one pass.

        With pi = softmax(alpha, 0), lambda = exp(beta), the responsibilities r_nk, and the
        statistics N_k = sum_n r_nk, S_k = sum_n r_nk x_n (book: equations
        ``em_vs_gradient-poisson-grad`` and ``em_vs_gradient-poisson-hess``),

            d l / d alpha_j = N_j - N pi_j,        d l / d beta_k = S_k - N_k lambda_k,

        and the Hessian is -I_c + I_m (the missing-information principle, computed as Louis
        (1982) does): I_c = N (diag pi' - pi' pi'^T) (+) diag(N_k lambda_k), pi' the first K - 1
        weights, is the expected complete-data information, and I_m = sum_n Cov_{r_n}(u_nk),
        u_nk = (e_k[:K-1], e_k (x_n - lambda_k)), the covariance of the complete-data scores
        under the posterior. Like :meth:`e_step`, the pass runs over the distinct counts.

        Parameters
        ----------
        X : array_like, shape (N,) or (N, 1)
            Counts.
        eta : array_like, shape (2K - 1,)
            See :meth:`to_unconstrained`.

        Returns
        -------
        value : float
            l(eta) = log p(X | theta(eta)).
        gradient : ndarray, shape (2K - 1,)
        hessian : ndarray, shape (2K - 1, 2K - 1)
        """
        value, gradient, complete, missing = self._unconstrained_pieces(X, eta)
        return value, gradient, missing - complete

    def unconstrained_information(self, X, eta) -> tuple[np.ndarray, np.ndarray]:
        """The complete and missing information (I_c, I_m) in the unconstrained coordinates.

        I_c - I_m is the observed information, minus the Hessian of :meth:`log_likelihood_derivatives`.

        Returns
        -------
        complete, missing : ndarray, shape (2K - 1, 2K - 1)
        """
        _, _, complete, missing = self._unconstrained_pieces(X, eta)
        return complete, missing

    def _unconstrained_pieces(self, X, eta):
        X = self.check_data(X)
        params = self.from_unconstrained(eta)
        K, P = self.n_components, 2 * self.n_components - 1
        values, multiplicity = np.unique(X[:, 0], return_counts=True)
        m = multiplicity.astype(float)
        log_joint = self._log_joint_values(values, params)
        log_norm = logsumexp_rows(log_joint)
        r = np.exp(log_joint - log_norm[:, None])                     # (V, K)
        counts, sum_x = m @ r, (m * values) @ r                       # N_k, S_k
        n, pi, lam = m.sum(), params.weights, params.rates
        gradient = np.concatenate([(counts - n * pi)[:K - 1], sum_x - counts * lam])
        # complete-data scores u_vk without their constant part, (V, K, P)
        u = np.zeros((values.size, K, P))
        idx = np.arange(K - 1)
        u[:, idx, idx] = 1.0
        u[:, np.arange(K), K - 1 + np.arange(K)] = values[:, None] - lam
        mean = np.einsum("vk,vkp->vp", r, u)
        second = np.einsum("v,vk,vkp,vkq->pq", m, r, u, u)
        missing = second - np.einsum("v,vp,vq->pq", m, mean, mean)
        complete = np.zeros((P, P))
        head = pi[:K - 1]
        complete[:K - 1, :K - 1] = n * (np.diag(head) - np.outer(head, head))
        complete[K - 1:, K - 1:] = np.diag(counts * lam)
        return float(m @ log_norm), gradient, complete, 0.5 * (missing + missing.T)

    # ------------------------------------------------------------------ starting and sampling
    def init_params(self, X, rng: np.random.Generator) -> PoissonMixtureParams:
        """A starting point theta_0: equal weights, rates spread around the mean count.

        The rates are the sample mean times independent Uniform(0.5, 1.5) factors, sorted in
        increasing order (distinct with probability one, so the components can separate).

        Parameters
        ----------
        X : array_like, shape (N,) or (N, 1)
        rng : numpy.random.Generator
            The only source of randomness.
        """
        X = self.check_data(X)
        rng = check_generator(rng)
        mean = float(X.mean())
        if mean == 0:
            raise ValueError("every count in X is 0: no Poisson mixture with positive rates fits these data.")
        K = self.n_components
        rates = np.sort(mean * rng.uniform(0.5, 1.5, size=K))
        return PoissonMixtureParams(np.full(K, 1.0 / K), rates)

    def sample(self, params: PoissonMixtureParams, n: int, rng: np.random.Generator):
        """Draw n counts from the mixture.

        Returns
        -------
        X : ndarray of int, shape (n,)
        z : ndarray of int, shape (n,)
            The component each count came from.
        """
        self.check_params(params)
        z = draw_components(params.weights, n, rng)
        return rng.poisson(params.rates[z]), z
