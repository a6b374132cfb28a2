"""One module per model. Each model supplies the pieces the drivers call:
``check_data``, ``check_params``, ``init_params``, ``log_joint``, ``posterior``,
``expected_stats``, ``e_step``, ``m_step`` and ``log_likelihood``."""
from .gaussian_mixture import (
    ComponentCollapseWarning,
    GaussianMixture,
    GaussianMixtureParams,
    GaussianMixtureStats,
)
from .bayesian_gaussian_mixture import BayesianGaussianMixture, VariationalPosterior
from .genetic_linkage import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats
from .normal_missing import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from .poisson_mixture import PoissonMixture, PoissonMixtureParams, PoissonMixtureStats
from .student_t import MultivariateT, MultivariateTParams, MultivariateTPosterior, MultivariateTStats
from .hmm import GaussianHMM, GaussianHMMParams, GaussianHMMPosterior, GaussianHMMStats
