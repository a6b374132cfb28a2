"""emlib: the Expectation-Maximization algorithm, its variants and the models of the EM book.

The driver :func:`em` runs the loop; each model supplies the E-step and M-step pieces (the
contract is :class:`emlib.interface.Model`); the variant drivers in :mod:`emlib.variants`
change one piece at a time.
"""
from . import bounds, datasets, gradient, interface, mcmc, monte_carlo, reporting, standard_errors
from .em import ConvergenceMonitor, EMResult, em
from .models import ComponentCollapseWarning, ComponentStarvingWarning
from .models import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats
from .models import BayesianGaussianMixture, VariationalPosterior
from .models import BinaryFactors, BinaryFactorsParams, BinaryFactorsStats
from .models import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats
from .models import GaussianHMM, GaussianHMMParams, GaussianHMMPosterior, GaussianHMMStats
from .models import LogisticRandomIntercept, LogisticRandomInterceptParams, LogisticRandomInterceptStats
from .models import MultivariateT, MultivariateTParams
from .models import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from .models import PoissonMixture, PoissonMixtureParams, PoissonMixtureStats
from .models.map_gaussian_mixture import MAPGaussianMixture
from .params import flatten_params, unflatten_params
from .rate import em_map, em_map_jacobian
from .variants import (AcceleratedEMResult, AscentMCEMResult, CAVIResult, CEMResult, MonteCarloEMResult,
                       OnlineEMResult, SAEMResult, StochasticEMResult, VariationalEMResult, aitken_em,
                       aitken_limit, ascent_mcem, cavi, cem, ecme, gem, mcem, online_em, saem, squarem, stochastic_em,
                       variational_em)

__version__ = "0.2.0"

__all__ = [
    "AcceleratedEMResult",
    "AscentMCEMResult",
    "BayesianGaussianMixture",
    "BinaryFactors",
    "BinaryFactorsParams",
    "BinaryFactorsStats",
    "CAVIResult",
    "CEMResult",
    "ComponentCollapseWarning",
    "ComponentStarvingWarning",
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
    "LogisticRandomIntercept",
    "LogisticRandomInterceptParams",
    "LogisticRandomInterceptStats",
    "MAPGaussianMixture",
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
    "SAEMResult",
    "StochasticEMResult",
    "VariationalEMResult",
    "VariationalPosterior",
    "aitken_em",
    "aitken_limit",
    "ascent_mcem",
    "bounds",
    "cavi",
    "cem",
    "datasets",
    "ecme",
    "em",
    "em_map",
    "em_map_jacobian",
    "flatten_params",
    "gem",
    "gradient",
    "interface",
    "mcem",
    "mcmc",
    "monte_carlo",
    "online_em",
    "reporting",
    "saem",
    "squarem",
    "standard_errors",
    "stochastic_em",
    "unflatten_params",
    "variational_em",
]
