"""emlib: the Expectation-Maximization algorithm, its variants and the models of the EM book.

The driver :func:`em` runs the loop; each model supplies the E-step and M-step pieces; the
variant drivers in :mod:`emlib.variants` change one piece at a time.
"""
from . import bounds, datasets
from .em import ConvergenceMonitor, EMResult, em
from .models import ComponentCollapseWarning, GaussianMixture, GaussianMixtureParams, GaussianMixtureStats
from .models import BayesianGaussianMixture, VariationalPosterior
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
    "bounds",
    "cem",
    "datasets",
    "em",
    "gem",
]
