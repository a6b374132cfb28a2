"""Monte Carlo estimators of a marginal likelihood and of gradients of an expectation.

Book: chapter "Why the E-step is tractable, and why Monte Carlo on the marginal is hard".

Latent configurations. The latent variables are one discrete z_n in {0, ..., K-1} per data
point. A *proposal* r(z) = prod_n r_n(z_n) draws them independently across points; it is an
array of probabilities of shape (N, K) (row n is r_n), or of shape (K,) when every point uses the
same distribution (for a mixture: the prior weights pi). With
``log_joint[n, k] = log p(x_n, z_n = k | theta)`` the importance-sampling estimator is

    p_hat(x | theta) = (1/S) sum_s w_s,   w_s = p(x, z^(s) | theta) / r(z^(s)),   z^(s) ~ r
                          (tractable_estep-naive, with r = the prior)

It is unbiased for p(x | theta) = prod_n sum_k p(x_n, z_n = k | theta) whenever r_n(k) > 0 where
p(x_n, z_n = k | theta) > 0. The proposal r = prior gives the naive estimator
p_hat = (1/S) sum_s p(x | z^(s), theta), z^(s) ~ p(z | theta). The relative variance of one
weight is exact:

    Var[w] / p(x | theta)^2 = prod_n c_n - 1,   c_n = sum_k p(x_n, k)^2 / r_n(k) / p(x_n)^2 >= 1
                                                                    (tractable_estep-relvar)

so it grows exponentially with N unless r is the posterior (then c_n = 1).

Gradients. For z ~ N(mu, diag(sigma^2)) and a function f, the gradient of E[f(z)] with respect to
mu has two unbiased single-sample estimators (per sample s, eps_s ~ N(0, I)):

    score function (REINFORCE):  (f(z_s) - b) (z_s - mu) / sigma^2       (tractable_estep-score)
    reparameterization:          grad f(mu + sigma eps_s)                  (tractable_estep-reparam)

where b is an optional constant baseline.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.special import logsumexp

from ._validation import (as_float_array, check_callable, check_generator, check_integer, check_number,
                          check_probability_rows, check_probability_vector)

__all__ = [
    "effective_sample_size",
    "log_importance_weights",
    "log_marginal_estimate",
    "log_mean_exp",
    "log_prob_of_configurations",
    "log_relative_second_moment",
    "per_point_log_marginal_estimate",
    "per_point_relative_variance",
    "relative_variance",
    "renyi2_divergences",
    "reparameterization_gradient",
    "sample_configurations",
    "score_function_gradient",
    "self_normalized_weights",
]


# ---------------------------------------------------------------------- checks
def _check_proposal(proposal, n_points: int | None = None) -> np.ndarray:
    """Return the proposal as an (N, K) array of probabilities (a (K,) vector is repeated)."""
    r = np.asarray(proposal, dtype=float)
    if r.ndim == 1:
        r = as_float_array(r, (None,), "proposal")
        check_probability_vector(r, "proposal")
        if n_points is None:
            raise ValueError("a proposal of shape (K,) needs the number of points; pass an (N, K) array.")
        return np.broadcast_to(r, (n_points, r.shape[0]))
    r = as_float_array(r, (None, None), "proposal")
    if n_points is not None and r.shape[0] != n_points:
        raise ValueError(f"proposal has {r.shape[0]} rows but there are {n_points} data points; "
                         "give one row per point, or a (K,) vector shared by all points.")
    return check_probability_rows(r, "the proposal")


def _check_log_joint(log_joint) -> np.ndarray:
    lj = np.asarray(log_joint, dtype=float)
    if lj.ndim != 2 or lj.shape[0] < 1 or lj.shape[1] < 1:
        raise ValueError(f"log_joint must have shape (N, K) with N, K >= 1; got shape {lj.shape}.")
    if np.any(np.isnan(lj)) or np.any(lj == np.inf):
        raise ValueError("log_joint contains NaN or +inf; it must hold log-densities (-inf allowed).")
    if np.any(np.all(lj == -np.inf, axis=1)):
        raise ValueError("a data point has zero probability under every value of its latent variable "
                         "(a row of log_joint is all -inf), so p(x | theta) = 0.")
    return lj


def _check_pair(log_joint, proposal) -> tuple[np.ndarray, np.ndarray]:
    """(log_joint, proposal) checked, as (N, K) arrays of the same shape with the proposal
    covering every latent value of positive probability."""
    lj = _check_log_joint(log_joint)
    r = _check_proposal(proposal, lj.shape[0])
    _check_support(lj, r)
    return lj, r


def _check_support(lj: np.ndarray, r: np.ndarray) -> None:
    if lj.shape != r.shape:
        raise ValueError(f"log_joint has shape {lj.shape} but the proposal has shape {r.shape}; "
                         "they must agree (N points, K latent values).")
    uncovered = (r == 0) & (lj > -np.inf)
    if np.any(uncovered):
        n, k = np.argwhere(uncovered)[0]
        raise ValueError(f"the proposal gives probability 0 to z_{n} = {k}, which has positive probability "
                         "under the model: importance sampling would be biased. Give every such value "
                         "a positive proposal probability.")


# ---------------------------------------------------------------------- configurations
def sample_configurations(proposal, n_samples: int, rng: np.random.Generator, *,
                          n_points: int | None = None) -> np.ndarray:
    """Draw whole latent configurations z^(s) = (z_1, ..., z_N) from r(z) = prod_n r_n(z_n).

    Parameters
    ----------
    proposal : array_like, shape (N, K), or (K,) together with ``n_points``
        Row n holds the probabilities r_n(k); each row sums to one.
    n_samples : int
        S, the number of configurations.
    rng : numpy.random.Generator
        The only source of randomness.
    n_points : int, optional
        N, required when ``proposal`` has shape (K,).

    Returns
    -------
    ndarray of int, shape (S, N)
        ``z[s, n]`` in {0, ..., K-1}. Uses S * N * K numbers of working memory.
    """
    if n_points is not None:
        n_points = check_integer(n_points, "n_points", minimum=1)
    r = _check_proposal(proposal, n_points)
    S = check_integer(n_samples, "n_samples", minimum=1)
    rng = check_generator(rng)
    cdf = np.cumsum(r, axis=1)
    u = rng.random((S, r.shape[0]))
    z = np.sum(u[:, :, None] >= cdf[None, :, :], axis=2)
    return np.minimum(z, r.shape[1] - 1)  # guards u >= cdf[-1] = 1 - rounding


def log_prob_of_configurations(log_table, z) -> np.ndarray:
    """sum_n log_table[n, z[s, n]] for every configuration s.

    With ``log_table = log_joint`` this is log p(x, z^(s) | theta); with the log of a proposal it
    is log r(z^(s)).

    Parameters
    ----------
    log_table : array_like, shape (N, K)
    z : array_like of int, shape (S, N)

    Returns
    -------
    ndarray, shape (S,)
    """
    table = np.asarray(log_table, dtype=float)
    z = np.asarray(z)
    if table.ndim != 2:
        raise ValueError(f"log_table must have shape (N, K); got shape {table.shape}.")
    if z.ndim != 2 or z.shape[1] != table.shape[0]:
        raise ValueError(f"z must have shape (S, N) with N = {table.shape[0]}; got shape {z.shape}.")
    if not np.issubdtype(z.dtype, np.integer) or np.any(z < 0) or np.any(z >= table.shape[1]):
        raise ValueError(f"z must hold integers in 0..{table.shape[1] - 1} (latent values).")
    return table[np.arange(table.shape[0]), z].sum(axis=1)


def log_mean_exp(a, axis: int | None = None):
    """log((1/S) sum_s exp(a_s)), computed without overflow; over all entries when ``axis`` is None."""
    a = np.asarray(a, dtype=float)
    if a.size == 0:
        raise ValueError("log_mean_exp needs at least one value.")
    if axis is None:
        return float(logsumexp(a.ravel(), axis=0) - np.log(a.size))
    return logsumexp(a, axis=axis) - np.log(a.shape[axis])


# ---------------------------------------------------------------------- the marginal likelihood
def log_importance_weights(log_joint, proposal, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """log w_s = log p(x, z^(s) | theta) - log r(z^(s)) for S configurations z^(s) ~ r.

    The mean of the weights estimates p(x | theta) without bias; with r = the prior it is the naive
    estimator of equation ``tractable_estep-naive`` (an average of p(x | z, theta) over z ~ p(z | theta)).

    Parameters
    ----------
    log_joint : array_like, shape (N, K)
        log p(x_n, z_n = k | theta), e.g. ``model.log_joint(X, params)``.
    proposal : array_like, shape (N, K) or (K,)
        r_n(k): the prior weights (naive estimator), or responsibilities (posterior proposal).
    n_samples : int
        S.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (S,)
    """
    lj, r = _check_pair(log_joint, proposal)
    z = sample_configurations(r, n_samples, rng)
    with np.errstate(divide="ignore"):
        log_r = np.log(r)
    return log_prob_of_configurations(lj, z) - log_prob_of_configurations(log_r, z)


def log_marginal_estimate(log_joint, proposal, n_samples: int, rng: np.random.Generator) -> float:
    """log of the importance-sampling estimate p_hat(x | theta) of :func:`log_importance_weights`.

    p_hat itself is unbiased; its logarithm is biased downwards (Jensen), but it does not overflow.
    Parameters as in :func:`log_importance_weights`.
    """
    return log_mean_exp(log_importance_weights(log_joint, proposal, n_samples, rng))


def log_relative_second_moment(log_joint, proposal) -> float:
    """log(E_r[w^2] / p(x | theta)^2) = sum_n log c_n, exactly (equation ``tractable_estep-relvar``).

    Equals log(1 + relative variance of one weight); it is >= 0, and 0 exactly when r is the
    posterior. Kept in log space because it grows linearly in N (the variance exponentially).

    Parameters
    ----------
    log_joint : array_like, shape (N, K)
    proposal : array_like, shape (N, K) or (K,)

    Returns
    -------
    float
    """
    lj, r = _check_pair(log_joint, proposal)
    with np.errstate(divide="ignore"):
        log_r = np.log(r)
    terms = np.where(lj > -np.inf, 2.0 * lj - np.where(r > 0, log_r, 0.0), -np.inf)
    log_c = logsumexp(terms, axis=1) - 2.0 * logsumexp(lj, axis=1)
    return float(np.sum(log_c))


def relative_variance(log_joint, proposal, n_samples: int = 1) -> float:
    """Var[p_hat] / p(x | theta)^2 for the S-sample estimator: (prod_n c_n - 1) / S.

    May be ``inf`` when it exceeds the floating-point range; use
    :func:`log_relative_second_moment` then.
    """
    S = check_integer(n_samples, "n_samples", minimum=1)
    with np.errstate(over="ignore"):
        return float(np.expm1(log_relative_second_moment(log_joint, proposal)) / S)


# ---------------------------------------------------------------------- one factor per point
def renyi2_divergences(log_joint, proposal) -> np.ndarray:
    """log c_n = D_2(p(z_n | x_n, theta) || g_n), the Renyi divergence of order 2 of each point.

    Equation ``tractable_estep-renyi``: D_2(p || g) = log sum_k p(k)^2 / g(k). For one point,
    ``exp(D_2) = c_n`` is the second moment of its importance weight divided by p(x_n | theta)^2;
    the sum over points is :func:`log_relative_second_moment`. Each entry is >= 0, and 0 exactly
    when g_n is the posterior of point n.

    Parameters
    ----------
    log_joint : array_like, shape (N, K)
        log p(x_n, z_n = k | theta).
    proposal : array_like, shape (N, K) or (K,)
        g_n(k); positive wherever ``log_joint`` is finite.

    Returns
    -------
    ndarray, shape (N,)
    """
    lj, g = _check_pair(log_joint, proposal)
    with np.errstate(divide="ignore"):
        log_g = np.log(g)
    terms = np.where(lj > -np.inf, 2.0 * lj - np.where(g > 0, log_g, 0.0), -np.inf)
    # rounding can give -1e-16 where the divergence is exactly 0 (g_n the posterior)
    return np.maximum(logsumexp(terms, axis=1) - 2.0 * logsumexp(lj, axis=1), 0.0)


def per_point_log_marginal_estimate(log_joint, proposal, n_samples: int,
                                    rng: np.random.Generator) -> float:
    """log of the per-point estimator prod_n (1/m) sum_s w_n(z_n^(s)) of p(x | theta).

    Equation ``tractable_estep-per-point``: when the data points are independent,
    p(x | theta) = prod_n p(x_n | theta), and each factor is estimated by its own average of m
    importance weights w_n(k) = p(x_n, z_n = k | theta) / g_n(k), z_n^(s) ~ g_n. The product of
    independent unbiased factors is unbiased; its relative variance is
    :func:`per_point_relative_variance`.

    Parameters
    ----------
    log_joint : array_like, shape (N, K)
    proposal : array_like, shape (N, K) or (K,)
    n_samples : int
        m, the draws per point (N * m labels in total).
    rng : numpy.random.Generator

    Returns
    -------
    float
    """
    lj, g = _check_pair(log_joint, proposal)
    z = sample_configurations(g, n_samples, rng)                       # (m, N)
    with np.errstate(divide="ignore"):
        log_g = np.log(g)
    points = np.arange(lj.shape[0])
    log_w = lj[points, z] - log_g[points, z]                          # (m, N)
    return float(np.sum(log_mean_exp(log_w, axis=0)))


def per_point_relative_variance(log_joint, proposal, n_samples: int) -> float:
    """Var[p_hat] / p(x | theta)^2 of the per-point estimator: prod_n (1 + (c_n - 1) / m) - 1.

    Equation ``tractable_estep-per-point-relvar``, with c_n = exp(D_2) from
    :func:`renyi2_divergences` and m draws per point. For large m it is close to
    sum_n (c_n - 1) / m: linear in N, where the estimator of whole configurations has
    (prod_n c_n - 1) / m. May be ``inf`` beyond the floating-point range.
    """
    m = check_integer(n_samples, "n_samples", minimum=1)
    excess = np.expm1(renyi2_divergences(log_joint, proposal))
    with np.errstate(over="ignore"):
        return float(np.expm1(np.sum(np.log1p(excess / m))))


# ---------------------------------------------------------------------- self-normalized weights
def _check_log_weights(log_weights) -> np.ndarray:
    lw = np.asarray(log_weights, dtype=float)
    if lw.ndim != 1 or lw.size == 0:
        raise ValueError(f"log_weights must be a non-empty 1-D array; got shape {lw.shape}.")
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        raise ValueError("log_weights contains NaN or +inf; they must be log-weights (-inf allowed).")
    if np.all(lw == -np.inf):
        raise ValueError("every weight is zero (all log_weights are -inf): nothing to normalize.")
    return lw


def self_normalized_weights(log_weights) -> np.ndarray:
    """w_s / sum_j w_j from log-weights, without overflow.

    Self-normalized importance sampling estimates E_p[h] by sum_s w_s h(z_s) / sum_j w_j when
    the weights are known only up to a constant, e.g. w_s = p(x | z_s, theta) for z_s drawn from
    the prior, which targets the posterior.

    Parameters
    ----------
    log_weights : array_like, shape (S,)

    Returns
    -------
    ndarray, shape (S,)
        Non-negative, summing to one.
    """
    lw = _check_log_weights(log_weights)
    return np.exp(lw - logsumexp(lw))


def effective_sample_size(log_weights) -> float:
    """(sum_s w_s)^2 / sum_s w_s^2, between 1 and S: how many equally weighted draws the sample is worth.

    Kong's diagnostic for importance sampling. For a large sample from the proposal g it is close
    to S exp(-D_2(p || g)) (see :func:`renyi2_divergences`); when exp(D_2) exceeds S it collapses
    towards 1, a single draw carrying almost all the weight.

    Parameters
    ----------
    log_weights : array_like, shape (S,)

    Returns
    -------
    float
    """
    lw = _check_log_weights(log_weights)
    return float(np.exp(2.0 * logsumexp(lw) - logsumexp(2.0 * lw)))


# ---------------------------------------------------------------------- gradients
def _check_gaussian(mean, scale):
    mean = as_float_array(mean, (None,), "mean")
    scale = np.asarray(scale, dtype=float)
    if scale.ndim == 0:
        scale = np.full(mean.shape, float(scale))
    scale = as_float_array(scale, mean.shape, "scale")
    if np.any(scale <= 0):
        raise ValueError("scale (the standard deviations sigma) must be positive.")
    return mean, scale


def score_function_gradient(f: Callable[[np.ndarray], np.ndarray], mean, scale, n_samples: int,
                            rng: np.random.Generator, *, baseline: float = 0.0) -> np.ndarray:
    """Single-sample score-function (REINFORCE) estimates of d/d mu E_{z ~ N(mu, sigma^2)}[f(z)].

    Equation ``tractable_estep-score``: (f(z_s) - b) * (z_s - mu) / sigma^2, because
    d/d mu log N(z | mu, sigma^2) = (z - mu) / sigma^2 and E[(z - mu)] = 0 makes any constant b
    leave the mean unchanged.

    Parameters
    ----------
    f : callable, (S, D) array -> (S,) array
        Needs only values of f, not its gradient.
    mean : array_like, shape (D,)
        mu.
    scale : float or array_like, shape (D,)
        sigma, the standard deviations (positive).
    n_samples : int
        S.
    rng : numpy.random.Generator
    baseline : float
        The constant b subtracted from f (a control variate).

    Returns
    -------
    ndarray, shape (S, D)
        One unbiased gradient estimate per row; average the rows for the S-sample estimator.
    """
    mean, scale = _check_gaussian(mean, scale)
    S = check_integer(n_samples, "n_samples", minimum=1)
    rng = check_generator(rng)
    check_callable(f, "f", allow_none=False)
    baseline = check_number(baseline, "baseline")
    eps = rng.standard_normal((S, mean.shape[0]))
    z = mean + scale * eps
    values = np.asarray(f(z), dtype=float)
    if values.shape != (S,):
        raise ValueError(f"f must map an (S, D) array of samples to an (S,) array; got shape {values.shape}.")
    return (values - baseline)[:, None] * (eps / scale)


def reparameterization_gradient(grad_f: Callable[[np.ndarray], np.ndarray], mean, scale, n_samples: int,
                                rng: np.random.Generator) -> np.ndarray:
    """Single-sample reparameterization estimates of d/d mu E_{z ~ N(mu, sigma^2)}[f(z)].

    Equation ``tractable_estep-reparam``: write z = mu + sigma * eps with eps ~ N(0, I), so
    E[f(z)] = E[f(mu + sigma * eps)] and the derivative moves inside: grad f(mu + sigma * eps).

    Parameters
    ----------
    grad_f : callable, (S, D) array -> (S, D) array
        The gradient of f at each sample (f must be differentiable).
    mean : array_like, shape (D,)
    scale : float or array_like, shape (D,)
    n_samples : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (S, D)
    """
    mean, scale = _check_gaussian(mean, scale)
    S = check_integer(n_samples, "n_samples", minimum=1)
    rng = check_generator(rng)
    check_callable(grad_f, "grad_f", allow_none=False)
    eps = rng.standard_normal((S, mean.shape[0]))
    grads = np.asarray(grad_f(mean + scale * eps), dtype=float)
    if grads.shape != (S, mean.shape[0]):
        raise ValueError(f"grad_f must map an (S, D) array to an (S, D) array; got shape {grads.shape}.")
    return grads
