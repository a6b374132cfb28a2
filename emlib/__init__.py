"""emlib: the Expectation-Maximization algorithm, its variants and the models of the EM book.

The driver :func:`em` runs the loop; each model supplies the E-step and M-step pieces; the
variant drivers in :mod:`emlib.variants` change one piece at a time.
"""
from . import bounds, datasets, monte_carlo
from .em import ConvergenceMonitor, EMResult, em
from .models import ComponentCollapseWarning, GaussianMixture, GaussianMixtureParams, GaussianMixtureStats
from .models import BayesianGaussianMixture, VariationalPosterior
from .models import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats
from .models import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from .variants.cavi import CAVIResult, cavi
from .variants.cem import cem
from .variants.gem import gem

__version__ = "0.1.0"

__all__ = [
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
    "NormalParams",
    "NormalPosterior",
    "NormalStats",
    "NormalWithMissing",
    "bounds",
    "cem",
    "datasets",
    "em",
    "monte_carlo",
    "gem",
]
