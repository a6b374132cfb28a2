"""Variant drivers: each changes one piece of EM and reuses the model interface unchanged."""
from .cavi import CAVIResult, cavi
from . import cem, ecme, gem  # modules; the drivers are emlib.cem, emlib.ecme and emlib.gem
from ._extrapolation import AcceleratedEMResult
from . import aitken, squarem  # modules; the drivers are emlib.squarem and emlib.aitken_em
from .online import OnlineEMResult, online_em
from .stochastic import MonteCarloEMResult, StochasticEMResult, mcem, sample_frequencies, stochastic_em
