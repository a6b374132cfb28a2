"""A logistic random-intercept model for grouped binary data: an E-step with no closed form.

Book: chapter "SAEM: stochastic approximation EM" (``book/saem.ipynb``). Group n = 1, ..., N has
J_n binary outcomes of which k_n are successes; the groups differ by a latent log-odds z_n:

    z_n ~ N(mu, tau^2),   y_nj | z_n ~ Bernoulli(sigma(z_n)),   sigma(z) = 1 / (1 + exp(-z)),

so k_n | z_n ~ Binomial(J_n, sigma(z_n)) (saem-model). The data ``X`` have shape (N, 2): column
0 holds k_n, column 1 holds J_n. The parameters are theta = (mu, tau^2). The complete-data
log-likelihood is

    log p(x, z | theta) = sum_n [log C(J_n, k_n) + k_n log sigma(z_n) + (J_n - k_n) log sigma(-z_n)]
                          + sum_n log N(z_n | mu, tau^2),

whose only parameter-dependent part, the normal term, is an exponential family with sufficient
statistics t(x, z) = (N, sum_n z_n, sum_n z_n^2) (saem-stats). The M-step is therefore in
closed form (saem-mstep):

    mu = S1 / S0,   tau^2 = S2 / S0 - mu^2.

The E-step needs E[z_n | x_n, theta] and E[z_n^2 | x_n, theta] under the posterior

    p(z_n | x_n, theta)  proportional to  N(z_n | mu, tau^2) sigma(z_n)^k_n sigma(-z_n)^(J_n - k_n),

whose normalizing constant (a logistic-normal integral) has no closed form. With one latent
variable per group the integrals are one-dimensional, and adaptive Gauss-Hermite quadrature
(centred at the posterior mode, scaled by the curvature there; eq. saem-aghq) computes them to
near machine precision: :meth:`LogisticRandomIntercept.log_likelihood`, ``posterior_moments``
and ``e_step`` use it, so the chapter can show the exact log-likelihood along every run and
compare with the maximum-likelihood estimate. The sampling drivers (:func:`emlib.saem`,
:func:`emlib.ascent_mcem`) use only the two samplers:

- :meth:`LogisticRandomIntercept.mcmc` -- sweeps of a random-walk Metropolis kernel, one chain
  per group, each leaving p(z_n | x_n, theta) invariant (algorithm saem-alg-mh);
- :meth:`LogisticRandomIntercept.sample_posterior` -- exact, independent draws by rejection
  from the prior N(mu, tau^2), accepting with probability p(x_n | z) / max_z p(x_n | z), the
  sampler Booth and Hobert (1999) used for such models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, log_expit

from .._validation import check_generator

_LOG_2PI = np.log(2.0 * np.pi)
#: Sweeps whose random numbers are drawn in one call (fewer calls; bounded memory).
_SWEEPS_PER_BLOCK = 1024


@dataclass(frozen=True)
class LogisticRandomInterceptParams:
    """theta = (mu, tau^2): the mean and the variance of the groups' latent log-odds.

    Parameters
    ----------
    mean : float
        mu, any finite number.
    variance : float
        tau^2 > 0.
    """

    mean: float
    variance: float

    def __post_init__(self):
        try:
            mean, variance = float(self.mean), float(self.variance)
        except (TypeError, ValueError):
            raise ValueError(f"mean and variance must be numbers; got {self.mean!r} and {self.variance!r}.") from None
        if not np.isfinite(mean):
            raise ValueError(f"mean must be a finite number; got {mean!r}.")
        if not (np.isfinite(variance) and variance > 0):  # also rejects NaN
            raise ValueError(f"variance must be a finite positive number; got {variance!r}.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "variance", variance)


@dataclass(frozen=True)
class LogisticRandomInterceptStats:
    """Complete-data sufficient statistics t(x, z) = (S0, S1, S2), or their expectation or average.

    Additive over groups (``a + b``) and scalable (``c * a``).

    Attributes
    ----------
    count : float
        S0 = N, the number of groups.
    sum_z : float
        S1 = sum_n z_n.
    sum_z2 : float
        S2 = sum_n z_n^2.
    """

    count: float
    sum_z: float
    sum_z2: float

    def __add__(self, other: "LogisticRandomInterceptStats") -> "LogisticRandomInterceptStats":
        if not isinstance(other, LogisticRandomInterceptStats):
            return NotImplemented
        return LogisticRandomInterceptStats(self.count + other.count, self.sum_z + other.sum_z,
                                            self.sum_z2 + other.sum_z2)

    def __mul__(self, scale: float) -> "LogisticRandomInterceptStats":
        scale = float(scale)
        return LogisticRandomInterceptStats(scale * self.count, scale * self.sum_z, scale * self.sum_z2)

    __rmul__ = __mul__


class LogisticRandomIntercept:
    """The logistic random-intercept model for grouped binary data (module docstring).

    The latent variables are continuous and their posterior has no closed form, so there is no
    ``posterior`` method returning q(z): ``posterior_moments`` gives its first two moments (by
    quadrature), and ``mcmc`` and ``sample_posterior`` draw from it. ``expected_stats`` takes
    completions z (draws), not a distribution.

    Parameters
    ----------
    n_nodes : int
        Q >= 1, the number of Gauss-Hermite nodes per group (Q = 1 is the Laplace
        approximation). The default 30 is exact to rounding for the integrands of the book.
    proposal_scale : float
        c > 0 in the random-walk proposal z' = z + c s_n eps, s_n = (1/tau^2 + J_n/4)^(-1/2)
        (a lower bound on the posterior standard deviation); 2.4 is the classical choice for
        a one-dimensional, roughly Gaussian target.
    """

    def __init__(self, n_nodes: int = 30, proposal_scale: float = 2.4):
        if isinstance(n_nodes, (bool, np.bool_)) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 1:
            raise ValueError(f"n_nodes must be a positive integer number of quadrature nodes; got {n_nodes!r}.")
        if (not isinstance(proposal_scale, (int, float, np.integer, np.floating))
                or not np.isfinite(proposal_scale) or proposal_scale <= 0):
            raise ValueError(f"proposal_scale must be a finite positive number; got {proposal_scale!r}.")
        self.n_nodes = int(n_nodes)
        self.proposal_scale = float(proposal_scale)
        nodes, weights = np.polynomial.hermite.hermgauss(self.n_nodes)
        self._nodes = nodes
        self._log_weights = np.log(weights) + nodes ** 2  # weights of exp(-u^2) f(u) -> of f(u)

    def __repr__(self) -> str:
        return f"LogisticRandomIntercept(n_nodes={self.n_nodes}, proposal_scale={self.proposal_scale:g})"

    # ------------------------------------------------------------------ validation
    def check_data(self, X) -> np.ndarray:
        """Return ``X`` as a float array of shape (N, 2), [successes, trials] per group, or raise.

        Every row must hold whole numbers 0 <= k_n <= J_n with J_n >= 1; at least two groups.
        """
        try:
            arr = np.asarray(X, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("X must be an array of shape (N, 2): successes k_n and trials J_n per group; "
                             f"got {type(X).__name__}.") from None
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"X must have shape (N, 2), one row [successes, trials] per group; got shape {arr.shape}.")
        k, n = arr[:, 0], arr[:, 1]
        if (np.isfinite(arr).all() and (arr == np.round(arr)).all() and (n >= 1).all() and (k >= 0).all()
                and (k <= n).all() and arr.shape[0] >= 2):
            return np.ascontiguousarray(arr)  # the common case: one pass of cheap checks
        if not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or infinite values; the counts must be finite.")
        if arr.shape[0] < 2:
            raise ValueError(f"X has {arr.shape[0]} group(s); the variance tau^2 needs at least two groups.")
        if np.any(arr != np.round(arr)):
            raise ValueError("X must hold whole-number counts (successes and trials).")
        if np.any(n < 1):
            raise ValueError(f"every group needs at least one trial (column 1 >= 1); {int(np.sum(n < 1))} group(s) "
                             "have none. Drop them.")
        raise ValueError("successes (column 0) must lie between 0 and the number of trials (column 1); "
                         f"{int(np.sum((k < 0) | (k > n)))} row(s) do not. Is the column order [successes, trials]?")

    def check_params(self, params, X=None) -> LogisticRandomInterceptParams:
        """Raise ``ValueError`` unless ``params`` is a :class:`LogisticRandomInterceptParams`."""
        if not isinstance(params, LogisticRandomInterceptParams):
            raise ValueError(f"params must be LogisticRandomInterceptParams; got {type(params).__name__}.")
        return params

    def _check_latent(self, z, n_groups: int, name: str = "z") -> np.ndarray:
        try:
            z = np.asarray(z, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array of latent log-odds; got {type(z).__name__}.") from None
        if z.ndim not in (1, 2) or z.shape[-1] != n_groups:
            raise ValueError(f"{name} must have shape (N,) or (m, N) with N = {n_groups} groups (one value per "
                             f"group and draw); got shape {z.shape}.")
        if z.size == 0 or not np.all(np.isfinite(z)):
            raise ValueError(f"{name} must be a non-empty array of finite numbers.")
        return z

    # ------------------------------------------------------------------ densities
    @staticmethod
    def _log_binomial(k: np.ndarray, n: np.ndarray, z: np.ndarray) -> np.ndarray:
        """k log sigma(z) + (J - k) log sigma(-z) = k z + J log sigma(-z): log p(x_n | z) without its
        coefficient; broadcasts."""
        return k * z + n * log_expit(-z)

    @staticmethod
    def _log_coefficient(k: np.ndarray, n: np.ndarray) -> np.ndarray:
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)

    def log_joint(self, X, params: LogisticRandomInterceptParams, z) -> np.ndarray:
        """log p(x_n, z_n | theta) for every group at the given latent values.

        Parameters
        ----------
        X : array_like, shape (N, 2)
        params : LogisticRandomInterceptParams
        z : array_like, shape (N,) or (m, N)
            One latent log-odds per group (and per draw).

        Returns
        -------
        ndarray, the shape of ``z``
            log C(J_n, k_n) + k_n log sigma(z_n) + (J_n - k_n) log sigma(-z_n) + log N(z_n | mu, tau^2).
        """
        X = self.check_data(X)
        params = self.check_params(params)
        z = self._check_latent(z, X.shape[0])
        k, n = X[:, 0], X[:, 1]
        log_normal = -0.5 * (_LOG_2PI + np.log(params.variance) + (z - params.mean) ** 2 / params.variance)
        return self._log_coefficient(k, n) + self._log_binomial(k, n, z) + log_normal

    def posterior_mode(self, X, params: LogisticRandomInterceptParams) -> np.ndarray:
        """The mode of each p(z_n | x_n, theta), by safeguarded Newton steps; shape (N,).

        The log-posterior h(z) = -(z - mu)^2 / (2 tau^2) + k log sigma(z) + (J - k) log sigma(-z)
        is strictly concave (h'' = -1/tau^2 - J sigma(z) sigma(-z) < 0), and h'(z) = -(z - mu)/tau^2
        + k - J sigma(z) changes sign on [mu + tau^2 (k - J), mu + tau^2 k], so the mode is unique
        and lies in that bracket; a Newton step that leaves the current bracket is replaced by
        bisection.
        """
        X = self.check_data(X)
        params = self.check_params(params)
        return self._mode(X[:, 0], X[:, 1], params.mean, params.variance)

    @staticmethod
    def _mode(k, n, mu, tau2) -> np.ndarray:
        lo, hi = mu + tau2 * (k - n), mu + tau2 * k
        z = np.clip(mu + tau2 * (k - 0.5 * n) / (1.0 + 0.25 * n * tau2), lo, hi)
        for _ in range(100):
            p = np.exp(log_expit(z))
            grad = -(z - mu) / tau2 + k - n * p
            step = grad / (1.0 / tau2 + n * p * (1.0 - p))
            if (np.abs(step) <= 1e-9 * (1.0 + np.abs(z))).all():
                return z + step  # Newton converges quadratically: this last step leaves ~1e-18
            lo = np.where(grad > 0, z, lo)
            hi = np.where(grad < 0, z, hi)
            new = z + step
            z = np.where((new < lo) | (new > hi), 0.5 * (lo + hi), new)
        raise RuntimeError("the posterior mode did not converge in 100 safeguarded Newton steps")  # pragma: no cover

    def _quadrature(self, X: np.ndarray, params: LogisticRandomInterceptParams):
        """Adaptive Gauss-Hermite nodes and log-weights for every group (eq. saem-aghq).

        Returns
        -------
        nodes : ndarray, shape (N, Q)
            z_nq = zhat_n + sqrt(2) s_n u_q.
        log_terms : ndarray, shape (N, Q)
            log(sqrt(2) s_n w_q exp(u_q^2)) + log p(x_n, z_nq | theta); their log-sum-exp over q
            is log p(x_n | theta), and their softmax over q are the posterior weights.
        """
        k, n = X[:, 0], X[:, 1]
        mu, tau2 = params.mean, params.variance
        mode = self._mode(k, n, mu, tau2)
        p = np.exp(log_expit(mode))
        scale = 1.0 / np.sqrt(1.0 / tau2 + n * p * (1.0 - p))
        nodes = mode[:, None] + np.sqrt(2.0) * scale[:, None] * self._nodes[None, :]
        log_normal = -0.5 * (_LOG_2PI + np.log(tau2) + (nodes - mu) ** 2 / tau2)
        log_joint = (self._log_coefficient(k, n)[:, None] + self._log_binomial(k[:, None], n[:, None], nodes)
                     + log_normal)
        log_terms = log_joint + self._log_weights[None, :] + np.log(np.sqrt(2.0) * scale)[:, None]
        return nodes, log_terms

    @staticmethod
    def _normalize(log_terms: np.ndarray):
        top = log_terms.max(axis=1, keepdims=True)
        w = np.exp(log_terms - top)
        total = w.sum(axis=1, keepdims=True)
        return w / total, (top + np.log(total))[:, 0]

    def log_likelihood_per_group(self, X, params: LogisticRandomInterceptParams) -> np.ndarray:
        """log p(x_n | theta) = log integral of p(x_n, z | theta) dz by adaptive quadrature; shape (N,)."""
        X = self.check_data(X)
        _, log_terms = self._quadrature(X, self.check_params(params))
        return self._normalize(log_terms)[1]

    def log_likelihood(self, X, params: LogisticRandomInterceptParams) -> float:
        """ell(theta) = sum_n log p(x_n | theta), by adaptive Gauss-Hermite quadrature."""
        return float(self.log_likelihood_per_group(X, params).sum())

    def posterior_moments(self, X, params: LogisticRandomInterceptParams) -> tuple[np.ndarray, np.ndarray]:
        """E[z_n | x_n, theta] and E[z_n^2 | x_n, theta] by adaptive quadrature; two arrays of shape (N,)."""
        X = self.check_data(X)
        nodes, log_terms = self._quadrature(X, self.check_params(params))
        weights, _ = self._normalize(log_terms)
        return (weights * nodes).sum(axis=1), (weights * nodes ** 2).sum(axis=1)

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, z) -> LogisticRandomInterceptStats:
        """The complete-data statistics t(x, z) = (N, sum_n z_n, sum_n z_n^2), averaged over draws.

        Parameters
        ----------
        X : array_like, shape (N, 2)
        z : array_like, shape (N,) or (m, N)
            One completion of the latent log-odds, or m of them (rows): the result is then
            (1/m) sum_j t(x, z^(j)), the Monte Carlo estimate of the E-step (the Monte Carlo EM
            row of proposition saem-prop-one-recursion).
        """
        X = self.check_data(X)
        z = self._check_latent(z, X.shape[0])
        z = z.reshape(-1, X.shape[0])
        return LogisticRandomInterceptStats(float(X.shape[0]), float(z.sum(axis=1).mean()),
                                            float((z * z).sum(axis=1).mean()))

    def e_step(self, X, params: LogisticRandomInterceptParams) -> tuple[LogisticRandomInterceptStats, float]:
        """The exact E-step by quadrature: (N, sum_n E[z_n], sum_n E[z_n^2]) and ell(theta).

        This is what :func:`emlib.em` calls; the sampling drivers replace it by draws.
        """
        X = self.check_data(X)
        nodes, log_terms = self._quadrature(X, self.check_params(params))
        weights, log_lik = self._normalize(log_terms)
        stats = LogisticRandomInterceptStats(float(X.shape[0]), float((weights * nodes).sum()),
                                             float((weights * nodes ** 2).sum()))
        return stats, float(log_lik.sum())

    def m_step(self, stats: LogisticRandomInterceptStats) -> LogisticRandomInterceptParams:
        """argmax_theta of the expected normal log-density: mu = S1/S0, tau^2 = S2/S0 - mu^2.

        Raises
        ------
        ValueError
            When the statistics imply tau^2 <= 0 (all latent values equal, or statistics that are
            not those of this model).
        """
        if not isinstance(stats, LogisticRandomInterceptStats):
            raise ValueError(f"stats must be LogisticRandomInterceptStats; got {type(stats).__name__}.")
        s0, s1, s2 = stats.count, stats.sum_z, stats.sum_z2
        if not (np.isfinite(s0) and np.isfinite(s1) and np.isfinite(s2)) or s0 <= 0:
            raise ValueError(f"the statistics must be finite with a positive count; got {stats}.")
        mean = s1 / s0
        variance = (s2 - s1 * mean) / s0
        if not variance > 0:
            raise ValueError(f"the M-step gives tau^2 = {variance:.3g} <= 0: the statistics say that every latent "
                             "log-odds is the same. The data show no variation between groups beyond the "
                             "binomial; the maximum lies on the boundary tau^2 = 0.")
        return LogisticRandomInterceptParams(mean, variance)

    def init_params(self, X, rng: np.random.Generator) -> LogisticRandomInterceptParams:
        """A random start near the moments of the empirical log-odds log((k_n + 1/2) / (J_n - k_n + 1/2)).

        mu_0 = their mean plus N(0, 0.25 sd^2) noise, tau_0^2 = their variance times a
        Uniform(0.5, 1.5) factor (at least 0.05).
        """
        X = self.check_data(X)
        rng = check_generator(rng)
        k, n = X[:, 0], X[:, 1]
        logits = np.log((k + 0.5) / (n - k + 0.5))
        sd = float(logits.std())
        mean = float(logits.mean() + rng.normal(0.0, 0.5 * sd + 1e-3))
        variance = max(float(logits.var() * rng.uniform(0.5, 1.5)), 0.05)
        return LogisticRandomInterceptParams(mean, variance)

    # ------------------------------------------------------------------ the gradient (Fisher's identity)
    def score(self, X, params: LogisticRandomInterceptParams) -> np.ndarray:
        """d ell / d (mu, tau^2) by Fisher's identity, E[d log p(x, z | theta) / d theta | x, theta]; shape (2,).

        d/d mu = sum_n (E[z_n] - mu) / tau^2;
        d/d tau^2 = sum_n (E[(z_n - mu)^2] - tau^2) / (2 tau^4).
        """
        mean_z, second = self.posterior_moments(X, params)
        mu, tau2 = params.mean, params.variance
        centred = second - 2 * mu * mean_z + mu * mu
        return np.array([float(np.sum(mean_z - mu) / tau2), float(np.sum(centred - tau2) / (2 * tau2 * tau2))])

    # ------------------------------------------------------------------ simulation and sampling
    def sample(self, params: LogisticRandomInterceptParams, trials, rng: np.random.Generator):
        """Simulate grouped binary data: z_n ~ N(mu, tau^2), k_n ~ Binomial(J_n, sigma(z_n)).

        Parameters
        ----------
        params : LogisticRandomInterceptParams
        trials : array_like of int, shape (N,)
            J_n >= 1 for each group.
        rng : numpy.random.Generator

        Returns
        -------
        X : ndarray, shape (N, 2)
            [k_n, J_n] per group.
        z : ndarray, shape (N,)
            The latent log-odds that produced them.
        """
        params = self.check_params(params)
        rng = check_generator(rng)
        n = np.asarray(trials)
        if n.ndim != 1 or n.size < 2 or not np.all(n == np.round(n)) or np.any(n < 1):
            raise ValueError("trials must be a 1-D array of at least two whole numbers >= 1 (trials per group).")
        n = n.astype(np.int64)
        z = rng.normal(params.mean, np.sqrt(params.variance), size=n.size)
        k = rng.binomial(n, np.exp(log_expit(z)))
        return np.column_stack([k, n]).astype(float), z

    def proposal_scales(self, X, params: LogisticRandomInterceptParams) -> np.ndarray:
        """The random-walk step c s_n = c (1/tau^2 + J_n/4)^(-1/2) of each group; shape (N,).

        Depends on theta and J_n only, never on the current state, so the proposal is symmetric.
        """
        X = self.check_data(X)
        return self.proposal_scale / np.sqrt(1.0 / self.check_params(params).variance + 0.25 * X[:, 1])

    def mcmc(self, X, params: LogisticRandomInterceptParams, start, rng: np.random.Generator,
             n_steps: int = 1) -> tuple[np.ndarray, float]:
        """Sweeps of a random-walk Metropolis kernel, one independent chain per group (algorithm saem-alg-mh).

        Each sweep proposes z_n' = z_n + c s_n eps_n, eps_n ~ N(0, 1), for every group and accepts
        with probability min(1, p(x_n, z_n' | theta) / p(x_n, z_n | theta)); the symmetric
        proposal makes the kernel reversible with respect to p(z_n | x_n, theta), which it
        therefore leaves invariant.

        Parameters
        ----------
        X : array_like, shape (N, 2)
        params : LogisticRandomInterceptParams
            theta, fixed during the sweeps.
        start : array_like, shape (N,)
            The current state of the chains (e.g. the last state, or :meth:`posterior_mode`).
        rng : numpy.random.Generator
        n_steps : int
            The number of sweeps, >= 1.

        Returns
        -------
        draws : ndarray, shape (n_steps, N)
            The state after each sweep (row -1 is the new state of the chains).
        acceptance_rate : float
            The fraction of accepted proposals over all sweeps and groups.
        """
        X = self.check_data(X)
        params = self.check_params(params)
        rng = check_generator(rng)
        z = self._check_latent(start, X.shape[0], "start")
        if z.ndim != 1:
            raise ValueError(f"start must have shape (N,), one state per group; got {z.shape}.")
        if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer number of sweeps; got {n_steps!r}.")
        k, n = X[:, 0], X[:, 1]
        mu, tau2 = params.mean, params.variance
        steps = self.proposal_scales(X, params)

        def log_target(v):
            return self._log_binomial(k, n, v) - 0.5 * (v - mu) ** 2 / tau2

        current = log_target(z)
        n_steps = int(n_steps)
        draws = np.empty((n_steps, z.size))
        accepted = np.zeros(z.size, dtype=np.int64)
        for first in range(0, n_steps, _SWEEPS_PER_BLOCK):  # random numbers drawn a block at a time
            block = min(_SWEEPS_PER_BLOCK, n_steps - first)
            noise = rng.standard_normal((block, z.size)) * steps
            log_u = np.log(rng.random((block, z.size)))
            for j in range(block):
                proposal = z + noise[j]
                candidate = log_target(proposal)
                accept = log_u[j] < candidate - current
                z = np.where(accept, proposal, z)
                current = np.where(accept, candidate, current)
                accepted += accept
                draws[first + j] = z
        return draws, float(accepted.sum()) / float(n_steps * z.size)

    def sample_posterior(self, X, params: LogisticRandomInterceptParams, rng: np.random.Generator,
                         n_samples: int = 1) -> np.ndarray:
        """Exact, independent draws from every p(z_n | x_n, theta), by rejection from the prior.

        Propose z ~ N(mu, tau^2) and accept with probability p(x_n | z) / max_z p(x_n | z)
        = exp(k log sigma(z) + (J - k) log sigma(-z) - M_n), M_n = k log(k/J) + (J - k) log(1 - k/J)
        (0 log 0 = 0). The accepted values have density proportional to
        N(z | mu, tau^2) p(x_n | z), the posterior. The expected number of proposals per draw is
        max_z p(x_n | z) / p(x_n | theta).

        Returns
        -------
        ndarray, shape (n_samples, N)
        """
        X = self.check_data(X)
        params = self.check_params(params)
        rng = check_generator(rng)
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        k, n = X[:, 0], X[:, 1]
        frac = k / n
        with np.errstate(divide="ignore", invalid="ignore"):
            top = np.where(k > 0, k * np.log(np.where(k > 0, frac, 1.0)), 0.0) + \
                np.where(k < n, (n - k) * np.log(np.where(k < n, 1 - frac, 1.0)), 0.0)
        sd = np.sqrt(params.variance)
        wanted = int(n_samples)
        out = np.empty((wanted, k.size))
        filled = np.zeros(k.size, dtype=np.int64)
        pending = np.arange(k.size)
        size = min(2 * wanted + 16, max(16, (1 << 22) // k.size))
        for _ in range(10_000):
            # a block of proposals for every group still short of draws; keep the first accepted ones
            proposal = rng.normal(params.mean, sd, size=(size, pending.size))
            accept = np.log(rng.random((size, pending.size))) < (
                self._log_binomial(k[pending], n[pending], proposal) - top[pending])
            rank = np.cumsum(accept, axis=0)
            take = accept & (rank <= (wanted - filled[pending]))
            row, col = np.nonzero(take)
            groups = pending[col]
            out[filled[groups] + rank[row, col] - 1, groups] = proposal[row, col]
            filled[pending] += take.sum(axis=0)
            pending = pending[filled[pending] < wanted]
            if pending.size == 0:
                return out
            # the next block: twice what the slowest group needs at its observed acceptance rate,
            # with at most 2**22 proposals in memory
            rate = max(float(accept.mean(axis=0).min()), 1e-3)
            size = min(math.ceil(2 * (wanted - filled[pending]).max() / rate) + 16,
                       max(16, (1 << 22) // pending.size))
        raise RuntimeError("rejection sampling did not finish; the prior is far from the posterior")  # pragma: no cover
