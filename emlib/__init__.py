"""emlib: the Expectation-Maximization algorithm, its variants and the models of the EM book.

The driver :func:`em` runs the loop; each model supplies the E-step and M-step pieces; the
variant drivers in :mod:`emlib.variants` change one piece at a time.
"""
from . import bounds, datasets, gradient, mcmc, monte_carlo
from .em import ConvergenceMonitor, EMResult, em
from .models import ComponentCollapseWarning, GaussianMixture, GaussianMixtureParams, GaussianMixtureStats
from .models import BayesianGaussianMixture, VariationalPosterior
from .models import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats
from .models import LogisticRandomIntercept, LogisticRandomInterceptParams, LogisticRandomInterceptStats
from .models import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from .variants.cavi import CAVIResult, cavi
from .models import PoissonMixture, PoissonMixtureParams, PoissonMixtureStats
from .params import flatten_params, unflatten_params
from .rate import em_map, em_map_jacobian
from . import reporting
from .variants._extrapolation import AcceleratedEMResult
from .variants.aitken import aitken_em, aitken_limit
from .variants.cem import cem
from .variants.gem import gem
from .variants.online import OnlineEMResult, online_em
from .variants.saem import SAEMResult, saem
from .variants.ascent_mcem import AscentMCEMResult, ascent_mcem
from .variants.squarem import squarem
from .variants.stochastic import MonteCarloEMResult, StochasticEMResult, mcem, stochastic_em

__version__ = "0.1.0"

__all__ = [
    "AcceleratedEMResult",
    "AscentMCEMResult",
    "BayesianGaussianMixture",
    "CAVIResult",
    "VariationalPosterior",
    "cavi",
    "ComponentCollapseWarning",
    "ConvergenceMonitor",
    "EMResult",
    "GaussianMixture",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "GeneticLinkage",
    "GeneticLinkageParams",
    "GeneticLinkageStats",
    "LogisticRandomIntercept",
    "LogisticRandomInterceptParams",
    "LogisticRandomInterceptStats",
    "MonteCarloEMResult",
    "NormalParams",
    "NormalPosterior",
    "NormalStats",
    "NormalWithMissing",
    "OnlineEMResult",
    "PoissonMixture",
    "PoissonMixtureParams",
    "PoissonMixtureStats",
    "SAEMResult",
    "StochasticEMResult",
    "aitken_em",
    "aitken_limit",
    "ascent_mcem",
    "bounds",
    "cem",
    "datasets",
    "em",
    "em_map",
    "em_map_jacobian",
    "flatten_params",
    "mcem",
    "mcmc",
    "monte_carlo",
    "reporting",
    "online_em",
    "saem",
    "squarem",
    "stochastic_em",
    "unflatten_params",
    "gem",
    "gradient",
]
