"""The genetic linkage model of Dempster, Laird and Rubin (1977): a multinomial with one split cell.

Book: chapter "Genetic linkage: the example of Dempster, Laird and Rubin". The observed data are
four counts x = (x_1, x_2, x_3, x_4) of a multinomial with n = x_1 + x_2 + x_3 + x_4 trials and
cell probabilities

    (1/2 + pi/4, (1 - pi)/4, (1 - pi)/4, pi/4)                        (genetic_linkage-cells)

The complete data split the first cell into two cells with probabilities 1/2 and pi/4. The latent
variable is z = the number of the x_1 animals that fall in the pi/4 sub-cell, z in {0, ..., x_1}.
The complete data are then the five counts (x_1 - z, z, x_2, x_3, x_4) of a five-cell multinomial,
whose log-probability (with its multinomial coefficient) is ``log_joint``. Summing
p(x, z | pi) over z gives back the four-cell multinomial p(x | pi) with ITS coefficient
n! / (x_1! x_2! x_3! x_4!), which is what ``log_likelihood`` returns; so the constants are
consistent and ``bounds.elbo + bounds.kl_to_posterior == log_likelihood`` holds exactly.

    posterior:   z | x, pi ~ Binomial(x_1, w),  w = (pi/4) / (1/2 + pi/4) = pi / (2 + pi)
    E-step:      E[z | x, pi] = x_1 w                                  (genetic_linkage-estep)
    statistics:  a = E[z] + x_4 (counts with probability proportional to pi),
                 b = x_2 + x_3  (counts with probability proportional to 1 - pi)
    M-step:      pi = a / (a + b)                                      (genetic_linkage-mstep)

The observed-data log-likelihood is strictly concave in pi, and its score equation is the
quadratic n pi^2 - (x_1 - 2 (x_2 + x_3) - x_4) pi - 2 x_4 = 0 (genetic_linkage-quadratic), solved
in :meth:`GeneticLinkage.mle`. The information quantities of Louis (1982) are provided for the
chapter's study of the rate of convergence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .._validation import as_float_array, check_generator, check_number
from ._numerics import logsumexp_rows

#: Counts up to 2^53 are exact whole numbers in double precision (and fit in int64).
LARGEST_COUNT = 2 ** 53

_LOG_HALF = np.log(0.5)


@dataclass(frozen=True)
class GeneticLinkageParams:
    """The single parameter theta = pi of the genetic linkage model.

    Parameters
    ----------
    pi : float
        The linkage parameter, strictly between 0 and 1 (the model's cell probabilities are
        (1/2 + pi/4, (1 - pi)/4, (1 - pi)/4, pi/4)).
    """

    pi: float

    def __post_init__(self):
        object.__setattr__(self, "pi", check_number(self.pi, "pi", above=0.0, below=1.0))


@dataclass(frozen=True)
class GeneticLinkageStats:
    """Expected complete-data sufficient statistics of the genetic linkage model.

    Additive over independent count vectors (``a + b``) and scalable (``c * a``).

    Attributes
    ----------
    pi_count : float
        a = E[z] + x_4: the expected number of animals in cells of probability pi/4.
    one_minus_pi_count : float
        b = x_2 + x_3: the number of animals in cells of probability (1 - pi)/4.
    """

    pi_count: float
    one_minus_pi_count: float

    def __add__(self, other: "GeneticLinkageStats") -> "GeneticLinkageStats":
        if not isinstance(other, GeneticLinkageStats):
            return NotImplemented
        return GeneticLinkageStats(self.pi_count + other.pi_count,
                                   self.one_minus_pi_count + other.one_minus_pi_count)

    def __mul__(self, scale: float) -> "GeneticLinkageStats":
        return GeneticLinkageStats(scale * self.pi_count, scale * self.one_minus_pi_count)

    __rmul__ = __mul__


class GeneticLinkage:
    """The four-cell multinomial of Dempster, Laird and Rubin (1977, Section 1), fitted by EM.

    The data ``X`` are the four counts, an array of shape (4,), e.g.
    :func:`emlib.datasets.genetic_linkage`. The latent variable z is the number of the x_1
    animals of the first cell that belong to its pi/4 sub-cell, so ``q`` (the posterior of z)
    has shape (1, x_1 + 1): one row, holding the probabilities of z = 0, 1, ..., x_1.
    """

    #: z takes the values 0, ..., x_1 (one discrete latent variable); X is a single vector of counts.
    discrete_latent = True

    def __repr__(self) -> str:
        return "GeneticLinkage()"

    # ------------------------------------------------------------------ validation
    def check_data(self, X) -> np.ndarray:
        """Return the counts as an int64 array of shape (4,), or raise ``ValueError``."""
        if np.shape(X) != (4,):
            raise ValueError(f"X must hold the four cell counts, shape (4,); got shape {np.shape(X)}.")
        try:
            arr = np.array(as_float_array(X, (4,), "X"))
        except ValueError as exc:
            raise ValueError(f"X must be four non-negative integer counts: {exc}") from None
        if np.any(arr < 0):
            raise ValueError(f"X must hold non-negative counts; got {arr.tolist()}.")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"X must hold whole-number counts (a multinomial); got {arr.tolist()}.")
        if arr.sum() == 0:
            raise ValueError("X holds no animals (all counts are zero); there is nothing to fit.")
        if arr.sum() > LARGEST_COUNT:
            raise ValueError(f"X holds {arr.sum():.3g} animals in all, beyond 2^53, where counts are no "
                             "longer exact whole numbers (nor fit in a 64-bit integer); rescale the problem.")
        return arr.astype(np.int64)

    def check_params(self, params, X=None) -> GeneticLinkageParams:
        """Raise ``ValueError`` unless ``params`` is a :class:`GeneticLinkageParams`."""
        if not isinstance(params, GeneticLinkageParams):
            raise ValueError(f"params must be GeneticLinkageParams; got {type(params).__name__}.")
        return params

    def _check(self, X, params) -> tuple[np.ndarray, float]:
        return self.check_data(X), self.check_params(params).pi

    # ------------------------------------------------------------------ densities
    @staticmethod
    def _log_multinomial_coefficient(counts: np.ndarray) -> float:
        """log( (sum counts)! / prod(counts!) )."""
        return float(gammaln(counts.sum() + 1) - gammaln(counts + 1).sum())

    def log_likelihood(self, X, params: GeneticLinkageParams) -> float:
        """log p(x | pi): the four-cell multinomial log-probability, multinomial coefficient included
        (equation ``genetic_linkage-loglik``).

        log n!/(x_1! x_2! x_3! x_4!) + x_1 log(1/2 + pi/4) + (x_2 + x_3) log((1 - pi)/4) + x_4 log(pi/4).
        """
        x, pi = self._check(X, params)
        log_cells = np.log([0.5 + pi / 4, (1 - pi) / 4, (1 - pi) / 4, pi / 4])
        return self._log_multinomial_coefficient(x) + float(x @ log_cells)

    def log_joint(self, X, params: GeneticLinkageParams) -> np.ndarray:
        """log p(x, z | pi) for z = 0, ..., x_1: the five-cell multinomial of the complete data
        (equation ``genetic_linkage-complete``).

        The complete counts are (x_1 - z, z, x_2, x_3, x_4) with probabilities
        (1/2, pi/4, (1 - pi)/4, (1 - pi)/4, pi/4); the five-cell multinomial coefficient is included.

        Returns
        -------
        ndarray, shape (1, x_1 + 1)
        """
        x, pi = self._check(X, params)
        z = np.arange(x[0] + 1)
        n = x.sum()
        coefficient = (gammaln(n + 1) - gammaln(x[0] - z + 1) - gammaln(z + 1)
                       - gammaln(x[1:] + 1).sum())
        fixed_cells = (x[1] + x[2]) * np.log((1 - pi) / 4) + x[3] * np.log(pi / 4)
        return (coefficient + (x[0] - z) * _LOG_HALF + z * np.log(pi / 4) + fixed_cells)[None, :]

    def posterior(self, X, params: GeneticLinkageParams) -> np.ndarray:
        """q(z) = p(z | x, pi), the Binomial(x_1, pi / (2 + pi)) probabilities (equation
        ``genetic_linkage-posterior``); shape (1, x_1 + 1)."""
        log_joint = self.log_joint(X, params)
        return np.exp(log_joint - logsumexp_rows(log_joint)[:, None])

    # ------------------------------------------------------------------ E-step and M-step
    def expected_stats(self, X, q) -> GeneticLinkageStats:
        """E_q[t(x, z)] for any distribution q over z = 0, ..., x_1 (shape (1, x_1 + 1)).

        q may be the posterior (EM), a one-hot row (classification EM) or a sampled z.
        """
        x = self.check_data(X)
        q = np.asarray(q, dtype=float)
        if q.shape != (1, x[0] + 1):
            raise ValueError(f"q must have shape (1, x_1 + 1) = {(1, int(x[0]) + 1)}: one probability "
                             f"for each z = 0, ..., x_1; got {q.shape}.")
        mean_z = float(q[0] @ np.arange(x[0] + 1))
        return GeneticLinkageStats(mean_z + float(x[3]), float(x[1] + x[2]))

    def e_step(self, X, params: GeneticLinkageParams) -> tuple[GeneticLinkageStats, float]:
        """E-step in closed form: E[z | x, pi] = x_1 pi / (2 + pi) (the binomial mean).

        Returns
        -------
        stats : GeneticLinkageStats
        log_likelihood : float
            log p(x | pi) at the same parameters.
        """
        x, pi = self._check(X, params)
        mean_z = x[0] * pi / (2.0 + pi)
        stats = GeneticLinkageStats(float(mean_z + x[3]), float(x[1] + x[2]))
        return stats, self.log_likelihood(x, params)

    def m_step(self, stats: GeneticLinkageStats) -> GeneticLinkageParams:
        """argmax_pi Q(pi | pi_t) = a / (a + b): the binomial maximum-likelihood estimate.

        Raises
        ------
        ValueError
            When a or b is zero: the maximum is on the boundary pi = 0 or pi = 1.
        """
        a, b = stats.pi_count, stats.one_minus_pi_count
        if a <= 0 or b <= 0:
            edge = "0" if a <= 0 else "1"
            raise ValueError(f"the M-step gives pi = {edge} (expected counts a = {a:g}, b = {b:g}): the "
                             "maximum lies on the boundary of the parameter space, where the model is "
                             "degenerate. The data carry no evidence for one of pi and 1 - pi.")
        return GeneticLinkageParams(a / (a + b))

    def init_params(self, X, rng: np.random.Generator) -> GeneticLinkageParams:
        """A random start pi_0 ~ Uniform(0.1, 0.9).

        The log-likelihood is strictly concave in pi, so every start leads EM to the same maximum;
        Dempster, Laird and Rubin start from pi_0 = 0.5 (pass ``GeneticLinkageParams(0.5)``).
        """
        self.check_data(X)
        rng = check_generator(rng)
        return GeneticLinkageParams(float(rng.uniform(0.1, 0.9)))

    # ------------------------------------------------------------------ the closed-form maximum
    def score(self, X, params: GeneticLinkageParams) -> float:
        """d ell / d pi = x_1 / (2 + pi) - (x_2 + x_3) / (1 - pi) + x_4 / pi (equation ``genetic_linkage-score``)."""
        x, pi = self._check(X, params)
        return float(x[0] / (2 + pi) - (x[1] + x[2]) / (1 - pi) + x[3] / pi)

    def mle(self, X) -> GeneticLinkageParams:
        """The maximum-likelihood estimate in closed form: the root in (0, 1) of the quadratic score equation.

        Multiplying the score by pi (2 + pi) (1 - pi) > 0 gives
        n pi^2 - (x_1 - 2 (x_2 + x_3) - x_4) pi - 2 x_4 = 0, whose roots have product
        -2 x_4 / n <= 0; the larger root is the maximum.

        Raises
        ------
        ValueError
            When the maximum is on the boundary (pi = 0 or pi = 1), outside the model.
        """
        x = self.check_data(X).astype(float)
        n = x.sum()
        b = x[0] - 2 * (x[1] + x[2]) - x[3]
        c = -2 * x[3]
        disc = b * b - 4 * n * c  # >= b^2 since c <= 0
        # the larger root, written without cancellation when b < 0
        root = (b + np.sqrt(disc)) / (2 * n) if b >= 0 else (-2 * c) / (np.sqrt(disc) - b)
        if not (0.0 < root < 1.0):
            raise ValueError(f"the likelihood is maximized on the boundary (pi = {root:g}); there is no "
                             "interior maximum-likelihood estimate for these counts.")
        return GeneticLinkageParams(float(root))

    # ------------------------------------------------------------------ information (Louis 1982)
    def observed_information(self, X, params: GeneticLinkageParams) -> float:
        """I_obs(pi) = -d^2 ell / d pi^2 = x_1/(2 + pi)^2 + (x_2 + x_3)/(1 - pi)^2 + x_4/pi^2
        (equation ``genetic_linkage-information``)."""
        x, pi = self._check(X, params)
        return float(x[0] / (2 + pi) ** 2 + (x[1] + x[2]) / (1 - pi) ** 2 + x[3] / pi ** 2)

    def complete_information(self, X, params: GeneticLinkageParams) -> float:
        """I_com(pi) = E[-d^2 log p(x, z | pi) / d pi^2 | x, pi] = (E[z] + x_4)/pi^2 + (x_2 + x_3)/(1 - pi)^2.

        The expectation is over z ~ p(z | x, pi) at the same pi at which the derivative is taken.
        """
        x, pi = self._check(X, params)
        mean_z = x[0] * pi / (2 + pi)
        return float((mean_z + x[3]) / pi ** 2 + (x[1] + x[2]) / (1 - pi) ** 2)

    def missing_information(self, X, params: GeneticLinkageParams) -> float:
        """I_mis(pi) = Var[d log p(x, z | pi) / d pi | x, pi] = Var[z | x, pi] / pi^2.

        The complete-data score is (z + x_4)/pi - (x_2 + x_3)/(1 - pi); only z is random given x,
        with the binomial variance x_1 w (1 - w), w = pi / (2 + pi). Louis (1982):
        I_obs = I_com - I_mis (theorem ``genetic_linkage-thm-louis``).
        """
        x, pi = self._check(X, params)
        w = pi / (2 + pi)
        return float(x[0] * w * (1 - w) / pi ** 2)
