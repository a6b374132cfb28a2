"""The model contract, written once: what every model supplies and what every driver returns.

Book: chapter "The EM algorithm" (equations ``em_algorithm-estep`` and ``em_algorithm-mstep``)
and chapter "Why the E-step is tractable" (additive statistics). EM is a loop around three
model-specific pieces::

    q      = model.posterior(X, params)        # E-step, part 1: q(z) = p(z | x, theta)
    stats  = model.expected_stats(X, q)        # E-step, part 2: E_q[t(x, z)]
    params = model.m_step(stats)               # M-step: argmax_theta Q(theta | theta_t)

:class:`Model` states the whole contract as a :class:`typing.Protocol`; the drivers of
:mod:`emlib` and :mod:`emlib.variants` rely on nothing else, and ``tests/test_model_interface.py``
checks every model against it. Two conventions hold for every model:

* **Checked inputs.** ``check_data`` and ``check_params`` validate; ``e_step`` and ``m_step``
  (the hot loop) take data and parameters that have passed them, as the drivers ensure (each
  driver checks once, before its first iteration). Every other public method checks its inputs.
* **Discrete latent variables.** Drivers that sample or classify z (stochastic EM, Monte Carlo
  EM, classification EM, the Q check of generalized EM) need ``posterior`` and ``log_joint`` to
  return arrays whose last axis runs over the values of a discrete z. A model whose latent
  variables are continuous says so with the class attribute ``discrete_latent = False``
  (e.g. :class:`emlib.NormalWithMissing`); those drivers then refuse it up front.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["FitResult", "Model", "Stats", "check_discrete_latent", "check_model"]

#: The methods of :class:`Model`, in the order a reader meets them.
MODEL_METHODS = ("check_data", "check_params", "init_params", "log_joint", "posterior", "expected_stats",
                 "e_step", "m_step", "log_likelihood")


@runtime_checkable
class Stats(Protocol):
    """Expected sufficient statistics E_q[t(x, z)], summed over data.

    Additive over data (``a + b`` is the statistics of the union; proposition
    ``tractable_estep-prop-stats``) and scalable (``c * a``): all that online, mini-batch and
    distributed EM need.
    """

    def __add__(self, other: Any) -> Any: ...

    def __mul__(self, scale: float) -> Any: ...

    def __rmul__(self, scale: float) -> Any: ...


@runtime_checkable
class Model(Protocol):
    """What every model of :mod:`emlib.models` supplies.

    Shapes are those of a mixture (N points, D dimensions, K components); other models say in
    their docstrings what X, q and the statistics are for them.
    """

    def check_data(self, X) -> Any:
        """Return the data as the model uses them (e.g. a float array (N, D)), or raise ``ValueError``."""

    def check_params(self, params, X=None) -> Any:
        """Return ``params`` if they are this model's parameters (fitting ``X`` if given), or raise ``ValueError``."""

    def init_params(self, X, rng: np.random.Generator) -> Any:
        """A starting point theta_0 drawn with ``rng`` (the only source of randomness)."""

    def log_joint(self, X, params) -> np.ndarray:
        """log p(x, z | theta) for every value of the latent variables, e.g. (N, K)."""

    def posterior(self, X, params) -> Any:
        """q(z) = p(z | x, theta), e.g. responsibilities (N, K) whose rows sum to one."""

    def expected_stats(self, X, q) -> Stats:
        """E_q[t(x, z)] for any q shaped like the posterior (the posterior, one-hot rows, samples)."""

    def e_step(self, X, params) -> tuple[Stats, float]:
        """``(expected_stats(X, posterior(X, params)), log_likelihood(X, params))`` in one pass."""

    def m_step(self, stats) -> Any:
        """argmax_theta Q(theta | theta_t), from the statistics of the E-step at theta_t."""

    def log_likelihood(self, X, params) -> float:
        """log p(X | theta), the total over the data (logsumexp of ``log_joint`` over z)."""


@runtime_checkable
class FitResult(Protocol):
    """What every driver returns: the last iterate, the trace of its objective, and how it stopped.

    ``objective`` is the trace under its own name: ``log_likelihood`` for :class:`emlib.EMResult`,
    ``classification_log_likelihood`` for classification EM, ``prequential_log_likelihood`` for
    online EM, ``elbo`` for CAVI and variational EM.
    """

    params: Any
    n_iter: int
    converged: bool

    @property
    def objective(self) -> np.ndarray: ...


def check_model(model, methods: tuple[str, ...] = MODEL_METHODS, *, driver: str = "the driver") -> Any:
    """Return ``model`` if it has the callable ``methods``, else raise ``ValueError`` naming what is missing."""
    missing = [name for name in methods if not callable(getattr(model, name, None))]
    if missing:
        raise ValueError(f"model must be an emlib model (see emlib.interface.Model); {driver} needs its "
                         f"method(s) {', '.join(missing)}, which {type(model).__name__} does not have.")
    return model


def check_discrete_latent(model, *, driver: str) -> None:
    """Raise ``ValueError`` if ``model`` declares continuous latent variables (``discrete_latent = False``)."""
    if not getattr(model, "discrete_latent", True):
        raise ValueError(f"{driver} samples or classifies a discrete latent variable (q of shape (N, K)), but "
                         f"the latent variables of {type(model).__name__} are continuous (its posterior is "
                         "Gaussian); use emlib.em or another driver that works with expected statistics.")
