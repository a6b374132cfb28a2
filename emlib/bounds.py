"""The evidence lower bound and its companions, for any model of the interface.

Book: chapters "Jensen's inequality and the evidence lower bound" (equation labels
``jensen_elbo-*``) and "The EM algorithm" (``em_algorithm-*``). For a distribution q over the
latent variables (an array shaped like ``model.posterior(X, params)``, e.g. (N, K) with rows
summing to one for a mixture, one independent factor q_n per data point):

    F(q, theta)  = E_q[log p(x, z | theta)] + H(q)                    (ELBO, jensen_elbo-elbo)
    Q-part       = E_q[log p(x, z | theta)]                             (expected complete-data log-likelihood)
    H(q)         = -E_q[log q(z)]                                       (entropy)
    KL(q || p(z | x, theta)) = E_q[log q(z) - log p(z | x, theta)]     (jensen_elbo-kl)
    log p(x | theta) = F(q, theta) + KL(q || p(z | x, theta))          (jensen_elbo-decomposition)
    Q(theta | theta_t) = E_{p(z | x, theta_t)}[log p(x, z | theta)]    (em_algorithm-Q)

Terms with q = 0 contribute 0 (the limit of q log q), so one-hot q is allowed.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._validation import check_probability_rows


def _check_q(q, shape=None) -> np.ndarray:
    """q as a float array of probabilities whose last axis sums to one; ``shape`` if given."""
    if shape is not None and np.shape(q) != shape:
        raise ValueError(f"q must have the shape of the model's posterior, {shape}; got {np.shape(q)}.")
    return check_probability_rows(q, "q")


def _xlogy(q: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """q * log_p with the convention 0 * log 0 = 0 (and 0 * (-inf) = 0)."""
    return np.where(q > 0, q * np.where(q > 0, log_p, 0.0), 0.0)


def entropy(q) -> float:
    """H(q) = -sum q log q, summed over all factors of q (rows for a mixture).

    Parameters
    ----------
    q : array_like, e.g. shape (N, K)
        Probabilities; the last axis sums to one (each row is one factor q_n).

    Returns
    -------
    float
        H(q) >= 0; zero exactly when every factor is one-hot (0 log 0 = 0).
    """
    q = _check_q(q)
    with np.errstate(divide="ignore"):
        return float(-_xlogy(q, np.log(q)).sum())


def expected_complete_loglik(model, X, params, q) -> float:
    """E_q[log p(x, z | theta)]; with q = p(z | x, theta_t) this is Q(theta | theta_t).

    Parameters
    ----------
    model : a model of the interface (needs ``log_joint``)
    X : array_like, the data as the model accepts it, e.g. shape (N, D)
    params : the model's parameters dataclass (theta)
    q : array_like, the shape of ``model.log_joint(X, params)``, e.g. (N, K)

    Returns
    -------
    float
    """
    log_joint = model.log_joint(X, params)
    q = _check_q(q, log_joint.shape)
    return float(_xlogy(q, log_joint).sum())


def q_function(model, X, params, params_t) -> float:
    """Q(theta | theta_t) = E_{p(z | x, theta_t)}[log p(x, z | theta)] (equation em_algorithm-Q).

    Parameters
    ----------
    model : a model of the interface (needs ``log_joint`` and ``posterior``)
    X : array_like, the data as the model accepts it, e.g. shape (N, D)
    params : the model's parameters dataclass
        theta, where Q is evaluated.
    params_t : the model's parameters dataclass
        theta_t, whose posterior p(z | x, theta_t) weights the complete-data log-likelihood.

    Returns
    -------
    float
        Q(theta | theta_t). With theta = theta_t, Q + H(p(z | x, theta_t)) = log p(x | theta_t).
    """
    return expected_complete_loglik(model, X, params, model.posterior(X, params_t))


def log_posterior(model, X, params) -> np.ndarray:
    """log p(z | x, theta) by Bayes' rule in log space: log_joint minus its log-sum-exp over z.

    Parameters
    ----------
    model : a model of the interface (needs ``log_joint``)
    X : array_like, the data as the model accepts it, e.g. shape (N, D)
    params : the model's parameters dataclass

    Returns
    -------
    ndarray, the shape of ``model.log_joint(X, params)``, e.g. (N, K)
        Entries are -inf where the posterior is zero; each row's exponentials sum to one.
    """
    log_joint = np.asarray(model.log_joint(X, params), dtype=float)
    return log_joint - logsumexp(log_joint, axis=-1, keepdims=True)


def elbo(model, X, params, q) -> float:
    """The evidence lower bound F(q, theta) = E_q[log p(x, z | theta)] + H(q) (equation jensen_elbo-elbo).

    Parameters
    ----------
    model : a model of the interface (needs ``log_joint``)
    X : array_like
        The data, as the model accepts it, e.g. shape (N, D).
    params : the model's parameters dataclass
    q : array_like, the shape of ``model.posterior(X, params)``, e.g. (N, K)
        Probabilities; each row sums to one.

    Returns
    -------
    float
        F(q, theta) <= log p(x | theta), with equality exactly when q is the posterior.
    """
    return expected_complete_loglik(model, X, params, q) + entropy(q)


def kl_to_posterior(model, X, params, q) -> float:
    """KL(q || p(z | x, theta)) = sum q (log q - log p(z | x, theta)) >= 0 (equation jensen_elbo-kl).

    Computed directly from the log-posterior (not as log-likelihood minus ELBO), so that the
    decomposition log p(x | theta) = F + KL (jensen_elbo-decomposition) can be checked as an
    identity. Arguments as for :func:`elbo`.

    Returns
    -------
    float
        Zero exactly when q is the posterior; +inf when q puts mass where the posterior has none.
    """
    log_post = log_posterior(model, X, params)
    q = _check_q(q, log_post.shape)
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    return float((_xlogy(q, log_q) - _xlogy(q, log_post)).sum())
