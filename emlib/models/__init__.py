"""One module per model. Each model supplies the pieces the drivers call (the contract is written
once, as a ``typing.Protocol``, in :mod:`emlib.interface`): ``check_data``, ``check_params``,
``init_params``, ``log_joint``, ``posterior``, ``expected_stats``, ``e_step``, ``m_step`` and
``log_likelihood``."""
from ._fit_warnings import ComponentCollapseWarning, ComponentStarvingWarning
from .gaussian_mixture import GaussianMixture, GaussianMixtureParams, GaussianMixtureStats, kmeans_plus_plus
from .bayesian_gaussian_mixture import BayesianGaussianMixture, VariationalPosterior
from .binary_factors import BinaryFactors, BinaryFactorsParams, BinaryFactorsStats
from .genetic_linkage import GeneticLinkage, GeneticLinkageParams, GeneticLinkageStats
from .logistic_random_intercept import (
    LogisticRandomIntercept,
    LogisticRandomInterceptParams,
    LogisticRandomInterceptStats,
)
from .normal_missing import NormalParams, NormalPosterior, NormalStats, NormalWithMissing
from .poisson_mixture import PoissonMixture, PoissonMixtureParams, PoissonMixtureStats
from .student_t import MultivariateT, MultivariateTParams, MultivariateTPosterior, MultivariateTStats
from .hmm import GaussianHMM, GaussianHMMParams, GaussianHMMPosterior, GaussianHMMStats
