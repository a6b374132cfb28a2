"""Variant drivers: each changes one piece of EM and reuses the model interface unchanged.

Every name here is a driver function (or a helper, or a result type), so that
``from emlib.variants import cem; cem(model, X, init)`` works like ``emlib.cem``. The modules
that hold them stay importable by their paths (``from emlib.variants.gem import
linear_means_cm_steps``): ``cavi``, ``cem``, ``ecme``, ``gem``, ``saem`` and ``squarem`` name both a module
and its driver, and the package attribute is the driver.
"""
from ._extrapolation import AcceleratedEMResult
from .aitken import aitken_em, aitken_limit
from .ascent_mcem import AscentMCEMResult, ascent_mcem
from .cavi import CAVIResult, cavi
from .cem import CEMResult, cem
from .ecme import ecme
from .gem import gem
from .online import OnlineEMResult, online_em
from .saem import SAEMResult, saem
from .squarem import squarem
from .stochastic import MonteCarloEMResult, StochasticEMResult, mcem, sample_frequencies, stochastic_em
from .variational_em import VariationalEMResult, variational_em

__all__ = ["AcceleratedEMResult", "AscentMCEMResult", "CAVIResult", "CEMResult", "MonteCarloEMResult",
           "OnlineEMResult", "SAEMResult", "StochasticEMResult", "VariationalEMResult", "aitken_em",
           "aitken_limit", "ascent_mcem", "cavi", "cem", "ecme", "gem", "mcem", "online_em", "saem",
           "sample_frequencies", "squarem", "stochastic_em", "variational_em"]
