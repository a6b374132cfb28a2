"""emlib: the Expectation-Maximization algorithm, its variants and the models of the EM book.

The driver :func:`em` runs the loop; each model supplies the E-step and M-step pieces; the
variant drivers in :mod:`emlib.variants` change one piece at a time.
"""
from . import bounds, datasets, gradient, monte_carlo
from .em import ConvergenceMonitor, EMResult, em
from .models import ComponentCollapseWarning, GaussianMixture, GaussianMixtureParams, GaussianMixtureStats
from .models import BayesianGaussianMixture, VariationalPosterior
from .models import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats
from .models import GaussianHMM, GaussianHMMParams, GaussianHMMPosterior, GaussianHMMStats
from .models import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from .variants.cavi import CAVIResult, cavi
from .models import PoissonMixture, PoissonMixtureParams, PoissonMixtureStats
from .models import MultivariateT, MultivariateTParams
from .params import flatten_params, unflatten_params
from .rate import em_map, em_map_jacobian
from . import reporting
from .variants._extrapolation import AcceleratedEMResult
from .variants.aitken import aitken_em, aitken_limit
from .variants.cem import cem
from .variants.ecme import ecme
from .variants.gem import gem
from .variants.online import OnlineEMResult, online_em
from .variants.squarem import squarem
from .variants.stochastic import MonteCarloEMResult, StochasticEMResult, mcem, stochastic_em

__version__ = "0.1.0"

__all__ = [
    "AcceleratedEMResult",
    "BayesianGaussianMixture",
    "CAVIResult",
    "VariationalPosterior",
    "cavi",
    "ComponentCollapseWarning",
    "ConvergenceMonitor",
    "EMResult",
    "GaussianHMM",
    "GaussianHMMParams",
    "GaussianHMMPosterior",
    "GaussianHMMStats",
    "GaussianMixture",
    "GaussianMixtureParams",
    "GaussianMixtureStats",
    "GeneticLinkage",
    "GeneticLinkageParams",
    "GeneticLinkageStats",
    "MonteCarloEMResult",
    "MultivariateT",
    "MultivariateTParams",
    "NormalParams",
    "NormalPosterior",
    "NormalStats",
    "NormalWithMissing",
    "OnlineEMResult",
    "PoissonMixture",
    "PoissonMixtureParams",
    "PoissonMixtureStats",
    "StochasticEMResult",
    "aitken_em",
    "aitken_limit",
    "bounds",
    "cem",
    "ecme",
    "datasets",
    "em",
    "em_map",
    "em_map_jacobian",
    "flatten_params",
    "mcem",
    "monte_carlo",
    "reporting",
    "online_em",
    "squarem",
    "stochastic_em",
    "unflatten_params",
    "gem",
    "gradient",
]
